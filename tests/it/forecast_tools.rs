//! forecast_load and recommend_replicas end to end on the sandbox (its Prometheus serves two
//! weeks of request rates with daily and weekly cycles).

use serde_json::{Value, json};

use crate::fixture::start;

fn rps(service: &str) -> Value {
    json!({"query": {"source": "prometheus", "promql": format!("http_requests_per_second{{service=\"{service}\"}}")}})
}

#[tokio::test]
async fn forecast_load_finds_the_cycles_and_beats_seasonal_naive() {
    let f = start().await;
    let v = f
        .ok(
            "forecast_load",
            json!({"history": rps("checkout"), "horizon": "2h"}),
        )
        .await;
    assert_eq!(v["step_seconds"], 300);
    assert_eq!(
        v["seasonality"],
        json!(["daily (288 steps)", "weekly (2016 steps)"])
    );
    assert_eq!(v["forecast"].as_array().unwrap().len(), 24);
    let mase = v["backtest"]["mase"].as_f64().unwrap();
    assert!(
        mase < 1.0,
        "the chosen model beats seasonal naive: MASE {mase} ({})",
        v["candidates"]
    );
    for s in v["forecast"].as_array().unwrap() {
        let (lo, p, hi) = (
            s["lower"].as_f64().unwrap(),
            s["point"].as_f64().unwrap(),
            s["upper"].as_f64().unwrap(),
        );
        assert!(lo <= p && p <= hi, "{s}");
        assert!(p > 0.0 && p < 400.0, "{s}");
    }
    assert!(v["peak_upper"].as_f64().unwrap() >= v["forecast"][0]["point"].as_f64().unwrap());
    let last_history = jiff::Timestamp::now().as_second();
    assert!(v["forecast"][0]["t"].as_i64().unwrap() > last_history - 600);
}

#[tokio::test]
async fn forecast_load_bad_input() {
    let f = start().await;
    let short = json!({"series": {"timestamps": (0..100).map(|i| 1_700_000_000 + i * 300).collect::<Vec<_>>(), "values": vec![1.0; 100]}});
    for (args, want) in [
        (json!({"history": short}), "at least 24 h"),
        (
            json!({"history": {"series": {"timestamps": [1, 2], "values": [1.0]}}}),
            "2 timestamps but 1 values",
        ),
        (json!({"history": {}}), "exactly one"),
        (
            json!({"history": {"series": {"timestamps": ["yesterday", 2, 3], "values": [1.0, 2.0, 3.0]}}}),
            "timestamps[0]",
        ),
        (
            json!({"history": rps("checkout"), "horizon": "0s"}),
            "horizon",
        ),
        (
            json!({"history": rps("checkout"), "horizon": "30d"}),
            "horizon",
        ),
        (json!({"history": rps("checkout"), "level": 1.2}), "level"),
        (
            json!({"history": {"series": {"timestamps": [3, 2, 1], "values": [1.0, 2.0, 3.0]}}}),
            "not sorted",
        ),
        #[cfg(not(feature = "prophet"))]
        (
            json!({"history": rps("checkout"), "model": "prophet"}),
            "--features prophet",
        ),
        (
            json!({"history": rps("checkout"), "model": "arima"}),
            "model",
        ),
    ] {
        let e = f.err("forecast_load", args.clone()).await;
        assert!(e.contains(want), "{args}: {e}");
    }
}

#[tokio::test]
async fn recommend_replicas_proposes_the_call_to_make() {
    let f = start().await;
    // no HPA: a scale_deployment call, never below the current 4 replicas
    let v = f
        .ok("recommend_replicas", json!({"namespace": "shop", "name": "checkout", "history": rps("checkout"), "capacity_per_pod": 20.0, "lead": "1h"}))
        .await;
    assert_eq!(v["current_replicas"], 4);
    let proposed = v["plan"]["proposed"].as_i64().unwrap();
    assert!(proposed >= 4);
    let expected_raw = (v["peak_upper"].as_f64().unwrap() / (0.7 * 20.0)).ceil() as i64;
    assert_eq!(v["plan"]["raw"], expected_raw);
    if proposed > 4 {
        assert_eq!(v["action"], "scale_deployment");
        assert_eq!(
            v["call"]["arguments"],
            json!({"namespace": "shop", "name": "checkout", "replicas": proposed})
        );
    } else {
        assert_eq!(v["action"], "none");
    }

    // an HPA owns payment-api: raise its minReplicas for the window and lower it back after
    let v = f
        .ok("recommend_replicas", json!({"namespace": "payments", "name": "payment-api", "history": rps("payment-api"), "capacity_per_pod": 2.0}))
        .await;
    assert_eq!(v["hpa"], "payment-api");
    assert_eq!(v["target_utilization"], 0.7, "the HPA's CPU target of 70%");
    assert_eq!(
        v["plan"]["proposed"], 12,
        "capped at maxReplicas: {}",
        v["plan"]
    );
    assert_eq!(v["action"], "adjust_hpa");
    assert_eq!(
        v["call"]["arguments"],
        json!({"namespace": "payments", "name": "payment-api", "min_replicas": 12})
    );
    assert_eq!(v["revert"]["arguments"]["min_replicas"], 3);

    let e = f.err("recommend_replicas", json!({"namespace": "shop", "name": "checkout", "history": rps("checkout"), "capacity_per_pod": 0})).await;
    assert!(e.contains("capacity_per_pod"), "{e}");
    let e = f.err("recommend_replicas", json!({"namespace": "shop", "name": "ghost", "history": rps("checkout"), "capacity_per_pod": 5})).await;
    assert!(e.contains("does not exist"), "{e}");
}

