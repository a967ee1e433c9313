//! Anomaly bands on real CloudWatch series of the Numenta Anomaly Benchmark (labelled
//! anomaly windows). The full table is in BENCHMARKS.md (`cargo bench --bench nab`).

use std::path::PathBuf;

use eks_ops_mcp::forecast::evaluate::score_nab;

/// The NAB data: EKS_OPS_MCP_NAB_DIR, else `../shared/data/nab` beside the repository.
pub fn nab_dir() -> PathBuf {
    std::env::var_os("EKS_OPS_MCP_NAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nab"))
}

#[test]
fn bands_find_labelled_anomalies_in_real_cloudwatch_series() {
    let dir = nab_dir();
    assert!(
        dir.join("labels.json").exists(),
        "NAB data not found at {} (set EKS_OPS_MCP_NAB_DIR)",
        dir.display()
    );
    for (k, min_hit_rate, max_false_per_day) in [(2.0, 0.85, 5.0), (3.0, 0.8, 3.0)] {
        let scores = score_nab(&dir, "realAWSCloudwatch/", k).unwrap();
        assert!(scores.len() >= 15, "{} files scored", scores.len());
        let windows: usize = scores.iter().map(|s| s.windows).sum();
        let hit: usize = scores.iter().map(|s| s.hit).sum();
        let days: f64 = scores.iter().map(|s| s.days).sum();
        let false_alarms: usize = scores.iter().map(|s| s.false_alarms).sum();
        let rate = hit as f64 / windows as f64;
        let per_day = false_alarms as f64 / days;
        eprintln!(
            "k={k}: {hit}/{windows} windows hit ({:.0}%), {per_day:.2} false alarms/day",
            rate * 100.0
        );
        assert!(
            rate >= min_hit_rate,
            "k={k}: hit rate {rate:.2} below {min_hit_rate}"
        );
        assert!(
            per_day <= max_false_per_day,
            "k={k}: {per_day:.2} false alarms/day above {max_false_per_day}"
        );
    }
}
