//! Load forecasting: history → seasonal periods → candidate models compared by a
//! rolling-origin backtest on the recent history → the best model's forecast with an
//! interval. Pure computation: points in, forecast out.

pub mod accuracy;
pub mod anomaly;
pub mod capacity;
pub mod chart;
pub mod evaluate;
pub mod history;
pub mod models;
pub mod rightsizing;
pub mod seasonality;
pub mod store;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use history::{Regular, regularize};
use models::{ModelKind, Prediction, predict};
use seasonality::{Seasonality, detect};

/// Forecasting failures.
#[derive(Debug, Error)]
pub enum ForecastError {
    /// The input cannot be forecast (too short, malformed…); the message says why.
    #[error("{0}")]
    Invalid(String),
    /// A model failed on this data.
    #[error("{0}")]
    Model(String),
}

/// Least history accepted.
pub const MIN_HISTORY_SECONDS: i64 = 86_400;
/// History below which a warning is given (weekly seasonality cannot be seen).
pub const WARN_HISTORY_SECONDS: i64 = 7 * 86_400;
/// Origins of the rolling backtest.
pub const BACKTEST_FOLDS: usize = 3;

/// Error measures of forecasts against what happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Accuracy {
    /// Mean absolute scaled error (scale: in-sample seasonal naive; < 1 beats it).
    pub mase: f64,
    /// Symmetric mean absolute percentage error, in percent.
    pub smape: f64,
    /// Share of actual values inside the interval.
    pub coverage: f64,
    /// Share of steps where the forecast was above the actual value.
    pub over_rate: f64,
    /// Share of steps where the forecast was below the actual value.
    pub under_rate: f64,
    /// Steps compared.
    pub steps: usize,
}

/// Accumulates errors over several forecasts.
#[derive(Debug, Default, Clone)]
pub struct ErrorSums {
    abs: f64,
    smape: f64,
    inside: usize,
    over: usize,
    under: usize,
    n: usize,
}

impl ErrorSums {
    /// Add one forecast against the actual values.
    pub fn add(&mut self, p: &Prediction, actual: &[f64]) {
        for (i, a) in actual.iter().enumerate() {
            let (f, lo, hi) = (p.point[i], p.lower[i], p.upper[i]);
            self.abs += (f - a).abs();
            let denom = f.abs() + a.abs();
            self.smape += if denom > 0.0 {
                2.0 * (f - a).abs() / denom
            } else {
                0.0
            };
            self.inside += usize::from(*a >= lo && *a <= hi);
            self.over += usize::from(f > *a);
            self.under += usize::from(f < *a);
            self.n += 1;
        }
    }

    /// The measures, given the MASE scale.
    pub fn accuracy(&self, scale: f64) -> Accuracy {
        let n = self.n.max(1) as f64;
        Accuracy {
            mase: if scale > 0.0 {
                self.abs / n / scale
            } else {
                f64::INFINITY
            },
            smape: 100.0 * self.smape / n,
            coverage: self.inside as f64 / n,
            over_rate: self.over as f64 / n,
            under_rate: self.under as f64 / n,
            steps: self.n,
        }
    }
}

/// Mean absolute difference at lag `m` (the MASE scale); 0 when undefined.
pub fn mase_scale(y: &[f64], m: usize) -> f64 {
    let m = m.max(1);
    if y.len() <= m {
        return 0.0;
    }
    (m..y.len()).map(|t| (y[t] - y[t - m]).abs()).sum::<f64>() / (y.len() - m) as f64
}

/// One candidate's backtest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Candidate {
    /// The model.
    pub model: ModelKind,
    /// Its backtest errors (absent when it failed on this data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Accuracy>,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A forecast and how it was made.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The regularised history.
    pub history: Regular,
    /// Seasonality found.
    pub seasonality: Seasonality,
    /// The periods the chosen model was fitted with (MSTL drops the weekly one when the
    /// backtest could not use it).
    pub fit_seasonality: Seasonality,
    /// The chosen model.
    pub model: ModelKind,
    /// The forecast, `horizon` steps after the last history point.
    pub prediction: Prediction,
    /// Backtest of every candidate.
    pub candidates: Vec<Candidate>,
    /// Backtest of the chosen model.
    pub backtest: Option<Accuracy>,
    /// Things the caller should know (gaps filled, short history, level shift…).
    pub warnings: Vec<String>,
    /// The MASE scale of this history (mean absolute change over one day, or one step
    /// without a daily cycle), kept to score the forecast against what happens later.
    pub mase_scale: f64,
}