#[tokio::test]
async fn forecast_accuracy_compares_a_stored_forecast_with_what_happened() {
    let f = start().await;
    let now = jiff::Timestamp::now().as_second();
    let ts = |t: i64| jiff::Timestamp::from_second(t).unwrap().to_string();
    // a forecast made "three hours ago", so the actual values are in
    let mut history = rps("cart");
    history["window"] =
        json!({"start": ts(now - 13 * 86_400), "end": ts(now - 3 * 3600), "step": "5m"});
    let v = f
        .ok(
            "forecast_load",
            json!({"history": history, "horizon": "2h"}),
        )
        .await;
    let id = v["forecast_id"].as_str().expect("stored").to_string();
    let r = f.ok("forecast_accuracy", json!({"forecast_id": id})).await;
    assert_eq!(r["forecast_steps"], 24);
    let rep = &r["report"];
    assert!(rep["steps"].as_u64().unwrap() >= 20, "{rep}");
    assert!(rep["mape"].as_f64().unwrap() < 25.0, "{rep}");
    assert!(rep["coverage"].as_f64().unwrap() >= 0.5, "{rep}");
    assert!(rep["mase"].as_f64().is_some());
    // made-up actuals far above the forecast: biased, under-predicted, re-fit
    let pairs = r["pairs"].as_array().unwrap();
    let times: Vec<i64> = pairs.iter().map(|p| p["t"].as_i64().unwrap()).collect();
    let values: Vec<f64> = pairs
        .iter()
        .map(|p| p["actual"].as_f64().unwrap() * 3.0)
        .collect();
    let r = f.ok("forecast_accuracy", json!({"forecast_id": id, "actual": {"series": {"timestamps": times, "values": values}}})).await;
    assert_eq!(r["report"]["refit"], true);
    assert_eq!(r["report"]["under_prediction_rate"], 1.0);
    assert!(r["report"]["tracking_signal"].as_f64().unwrap() > 4.0);
    let e = f
        .err("forecast_accuracy", json!({"forecast_id": "fc-nope"}))
        .await;
    assert!(e.contains("no forecast"), "{e}");
}

#[tokio::test]
async fn rightsizing_follows_the_vpa_defaults_and_bumps_memory_after_oom_kills() {
    let f = start().await;
    let cpu = json!({"source": "prometheus", "promql": "container_cpu_usage_cores{namespace=\"payments\"}"});
    let mem = json!({"source": "prometheus", "promql": "container_memory_working_set_bytes{namespace=\"payments\"}"});
    let v = f.ok("rightsizing", json!({"namespace": "payments", "name": "payment-api", "cpu_query": cpu, "memory_query": mem})).await;
    assert_eq!(v["replicas"], 3);
    let c = &v["containers"][0];
    assert_eq!(c["container"], "payment-api");
    assert_eq!(c["cpu_request"], "500m");
    assert_eq!(c["memory_limit"], "768Mi");
    assert_eq!(c["oom_kills"], 3);
    // CPU: three pods ~0.12 cores ±60% daily → p90 well under the 500m request: a saving
    let cpu_target = c["cpu"]["target"].as_f64().unwrap();
    assert!(cpu_target > 0.1 && cpu_target < 0.4, "{c}");
    assert!(
        c["cpu"]["lower_bound"].as_f64().unwrap() <= cpu_target
            && cpu_target <= c["cpu"]["upper_bound"].as_f64().unwrap()
    );
    assert!(v["cpu_saving_cores"].as_f64().unwrap() > 0.0);
    // memory: the OOM kills at the 768Mi limit bump samples to 921.6Mi, so the target is above the limit
    let mem_target = c["memory"]["target"].as_f64().unwrap() / (1024.0 * 1024.0);
    assert!(mem_target > 768.0, "{mem_target}");
    assert_eq!(
        c["recommended"]["requests.memory"],
        format!("{}Mi", mem_target.ceil() as i64)
    );
    let warnings = c["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("HPA payment-api scales on CPU")),
        "{warnings:?}"
    );
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("OOM")));

    let v = f
        .ok("rightsizing", json!({"namespace": "payments", "name": "payment-api", "cpu_query": cpu, "memory_query": mem, "profile": "aggressive"}))
        .await;
    assert_eq!(
        v["containers"][0]["recommended"]["limits.cpu"],
        "none (no CPU limit)"
    );
    let e = f.err("rightsizing", json!({"namespace": "payments", "name": "payment-api", "container": "nope", "cpu_query": cpu, "memory_query": mem})).await;
    assert!(e.contains("payment-api"), "{e}");
}

#[tokio::test]
async fn forecast_load_draws_a_chart_as_image_content() {
    use base64::Engine as _;
    let f = start().await;
    let r = f
        .call(
            "forecast_load",
            json!({"history": rps("checkout"), "horizon": "6h", "chart": true}),
        )
        .await;
    assert_ne!(r.is_error, Some(true));
    let image = r
        .content
        .iter()
        .find_map(|c| c.as_image())
        .expect("image content");
    assert_eq!(image.mime_type, "image/png");
    let png = base64::engine::general_purpose::STANDARD
        .decode(&image.data)
        .unwrap();
    assert_eq!(&png[..4], &[0x89, b'P', b'N', b'G']);
    if let Some(path) = std::env::var_os("EKS_OPS_MCP_DUMP_CHART") {
        std::fs::write(path, &png).unwrap();
    }
    // without chart: no image
    let r = f
        .call("forecast_load", json!({"history": rps("checkout")}))
        .await;
    assert!(r.content.iter().all(|c| c.as_image().is_none()));
}
