//! Whether a CloudWatch query, or an alarm, concerns only the namespaces a scoped server
//! allows.
//!
//! CloudWatch has no notion of a Kubernetes namespace except as a dimension, and only
//! Container Insights is known to publish it as one (`Namespace`, beside `ClusterName`).
//! So on a namespace-scoped server a metric is read only when its CloudWatch namespace is
//! Container Insights' and its `Namespace` dimension names an allowed namespace (CloudWatch
//! matches the exact set of dimensions, so a metric with that dimension is that namespace's
//! metric). An expression may combine only its own metrics (by id) with metric-math
//! functions that compute over them: `SEARCH`, Metrics Insights `SELECT`, `LAMBDA`,
//! `INSIGHT_RULE_METRIC`, `DB_PERF_INSIGHTS` and `SERVICE_QUOTA` read data that the
//! expression does not list, so they are refused.
//!
//! `ClusterName` is checked when the server was told the name CloudWatch knows its cluster
//! by (`--cloudwatch-cluster-name`); without it a `Namespace` of the same name in another
//! cluster of the same account is read too (the README says so).

use std::collections::BTreeMap;

use super::MetricsError;
use super::cloudwatch::{Alarm, AlarmMetric, CloudWatchQuery};

/// CloudWatch namespaces whose `Namespace` dimension is the Kubernetes namespace.
pub const KUBERNETES_CW_NAMESPACES: [&str; 2] =
    ["ContainerInsights", "ContainerInsights/Prometheus"];
/// The dimension Container Insights names the Kubernetes namespace with.
pub const NAMESPACE_DIMENSION: &str = "Namespace";
/// The dimension Container Insights names the cluster with.
pub const CLUSTER_DIMENSION: &str = "ClusterName";

/// Metric-math functions and keywords that compute only over the expression's own metrics.
const PURE_FUNCTIONS: [&str; 42] = [
    "ABS",
    "ANOMALY_DETECTION_BAND",
    "AVG",
    "CEIL",
    "CONCAT",
    "DATAPOINT_COUNT",
    "DATE",
    "DAY",
    "DIFF",
    "DIFF_TIME",
    "EPOCH",
    "FILL",
    "FIRST",
    "FLOOR",
    "HOUR",
    "IF",
    "LAST",
    "LOG",
    "LOG10",
    "MAX",
    "METRIC_COUNT",
    "METRICS",
    "MIN",
    "MINUTE",
    "MONTH",
    "PERIOD",
    "RATE",
    "REMOVE_EMPTY",
    "RUNNING_SUM",
    "SLICE",
    "SORT",
    "STDDEV",
    "SUM",
    "TIME_SERIES",
    "YEAR",
    "AND",
    "OR",
    "NOT",
    "ASC",
    "DESC",
    "REPEAT",
    "LINEAR",
];

/// Check a `GetMetricData` query against the allowed namespaces (and the cluster's
/// `ClusterName`, when known).
pub fn check(
    q: &CloudWatchQuery,
    allowed: &[String],
    cluster: Option<&str>,
) -> Result<(), MetricsError> {
    let scope = Scope { allowed, cluster };
    match &q.expression {
        None => scope.check_metric(
            q.namespace.as_deref().unwrap_or_default(),
            &q.dimensions,
            "the metric",
        ),
        Some(expression) => {
            for (i, m) in q.metrics.iter().enumerate() {
                scope.check_metric(
                    &m.namespace,
                    &m.dimensions,
                    &format!("metrics[{i}] ({})", m.id),
                )?;
            }
            let ids: Vec<&str> = q.metrics.iter().map(|m| m.id.as_str()).collect();
            check_expression(expression, &ids)
        }
    }
}

