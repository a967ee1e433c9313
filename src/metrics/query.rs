//! The metric query every metrics and forecasting tool takes — a source (`prometheus` or
//! `cloudwatch`) with its query — and the time window, with the checks made before anything
//! is sent.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cloudwatch::CloudWatchQuery;
use super::{MetricsError, Series, Window};

/// Where a metric comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Prometheus or Amazon Managed Service for Prometheus (PromQL).
    Prometheus,
    /// Amazon CloudWatch (`GetMetricData`).
    Cloudwatch,
}

/// A metric to read: `source` and, for it, `promql` or `cloudwatch`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricQuery {
    /// `prometheus` or `cloudwatch`.
    pub source: Source,
    /// PromQL, with source `prometheus`, e.g. `sum(rate(http_requests_total{service="checkout"}[5m]))`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promql: Option<String>,
    /// The CloudWatch metric or expression, with source `cloudwatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudwatch: Option<CloudWatchQuery>,
}

impl MetricQuery {
    /// Check that the query matches its source.
    pub fn validate(&self) -> Result<(), MetricsError> {
        match self.source {
            Source::Prometheus => {
                if self.cloudwatch.is_some() {
                    return Err(MetricsError::Invalid(
                        "source prometheus takes promql, not cloudwatch".into(),
                    ));
                }
                match self.promql.as_deref().map(str::trim) {
                    Some(q) if !q.is_empty() => Ok(()),
                    _ => Err(MetricsError::Invalid(
                        "source prometheus needs a non-empty promql query".into(),
                    )),
                }
            }
            Source::Cloudwatch => {
                if self.promql.is_some() {
                    return Err(MetricsError::Invalid(
                        "source cloudwatch takes cloudwatch {…}, not promql".into(),
                    ));
                }
                self.cloudwatch
                    .as_ref()
                    .ok_or_else(|| {
                        MetricsError::Invalid(
                            "source cloudwatch needs cloudwatch: {namespace, metric_name, dimensions, stat} or {expression, metrics}".into(),
                        )
                    })?
                    .validate()
            }
        }
    }

    /// Check that the query reads only the `allowed` namespaces (a namespace-scoped server)
    /// and, for CloudWatch, only `cluster` when it is known; `None` (an unscoped server)
    /// allows everything.
    pub fn check_scope(
        &self,
        allowed: Option<&[String]>,
        cluster: Option<&str>,
    ) -> Result<(), MetricsError> {
        let Some(allowed) = allowed else {
            return Ok(());
        };
        match self.source {
            Source::Prometheus => {
                super::promql_scope::check(self.promql.as_deref().unwrap_or_default(), allowed)
            }
            Source::Cloudwatch => match &self.cloudwatch {
                Some(q) => super::cloudwatch_scope::check(q, allowed, cluster),
                None => Err(MetricsError::Invalid(
                    "source cloudwatch needs cloudwatch: {…}".into(),
                )),
            },
        }
    }
}

/// Time window arguments: `start`/`end` (RFC 3339) or `last` (duration), and `step`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowArgs {
    /// Start, RFC 3339 (e.g. 2026-11-29T10:00:00Z). Give start and end, or last.
    #[serde(default)]
    pub start: Option<String>,
    /// End, RFC 3339 (default: now).
    #[serde(default)]
    pub end: Option<String>,
    /// Window ending now, e.g. 1h, 6h, 7d.
    #[serde(default)]
    pub last: Option<String>,
    /// Resolution (Prometheus step / CloudWatch period), e.g. 1m, 5m; CloudWatch periods are
    /// multiples of 60 s. Default: the window / 300, at least 60 s.
    #[serde(default)]
    pub step: Option<String>,
}

fn parse_ts(arg: &str, s: &str) -> Result<Timestamp, MetricsError> {
    s.parse::<Timestamp>().map_err(|e| {
        MetricsError::Invalid(format!(
            "{arg} {s:?} is not an RFC 3339 time (e.g. 2026-11-29T10:00:00Z): {e}"
        ))
    })
}

fn parse_dur(arg: &str, s: &str) -> Result<Duration, MetricsError> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        MetricsError::Invalid(format!(
            "{arg} {s:?} is not a duration ({e}); write it like 5m, 1h or 7d"
        ))
    })
}

