//! Anomaly bands on the Numenta Anomaly Benchmark's real CloudWatch series: per file, the
//! labelled windows hit and the false alarms per day at k = 2 and k = 3; and the time to
//! compute a band over two weeks of 5-minute data.
//!
//! Run: `cargo bench --bench nab` (data: EKS_OPS_MCP_NAB_DIR or ../shared/data/nab).

use std::path::PathBuf;
use std::time::Instant;

use eks_ops_mcp::forecast::evaluate::score_nab;
use eks_ops_mcp::forecast::history::Regular;
use eks_ops_mcp::forecast::{anomaly, seasonality};

fn main() {
    let dir = std::env::var_os("EKS_OPS_MCP_NAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nab"));
    let k2 = score_nab(&dir, "realAWSCloudwatch/", 2.0).expect("NAB data");
    let k3 = score_nab(&dir, "realAWSCloudwatch/", 3.0).expect("NAB data");
    println!(
        "| file | windows | hit k=2 | false alarms/day k=2 | hit k=3 | false alarms/day k=3 | expected value |"
    );
    println!("|---|---|---|---|---|---|---|");
    let (mut w, mut h2, mut h3, mut f2, mut f3, mut days) = (0, 0, 0, 0, 0, 0.0);
    for (a, b) in k2.iter().zip(&k3) {
        println!(
            "| {} | {} | {} | {:.2} | {} | {:.2} | {} |",
            a.file.trim_start_matches("realAWSCloudwatch/"),
            a.windows,
            a.hit,
            a.false_per_day(),
            b.hit,
            b.false_per_day(),
            if a.method.contains("time of day") {
                "daily cycle"
            } else if a.method.contains("week") {
                "weekly cycle"
            } else {
                "last hour"
            }
        );
        w += a.windows;
        h2 += a.hit;
        h3 += b.hit;
        f2 += a.false_alarms;
        f3 += b.false_alarms;
        days += a.days;
    }
    println!(
        "| **all {} files** | {w} | {h2} ({:.0}%) | {:.2} | {h3} ({:.0}%) | {:.2} | |",
        k2.len(),
        100.0 * h2 as f64 / w as f64,
        f2 as f64 / days,
        100.0 * h3 as f64 / w as f64,
        f3 as f64 / days
    );

    // time to compute a band over two weeks of 5-minute data
    let day = 288;
    let mut x = 42u64;
    let values: Vec<f64> = (0..14 * day)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (x >> 33) as f64 / (1u64 << 31) as f64 - 0.5;
            100.0
                + 40.0 * (2.0 * std::f64::consts::PI * (i % day) as f64 / day as f64).sin()
                + 5.0 * noise
        })
        .collect();
    let reg = Regular {
        start: 0,
        step: 300,
        values,
    };
    let mut times = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let season = seasonality::detect(&reg.values, reg.step);
        let d = anomaly::detect(&reg, &season, 2.0);
        std::hint::black_box(d);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "\nband over two weeks of 5-minute data (4032 points, seasonality detection included): median {:.2} ms, max {:.2} ms",
        times[times.len() / 2],
        times[times.len() - 1]
    );
}