/// Whether an alarm watches only metrics of the allowed namespaces (composite alarms,
/// whose rule names other alarms, never do).
pub fn alarm_in_scope(a: &Alarm, allowed: &[String], cluster: Option<&str>) -> bool {
    let scope = Scope { allowed, cluster };
    if a.kind == "composite" || a.rule.is_some() {
        return false;
    }
    let metrics: Vec<&AlarmMetric> = a
        .metric
        .iter()
        .chain(a.metrics.iter().filter_map(|q| q.metric.as_ref()))
        .collect();
    if metrics.is_empty() {
        return false;
    }
    let ids: Vec<&str> = a.metrics.iter().map(|q| q.id.as_str()).collect();
    metrics
        .iter()
        .all(|m| scope.check_metric(&m.namespace, &m.dimensions, "").is_ok())
        && a.metrics
            .iter()
            .filter_map(|q| q.expression.as_deref())
            .all(|e| check_expression(e, &ids).is_ok())
}

/// What a scoped server may read.
struct Scope<'a> {
    allowed: &'a [String],
    cluster: Option<&'a str>,
}

impl Scope<'_> {
    fn check_metric(
        &self,
        cw_namespace: &str,
        dimensions: &BTreeMap<String, String>,
        what: &str,
    ) -> Result<(), MetricsError> {
        let allowed = self.allowed;
        let wanted = || {
            format!(
                "on this server, limited to the namespaces {}, CloudWatch metrics are read only \
                 from Container Insights ({}) with a {NAMESPACE_DIMENSION} dimension naming \
                 one of them{}",
                allowed.join(", "),
                KUBERNETES_CW_NAMESPACES.join(", "),
                self.cluster
                    .map(|c| format!(" and {CLUSTER_DIMENSION}={c}"))
                    .unwrap_or_default()
            )
        };
        if !KUBERNETES_CW_NAMESPACES.contains(&cw_namespace) {
            return Err(MetricsError::OutOfScope(format!(
                "{what} is in the CloudWatch namespace `{cw_namespace}`, which has no \
                 Kubernetes namespace dimension; {}",
                wanted()
            )));
        }
        if let Some(cluster) = self.cluster {
            match dimensions.get(CLUSTER_DIMENSION) {
                Some(c) if c == cluster => {}
                Some(c) => {
                    return Err(MetricsError::OutOfScope(format!(
                        "{what} has {CLUSTER_DIMENSION}={c}, another cluster; {}",
                        wanted()
                    )));
                }
                None => {
                    return Err(MetricsError::OutOfScope(format!(
                        "{what} has no {CLUSTER_DIMENSION} dimension; {}",
                        wanted()
                    )));
                }
            }
        }
        match dimensions.get(NAMESPACE_DIMENSION) {
            Some(ns) if allowed.iter().any(|a| a == ns) => Ok(()),
            Some(ns) => Err(MetricsError::OutOfScope(format!(
                "{what} has {NAMESPACE_DIMENSION}={ns}; {}",
                wanted()
            ))),
            None => Err(MetricsError::OutOfScope(format!(
                "{what} has no {NAMESPACE_DIMENSION} dimension, so it is not limited to a \
                 namespace; {}",
                wanted()
            ))),
        }
    }
}

