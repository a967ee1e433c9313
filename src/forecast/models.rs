//! Forecasting models: naive, seasonal naive (daily, weekly), the recent median, AutoETS
//! (level and trend), and MSTL (daily + weekly seasonality by LOESS decomposition) with an
//! AutoETS trend — ETS and MSTL from augurs, each also on log(1 + v) for non-negative load
//! (bursty load is skewed: on the log scale its noise is closer to normal, the forecast
//! back-transforms to the median, and the interval widens upwards) — and, in
//! builds with the `prophet` cargo feature, Prophet (augurs' port, Stan compiled to
//! WebAssembly and run by wasmtime).

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Predict};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ForecastError;
use super::seasonality::Seasonality;

/// The models the server can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// The last value, repeated. By name only: it is AutoETS's level-only model with a
    /// smoothing weight of 1, and ETS chooses that weight from the data.
    Naive,
    /// The value one day earlier.
    SeasonalNaiveDaily,
    /// The value one week earlier.
    SeasonalNaiveWeekly,
    /// The median of the last day, with the last day's quantiles as the interval: a robust
    /// level for noisy, bursty series without a usable cycle.
    RecentMedian,
    /// AutoETS without seasonality (level, optionally a damped trend); for series with
    /// negative values (non-negative ones use `ets_log`).
    Ets,
    /// AutoETS without seasonality on log(1 + v).
    EtsLog,
    /// MSTL decomposition (daily and weekly seasonality) with an AutoETS trend.
    MstlEts,
    /// MSTL with an AutoETS trend on log(1 + v).
    MstlEtsLog,
    /// Prophet with daily (and, with two weeks of data, weekly) seasonality. Only in builds
    /// with the `prophet` cargo feature, and only when asked for by name: it is never an
    /// automatic candidate (a fit takes hundreds of milliseconds and the benchmark shows it
    /// less accurate than MSTL on load series).
    Prophet,
}

impl ModelKind {
    /// The models compared by backtest for a series with this seasonality, simplest first
    /// (`non_negative`: no value below zero, so the log-scale models apply).
    pub fn candidates(season: &Seasonality, non_negative: bool) -> Vec<ModelKind> {
        let mut out = vec![ModelKind::RecentMedian];
        out.push(if non_negative {
            ModelKind::EtsLog
        } else {
            ModelKind::Ets
        });
        if season.daily.is_some() {
            out.push(ModelKind::SeasonalNaiveDaily);
        }
        if season.weekly.is_some() {
            out.push(ModelKind::SeasonalNaiveWeekly);
        }
        if !season.periods().is_empty() {
            out.push(ModelKind::MstlEts);
            if non_negative {
                out.push(ModelKind::MstlEtsLog);
            }
        }
        out
    }

    /// Whether this model can be asked for by name for such a series.
    pub fn applies(self, season: &Seasonality, non_negative: bool) -> bool {
        match self {
            ModelKind::Naive | ModelKind::RecentMedian | ModelKind::Ets => true,
            ModelKind::EtsLog => non_negative,
            ModelKind::SeasonalNaiveDaily | ModelKind::Prophet => season.daily.is_some(),
            ModelKind::SeasonalNaiveWeekly => season.weekly.is_some(),
            ModelKind::MstlEts => !season.periods().is_empty(),
            ModelKind::MstlEtsLog => non_negative && !season.periods().is_empty(),
        }
    }

    /// Whether the model works on log(1 + v).
    pub fn log_scale(self) -> bool {
        matches!(self, ModelKind::EtsLog | ModelKind::MstlEtsLog)
    }
}

/// A forecast with its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Point forecast per step.
    pub point: Vec<f64>,
    /// Lower bound per step.
    pub lower: Vec<f64>,
    /// Upper bound per step.
    pub upper: Vec<f64>,
}

impl Prediction {
    /// Index and value of the highest upper bound among the first `steps` steps (the first
    /// of equal highs; `(0, f64::MIN)` when there are none).
    pub fn peak_upper(&self, steps: usize) -> (usize, f64) {
        self.upper
            .iter()
            .copied()
            .enumerate()
            .take(steps)
            .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a })
    }
}

/// Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9).
/// Written here because it is one small function; no statistics crate is otherwise needed.
#[allow(clippy::excessive_precision)] // the coefficients as published
pub fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let plow = 0.02425;
    if p < plow {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - plow {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// Seasonal naive with lag `m` (m = 1: naive), with intervals from the lag-m differences.
fn seasonal_naive(
    y: &[f64],
    m: usize,
    horizon: usize,
    level: f64,
) -> Result<Prediction, ForecastError> {
    if y.len() <= m {
        return Err(ForecastError::Invalid(format!(
            "{} values are too few for a lag of {m}",
            y.len()
        )));
    }
    let n = y.len();
    let diffs: Vec<f64> = (m..n).map(|t| y[t] - y[t - m]).collect();
    let sigma = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
    let z = normal_quantile(0.5 + level / 2.0);
    let mut p = Prediction {
        point: Vec::with_capacity(horizon),
        lower: Vec::with_capacity(horizon),
        upper: Vec::with_capacity(horizon),
    };
    for h in 0..horizon {
        let v = y[n - m + (h % m)];
        let k = (h / m + 1) as f64;
        let w = z * sigma * k.sqrt();
        p.point.push(v);
        p.lower.push(v - w);
        p.upper.push(v + w);
    }
    Ok(p)
}

/// Fit `kind` on `y` and forecast `horizon` steps with intervals at `level` (e.g. 0.9).
pub fn predict(
    kind: ModelKind,
    y: &[f64],
    season: &Seasonality,
    horizon: usize,
    level: f64,
) -> Result<Prediction, ForecastError> {
    match kind {
        ModelKind::Naive => seasonal_naive(y, 1, horizon, level),
        ModelKind::SeasonalNaiveDaily => seasonal_naive(
            y,
            season
                .daily
                .ok_or_else(|| ForecastError::Invalid("no daily seasonality".into()))?,
            horizon,
            level,
        ),
        ModelKind::SeasonalNaiveWeekly => seasonal_naive(
            y,
            season
                .weekly
                .ok_or_else(|| ForecastError::Invalid("no weekly seasonality".into()))?,
            horizon,
            level,
        ),
        ModelKind::RecentMedian => recent_median(y, season.day, horizon, level),
        ModelKind::Ets => ets(y, horizon, level),
        ModelKind::MstlEts => mstl(y, season, horizon, level),
        ModelKind::EtsLog => on_log_scale(y, |ly| ets(ly, horizon, level)),
        ModelKind::MstlEtsLog => on_log_scale(y, |ly| mstl(ly, season, horizon, level)),
        ModelKind::Prophet => prophet(y, season, horizon, level),
    }
}

/// MSTL (the confirmed periods with two full cycles in `y`) with an AutoETS trend.
fn mstl(
    y: &[f64],
    season: &Seasonality,
    horizon: usize,
    level: f64,
) -> Result<Prediction, ForecastError> {
    // a period is used only with two full cycles of data (so a backtest on a shorter
    // training prefix may use the daily cycle only)
    let periods: Vec<usize> = season
        .periods()
        .into_iter()
        .filter(|p| 2 * p <= y.len())
        .collect();
    if periods.is_empty() {
        return Err(ForecastError::Invalid(
            "MSTL needs two full cycles of a seasonal period".into(),
        ));
    }
    let model = MSTLModel::new(periods, AutoETS::non_seasonal().into_trend_model());
    let fit = model
        .fit(y)
        .map_err(|e| ForecastError::Model(format!("MSTL fit failed: {e}")))?;
    let f = fit
        .predict(horizon, level)
        .map_err(|e| ForecastError::Model(format!("MSTL forecast failed: {e}")))?;
    from_augurs(f, "MSTL")
}

/// AutoETS without seasonality: a level alone or with a damped trend, whichever has the
/// lower AICc. An undamped trend, extrapolated a day ahead — and exponentiated on the log
/// scale — can run away by orders of magnitude; load does not grow like that within a
/// forecast horizon.
fn ets(y: &[f64], horizon: usize, level: f64) -> Result<Prediction, ForecastError> {
    let model_err = |what: &str, e: &dyn std::fmt::Display| {
        ForecastError::Model(format!("ETS {what} failed: {e}"))
    };
    // augurs' search cannot combine "no trend" with "damped only": two searches
    let level_only = AutoETS::new(1, "ZNN")
        .map_err(|e| model_err("set-up", &e))?
        .fit(y);
    let damped = AutoETS::non_seasonal()
        .damped(true)
        .map_err(|e| model_err("set-up", &e))?
        .fit(y);
    let fit = match (level_only, damped) {
        (Ok(a), Ok(b)) => {
            if b.model().aicc() < a.model().aicc() {
                b
            } else {
                a
            }
        }
        (Ok(a), Err(_)) => a,
        (Err(_), Ok(b)) => b,
        (Err(e), Err(_)) => return Err(model_err("fit", &e)),
    };
    let f = fit
        .predict(horizon, level)
        .map_err(|e| model_err("forecast", &e))?;
    from_augurs(f, "ETS")
}

/// An augurs forecast as a [`Prediction`] (the point as both bounds when it has no interval).
fn from_augurs(f: augurs::Forecast, model: &str) -> Result<Prediction, ForecastError> {
    let (lower, upper) = match f.intervals {
        Some(i) => (i.lower, i.upper),
        None => (f.point.clone(), f.point.clone()),
    };
    finite(
        Prediction {
            point: f.point,
            lower,
            upper,
        },
        model,
    )
}

/// Refuse non-finite output (degenerate input can make a decomposition produce NaN).
fn finite(p: Prediction, model: &str) -> Result<Prediction, ForecastError> {
    if p.point
        .iter()
        .chain(&p.lower)
        .chain(&p.upper)
        .any(|v| !v.is_finite())
    {
        return Err(ForecastError::Model(format!(
            "{model} produced non-finite values"
        )));
    }
    Ok(p)
}

/// Fit on log(1 + v) and transform back: the point becomes the median forecast, the interval
/// keeps its coverage (quantiles survive a monotone transform) and widens upwards.
fn on_log_scale(
    y: &[f64],
    fit: impl FnOnce(&[f64]) -> Result<Prediction, ForecastError>,
) -> Result<Prediction, ForecastError> {
    if let Some(v) = y.iter().find(|v| **v < 0.0) {
        return Err(ForecastError::Invalid(format!(
            "log-scale models need non-negative values; the series has {v}"
        )));
    }
    let ly: Vec<f64> = y.iter().map(|v| v.ln_1p()).collect();
    let p = fit(&ly)?;
    // a wide log-scale bound exponentiates to absurd values: no bound above 100 × the
    // largest value seen (a sanity limit, far above any plausible load within the horizon)
    let max = y.iter().cloned().fold(0.0, f64::max);
    let cap = if max > 0.0 { 100.0 * max } else { 1.0 };
    let back =
        |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|x| x.exp_m1().clamp(0.0, cap)).collect() };
    Ok(Prediction {
        point: back(p.point),
        lower: back(p.lower),
        upper: back(p.upper),
    })
}

