//! `forecast_load`: forecast a load metric with an interval, choosing the model by
//! backtest on the recent history.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::parse_duration;
use super::history_input::HistoryInput;
use super::{Tool, ToolContext};
use crate::error::ToolError;
use crate::forecast::models::ModelKind;
use crate::forecast::store::StoredForecast;
use crate::forecast::{Accuracy, Candidate, Options, forecast_regular};

/// Longest horizon.
pub const MAX_HORIZON: Duration = Duration::from_secs(7 * 86_400);

/// Arguments of `forecast_load`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The history: a metric query (with window) or an inline series.
    pub history: HistoryInput,
    /// How far ahead (e.g. 2h; default 2h; at most 7d).
    #[serde(default)]
    pub horizon: Option<String>,
    /// Interval level (0.5–0.99, default 0.9).
    #[serde(default)]
    pub level: Option<f64>,
    /// Force a model instead of choosing by backtest.
    #[serde(default)]
    pub model: Option<ModelKind>,
    /// Forecast points returned at most (10–2000, default 288); longer forecasts keep every n-th step.
    #[serde(default)]
    pub max_points: Option<i64>,
    /// Also return a PNG chart of the recent history and the forecast band (MCP image content).
    #[serde(default)]
    pub chart: bool,
}

/// One forecast step.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Step {
    /// Unix seconds.
    pub t: i64,
    /// Point forecast.
    pub point: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// Result of `forecast_load`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Where the history came from.
    pub history_source: String,
    /// History points used (after regularising).
    pub history_points: usize,
    /// Seconds between steps.
    pub step_seconds: i64,
    /// Seasonal periods found, e.g. `daily (288 steps)`.
    pub seasonality: Vec<String>,
    /// The model chosen.
    pub model: ModelKind,
    /// Backtest of the chosen model on the recent history (MASE < 1 beats seasonal naive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtest: Option<Accuracy>,
    /// Every candidate's backtest.
    pub candidates: Vec<Candidate>,
    /// Interval level.
    pub level: f64,
    /// Highest upper bound over the horizon.
    pub peak_upper: f64,
    /// When the peak upper bound is reached (unix seconds).
    pub peak_at: i64,
    /// The forecast.
    pub forecast: Vec<Step>,
    /// Id of the stored forecast, for forecast_accuracy later (absent when the server keeps none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_id: Option<String>,
    /// Warnings (gaps filled, short history, level shift…).
    pub warnings: Vec<String>,
    /// The PNG chart, sent as image content (not part of the structured result).
    #[serde(skip)]
    #[schemars(skip)]
    pub chart_png: Option<Vec<u8>>,
}

/// The `forecast_load` tool.
pub struct ForecastLoad;

/// Run a forecast for a tool: history, horizon, level, model.
pub async fn run_forecast(
    ctx: &ToolContext,
    history: &HistoryInput,
    horizon: &str,
    level: Option<f64>,
    model: Option<ModelKind>,
) -> Result<(crate::forecast::Outcome, String, usize), ToolError> {
    let horizon = parse_duration("horizon", horizon, MAX_HORIZON)?;
    let level = level.unwrap_or(0.9);
    if !(0.5..=0.99).contains(&level) {
        return Err(ToolError::invalid(format!(
            "level {level} must be between 0.5 and 0.99 (e.g. 0.9)"
        )));
    }
    let (points, source) = history.points(ctx).await?;
    // a few hundred milliseconds of number crunching: off the async workers
    let (out, steps) = tokio::task::spawn_blocking(move || {
        // the step, and so the horizon in steps, is known only once the history is regular
        let (reg, warnings) = crate::forecast::history::regularize(&points)
            .map_err(|e| ToolError::invalid(format!("the history cannot be forecast: {e}")))?;
        let steps = (horizon.as_secs()).div_ceil(reg.step.max(1) as u64).max(1) as usize;
        let opts = Options {
            horizon: steps,
            level,
            model,
        };
        forecast_regular(reg, warnings, opts)
            .map(|out| (out, steps))
            .map_err(|e| ToolError::invalid(format!("cannot forecast: {e}")))
    })
    .await
    .map_err(|e| ToolError::Internal(format!("the forecast task failed: {e}")))??;
    Ok((out, source, steps))
}

