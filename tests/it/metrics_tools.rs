//! query_metrics and detect_anomalies on the sandbox's Prometheus (generated scenario series).

use serde_json::json;

use crate::fixture::start;

#[tokio::test]
async fn query_metrics_reads_summarises_and_bounds_a_series() {
    let f = start().await;
    let v = f
        .ok(
            "query_metrics",
            json!({"query": {"source": "prometheus", "promql": "http_requests_per_second{service=\"checkout\"}"},
                   "window": {"last": "7d", "step": "5m"}, "max_points": 100}),
        )
        .await;
    assert_eq!(v["source"], "prometheus");
    assert_eq!(v["series_total"], 1);
    let s = &v["series"][0];
    assert_eq!(s["labels"]["service"], "checkout");
    assert_eq!(s["labels"]["__name__"], "http_requests_per_second");
    assert!(s["points_total"].as_u64().unwrap() >= 2000, "a week at 5m");
    assert_eq!(s["downsampled"], true);
    assert!(s["points"].as_array().unwrap().len() <= 100);
    let sum = &s["summary"];
    // base 180 with ±60% daily cycle (peak 288) and a 30% weekend dip, 5% noise (so the
    // largest of ~2000 samples is within 288 × (1 ± 0.25))
    assert!(
        sum["max"].as_f64().unwrap() > 250.0 && sum["max"].as_f64().unwrap() < 360.0,
        "{sum}"
    );
    assert!(sum["min"].as_f64().unwrap() < 80.0, "{sum}");
    assert!(sum["p50"].as_f64().unwrap() > sum["min"].as_f64().unwrap());
    // min/max of the buckets keep the extremes
    let bmax = s["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["max"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(bmax, sum["max"].as_f64().unwrap());

    let v = f.ok("query_metrics", json!({"query": {"source": "prometheus", "promql": "http_requests_per_second"}, "instant": true})).await;
    assert_eq!(v["series_total"], 3, "three services");
    assert_eq!(v["series"][0]["points_total"], 1);
}

#[tokio::test]
async fn query_metrics_bad_input() {
    let f = start().await;
    for (args, want) in [
        (
            json!({"query": {"source": "datadog", "promql": "up"}}),
            "unknown variant `datadog`",
        ),
        (
            json!({"query": {"source": "prometheus", "promql": ""}}),
            "non-empty promql",
        ),
        (
            json!({"query": {"source": "prometheus", "promql": "rate(x[5m])"}}),
            "series selectors",
        ),
        (
            json!({"query": {"source": "prometheus", "promql": "up"}, "window": {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}}),
            "must be after start",
        ),
        (
            json!({"query": {"source": "prometheus", "promql": "up"}, "window": {"last": "400d"}}),
            "at most",
        ),
        (
            json!({"query": {"source": "prometheus", "promql": "up"}, "window": {"last": "30d", "step": "10s"}}),
            "allows at most 11000",
        ),
        (
            json!({"query": {"source": "cloudwatch", "cloudwatch": {"namespace": "AWS/EC2", "metric_name": "CPUUtilization", "stat": "Average"}}}),
            "CloudWatch is not configured",
        ),
        (
            json!({"query": {"source": "prometheus", "promql": "up"}, "max_points": 5}),
            "at least 10",
        ),
    ] {
        let e = f.err("query_metrics", args.clone()).await;
        assert!(e.contains(want), "{args}: {e}");
    }
}

#[tokio::test]
async fn detect_anomalies_flags_the_error_ratio_jump_after_the_bad_rollout() {
    let f = start().await;
    let v = f
        .ok(
            "detect_anomalies",
            json!({"query": {"source": "prometheus", "promql": "http_request_error_ratio{service=\"checkout\"}"},
                   "window": {"last": "2d", "step": "5m"}, "k": 3, "recent": "2h"}),
        )
        .await;
    assert!(v["anomalies_total"].as_u64().unwrap() >= 5, "{v}");
    // every recent anomaly is above the band, after the rollout 47 minutes ago
    let now = jiff::Timestamp::now().as_second();
    for a in v["anomalies"].as_array().unwrap() {
        assert!(a["deviation_sigmas"].as_f64().unwrap() > 3.0);
        assert!(a["t"].as_i64().unwrap() >= now - 50 * 60, "{a}");
    }
    assert!(!v["band"].as_array().unwrap().is_empty());

    // a steady seasonal rate has (almost) nothing to report in its last day
    let v = f
        .ok(
            "detect_anomalies",
            json!({"query": {"source": "prometheus", "promql": "http_requests_per_second{service=\"cart\"}"}, "k": 4, "recent": "1d"}),
        )
        .await;
    assert!(
        v["seasonality"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().starts_with("daily")),
        "{v}"
    );
    assert!(
        v["events"].as_array().unwrap().len() <= 2,
        "{}",
        v["events"]
    );
    let e = f
        .err(
            "detect_anomalies",
            json!({"query": {"source": "prometheus", "promql": "nothing_here"}}),
        )
        .await;
    assert!(e.contains("no series"), "{e}");
    let e = f
        .err(
            "detect_anomalies",
            json!({"query": {"source": "prometheus", "promql": "up"}, "k": 0.1}),
        )
        .await;
    assert!(e.contains("between 1 and 6"), "{e}");
}
