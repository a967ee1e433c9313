//! `restart_pod`: delete one pod so that its controller replaces it.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Preconditions};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::{check_name, check_namespace};
use super::{Tool, ToolContext};
use crate::cluster::facts::{controller_of, pod_facts};
use crate::cluster::{Cluster, Writer};
use crate::error::ToolError;
use crate::guard::{Change, Mutation, MutationReport, Plan};
use crate::policy::{Facts, Target};

/// Arguments of `restart_pod`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Evaluate the policies and send a server-side dry run; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The `restart_pod` tool.
pub struct RestartPod;

struct Restart(Args);

impl Mutation for Restart {
    fn action(&self) -> &'static str {
        "restart_pod"
    }
    fn namespace(&self) -> Option<&str> {
        Some(&self.0.namespace)
    }
    fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    async fn plan(&self, cluster: &Cluster) -> Result<Plan, ToolError> {
        let a = &self.0;
        let pod = cluster
            .get_in::<Pod>(&a.namespace, &a.name, "pod", "see get_pod_status")
            .await?;
        let (pod_f, affected) = pod_facts(cluster, &pod).await?;
        let owner = controller_of(&pod.metadata)
            .map(|(k, n)| format!("{k}/{n}"))
            .unwrap_or_else(|| "none".into());
        let summary = format!(
            "delete pod {} ({}, {} restarts{}); owner {owner} {}",
            a.name,
            if pod_f.waiting_reason.is_empty() {
                pod_f.phase.clone()
            } else {
                pod_f.waiting_reason.clone()
            },
            pod_f.restart_count,
            if pod_f.mounts_pvc {
                ", mounts a PersistentVolumeClaim"
            } else {
                ""
            },
            if pod_f.owner_kind.is_empty() {
                "— nothing would recreate it"
            } else {
                "recreates it"
            }
        );
        let mut facts = Facts::new(self.action(), &a.namespace, &[]);
        facts.pod = Some(pod_f);
        facts.affected = Some(affected);
        Ok(Plan {
            target: Target {
                kind: "Pod".into(),
                namespace: a.namespace.clone(),
                name: a.name.clone(),
                labels: pod.metadata.labels.clone().unwrap_or_default(),
            },
            changes: vec![Change {
                field: "pod".into(),
                before: json!(a.name),
                after: json!("deleted; replaced by its controller"),
            }],
            facts,
            summary,
            resource_version: pod.metadata.resource_version.clone(),
            state: json!({"uid": pod.metadata.uid, "owner": controller_of(&pod.metadata).map(|(k, n)| json!({"kind": k, "name": n}))}),
        })
    }

    async fn apply(&self, writer: &Writer, plan: &Plan, dry_run: bool) -> Result<Value, ToolError> {
        let a = &self.0;
        let dp = DeleteParams {
            dry_run,
            preconditions: Some(Preconditions {
                resource_version: plan.resource_version.clone(),
                uid: plan.state["uid"].as_str().map(str::to_string),
            }),
            ..Default::default()
        };
        writer
            .namespaced::<Pod>(&a.namespace)
            .delete(&a.name, &dp)
            .await
            .map_err(|e| {
                ToolError::from_kube(format!("deleting pod {}/{}", a.namespace, a.name), e)
            })?;
        Ok(json!({"deleted": a.name, "dry_run": dry_run}))
    }

    async fn verify(&self, cluster: &Cluster, plan: &Plan) -> Result<Value, ToolError> {
        let a = &self.0;
        let owner_name = plan
            .state
            .pointer("/owner/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let pods = cluster
            .api::<Pod>(Some(&a.namespace))
            .list(&ListParams::default())
            .await
            .map_err(|e| ToolError::from_kube("listing pods", e))?;
        let siblings: Vec<Value> = pods
            .items
            .iter()
            .filter(|p| {
                !owner_name.is_empty()
                    && controller_of(&p.metadata).is_some_and(|(_, n)| n == owner_name)
            })
            .map(|p| {
                json!({
                    "name": p.metadata.name,
                    "uid_changed": p.metadata.uid.as_deref() != plan.state["uid"].as_str(),
                    "phase": p.status.as_ref().and_then(|s| s.phase.clone()),
                    "ready": crate::cluster::facts::is_ready(p),
                })
            })
            .collect();
        let old_gone = !pods
            .items
            .iter()
            .any(|p| p.metadata.uid.as_deref() == plan.state["uid"].as_str());
        Ok(json!({"old_pod_gone": old_gone, "owner_pods": siblings}))
    }
}

impl Tool for RestartPod {
    const NAME: &'static str = "restart_pod";
    const TITLE: &'static str = "Restart a pod";
    const DESCRIPTION: &'static str = "Delete one pod so its controller replaces it. Runs on its own for a pod in CrashLoopBackOff with 5 or more restarts; a pod that mounts a PersistentVolumeClaim, has no controller, or would take down half or more of its workload's ready replicas needs a human. Returns the plan, the decision and the replacement observed. dry_run=true changes nothing.";
    const READ_ONLY: bool = false;
    const DESTRUCTIVE: bool = true;
    const IDEMPOTENT: bool = false;
    type Args = Args;
    type Output = MutationReport;

    async fn run(ctx: ToolContext, args: Args) -> Result<MutationReport, ToolError> {
        ctx.check_scope(Some(&args.namespace))?;
        check_namespace(&args.namespace)?;
        check_name("name", &args.name)?;
        ctx.guard()?
            .run(&ctx.cluster, &ctx.caller, &Restart(args))
            .await
    }

    fn summary(out: &MutationReport) -> String {
        out.text()
    }
}