impl Tool for ForecastLoad {
    const NAME: &'static str = "forecast_load";
    const TITLE: &'static str = "Forecast load";
    const DESCRIPTION: &'static str = "Forecast a load metric (request rate, CPU…) with lower and upper bounds per step. History from Prometheus/CloudWatch (default 21 days at 5 minutes) or given inline. Finds daily/weekly seasonality, compares the recent median, AutoETS, seasonal naive and MSTL+ETS (ETS and MSTL on log(1+v) for non-negative load) by rolling-origin backtest and uses the best (MASE against seasonal naive is reported); naive and, in builds with the prophet feature, prophet by name. Refuses under 24 h of history, warns under 7 days, fills gaps, flags level shifts. Feed the peak upper bound to recommend_replicas.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        let max_points = super::common::bounded("max_points", args.max_points, 288, 2000)? as usize;
        let horizon = args.horizon.clone().unwrap_or_else(|| "2h".into());
        let (out, history_source, steps) =
            run_forecast(&ctx, &args.history, &horizon, args.level, args.model).await?;
        let n = out.history.values.len();
        let all: Vec<Step> = (0..steps)
            .map(|i| Step {
                t: out.history.time(n + i),
                point: out.prediction.point[i],
                lower: out.prediction.lower[i],
                upper: out.prediction.upper[i],
            })
            .collect();
        let (peak_i, peak_upper) = out.prediction.peak_upper(steps);
        let stride = steps.div_ceil(max_points).max(1);
        let forecast: Vec<Step> = all.iter().step_by(stride).cloned().collect();
        let mut seasonality = Vec::new();
        if let Some(p) = out.seasonality.daily {
            seasonality.push(format!("daily ({p} steps)"));
        }
        if let Some(p) = out.seasonality.weekly {
            seasonality.push(format!("weekly ({p} steps)"));
        }
        let forecast_id = match &ctx.forecasts {
            None => None,
            Some(store) => {
                let id = format!("fc-{}", uuid::Uuid::new_v4().simple());
                let stored = StoredForecast {
                    id: id.clone(),
                    created: jiff::Timestamp::now().as_second(),
                    subject: match &args.history.query {
                        Some(q) => serde_json::to_value(q).unwrap_or(serde_json::Value::Null),
                        None => serde_json::json!("inline"),
                    },
                    model: format!("{:?}", out.model),
                    step: out.history.step,
                    mase_scale: out.mase_scale,
                    steps: all
                        .iter()
                        .map(|s| (s.t, s.point, s.lower, s.upper))
                        .collect(),
                };
                store
                    .put(&stored)
                    .map_err(|e| ToolError::Internal(format!("storing the forecast: {e}")))?;
                Some(id)
            }
        };
        let chart_png = if args.chart {
            let keep = (4 * steps)
                .max(2 * 86_400 / out.history.step.max(1) as usize)
                .min(n);
            let history: Vec<(i64, f64)> = (n - keep..n)
                .map(|i| (out.history.time(i), out.history.values[i]))
                .collect();
            let fc: Vec<(i64, f64, f64, f64)> = all
                .iter()
                .map(|s| (s.t, s.point, s.lower, s.upper))
                .collect();
            let title = format!(
                "{history_source}: {:?} forecast, {:.0}% interval",
                out.model,
                args.level.unwrap_or(0.9) * 100.0
            );
            Some(
                crate::forecast::chart::render(&title, &history, &fc)
                    .map_err(|e| ToolError::Internal(format!("drawing the chart: {e}")))?,
            )
        } else {
            None
        };
        Ok(Output {
            chart_png,
            forecast_id,
            history_source,
            history_points: n,
            step_seconds: out.history.step,
            seasonality,
            model: out.model,
            backtest: out.backtest,
            candidates: out.candidates,
            level: args.level.unwrap_or(0.9),
            peak_upper,
            peak_at: all.get(peak_i).map_or(0, |s| s.t),
            forecast,
            warnings: out.warnings,
        })
    }

    fn png(out: &Output) -> Option<Vec<u8>> {
        out.chart_png.clone()
    }

    fn summary(out: &Output) -> String {
        let at = jiff::Timestamp::from_second(out.peak_at)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let mut s = format!(
            "{:?} forecast of {} steps ({} s): peak upper bound {:.3} at {at}{}.",
            out.model,
            out.forecast.len(),
            out.step_seconds,
            out.peak_upper,
            out.backtest
                .as_ref()
                .map(|b| format!(
                    "; backtest MASE {:.3}, coverage {:.0}%",
                    b.mase,
                    b.coverage * 100.0
                ))
                .unwrap_or_default()
        );
        for w in &out.warnings {
            s.push_str(&format!("\nwarning: {w}"));
        }
        s
    }
}
