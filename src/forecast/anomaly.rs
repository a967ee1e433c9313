//! Anomaly bands in the manner of CloudWatch anomaly detection: an expected value that
//! follows the daily (and weekly) cycle, ± k robust standard deviations of the recent
//! residuals; points outside the band are anomalies.
//!
//! The detector only looks back: the expected value at time t is the median of the values
//! at the same time of day on earlier days (same time of week once two weeks of history
//! exist), or of the last hour when the series has no daily cycle; the spread is 1.4826 ×
//! the median absolute residual of the previous two days. So it can run on a live stream
//! and its evaluation on labelled data is honest.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::history::Regular;
use super::seasonality::Seasonality;

/// The band at one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BandPoint {
    /// Unix seconds.
    pub t: i64,
    /// Observed value.
    pub value: f64,
    /// Expected value.
    pub expected: f64,
    /// Lower edge of the band.
    pub lower: f64,
    /// Upper edge of the band.
    pub upper: f64,
}

/// A point outside the band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Anomaly {
    /// Unix seconds.
    pub t: i64,
    /// Observed value.
    pub value: f64,
    /// Expected value.
    pub expected: f64,
    /// How far outside, in robust standard deviations (negative: below).
    pub deviation_sigmas: f64,
}

/// The band over a history, and the anomalies in it.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The band from the first step that has enough history (warm-up excluded).
    pub band: Vec<BandPoint>,
    /// Points outside the band.
    pub anomalies: Vec<Anomaly>,
    /// Steps of warm-up without a band.
    pub warmup: usize,
    /// How the expected value was formed.
    pub method: String,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Compute the band with `k` standard deviations (CloudWatch's default is 2).
pub fn detect(series: &Regular, season: &Seasonality, k: f64) -> Detection {
    let y = &series.values;
    let n = y.len();
    let day = (86_400 / series.step.max(1)) as usize;
    let hour = (3_600 / series.step.max(1)).max(1) as usize;
    let use_week = season.weekly.is_some() && n >= 2 * season.weekly.unwrap_or(usize::MAX);
    let (lag, depth, method) = if use_week {
        (
            season.weekly.unwrap_or(day * 7),
            3,
            "median of the same time of week on up to 3 earlier weeks",
        )
    } else if season.daily.is_some() {
        (
            day,
            7,
            "median of the same time of day on up to 7 earlier days",
        )
    } else {
        (1, hour, "median of the last hour (no daily cycle found)")
    };
    let expected: Vec<Option<f64>> = (0..n)
        .map(|t| {
            let mut past: Vec<f64> = (1..=depth)
                .filter_map(|j| t.checked_sub(j * lag))
                .map(|i| y[i])
                .collect();
            if lag > 1 && past.is_empty() {
                return None;
            }
            if past.is_empty() {
                return None;
            }
            Some(median(&mut past))
        })
        .collect();
    let resid: Vec<Option<f64>> = (0..n).map(|t| expected[t].map(|e| y[t] - e)).collect();
    let spread_window = (2 * day).max(12);
    let first = expected.iter().position(Option::is_some).unwrap_or(n);
    let warmup = (first + day.min(spread_window / 2)).min(n);
    let mut band = Vec::new();
    let mut anomalies = Vec::new();
    // the spread is re-estimated once an hour (it moves slowly; sorting a two-day window at
    // every step would cost n × window × log window)
    let mut spread: Option<(usize, f64, f64)> = None;
    for t in warmup..n {
        let Some(e) = expected[t] else { continue };
        if spread.is_none_or(|(at, _, _)| t >= at + hour) {
            let lo = t.saturating_sub(spread_window);
            let window: Vec<f64> = resid[lo..t].iter().flatten().copied().collect();
            if window.len() < 12 {
                continue;
            }
            let m = median(&mut window.clone());
            let mut dev: Vec<f64> = window.iter().map(|r| (r - m).abs()).collect();
            let mad_sigma = 1.4826 * median(&mut dev);
            // Quantised data (integer counts) can have a median absolute deviation of 0;
            // then the mean absolute deviation stands in.
            let mean_dev = 1.2533 * dev.iter().sum::<f64>() / dev.len() as f64;
            spread = Some((t, m, if mad_sigma > 0.0 { mad_sigma } else { mean_dev }));
        }
        let Some((_, m, raw_sigma)) = spread else {
            continue;
        };
        // a floor of 0.5% of the level keeps a very regular series from flagging rounding noise
        let sigma = raw_sigma.max(0.005 * e.abs()).max(1e-9);
        let (lower, upper) = (e + m - k * sigma, e + m + k * sigma);
        let p = BandPoint {
            t: series.time(t),
            value: y[t],
            expected: e + m,
            lower,
            upper,
        };
        if y[t] > upper || y[t] < lower {
            anomalies.push(Anomaly {
                t: p.t,
                value: y[t],
                expected: p.expected,
                deviation_sigmas: (y[t] - p.expected) / sigma,
            });
        }
        band.push(p);
    }
    Detection {
        band,
        anomalies,
        warmup,
        method: method.into(),
    }
}

/// Group anomalies closer than `gap` seconds into events (first, last unix seconds).
pub fn events(anomalies: &[Anomaly], gap: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for a in anomalies {
        match out.last_mut() {
            Some(e) if a.t - e.1 <= gap => e.1 = a.t,
            _ => out.push((a.t, a.t)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::seasonality;

    #[test]
    fn a_spike_in_a_daily_cycle_is_found_and_nothing_else() {
        let day = 288;
        let mut x = 99u64;
        let mut y: Vec<f64> = (0..day * 10)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((x >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 4.0;
                100.0
                    + 50.0 * (2.0 * std::f64::consts::PI * (i % day) as f64 / day as f64).sin()
                    + noise
            })
            .collect();
        y[day * 8 + 100] += 60.0;
        let reg = Regular {
            start: 0,
            step: 300,
            values: y,
        };
        let season = seasonality::detect(&reg.values, 300);
        assert_eq!(season.daily, Some(day));
        let d = detect(&reg, &season, 4.0);
        assert_eq!(d.anomalies.len(), 1, "{:?}", d.anomalies);
        assert_eq!(d.anomalies[0].t, ((day * 8 + 100) * 300) as i64);
        assert!(d.anomalies[0].deviation_sigmas > 3.0);
        assert!(
            d.band
                .iter()
                .all(|b| b.lower <= b.expected && b.expected <= b.upper)
        );
    }

    #[test]
    fn events_merge_neighbours() {
        let a = |t| Anomaly {
            t,
            value: 0.0,
            expected: 0.0,
            deviation_sigmas: 3.0,
        };
        assert_eq!(
            events(&[a(0), a(300), a(5000)], 600),
            vec![(0, 300), (5000, 5000)]
        );
    }
}
