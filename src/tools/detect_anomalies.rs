//! `detect_anomalies`: a CloudWatch-style anomaly band over a metric's history (expected
//! value following the daily and weekly cycle ± k robust standard deviations) and the
//! points outside it.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::bounded;
use super::{Tool, ToolContext};
use crate::error::ToolError;
use crate::forecast::anomaly::{self, Anomaly, BandPoint};
use crate::forecast::history::regularize;
use crate::forecast::seasonality;
use crate::metrics::query::{MetricQuery, WindowArgs, fetch};
use crate::metrics::values;

/// Longest history read.
pub const MAX_HISTORY: Duration = Duration::from_secs(35 * 86_400);

/// Arguments of `detect_anomalies`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The metric: `{"source": "prometheus", "promql": "…"}` or `{"source": "cloudwatch", "cloudwatch": {…}}`; it should return one series (the first is used).
    pub query: MetricQuery,
    /// The history: `{"last": "14d", "step": "5m"}` (default: the last 14 days at 5 minutes). Two weeks let the band learn the weekly cycle.
    #[serde(default)]
    pub window: Option<WindowArgs>,
    /// Band width in standard deviations (1–6, default 2, like CloudWatch).
    #[serde(default)]
    pub k: Option<f64>,
    /// Only report anomalies within this recent duration (e.g. 6h; default: the whole window).
    #[serde(default)]
    pub recent: Option<String>,
    /// Band points returned at most (10–2000, default 288): the most recent ones.
    #[serde(default)]
    pub max_band_points: Option<i64>,
    /// Anomalies returned at most (1–500, default 50): the largest deviations.
    #[serde(default)]
    pub max_anomalies: Option<i64>,
}

/// Result of `detect_anomalies`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// The endpoint queried.
    pub endpoint: String,
    /// Labels of the series analysed.
    pub labels: std::collections::BTreeMap<String, String>,
    /// How the expected value was formed.
    pub method: String,
    /// k used.
    pub k: f64,
    /// Daily / weekly seasonality found.
    pub seasonality: Vec<String>,
    /// Anomalies, largest deviation first.
    pub anomalies: Vec<Anomaly>,
    /// Anomalies found before max_anomalies.
    pub anomalies_total: usize,
    /// Anomaly events (anomalies within an hour merged) as [first, last] unix seconds.
    pub events: Vec<(i64, i64)>,
    /// The most recent band points.
    pub band: Vec<BandPoint>,
    /// Warnings (gaps filled, short history…).
    pub warnings: Vec<String>,
}

/// The `detect_anomalies` tool.
pub struct DetectAnomalies;

impl Tool for DetectAnomalies {
    const NAME: &'static str = "detect_anomalies";
    const TITLE: &'static str = "Detect anomalies";
    const DESCRIPTION: &'static str = "Is this value abnormal for this hour of this weekday? Reads a metric's history (default 14 days at 5 minutes) from Prometheus or CloudWatch and computes a CloudWatch-style band: the expected value follows the daily and weekly cycle, ± k robust standard deviations (k=2 by default). Returns the points outside the band with their deviation, the anomaly events, and the recent band.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        let k = args.k.unwrap_or(2.0);
        if !(1.0..=6.0).contains(&k) || !k.is_finite() {
            return Err(ToolError::invalid(format!(
                "k {k} must be between 1 and 6 standard deviations"
            )));
        }
        let max_band = bounded("max_band_points", args.max_band_points, 288, 2000)? as usize;
        let max_anomalies = bounded("max_anomalies", args.max_anomalies, 50, 500)? as usize;
        let recent = args
            .recent
            .as_deref()
            .map(|r| super::common::parse_duration("recent", r, MAX_HISTORY))
            .transpose()?;
        let metrics = ctx.metrics()?;
        let window = args.window.unwrap_or(WindowArgs {
            last: Some("14d".into()),
            step: Some("5m".into()),
            ..Default::default()
        });
        let w = window.resolve(Duration::from_secs(14 * 86_400), MAX_HISTORY)?;
        let scope = ctx.scope.as_deref().map(Vec::as_slice);
        let (series, endpoint) = fetch(metrics, scope, &args.query, &w).await?;
        let Some(first) = series.into_iter().next() else {
            return Err(ToolError::NotFound(format!(
                "the query returned no series from {endpoint}; check the metric name and labels"
            )));
        };
        values::check_answer(std::slice::from_ref(&first), &endpoint)?;
        let (reg, mut warnings) = regularize(&first.points)
            .map_err(|e| ToolError::invalid(format!("the series cannot be analysed: {e}")))?;
        let season = seasonality::detect(&reg.values, reg.step);
        if season.daily.is_none() {
            warnings.push(
                "no daily cycle found: the expected value is the median of the last hour".into(),
            );
        }
        let d = anomaly::detect(&reg, &season, k);
        if d.band.is_empty() {
            warnings
                .push("the history is too short for a band (a day of warm-up is needed)".into());
        }
        let cutoff = recent.map(|r| w.end.as_second() - r.as_secs() as i64);
        let mut anomalies: Vec<Anomaly> = d
            .anomalies
            .iter()
            .copied()
            .filter(|a| cutoff.is_none_or(|c| a.t >= c))
            .collect();
        let events = anomaly::events(&anomalies, 3_600);
        anomalies.sort_by(|a, b| {
            b.deviation_sigmas
                .abs()
                .total_cmp(&a.deviation_sigmas.abs())
        });
        let anomalies_total = anomalies.len();
        anomalies.truncate(max_anomalies);
        let band = d.band[d.band.len().saturating_sub(max_band)..].to_vec();
        let mut found = Vec::new();
        if let Some(p) = season.daily {
            found.push(format!("daily ({p} steps)"));
        }
        if let Some(p) = season.weekly {
            found.push(format!("weekly ({p} steps)"));
        }
        Ok(Output {
            endpoint,
            labels: first.labels,
            method: d.method,
            k,
            seasonality: found,
            anomalies,
            anomalies_total,
            events,
            band,
            warnings,
        })
    }

    fn summary(out: &Output) -> String {
        let mut s = format!(
            "{} anomaly point(s) in {} event(s) at k={} ({}).",
            out.anomalies_total,
            out.events.len(),
            out.k,
            out.method
        );
        for a in out.anomalies.iter().take(5) {
            s.push_str(&format!(
                "\n{}: {:.4} (expected {:.4}, {:+.1}σ)",
                jiff::Timestamp::from_second(a.t)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                a.value,
                a.expected,
                a.deviation_sigmas
            ));
        }
        s
    }
}
