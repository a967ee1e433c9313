//! `reserve_capacity`: pre-provision nodes for Karpenter (or Cluster Autoscaler) ahead of
//! forecast traffic with a Deployment of low-priority `pause` pods sized in CPU and memory.
//! Pending placeholders make the autoscaler add nodes; real pods pre-empt them when they
//! come, and scheduling then is immediate.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Patch, PatchParams, PostParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::{check_name, check_namespace};
use super::scale_deployment::MAX_REPLICAS_ARG;
use super::{Tool, ToolContext};
use crate::cluster::{Cluster, Writer};
use crate::error::ToolError;
use crate::forecast::rightsizing::{parse_cpu, parse_memory};
use crate::guard::{Change, Mutation, MutationReport, Plan, Scope};
use crate::policy::facts::{AffectedFacts, ReplicaFacts, ReservationFacts};
use crate::policy::{Facts, Target};

/// The priority class placeholders run with: below every real workload (whose default is 0).
pub const PRIORITY_CLASS: &str = "eks-ops-placeholder";
/// Its value.
pub const PRIORITY: i32 = -10;
/// The container image of the placeholders.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// Label marking the objects this tool manages.
pub const MANAGED_BY: &str = "eks-ops-mcp";

/// Arguments of `reserve_capacity`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace of the placeholder Deployment (default `eks-ops-capacity`; it must exist).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Name of the placeholder Deployment (default `capacity-reservation`).
    #[serde(default)]
    pub name: Option<String>,
    /// Placeholder pods (0 releases the reservation).
    pub replicas: i64,
    /// CPU each placeholder reserves, e.g. `1` or `500m` (default 1).
    #[serde(default)]
    pub cpu: Option<String>,
    /// Memory each placeholder reserves, e.g. `2Gi` (default 2Gi).
    #[serde(default)]
    pub memory: Option<String>,
    /// Node selector for the placeholders, e.g. `{"karpenter.sh/nodepool": "default"}`.
    #[serde(default)]
    pub node_selector: Option<std::collections::BTreeMap<String, String>>,
    /// Evaluate the policies and send server-side dry runs; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The `reserve_capacity` tool.
pub struct ReserveCapacity;

struct Reserve {
    args: Args,
    namespace: String,
    name: String,
    cpu: String,
    memory: String,
}

fn placeholder(r: &Reserve) -> Value {
    let labels =
        json!({"app.kubernetes.io/name": r.name, "app.kubernetes.io/managed-by": MANAGED_BY});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": r.name, "namespace": r.namespace, "labels": labels},
        "spec": {
            "replicas": r.args.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": r.name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": PRIORITY_CLASS,
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": r.args.node_selector,
                    "containers": [{
                        "name": "pause", "image": PAUSE_IMAGE,
                        "resources": {"requests": {"cpu": r.cpu, "memory": r.memory}, "limits": {"memory": r.memory}}
                    }]
                }
            }
        }
    })
}

/// Whether the placeholder Deployment exists (patch) or not (create).
struct Existing(bool);

/// Per placeholder pod: (millicores, MiB) of the existing Deployment's pause container.
fn per_pod(d: &Deployment) -> (i64, i64) {
    let requests = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.requests.as_ref());
    let get = |k: &str| requests.and_then(|r| r.get(k)).map(|q| q.0.clone());
    (
        get("cpu").and_then(|c| parse_cpu(&c)).map_or(0, millis),
        get("memory").and_then(|m| parse_memory(&m)).map_or(0, mib),
    )
}

/// Cores → millicores, bounded so the policies' arithmetic cannot overflow.
fn millis(cores: f64) -> i64 {
    (cores * 1000.0).round().clamp(0.0, 1e12) as i64
}

/// Bytes → MiB (rounded up), bounded likewise.
fn mib(bytes: f64) -> i64 {
    (bytes / (1024.0 * 1024.0)).ceil().clamp(0.0, 1e12) as i64
}

/// Whether an object carries the label this server sets on what it creates: ownership is
/// proven by the label, never assumed from a name.
fn managed_here(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/managed-by"))
        .map(String::as_str)
        == Some(MANAGED_BY)
}

