//! `rightsizing`: recommended CPU and memory requests/limits per container of a workload,
//! from its usage history, beside the current values and the saving.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::ListParams;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{check_name, check_namespace};
use super::get_pod_status::selector_text;
use super::{Tool, ToolContext};
use crate::error::ToolError;
use crate::forecast::rightsizing::{
    self, Profile, Recommended, fmt_cpu, fmt_memory, parse_cpu, parse_memory,
};
use crate::metrics::query::{MetricQuery, WindowArgs, fetch};
use crate::metrics::{Series, values};

/// Most cores one container's usage sample may show: more than any node has, so a larger
/// sample is a query summing over pods, or not in cores.
pub const MAX_CPU_CORES: f64 = 2048.0;
/// Most bytes one container's memory sample may show (64 TiB, more than any node has).
pub const MAX_MEMORY_BYTES: f64 = 64.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0;

/// Check usage samples where they enter: each finite value must be within 0..=`max`
/// (`NaN` is a gap, left to the recommender, which skips it).
fn check_usage(
    series: &[Series],
    arg: &str,
    unit: &str,
    max: f64,
    endpoint: &str,
) -> Result<(), ToolError> {
    for s in series {
        if let Some(&(t, v)) = s
            .points
            .iter()
            .find(|(_, v)| !v.is_nan() && !(0.0..=max).contains(v))
        {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let at = jiff::Timestamp::from_second(t)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| t.to_string());
            return Err(ToolError::invalid(format!(
                "{arg}: {endpoint} answered {} {unit} at {at} for the series {{{}}}; usage \
                 samples must be between 0 and {} {unit} (more than any node has): the query \
                 should give one series per pod (or pod and container), in {unit}",
                values::show(v),
                labels.join(", "),
                values::show(max)
            )));
        }
    }
    Ok(())
}

/// A current request or limit from the spec, when it is a usable number (within 0..=`max`);
/// otherwise a warning and `None`, so that an absurd quantity does not reach the arithmetic.
fn sane_quantity(
    parsed: Option<f64>,
    what: &str,
    max: f64,
    warnings: &mut Vec<String>,
) -> Option<f64> {
    match parsed {
        Some(v) if (0.0..=max).contains(&v) => Some(v),
        Some(v) => {
            warnings.push(format!(
                "the current {what} ({}) is outside 0 to {} and was left out of the comparison",
                values::show(v),
                values::show(max)
            ));
            None
        }
        None => None,
    }
}

/// Arguments of `rightsizing`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace of the workload.
    pub namespace: String,
    /// Deployment or StatefulSet (default Deployment).
    #[serde(default)]
    pub kind: Option<String>,
    /// Workload name.
    pub name: String,
    /// Container (default: each container that has usage data; needed when the queries do not label containers).
    #[serde(default)]
    pub container: Option<String>,
    /// CPU usage in cores, one series per pod (or per pod and container), e.g. PromQL `sum by (pod, container) (rate(container_cpu_usage_seconds_total{namespace="payments", pod=~"payment-api-.*"}[5m]))`.
    pub cpu_query: MetricQuery,
    /// Memory working set in bytes, one series per pod (or per pod and container), e.g. `container_memory_working_set_bytes{namespace="payments", pod=~"payment-api-.*"}`.
    pub memory_query: MetricQuery,
    /// History (default: the last 8 days at 5 minutes, like the VPA's memory window).
    #[serde(default)]
    pub window: Option<WindowArgs>,
    /// `vpa` (the VPA recommender's defaults) or `aggressive` (KRR-style).
    #[serde(default)]
    pub profile: Profile,
}

/// Current and recommended values of one container.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ContainerAdvice {
    /// Container.
    pub container: String,
    /// Current CPU request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<String>,
    /// Current CPU limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<String>,
    /// Current memory request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
    /// Current memory limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    /// Recommended CPU request (and bounds), in cores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Recommended>,
    /// Recommended memory request (and bounds), in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Recommended>,
    /// The recommendation as Kubernetes quantities: requests and limits.
    pub recommended: std::collections::BTreeMap<String, String>,
    /// CPU request change per replica (cores; negative saves).
    pub cpu_delta_per_replica: f64,
    /// Memory request change per replica (bytes; negative saves).
    pub memory_delta_per_replica: f64,
    /// OOM kills seen (they raise the memory recommendation).
    pub oom_kills: usize,
    /// Usage samples used (CPU, memory).
    pub samples: (usize, usize),
    /// Things to know (HPA on CPU, missing data, …).
    pub warnings: Vec<String>,
}

