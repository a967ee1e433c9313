//! `adjust_hpa`: change a HorizontalPodAutoscaler's minReplicas and/or maxReplicas.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Patch, PatchParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::common::{check_name, check_namespace};
use super::scale_deployment::MAX_REPLICAS_ARG;
use super::{Tool, ToolContext};
use crate::cluster::{Cluster, Writer};
use crate::error::ToolError;
use crate::guard::{Change, Mutation, MutationReport, Plan, Scope};
use crate::policy::facts::{AffectedFacts, HpaFacts, ReplicaFacts};
use crate::policy::{Facts, Target};

/// Arguments of `adjust_hpa`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace of the HPA.
    pub namespace: String,
    /// HPA name.
    pub name: String,
    /// New minReplicas (1–10000).
    #[serde(default)]
    pub min_replicas: Option<i64>,
    /// New maxReplicas (1–10000, at least minReplicas).
    #[serde(default)]
    pub max_replicas: Option<i64>,
    /// Evaluate the policies and send a server-side dry run; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The `adjust_hpa` tool.
pub struct AdjustHpa;

struct Adjust(Args);

/// New bounds, for the apply step.
struct Bounds {
    min: i64,
    max: i64,
}

/// Replicas the HPA's target runs now: its spec (what the HPA last set), else the HPA's
/// own status; and the target's kind as the HPA names it.
async fn target_replicas(
    cluster: &Cluster,
    namespace: &str,
    hpa: &HorizontalPodAutoscaler,
) -> Result<(String, i64), ToolError> {
    let r = &hpa
        .spec
        .as_ref()
        .map(|s| s.scale_target_ref.clone())
        .unwrap_or_default();
    let from_status = || {
        hpa.status
            .as_ref()
            .and_then(|s| s.current_replicas)
            .map_or(0, i64::from)
    };
    let what = || format!("reading the HPA's target {} {namespace}/{}", r.kind, r.name);
    let spec_replicas = match r.kind.as_str() {
        "Deployment" => cluster
            .api::<Deployment>(Some(namespace))
            .get_opt(&r.name)
            .await
            .map_err(|e| ToolError::from_kube(what(), e))?
            .and_then(|d| d.spec.and_then(|s| s.replicas)),
        "StatefulSet" => cluster
            .api::<StatefulSet>(Some(namespace))
            .get_opt(&r.name)
            .await
            .map_err(|e| ToolError::from_kube(what(), e))?
            .and_then(|d| d.spec.and_then(|s| s.replicas)),
        "ReplicaSet" => cluster
            .api::<ReplicaSet>(Some(namespace))
            .get_opt(&r.name)
            .await
            .map_err(|e| ToolError::from_kube(what(), e))?
            .and_then(|d| d.spec.and_then(|s| s.replicas)),
        _ => None,
    };
    Ok((
        r.kind.clone(),
        spec_replicas.map_or_else(from_status, i64::from),
    ))
}

