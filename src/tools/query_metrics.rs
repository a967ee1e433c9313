//! `query_metrics`: a metric over a time window from Prometheus/AMP or CloudWatch, bounded
//! (downsampled with min/max/avg kept) and summarised.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::bounded;
use super::{Tool, ToolContext};
use crate::error::ToolError;
use crate::metrics::query::{MetricQuery, Source, WindowArgs, fetch};
use crate::metrics::summary::{Bucket, Summary, downsample, summarize, usable};
use crate::metrics::{MetricsError, Series};

/// Longest window `query_metrics` reads.
pub const MAX_WINDOW: Duration = Duration::from_secs(90 * 86_400);

/// Arguments of `query_metrics`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The metric: `{"source": "prometheus", "promql": "…"}` or `{"source": "cloudwatch", "cloudwatch": {…}}`.
    pub query: MetricQuery,
    /// The window and resolution: `{"last": "6h", "step": "5m"}` or `{"start": "…", "end": "…"}` (default: the last hour).
    #[serde(default)]
    pub window: WindowArgs,
    /// Prometheus only: evaluate at one instant (the window's end) instead of over the window.
    #[serde(default)]
    pub instant: bool,
    /// Points per series at most (10–5000, default 300); longer series are downsampled keeping min, max and average.
    #[serde(default)]
    pub max_points: Option<i64>,
    /// Series at most (1–200, default 20).
    #[serde(default)]
    pub max_series: Option<i64>,
}

/// One series of the answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SeriesOut {
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Summary over every point (before downsampling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Points: t (unix seconds) with min, max and avg (equal unless downsampled).
    pub points: Vec<Bucket>,
    /// Points returned by the source.
    pub points_total: usize,
    /// Whether points were merged to fit max_points.
    pub downsampled: bool,
    /// Points left out of points and summary: NaN, ±Inf, or beyond ±1e300 (absent when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unusable_points: Option<usize>,
}

/// Result of `query_metrics`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// prometheus or cloudwatch.
    pub source: Source,
    /// The endpoint queried.
    pub endpoint: String,
    /// Window start (RFC 3339).
    pub start: String,
    /// Window end (RFC 3339).
    pub end: String,
    /// Resolution in seconds.
    pub step_seconds: u64,
    /// The series (at most max_series).
    pub series: Vec<SeriesOut>,
    /// Series returned by the source.
    pub series_total: usize,
    /// Whether max_series cut the list.
    pub truncated: bool,
}

/// The `query_metrics` tool.
pub struct QueryMetrics;

/// Shape series for an answer.
pub fn shape_series(
    series: Vec<Series>,
    max_points: usize,
    max_series: usize,
) -> (Vec<SeriesOut>, usize, bool) {
    let total = series.len();
    let out = series
        .into_iter()
        .take(max_series)
        .map(|s| {
            let (points, downsampled) = downsample(&s.points, max_points);
            let unusable = s.points.iter().filter(|(_, v)| !usable(*v)).count();
            SeriesOut {
                unusable_points: (unusable > 0).then_some(unusable),
                summary: summarize(&s.points),
                points_total: s.points.len(),
                points,
                downsampled,
                labels: s.labels,
            }
        })
        .collect();
    (out, total, total > max_series)
}

impl Tool for QueryMetrics {
    const NAME: &'static str = "query_metrics";
    const TITLE: &'static str = "Query metrics";
    const DESCRIPTION: &'static str = "Read a metric over a time window from Prometheus / Amazon Managed Prometheus (PromQL; range or instant) or CloudWatch (GetMetricData: namespace, metric_name, dimensions, stat incl. p99, or a metric-math expression such as ANOMALY_DETECTION_BAND(m1, 2)). Window: last (e.g. 6h) or start/end, with step. Every series comes with a summary (min, max, mean, last, p50/p95/p99, trend per hour) and is downsampled to max_points keeping min/max/avg.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        let max_points = bounded("max_points", args.max_points, 300, 5000)? as usize;
        if max_points < 10 {
            return Err(ToolError::invalid("max_points must be at least 10"));
        }
        let max_series = bounded("max_series", args.max_series, 20, 200)? as usize;
        let metrics = ctx.metrics()?;
        let w = args.window.resolve(Duration::from_secs(3600), MAX_WINDOW)?;
        args.query.validate()?;
        // before either path: the instant query does not go through fetch
        args.query.check_scope(
            ctx.scope.as_deref().map(Vec::as_slice),
            metrics.cloudwatch_cluster(),
        )?;
        let (series, endpoint) = if args.instant {
            if args.query.source != Source::Prometheus {
                return Err(ToolError::invalid(
                    "instant queries are for source prometheus; for CloudWatch give a short window",
                ));
            }
            let p = metrics
                .prometheus
                .as_ref()
                .ok_or_else(|| ToolError::from(MetricsError::NotConfigured("no Prometheus is configured; start the server with --prometheus-url (or --sandbox)".into())))?;
            (
                p.instant(
                    args.query.promql.as_deref().unwrap_or_default(),
                    Some(w.end),
                )
                .await?,
                p.endpoint().to_string(),
            )
        } else {
            fetch(
                metrics,
                ctx.scope.as_deref().map(Vec::as_slice),
                &args.query,
                &w,
            )
            .await?
        };
        let (series, series_total, truncated) = shape_series(series, max_points, max_series);
        Ok(Output {
            source: args.query.source,
            endpoint,
            start: w.start.to_string(),
            end: w.end.to_string(),
            step_seconds: w.step.as_secs(),
            series,
            series_total,
            truncated,
        })
    }

    fn summary(out: &Output) -> String {
        let mut s = format!(
            "{} series from {} ({} – {}, step {} s){}.",
            out.series_total,
            out.endpoint,
            out.start,
            out.end,
            out.step_seconds,
            if out.truncated { ", truncated" } else { "" }
        );
        for x in out.series.iter().take(5) {
            let labels: Vec<String> = x.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if let Some(m) = &x.summary {
                s.push_str(&format!(
                    "\n{{{}}}: last {:.4}, min {:.4}, max {:.4}, p95 {:.4}, trend {:+.4}/h",
                    labels.join(","),
                    m.last,
                    m.min,
                    m.max,
                    m.p95,
                    m.trend_per_hour
                ));
            }
        }
        s
    }
}
