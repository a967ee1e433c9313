//! `scale_deployment`: set a Deployment's replicas, through the guard.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{ListParams, Patch, PatchParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::{check_name, check_namespace};
use super::{Tool, ToolContext};
use crate::cluster::{Cluster, Writer};
use crate::error::ToolError;
use crate::guard::{Change, Mutation, MutationReport, Plan, Scope};
use crate::policy::facts::{AffectedFacts, ReplicaFacts};
use crate::policy::{Facts, Target};

/// Largest replica count accepted as an argument (the policy ceiling is usually lower).
pub const MAX_REPLICAS_ARG: i64 = 10_000;

/// Arguments of `scale_deployment`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace of the Deployment.
    pub namespace: String,
    /// Deployment name.
    pub name: String,
    /// Desired replicas (0–10000; the policies decide what runs without a human).
    pub replicas: i64,
    /// Evaluate the policies and send a server-side dry run; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The `scale_deployment` tool.
pub struct ScaleDeployment;

/// The mutation behind `scale_deployment`.
pub(crate) struct Scale(pub(crate) Args);

impl Mutation for Scale {
    type State = ();
    fn action(&self) -> &'static str {
        "scale_deployment"
    }
    fn scope(&self) -> Scope<'_> {
        Scope::Namespaced(&self.0.namespace)
    }
    fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    async fn plan(&self, cluster: &Cluster) -> Result<Plan<()>, ToolError> {
        let a = &self.0;
        let dep = cluster
            .get_in::<Deployment>(&a.namespace, &a.name, "deployment", "see list_workloads")
            .await?;
        // An HPA would undo a direct scale within seconds: refuse, and say what to do instead.
        let hpas = cluster
            .api::<HorizontalPodAutoscaler>(Some(&a.namespace))
            .list(&ListParams::default())
            .await
            .map_err(|e| ToolError::from_kube("listing horizontal pod autoscalers", e))?;
        if let Some(h) = hpas.items.iter().find(|h| {
            h.spec.as_ref().is_some_and(|s| {
                s.scale_target_ref.kind == "Deployment" && s.scale_target_ref.name == a.name
            })
        }) {
            let spec = h.spec.clone().unwrap_or_default();
            return Err(ToolError::Refused(format!(
                "deployment {}/{} is scaled by HorizontalPodAutoscaler {} (min {}, max {}); a direct scale would be undone within seconds. Use adjust_hpa to change its minReplicas/maxReplicas instead",
                a.namespace,
                a.name,
                h.metadata.name.clone().unwrap_or_default(),
                spec.min_replicas.unwrap_or(1),
                spec.max_replicas
            )));
        }
        let current = i64::from(dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1));
        let mut facts = Facts::new(self.action(), &a.namespace, &[]);
        facts.replicas = Some(ReplicaFacts::new(current, a.replicas));
        facts.affected = Some(AffectedFacts {
            pods: (current - a.replicas).max(0),
            total: current,
        });
        let target = Target {
            kind: "Deployment".into(),
            namespace: a.namespace.clone(),
            name: a.name.clone(),
            labels: dep.metadata.labels.clone().unwrap_or_default(),
        };
        Ok(Plan::new(
            target,
            facts,
            format!("replicas {current} → {}", a.replicas),
            (),
        )
        .with_changes(vec![Change {
            field: "spec.replicas".into(),
            before: json!(current),
            after: json!(a.replicas),
        }])
        .with_meta(&dep.metadata))
    }

    async fn apply(
        &self,
        writer: &Writer,
        plan: &Plan<()>,
        dry_run: bool,
    ) -> Result<Value, ToolError> {
        let a = &self.0;
        let api = writer.namespaced::<Deployment>(&a.namespace);
        // the Deployment itself, not its scale subresource: the change ledger rides along
        let patch = json!({"metadata": plan.metadata_patch(), "spec": {"replicas": a.replicas}});
        let pp = PatchParams {
            dry_run,
            ..Default::default()
        };
        let dep = api
            .patch(&a.name, &pp, &Patch::Merge(patch))
            .await
            .map_err(|e| {
                ToolError::from_kube(format!("scaling deployment {}/{}", a.namespace, a.name), e)
            })?;
        Ok(json!({"spec_replicas": dep.spec.and_then(|s| s.replicas), "dry_run": dry_run}))
    }

    async fn verify(&self, cluster: &Cluster, _plan: &Plan<()>) -> Result<Value, ToolError> {
        let a = &self.0;
        let dep = cluster
            .api::<Deployment>(Some(&a.namespace))
            .get(&a.name)
            .await
            .map_err(|e| ToolError::from_kube("reading the deployment back", e))?;
        let st = dep.status.unwrap_or_default();
        Ok(json!({
            "spec_replicas": dep.spec.and_then(|s| s.replicas),
            "replicas": st.replicas.unwrap_or(0),
            "ready_replicas": st.ready_replicas.unwrap_or(0),
            "updated_replicas": st.updated_replicas.unwrap_or(0),
        }))
    }
}

impl Tool for ScaleDeployment {
    const NAME: &'static str = "scale_deployment";
    const TITLE: &'static str = "Scale a Deployment";
    const DESCRIPTION: &'static str = "Set a Deployment's replicas, checked against the policies on live facts: scaling down by less than half or up to twice the current replicas runs on its own; half or more down, to zero, or beyond twice needs a human; above the configured ceiling is denied. Refuses a Deployment that an HPA scales (use adjust_hpa). Returns the plan (before → after), the decision with the deciding policy ids, and the verified result. dry_run=true changes nothing.";
    const READ_ONLY: bool = false;
    const DESTRUCTIVE: bool = true;
    const IDEMPOTENT: bool = true;
    type Args = Args;
    type Output = MutationReport;

    async fn run(ctx: ToolContext, args: Args) -> Result<MutationReport, ToolError> {
        ctx.check_scope(Some(&args.namespace))?;
        check_namespace(&args.namespace)?;
        check_name("name", &args.name)?;
        if !(0..=MAX_REPLICAS_ARG).contains(&args.replicas) {
            return Err(ToolError::invalid(format!(
                "replicas {} is out of range: it must be between 0 and {MAX_REPLICAS_ARG}",
                args.replicas
            )));
        }
        let guard = ctx.guard()?;
        guard.run(&ctx.cluster, &ctx.caller, &Scale(args)).await
    }

    fn summary(out: &MutationReport) -> String {
        out.text()
    }
}