/// Refuse a PriorityClass of the placeholders' name that this server did not create, or
/// one whose value was changed: a name proves nothing, the label and the value do.
async fn check_priority_class(cluster: &Cluster) -> Result<(), ToolError> {
    let pc = cluster
        .cluster_api::<PriorityClass>()
        .get_opt(PRIORITY_CLASS)
        .await
        .map_err(|e| ToolError::from_kube("reading the placeholder PriorityClass", e))?;
    let Some(pc) = pc else {
        return Ok(());
    };
    if !managed_here(&pc.metadata) {
        return Err(ToolError::Refused(format!(
            "a PriorityClass named {PRIORITY_CLASS} exists that this server did not create (no label app.kubernetes.io/managed-by={MANAGED_BY}; its value is {}); placeholders would run with its priority, so nothing is done — delete or rename it, or ask its owner",
            pc.value
        )));
    }
    if pc.value != PRIORITY {
        return Err(ToolError::Refused(format!(
            "the PriorityClass {PRIORITY_CLASS} has value {} where this server set {PRIORITY}; placeholders with that priority could pre-empt real pods, so nothing is done — restore its value to {PRIORITY} or delete it",
            pc.value
        )));
    }
    Ok(())
}

impl Mutation for Reserve {
    type State = Existing;
    fn action(&self) -> &'static str {
        "reserve_capacity"
    }
    fn scope(&self) -> Scope<'_> {
        Scope::Namespaced(&self.namespace)
    }
    fn dry_run(&self) -> bool {
        self.args.dry_run
    }

    async fn plan(&self, cluster: &Cluster) -> Result<Plan<Existing>, ToolError> {
        cluster.ensure_namespace(&self.namespace).await?;
        check_priority_class(cluster).await?;
        let existing = cluster
            .api::<Deployment>(Some(&self.namespace))
            .get_opt(&self.name)
            .await
            .map_err(|e| {
                ToolError::from_kube(
                    format!("reading deployment {}/{}", self.namespace, self.name),
                    e,
                )
            })?;
        if let Some(d) = &existing
            && !managed_here(&d.metadata)
        {
            return Err(ToolError::Refused(format!(
                "deployment {}/{} exists and is not a placeholder this server manages (label app.kubernetes.io/managed-by={MANAGED_BY}); choose another name",
                self.namespace, self.name
            )));
        }
        let current = existing
            .as_ref()
            .and_then(|d| d.spec.as_ref().and_then(|s| s.replicas))
            .map_or(0, i64::from);
        // the true before: what the existing placeholders hold, not the size asked for now
        let (cpu_before, mem_before) = existing.as_ref().map_or((0, 0), per_pod);
        let (cpu_after, mem_after) = (
            parse_cpu(&self.cpu).map_or(0, millis),
            parse_memory(&self.memory).map_or(0, mib),
        );
        let mut facts = Facts::new(self.action(), &self.namespace, &[]);
        facts.replicas = Some(ReplicaFacts::new(current, self.args.replicas));
        // placeholders serve nothing: removing them takes no capacity from any workload
        facts.affected = Some(AffectedFacts {
            pods: 0,
            total: current.max(1),
        });
        facts.reservation = Some(ReservationFacts {
            cpu_millis_before: cpu_before.saturating_mul(current),
            cpu_millis_after: cpu_after.saturating_mul(self.args.replicas),
            memory_mib_before: mem_before.saturating_mul(current),
            memory_mib_after: mem_after.saturating_mul(self.args.replicas),
        });
        let reserved = |n: i64, cpu: i64, mem: i64| {
            format!(
                "{n} × ({}m CPU, {mem}Mi memory) = {}m CPU, {}Mi memory",
                cpu,
                cpu.saturating_mul(n),
                mem.saturating_mul(n)
            )
        };
        let target = Target {
            kind: "Deployment".into(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            labels: Default::default(),
        };
        let summary = format!(
            "{} placeholders {current} → {} ({} CPU, {} memory each, priority {PRIORITY}); reserved in total {}m → {}m CPU, {}Mi → {}Mi memory",
            if existing.is_some() {
                "resize"
            } else {
                "create"
            },
            self.args.replicas,
            self.cpu,
            self.memory,
            cpu_before.saturating_mul(current),
            cpu_after.saturating_mul(self.args.replicas),
            mem_before.saturating_mul(current),
            mem_after.saturating_mul(self.args.replicas),
        );
        let mut plan = Plan::new(target, facts, summary, Existing(existing.is_some()))
            .with_changes(vec![Change {
                field: "placeholder pods".into(),
                before: json!(reserved(current, cpu_before, mem_before)),
                after: json!(reserved(self.args.replicas, cpu_after, mem_after)),
            }]);
        if let Some(d) = &existing {
            plan = plan.with_meta(&d.metadata);
        }
        Ok(plan)
    }

    async fn apply(
        &self,
        writer: &Writer,
        plan: &Plan<Existing>,
        dry_run: bool,
    ) -> Result<Value, ToolError> {
        let pp = PostParams {
            dry_run,
            ..Default::default()
        };
        let pcs = writer.cluster::<PriorityClass>();
        let pc = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": PRIORITY_CLASS, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
            "value": PRIORITY, "globalDefault": false, "preemptionPolicy": "Never",
            "description": "Placeholder pods that reserve capacity ahead of forecast traffic; every real pod pre-empts them."});
        let pc: PriorityClass =
            serde_json::from_value(pc).map_err(|e| ToolError::Internal(e.to_string()))?;
        match pcs.create(&pp, &pc).await {
            Ok(_) => {}
            // created meanwhile by someone: it must still be ours, with our value
            Err(kube::Error::Api(s)) if s.code == 409 => {
                check_priority_class(&writer.reader()).await?
            }
            Err(e) => {
                return Err(ToolError::from_kube(
                    "creating the placeholder PriorityClass",
                    e,
                ));
            }
        }
        let api = writer.namespaced::<Deployment>(&self.namespace);
        let mut body = placeholder(self);
        let meta = plan.metadata_patch();
        if let Some(ann) = meta.get("annotations") {
            body["metadata"]["annotations"] = ann.clone();
        }
        let dep = if plan.state.0 {
            let mut patch = body;
            patch["metadata"]["resourceVersion"] = json!(plan.resource_version);
            api.patch(
                &self.name,
                &PatchParams {
                    dry_run,
                    ..Default::default()
                },
                &Patch::Merge(patch),
            )
            .await
        } else {
            let d: Deployment =
                serde_json::from_value(body).map_err(|e| ToolError::Internal(e.to_string()))?;
            api.create(&pp, &d).await
        }
        .map_err(|e| {
            ToolError::from_kube(
                format!(
                    "writing placeholder deployment {}/{}",
                    self.namespace, self.name
                ),
                e,
            )
        })?;
        Ok(json!({"replicas": dep.spec.and_then(|s| s.replicas), "dry_run": dry_run}))
    }

    async fn verify(&self, cluster: &Cluster, _plan: &Plan<Existing>) -> Result<Value, ToolError> {
        let d = cluster
            .api::<Deployment>(Some(&self.namespace))
            .get(&self.name)
            .await
            .map_err(|e| ToolError::from_kube("reading the placeholder deployment back", e))?;
        let st = d.status.unwrap_or_default();
        Ok(json!({
            "spec_replicas": d.spec.and_then(|s| s.replicas),
            "ready_replicas": st.ready_replicas.unwrap_or(0),
            "note": "placeholders that stay Pending are what makes the node autoscaler add nodes"
        }))
    }
}

