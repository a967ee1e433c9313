//! Integration tests of the Prometheus client against a real Prometheus.
//!
//! `scripts/services/prometheus.sh start` runs one on loopback with a week of backfilled
//! history and prints `EKS_OPS_MCP_TEST_PROMETHEUS_URL=…`. Without that variable the tests
//! needing Prometheus are skipped, unless `EKS_OPS_MCP_REQUIRE_SERVICES` is set, which
//! makes them fail. Validation and unreachable-endpoint tests need no server and always run.
//!
//! The expected values come from the same formulas as the script's generator (see the
//! header of scripts/services/prometheus.sh); keep both in step.

use std::f64::consts::PI;
use std::time::{Duration, Instant};

use eks_ops_mcp::metrics::prometheus::PrometheusClient;
use eks_ops_mcp::metrics::{MetricsError, Series, Window};
use jiff::Timestamp;

const STEP: i64 = 300;
const WEEK: i64 = 604_800;
const DAY: i64 = 86_400;
const TIMEOUT: Duration = Duration::from_secs(10);

// ---- The generator's formulas ---------------------------------------------------------

fn day(t: i64) -> f64 {
    (2.0 * PI * (t % DAY) as f64 / DAY as f64).sin()
}

fn week(t: i64) -> f64 {
    (2.0 * PI * (t % WEEK) as f64 / WEEK as f64).sin()
}

/// `http_requests_per_second{service}` at `t` (written with 3 decimals).
fn rps(service: &str, t: i64) -> f64 {
    match service {
        "checkout" => 100.0 + 40.0 * day(t) + 15.0 * week(t),
        "cart" => 50.0 + 20.0 * day(t) + 5.0 * week(t),
        other => panic!("no such service {other}"),
    }
}

/// `container_memory_working_set_bytes{pod="payment-api-7c9d8f6b5-x2k4q"}` (rounded).
fn climbing_memory(t: i64, end: i64) -> f64 {
    268_435_456.0 + 512.0 * (t - (end - WEEK)) as f64 + 4_194_304.0 * day(t)
}

const FLAT_MEMORY: f64 = 314_572_800.0;
const CLIMBING_POD: &str = "payment-api-7c9d8f6b5-x2k4q";
const FLAT_POD: &str = "payment-api-7c9d8f6b5-m8n2z";

fn assert_rps(service: &str, t: i64, got: f64) {
    let want = rps(service, t);
    assert!(
        (got - want).abs() <= 0.000_501,
        "{service} at {t}: got {got}, want {want:.3}"
    );
}

// ---- Fixtures --------------------------------------------------------------------------

fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The client of the test Prometheus, or `None` (skip) when it is not configured.
fn prometheus() -> Option<PrometheusClient> {
    init();
    match std::env::var("EKS_OPS_MCP_TEST_PROMETHEUS_URL") {
        Ok(url) if !url.trim().is_empty() => {
            Some(PrometheusClient::new(&url, None, TIMEOUT).expect("test Prometheus URL is valid"))
        }
        _ => {
            if std::env::var_os("EKS_OPS_MCP_REQUIRE_SERVICES").is_some() {
                panic!(
                    "EKS_OPS_MCP_REQUIRE_SERVICES is set but EKS_OPS_MCP_TEST_PROMETHEUS_URL is \
                     not: run `scripts/services/prometheus.sh start` and export the \
                     EKS_OPS_MCP_TEST_PROMETHEUS_URL=… line it prints"
                );
            }
            eprintln!(
                "skipped: EKS_OPS_MCP_TEST_PROMETHEUS_URL is not set (run \
                 scripts/services/prometheus.sh start)"
            );
            None
        }
    }
}

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn window(start: i64, end: i64, step: i64) -> Window {
    Window {
        start: ts(start),
        end: ts(end),
        step: Duration::from_secs(step as u64),
    }
}

