//! From a forecast to replicas: enough pods for the forecast's upper bound over the lead
//! window at the target utilisation, within the HPA's bounds and a floor, never fewer than
//! now (scale-in is left to the reactive signal).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Inputs of the replica formula.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityInput {
    /// Highest upper bound of the forecast over the lead window (metric units).
    pub peak_upper: f64,
    /// What one pod handles at 100% (same units).
    pub capacity_per_pod: f64,
    /// Fraction of a pod's capacity to plan for (0 < u ≤ 1).
    pub target_utilization: f64,
    /// Replicas now.
    pub current: i64,
    /// HPA minReplicas, when an HPA owns the workload.
    pub hpa_min: Option<i64>,
    /// HPA maxReplicas, when an HPA owns the workload.
    pub hpa_max: Option<i64>,
    /// Least replicas ever proposed.
    pub floor: i64,
}

/// The replica count and how it was reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CapacityPlan {
    /// ceil(peak / (utilisation × capacity)) before bounds.
    pub raw: i64,
    /// The proposal after floor, HPA bounds and no-scale-in.
    pub proposed: i64,
    /// Each step of the reasoning.
    pub reasoning: Vec<String>,
    /// Whether the proposal changes anything.
    pub changes: bool,
}

/// Apply the formula.
pub fn plan(i: CapacityInput) -> CapacityPlan {
    let per_pod = i.target_utilization * i.capacity_per_pod;
    let raw = (i.peak_upper.max(0.0) / per_pod).ceil() as i64;
    let mut reasoning = vec![format!(
        "peak upper bound {:.3} / ({:.2} target utilisation × {:.3} per pod = {:.3}) → {raw} replica(s)",
        i.peak_upper, i.target_utilization, i.capacity_per_pod, per_pod
    )];
    let mut n = raw;
    if n < i.floor {
        reasoning.push(format!("raised to the floor of {}", i.floor));
        n = i.floor;
    }
    if let Some(min) = i.hpa_min.filter(|m| n < *m) {
        reasoning.push(format!("raised to the HPA's minReplicas {min}"));
        n = min;
    }
    if let Some(max) = i.hpa_max.filter(|m| n > *m) {
        reasoning.push(format!("capped at the HPA's maxReplicas {max} (the forecast needs more: raise maxReplicas or add capacity)"));
        n = max;
    }
    if n < i.current {
        reasoning.push(format!(
            "kept at the current {} replicas: a forecast alone never scales in (the reactive signal decides that)",
            i.current
        ));
        n = i.current;
    }
    CapacityPlan {
        raw,
        proposed: n,
        changes: n != i.current,
        reasoning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(peak: f64, current: i64) -> CapacityInput {
        CapacityInput {
            peak_upper: peak,
            capacity_per_pod: 50.0,
            target_utilization: 0.7,
            current,
            hpa_min: None,
            hpa_max: None,
            floor: 2,
        }
    }

    #[test]
    fn hand_computed_cases() {
        // 400 / (0.7 × 50 = 35) = 11.43 → 12
        let p = plan(input(400.0, 4));
        assert_eq!((p.raw, p.proposed, p.changes), (12, 12, true));
        // exactly 35 per pod: 350 / 35 = 10
        assert_eq!(plan(input(350.0, 4)).proposed, 10);
        // tiny load: the floor
        assert_eq!(plan(input(1.0, 1)).proposed, 2);
        // never a scale-in
        let p = plan(input(100.0, 8));
        assert_eq!((p.raw, p.proposed, p.changes), (3, 8, false));
        // HPA bounds
        let p = plan(CapacityInput {
            hpa_min: Some(3),
            hpa_max: Some(10),
            ..input(400.0, 4)
        });
        assert_eq!(p.proposed, 10);
        assert!(p.reasoning.iter().any(|r| r.contains("maxReplicas 10")));
        assert_eq!(
            plan(CapacityInput {
                hpa_min: Some(5),
                ..input(10.0, 1)
            })
            .proposed,
            5
        );
    }

    #[test]
    fn never_below_floor_nor_current() {
        for peak in [0.0, 0.5, 10.0, 99.0, 1000.0, 1e6] {
            for current in [0, 1, 2, 7, 50] {
                let p = plan(input(peak, current));
                assert!(
                    p.proposed >= 2 && p.proposed >= current,
                    "{peak} {current} {p:?}"
                );
            }
        }
    }
}
