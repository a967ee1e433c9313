//! Seasonal periods of a series: the periodogram (augurs-seasons) proposes, the
//! autocorrelation at exactly one day and one week confirms. Load follows the clock, so
//! periods are snapped to a day and a week rather than taken blindly from the periodogram.

use augurs::seasons::{Detector, PeriodogramDetector};

/// Seasonality found in a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Seasonality {
    /// Steps per day, when daily seasonality is confirmed.
    pub daily: Option<usize>,
    /// Steps per week, when weekly seasonality is confirmed.
    pub weekly: Option<usize>,
    /// Periods (in steps) the periodogram proposed, strongest first.
    pub proposed: Vec<u32>,
    /// Autocorrelation at a lag of one day (when the series is long enough).
    pub acf_daily: Option<f64>,
    /// Autocorrelation at a lag of one week (when the series is long enough).
    pub acf_weekly: Option<f64>,
    /// Steps in one day, whether or not a daily cycle was found.
    pub day: usize,
}

impl Seasonality {
    /// The confirmed periods, shortest first.
    pub fn periods(&self) -> Vec<usize> {
        self.daily.into_iter().chain(self.weekly).collect()
    }

    /// The longest confirmed period.
    pub fn longest(&self) -> Option<usize> {
        self.weekly.or(self.daily)
    }
}

/// Autocorrelation of `x` at `lag`.
pub fn acf(x: &[f64], lag: usize) -> Option<f64> {
    if lag == 0 || lag >= x.len() {
        return None;
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var: f64 = x.iter().map(|v| (v - mean).powi(2)).sum();
    if var <= f64::EPSILON {
        return None;
    }
    let cov: f64 = (lag..x.len())
        .map(|t| (x[t] - mean) * (x[t - lag] - mean))
        .sum();
    Some(cov / var)
}

/// Confirmation threshold for the autocorrelation at one day / one week.
const ACF_CONFIRM: f64 = 0.3;
/// A lower bar when the periodogram also found the period.
const ACF_CONFIRM_WITH_PEAK: f64 = 0.15;

/// Find daily and weekly seasonality of a regular series with `step` seconds between values.
pub fn detect(values: &[f64], step: i64) -> Seasonality {
    let day = (86_400 / step.max(1)) as usize;
    let week = day * 7;
    let proposed: Vec<u32> = if values.len() >= 8 {
        PeriodogramDetector::builder()
            .min_period(2)
            .max_period((values.len() / 2).max(2) as u32)
            .build()
            .detect(values)
    } else {
        Vec::new()
    };
    let near = |p: usize| {
        proposed
            .iter()
            .any(|&q| (q as f64 - p as f64).abs() <= 0.1 * p as f64)
    };
    // Spikes (a burst hundreds of times the median) swamp the autocorrelation of raw values;
    // for non-negative series the autocorrelation of log(1 + v) is checked too.
    let logged: Option<Vec<f64>> = values
        .iter()
        .all(|v| *v >= 0.0)
        .then(|| values.iter().map(|v| v.ln_1p()).collect());
    let confirm = |period: usize| -> (Option<usize>, Option<f64>) {
        if period < 2 || values.len() < 2 * period {
            return (None, None);
        }
        let raw = acf(values, period);
        let log = logged.as_deref().and_then(|l| acf(l, period));
        let r = match (raw, log) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let ok =
            r.is_some_and(|r| r >= ACF_CONFIRM || (near(period) && r >= ACF_CONFIRM_WITH_PEAK));
        (ok.then_some(period), r)
    };
    let (daily, acf_daily) = confirm(day);
    let (weekly, acf_weekly) = confirm(week);
    Seasonality {
        daily,
        weekly,
        proposed,
        acf_daily,
        acf_weekly,
        day,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_daily_and_weekly_cycles() {
        let step = 300;
        let day = 288usize;
        let v: Vec<f64> = (0..day * 21)
            .map(|i| {
                let d = (i % day) as f64 / day as f64;
                let w = (i / day) % 7;
                100.0
                    + 40.0 * (2.0 * std::f64::consts::PI * d).sin()
                    + if w >= 5 { -30.0 } else { 0.0 }
            })
            .collect();
        let s = detect(&v, step);
        assert_eq!(s.daily, Some(day));
        assert_eq!(s.weekly, Some(day * 7));
    }

    #[test]
    fn a_daily_cycle_under_huge_spikes_is_still_found() {
        let day = 288usize;
        let mut x = 3u64;
        let v: Vec<f64> = (0..day * 14)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (x >> 33) as f64 / (1u64 << 31) as f64;
                let base = 50.0
                    + 40.0 * (2.0 * std::f64::consts::PI * (i % day) as f64 / day as f64).sin();
                // a few bursts 300× the level, like Twitter volumes
                if r > 0.998 {
                    base * 300.0
                } else {
                    base * (0.8 + 0.4 * r)
                }
            })
            .collect();
        let s = detect(&v, 300);
        assert_eq!(s.daily, Some(day), "acf {:?}", s.acf_daily);
    }

    #[test]
    fn noise_has_no_seasonality() {
        // a deterministic pseudo-random walk-free noise
        let mut x = 12345u64;
        let v: Vec<f64> = (0..288 * 15)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) as f64 / (1u64 << 31) as f64
            })
            .collect();
        let s = detect(&v, 300);
        assert_eq!(s.daily, None);
        assert_eq!(s.weekly, None);
    }
}
