//! `drain_node`: cordon a node, then evict its pods through the Eviction API so that
//! PodDisruptionBudgets are honoured (DaemonSet and mirror pods stay, as with
//! `kubectl drain --ignore-daemonsets`).

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, EvictParams, ListParams, PostParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::check_name;
use super::cordon_node::set_unschedulable;
use super::{Tool, ToolContext};
use crate::cluster::facts::{disruption, node_facts};
use crate::cluster::{Cluster, Writer};
use crate::error::ToolError;
use crate::guard::{Change, Landed, Mutation, MutationReport, Plan, Scope};
use crate::policy::{Facts, Target};

/// Arguments of `drain_node`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Node name.
    pub name: String,
    /// Evaluate the policies and send server-side dry runs; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The `drain_node` tool.
pub struct DrainNode;

struct Drain(Args);

/// A pod the drain evicts: where it is, and its uid (an eviction's precondition, and how a
/// replacement of the same name is told apart when reading back).
struct Evictee {
    namespace: String,
    name: String,
    uid: Option<String>,
}

/// Longest one eviction may wait for the API's answer before its pod is read back.
const EVICTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the pod an eviction was sent for is gone (or on its way out).
async fn evicted(cluster: &Cluster, p: &Evictee) -> Result<bool, ToolError> {
    let now = cluster
        .api::<Pod>(Some(&p.namespace))
        .get_opt(&p.name)
        .await
        .map_err(|e| {
            ToolError::from_kube(format!("reading pod {}/{} back", p.namespace, p.name), e)
        })?;
    Ok(match now {
        None => true,
        Some(pod) => pod.metadata.uid != p.uid || pod.metadata.deletion_timestamp.is_some(),
    })
}

