//! How good were past forecasts: MAPE, MASE, bias, over- and under-prediction (the latter
//! weighted heavier, as Crane does), interval coverage and the tracking signal — and
//! whether to re-fit.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One forecast step set against what happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pair {
    /// Unix seconds.
    pub t: i64,
    /// Forecast.
    pub forecast: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// What happened.
    pub actual: f64,
}

/// The accuracy report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// Steps compared.
    pub steps: usize,
    /// Mean absolute percentage error, in percent (steps with actual 0 skipped).
    pub mape: f64,
    /// Mean absolute scaled error (scale from the training history; < 1 beats seasonal naive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mase: Option<f64>,
    /// Mean of forecast − actual (positive: over-forecasting).
    pub bias: f64,
    /// Share of steps forecast above the actual value.
    pub over_prediction_rate: f64,
    /// Share of steps forecast below the actual value.
    pub under_prediction_rate: f64,
    /// Mean relative over-prediction on over-predicted steps.
    pub over_prediction_mean: f64,
    /// Under-prediction cost, weighted heavier the larger the shortfall (Crane): mean over
    /// steps of −ln(1 − x)/ln(1.25), x = the relative shortfall (capped at 0.99); 1.0 is a
    /// 20% shortfall on every step.
    pub under_prediction_cost: f64,
    /// Share of actual values inside the interval.
    pub coverage: f64,
    /// Sum of errors / mean absolute error: drifts past ±4 when the forecast is biased.
    pub tracking_signal: f64,
    /// Whether to re-fit, and why.
    pub refit: bool,
    /// Reasons for re-fitting (empty when not needed).
    pub reasons: Vec<String>,
}

/// Score forecasts against actual values; `mase_scale` is the in-sample seasonal naive MAE.
pub fn report(pairs: &[Pair], mase_scale: Option<f64>) -> Option<Report> {
    let pairs: Vec<&Pair> = pairs
        .iter()
        .filter(|p| p.actual.is_finite() && p.forecast.is_finite())
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let errors: Vec<f64> = pairs.iter().map(|p| p.actual - p.forecast).collect();
    let mae = errors.iter().map(|e| e.abs()).sum::<f64>() / n;
    let pct: Vec<f64> = pairs
        .iter()
        .filter(|p| p.actual != 0.0)
        .map(|p| ((p.actual - p.forecast) / p.actual).abs())
        .collect();
    let mape = if pct.is_empty() {
        0.0
    } else {
        100.0 * pct.iter().sum::<f64>() / pct.len() as f64
    };
    let over: Vec<&&Pair> = pairs.iter().filter(|p| p.forecast > p.actual).collect();
    let under = pairs.iter().filter(|p| p.forecast < p.actual).count();
    let over_mean = if over.is_empty() {
        0.0
    } else {
        over.iter()
            .map(|p| (p.forecast - p.actual) / p.forecast.abs().max(1e-9))
            .sum::<f64>()
            / over.len() as f64
    };
    let under_cost = pairs
        .iter()
        .map(|p| {
            if p.forecast < p.actual && p.actual > 0.0 {
                let x = ((p.actual - p.forecast) / p.actual).min(0.99);
                -(1.0 - x).ln() / 1.25f64.ln()
            } else {
                0.0
            }
        })
        .sum::<f64>()
        / n;
    let coverage = pairs
        .iter()
        .filter(|p| p.actual >= p.lower && p.actual <= p.upper)
        .count() as f64
        / n;
    let tracking_signal = if mae > 0.0 {
        errors.iter().sum::<f64>() / mae
    } else {
        0.0
    };
    let mase = mase_scale.filter(|s| *s > 0.0).map(|s| mae / s);
    let mut reasons = Vec::new();
    if tracking_signal.abs() > 4.0 {
        reasons.push(format!(
            "tracking signal {tracking_signal:.1} is beyond ±4: the forecast is biased"
        ));
    }
    if let Some(m) = mase.filter(|m| *m > 1.0) {
        reasons.push(format!(
            "MASE {m:.2} is above 1: seasonal naive would have done better"
        ));
    }
    if coverage < 0.8 {
        reasons.push(format!(
            "interval coverage {:.0}% is below 80%",
            coverage * 100.0
        ));
    }
    Some(Report {
        steps: pairs.len(),
        mape,
        mase,
        bias: -errors.iter().sum::<f64>() / n,
        over_prediction_rate: over.len() as f64 / n,
        under_prediction_rate: under as f64 / n,
        over_prediction_mean: over_mean,
        under_prediction_cost: under_cost,
        coverage,
        tracking_signal,
        refit: !reasons.is_empty(),
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(f: f64, a: f64) -> Pair {
        Pair {
            t: 0,
            forecast: f,
            lower: f - 10.0,
            upper: f + 10.0,
            actual: a,
        }
    }

    #[test]
    fn hand_computed_report() {
        let r = report(
            &[
                pair(100.0, 100.0),
                pair(110.0, 100.0),
                pair(80.0, 100.0),
                pair(100.0, 125.0),
            ],
            Some(10.0),
        )
        .unwrap();
        assert_eq!(r.steps, 4);
        // |0| + |-10| + |20| + |25| = 55 → MAE 13.75; MAPE (0 + 10 + 20 + 20) / 4 = 12.5
        assert!((r.mape - 12.5).abs() < 1e-9);
        assert!((r.mase.unwrap() - 1.375).abs() < 1e-9);
        assert!((r.bias - (-8.75)).abs() < 1e-9);
        assert_eq!(
            (r.over_prediction_rate, r.under_prediction_rate),
            (0.25, 0.5)
        );
        // under: x = 0.2 → 1.0; x = 0.2 → 1.0; mean over 4 steps = 0.5
        assert!((r.under_prediction_cost - 0.5).abs() < 1e-9);
        assert_eq!(r.coverage, 0.5);
        // errors 0, -10, 20, 25: sum 35 / MAE 13.75
        assert!((r.tracking_signal - 35.0 / 13.75).abs() < 1e-9);
        assert!(r.refit);
        assert!(
            r.reasons.iter().any(|x| x.contains("MASE"))
                && r.reasons.iter().any(|x| x.contains("coverage"))
        );
    }

    #[test]
    fn a_good_forecast_needs_no_refit() {
        let pairs: Vec<Pair> = (0..20)
            .map(|i| pair(100.0, 100.0 + if i % 2 == 0 { 3.0 } else { -3.0 }))
            .collect();
        let r = report(&pairs, Some(10.0)).unwrap();
        assert!(!r.refit, "{:?}", r.reasons);
        assert!(r.tracking_signal.abs() < 1.0);
        assert!(report(&[], None).is_none());
    }
}
