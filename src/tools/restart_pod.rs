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
use crate::guard::{Change, Landed, Mutation, MutationReport, Plan, Scope};
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

/// What the apply and verify steps need: the pod's uid (a delete precondition, and how
/// its replacement is told apart) and its controller's name.
struct Victim {
    uid: Option<String>,
    owner_name: Option<String>,
}

impl Mutation for Restart {
    type State = Victim;
    fn action(&self) -> &'static str {
        "restart_pod"
    }
    fn scope(&self) -> Scope<'_> {
        Scope::Namespaced(&self.0.namespace)
    }
    fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    async fn plan(&self, cluster: &Cluster) -> Result<Plan<Victim>, ToolError> {
        let a = &self.0;
        let pod = cluster
            .get_in::<Pod>(&a.namespace, &a.name, "pod", "see get_pod_status")
            .await?;
        let (pod_f, affected, owner) = pod_facts(cluster, &pod).await?;
        let owner_text = if owner.kind.is_empty() {
            "no controller — nothing would recreate it".to_string()
        } else if owner.recreates {
            format!("owner {}/{} recreates it", owner.kind, owner.name)
        } else {
            format!(
                "owner {}/{} does not exist (or wants no pods) — nothing would recreate it",
                owner.kind, owner.name
            )
        };
        let summary = format!(
            "delete pod {} ({}, {} restarts{}); {owner_text}",
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
        );
        let mut facts = Facts::new(self.action(), &a.namespace, &[]);
        if !owner.recreates {
            facts.unrecreated_pods = 1;
        }
        // a StatefulSet's pod is a StatefulSet change: its identity and volume go with it
        if !owner.kind.is_empty() {
            facts.workload_kinds.push(owner.kind.clone());
        }
        facts.pod = Some(pod_f);
        facts.affected = Some(affected);
        let target = Target {
            kind: "Pod".into(),
            namespace: a.namespace.clone(),
            name: a.name.clone(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
        };
        let after = if owner.recreates {
            "deleted; replaced by its controller"
        } else {
            "deleted; NOT replaced (no controller would recreate it)"
        };
        let victim = Victim {
            uid: pod.metadata.uid.clone(),
            owner_name: owner.recreates.then(|| owner.name.clone()),
        };
        let mut plan = Plan::new(target, facts, summary, victim).with_changes(vec![Change {
            field: "pod".into(),
            before: json!(a.name),
            after: json!(after),
        }]);
        // the pod is deleted, not written: no ledger to carry, only the preconditions
        plan.resource_version = pod.metadata.resource_version.clone();
        Ok(plan)
    }

    async fn apply(
        &self,
        writer: &Writer,
        plan: &Plan<Victim>,
        dry_run: bool,
    ) -> Result<Value, ToolError> {
        let a = &self.0;
        let dp = DeleteParams {
            dry_run,
            preconditions: Some(Preconditions {
                resource_version: plan.resource_version.clone(),
                uid: plan.state.uid.clone(),
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

    async fn verify(&self, cluster: &Cluster, plan: &Plan<Victim>) -> Result<Value, ToolError> {
        let a = &self.0;
        let pods = cluster
            .api::<Pod>(Some(&a.namespace))
            .list(&ListParams::default())
            .await
            .map_err(|e| ToolError::from_kube("listing pods", e))?;
        let uid = plan.state.uid.as_deref();
        let siblings: Vec<Value> = match &plan.state.owner_name {
            None => Vec::new(),
            Some(owner_name) => pods
                .items
                .iter()
                .filter(|p| controller_of(&p.metadata).is_some_and(|(_, n)| &n == owner_name))
                .map(|p| {
                    json!({
                        "name": p.metadata.name,
                        "uid_changed": p.metadata.uid.as_deref() != uid,
                        "phase": p.status.as_ref().and_then(|s| s.phase.clone()),
                        "ready": crate::cluster::facts::is_ready(p),
                    })
                })
                .collect(),
        };
        let old_gone = !pods.items.iter().any(|p| p.metadata.uid.as_deref() == uid);
        Ok(json!({"old_pod_gone": old_gone, "owner_pods": siblings}))
    }

    async fn landed(&self, cluster: &Cluster, plan: &Plan<Victim>) -> Landed {
        // a delete leaves no ledger entry: the pod with this uid is gone or it is not
        let a = &self.0;
        match cluster
            .api::<Pod>(Some(&a.namespace))
            .get_opt(&a.name)
            .await
        {
            Ok(Some(p))
                if p.metadata.uid == plan.state.uid && p.metadata.deletion_timestamp.is_none() =>
            {
                Landed::Unknown(format!(
                    "pod {}/{} still exists; the delete may still be applied — check it with get_pod_status",
                    a.namespace, a.name
                ))
            }
            Ok(_) => Landed::Applied,
            Err(e) => Landed::Unknown(format!(
                "reading pod {}/{} back failed ({e}); check it with get_pod_status",
                a.namespace, a.name
            )),
        }
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