/// An expression is scoped when every name in it is one of its metrics' ids or a pure
/// metric-math function or keyword; string literals (labels, `METRICS("m")` filters) and
/// numbers are skipped.
fn check_expression(expression: &str, ids: &[&str]) -> Result<(), MetricsError> {
    let mut chars = expression.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c == '"' || c == '\'' {
            let mut escaped = false;
            for (_, d) in chars.by_ref() {
                match d {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    _ if d == c => break,
                    _ => {}
                }
            }
        } else if c.is_ascii_digit() {
            // a number, with its fraction and exponent (`1.5e3`)
            while chars
                .peek()
                .is_some_and(|(_, d)| d.is_ascii_alphanumeric() || *d == '.')
            {
                chars.next();
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut end = start + c.len_utf8();
            while let Some(&(i, d)) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' {
                    end = i + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let name = &expression[start..end];
            if !ids.contains(&name) && !PURE_FUNCTIONS.contains(&name.to_ascii_uppercase().as_str())
            {
                return Err(MetricsError::OutOfScope(format!(
                    "the expression uses `{name}`, which is neither one of its metrics ({}) nor \
                     a metric-math function over them; on a namespace-scoped server an \
                     expression may only combine its own metrics (SEARCH, SELECT, LAMBDA, \
                     INSIGHT_RULE_METRIC, DB_PERF_INSIGHTS and SERVICE_QUOTA read metrics it \
                     does not list)",
                    if ids.is_empty() {
                        "it lists none".to_string()
                    } else {
                        ids.join(", ")
                    }
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::cloudwatch::{AlarmQuery, CloudWatchMetric};

    fn allowed() -> Vec<String> {
        vec!["shop".into()]
    }

    fn pod_cpu(ns: Option<&str>) -> CloudWatchQuery {
        let q = CloudWatchQuery::metric("ContainerInsights", "pod_cpu_utilization", "Average")
            .with_dimension("ClusterName", "prod");
        match ns {
            Some(ns) => q.with_dimension("Namespace", ns),
            None => q,
        }
    }

    fn metric(id: &str, ns: &str) -> CloudWatchMetric {
        CloudWatchMetric {
            id: id.into(),
            namespace: "ContainerInsights".into(),
            metric_name: "pod_cpu_utilization".into(),
            dimensions: [("ClusterName", "prod"), ("Namespace", ns)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stat: "Average".into(),
            return_data: false,
        }
    }

    fn refused(q: &CloudWatchQuery, want: &str) {
        let e = check(q, &allowed(), None).expect_err(want);
        assert!(matches!(e, MetricsError::OutOfScope(_)), "{e}");
        assert!(e.to_string().contains(want), "{e}");
    }

    #[test]
    fn metrics_need_container_insights_and_an_allowed_namespace_dimension() {
        check(&pod_cpu(Some("shop")), &allowed(), None).unwrap();
        let q = pod_cpu(Some("shop"));
        let q = CloudWatchQuery {
            namespace: Some("ContainerInsights/Prometheus".into()),
            ..q
        };
        check(&q, &allowed(), None).unwrap();
        refused(&pod_cpu(Some("payments")), "has Namespace=payments");
        refused(&pod_cpu(None), "has no Namespace dimension");
        refused(
            &CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "Average")
                .with_dimension("Namespace", "shop"),
            "CloudWatch namespace `AWS/EC2`",
        );
    }

    #[test]
    fn a_known_cluster_name_must_be_the_metric_s() {
        let a = allowed();
        check(&pod_cpu(Some("shop")), &a, Some("prod")).unwrap();
        let e = check(&pod_cpu(Some("shop")), &a, Some("staging"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has ClusterName=prod, another cluster")
                && e.contains("and ClusterName=staging"),
            "{e}"
        );
        let q = CloudWatchQuery::metric("ContainerInsights", "pod_cpu_utilization", "Average")
            .with_dimension("Namespace", "shop");
        let e = check(&q, &a, Some("prod")).unwrap_err().to_string();
        assert!(e.contains("has no ClusterName dimension"), "{e}");
        let mut m = alarm_metric("ContainerInsights", Some("shop"));
        assert!(!alarm_in_scope(
            &alarm(Some(m.clone()), vec![]),
            &a,
            Some("prod")
        ));
        m.dimensions.insert("ClusterName".into(), "prod".into());
        assert!(alarm_in_scope(&alarm(Some(m), vec![]), &a, Some("prod")));
    }

    #[test]
    fn expressions_may_only_compute_over_their_own_scoped_metrics() {
        let q = CloudWatchQuery::expression(
            r#"IF(m1 > 0, m2 / m1 * 100, 0) + ANOMALY_DETECTION_BAND(m1, 2) + SUM(METRICS("m")) + FILL(m1, REPEAT) + 1.5e3"#,
            vec![metric("m1", "shop"), metric("m2", "shop")],
        );
        check(&q, &allowed(), None).unwrap();
        refused(
            &CloudWatchQuery::expression(
                r#"SEARCH('{ContainerInsights,Namespace} shop', 'Average', 300)"#,
                vec![],
            ),
            "uses `SEARCH`",
        );
        refused(
            &CloudWatchQuery::expression(
                r#"SELECT AVG(pod_cpu_utilization) FROM ContainerInsights"#,
                vec![],
            ),
            "uses `SELECT`",
        );
        refused(
            &CloudWatchQuery::expression("m1 + m3", vec![metric("m1", "shop")]),
            "uses `m3`",
        );
        refused(
            &CloudWatchQuery::expression(
                "m1 + m2",
                vec![metric("m1", "shop"), metric("m2", "data")],
            ),
            "metrics[1] (m2) has Namespace=data",
        );
        refused(
            &CloudWatchQuery::expression(r#"LAMBDA("fn", m1)"#, vec![metric("m1", "shop")]),
            "uses `LAMBDA`",
        );
    }

    fn alarm(metric: Option<AlarmMetric>, metrics: Vec<AlarmQuery>) -> Alarm {
        Alarm {
            name: "a".into(),
            kind: "metric".into(),
            state: "OK".into(),
            state_reason: None,
            state_updated: None,
            description: None,
            metric,
            threshold: Some(1.0),
            comparison: None,
            evaluation_periods: None,
            datapoints_to_alarm: None,
            metrics,
            threshold_metric_id: None,
            rule: None,
        }
    }

    fn alarm_metric(cw_ns: &str, ns: Option<&str>) -> AlarmMetric {
        AlarmMetric {
            namespace: cw_ns.into(),
            metric_name: "pod_cpu_utilization".into(),
            dimensions: ns
                .map(|n| BTreeMap::from([("Namespace".to_string(), n.to_string())]))
                .unwrap_or_default(),
            stat: Some("Average".into()),
            period: Some(60),
            unit: None,
        }
    }

    #[test]
    fn alarms_are_in_scope_only_when_every_metric_is() {
        let a = allowed();
        assert!(alarm_in_scope(
            &alarm(
                Some(alarm_metric("ContainerInsights", Some("shop"))),
                vec![]
            ),
            &a,
            None
        ));
        assert!(!alarm_in_scope(
            &alarm(
                Some(alarm_metric("ContainerInsights", Some("data"))),
                vec![]
            ),
            &a,
            None
        ));
        assert!(!alarm_in_scope(
            &alarm(Some(alarm_metric("AWS/EC2", None)), vec![]),
            &a,
            None
        ));
        let q = |id: &str, e: Option<&str>, m: Option<AlarmMetric>| AlarmQuery {
            id: id.into(),
            expression: e.map(str::to_string),
            metric: m,
            label: None,
            return_data: e.is_some(),
        };
        let band = alarm(
            None,
            vec![
                q(
                    "m1",
                    None,
                    Some(alarm_metric("ContainerInsights", Some("shop"))),
                ),
                q("ad1", Some("ANOMALY_DETECTION_BAND(m1, 2)"), None),
            ],
        );
        assert!(alarm_in_scope(&band, &a, None));
        let mixed = alarm(
            None,
            vec![
                q(
                    "m1",
                    None,
                    Some(alarm_metric("ContainerInsights", Some("shop"))),
                ),
                q(
                    "m2",
                    None,
                    Some(alarm_metric("ContainerInsights", Some("data"))),
                ),
                q("e1", Some("m1 + m2"), None),
            ],
        );
        assert!(!alarm_in_scope(&mixed, &a, None));
        let mut composite = alarm(None, vec![]);
        composite.kind = "composite".into();
        composite.rule = Some("ALARM(a)".into());
        assert!(!alarm_in_scope(&composite, &a, None));
        assert!(!alarm_in_scope(&alarm(None, vec![]), &a, None));
    }
}