/// The median of the last day (at most), repeated; the interval is the same window's
/// (1 − level)/2 and (1 + level)/2 quantiles.
fn recent_median(
    y: &[f64],
    day: usize,
    horizon: usize,
    level: f64,
) -> Result<Prediction, ForecastError> {
    let w = &y[y.len().saturating_sub(day.max(1))..];
    if w.is_empty() {
        return Err(ForecastError::Invalid(
            "no values to take a median of".into(),
        ));
    }
    let mut s = w.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
    Ok(Prediction {
        point: vec![q(0.5); horizon],
        lower: vec![q((1.0 - level) / 2.0); horizon],
        upper: vec![q((1.0 + level) / 2.0); horizon],
    })
}

/// Prophet: daily seasonality, weekly with two weeks of data, no yearly; MAP estimate by the
/// WebAssembly Stan optimiser; intervals from 1,000 simulated draws, as Python's Prophet.
#[cfg(feature = "prophet")]
fn prophet(
    y: &[f64],
    season: &Seasonality,
    horizon: usize,
    level: f64,
) -> Result<Prediction, ForecastError> {
    use augurs::prophet::wasmstan::WasmstanOptimizer;
    use augurs::prophet::{
        IntervalWidth, PredictionData, Prophet, ProphetOptions, SeasonalityOption, TrainingData,
    };
    use std::sync::OnceLock;

    // compiling the embedded WebAssembly component takes about a second: once per process
    static OPTIMIZER: OnceLock<Result<WasmstanOptimizer, String>> = OnceLock::new();
    let optimizer = OPTIMIZER
        .get_or_init(|| {
            std::panic::catch_unwind(WasmstanOptimizer::new)
                .map_err(|_| "the embedded Prophet WebAssembly image failed to load".to_string())
        })
        .clone()
        .map_err(ForecastError::Model)?;
    let day = season.daily.ok_or_else(|| {
        ForecastError::Invalid("Prophet is used here only on series with a daily cycle".into())
    })?;
    let step = 86_400 / day.max(1) as i64;
    let err = |what: &str, e: augurs::prophet::Error| {
        ForecastError::Model(format!("Prophet {what} failed: {e}"))
    };
    // timestamps from 0: Prophet's Fourier terms only need the spacing to be right
    let ds: Vec<i64> = (0..y.len())
        .map(|i| 1_704_067_200 + i as i64 * step)
        .collect();
    let data = TrainingData::new(ds, y.to_vec()).map_err(|e| err("input", e))?;
    let opts = ProphetOptions {
        daily_seasonality: SeasonalityOption::Manual(true),
        weekly_seasonality: SeasonalityOption::Manual(
            season.weekly.is_some_and(|w| 2 * w <= y.len()),
        ),
        yearly_seasonality: SeasonalityOption::Manual(false),
        interval_width: IntervalWidth::try_new(level).map_err(|e| err("options", e))?,
        ..ProphetOptions::default()
    };
    let mut model = Prophet::new(opts, optimizer);
    model
        .fit(data, Default::default())
        .map_err(|e| err("fit", e))?;
    let future: Vec<i64> = (y.len()..y.len() + horizon)
        .map(|i| 1_704_067_200 + i as i64 * step)
        .collect();
    let p = model
        .predict(PredictionData::new(future))
        .map_err(|e| err("forecast", e))?;
    let point = p.yhat.point;
    let lower = p.yhat.lower.unwrap_or_else(|| point.clone());
    let upper = p.yhat.upper.unwrap_or_else(|| point.clone());
    finite(
        Prediction {
            point,
            lower,
            upper,
        },
        "Prophet",
    )
}