impl WindowArgs {
    /// Resolve to a window no longer than `max`, with `default_last` when nothing is given.
    pub fn resolve(&self, default_last: Duration, max: Duration) -> Result<Window, MetricsError> {
        let now = Timestamp::now();
        let (start, end) = match (&self.start, &self.end, &self.last) {
            (Some(_), _, Some(_)) => {
                return Err(MetricsError::Invalid(
                    "give start (and end) or last, not both".into(),
                ));
            }
            (Some(s), e, None) => {
                let end = e
                    .as_deref()
                    .map(|e| parse_ts("end", e))
                    .transpose()?
                    .unwrap_or(now);
                (parse_ts("start", s)?, end)
            }
            (None, Some(_), _) => {
                return Err(MetricsError::Invalid(
                    "end needs start (or use last)".into(),
                ));
            }
            (None, None, last) => {
                let d = last
                    .as_deref()
                    .map(|l| parse_dur("last", l))
                    .transpose()?
                    .unwrap_or(default_last);
                let d = SignedDuration::try_from(d)
                    .map_err(|e| MetricsError::Invalid(e.to_string()))?;
                (now - d, now)
            }
        };
        if end <= start {
            return Err(MetricsError::Invalid(format!(
                "end {end} must be after start {start}"
            )));
        }
        let span = Duration::from_secs((end.as_second() - start.as_second()).max(0) as u64);
        if span > max {
            return Err(MetricsError::Invalid(format!(
                "the window is {} long; at most {} is allowed",
                humantime::format_duration(span),
                humantime::format_duration(max)
            )));
        }
        let step = match &self.step {
            Some(s) => parse_dur("step", s)?,
            None => Duration::from_secs(((span.as_secs() / 300).max(60)).div_ceil(60) * 60),
        };
        if step.is_zero() {
            return Err(MetricsError::Invalid("step must be more than 0".into()));
        }
        Ok(Window { start, end, step })
    }
}

/// Read a range of a metric from whichever source the query names, after checking it
/// against the server's namespace scope (`None`: not scoped).
pub async fn fetch(
    metrics: &super::Metrics,
    scope: Option<&[String]>,
    q: &MetricQuery,
    w: &Window,
) -> Result<(Vec<Series>, String), MetricsError> {
    q.validate()?;
    q.check_scope(scope, metrics.cloudwatch_cluster())?;
    match q.source {
        Source::Prometheus => {
            let p = metrics.prometheus.as_ref().ok_or_else(|| {
                MetricsError::NotConfigured("no Prometheus is configured; start the server with --prometheus-url (or --sandbox)".into())
            })?;
            Ok((
                p.range(q.promql.as_deref().unwrap_or_default(), w).await?,
                p.endpoint().to_string(),
            ))
        }
        Source::Cloudwatch => {
            let c = metrics.cloudwatch.as_ref().ok_or_else(|| {
                MetricsError::NotConfigured("CloudWatch is not configured; start the server with --cloudwatch (region from the AWS configuration or --aws-region)".into())
            })?;
            let query = q
                .cloudwatch
                .as_ref()
                .ok_or_else(|| MetricsError::Invalid("cloudwatch query missing".into()))?;
            Ok((c.range(query, w).await?, c.endpoint().to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let day = Duration::from_secs(86_400);
        let w = WindowArgs {
            last: Some("6h".into()),
            ..Default::default()
        }
        .resolve(day, day)
        .unwrap();
        assert_eq!(w.end.as_second() - w.start.as_second(), 6 * 3600);
        assert_eq!(w.step, Duration::from_secs(120));
        let e = WindowArgs {
            start: Some("2026-01-02T00:00:00Z".into()),
            end: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        }
        .resolve(day, day)
        .unwrap_err()
        .to_string();
        assert!(e.contains("must be after start"), "{e}");
        let e = WindowArgs {
            last: Some("30d".into()),
            ..Default::default()
        }
        .resolve(day, day)
        .unwrap_err()
        .to_string();
        assert!(e.contains("at most 1day"), "{e}");
        let e = WindowArgs {
            last: Some("soon".into()),
            ..Default::default()
        }
        .resolve(day, day)
        .unwrap_err()
        .to_string();
        assert!(e.contains("5m"), "{e}");
        assert!(
            WindowArgs {
                last: Some("1h".into()),
                start: Some("2026-01-01T00:00:00Z".into()),
                ..Default::default()
            }
            .resolve(day, day)
            .is_err()
        );
    }

    #[test]
    fn query_forms() {
        let q: MetricQuery =
            serde_json::from_value(serde_json::json!({"source": "prometheus", "promql": "up"}))
                .unwrap();
        assert!(q.validate().is_ok());
        let q: MetricQuery =
            serde_json::from_value(serde_json::json!({"source": "prometheus", "promql": "  "}))
                .unwrap();
        assert!(q.validate().is_err());
        let q: MetricQuery =
            serde_json::from_value(serde_json::json!({"source": "cloudwatch"})).unwrap();
        assert!(
            q.validate()
                .unwrap_err()
                .to_string()
                .contains("needs cloudwatch")
        );
        assert!(
            serde_json::from_value::<MetricQuery>(serde_json::json!({"source": "datadog"}))
                .is_err()
        );
    }
}
