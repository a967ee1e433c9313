//! `rollback`: return a Deployment to an earlier revision, the way `kubectl rollout undo`
//! does it — the target ReplicaSet's pod template is written back into the Deployment.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::{
    check_name, check_namespace, merge_diff, rollout_unavailable, without_pod_template_hash,
};
use super::get_rollout_history::owned_revisions;
use super::{Tool, ToolContext};
use crate::cluster::template_diff::{changes_line, template_changes};
use crate::cluster::{Cluster, Writer};
use crate::error::ToolError;
use crate::guard::{Change, Mutation, MutationReport, Plan, Scope};
use crate::policy::facts::{AffectedFacts, RolloutFacts};
use crate::policy::{Facts, Target};

/// Arguments of `rollback`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace of the Deployment.
    pub namespace: String,
    /// Deployment name.
    pub name: String,
    /// Revision to return to (default: the previous one). See get_rollout_history.
    #[serde(default)]
    pub to_revision: Option<i64>,
    /// Evaluate the policies and send a server-side dry run; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The `rollback` tool.
pub struct Rollback;

struct Undo(Args);

fn images(template: &Value) -> Value {
    template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("image").cloned()).collect())
        .unwrap_or(Value::Array(vec![]))
}

/// The template patch and the revision it restores.
struct Restore {
    patch: Value,
    target: i64,
}