/// The end of the backfilled history (a multiple of 300 s), from the marker series.
async fn history_end(c: &PrometheusClient) -> i64 {
    let s = c
        .instant("last_over_time(eks_ops_mcp_backfill_end_seconds[8d])", None)
        .await
        .expect("marker query");
    assert_eq!(
        s.len(),
        1,
        "the marker series is missing: was Prometheus started by scripts/services/prometheus.sh?"
    );
    let end = s[0].points[0].1 as i64;
    assert_eq!(end % STEP, 0);
    let now = Timestamp::now().as_second();
    assert!(
        end <= now && now - end < 7 * DAY,
        "history ends at {end}, now is {now}: restart the test Prometheus"
    );
    end
}

fn only<'a>(series: &'a [Series], key: &str, value: &str) -> &'a Series {
    let found: Vec<_> = series
        .iter()
        .filter(|s| s.labels.get(key).map(String::as_str) == Some(value))
        .collect();
    assert_eq!(found.len(), 1, "{key}={value} in {series:?}");
    found[0]
}

// ---- Against the real Prometheus -------------------------------------------------------

#[tokio::test]
async fn range_over_the_backfilled_week() {
    let Some(c) = prometheus() else { return };
    let end = history_end(&c).await;
    let start = end - WEEK;

    let s = c
        .range("http_requests_per_second", &window(start, end, STEP))
        .await
        .unwrap();
    assert_eq!(s.len(), 2, "{s:?}");
    for service in ["checkout", "cart"] {
        let series = only(&s, "service", service);
        assert_eq!(series.labels["__name__"], "http_requests_per_second");
        assert_eq!(series.points.len(), 2017, "{service}");
        for (k, &(t, v)) in series.points.iter().enumerate() {
            assert_eq!(t, start + k as i64 * STEP);
            assert_rps(service, t, v);
        }
    }

    let s = c
        .range(
            "container_memory_working_set_bytes",
            &window(start, end, STEP),
        )
        .await
        .unwrap();
    assert_eq!(s.len(), 2, "{s:?}");
    let climbing = only(&s, "pod", CLIMBING_POD);
    assert_eq!(climbing.labels["namespace"], "shop");
    assert_eq!(climbing.labels["container"], "payment-api");
    assert_eq!(climbing.points.len(), 2017);
    for &(t, v) in &climbing.points {
        let want = climbing_memory(t, end);
        assert!(
            (v - want).abs() <= 0.5,
            "memory at {t}: got {v}, want {want}"
        );
        assert_eq!(v, v.round(), "whole bytes");
    }
    let first = climbing.points[0].1;
    let last = climbing.points[2016].1;
    assert!(last - first > 250.0 * 1024.0 * 1024.0, "{first} → {last}");
    let flat = only(&s, "pod", FLAT_POD);
    assert!(flat.points.iter().all(|&(_, v)| v == FLAT_MEMORY));

    // A coarser step samples the same history.
    let s = c
        .range(
            "http_requests_per_second{service=\"checkout\"}",
            &window(start, end, 3600),
        )
        .await
        .unwrap();
    assert_eq!(s[0].points.len(), 169);
    for &(t, v) in &s[0].points {
        assert_eq!((t - start) % 3600, 0);
        assert_rps("checkout", t, v);
    }
}

#[tokio::test]
async fn range_now_minus_seven_days() {
    let Some(c) = prometheus() else { return };
    let end = history_end(&c).await;
    let now = Timestamp::now();
    let w = Window {
        start: now - jiff::SignedDuration::from_hours(7 * 24),
        end: now,
        step: Duration::from_secs(STEP as u64),
    };
    let s = c
        .range("http_requests_per_second{service=\"cart\"}", &w)
        .await
        .unwrap();
    assert_eq!(s.len(), 1);
    let points = &s[0].points;
    // Evaluation times that are at most 5 minutes past a sample (the lookback) have a
    // value: the latest sample at or before them.
    let lag = now.as_second() - end;
    assert!(
        points.len() as i64 >= 2016 - lag / STEP - 1,
        "{} points, history ended {lag} s ago",
        points.len()
    );
    for &(t, v) in points {
        let sample = t.div_euclid(STEP) * STEP;
        assert!(sample <= end && sample >= end - WEEK, "{t}");
        assert_rps("cart", sample, v);
    }
}