impl Mutation for Adjust {
    type State = Bounds;
    fn action(&self) -> &'static str {
        "adjust_hpa"
    }
    fn scope(&self) -> Scope<'_> {
        Scope::Namespaced(&self.0.namespace)
    }
    fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    async fn plan(&self, cluster: &Cluster) -> Result<Plan<Bounds>, ToolError> {
        let a = &self.0;
        let hpa = cluster
            .get_in::<HorizontalPodAutoscaler>(
                &a.namespace,
                &a.name,
                "HorizontalPodAutoscaler",
                "list_workloads shows which workloads have one",
            )
            .await?;
        let spec = hpa.spec.clone().unwrap_or_default();
        let (cur_min, cur_max) = (
            i64::from(spec.min_replicas.unwrap_or(1)),
            i64::from(spec.max_replicas),
        );
        let (new_min, new_max) = (
            a.min_replicas.unwrap_or(cur_min),
            a.max_replicas.unwrap_or(cur_max),
        );
        if new_min > new_max {
            return Err(ToolError::invalid(format!(
                "minReplicas {new_min} would be above maxReplicas {new_max}; change both together so that min ≤ max"
            )));
        }
        let mut changes = Vec::new();
        if new_min != cur_min {
            changes.push(Change {
                field: "spec.minReplicas".into(),
                before: json!(cur_min),
                after: json!(new_min),
            });
        }
        if new_max != cur_max {
            changes.push(Change {
                field: "spec.maxReplicas".into(),
                before: json!(cur_max),
                after: json!(new_max),
            });
        }
        // The change's effect on the running replicas is what the replica rules judge: an HPA
        // brings its target within the new bounds, so lowering min and max together is a
        // scale-down as surely as scale_deployment's.
        let (target_kind, running) = target_replicas(cluster, &a.namespace, &hpa).await?;
        let effective = running.clamp(new_min, new_max);
        if effective != running {
            changes.push(Change {
                field: format!(
                    "{target_kind} {} replicas (through the HPA)",
                    spec.scale_target_ref.name
                ),
                before: json!(running),
                after: json!(effective),
            });
        }
        let mut facts = Facts::new(self.action(), &a.namespace, &[]);
        facts.hpa = Some(HpaFacts {
            current_min: cur_min,
            current_max: cur_max,
            requested_min: new_min,
            requested_max: new_max,
            ceiling: 0,
            target_kind: target_kind.clone(),
        });
        facts.replicas = Some(ReplicaFacts::new(running, effective));
        facts.affected = Some(AffectedFacts {
            pods: (running - effective).max(0),
            total: running,
        });
        facts.workload_kinds.push(target_kind.clone());
        let target = Target {
            kind: "HorizontalPodAutoscaler".into(),
            namespace: a.namespace.clone(),
            name: a.name.clone(),
            labels: hpa.metadata.labels.clone().unwrap_or_default(),
        };
        let summary = format!(
            "min {cur_min} → {new_min}, max {cur_max} → {new_max}; {target_kind} {} replicas {running} → {effective}",
            spec.scale_target_ref.name
        );
        Ok(Plan::new(
            target,
            facts,
            summary,
            Bounds {
                min: new_min,
                max: new_max,
            },
        )
        .with_changes(changes)
        .with_meta(&hpa.metadata))
    }

    async fn apply(
        &self,
        writer: &Writer,
        plan: &Plan<Bounds>,
        dry_run: bool,
    ) -> Result<Value, ToolError> {
        let a = &self.0;
        let mut spec = Map::new();
        spec.insert("minReplicas".into(), json!(plan.state.min));
        spec.insert("maxReplicas".into(), json!(plan.state.max));
        let patch = json!({"metadata": plan.metadata_patch(), "spec": spec});
        let pp = PatchParams {
            dry_run,
            ..Default::default()
        };
        let hpa = writer
            .namespaced::<HorizontalPodAutoscaler>(&a.namespace)
            .patch(&a.name, &pp, &Patch::Merge(patch))
            .await
            .map_err(|e| {
                ToolError::from_kube(format!("updating HPA {}/{}", a.namespace, a.name), e)
            })?;
        let spec = hpa.spec.unwrap_or_default();
        Ok(
            json!({"min_replicas": spec.min_replicas, "max_replicas": spec.max_replicas, "dry_run": dry_run}),
        )
    }

    async fn verify(&self, cluster: &Cluster, _plan: &Plan<Bounds>) -> Result<Value, ToolError> {
        let a = &self.0;
        let hpa = cluster
            .api::<HorizontalPodAutoscaler>(Some(&a.namespace))
            .get(&a.name)
            .await
            .map_err(|e| ToolError::from_kube("reading the HPA back", e))?;
        let spec = hpa.spec.unwrap_or_default();
        Ok(
            json!({"min_replicas": spec.min_replicas, "max_replicas": spec.max_replicas,
                  "current_replicas": hpa.status.and_then(|s| s.current_replicas)}),
        )
    }
}

impl Tool for AdjustHpa {
    const NAME: &'static str = "adjust_hpa";
    const TITLE: &'static str = "Adjust an HPA's bounds";
    const DESCRIPTION: &'static str = "Change a HorizontalPodAutoscaler's minReplicas and/or maxReplicas — the way to scale a workload an HPA owns, e.g. raising minReplicas ahead of forecast traffic. Within ±50% of the current values it runs on its own; larger changes need a human; above the configured replica ceiling is denied. dry_run=true changes nothing.";
    const READ_ONLY: bool = false;
    const DESTRUCTIVE: bool = true;
    const IDEMPOTENT: bool = true;
    type Args = Args;
    type Output = MutationReport;

    async fn run(ctx: ToolContext, args: Args) -> Result<MutationReport, ToolError> {
        ctx.check_scope(Some(&args.namespace))?;
        check_namespace(&args.namespace)?;
        check_name("name", &args.name)?;
        if args.min_replicas.is_none() && args.max_replicas.is_none() {
            return Err(ToolError::invalid(
                "give min_replicas, max_replicas or both",
            ));
        }
        for (arg, v) in [
            ("min_replicas", args.min_replicas),
            ("max_replicas", args.max_replicas),
        ] {
            if let Some(v) = v.filter(|v| !(1..=MAX_REPLICAS_ARG).contains(v)) {
                return Err(ToolError::invalid(format!(
                    "{arg} {v} is out of range: it must be between 1 and {MAX_REPLICAS_ARG}"
                )));
            }
        }
        ctx.guard()?
            .run(&ctx.cluster, &ctx.caller, &Adjust(args))
            .await
    }

    fn summary(out: &MutationReport) -> String {
        out.text()
    }
}
