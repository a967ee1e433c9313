//! Container requests and limits from usage history, the way the Kubernetes Vertical Pod
//! Autoscaler's recommender sets them (and a KRR-style "aggressive" profile).
//!
//! Default (VPA recommender defaults): CPU target at the 90th percentile of usage samples,
//! lower bound p50, upper bound p95; memory target at the 90th percentile of daily peaks
//! (8 days); both +15% safety margin; at least 25 mCPU and 250 MiB; after an OOM kill the
//! memory sample becomes max(1.2 × usage at the kill, usage + 100 MiB).
//! Aggressive (KRR's simple strategy): CPU p95 and no CPU limit; memory the maximum + 15%.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metrics::summary::percentile;

/// Safety margin added to targets.
pub const MARGIN: f64 = 0.15;
/// Least CPU recommended (cores).
pub const MIN_CPU: f64 = 0.025;
/// Least memory recommended (bytes).
pub const MIN_MEMORY: f64 = 250.0 * 1024.0 * 1024.0;
/// OOM bump: multiply the usage at the kill by this …
pub const OOM_FACTOR: f64 = 1.2;
/// … or add this, whichever is more (bytes).
pub const OOM_MIN_BUMP: f64 = 100.0 * 1024.0 * 1024.0;

/// Recommendation profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The VPA recommender's defaults.
    #[default]
    Vpa,
    /// KRR-style: CPU p95 without a CPU limit, memory maximum + 15%.
    Aggressive,
}

/// A recommended resource.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Recommended {
    /// Request to set.
    pub target: f64,
    /// Below this the container is likely starved.
    pub lower_bound: f64,
    /// Above this is likely waste.
    pub upper_bound: f64,
}

/// CPU recommendation from usage samples (cores).
pub fn cpu(samples: &[f64], profile: Profile) -> Option<Recommended> {
    let mut s: Vec<f64> = samples
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let with_margin = |v: f64| (v * (1.0 + MARGIN)).max(MIN_CPU);
    Some(match profile {
        Profile::Vpa => Recommended {
            target: with_margin(percentile(&s, 0.90)),
            lower_bound: with_margin(percentile(&s, 0.50)),
            upper_bound: with_margin(percentile(&s, 0.95)),
        },
        Profile::Aggressive => {
            let t = with_margin(percentile(&s, 0.95));
            Recommended {
                target: t,
                lower_bound: with_margin(percentile(&s, 0.50)),
                upper_bound: t,
            }
        }
    })
}

/// Memory recommendation from (unix seconds, bytes) samples; `ooms` are the memory usages at
/// OOM kills (the container's limit when nothing better is known).
pub fn memory(samples: &[(i64, f64)], ooms: &[f64], profile: Profile) -> Option<Recommended> {
    let pts: Vec<(i64, f64)> = samples
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite() && *v >= 0.0)
        .collect();
    if pts.is_empty() {
        return None;
    }
    // daily peaks
    let mut peaks: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
    for (t, v) in &pts {
        let e = peaks.entry(t.div_euclid(86_400)).or_insert(f64::MIN);
        *e = e.max(*v);
    }
    let mut daily: Vec<f64> = peaks.into_values().collect();
    for usage in ooms {
        daily.push((usage * OOM_FACTOR).max(usage + OOM_MIN_BUMP));
    }
    daily.sort_by(f64::total_cmp);
    let with_margin = |v: f64| (v * (1.0 + MARGIN)).max(MIN_MEMORY);
    Some(match profile {
        Profile::Vpa => Recommended {
            target: with_margin(percentile(&daily, 0.90)),
            lower_bound: with_margin(percentile(&daily, 0.50)),
            upper_bound: with_margin(percentile(&daily, 0.95)),
        },
        Profile::Aggressive => {
            let max = daily[daily.len() - 1];
            Recommended {
                target: with_margin(max),
                lower_bound: with_margin(percentile(&daily, 0.50)),
                upper_bound: with_margin(max),
            }
        }
    })
}