impl Mutation for Drain {
    type State = Vec<Evictee>;
    fn action(&self) -> &'static str {
        "drain_node"
    }
    fn scope(&self) -> Scope<'_> {
        Scope::Cluster
    }
    fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    async fn plan(&self, cluster: &Cluster) -> Result<Plan<Vec<Evictee>>, ToolError> {
        let name = &self.0.name;
        let (node, node_f, pods) = node_facts(cluster, name).await?;
        // what the evictions take away, workload by workload: the rules see the worst
        let d = disruption(cluster, &pods).await?;
        let names: Vec<String> = pods
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default()
                )
            })
            .collect();
        let summary = format!(
            "cordon node {name} and evict {} pod(s) in {} namespace(s){}{}",
            names.len(),
            d.namespaces.len(),
            if node_f.hosts_pvc_pods {
                ", some with PersistentVolumeClaims"
            } else {
                ""
            },
            if d.unrecreated > 0 {
                format!(", {} that nothing would recreate", d.unrecreated)
            } else {
                String::new()
            }
        );
        let mut facts = Facts::new(self.action(), "", &[]);
        facts.node = Some(node_f);
        facts.namespaces = d.namespaces.clone();
        facts.workload_kinds = d.workload_kinds.clone();
        facts.unrecreated_pods = d.unrecreated;
        facts.affected = d.worst.clone();
        let evictees = pods
            .iter()
            .map(|p| Evictee {
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
                uid: p.metadata.uid.clone(),
            })
            .collect();
        let target = Target {
            kind: "Node".into(),
            namespace: String::new(),
            name: name.clone(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
        };
        Ok(Plan::new(target, facts, summary, evictees)
            .with_changes(vec![
                Change {
                    field: "spec.unschedulable".into(),
                    before: json!(
                        node.spec
                            .as_ref()
                            .and_then(|s| s.unschedulable)
                            .unwrap_or(false)
                    ),
                    after: json!(true),
                },
                Change {
                    field: "pods".into(),
                    before: json!(names),
                    after: json!("evicted (rescheduled by their controllers elsewhere)"),
                },
                Change {
                    field: "workloads disrupted (ready pods evicted of ready total)".into(),
                    before: json!(d.per_workload),
                    after: Value::Null,
                },
            ])
            .with_meta(&node.metadata))
    }

    async fn apply(
        &self,
        writer: &Writer,
        plan: &Plan<Vec<Evictee>>,
        dry_run: bool,
    ) -> Result<Value, ToolError> {
        let name = &self.0.name;
        let cordon = set_unschedulable(writer, name, plan.metadata_patch(), true, dry_run).await?;
        let mut evicted_pods = Vec::new();
        let mut not_evicted = Vec::new();
        let mut unknown = Vec::new();
        for p in &plan.state {
            let (ns, pod) = (p.namespace.as_str(), p.name.as_str());
            let ep = EvictParams {
                delete_options: Some(DeleteParams {
                    dry_run,
                    preconditions: p.uid.clone().map(|uid| kube::api::Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..Default::default()
                }),
                post_options: PostParams {
                    dry_run,
                    ..Default::default()
                },
            };
            let sent =
                tokio::time::timeout(EVICTION_TIMEOUT, writer.evictions(ns).evict(pod, &ep)).await;
            match sent {
                Ok(Ok(_)) => evicted_pods.push(format!("{ns}/{pod}")),
                Ok(Err(kube::Error::Api(s))) if s.code == 429 => not_evicted.push(json!({
                    "pod": format!("{ns}/{pod}"),
                    "reason": "a PodDisruptionBudget does not allow this disruption now",
                    "detail": s.message,
                })),
                Ok(Err(kube::Error::Api(s))) if s.code == 404 => {
                    evicted_pods.push(format!("{ns}/{pod} (already gone)"))
                }
                Ok(Err(kube::Error::Api(s))) if s.code < 500 => not_evicted.push(
                    json!({"pod": format!("{ns}/{pod}"), "reason": format!("{} ({})", s.message, s.code)}),
                ),
                // the answer was lost (timeout, reset, unreadable, 5xx): the pod decides
                other => {
                    let why = match other {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {} s", EVICTION_TIMEOUT.as_secs()),
                    };
                    let cluster = writer.reader();
                    match evicted(&cluster, p).await {
                        Ok(true) if !dry_run => {
                            evicted_pods.push(format!("{ns}/{pod} (answer lost: {why}; read back: gone)"))
                        }
                        Ok(_) if dry_run => unknown.push(json!({"pod": format!("{ns}/{pod}"), "reason": why})),
                        Ok(_) => not_evicted.push(json!({"pod": format!("{ns}/{pod}"), "reason": format!("answer lost ({why}); read back: still running")})),
                        Err(e) => unknown.push(json!({"pod": format!("{ns}/{pod}"), "reason": format!("answer lost ({why}); reading back failed: {e}")})),
                    }
                }
            }
        }
        Ok(
            json!({"cordon": cordon, "evicted": evicted_pods, "not_evicted": not_evicted, "unknown": unknown, "dry_run": dry_run}),
        )
    }

    async fn verify(
        &self,
        cluster: &Cluster,
        _plan: &Plan<Vec<Evictee>>,
    ) -> Result<Value, ToolError> {
        let name = &self.0.name;
        let node = cluster
            .cluster_api::<Node>()
            .get(name)
            .await
            .map_err(|e| ToolError::from_kube("reading the node back", e))?;
        let remaining: Vec<String> = cluster
            .api::<Pod>(None)
            .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
            .await
            .map_err(|e| ToolError::from_kube("listing pods left on the node", e))?
            .items
            .into_iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.unwrap_or_default(),
                    p.metadata.name.unwrap_or_default()
                )
            })
            .collect();
        Ok(
            json!({"unschedulable": node.spec.and_then(|s| s.unschedulable).unwrap_or(false), "pods_left": remaining}),
        )
    }

    async fn landed(&self, cluster: &Cluster, plan: &Plan<Vec<Evictee>>) -> Landed {
        // the drain ran out of time part-way: say how far it got
        let cordoned = match cluster.cluster_api::<Node>().get_opt(&self.0.name).await {
            Ok(Some(n)) => n
                .spec
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
                .to_string(),
            Ok(None) => "the node is gone".into(),
            Err(e) => format!("unknown (reading the node failed: {e})"),
        };
        let (mut gone, mut left, mut unread) = (Vec::new(), Vec::new(), Vec::new());
        for p in &plan.state {
            let id = format!("{}/{}", p.namespace, p.name);
            match evicted(cluster, p).await {
                Ok(true) => gone.push(id),
                Ok(false) => left.push(id),
                Err(_) => unread.push(id),
            }
        }
        if cordoned == "true" && left.is_empty() && unread.is_empty() {
            return Landed::Applied;
        }
        Landed::Unknown(format!(
            "partial drain — cordoned: {cordoned}; evicted so far: [{}]; still on the node: [{}]; could not be read: [{}]; call drain_node again to finish, or uncordon_node to undo the cordon",
            gone.join(", "),
            left.join(", "),
            unread.join(", ")
        ))
    }
}

impl Tool for DrainNode {
    const NAME: &'static str = "drain_node";
    const TITLE: &'static str = "Drain a node";
    const DESCRIPTION: &'static str = "Cordon a node, then evict its pods with the Eviction API so PodDisruptionBudgets are honoured; DaemonSet and mirror pods stay. Reports the pods that could not be evicted and why. Runs on its own for a node under MemoryPressure or DiskPressure whose pods have no PersistentVolumeClaims; otherwise a human decides. dry_run=true changes nothing.";
    const READ_ONLY: bool = false;
    const DESTRUCTIVE: bool = true;
    const IDEMPOTENT: bool = true;
    type Args = Args;
    type Output = MutationReport;

    async fn run(ctx: ToolContext, args: Args) -> Result<MutationReport, ToolError> {
        check_name("name", &args.name)?;
        ctx.guard()?
            .run(&ctx.cluster, &ctx.caller, &Drain(args))
            .await
    }

    fn summary(out: &MutationReport) -> String {
        let mut s = out.text();
        if let Some(failed) = out
            .result
            .as_ref()
            .and_then(|r| r["not_evicted"].as_array())
            .filter(|f| !f.is_empty())
        {
            s.push_str(&format!("; {} pod(s) could not be evicted", failed.len()));
        }
        s
    }
}