impl Tool for ReserveCapacity {
    const NAME: &'static str = "reserve_capacity";
    const TITLE: &'static str = "Reserve node capacity";
    const DESCRIPTION: &'static str = "Pre-provision nodes ahead of forecast traffic: a Deployment of pause pods with a negative PriorityClass, sized in CPU and memory, so Karpenter adds nodes before the traffic and real pods pre-empt the placeholders when they come. replicas 0 releases the reservation. Goes through the policies like every mutation (the first reservation, or more than doubling it, needs a human). dry_run=true changes nothing.";
    const READ_ONLY: bool = false;
    const DESTRUCTIVE: bool = false;
    const IDEMPOTENT: bool = true;
    type Args = Args;
    type Output = MutationReport;

    async fn run(ctx: ToolContext, args: Args) -> Result<MutationReport, ToolError> {
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| "eks-ops-capacity".into());
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| "capacity-reservation".into());
        ctx.check_scope(Some(&namespace))?;
        check_namespace(&namespace)?;
        check_name("name", &name)?;
        if !(0..=MAX_REPLICAS_ARG).contains(&args.replicas) {
            return Err(ToolError::invalid(format!(
                "replicas {} is out of range: it must be between 0 and {MAX_REPLICAS_ARG}",
                args.replicas
            )));
        }
        let cpu = args.cpu.clone().unwrap_or_else(|| "1".into());
        let memory = args.memory.clone().unwrap_or_else(|| "2Gi".into());
        if !parse_cpu(&cpu).is_some_and(|c| c > 0.0 && c <= 256.0) {
            return Err(ToolError::invalid(format!(
                "cpu {cpu:?} is not a CPU quantity between 1m and 256 (e.g. 500m, 2)"
            )));
        }
        if !parse_memory(&memory)
            .is_some_and(|m| m >= 1024.0 * 1024.0 && m <= 4.0 * 1024f64.powi(4))
        {
            return Err(ToolError::invalid(format!(
                "memory {memory:?} is not a memory quantity between 1Mi and 4Ti (e.g. 512Mi, 2Gi)"
            )));
        }
        let m = Reserve {
            args,
            namespace,
            name,
            cpu,
            memory,
        };
        ctx.guard()?.run(&ctx.cluster, &ctx.caller, &m).await
    }

    fn summary(out: &MutationReport) -> String {
        out.text()
    }
}