/// Parse a Kubernetes CPU quantity (`250m`, `1`, `0.5`) into cores.
pub fn parse_cpu(q: &str) -> Option<f64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<f64>().ok().map(|v| v / 1000.0);
    }
    q.parse().ok()
}

/// Parse a Kubernetes memory quantity (`512Mi`, `1Gi`, `1G`, `1000000`) into bytes.
pub fn parse_memory(q: &str) -> Option<f64> {
    let q = q.trim();
    for (suffix, mult) in [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|v| v * mult);
        }
    }
    q.parse().ok()
}

/// Format cores as a Kubernetes quantity (millicores, rounded up).
pub fn fmt_cpu(cores: f64) -> String {
    format!("{}m", (cores * 1000.0).ceil() as i64)
}

/// Format bytes as a Kubernetes quantity (MiB, rounded up).
pub fn fmt_memory(bytes: f64) -> String {
    format!("{}Mi", (bytes / (1024.0 * 1024.0)).ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: f64 = 1024.0 * 1024.0;

    #[test]
    fn vpa_cpu_defaults_on_a_hand_computed_case() {
        // 0.01 … 1.00 cores: p90 = 0.901, p50 = 0.505, p95 = 0.9505 (linear interpolation)
        let s: Vec<f64> = (1..=100).map(|i| i as f64 / 100.0).collect();
        let r = cpu(&s, Profile::Vpa).unwrap();
        assert!((r.target - 0.901 * 1.15).abs() < 1e-9);
        assert!((r.lower_bound - 0.505 * 1.15).abs() < 1e-9);
        assert!((r.upper_bound - 0.9505 * 1.15).abs() < 1e-9);
        // tiny usage: the 25 mCPU minimum
        assert_eq!(cpu(&[0.001; 10], Profile::Vpa).unwrap().target, MIN_CPU);
        assert!((cpu(&s, Profile::Aggressive).unwrap().target - 0.9505 * 1.15).abs() < 1e-9);
    }

    #[test]
    fn vpa_memory_uses_daily_peaks_and_bumps_after_oom() {
        // 8 days, peak of day d = (300 + 10 d) MiB
        let samples: Vec<(i64, f64)> = (0..8)
            .flat_map(|d| {
                (0..24).map(move |h| {
                    (
                        d * 86_400 + h * 3600,
                        (200.0
                            + if h == 12 {
                                100.0 + 10.0 * d as f64
                            } else {
                                0.0
                            })
                            * MI,
                    )
                })
            })
            .collect();
        let r = memory(&samples, &[], Profile::Vpa).unwrap();
        // peaks 300..370 MiB: p90 = 363 MiB (linear), +15%
        assert!(
            (r.target - 363.0 * MI * 1.15).abs() < 1.0,
            "{}",
            r.target / MI
        );
        // an OOM at 768 MiB becomes a sample of max(1.2 × 768, 768 + 100) = 921.6 MiB; with the
        // 8 peaks, p90 = rank 7.2 → 370 + 0.2 × (921.6 − 370) = 480.32 MiB, +15%
        let r = memory(&samples, &[768.0 * MI], Profile::Vpa).unwrap();
        assert!(
            (r.target - 480.32 * MI * 1.15).abs() < 1.0,
            "{}",
            r.target / MI
        );
        assert!(
            (memory(&samples, &[768.0 * MI], Profile::Aggressive)
                .unwrap()
                .target
                - 921.6 * MI * 1.15)
                .abs()
                < 1.0
        );
        // small usage: the 250 MiB minimum
        assert_eq!(
            memory(&[(0, 10.0 * MI)], &[], Profile::Vpa).unwrap().target,
            MIN_MEMORY
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_cpu("250m"), Some(0.25));
        assert_eq!(parse_cpu("2"), Some(2.0));
        assert_eq!(parse_memory("512Mi"), Some(512.0 * MI));
        assert_eq!(parse_memory("1G"), Some(1e9));
        assert_eq!(fmt_cpu(0.2501), "251m");
        assert_eq!(fmt_memory(300.5 * MI), "301Mi");
    }
}
