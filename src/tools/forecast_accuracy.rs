//! `forecast_accuracy`: how a forecast this server issued compares with what happened.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::history_input::HistoryInput;
use super::{Tool, ToolContext};
use crate::error::ToolError;
use crate::forecast::accuracy::{Pair, Report, report};
use crate::metrics::query::{MetricQuery, WindowArgs};

/// Arguments of `forecast_accuracy`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The forecast_id that forecast_load returned.
    pub forecast_id: String,
    /// What happened: a metric query (with window) or an inline series. Default: the forecast's own query over the forecast period.
    #[serde(default)]
    pub actual: Option<HistoryInput>,
}

/// Result of `forecast_accuracy`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// The forecast.
    pub forecast_id: String,
    /// Model that made it.
    pub model: String,
    /// Forecast steps.
    pub forecast_steps: usize,
    /// The accuracy over the steps that have actual values.
    pub report: Report,
    /// Steps compared (forecast and actual), oldest first, at most 500.
    pub pairs: Vec<Pair>,
}

/// The `forecast_accuracy` tool.
pub struct ForecastAccuracy;

impl Tool for ForecastAccuracy {
    const NAME: &'static str = "forecast_accuracy";
    const TITLE: &'static str = "Forecast accuracy";
    const DESCRIPTION: &'static str = "Compare a forecast this server issued (forecast_id from forecast_load) with what happened: MAPE, MASE, bias, over- and under-prediction rates (under-prediction weighted heavier, as Crane does), interval coverage and tracking signal, and whether to re-fit (|tracking signal| > 4, MASE > 1 or coverage < 80%). Actual values come from the forecast's own query, or from the query or series given.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        let store = ctx.forecasts.as_ref().ok_or_else(|| {
            ToolError::Refused("this server keeps no forecasts (no --forecast-store)".into())
        })?;
        let stored = store
            .get(&args.forecast_id)
            .map_err(|e| ToolError::Internal(format!("reading the forecast store: {e}")))?
            .ok_or_else(|| {
                ToolError::NotFound(format!(
                    "no forecast {:?} is stored; forecast_load returns the forecast_id to use",
                    args.forecast_id
                ))
            })?;
        let (first, last) = match (stored.steps.first(), stored.steps.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => {
                return Err(ToolError::Internal(
                    "the stored forecast has no steps".into(),
                ));
            }
        };
        let actual_input = match args.actual {
            Some(a) => a,
            None => {
                let query: MetricQuery = serde_json::from_value(stored.subject.clone()).map_err(|_| {
                    ToolError::invalid("this forecast was made from an inline series: give the actual values with actual {series} or actual {query}")
                })?;
                let ts = |t: i64| {
                    jiff::Timestamp::from_second(t)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                };
                HistoryInput {
                    query: Some(query),
                    window: Some(WindowArgs {
                        start: Some(ts(first - stored.step)),
                        end: Some(ts(last.min(jiff::Timestamp::now().as_second()).max(first))),
                        last: None,
                        step: Some(format!("{}s", stored.step)),
                    }),
                    series: None,
                }
            }
        };
        let (actual, _) = actual_input.points(&ctx).await?;
        let half = stored.step / 2;
        let pairs: Vec<Pair> = stored
            .steps
            .iter()
            .filter_map(|&(t, point, lower, upper)| {
                let i = actual.partition_point(|(at, _)| *at < t - half);
                actual
                    .get(i)
                    .filter(|(at, _)| (at - t).abs() <= half)
                    .map(|&(_, a)| Pair {
                        t,
                        forecast: point,
                        lower,
                        upper,
                        actual: a,
                    })
            })
            .collect();
        let report = report(&pairs, Some(stored.mase_scale)).ok_or_else(|| {
            ToolError::NotFound(format!(
                "no actual values yet for the forecast period {} – {}",
                jiff::Timestamp::from_second(first)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                jiff::Timestamp::from_second(last)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ))
        })?;
        Ok(Output {
            forecast_id: stored.id,
            model: stored.model,
            forecast_steps: stored.steps.len(),
            report,
            pairs: pairs.into_iter().take(500).collect(),
        })
    }

    fn summary(out: &Output) -> String {
        let r = &out.report;
        format!(
            "{} ({}) over {} of {} steps: MAPE {:.1}%, MASE {}, bias {:+.3}, coverage {:.0}%, tracking signal {:+.1}; {}",
            out.forecast_id,
            out.model,
            r.steps,
            out.forecast_steps,
            r.mape,
            r.mase.map_or("n/a".into(), |m| format!("{m:.2}")),
            r.bias,
            r.coverage * 100.0,
            r.tracking_signal,
            if r.refit {
                format!("re-fit: {}", r.reasons.join("; "))
            } else {
                "no re-fit needed".into()
            }
        )
    }
}