/// Result of `rightsizing`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Namespace.
    pub namespace: String,
    /// Kind of the workload.
    pub kind: String,
    /// Workload.
    pub name: String,
    /// Replicas now.
    pub replicas: i64,
    /// Profile used.
    pub profile: Profile,
    /// Per container.
    pub containers: Vec<ContainerAdvice>,
    /// CPU requests saved over all replicas (cores; negative: more needed).
    pub cpu_saving_cores: f64,
    /// Memory requests saved over all replicas (bytes; negative: more needed).
    pub memory_saving_bytes: f64,
}

/// The `rightsizing` tool.
pub struct Rightsizing;

fn qty(c: &Container, which: &str, res: &str) -> Option<String> {
    let r = c.resources.as_ref()?;
    let m = if which == "requests" {
        r.requests.as_ref()
    } else {
        r.limits.as_ref()
    }?;
    m.get(res).map(|q| q.0.clone())
}

impl Tool for Rightsizing {
    const NAME: &'static str = "rightsizing";
    const TITLE: &'static str = "Right-size containers";
    const DESCRIPTION: &'static str = "Recommended CPU and memory requests/limits per container of a Deployment or StatefulSet from its usage history, with the current values beside them and the saving. Profile vpa uses the Vertical Pod Autoscaler recommender's defaults (CPU p90 with p50/p95 bounds, memory p90 of daily peaks over 8 days, +15%, at least 25m / 250Mi, OOM kills bump memory ×1.2 or +100Mi); aggressive is KRR-style (CPU p95 and no CPU limit, memory max +15%). Warns when an HPA scales on CPU, since the CPU request is its yardstick. Proposes only.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        ctx.check_scope(Some(&args.namespace))?;
        check_namespace(&args.namespace)?;
        check_name("name", &args.name)?;
        let kind = match args.kind.as_deref().unwrap_or("Deployment") {
            k if k.eq_ignore_ascii_case("deployment") => "Deployment",
            k if k.eq_ignore_ascii_case("statefulset") => "StatefulSet",
            k => {
                return Err(ToolError::invalid(format!(
                    "kind {k:?} is not supported; use Deployment or StatefulSet"
                )));
            }
        };
        let (replicas, selector, containers) = if kind == "Deployment" {
            let d = ctx
                .cluster
                .get_in::<Deployment>(&args.namespace, &args.name, kind, "see list_workloads")
                .await?;
            let spec = d.spec.unwrap_or_default();
            (
                i64::from(spec.replicas.unwrap_or(1)),
                selector_text(&spec.selector),
                spec.template.spec.map(|s| s.containers).unwrap_or_default(),
            )
        } else {
            let s = ctx
                .cluster
                .get_in::<StatefulSet>(&args.namespace, &args.name, kind, "see list_workloads")
                .await?;
            let spec = s.spec.unwrap_or_default();
            (
                i64::from(spec.replicas.unwrap_or(1)),
                selector_text(&spec.selector),
                spec.template.spec.map(|s| s.containers).unwrap_or_default(),
            )
        };
        if let Some(c) = &args.container
            && !containers.iter().any(|x| &x.name == c)
        {
            let names: Vec<&str> = containers.iter().map(|x| x.name.as_str()).collect();
            return Err(ToolError::invalid(format!(
                "container {c:?} is not in {kind} {}; its containers are: {}",
                args.name,
                names.join(", ")
            )));
        }
        let pods = ctx
            .cluster
            .api::<Pod>(Some(&args.namespace))
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| ToolError::from_kube("listing the workload's pods", e))?
            .items;
        let hpa_on_cpu = ctx
            .cluster
            .api::<HorizontalPodAutoscaler>(Some(&args.namespace))
            .list(&ListParams::default())
            .await
            .map_err(|e| ToolError::from_kube("listing horizontal pod autoscalers", e))?
            .items
            .into_iter()
            .find(|h| {
                h.spec.as_ref().is_some_and(|s| {
                    s.scale_target_ref.kind == kind
                        && s.scale_target_ref.name == args.name
                        && s.metrics
                            .iter()
                            .flatten()
                            .any(|m| m.resource.as_ref().is_some_and(|r| r.name == "cpu"))
                })
            })
            .and_then(|h| h.metadata.name);
        let w = args
            .window
            .clone()
            .unwrap_or(WindowArgs {
                last: Some("8d".into()),
                step: Some("5m".into()),
                ..Default::default()
            })
            .resolve(
                Duration::from_secs(8 * 86_400),
                Duration::from_secs(35 * 86_400),
            )?;
        let metrics = ctx.metrics()?;
        let scope = ctx.scope.as_deref().map(Vec::as_slice);
        let (cpu_series, endpoint) = fetch(metrics, scope, &args.cpu_query, &w)
            .await
            .map_err(|e| e.about("cpu_query"))?;
        check_usage(&cpu_series, "cpu_query", "cores", MAX_CPU_CORES, &endpoint)?;
        let (mem_series, endpoint) = fetch(metrics, scope, &args.memory_query, &w)
            .await
            .map_err(|e| e.about("memory_query"))?;
        check_usage(
            &mem_series,
            "memory_query",
            "bytes",
            MAX_MEMORY_BYTES,
            &endpoint,
        )?;
        let single = containers.len() == 1;
        let mut out = Vec::new();
        let (mut cpu_saving, mut mem_saving) = (0.0, 0.0);
        for c in containers
            .iter()
            .filter(|c| args.container.as_ref().is_none_or(|n| *n == c.name))
        {
            // a series belongs to this container when its container label says so, or (one
            // container, or container chosen) when it has none
            let mine = |labels: &std::collections::BTreeMap<String, String>| match labels
                .get("container")
            {
                Some(n) => *n == c.name,
                None => single || args.container.is_some(),
            };
            let cpu_samples: Vec<f64> = cpu_series
                .iter()
                .filter(|s| mine(&s.labels))
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .collect();
            let mem_samples: Vec<(i64, f64)> = mem_series
                .iter()
                .filter(|s| mine(&s.labels))
                .flat_map(|s| s.points.iter().copied())
                .collect();
            let mut warnings = Vec::new();
            let mem_limit = sane_quantity(
                qty(c, "limits", "memory").and_then(|q| parse_memory(&q)),
                "memory limit (bytes)",
                MAX_MEMORY_BYTES,
                &mut warnings,
            );
            let ooms: Vec<f64> = pods
                .iter()
                .flat_map(|p| {
                    p.status
                        .iter()
                        .flat_map(|s| s.container_statuses.iter().flatten())
                })
                .filter(|cs| cs.name == c.name)
                .filter(|cs| {
                    cs.last_state
                        .as_ref()
                        .and_then(|l| l.terminated.as_ref())
                        .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"))
                })
                .map(|_| {
                    mem_limit.unwrap_or_else(|| mem_samples.iter().map(|p| p.1).fold(0.0, f64::max))
                })
                .collect();
            if !ooms.is_empty() {
                warnings.push(format!("{} OOM kill(s) among the current pods: the memory recommendation includes the OOM bump", ooms.len()));
            }
            let cpu = rightsizing::cpu(&cpu_samples, args.profile);
            let memory = rightsizing::memory(&mem_samples, &ooms, args.profile);
            if cpu.is_none() {
                warnings.push("no CPU usage data for this container".into());
            }
            if memory.is_none() {
                warnings.push("no memory usage data for this container".into());
            }
            if let (Some(h), Some(_)) = (&hpa_on_cpu, &cpu) {
                warnings.push(format!(
                    "HPA {h} scales on CPU utilisation, which is measured against the CPU request: changing the request changes when it scales — adjust its target together, or leave the CPU request as it is"
                ));
            }
            if mem_samples.len() < 2 * 288 {
                warnings.push("less than 2 days of memory data: the daily peaks are few".into());
            }
            let cur_cpu_req = sane_quantity(
                qty(c, "requests", "cpu").and_then(|q| parse_cpu(&q)),
                "CPU request (cores)",
                MAX_CPU_CORES,
                &mut warnings,
            );
            let cur_cpu_lim = sane_quantity(
                qty(c, "limits", "cpu").and_then(|q| parse_cpu(&q)),
                "CPU limit (cores)",
                MAX_CPU_CORES,
                &mut warnings,
            );
            let cur_mem_req = sane_quantity(
                qty(c, "requests", "memory").and_then(|q| parse_memory(&q)),
                "memory request (bytes)",
                MAX_MEMORY_BYTES,
                &mut warnings,
            );
            let mut rec = std::collections::BTreeMap::new();
            if let Some(r) = &cpu {
                rec.insert("requests.cpu".into(), fmt_cpu(r.target));
                match (args.profile, cur_cpu_req, cur_cpu_lim) {
                    (Profile::Aggressive, _, _) => {
                        rec.insert("limits.cpu".into(), "none (no CPU limit)".into());
                    }
                    (Profile::Vpa, Some(req), Some(lim)) if req > 0.0 => {
                        // the VPA keeps the limit/request ratio; a tiny request with a large
                        // limit would make the ratio, and so the limit, absurd
                        let limit = r.target * lim / req;
                        if limit <= MAX_CPU_CORES {
                            rec.insert("limits.cpu".into(), fmt_cpu(limit));
                        } else {
                            warnings.push(format!(
                                "keeping the current CPU limit/request ratio ({:.0}) would make the limit {limit:.0} cores, more than {MAX_CPU_CORES}: no CPU limit is proposed",
                                lim / req
                            ));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(r) = &memory {
                rec.insert("requests.memory".into(), fmt_memory(r.target));
                // memory limit = request: an over-committed memory limit invites OOM kills
                rec.insert("limits.memory".into(), fmt_memory(r.target));
            }
            let cpu_delta = match (&cpu, cur_cpu_req) {
                (Some(r), Some(cur)) => r.target - cur,
                _ => 0.0,
            };
            let mem_delta = match (&memory, cur_mem_req) {
                (Some(r), Some(cur)) => r.target - cur,
                _ => 0.0,
            };
            cpu_saving -= cpu_delta * replicas as f64;
            mem_saving -= mem_delta * replicas as f64;
            out.push(ContainerAdvice {
                container: c.name.clone(),
                cpu_request: qty(c, "requests", "cpu"),
                cpu_limit: qty(c, "limits", "cpu"),
                memory_request: qty(c, "requests", "memory"),
                memory_limit: qty(c, "limits", "memory"),
                cpu,
                memory,
                recommended: rec,
                cpu_delta_per_replica: cpu_delta,
                memory_delta_per_replica: mem_delta,
                oom_kills: ooms.len(),
                samples: (cpu_samples.len(), mem_samples.len()),
                warnings,
            });
        }
        // inputs are bounded above, so this holds; checked so that no inf or NaN is ever
        // printed as a saving
        for (what, v) in [
            ("cpu_saving_cores", cpu_saving),
            ("memory_saving_bytes", mem_saving),
        ] {
            if !v.is_finite() {
                return Err(ToolError::Internal(format!(
                    "{what} came out as {v}; it must be a finite number"
                )));
            }
        }
        Ok(Output {
            namespace: args.namespace,
            kind: kind.into(),
            name: args.name,
            replicas,
            profile: args.profile,
            containers: out,
            cpu_saving_cores: cpu_saving,
            memory_saving_bytes: mem_saving,
        })
    }

    fn summary(out: &Output) -> String {
        let mut s = format!(
            "{} {}/{} ({} replicas, profile {:?}): saving {:.3} cores and {:.0} MiB of requests.",
            out.kind,
            out.namespace,
            out.name,
            out.replicas,
            out.profile,
            out.cpu_saving_cores,
            out.memory_saving_bytes / (1024.0 * 1024.0)
        );
        for c in &out.containers {
            let rec: Vec<String> = c
                .recommended
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!("\n{}: {}", c.container, rec.join(", ")));
            for w in &c.warnings {
                s.push_str(&format!("\n  warning: {w}"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn absurd_current_quantities_are_left_out_with_a_warning() {
        let mut w = Vec::new();
        assert_eq!(
            sane_quantity(parse_cpu("250m"), "CPU request", MAX_CPU_CORES, &mut w),
            Some(0.25)
        );
        assert_eq!(
            sane_quantity(None, "CPU request", MAX_CPU_CORES, &mut w),
            None
        );
        assert!(w.is_empty());
        // 1e400 parses to inf
        assert_eq!(
            sane_quantity(
                parse_cpu("1e400"),
                "CPU limit (cores)",
                MAX_CPU_CORES,
                &mut w
            ),
            None
        );
        assert_eq!(
            sane_quantity(
                parse_memory("9000000Ti"),
                "memory limit (bytes)",
                MAX_MEMORY_BYTES,
                &mut w
            ),
            None
        );
        assert_eq!(w.len(), 2);
        assert!(
            w[0].contains("CPU limit (cores) (inf) is outside 0 to 2048"),
            "{w:?}"
        );
        assert!(
            w[1].contains("memory limit (bytes) (9.895604649984e18)"),
            "{w:?}"
        );
    }

    #[test]
    fn usage_samples_outside_the_range_are_named() {
        let s = Series {
            labels: BTreeMap::from([("pod".to_string(), "p".to_string())]),
            points: vec![(0, 0.5), (60, f64::NAN), (120, -0.1)],
        };
        let e = check_usage(&[s], "cpu_query", "cores", MAX_CPU_CORES, "prom")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "cpu_query: prom answered -0.1 cores at 1970-01-01T00:02:00Z for the series {pod=p}"
            ),
            "{e}"
        );
        let ok = Series {
            labels: BTreeMap::new(),
            points: vec![(0, 0.5), (60, f64::NAN)],
        };
        check_usage(&[ok], "cpu_query", "cores", MAX_CPU_CORES, "prom").unwrap();
    }
}
