//! The history a forecasting tool works on: a metric query (either source) or a series
//! given inline. Shared by forecast_load and recommend_replicas.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::ToolContext;
use crate::error::ToolError;
use crate::forecast::evaluate::parse_time;
use crate::metrics::query::{MetricQuery, WindowArgs, fetch};
use crate::metrics::values;

/// Longest history read.
pub const MAX_HISTORY: Duration = Duration::from_secs(60 * 86_400);
/// Most points accepted inline.
pub const MAX_INLINE_POINTS: usize = 100_000;

/// A series given inline.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InlineSeries {
    /// Timestamps: unix seconds or RFC 3339, oldest first.
    pub timestamps: Vec<serde_json::Value>,
    /// Values, one per timestamp.
    pub values: Vec<f64>,
}

/// Where the history comes from: exactly one of `query` (with `window`) and `series`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryInput {
    /// A metric: `{"source": "prometheus", "promql": "…"}` or `{"source": "cloudwatch", "cloudwatch": {…}}`. It should return one series (the first is used).
    #[serde(default)]
    pub query: Option<MetricQuery>,
    /// History window of the query (default: the last 21 days at 5 minutes — less is fine when the store keeps less; 17 days or more let a 24-hour forecast's backtest use the weekly cycle).
    #[serde(default)]
    pub window: Option<WindowArgs>,
    /// Or the series itself.
    #[serde(default)]
    pub series: Option<InlineSeries>,
}

impl HistoryInput {
    /// Read the points, and say where they came from.
    pub async fn points(&self, ctx: &ToolContext) -> Result<(Vec<(i64, f64)>, String), ToolError> {
        match (&self.query, &self.series) {
            (Some(_), Some(_)) | (None, None) => Err(ToolError::invalid(
                "give the history either as query (a metric, with window) or as series {timestamps, values}, exactly one",
            )),
            (None, Some(s)) => {
                if self.window.is_some() {
                    return Err(ToolError::invalid(
                        "window goes with query; an inline series brings its own times",
                    ));
                }
                if s.timestamps.len() != s.values.len() {
                    return Err(ToolError::invalid(format!(
                        "series has {} timestamps but {} values; give one value per timestamp",
                        s.timestamps.len(),
                        s.values.len()
                    )));
                }
                if s.values.len() > MAX_INLINE_POINTS {
                    return Err(ToolError::invalid(format!(
                        "series has {} points; at most {MAX_INLINE_POINTS} are accepted inline",
                        s.values.len()
                    )));
                }
                let mut pts = Vec::with_capacity(s.values.len());
                for (i, (t, v)) in s.timestamps.iter().zip(&s.values).enumerate() {
                    let t = match t {
                        serde_json::Value::Number(n) => n.as_i64(),
                        serde_json::Value::String(s) => parse_time(s),
                        _ => None,
                    }
                    .ok_or_else(|| ToolError::invalid(format!("series.timestamps[{i}] = {t} is neither unix seconds nor an RFC 3339 time")))?;
                    if let Some(why) = values::problem(*v) {
                        return Err(ToolError::invalid(format!(
                            "series.values[{i}] = {} is {why}: values must be {}",
                            values::show(*v),
                            values::allowed_range()
                        )));
                    }
                    pts.push((t, *v));
                }
                Ok((pts, "inline series".into()))
            }
            (Some(q), None) => {
                let w = self
                    .window
                    .clone()
                    .unwrap_or(WindowArgs {
                        last: Some("21d".into()),
                        step: Some("5m".into()),
                        ..Default::default()
                    })
                    .resolve(Duration::from_secs(21 * 86_400), MAX_HISTORY)?;
                let scope = ctx.scope.as_deref().map(Vec::as_slice);
                let (series, endpoint) = fetch(ctx.metrics()?, scope, q, &w).await?;
                let first = series.into_iter().next().ok_or_else(|| {
                    ToolError::NotFound(format!("the query returned no series from {endpoint}; check the metric name and labels"))
                })?;
                values::check_answer(std::slice::from_ref(&first), &endpoint)?;
                Ok((first.points, endpoint))
            }
        }
    }
}
