//! `restart_workload`: a rolling restart (`kubectl rollout restart`) of a Deployment,
//! StatefulSet or DaemonSet.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Patch, PatchParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::{check_name, check_namespace, rollout_unavailable};
use super::{Tool, ToolContext};
use crate::cluster::{Cluster, Writer};
use crate::error::ToolError;
use crate::guard::{Change, Mutation, MutationReport, Plan, Scope};
use crate::policy::facts::AffectedFacts;
use crate::policy::{Facts, Target};

/// The restart annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Arguments of `restart_workload`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace of the workload.
    pub namespace: String,
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: String,
    /// Workload name.
    pub name: String,
    /// Evaluate the policies and send a server-side dry run; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The `restart_workload` tool.
pub struct RestartWorkload;

struct RolloutRestart(Args, &'static str);

/// The restartedAt stamp the apply step writes.
struct Stamp(String);

impl Mutation for RolloutRestart {
    type State = Stamp;
    fn action(&self) -> &'static str {
        "restart_workload"
    }
    fn scope(&self) -> Scope<'_> {
        Scope::Namespaced(&self.0.namespace)
    }
    fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    async fn plan(&self, cluster: &Cluster) -> Result<Plan<Stamp>, ToolError> {
        let (a, kind) = (&self.0, self.1);
        // replicas, pods down at once, metadata, current restart annotation
        let (replicas, down, meta, last) = match kind {
            "Deployment" => {
                let d = cluster
                    .get_in::<Deployment>(&a.namespace, &a.name, kind, "see list_workloads")
                    .await?;
                let spec = d.spec.clone().unwrap_or_default();
                let replicas = i64::from(spec.replicas.unwrap_or(1));
                let last = spec
                    .template
                    .metadata
                    .and_then(|m| m.annotations)
                    .and_then(|a| a.get(RESTARTED_AT).cloned());
                (
                    replicas,
                    rollout_unavailable(spec.strategy.as_ref(), replicas),
                    d.metadata,
                    last,
                )
            }
            "StatefulSet" => {
                let s = cluster
                    .get_in::<StatefulSet>(&a.namespace, &a.name, kind, "see list_workloads")
                    .await?;
                let spec = s.spec.clone().unwrap_or_default();
                let last = spec
                    .template
                    .metadata
                    .and_then(|m| m.annotations)
                    .and_then(|a| a.get(RESTARTED_AT).cloned());
                (i64::from(spec.replicas.unwrap_or(1)), 1, s.metadata, last)
            }
            _ => {
                let d = cluster
                    .get_in::<DaemonSet>(&a.namespace, &a.name, kind, "see list_workloads")
                    .await?;
                let total = i64::from(d.status.as_ref().map_or(0, |s| s.desired_number_scheduled));
                let last = d
                    .spec
                    .and_then(|s| s.template.metadata)
                    .and_then(|m| m.annotations)
                    .and_then(|a| a.get(RESTARTED_AT).cloned());
                (total, 1.min(total), d.metadata, last)
            }
        };
        let mut facts = Facts::new(self.action(), &a.namespace, &[]);
        facts.affected = Some(AffectedFacts {
            pods: down,
            total: replicas,
        });
        let now = jiff::Timestamp::now().to_string();
        let target = Target {
            kind: kind.into(),
            namespace: a.namespace.clone(),
            name: a.name.clone(),
            labels: meta.labels.clone().unwrap_or_default(),
        };
        let summary = format!(
            "rolling restart of {replicas} pod(s) of {kind} {}, {down} at a time",
            a.name
        );
        Ok(Plan::new(target, facts, summary, Stamp(now.clone()))
            .with_changes(vec![Change {
                field: format!("spec.template.metadata.annotations[{RESTARTED_AT}]"),
                before: json!(last),
                after: json!(now),
            }])
            .with_meta(&meta))
    }

    async fn apply(
        &self,
        writer: &Writer,
        plan: &Plan<Stamp>,
        dry_run: bool,
    ) -> Result<Value, ToolError> {
        let (a, kind) = (&self.0, self.1);
        let patch = Patch::Merge(json!({
            "metadata": plan.metadata_patch(),
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: plan.state.0}}}}
        }));
        let pp = PatchParams {
            dry_run,
            ..Default::default()
        };
        let ctx = format!("restarting {kind} {}/{}", a.namespace, a.name);
        match kind {
            "Deployment" => writer
                .namespaced::<Deployment>(&a.namespace)
                .patch(&a.name, &pp, &patch)
                .await
                .map(|_| ()),
            "StatefulSet" => writer
                .namespaced::<StatefulSet>(&a.namespace)
                .patch(&a.name, &pp, &patch)
                .await
                .map(|_| ()),
            _ => writer
                .namespaced::<DaemonSet>(&a.namespace)
                .patch(&a.name, &pp, &patch)
                .await
                .map(|_| ()),
        }
        .map_err(|e| ToolError::from_kube(ctx, e))?;
        Ok(json!({"restarted_at": plan.state.0, "dry_run": dry_run}))
    }

    async fn verify(&self, cluster: &Cluster, _plan: &Plan<Stamp>) -> Result<Value, ToolError> {
        let (a, kind) = (&self.0, self.1);
        if kind == "Deployment" {
            let d = cluster
                .api::<Deployment>(Some(&a.namespace))
                .get(&a.name)
                .await
                .map_err(|e| ToolError::from_kube("reading the deployment back", e))?;
            let st = d.status.unwrap_or_default();
            return Ok(json!({
                "revision": d.metadata.annotations.and_then(|a| a.get("deployment.kubernetes.io/revision").cloned()),
                "updated_replicas": st.updated_replicas.unwrap_or(0),
                "ready_replicas": st.ready_replicas.unwrap_or(0),
            }));
        }
        Ok(json!({"note": format!("{kind} restart requested; follow it with get_pod_status")}))
    }
}

impl Tool for RestartWorkload {
    const NAME: &'static str = "restart_workload";
    const TITLE: &'static str = "Rolling restart of a workload";
    const DESCRIPTION: &'static str = "Rolling restart of a Deployment, StatefulSet or DaemonSet (what `kubectl rollout restart` does: a new restartedAt annotation on the pod template). Never automatic: a human approves it. dry_run=true changes nothing.";
    const READ_ONLY: bool = false;
    const DESTRUCTIVE: bool = true;
    const IDEMPOTENT: bool = false;
    type Args = Args;
    type Output = MutationReport;

    async fn run(ctx: ToolContext, args: Args) -> Result<MutationReport, ToolError> {
        ctx.check_scope(Some(&args.namespace))?;
        check_namespace(&args.namespace)?;
        check_name("name", &args.name)?;
        let kind = ["Deployment", "StatefulSet", "DaemonSet"]
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(&args.kind))
            .ok_or_else(|| {
                ToolError::invalid(format!(
                    "kind {:?} cannot be restarted; use Deployment, StatefulSet or DaemonSet",
                    args.kind
                ))
            })?;
        ctx.guard()?
            .run(&ctx.cluster, &ctx.caller, &RolloutRestart(args, kind))
            .await
    }

    fn summary(out: &MutationReport) -> String {
        out.text()
    }
}
