//! Bounding and summarising series: downsampling that keeps min/max/avg per bucket, and a
//! per-series summary (min, max, mean, last, p50/p95/p99, trend).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Summary of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Points summarised.
    pub count: usize,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Last value.
    pub last: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Least-squares slope, in value units per hour.
    pub trend_per_hour: f64,
}

/// A bucket of a downsampled series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Bucket {
    /// Start of the bucket (unix seconds).
    pub t: i64,
    /// Smallest value in the bucket.
    pub min: f64,
    /// Largest value in the bucket.
    pub max: f64,
    /// Mean of the bucket.
    pub avg: f64,
}

/// Largest magnitude summarised or downsampled. Sums of a few thousand values beyond it
/// overflow to infinity (and a mean or trend of `inf` would be written as JSON `null`,
/// against the output schema); such values are left out like `NaN` and `±Inf` are.
pub const MAX_SUMMARISED: f64 = 1e300;

/// Whether a value takes part in summaries and downsampling.
pub fn usable(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_SUMMARISED
}

/// Percentile by linear interpolation between closest ranks (`sorted` ascending, non-empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.len() == 1 {
        return sorted[0];
    }
    let rank = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Summarise the [`usable`] points; `None` when there are none.
pub fn summarize(points: &[(i64, f64)]) -> Option<Summary> {
    let pts: Vec<(i64, f64)> = points.iter().copied().filter(|(_, v)| usable(*v)).collect();
    if pts.is_empty() {
        return None;
    }
    let mut values: Vec<f64> = pts.iter().map(|(_, v)| *v).collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let t0 = pts[0].0 as f64;
    let tmean = pts
        .iter()
        .map(|(t, _)| (*t as f64 - t0) / 3600.0)
        .sum::<f64>()
        / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, v) in &pts {
        let x = (*t as f64 - t0) / 3600.0 - tmean;
        sxy += x * (v - mean);
        sxx += x * x;
    }
    let last = values[values.len() - 1];
    values.sort_by(f64::total_cmp);
    Some(Summary {
        count: values.len(),
        min: values[0],
        max: values[values.len() - 1],
        mean,
        last,
        p50: percentile(&values, 0.50),
        p95: percentile(&values, 0.95),
        p99: percentile(&values, 0.99),
        trend_per_hour: if sxx > 0.0 { sxy / sxx } else { 0.0 },
    })
}

/// Downsample to at most `max_points` buckets of equal time width, keeping min, max and
/// average of each; returns the buckets and whether anything was merged.
pub fn downsample(points: &[(i64, f64)], max_points: usize) -> (Vec<Bucket>, bool) {
    let pts: Vec<(i64, f64)> = points.iter().copied().filter(|(_, v)| usable(*v)).collect();
    if pts.len() <= max_points.max(1) {
        return (
            pts.iter()
                .map(|&(t, v)| Bucket {
                    t,
                    min: v,
                    max: v,
                    avg: v,
                })
                .collect(),
            false,
        );
    }
    let (first, last) = (pts[0].0, pts[pts.len() - 1].0);
    let width = ((last - first) as f64 / max_points as f64).max(1.0);
    let mut out: Vec<Bucket> = Vec::with_capacity(max_points);
    let mut sums: Vec<(f64, usize)> = Vec::with_capacity(max_points);
    for (t, v) in pts {
        let idx = (((t - first) as f64 / width) as usize).min(max_points - 1);
        let start = first + (idx as f64 * width) as i64;
        match out.last_mut() {
            Some(b) if b.t == start => {
                b.min = b.min.min(v);
                b.max = b.max.max(v);
                if let Some(s) = sums.last_mut() {
                    s.0 += v;
                    s.1 += 1;
                }
            }
            _ => {
                out.push(Bucket {
                    t: start,
                    min: v,
                    max: v,
                    avg: v,
                });
                sums.push((v, 1));
            }
        }
    }
    for (b, (sum, n)) in out.iter_mut().zip(sums) {
        b.avg = sum / n as f64;
    }
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_known_series() {
        let pts: Vec<(i64, f64)> = (0..101).map(|i| (i * 3600, i as f64)).collect();
        let s = summarize(&pts).unwrap();
        assert_eq!((s.count, s.min, s.max, s.last), (101, 0.0, 100.0, 100.0));
        assert!((s.mean - 50.0).abs() < 1e-9);
        assert!(
            (s.p50 - 50.0).abs() < 1e-9
                && (s.p95 - 95.0).abs() < 1e-9
                && (s.p99 - 99.0).abs() < 1e-9
        );
        assert!((s.trend_per_hour - 1.0).abs() < 1e-9);
        assert!(summarize(&[(0, f64::NAN)]).is_none());
        // 1e308 twice sums to inf: left out, so that nothing comes out infinite
        assert!(summarize(&[(0, 1e308), (60, 1e308)]).is_none());
        let s = summarize(&[(0, 1e300), (60, -1e300), (120, 1e308), (180, 1e300)]).unwrap();
        assert_eq!(s.count, 3);
        assert!(s.mean.is_finite() && s.trend_per_hour.is_finite(), "{s:?}");
        let (b, _) = downsample(&[(0, 1e308), (60, 1.0), (120, f64::INFINITY)], 1);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].avg, 1.0);
    }

    #[test]
    fn downsampling_keeps_extremes_and_bounds_the_size() {
        let mut pts: Vec<(i64, f64)> = (0..10_000).map(|i| (i * 60, 1.0)).collect();
        pts[5_000].1 = 99.0;
        pts[7_000].1 = -5.0;
        let (b, merged) = downsample(&pts, 100);
        assert!(merged);
        assert!(b.len() <= 100);
        assert_eq!(b.iter().map(|x| x.max).fold(f64::MIN, f64::max), 99.0);
        assert_eq!(b.iter().map(|x| x.min).fold(f64::MAX, f64::min), -5.0);
        let (b, merged) = downsample(&pts[..50], 100);
        assert!(!merged);
        assert_eq!(b.len(), 50);
    }
}
