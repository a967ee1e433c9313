//! `recommend_replicas`: from a load forecast to a replica count for a Deployment, proposed
//! as the exact call to make (`scale_deployment`, or `adjust_hpa` when an HPA owns it).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::ListParams;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::common::{check_name, check_namespace};
use super::forecast_load::run_forecast;
use super::history_input::HistoryInput;
use super::{Tool, ToolContext};
use crate::error::ToolError;
use crate::forecast::capacity::{CapacityInput, CapacityPlan, plan};

/// Arguments of `recommend_replicas`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace of the Deployment.
    pub namespace: String,
    /// Deployment name.
    pub name: String,
    /// The load history (the workload's total load, e.g. its request rate).
    pub history: HistoryInput,
    /// Load one pod handles at 100% (same units as the metric, e.g. requests/s per pod).
    pub capacity_per_pod: f64,
    /// Fraction of a pod's capacity to plan for (0.1–1; default: the HPA's CPU target if it has one, else 0.7).
    #[serde(default)]
    pub target_utilization: Option<f64>,
    /// How far ahead to provision (e.g. 30m; default 1h): the proposal covers the highest upper bound in this window.
    #[serde(default)]
    pub lead: Option<String>,
    /// Interval level whose upper bound is sized for (default 0.8: the upper bound is the forecast's 90th percentile). Higher is safer and costs more: in the benchmark (1 h ahead), 0.9 left 4.5% of 5-minute steps under-provisioned with 1.43× the replica-hours of a reactive HPA, 0.8 7.2% with 1.16×, 0.6 10.3% with 1.11×; the HPA itself 30%.
    #[serde(default)]
    pub level: Option<f64>,
    /// Least replicas ever proposed (default 2).
    #[serde(default)]
    pub floor: Option<i64>,
}

/// A tool call the agent can make as is.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProposedCall {
    /// Tool to call.
    pub tool: String,
    /// Its arguments.
    pub arguments: Value,
    /// When to make it.
    pub when: String,
}

/// Result of `recommend_replicas`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Namespace.
    pub namespace: String,
    /// Deployment.
    pub name: String,
    /// Replicas now.
    pub current_replicas: i64,
    /// The HPA that owns the Deployment, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpa: Option<String>,
    /// Highest forecast upper bound in the lead window.
    pub peak_upper: f64,
    /// When that peak is expected (RFC 3339).
    pub peak_at: String,
    /// Forecast model and its backtest MASE.
    pub model: String,
    /// The replica computation.
    pub plan: CapacityPlan,
    /// Target utilisation used.
    pub target_utilization: f64,
    /// `none`, `scale_deployment` or `adjust_hpa`.
    pub action: String,
    /// The call to make now (absent when nothing changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<ProposedCall>,
    /// For an HPA: the call that lowers minReplicas back after the forecast window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert: Option<ProposedCall>,
    /// Forecast warnings.
    pub warnings: Vec<String>,
}

/// Default interval level sized for: its upper bound is the forecast's 90th percentile (the
/// trade-off against 0.6 and 0.9 is measured in BENCHMARKS.md).
pub const SIZING_LEVEL: f64 = 0.8;

/// The `recommend_replicas` tool.
pub struct RecommendReplicas;