/// Without the `prophet` feature: a clear refusal.
#[cfg(not(feature = "prophet"))]
fn prophet(
    _y: &[f64],
    _season: &Seasonality,
    _horizon: usize,
    _level: f64,
) -> Result<Prediction, ForecastError> {
    Err(ForecastError::Invalid(
        "this build has no Prophet model: rebuild with `cargo build --release --features prophet`, or omit model to let the backtest choose among the built-in models".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles() {
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.05) + 1.644854).abs() < 1e-5);
    }

    #[test]
    fn seasonal_naive_repeats_the_last_season_and_widens() {
        let y: Vec<f64> = (0..20).map(|i| (i % 4) as f64).collect();
        let p = seasonal_naive(&y, 4, 8, 0.9).unwrap();
        assert_eq!(p.point, vec![0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0]);
        assert!(p.lower.iter().zip(&p.point).all(|(l, v)| l <= v));
    }

    fn daily_weekly(days: usize) -> (Vec<f64>, Seasonality) {
        let y: Vec<f64> = (0..days * 288)
            .map(|i| {
                let d = (i % 288) as f64 / 288.0;
                // additive weekly effect (Prophet's default seasonality mode)
                let weekend = if (i / 288) % 7 >= 5 { -60.0 } else { 0.0 };
                let wobble = ((i * 7919) % 13) as f64 - 6.0;
                200.0 + 120.0 * (2.0 * std::f64::consts::PI * (d - 0.25)).sin() + weekend + wobble
            })
            .collect();
        let season = Seasonality {
            daily: Some(288),
            weekly: Some(2016),
            proposed: vec![],
            acf_daily: None,
            acf_weekly: None,
            day: 288,
        };
        (y, season)
    }

    #[cfg(feature = "prophet")]
    #[test]
    fn prophet_forecasts_a_daily_and_weekly_cycle() {
        // three weeks of history, forecasting a Wednesday (Prophet's smooth weekly Fourier
        // terms cannot follow the step from weekend to Monday; mid-week they can)
        let (y, season) = daily_weekly(24);
        let (train, test) = y.split_at(23 * 288);
        let p = predict(ModelKind::Prophet, train, &season, 288, 0.9).unwrap();
        assert_eq!(p.point.len(), 288);
        let mae = p
            .point
            .iter()
            .zip(test)
            .map(|(f, a)| (f - a).abs())
            .sum::<f64>()
            / 288.0;
        // seasonal naive (one day back) errs by the noise of two days; a model of the cycle
        // errs by the noise of one
        let snaive = test
            .iter()
            .zip(&train[train.len() - 288..])
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / 288.0;
        assert!(
            mae < 0.8 * snaive,
            "Prophet MAE {mae} vs seasonal naive {snaive}"
        );
        let inside = test
            .iter()
            .enumerate()
            .filter(|(i, a)| p.lower[*i] <= **a && **a <= p.upper[*i])
            .count();
        assert!(inside as f64 / 288.0 > 0.7, "coverage {inside}/288");
        assert!(
            p.lower
                .iter()
                .zip(&p.point)
                .zip(&p.upper)
                .all(|((l, v), u)| l <= v && v <= u)
        );
    }

    #[cfg(not(feature = "prophet"))]
    #[test]
    fn prophet_is_refused_clearly_without_the_feature() {
        let (y, season) = daily_weekly(3);
        let e = predict(ModelKind::Prophet, &y, &season, 12, 0.9)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--features prophet"), "{e}");
        assert!(ModelKind::Prophet.applies(&season, true));
        assert!(!ModelKind::candidates(&season, true).contains(&ModelKind::Prophet));
    }

    #[test]
    fn recent_median_takes_the_last_day() {
        // day = 4 steps: the window is the last four values, whatever came before
        let y = [100.0, 100.0, 1.0, 9.0, 3.0, 5.0];
        let p = recent_median(&y, 4, 3, 0.5).unwrap();
        // sorted window 1, 3, 5, 9: median at index round(1.5) = 2 → 5; 25% → index 1 → 3;
        // 75% → index round(2.25) = 2 → 5
        assert_eq!(p.point, vec![5.0; 3]);
        assert_eq!(p.lower, vec![3.0; 3]);
        assert_eq!(p.upper, vec![5.0; 3]);
    }

    #[test]
    fn log_scale_models_forecast_the_median_and_refuse_negative_values() {
        // a flat level of 100 with rare bursts 50× higher: the median is 100, the mean far above
        let y: Vec<f64> = (0..2000)
            .map(|i| {
                if i % 97 == 0 {
                    5000.0
                } else {
                    100.0 + (i % 7) as f64
                }
            })
            .collect();
        let season = Seasonality {
            daily: None,
            weekly: None,
            proposed: vec![],
            acf_daily: None,
            acf_weekly: None,
            day: 288,
        };
        let log = predict(ModelKind::EtsLog, &y, &season, 12, 0.9).unwrap();
        assert!(
            log.point.iter().all(|v| (90.0..120.0).contains(v)),
            "{:?}",
            log.point
        );
        // the interval widens upwards on the original scale
        assert!(log.upper[0] - log.point[0] > log.point[0] - log.lower[0]);
        assert!(log.lower.iter().all(|v| *v >= 0.0));
        let mut neg = y.clone();
        neg[5] = -1.0;
        let e = predict(ModelKind::EtsLog, &neg, &season, 12, 0.9)
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-negative"), "{e}");
        assert!(!ModelKind::EtsLog.applies(&season, false));
        assert!(ModelKind::candidates(&season, false).contains(&ModelKind::Ets));
        assert!(!ModelKind::candidates(&season, false).contains(&ModelKind::EtsLog));
        // without a cycle: the robust level models only
        assert_eq!(
            ModelKind::candidates(&season, true),
            vec![ModelKind::RecentMedian, ModelKind::EtsLog]
        );
        // ETS on the raw values follows the level too
        let raw = predict(ModelKind::Ets, &y[..1900], &season, 12, 0.9).unwrap();
        assert!(raw.point.iter().all(|v| v.is_finite() && *v > 50.0));
    }
}