impl Mutation for Undo {
    type State = Restore;
    fn action(&self) -> &'static str {
        "rollback"
    }
    fn scope(&self) -> Scope<'_> {
        Scope::Namespaced(&self.0.namespace)
    }
    fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    async fn plan(&self, cluster: &Cluster) -> Result<Plan<Restore>, ToolError> {
        let a = &self.0;
        let dep = cluster
            .get_in::<Deployment>(&a.namespace, &a.name, "deployment", "see list_workloads")
            .await?;
        let spec = dep.spec.clone().unwrap_or_default();
        let rss = owned_revisions(cluster, &a.namespace, &a.name, &dep).await?;
        let listing = rss
            .iter()
            .map(|(r, _)| r.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let current = rss.first().map(|(r, _)| *r).unwrap_or(0);
        let previous = rss.get(1).map(|(r, _)| *r).unwrap_or(0);
        let target = match a.to_revision {
            Some(t) => t,
            None if previous > 0 => previous,
            None => {
                return Err(ToolError::Refused(format!(
                    "deployment {}/{} has no previous revision to roll back to (revisions: {listing})",
                    a.namespace, a.name
                )));
            }
        };
        if target == current {
            return Err(ToolError::invalid(format!(
                "revision {target} is already the current revision of {}/{}; revisions: {listing}",
                a.namespace, a.name
            )));
        }
        let Some((_, target_rs)) = rss.iter().find(|(r, _)| *r == target) else {
            return Err(ToolError::NotFound(format!(
                "deployment {}/{} has no revision {target}; its revisions are {listing} (newest first)",
                a.namespace, a.name
            )));
        };
        let target_template = without_pod_template_hash(
            &serde_json::to_value(target_rs.spec.as_ref().and_then(|s| s.template.clone()))
                .map_err(|e| ToolError::Internal(e.to_string()))?,
        );
        let current_template =
            serde_json::to_value(&spec.template).map_err(|e| ToolError::Internal(e.to_string()))?;
        let replicas = i64::from(spec.replicas.unwrap_or(1));
        let mut facts = Facts::new(self.action(), &a.namespace, &[]);
        facts.rollout = Some(RolloutFacts {
            current_revision: current,
            previous_revision: previous,
            target_revision: target,
            rollbacks_last_hour: 0,
        });
        facts.affected = Some(AffectedFacts {
            pods: rollout_unavailable(spec.strategy.as_ref(), replicas),
            total: replicas,
        });
        // every field of the pod template that differs, not only the images: a human
        // approving a rollback must see a privileged flag or a new command
        let mut changes = template_changes(&current_template, &target_template);
        let diff_line = changes_line(&changes);
        changes.push(Change {
            field: "revision".into(),
            before: json!(current),
            after: json!(format!(
                "{} (the template of revision {target})",
                current + 1
            )),
        });
        let target_obj = Target {
            kind: "Deployment".into(),
            namespace: a.namespace.clone(),
            name: a.name.clone(),
            labels: dep.metadata.labels.clone().unwrap_or_default(),
        };
        let summary = format!("revision {current} → revision {target} ({diff_line})");
        let restore = Restore {
            patch: merge_diff(&current_template, &target_template),
            target,
        };
        Ok(Plan::new(target_obj, facts, summary, restore)
            .with_changes(changes)
            .with_meta(&dep.metadata))
    }

    async fn apply(
        &self,
        writer: &Writer,
        plan: &Plan<Restore>,
        dry_run: bool,
    ) -> Result<Value, ToolError> {
        let a = &self.0;
        let mut metadata = plan.metadata_patch();
        metadata["annotations"]["kubernetes.io/change-cause"] = json!(format!(
            "rollback to revision {} by eks-ops-mcp",
            plan.state.target
        ));
        let patch = json!({
            "metadata": metadata,
            "spec": {"template": plan.state.patch.clone()}
        });
        let pp = PatchParams {
            dry_run,
            ..Default::default()
        };
        let dep = writer
            .namespaced::<Deployment>(&a.namespace)
            .patch(&a.name, &pp, &Patch::Merge(patch))
            .await
            .map_err(|e| {
                ToolError::from_kube(
                    format!("rolling back deployment {}/{}", a.namespace, a.name),
                    e,
                )
            })?;
        let template = serde_json::to_value(dep.spec.map(|s| s.template)).unwrap_or_default();
        Ok(json!({"images": images(&template), "dry_run": dry_run}))
    }

    async fn verify(&self, cluster: &Cluster, _plan: &Plan<Restore>) -> Result<Value, ToolError> {
        let a = &self.0;
        let dep = cluster
            .api::<Deployment>(Some(&a.namespace))
            .get(&a.name)
            .await
            .map_err(|e| ToolError::from_kube("reading the deployment back", e))?;
        let template =
            serde_json::to_value(dep.spec.as_ref().map(|s| &s.template)).unwrap_or_default();
        let st = dep.status.unwrap_or_default();
        Ok(json!({
            "revision": dep.metadata.annotations.as_ref().and_then(|a| a.get("deployment.kubernetes.io/revision").cloned()),
            "images": images(&template),
            "replicas": st.replicas.unwrap_or(0),
            "updated_replicas": st.updated_replicas.unwrap_or(0),
            "ready_replicas": st.ready_replicas.unwrap_or(0),
        }))
    }
}

impl Tool for Rollback {
    const NAME: &'static str = "rollback";
    const TITLE: &'static str = "Roll a Deployment back";
    const DESCRIPTION: &'static str = "Return a Deployment to an earlier revision (default: the previous one), as `kubectl rollout undo` does: the target ReplicaSet's pod template is written back. Rolling back to the previous revision runs on its own; an older revision, a second rollback within an hour, or kube-system needs a human. Returns the plan (revision and images before → after), the decision, and the verified result. dry_run=true changes nothing.";
    const READ_ONLY: bool = false;
    const DESTRUCTIVE: bool = true;
    const IDEMPOTENT: bool = false;
    type Args = Args;
    type Output = MutationReport;

    async fn run(ctx: ToolContext, args: Args) -> Result<MutationReport, ToolError> {
        ctx.check_scope(Some(&args.namespace))?;
        check_namespace(&args.namespace)?;
        check_name("name", &args.name)?;
        if args.to_revision.is_some_and(|r| r < 1) {
            return Err(ToolError::invalid(
                "to_revision must be a revision number of 1 or more; see get_rollout_history",
            ));
        }
        ctx.guard()?
            .run(&ctx.cluster, &ctx.caller, &Undo(args))
            .await
    }

    fn summary(out: &MutationReport) -> String {
        out.text()
    }
}