impl Tool for RecommendReplicas {
    const NAME: &'static str = "recommend_replicas";
    const TITLE: &'static str = "Recommend replicas ahead of traffic";
    const DESCRIPTION: &'static str = "Turn a load forecast into replicas for a Deployment: ceil(highest upper bound over the lead window / (target utilisation × capacity per pod)), within the HPA's min/max and a floor of 2, and never below the current count (scale-in is left to the reactive autoscaler). Returns the ready-to-make call: scale_deployment, or — when an HPA owns the Deployment, which would undo a direct scale — adjust_hpa raising minReplicas for the forecast window, plus the call that lowers it back. Proposes only; changes nothing.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        ctx.check_scope(Some(&args.namespace))?;
        check_namespace(&args.namespace)?;
        check_name("name", &args.name)?;
        if !(args.capacity_per_pod.is_finite() && args.capacity_per_pod > 0.0) {
            return Err(ToolError::invalid(
                "capacity_per_pod must be a positive number (metric units one pod handles at 100%)",
            ));
        }
        if let Some(u) = args.target_utilization.filter(|u| !(0.1..=1.0).contains(u)) {
            return Err(ToolError::invalid(format!(
                "target_utilization {u} must be between 0.1 and 1"
            )));
        }
        let floor = args.floor.unwrap_or(2);
        if !(1..=1000).contains(&floor) {
            return Err(ToolError::invalid(format!(
                "floor {floor} must be between 1 and 1000"
            )));
        }
        let dep = ctx
            .cluster
            .get_in::<Deployment>(
                &args.namespace,
                &args.name,
                "deployment",
                "see list_workloads",
            )
            .await?;
        let current = i64::from(dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1));
        let hpa = ctx
            .cluster
            .api::<HorizontalPodAutoscaler>(Some(&args.namespace))
            .list(&ListParams::default())
            .await
            .map_err(|e| ToolError::from_kube("listing horizontal pod autoscalers", e))?
            .items
            .into_iter()
            .find(|h| {
                h.spec.as_ref().is_some_and(|s| {
                    s.scale_target_ref.kind == "Deployment" && s.scale_target_ref.name == args.name
                })
            });
        let hpa_spec = hpa.as_ref().and_then(|h| h.spec.clone());
        let hpa_cpu_target = hpa_spec.as_ref().and_then(|s| {
            s.metrics.iter().flatten().find_map(|m| {
                m.resource
                    .as_ref()
                    .filter(|r| r.name == "cpu")
                    .and_then(|r| r.target.average_utilization)
            })
        });
        let target_utilization = args
            .target_utilization
            .unwrap_or_else(|| hpa_cpu_target.map_or(0.7, |t| f64::from(t) / 100.0));
        let lead = args.lead.clone().unwrap_or_else(|| "1h".into());
        let (out, _, steps) = run_forecast(
            &ctx,
            &args.history,
            &lead,
            args.level.or(Some(SIZING_LEVEL)),
            None,
        )
        .await?;
        let n = out.history.values.len();
        let (peak_i, peak_upper) = out.prediction.peak_upper(steps);
        let capacity = plan(CapacityInput {
            peak_upper,
            capacity_per_pod: args.capacity_per_pod,
            target_utilization,
            current,
            hpa_min: hpa_spec
                .as_ref()
                .map(|s| i64::from(s.min_replicas.unwrap_or(1))),
            hpa_max: hpa_spec.as_ref().map(|s| i64::from(s.max_replicas)),
            floor,
        });
        let window_end = jiff::Timestamp::from_second(out.history.time(n + steps))
            .map(|t| t.to_string())
            .unwrap_or_default();
        let (action, call, revert) = match (&hpa, capacity.changes) {
            (_, false) => ("none".to_string(), None, None),
            (Some(h), true) => {
                let hname = h.metadata.name.clone().unwrap_or_default();
                let old_min = hpa_spec.as_ref().and_then(|s| s.min_replicas).unwrap_or(1);
                (
                    "adjust_hpa".to_string(),
                    Some(ProposedCall {
                        tool: "adjust_hpa".into(),
                        arguments: json!({"namespace": args.namespace, "name": hname, "min_replicas": capacity.proposed}),
                        when: "now, ahead of the forecast peak".into(),
                    }),
                    Some(ProposedCall {
                        tool: "adjust_hpa".into(),
                        arguments: json!({"namespace": args.namespace, "name": hname, "min_replicas": old_min}),
                        when: format!("after the forecast window ends ({window_end})"),
                    }),
                )
            }
            (None, true) => (
                "scale_deployment".to_string(),
                Some(ProposedCall {
                    tool: "scale_deployment".into(),
                    arguments: json!({"namespace": args.namespace, "name": args.name, "replicas": capacity.proposed}),
                    when: "now, ahead of the forecast peak".into(),
                }),
                None,
            ),
        };
        Ok(Output {
            namespace: args.namespace,
            name: args.name,
            current_replicas: current,
            hpa: hpa.and_then(|h| h.metadata.name),
            peak_upper,
            peak_at: jiff::Timestamp::from_second(out.history.time(n + peak_i))
                .map(|t| t.to_string())
                .unwrap_or_default(),
            model: format!(
                "{:?}{}",
                out.model,
                out.backtest
                    .as_ref()
                    .map(|b| format!(" (backtest MASE {:.3})", b.mase))
                    .unwrap_or_default()
            ),
            plan: capacity,
            target_utilization,
            action,
            call,
            revert,
            warnings: out.warnings,
        })
    }

    fn summary(out: &Output) -> String {
        let mut s = format!(
            "{}/{}: {} → {} replicas (peak upper {:.3} at {}); action {}.",
            out.namespace,
            out.name,
            out.current_replicas,
            out.plan.proposed,
            out.peak_upper,
            out.peak_at,
            out.action
        );
        for r in &out.plan.reasoning {
            s.push_str(&format!("\n- {r}"));
        }
        s
    }
}