#[tokio::test]
async fn instant_queries() {
    let Some(c) = prometheus() else { return };
    let end = history_end(&c).await;

    // A vector at a given time: one single-point series per element.
    let s = c
        .instant("http_requests_per_second", Some(ts(end)))
        .await
        .unwrap();
    assert_eq!(s.len(), 2);
    for service in ["checkout", "cart"] {
        let series = only(&s, "service", service);
        assert_eq!(series.points.len(), 1);
        assert_eq!(series.points[0].0, end);
        assert_rps(service, end, series.points[0].1);
    }
    // In the middle of the week, between samples: the latest sample before.
    let mid = end - 3 * DAY - 120;
    let s = c
        .instant(
            "http_requests_per_second{service=\"checkout\"}",
            Some(ts(mid)),
        )
        .await
        .unwrap();
    assert_eq!(s[0].points[0].0, mid);
    assert_rps("checkout", mid - mid.rem_euclid(STEP), s[0].points[0].1);

    // Aggregations.
    let s = c
        .instant(
            "max_over_time(container_memory_working_set_bytes{pod=\"payment-api-7c9d8f6b5-x2k4q\"}[8d])",
            None,
        )
        .await
        .unwrap();
    assert_eq!(s.len(), 1);
    assert!(s[0].points[0].1 > 500.0 * 1024.0 * 1024.0, "{s:?}");

    // Scalars: one series without labels.
    let s = c.instant("1 + 1", None).await.unwrap();
    assert_eq!(s.len(), 1);
    assert!(s[0].labels.is_empty());
    assert_eq!(s[0].points[0].1, 2.0);
    let now = Timestamp::now().as_second();
    assert!((s[0].points[0].0 - now).abs() < 60);

    // NaN and infinities, as Prometheus encodes them ("NaN", "+Inf", "-Inf").
    let nan = c.instant("0/0", None).await.unwrap();
    assert!(nan[0].points[0].1.is_nan());
    let inf = c.instant("1/0", None).await.unwrap();
    assert_eq!(inf[0].points[0].1, f64::INFINITY);
    let neg = c.instant("-1/0", None).await.unwrap();
    assert_eq!(neg[0].points[0].1, f64::NEG_INFINITY);
    let s = c
        .instant(
            "http_requests_per_second{service=\"cart\"} * 0 / 0",
            Some(ts(end)),
        )
        .await
        .unwrap();
    assert!(s[0].points[0].1.is_nan());
}

#[tokio::test]
async fn label_matching() {
    let Some(c) = prometheus() else { return };
    let end = history_end(&c).await;
    let at = Some(ts(end));

    let s = c
        .instant("http_requests_per_second{service=\"cart\"}", at)
        .await
        .unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].labels.iter().collect::<Vec<_>>(),
        [
            (
                &"__name__".to_owned(),
                &"http_requests_per_second".to_owned()
            ),
            (&"service".to_owned(), &"cart".to_owned())
        ]
    );
    let s = c
        .instant("http_requests_per_second{service=~\"c.*\"}", at)
        .await
        .unwrap();
    assert_eq!(s.len(), 2);
    let s = c
        .instant("http_requests_per_second{service!=\"cart\"}", at)
        .await
        .unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].labels["service"], "checkout");
    let s = c
        .instant(
            "container_memory_working_set_bytes{namespace=\"shop\",pod=~\"payment-api-.*\"}",
            at,
        )
        .await
        .unwrap();
    assert_eq!(s.len(), 2);
    let s = c
        .instant(
            "sum by (namespace) (container_memory_working_set_bytes)",
            at,
        )
        .await
        .unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].labels.len(), 1);
    assert_eq!(s[0].labels["namespace"], "shop");
    let want = climbing_memory(end, end) + FLAT_MEMORY;
    assert!((s[0].points[0].1 - want).abs() <= 0.5);
    // No match: no series, not an error.
    let s = c
        .instant("http_requests_per_second{service=\"nope\"}", at)
        .await
        .unwrap();
    assert!(s.is_empty());
    let s = c
        .range(
            "http_requests_per_second{service=\"nope\"}",
            &window(end - DAY, end, STEP),
        )
        .await
        .unwrap();
    assert!(s.is_empty());
}