/// Options of [`forecast`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Steps to forecast.
    pub horizon: usize,
    /// Interval level, e.g. 0.9.
    pub level: f64,
    /// Use this model instead of choosing by backtest.
    pub model: Option<ModelKind>,
}

/// `f` over `jobs` on up to as many threads as the machine has cores, results in job order.
/// Written with `std::thread::scope` because it is one loop; a thread-pool crate would be a
/// new dependency for it. A panic in `f` is passed on to the caller.
fn par_map<T: Sync, R: Send>(jobs: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    if threads <= 1 {
        return jobs.iter().map(&f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        done.push((i, f(job)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all: Vec<(usize, R)> = parts.into_iter().flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// The model's name as the tools spell it (`mstl_ets`).
pub fn kind_name(k: ModelKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{k:?}"))
}

/// Detect a level shift: the last day's median far from the medians of comparable earlier
/// days (the same weekday when the series has a weekly cycle, else every earlier day).
fn level_shift(y: &[f64], day: usize, weekly: bool) -> Option<String> {
    if day == 0 || y.len() < 3 * day {
        return None;
    }
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    // whole days counted back from the end, newest first
    let days: Vec<f64> = y
        .rchunks(day)
        .filter(|c| c.len() == day)
        .map(median)
        .collect();
    let (last, before) = days.split_first()?;
    let comparable: Vec<f64> = if weekly {
        before
            .iter()
            .enumerate()
            .filter(|(i, _)| (i + 1) % 7 == 0)
            .map(|(_, d)| *d)
            .collect()
    } else {
        before.to_vec()
    };
    if comparable.len() < 2 {
        return None;
    }
    let m = median(&comparable);
    let mad = median(&comparable.iter().map(|d| (d - m).abs()).collect::<Vec<_>>()).max(1e-9);
    if (last - m).abs() > 5.0 * 1.4826 * mad && (last - m).abs() > 0.25 * m.abs() {
        return Some(format!(
            "level shift: the last day's median ({last:.3}) is far from comparable earlier days' ({m:.3}); forecasts follow the new level only as far as the trend model does"
        ));
    }
    None
}

/// Forecast a series of (unix seconds, value) points.
pub fn forecast(points: &[(i64, f64)], opts: Options) -> Result<Outcome, ForecastError> {
    let (history, warnings) = regularize(points)?;
    forecast_regular(history, warnings, opts)
}

/// [`forecast`] of a history already regularised by [`history::regularize`] (with the
/// warnings it gave), for callers that needed the regular history first.
pub fn forecast_regular(
    history: Regular,
    mut warnings: Vec<String>,
    opts: Options,
) -> Result<Outcome, ForecastError> {
    if opts.horizon == 0 {
        return Err(ForecastError::Invalid(
            "horizon must be at least one step".into(),
        ));
    }
    if !(0.5..1.0).contains(&opts.level) {
        return Err(ForecastError::Invalid(format!(
            "level {} must be in [0.5, 1), e.g. 0.9 or 0.95",
            opts.level
        )));
    }
    let span = history.span_seconds();
    if span < MIN_HISTORY_SECONDS {
        return Err(ForecastError::Invalid(format!(
            "the history covers {:.1} h; at least 24 h are needed to forecast (daily seasonality needs a full day)",
            span as f64 / 3600.0
        )));
    }
    if span < WARN_HISTORY_SECONDS {
        warnings.push(format!(
            "only {:.1} days of history: weekly seasonality cannot be detected; 14 days or more are best",
            span as f64 / 86_400.0
        ));
    }
    let max_horizon = history.values.len();
    if opts.horizon > max_horizon {
        return Err(ForecastError::Invalid(format!(
            "horizon {} steps is longer than the history ({max_horizon} steps); forecast at most as far ahead as there is history",
            opts.horizon
        )));
    }
    let y = &history.values;
    let season = detect(y, history.step);
    let day = (86_400 / history.step) as usize;
    if let Some(w) = level_shift(y, day, season.weekly.is_some()) {
        warnings.push(w);
    }
    let scale = mase_scale(y, season.daily.unwrap_or(1));
    let spread =
        y.iter().cloned().fold(f64::MIN, f64::max) - y.iter().cloned().fold(f64::MAX, f64::min);
    if spread <= f64::EPSILON * y[0].abs().max(1.0) {
        warnings.push("the series is constant: the forecast is that constant".into());
        let c = y[0];
        let flat = Prediction {
            point: vec![c; opts.horizon],
            lower: vec![c; opts.horizon],
            upper: vec![c; opts.horizon],
        };
        return Ok(Outcome {
            history,
            fit_seasonality: season.clone(),
            seasonality: season,
            model: ModelKind::Naive,
            prediction: flat,
            candidates: vec![],
            backtest: None,
            warnings,
            mase_scale: scale,
        });
    }

    let non_negative = y.iter().all(|v| *v >= 0.0);
    // What is backtested is what is used: MSTL takes a period only with two full cycles of
    // training data, so when the earliest backtest origin is too early for the weekly cycle,
    // the final fit does without it too (else the backtest would judge a different model).
    let shortest_train = y.len().saturating_sub(BACKTEST_FOLDS * opts.horizon);
    let candidates_kinds = match opts.model {
        Some(m) => {
            if !m.applies(&season, non_negative) {
                return Err(ForecastError::Invalid(format!(
                    "model {} does not fit this series (seasonality found: daily {}, weekly {}; negative values: {}); omit model to choose automatically",
                    kind_name(m),
                    season.daily.is_some(),
                    season.weekly.is_some(),
                    !non_negative
                )));
            }
            vec![m]
        }
        None => ModelKind::candidates(&season, non_negative),
    };
    let mstl = |k: &ModelKind| matches!(k, ModelKind::MstlEts | ModelKind::MstlEtsLog);
    // the periods MSTL models are fitted with; the others use the seasonality found
    let mut mstl_season = season.clone();
    if let Some(w) = season
        .weekly
        .filter(|w| 2 * w > shortest_train && candidates_kinds.iter().any(mstl))
    {
        mstl_season.weekly = None;
        warnings.push(format!(
            "weekly cycle found, but MSTL uses only the daily one: its backtest needs two full weeks before the earliest origin ({:.1} days of history for this horizon; {:.1} given)",
            (2 * w + BACKTEST_FOLDS * opts.horizon) as f64 * history.step as f64 / 86_400.0,
            y.len() as f64 * history.step as f64 / 86_400.0
        ));
    }

    // rolling origin: the last folds × horizon steps, never training on less than two days
    let min_train = 2 * day;
    // every (candidate, origin) fit is independent: run them on the machine's cores
    let origins: Vec<usize> = (1..=BACKTEST_FOLDS)
        .rev()
        .filter_map(|fold| y.len().checked_sub(fold * opts.horizon))
        .filter(|o| *o >= min_train)
        .collect();
    let jobs: Vec<(ModelKind, usize)> = candidates_kinds
        .iter()
        .flat_map(|k| origins.iter().map(move |o| (*k, *o)))
        .collect();
    let season_of = |k: ModelKind| if mstl(&k) { &mstl_season } else { &season };
    let fits = par_map(&jobs, |&(kind, origin)| {
        predict(
            kind,
            &y[..origin],
            season_of(kind),
            opts.horizon,
            opts.level,
        )
    });
    let mut candidates = Vec::new();
    for kind in candidates_kinds {
        let mut sums = ErrorSums::default();
        let mut error = None;
        for ((k, origin), fit) in jobs.iter().zip(&fits) {
            if *k != kind {
                continue;
            }
            match fit {
                Ok(p) => sums.add(p, &y[*origin..*origin + opts.horizon]),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        let accuracy = (error.is_none() && sums.n > 0).then(|| sums.accuracy(scale));
        candidates.push(Candidate {
            model: kind,
            accuracy,
            error,
        });
    }
    let best = candidates
        .iter()
        .filter_map(|c| c.accuracy.as_ref().map(|a| (c.model, a.mase)))
        .filter(|(_, m)| m.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k);
    let model = match (best, opts.model) {
        (Some(k), _) => k,
        (None, Some(k)) => k,
        (None, None) => {
            warnings.push("the history is too short for a backtest; the model was chosen by the seasonality found".into());
            if season.periods().is_empty() {
                ModelKind::RecentMedian
            } else {
                ModelKind::MstlEts
            }
        }
    };
    let prediction = match predict(model, y, season_of(model), opts.horizon, opts.level) {
        Ok(p) => p,
        Err(e) if opts.model.is_none() => {
            let fallback = if season.daily.is_some() {
                ModelKind::SeasonalNaiveDaily
            } else {
                ModelKind::RecentMedian
            };
            warnings.push(format!("{e}; fell back to {}", kind_name(fallback)));
            predict(fallback, y, season_of(fallback), opts.horizon, opts.level)?
        }
        Err(e) => return Err(e),
    };
    let backtest = candidates
        .iter()
        .find(|c| c.model == model)
        .and_then(|c| c.accuracy.clone());
    Ok(Outcome {
        history,
        fit_seasonality: season_of(model).clone(),
        seasonality: season,
        model,
        prediction,
        candidates,
        backtest,
        warnings,
        mase_scale: scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(days: usize, noise: f64) -> Vec<(i64, f64)> {
        let day = 288;
        let mut x = 7u64;
        (0..days * day)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = ((x >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
                let d = (i % day) as f64 / day as f64;
                let weekend = if (i / day) % 7 >= 5 { 0.7 } else { 1.0 };
                let v = (200.0 + 120.0 * (2.0 * std::f64::consts::PI * (d - 0.25)).sin()) * weekend
                    + noise * r;
                (1_700_000_000 + i as i64 * 300, v)
            })
            .collect()
    }

    #[test]
    fn a_seasonal_series_is_forecast_well() {
        let pts = synthetic(21, 10.0);
        let out = forecast(
            &pts,
            Options {
                horizon: 24,
                level: 0.9,
                model: None,
            },
        )
        .unwrap();
        assert_eq!(out.seasonality.daily, Some(288));
        assert_eq!(out.seasonality.weekly, Some(2016));
        let bt = out.backtest.clone().unwrap();
        assert!(
            bt.mase < 0.8,
            "MASE {} should be well under 1 ({:?})",
            bt.mase,
            out.candidates
        );
        for i in 0..24 {
            assert!(
                out.prediction.lower[i] <= out.prediction.point[i]
                    && out.prediction.point[i] <= out.prediction.upper[i]
            );
        }
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }

    #[test]
    fn bad_input_is_refused_with_reasons() {
        let pts = synthetic(21, 1.0);
        let e = forecast(
            &pts[..200],
            Options {
                horizon: 12,
                level: 0.9,
                model: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("at least 24 h"), "{e}");
        let e = forecast(
            &pts,
            Options {
                horizon: 0,
                level: 0.9,
                model: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("at least one step"), "{e}");
        let e = forecast(
            &pts,
            Options {
                horizon: 1_000_000,
                level: 0.9,
                model: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("longer than the history"), "{e}");
        let e = forecast(
            &pts,
            Options {
                horizon: 12,
                level: 1.5,
                model: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("level"), "{e}");
        let short = forecast(
            &pts[..288 * 3],
            Options {
                horizon: 12,
                level: 0.9,
                model: None,
            },
        )
        .unwrap();
        assert!(
            short
                .warnings
                .iter()
                .any(|w| w.contains("weekly seasonality cannot be detected"))
        );
        let flat: Vec<(i64, f64)> = (0..600).map(|i| (i * 300, 5.0)).collect();
        let out = forecast(
            &flat,
            Options {
                horizon: 10,
                level: 0.9,
                model: None,
            },
        )
        .unwrap();
        assert_eq!(out.prediction.point, vec![5.0; 10]);
        assert!(out.warnings.iter().any(|w| w.contains("constant")));
    }

    #[test]
    fn the_backtest_judges_the_model_that_is_used() {
        let opts = |horizon| Options {
            horizon,
            level: 0.9,
            model: None,
        };
        // 14 days and a 24 h horizon: the earliest origin has 11 days, too few for two weeks,
        // so MSTL goes without the weekly cycle in the backtest and in the final fit alike
        let pts = synthetic(14, 10.0);
        let out = forecast(&pts, opts(288)).unwrap();
        assert_eq!(out.seasonality.weekly, Some(2016));
        assert!(
            out.warnings
                .iter()
                .any(|w| w.contains("MSTL uses only the daily one") && w.contains("17.0 days")),
            "{:?}",
            out.warnings
        );
        // the other weekly models keep the weekly cycle: seasonal naive needs only one week
        let weekly = out
            .candidates
            .iter()
            .find(|c| c.model == ModelKind::SeasonalNaiveWeekly)
            .unwrap();
        assert!(
            weekly.error.is_none() && weekly.accuracy.is_some(),
            "{weekly:?}"
        );
        let named = forecast(
            &pts,
            Options {
                model: Some(ModelKind::SeasonalNaiveWeekly),
                ..opts(288)
            },
        )
        .unwrap();
        assert_eq!(named.model, ModelKind::SeasonalNaiveWeekly);
        assert!(
            !named.warnings.iter().any(|w| w.contains("daily one")),
            "no MSTL model ran: {:?}",
            named.warnings
        );
        // 18 days: the weekly cycle is in both, and no warning
        let out = forecast(&synthetic(18, 10.0), opts(288)).unwrap();
        assert!(
            !out.warnings.iter().any(|w| w.contains("daily one")),
            "{:?}",
            out.warnings
        );
        let bt = out.backtest.unwrap();
        assert!(bt.mase < 0.8, "{bt:?} {:?}", out.candidates);
    }

    #[test]
    fn bursty_load_is_forecast_on_the_log_scale() {
        // a daily cycle with rare bursts 50× the level (Twitter-like): the mean-chasing raw
        // models lose to the log-scale ones, which forecast the median
        let mut x = 99u64;
        let pts: Vec<(i64, f64)> = (0..288 * 10)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (x >> 33) as f64 / (1u64 << 31) as f64;
                let d = (i % 288) as f64 / 288.0;
                let base = 100.0 + 60.0 * (2.0 * std::f64::consts::PI * d).sin();
                let v = if r > 0.995 {
                    base * 50.0
                } else {
                    base * (0.9 + 0.2 * r)
                };
                (1_700_000_000 + i as i64 * 300, v)
            })
            .collect();
        let out = forecast(
            &pts,
            Options {
                horizon: 36,
                level: 0.9,
                model: None,
            },
        )
        .unwrap();
        let mase = |k: ModelKind| {
            out.candidates
                .iter()
                .find(|c| c.model == k)
                .and_then(|c| c.accuracy.as_ref())
                .map(|a| a.mase)
                .unwrap()
        };
        assert!(
            mase(ModelKind::MstlEtsLog) < mase(ModelKind::MstlEts),
            "{:?}",
            out.candidates
        );
        assert!(
            out.model.log_scale(),
            "chose {:?}: {:?}",
            out.model,
            out.candidates
        );
        assert!(out.prediction.lower.iter().all(|v| *v >= 0.0));
    }

    #[test]
    fn par_map_keeps_the_order_and_passes_panics_on() {
        let jobs: Vec<u64> = (0..50).collect();
        assert_eq!(
            par_map(&jobs, |x| x * x),
            jobs.iter().map(|x| x * x).collect::<Vec<_>>()
        );
        assert!(par_map(&[] as &[u64], |x| *x).is_empty());
        let caught = std::panic::catch_unwind(|| {
            par_map(&jobs, |x| {
                assert!(*x != 7, "job 7 fails");
                *x
            })
        });
        assert!(caught.is_err());
    }
}
