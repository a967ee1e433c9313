//! A namespace-scoped server (`--namespaces`) reads metrics of its namespaces only, and the
//! forecasting and sizing tools refuse infinite and absurd values where they enter.

use serde_json::{Value, json};

use crate::fixture::{start_scoped, start_with};

fn prom(q: &str) -> Value {
    json!({"source": "prometheus", "promql": q})
}

#[tokio::test]
async fn a_scoped_server_answers_promql_only_about_its_namespaces() {
    let f = start_scoped(&["shop"]).await;
    let v = f
        .ok(
            "query_metrics",
            json!({"query": prom(r#"http_requests_per_second{namespace="shop"}"#), "instant": true}),
        )
        .await;
    assert_eq!(v["series_total"], 2, "checkout and cart, not payment-api");
    let v = f
        .ok(
            "query_metrics",
            json!({"query": prom(r#"http_requests_per_second{namespace=~"shop", service="checkout"}"#),
                   "window": {"last": "1h", "step": "5m"}}),
        )
        .await;
    assert_eq!(v["series"][0]["labels"]["service"], "checkout");

    for (q, instant, want) in [
        (
            "http_requests_per_second",
            true,
            "`http_requests_per_second` has no namespace matcher",
        ),
        (
            "http_requests_per_second",
            false,
            "`http_requests_per_second` has no namespace matcher",
        ),
        (
            r#"http_requests_per_second{namespace="payments"}"#,
            true,
            r#"has namespace="payments", which does not limit it"#,
        ),
        (
            r#"http_requests_per_second{namespace!="payments"}"#,
            false,
            r#"namespace!="payments""#,
        ),
        (
            r#"http_requests_per_second{namespace=~"shop|payments"}"#,
            true,
            "does not limit",
        ),
        (r#"{__name__=~".+"}"#, true, "has no namespace matcher"),
        (
            r#"http_requests_per_second{namespace="shop"} / http_request_error_ratio offset 1h"#,
            false,
            "`http_request_error_ratio offset 1h` has no namespace matcher",
        ),
    ] {
        let e = f
            .err(
                "query_metrics",
                json!({"query": prom(q), "instant": instant}),
            )
            .await;
        assert!(e.contains(want), "{q}: {e}");
        assert!(e.contains("limited to the namespaces shop"), "{q}: {e}");
    }
    // checked before the source is even looked for: this server has no CloudWatch
    let e = f
        .err(
            "query_metrics",
            json!({"query": {"source": "cloudwatch", "cloudwatch": {"namespace": "AWS/EC2", "metric_name": "CPUUtilization", "stat": "Average"}}}),
        )
        .await;
    assert!(e.contains("CloudWatch namespace `AWS/EC2`"), "{e}");
    let e = f
        .err(
            "query_metrics",
            json!({"query": {"source": "cloudwatch", "cloudwatch": {"expression": "SEARCH('{ContainerInsights,Namespace} payments', 'Average', 300)"}}}),
        )
        .await;
    assert!(e.contains("uses `SEARCH`"), "{e}");
}

#[tokio::test]
async fn every_metrics_tool_goes_through_the_scope() {
    let f = start_scoped(&["shop"]).await;
    let unscoped = prom(r#"http_request_error_ratio{service="checkout"}"#);
    let e = f
        .err("detect_anomalies", json!({"query": unscoped.clone()}))
        .await;
    assert!(e.contains("has no namespace matcher"), "{e}");
    let v = f
        .ok(
            "detect_anomalies",
            json!({"query": prom(r#"http_request_error_ratio{namespace="shop", service="checkout"}"#)}),
        )
        .await;
    assert_eq!(v["labels"]["namespace"], "shop");

    let e = f
        .err(
            "forecast_load",
            json!({"history": {"query": unscoped.clone()}}),
        )
        .await;
    assert!(e.contains("has no namespace matcher"), "{e}");
    let e = f
        .err(
            "recommend_replicas",
            json!({"namespace": "shop", "name": "checkout", "capacity_per_pod": 50.0,
                   "history": {"query": prom("http_requests_per_second")}}),
        )
        .await;
    assert!(e.contains("has no namespace matcher"), "{e}");
    let e = f
        .err(
            "recommend_replicas",
            json!({"namespace": "payments", "name": "payment-api", "capacity_per_pod": 50.0,
                   "history": {"query": prom(r#"http_requests_per_second{namespace="shop"}"#)}}),
        )
        .await;
    assert!(e.contains("outside this server's scope"), "{e}");
    let e = f
        .err(
            "rightsizing",
            json!({"namespace": "shop", "name": "checkout",
                   "cpu_query": prom(r#"container_cpu_usage_cores{namespace="shop"}"#),
                   "memory_query": prom(r#"container_memory_working_set_bytes{namespace="payments"}"#)}),
        )
        .await;
    assert!(
        e.contains("refused: memory_query: ") && e.contains(r#"namespace="payments""#),
        "{e}"
    );

    // an inline series is the agent's own data; the actual values read later are checked
    let t0 = jiff::Timestamp::now().as_second() / 300 * 300 - 2 * 86_400;
    let ts: Vec<i64> = (0..576).map(|i| t0 + i * 300).collect();
    let vs: Vec<f64> = (0..576)
        .map(|i| 100.0 + 50.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin())
        .collect();
    let v = f
        .ok(
            "forecast_load",
            json!({"history": {"series": {"timestamps": ts, "values": vs}}, "horizon": "1h"}),
        )
        .await;
    let id = v["forecast_id"].as_str().expect("stored").to_string();
    let e = f
        .err(
            "forecast_accuracy",
            json!({"forecast_id": id, "actual": {"query": prom("http_requests_per_second"), "window": {"last": "1h"}}}),
        )
        .await;
    assert!(e.contains("has no namespace matcher"), "{e}");
}

/// The built-in scenario with one more CPU series that jumps to 1e308 cores an hour ago.
fn scenario_with_an_absurd_sample() -> eks_ops_mcp::sandbox::Scenario {
    let mut v: Value =
        serde_json::from_str(eks_ops_mcp::sandbox::scenario::DEFAULT_SCENARIO).unwrap();
    v["metrics"].as_array_mut().unwrap().push(json!({
        "name": "container_cpu_usage_cores",
        "labels": {"namespace": "payments", "pod": "payment-api-7c9d8f6b5d-k7x2p", "container": "sidecar"},
        "history": "3d",
        "shape": {"kind": "step", "before": 0.1, "after": 1e308, "at": "${now-1h}"}
    }));
    eks_ops_mcp::sandbox::Scenario::parse(&v.to_string(), jiff::Timestamp::now()).unwrap()
}

#[tokio::test]
async fn infinite_and_absurd_values_are_refused_where_they_enter() {
    let f = start_with(scenario_with_an_absurd_sample()).await;
    // rightsizing once answered "saving -inf cores" and a memory limit of i64::MAX Mi
    let e = f
        .err(
            "rightsizing",
            json!({"namespace": "payments", "name": "payment-api",
                   "cpu_query": prom(r#"container_cpu_usage_cores{namespace="payments"}"#),
                   "memory_query": prom(r#"container_memory_working_set_bytes{namespace="payments"}"#)}),
        )
        .await;
    assert!(
        e.contains("invalid arguments: cpu_query: ") && e.contains("answered 1e308 cores"),
        "{e}"
    );
    assert!(e.contains("container=sidecar"), "{e}");
    assert!(e.contains("between 0 and 2048 cores"), "{e}");

    let absurd = prom(r#"container_cpu_usage_cores{container="sidecar"}"#);
    for (tool, args) in [
        ("detect_anomalies", json!({"query": absurd.clone()})),
        (
            "forecast_load",
            json!({"history": {"query": absurd.clone()}}),
        ),
    ] {
        let e = f.err(tool, args).await;
        assert!(
            e.contains("answered 1e308") && e.contains("within ±1e15"),
            "{tool}: {e}"
        );
    }

    // query_metrics shows what the source says, but leaves values beyond ±1e300 out of the
    // points and summary (their sums overflow) and counts them
    let v = f
        .ok(
            "query_metrics",
            json!({"query": absurd.clone(), "window": {"last": "3h", "step": "5m"}}),
        )
        .await;
    let s = &v["series"][0];
    let left_out = s["unusable_points"].as_u64().unwrap();
    assert!((12..=13).contains(&left_out), "{s}");
    assert_eq!(s["summary"]["max"], 0.1, "{s}");
    assert!(s["summary"]["mean"].is_f64(), "{s}");

    let t0 = 1_700_000_000i64;
    let ts: Vec<i64> = (0..600).map(|i| t0 + i * 300).collect();
    let mut vs = vec![1.0; 600];
    vs[7] = 1e308;
    let e = f
        .err(
            "forecast_load",
            json!({"history": {"series": {"timestamps": ts.clone(), "values": vs.clone()}}}),
        )
        .await;
    assert!(
        e.contains("series.values[7] = 1e308 is absurdly large") && e.contains("within ±1e15"),
        "{e}"
    );
    vs[7] = -2e15;
    let e = f
        .err(
            "recommend_replicas",
            json!({"namespace": "payments", "name": "payment-api", "capacity_per_pod": 50.0,
                   "history": {"series": {"timestamps": ts, "values": vs}}}),
        )
        .await;
    assert!(e.contains("series.values[7] = -2e15"), "{e}");
}