#[tokio::test]
async fn bad_promql_is_a_bad_query() {
    let Some(c) = prometheus() else { return };
    for q in [
        "sum(rate(http_requests_per_second[5m])",
        "http_requests_per_second{service=}",
    ] {
        let e = c.instant(q, None).await.unwrap_err();
        match &e {
            MetricsError::BadQuery { endpoint, message } => {
                assert_eq!(endpoint, c.endpoint());
                assert!(message.contains("parse error"), "{q}: {message}");
            }
            other => panic!("{q}: {other:?}"),
        }
        assert!(e.to_string().contains(c.endpoint()));
    }
    let now = Timestamp::now().as_second();
    let e = c
        .range(
            "rate(http_requests_per_second",
            &window(now - 3600, now, 60),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, MetricsError::BadQuery { ref message, .. } if message.contains("parse error")),
        "{e:?}"
    );
    // A type error found by the parser: rate() of an instant vector.
    let e = c
        .instant("rate(http_requests_per_second)", None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, MetricsError::BadQuery { ref message, .. } if message.contains("range vector")),
        "{e:?}"
    );
}

// ---- Without a server ------------------------------------------------------------------

#[tokio::test]
async fn unreachable_endpoint() {
    init();
    // A loopback port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let c = PrometheusClient::new(&url, None, Duration::from_secs(3)).unwrap();
    let started = Instant::now();
    let e = c.instant("up", None).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    match &e {
        MetricsError::Unreachable { endpoint, message } => {
            assert_eq!(endpoint, &url);
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let m = e.to_string();
    assert!(m.contains(&url), "{m}");
    // to a tool's caller: an upstream failure with what to do, not "a defect in the server"
    let t = eks_ops_mcp::error::ToolError::from(e);
    assert_eq!(t.code(), "upstream_error", "{t}");
    assert!(
        t.to_string().contains(&url) && t.to_string().contains("retry"),
        "{t}"
    );
    let now = Timestamp::now().as_second();
    let e = c
        .range("up", &window(now - 600, now, 60))
        .await
        .unwrap_err();
    assert!(matches!(e, MetricsError::Unreachable { .. }), "{e:?}");
}

#[tokio::test]
async fn validations_before_sending() {
    init();
    // Nothing listens there; validation fails before any connection.
    let c = PrometheusClient::new("http://127.0.0.1:9", None, TIMEOUT).unwrap();
    let now = Timestamp::now().as_second();

    let e = c.range("", &window(now - 60, now, 15)).await.unwrap_err();
    assert!(
        matches!(e, MetricsError::Invalid(ref m) if m.contains("empty")),
        "{e:?}"
    );
    let e = c.instant("   ", None).await.unwrap_err();
    assert!(
        matches!(e, MetricsError::Invalid(ref m) if m.contains("empty")),
        "{e:?}"
    );

    let e = c.range("up", &window(now, now - 60, 15)).await.unwrap_err();
    assert!(
        matches!(e, MetricsError::Invalid(ref m) if m.contains("before")),
        "{e:?}"
    );

    let e = c.range("up", &window(now - 60, now, 0)).await.unwrap_err();
    assert!(
        matches!(e, MetricsError::Invalid(ref m) if m.contains("step")),
        "{e:?}"
    );

    // A week at 30 s: 20,161 points per series, over Prometheus' 11,000.
    let e = c
        .range("up", &window(now - WEEK, now, 30))
        .await
        .unwrap_err();
    let MetricsError::Invalid(m) = &e else {
        panic!("{e:?}")
    };
    assert!(m.contains("20161 points"), "{m}");
    assert!(m.contains("11000"), "{m}");
    assert!(m.contains("step of at least 55s"), "{m}");
    assert!(m.contains("window of at most"), "{m}");
    // 11,000 points exactly pass validation (and then fail to connect).
    let e = c
        .range("up", &window(now - 10_999 * 60, now, 60))
        .await
        .unwrap_err();
    assert!(matches!(e, MetricsError::Unreachable { .. }), "{e:?}");

    for bad in ["", "localhost:9090", "ftp://127.0.0.1", "http://:9090"] {
        let e = PrometheusClient::new(bad, None, TIMEOUT).unwrap_err();
        assert!(matches!(e, MetricsError::Invalid(_)), "{bad}: {e:?}");
        assert!(e.to_string().contains("http"), "{bad}: {e}");
    }
}
