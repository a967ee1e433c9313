//! Integration tests of the CloudWatch client.
//!
//! Two kinds of server, both on loopback:
//!
//! - LocalStack (`scripts/services/localstack.sh start` prints
//!   `EKS_OPS_MCP_TEST_CLOUDWATCH_ENDPOINT=http://127.0.0.1:4566`). Without that variable the
//!   LocalStack tests are skipped, unless `EKS_OPS_MCP_REQUIRE_SERVICES` is set, which makes
//!   them fail. Against it: `PutMetricData` (with the SDK) then `range` for the plain
//!   statistics at two periods, dimension matching and `NextToken` pagination; and
//!   `PutMetricAlarm` (single-metric, extended-statistic, metric-math and anomaly-detection
//!   alarms with `ThresholdMetricId`) then `alarms` with the state and prefix filters.
//! - A recording HTTP server in this file, which answers with hand-encoded CBOR. LocalStack
//!   neither evaluates metric math nor emulates anomaly detectors nor extended statistics
//!   (its `GetMetricData` fails on an expression query), and ignores the state filter of
//!   `DescribeAlarms` when a name prefix is given and does not paginate it. So the request
//!   side of those is checked here: that the CBOR body the SDK sends carries the expression,
//!   its metrics with `ReturnData`, the period and stat, `ScanBy`, `MaxDatapoints`, the
//!   `NextToken` of the next page, and the alarm filters; and that the answers (results
//!   split over pages, `PartialData`, messages, an anomaly-detection alarm) become the right
//!   series and alarms. Also the error mapping (validation → BadQuery, 500 → Server with no
//!   retry, throttling → retried), a server that never answers (Timeout) and a closed port
//!   (Unreachable). These always run.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::config::Credentials;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricDatum, MetricStat, StateValue,
    Statistic,
};
use eks_ops_mcp::metrics::cloudwatch::{
    CloudWatchClient, CloudWatchMetric, CloudWatchQuery, MAX_PAGES,
};
use eks_ops_mcp::metrics::{MetricsError, Series, Window};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_secs(10);
const REGION: &str = "us-east-1";

// ---- Fixtures --------------------------------------------------------------------------

fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Dummy credentials, given to the client directly (no process-wide environment change).
fn creds() -> Credentials {
    Credentials::new("test", "test", None, None, "eks-ops-mcp-tests")
}

async fn client_for(endpoint: &str, timeout: Duration) -> CloudWatchClient {
    CloudWatchClient::with_credentials(REGION.into(), Some(endpoint.into()), timeout, creds())
        .await
        .expect("client builds")
}

/// The LocalStack endpoint, or `None` (skip) when it is not configured.
fn localstack() -> Option<String> {
    init();
    match std::env::var("EKS_OPS_MCP_TEST_CLOUDWATCH_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            if std::env::var_os("EKS_OPS_MCP_REQUIRE_SERVICES").is_some() {
                panic!(
                    "EKS_OPS_MCP_REQUIRE_SERVICES is set but EKS_OPS_MCP_TEST_CLOUDWATCH_ENDPOINT \
                     is not: run `scripts/services/localstack.sh start` and export the \
                     EKS_OPS_MCP_TEST_CLOUDWATCH_ENDPOINT=… line it prints"
                );
            }
            eprintln!(
                "skipped: EKS_OPS_MCP_TEST_CLOUDWATCH_ENDPOINT is not set (run \
                 scripts/services/localstack.sh start)"
            );
            None
        }
    }
}

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn window(start: i64, end: i64, step: u64) -> Window {
    Window {
        start: ts(start),
        end: ts(end),
        step: Duration::from_secs(step),
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn dim(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

fn invalid(r: Result<Vec<Series>, MetricsError>) -> String {
    match r {
        Err(MetricsError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

// ---- Against LocalStack ----------------------------------------------------------------

/// Puts, for minute i in 0..10 after `base`, the values i and i + 10 for Service=a and
/// 100 + i for Service=b, 10 s into the minute.
async fn put_series(cw: &CloudWatchClient, namespace: &str, base: i64) {
    let mut data = Vec::new();
    for i in 0..10i64 {
        let t = DateTime::from_secs(base + 60 * i + 10);
        for (service, value) in [
            ("a", i as f64),
            ("a", (i + 10) as f64),
            ("b", (100 + i) as f64),
        ] {
            data.push(
                MetricDatum::builder()
                    .metric_name("RequestLatency")
                    .dimensions(dim("ClusterName", "test"))
                    .dimensions(dim("Service", service))
                    .timestamp(t)
                    .value(value)
                    .build(),
            );
        }
    }
    cw.sdk()
        .put_metric_data()
        .namespace(namespace)
        .set_metric_data(Some(data))
        .send()
        .await
        .expect("PutMetricData");
}

fn latency(namespace: &str, stat: &str, service: &str) -> CloudWatchQuery {
    CloudWatchQuery::metric(namespace, "RequestLatency", stat)
        .with_dimension("ClusterName", "test")
        .with_dimension("Service", service)
}

#[tokio::test]
async fn range_reads_put_metric_data_from_localstack() {
    let Some(endpoint) = localstack() else {
        return;
    };
    let cw = client_for(&endpoint, TIMEOUT).await;
    assert_eq!(cw.endpoint(), endpoint.trim_end_matches('/'));
    let namespace = unique("EksOpsMcpTest/");
    let now = Timestamp::now().as_second();
    let base = now - now % 60 - 40 * 60;
    put_series(&cw, &namespace, base).await;

    let w = window(base, base + 600, 60);
    let t = |i: i64| base + 60 * i;

    // Each plain statistic at a period of one minute.
    type Expected = fn(i64) -> f64;
    let expect: [(&str, Expected); 5] = [
        ("Average", |i| (i + 5) as f64),
        ("Sum", |i| (2 * i + 10) as f64),
        ("Maximum", |i| (i + 10) as f64),
        ("Minimum", |i| i as f64),
        ("SampleCount", |_| 2.0),
    ];
    for (stat, f) in expect {
        let got = cw
            .range(&latency(&namespace, stat, "a"), &w)
            .await
            .unwrap_or_else(|e| panic!("{stat}: {e}"));
        assert_eq!(got.len(), 1, "{stat}: one series");
        let s = &got[0];
        let want: Vec<(i64, f64)> = (0..10).map(|i| (t(i), f(i))).collect();
        assert_eq!(s.points, want, "{stat}");
        assert_eq!(s.labels["id"], "m1");
        assert_eq!(s.labels["ClusterName"], "test");
        assert_eq!(s.labels["Service"], "a");
        assert_eq!(s.labels["namespace"], namespace);
        assert_eq!(s.labels["metric_name"], "RequestLatency");
        assert_eq!(s.labels["stat"], stat);
        assert!(s.labels.contains_key("label"), "{:?}", s.labels);
        assert!(!s.labels.contains_key("status"), "Complete is not a label");
    }

    // The other dimension value is another series.
    let b = cw
        .range(&latency(&namespace, "Maximum", "b"), &w)
        .await
        .unwrap();
    let want: Vec<(i64, f64)> = (0..10).map(|i| (t(i), (100 + i) as f64)).collect();
    assert_eq!(b[0].points, want);

    // A period of five minutes aggregates five minutes at a time.
    let w5 = window(base, base + 600, 300);
    for (stat, want) in [
        ("Sum", [70.0, 120.0]),
        ("Average", [7.0, 12.0]),
        ("Maximum", [14.0, 19.0]),
        ("Minimum", [0.0, 5.0]),
        ("SampleCount", [10.0, 10.0]),
    ] {
        let got = cw
            .range(&latency(&namespace, stat, "a"), &w5)
            .await
            .unwrap();
        assert_eq!(
            got[0].points,
            vec![(base, want[0]), (base + 300, want[1])],
            "{stat} at 300 s"
        );
    }

    // A label given in the query is the series' label.
    let mut labelled = latency(&namespace, "Sum", "a");
    labelled.label = Some("latency sum".into());
    let got = cw.range(&labelled, &w).await.unwrap();
    assert_eq!(got[0].labels["label"], "latency sum");

    // No data for a dimension value: one series with no points, not an error.
    let none = cw
        .range(&latency(&namespace, "Sum", "nope"), &w)
        .await
        .unwrap();
    assert_eq!(none.len(), 1);
    assert!(none[0].points.is_empty());

    // Pagination: LocalStack does page at MaxDatapoints = 3 (checked with the SDK here),
    // and the client follows NextToken to the same 10 points.
    let page = cw
        .sdk()
        .get_metric_data()
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("m1")
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(&namespace)
                                .metric_name("RequestLatency")
                                .dimensions(dim("ClusterName", "test"))
                                .dimensions(dim("Service", "a"))
                                .build(),
                        )
                        .period(60)
                        .stat("Sum")
                        .build(),
                )
                .build(),
        )
        .start_time(DateTime::from_secs(base))
        .end_time(DateTime::from_secs(base + 600))
        .max_datapoints(3)
        .send()
        .await
        .unwrap();
    assert_eq!(page.metric_data_results()[0].values().len(), 3);
    assert!(page.next_token().is_some(), "LocalStack paginates");
    let paged = cw
        .clone()
        .with_page_datapoints(3)
        .range(&latency(&namespace, "Sum", "a"), &w)
        .await
        .unwrap();
    let want: Vec<(i64, f64)> = (0..10).map(|i| (t(i), (2 * i + 10) as f64)).collect();
    assert_eq!(paged.len(), 1);
    assert_eq!(paged[0].points, want, "4 pages of at most 3 points, merged");
}

#[tokio::test]
async fn alarms_are_read_from_localstack_with_filters() {
    let Some(endpoint) = localstack() else {
        return;
    };
    let cw = client_for(&endpoint, TIMEOUT).await;
    let sdk = cw.sdk();
    let prefix = unique("eks-ops-mcp-test-");
    let name = |s: &str| format!("{prefix}-{s}");
    let ns = "EksOpsMcpTest/Alarms";

    // A single-metric alarm on a plain statistic (LocalStack evaluates these: with no data
    // it stays INSUFFICIENT_DATA).
    sdk.put_metric_alarm()
        .alarm_name(name("cpu-high"))
        .alarm_description("CPU above 80 %")
        .namespace(ns)
        .metric_name("CPUUtilization")
        .dimensions(dim("ClusterName", "prod"))
        .dimensions(dim("NodeGroup", "general"))
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(3)
        .datapoints_to_alarm(2)
        .threshold(80.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm cpu-high");
    // An extended statistic (LocalStack does not evaluate these: its state is what we set).
    sdk.put_metric_alarm()
        .alarm_name(name("latency-p99"))
        .namespace(ns)
        .metric_name("RequestLatency")
        .dimensions(dim("Service", "checkout"))
        .extended_statistic("p99")
        .period(300)
        .evaluation_periods(1)
        .threshold(0.5)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .expect("PutMetricAlarm latency-p99");
    // Metric math: 100 * errors / requests.
    let metric_query = |id: &str, metric: &str, stat: &str, return_data: bool| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace(ns)
                            .metric_name(metric)
                            .dimensions(dim("Service", "checkout"))
                            .build(),
                    )
                    .period(60)
                    .stat(stat)
                    .build(),
            )
            .return_data(return_data)
            .build()
    };
    sdk.put_metric_alarm()
        .alarm_name(name("error-ratio"))
        .metrics(metric_query("m1", "Errors", "Sum", false))
        .metrics(metric_query("m2", "Requests", "Sum", false))
        .metrics(
            MetricDataQuery::builder()
                .id("e1")
                .expression("100 * m1 / m2")
                .label("error %")
                .return_data(true)
                .build(),
        )
        .evaluation_periods(5)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm error-ratio");
    // Anomaly detection: the band is the threshold (ThresholdMetricId).
    sdk.put_metric_alarm()
        .alarm_name(name("cpu-anomaly"))
        .metrics(metric_query("m1", "CPUUtilization", "Average", true))
        .metrics(
            MetricDataQuery::builder()
                .id("ad1")
                .expression("ANOMALY_DETECTION_BAND(m1, 2)")
                .label("CPU (expected)")
                .return_data(true)
                .build(),
        )
        .threshold_metric_id("ad1")
        .evaluation_periods(2)
        .comparison_operator(ComparisonOperator::LessThanLowerOrGreaterThanUpperThreshold)
        .send()
        .await
        .expect("PutMetricAlarm cpu-anomaly");
    for (alarm, state) in [
        ("latency-p99", StateValue::Alarm),
        ("error-ratio", StateValue::Alarm),
        ("cpu-anomaly", StateValue::Ok),
    ] {
        sdk.set_alarm_state()
            .alarm_name(name(alarm))
            .state_value(state)
            .state_reason(format!("set by the test for {alarm}"))
            .send()
            .await
            .expect("SetAlarmState");
    }

    // All four by prefix, sorted by name.
    let all = cw.alarms(None, Some(prefix.clone()), 100).await.unwrap();
    let names: Vec<&str> = all.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            name("cpu-anomaly"),
            name("cpu-high"),
            name("error-ratio"),
            name("latency-p99")
        ]
    );
    let by_name: BTreeMap<&str, _> = all.iter().map(|a| (a.name.as_str(), a)).collect();

    let high = by_name[name("cpu-high").as_str()];
    assert_eq!(high.kind, "metric");
    assert_eq!(high.state, "INSUFFICIENT_DATA");
    assert_eq!(high.description.as_deref(), Some("CPU above 80 %"));
    assert!(high.state_updated.is_some());
    let m = high
        .metric
        .as_ref()
        .expect("single-metric alarm has its metric");
    assert_eq!(m.namespace, ns);
    assert_eq!(m.metric_name, "CPUUtilization");
    assert_eq!(
        m.dimensions,
        BTreeMap::from([
            ("ClusterName".to_owned(), "prod".to_owned()),
            ("NodeGroup".to_owned(), "general".to_owned())
        ])
    );
    assert_eq!(m.stat.as_deref(), Some("Average"));
    assert_eq!(m.period, Some(60));
    assert_eq!(high.threshold, Some(80.0));
    assert_eq!(high.comparison.as_deref(), Some("GreaterThanThreshold"));
    assert_eq!(high.evaluation_periods, Some(3));
    assert_eq!(high.datapoints_to_alarm, Some(2));
    assert!(high.metrics.is_empty());

    let p99 = by_name[name("latency-p99").as_str()];
    assert_eq!(p99.state, "ALARM");
    assert_eq!(
        p99.state_reason.as_deref(),
        Some("set by the test for latency-p99")
    );
    assert_eq!(p99.metric.as_ref().unwrap().stat.as_deref(), Some("p99"));
    assert_eq!(
        p99.comparison.as_deref(),
        Some("GreaterThanOrEqualToThreshold")
    );

    let ratio = by_name[name("error-ratio").as_str()];
    assert!(
        ratio.metric.is_none(),
        "a metric-math alarm has no single metric"
    );
    assert_eq!(ratio.metrics.len(), 3);
    let e1 = ratio.metrics.iter().find(|q| q.id == "e1").unwrap();
    assert_eq!(e1.expression.as_deref(), Some("100 * m1 / m2"));
    assert!(e1.return_data);
    let m2 = ratio.metrics.iter().find(|q| q.id == "m2").unwrap();
    assert!(!m2.return_data);
    let m2m = m2.metric.as_ref().unwrap();
    assert_eq!(
        (m2m.metric_name.as_str(), m2m.stat.as_deref(), m2m.period),
        ("Requests", Some("Sum"), Some(60))
    );
    assert_eq!(ratio.threshold, Some(5.0));

    let anomaly = by_name[name("cpu-anomaly").as_str()];
    assert_eq!(anomaly.state, "OK");
    assert_eq!(anomaly.threshold_metric_id.as_deref(), Some("ad1"));
    assert_eq!(
        anomaly.comparison.as_deref(),
        Some("LessThanLowerOrGreaterThanUpperThreshold")
    );
    let band = anomaly.metrics.iter().find(|q| q.id == "ad1").unwrap();
    assert_eq!(
        band.expression.as_deref(),
        Some("ANOMALY_DETECTION_BAND(m1, 2)")
    );
    assert_eq!(band.label.as_deref(), Some("CPU (expected)"));
    let m1 = anomaly.metrics.iter().find(|q| q.id == "m1").unwrap();
    assert_eq!(
        m1.metric.as_ref().unwrap().metric_name,
        "CPUUtilization".to_owned()
    );

    // State and prefix together (the state is any case).
    let firing = cw
        .alarms(Some("alarm".into()), Some(prefix.clone()), 100)
        .await
        .unwrap();
    let names: Vec<&str> = firing.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, [name("error-ratio"), name("latency-p99")]);
    let ok = cw
        .alarms(Some("OK".into()), Some(prefix.clone()), 100)
        .await
        .unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].name, name("cpu-anomaly"));
    let insufficient = cw
        .alarms(Some("INSUFFICIENT_DATA".into()), Some(prefix.clone()), 100)
        .await
        .unwrap();
    assert_eq!(insufficient.len(), 1);
    assert_eq!(insufficient[0].name, name("cpu-high"));

    // State alone (other runs' alarms may be there too: all are in ALARM, ours among them).
    let any_firing = cw.alarms(Some("ALARM".into()), None, 1000).await.unwrap();
    assert!(any_firing.iter().all(|a| a.state == "ALARM"));
    assert!(any_firing.iter().any(|a| a.name == name("error-ratio")));

    // `max` bounds the answer.
    let two = cw.alarms(None, Some(prefix.clone()), 2).await.unwrap();
    assert_eq!(two.len(), 2);

    // A prefix that matches nothing.
    let none = cw
        .alarms(None, Some(format!("{prefix}-nothing")), 10)
        .await
        .unwrap();
    assert!(none.is_empty());

    sdk.delete_alarms()
        .set_alarm_names(Some(all.iter().map(|a| a.name.clone()).collect()))
        .send()
        .await
        .expect("DeleteAlarms");
}

// ---- Validation (no server needed) -----------------------------------------------------

#[tokio::test]
async fn bad_input_is_refused_before_sending() {
    init();
    // Nothing listens there: any request would fail with Unreachable, not Invalid.
    let port = free_port().await;
    let cw = client_for(&format!("http://127.0.0.1:{port}"), TIMEOUT).await;
    let q = CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "Average");

    let msg = invalid(cw.range(&q, &window(0, 3600, 90)).await);
    assert!(msg.contains("period 90 s is not allowed"), "{msg}");
    assert!(msg.contains("multiple of 60"), "{msg}");
    let msg = invalid(cw.range(&q, &window(0, 3600, 45)).await);
    assert!(msg.contains("1, 5, 10, 20, 30"), "{msg}");

    let msg = invalid(cw.range(&q, &window(3600, 0, 60)).await);
    assert!(msg.contains("end must be after start"), "{msg}");

    let mut both = q.clone();
    both.expression = Some("m1 * 2".into());
    let msg = invalid(cw.range(&both, &window(0, 3600, 60)).await);
    assert!(msg.contains("not both"), "{msg}");

    let msg = invalid(
        cw.range(&CloudWatchQuery::default(), &window(0, 3600, 60))
            .await,
    );
    assert!(msg.contains("either a metric"), "{msg}");

    let msg = invalid(
        cw.range(
            &CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "Median"),
            &window(0, 3600, 60),
        )
        .await,
    );
    assert!(msg.contains("unknown stat `Median`"), "{msg}");
    assert!(msg.contains("p99"), "{msg}");

    let bad_id = CloudWatchQuery::expression(
        "M1 * 2",
        vec![CloudWatchMetric {
            id: "M1".into(),
            namespace: "AWS/EC2".into(),
            metric_name: "CPUUtilization".into(),
            dimensions: BTreeMap::new(),
            stat: "Average".into(),
            return_data: false,
        }],
    );
    let msg = invalid(cw.range(&bad_id, &window(0, 3600, 60)).await);
    assert!(msg.contains("id `M1` is not valid"), "{msg}");

    match cw.alarms(Some("FIRING".into()), None, 10).await {
        Err(MetricsError::Invalid(m)) => {
            assert!(m.contains("ALARM, INSUFFICIENT_DATA or OK"), "{m}")
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(matches!(
        cw.alarms(None, Some(String::new()), 10).await,
        Err(MetricsError::Invalid(_))
    ));
    assert!(matches!(
        cw.alarms(None, None, 0).await,
        Err(MetricsError::Invalid(_))
    ));
}

// ---- Unreachable and silent endpoints --------------------------------------------------

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_closed_port_is_unreachable_naming_the_endpoint() {
    init();
    let port = free_port().await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let cw = client_for(&endpoint, Duration::from_secs(5)).await;
    let q = CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "Average");
    let started = Instant::now();
    let err = cw.range(&q, &window(0, 3600, 60)).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "within the timeout"
    );
    match &err {
        MetricsError::Unreachable { endpoint: e, .. } => assert_eq!(e, &endpoint),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(err.to_string().contains(&endpoint), "{err}");

    let err = cw.alarms(None, None, 10).await.unwrap_err();
    assert!(
        matches!(&err, MetricsError::Unreachable { endpoint: e, .. } if *e == endpoint),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    init();
    let server = Recorder::start().await;
    server.push(Reply::Hang);
    let cw = client_for(&server.url(), Duration::from_secs(1)).await;
    let started = Instant::now();
    let err = cw
        .range(
            &CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "Average"),
            &window(0, 3600, 60),
        )
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    match &err {
        MetricsError::Timeout { endpoint, seconds } => {
            assert_eq!(endpoint, &server.url());
            assert_eq!(*seconds, 1);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 1, "a timeout is not retried");
}

// ---- Request side, against the recording server ----------------------------------------

#[tokio::test]
async fn an_anomaly_band_expression_is_sent_and_its_pages_merged() {
    init();
    let server = Recorder::start().await;
    let t0 = 1_700_000_100;
    server.push(Reply::ok(cbor_map(vec![
        (
            "MetricDataResults",
            C::Arr(vec![cbor_map(vec![
                ("Id", C::s("e1")),
                ("Label", C::s("CPUUtilization band")),
                ("Timestamps", C::Arr(vec![C::Ts(t0 + 300), C::Ts(t0)])),
                ("Values", C::Arr(vec![C::F(2.0), C::F(1.0)])),
                ("StatusCode", C::s("PartialData")),
            ])]),
        ),
        ("NextToken", C::s("page-2")),
    ])));
    server.push(Reply::ok(cbor_map(vec![
        (
            "MetricDataResults",
            C::Arr(vec![cbor_map(vec![
                ("Id", C::s("e1")),
                ("Label", C::s("CPUUtilization band")),
                ("Timestamps", C::Arr(vec![C::Ts(t0 + 600)])),
                ("Values", C::Arr(vec![C::F(3.0)])),
                ("StatusCode", C::s("Complete")),
                (
                    "Messages",
                    C::Arr(vec![cbor_map(vec![
                        ("Code", C::s("Info")),
                        ("Value", C::s("model trained on 2 weeks")),
                    ])]),
                ),
            ])]),
        ),
        ("Messages", C::Arr(vec![])),
    ])));
    let cw = client_for(&server.url(), TIMEOUT).await;
    let q = CloudWatchQuery::expression(
        "ANOMALY_DETECTION_BAND(m1, 2)",
        vec![CloudWatchMetric {
            id: "m1".into(),
            namespace: "AWS/EC2".into(),
            metric_name: "CPUUtilization".into(),
            dimensions: BTreeMap::from([("InstanceId".into(), "i-0abc".into())]),
            stat: "Average".into(),
            return_data: false,
        }],
    );
    let got = cw.range(&q, &window(t0, t0 + 900, 300)).await.unwrap();

    // What was sent.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "two pages");
    let first = &reqs[0];
    assert!(
        first
            .path
            .ends_with("/service/GraniteServiceVersion20100801/operation/GetMetricData"),
        "{}",
        first.path
    );
    assert_eq!(first.headers["smithy-protocol"], "rpc-v2-cbor");
    assert!(first.headers["authorization"].starts_with("AWS4-HMAC-SHA256"));
    let body = &first.body;
    let queries = body["MetricDataQueries"].as_array().unwrap();
    assert_eq!(queries.len(), 2);
    assert_eq!(
        queries[0],
        json!({
            "Id": "m1",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/EC2",
                    "MetricName": "CPUUtilization",
                    "Dimensions": [{"Name": "InstanceId", "Value": "i-0abc"}]
                },
                "Period": 300,
                "Stat": "Average"
            },
            "ReturnData": false
        })
    );
    assert_eq!(
        queries[1],
        json!({"Id": "e1", "Expression": "ANOMALY_DETECTION_BAND(m1, 2)", "ReturnData": true})
    );
    // Timestamps go as CBOR tag 1 over float seconds.
    assert_eq!(body["StartTime"].as_f64(), Some(t0 as f64));
    assert_eq!(body["EndTime"].as_f64(), Some((t0 + 900) as f64));
    assert_eq!(body["ScanBy"], "TimestampAscending");
    assert!(body["MaxDatapoints"].as_i64().unwrap() >= 4);
    assert!(body.get("NextToken").is_none());
    assert_eq!(reqs[1].body["NextToken"], "page-2");
    assert_eq!(reqs[1].body["MetricDataQueries"], body["MetricDataQueries"]);

    // What came back: one series, its pages merged and sorted.
    assert_eq!(got.len(), 1);
    let s = &got[0];
    assert_eq!(s.points, vec![(t0, 1.0), (t0 + 300, 2.0), (t0 + 600, 3.0)]);
    assert_eq!(s.labels["id"], "e1");
    assert_eq!(s.labels["label"], "CPUUtilization band");
    assert_eq!(s.labels["expression"], "ANOMALY_DETECTION_BAND(m1, 2)");
    assert_eq!(s.labels["messages"], "Info: model trained on 2 weeks");
    assert!(
        !s.labels.contains_key("status"),
        "complete after the last page"
    );
}

#[tokio::test]
async fn partial_data_and_extended_stats_are_surfaced() {
    init();
    let server = Recorder::start().await;
    let t0 = 1_700_000_000;
    server.push(Reply::ok(cbor_map(vec![(
        "MetricDataResults",
        C::Arr(vec![cbor_map(vec![
            ("Id", C::s("m1")),
            ("Label", C::s("latency")),
            ("Timestamps", C::Arr(vec![C::Ts(t0)])),
            ("Values", C::Arr(vec![C::F(0.25)])),
            ("StatusCode", C::s("PartialData")),
        ])]),
    )])));
    let cw = client_for(&server.url(), TIMEOUT).await;
    let q = CloudWatchQuery::metric("AWS/ApplicationELB", "TargetResponseTime", "p99.9")
        .with_dimension("LoadBalancer", "app/web/123");
    let got = cw.range(&q, &window(t0, t0 + 120, 60)).await.unwrap();
    assert_eq!(got[0].labels["status"], "PartialData");
    assert_eq!(got[0].labels["stat"], "p99.9");
    assert_eq!(got[0].labels["LoadBalancer"], "app/web/123");
    assert_eq!(got[0].points, vec![(t0, 0.25)]);
    let sent = &server.requests()[0].body["MetricDataQueries"][0];
    assert_eq!(sent["MetricStat"]["Stat"], "p99.9");
    assert_eq!(sent["MetricStat"]["Period"], 60);
    assert_eq!(sent["ReturnData"], true);
    assert_eq!(
        server.requests()[0].body["MaxDatapoints"],
        3,
        "bounded by the points the window can hold"
    );
}

#[tokio::test]
async fn endless_pages_stop_at_the_bound_and_say_so() {
    init();
    let server = Recorder::start().await;
    let t0 = 1_700_000_000;
    // Every page has a NextToken; the first also an InternalError status, which stays.
    for page in 0..60i64 {
        let status = if page == 0 {
            "InternalError"
        } else {
            "PartialData"
        };
        server.push(Reply::ok(cbor_map(vec![
            (
                "MetricDataResults",
                C::Arr(vec![cbor_map(vec![
                    ("Id", C::s("m1")),
                    ("Timestamps", C::Arr(vec![C::Ts(t0 + 60 * page)])),
                    ("Values", C::Arr(vec![C::F(page as f64)])),
                    ("StatusCode", C::s(status)),
                ])]),
            ),
            ("NextToken", C::Str(format!("page-{}", page + 1))),
        ])));
    }
    let cw = client_for(&server.url(), TIMEOUT).await;
    let got = cw
        .range(
            &CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "Sum"),
            &window(t0, t0 + 86_400, 60),
        )
        .await
        .unwrap();
    assert_eq!(
        server.requests().len(),
        MAX_PAGES,
        "stops at the page bound"
    );
    let s = &got[0];
    assert_eq!(s.points.len(), MAX_PAGES);
    assert_eq!(s.points[0], (t0, 0.0));
    assert_eq!(s.labels["status"], "InternalError");
    assert!(
        s.labels["messages"].contains("stopped after 50 pages"),
        "{:?}",
        s.labels
    );
}

#[tokio::test]
async fn alarm_filters_are_sent_and_pages_followed() {
    init();
    let server = Recorder::start().await;
    let metric = |id: &str, name: &str, ret: bool| {
        cbor_map(vec![
            ("Id", C::s(id)),
            (
                "MetricStat",
                cbor_map(vec![
                    (
                        "Metric",
                        cbor_map(vec![
                            ("Namespace", C::s("AWS/EC2")),
                            ("MetricName", C::s(name)),
                            (
                                "Dimensions",
                                C::Arr(vec![cbor_map(vec![
                                    ("Name", C::s("AutoScalingGroupName")),
                                    ("Value", C::s("svc-nodes")),
                                ])]),
                            ),
                        ]),
                    ),
                    ("Period", C::I(300)),
                    ("Stat", C::s("Average")),
                ]),
            ),
            ("ReturnData", C::Bool(ret)),
        ])
    };
    server.push(Reply::ok(cbor_map(vec![
        (
            "MetricAlarms",
            C::Arr(vec![cbor_map(vec![
                ("AlarmName", C::s("svc-cpu-anomaly")),
                ("StateValue", C::s("ALARM")),
                ("StateReason", C::s("Thresholds Crossed: 2 out of 2")),
                ("StateUpdatedTimestamp", C::Ts(1_700_000_000)),
                ("EvaluationPeriods", C::I(2)),
                (
                    "ComparisonOperator",
                    C::s("LessThanLowerOrGreaterThanUpperThreshold"),
                ),
                (
                    "Metrics",
                    C::Arr(vec![
                        metric("m1", "CPUUtilization", true),
                        cbor_map(vec![
                            ("Id", C::s("ad1")),
                            ("Expression", C::s("ANOMALY_DETECTION_BAND(m1, 2)")),
                            ("ReturnData", C::Bool(true)),
                        ]),
                    ]),
                ),
                ("ThresholdMetricId", C::s("ad1")),
            ])]),
        ),
        ("NextToken", C::s("alarms-2")),
    ])));
    server.push(Reply::ok(cbor_map(vec![
        (
            "CompositeAlarms",
            C::Arr(vec![cbor_map(vec![
                ("AlarmName", C::s("svc-any")),
                ("StateValue", C::s("ALARM")),
                ("AlarmRule", C::s("ALARM(\"svc-cpu-anomaly\")")),
            ])]),
        ),
        ("MetricAlarms", C::Arr(vec![])),
    ])));
    let cw = client_for(&server.url(), TIMEOUT).await;
    let alarms = cw
        .alarms(Some("alarm".into()), Some("svc-".into()), 5)
        .await
        .unwrap();

    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].path.ends_with("/operation/DescribeAlarms"));
    let body = &reqs[0].body;
    assert_eq!(body["StateValue"], "ALARM");
    assert_eq!(body["AlarmNamePrefix"], "svc-");
    assert_eq!(body["AlarmTypes"], json!(["MetricAlarm", "CompositeAlarm"]));
    assert_eq!(body["MaxRecords"], 5);
    assert_eq!(reqs[1].body["NextToken"], "alarms-2");
    assert_eq!(reqs[1].body["MaxRecords"], 4, "what is left of max");

    let names: Vec<&str> = alarms.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["svc-any", "svc-cpu-anomaly"]);
    let composite = &alarms[0];
    assert_eq!(composite.kind, "composite");
    assert_eq!(
        composite.rule.as_deref(),
        Some("ALARM(\"svc-cpu-anomaly\")")
    );
    let anomaly = &alarms[1];
    assert_eq!(anomaly.threshold_metric_id.as_deref(), Some("ad1"));
    assert_eq!(
        anomaly.state_updated.as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
    assert_eq!(anomaly.metrics.len(), 2);
    assert_eq!(
        anomaly.metrics[1].expression.as_deref(),
        Some("ANOMALY_DETECTION_BAND(m1, 2)")
    );
    let m1 = anomaly.metrics[0].metric.as_ref().unwrap();
    assert_eq!(m1.dimensions["AutoScalingGroupName"], "svc-nodes");
    assert_eq!(m1.period, Some(300));
    // The JSON an agent sees.
    let v = serde_json::to_value(anomaly).unwrap();
    assert_eq!(v["metrics"][1]["id"], "ad1");
    assert!(v.get("rule").is_none());
}

#[tokio::test]
async fn errors_are_mapped_and_only_throttling_is_retried() {
    init();
    let q = CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "Average");
    let w = window(1_700_000_000, 1_700_003_600, 60);

    // A validation error: BadQuery with the service's message, not retried.
    let server = Recorder::start().await;
    server.push(Reply::error(
        400,
        "InvalidParameterValue",
        "The value m 1 for parameter MetricDataQueries.member.1.Id is not valid.",
    ));
    let cw = client_for(&server.url(), TIMEOUT).await;
    match cw.range(&q, &w).await {
        Err(MetricsError::BadQuery { endpoint, message }) => {
            assert_eq!(endpoint, server.url());
            assert!(message.contains("InvalidParameterValue"), "{message}");
            assert!(message.contains("is not valid"), "{message}");
        }
        other => panic!("expected BadQuery, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 1);

    // A server error: Server, and not retried (the SDK's standard strategy would).
    let server = Recorder::start().await;
    server.push(Reply::error(500, "InternalServiceError", "boom"));
    let cw = client_for(&server.url(), TIMEOUT).await;
    match cw.range(&q, &w).await {
        Err(MetricsError::Server { endpoint, message }) => {
            assert_eq!(endpoint, server.url());
            assert!(message.contains("HTTP 500"), "{message}");
            assert!(message.contains("boom"), "{message}");
        }
        other => panic!("expected Server, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 1, "a 500 is not retried");

    let server = Recorder::start().await;
    server.push(Reply::error(503, "ServiceUnavailable", "try later"));
    let cw = client_for(&server.url(), TIMEOUT).await;
    assert!(matches!(
        cw.range(&q, &w).await,
        Err(MetricsError::Server { .. })
    ));
    assert_eq!(server.requests().len(), 1, "a 503 is not retried");

    // Throttling twice, then an answer: retried with backoff, and the answer is used.
    let server = Recorder::start().await;
    server.push(Reply::throttled());
    server.push(Reply::throttled());
    server.push(Reply::ok(cbor_map(vec![(
        "MetricDataResults",
        C::Arr(vec![cbor_map(vec![
            ("Id", C::s("m1")),
            ("Timestamps", C::Arr(vec![C::Ts(1_700_000_000)])),
            ("Values", C::Arr(vec![C::F(42.0)])),
            ("StatusCode", C::s("Complete")),
        ])]),
    )])));
    let cw = client_for(&server.url(), TIMEOUT).await;
    let got = cw.range(&q, &w).await.unwrap();
    assert_eq!(got[0].points, vec![(1_700_000_000, 42.0)]);
    assert_eq!(server.requests().len(), 3, "two throttled attempts retried");

    // Throttled on every attempt: Server, after the attempts run out.
    let server = Recorder::start().await;
    for _ in 0..6 {
        server.push(Reply::throttled());
    }
    let cw = client_for(&server.url(), TIMEOUT).await;
    match cw.range(&q, &w).await {
        Err(MetricsError::Server { message, .. }) => {
            assert!(message.contains("throttled"), "{message}")
        }
        other => panic!("expected Server, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 4, "4 attempts in all");
}

#[tokio::test]
async fn a_namespace_scoped_server_lists_only_alarms_on_its_namespaces() {
    init();
    let server = Recorder::start().await;
    let alarm = |name: &str, cw_namespace: &str, namespace: Option<&str>| {
        let mut dims = vec![cbor_map(vec![
            ("Name", C::s("ClusterName")),
            ("Value", C::s("prod")),
        ])];
        if let Some(ns) = namespace {
            dims.push(cbor_map(vec![
                ("Name", C::s("Namespace")),
                ("Value", C::s(ns)),
            ]));
        }
        cbor_map(vec![
            ("AlarmName", C::s(name)),
            ("StateValue", C::s("ALARM")),
            (
                "StateReason",
                C::s("Threshold Crossed: 1 datapoint [97.5] > 90"),
            ),
            ("Namespace", C::s(cw_namespace)),
            ("MetricName", C::s("pod_cpu_utilization")),
            ("Dimensions", C::Arr(dims)),
            ("Statistic", C::s("Average")),
            ("Period", C::I(60)),
            ("Threshold", C::F(90.0)),
        ])
    };
    server.push(Reply::ok(cbor_map(vec![
        (
            "MetricAlarms",
            C::Arr(vec![
                alarm("shop-cpu", "ContainerInsights", Some("shop")),
                alarm("data-cpu", "ContainerInsights", Some("data")),
                alarm("cluster-cpu", "ContainerInsights", None),
                alarm("ec2-cpu", "AWS/EC2", Some("shop")),
            ]),
        ),
        (
            "CompositeAlarms",
            C::Arr(vec![cbor_map(vec![
                ("AlarmName", C::s("any")),
                ("StateValue", C::s("ALARM")),
                ("AlarmRule", C::s("ALARM(\"data-cpu\")")),
            ])]),
        ),
    ])));
    let cw = client_for(&server.url(), TIMEOUT).await;
    let sandbox = eks_ops_mcp::sandbox::Sandbox::start(
        &eks_ops_mcp::sandbox::Scenario::builtin().unwrap(),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    let ctx = eks_ops_mcp::tools::ToolContext::new(sandbox.cluster().unwrap())
        .with_metrics(Arc::new(eks_ops_mcp::metrics::Metrics {
            prometheus: None,
            cloudwatch: Some(cw),
        }))
        .with_scope(vec!["shop".into()]);
    let srv =
        eks_ops_mcp::server::EksOpsServer::new(ctx, eks_ops_mcp::server::ServerSettings::default());
    let r = srv
        .call(
            "get_alarms",
            json!({"limit": 10}).as_object().cloned().unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{:?}", r.content);
    let v = r.structured_content.unwrap();
    let names: Vec<&str> = v["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop-cpu"]);
    assert_eq!(v["out_of_scope"], 4);
    let text: Vec<String> = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    assert!(text.join("\n").contains("4 alarm(s) left out"), "{text:?}");
    // read a full page, so that filtering shrinks the answer as little as it can
    assert_eq!(server.requests()[0].body["MaxRecords"], 100);
}

// ---- A recording HTTP server answering CBOR --------------------------------------------

/// A CBOR value to encode.
enum C {
    Map(Vec<(String, C)>),
    Arr(Vec<C>),
    Str(String),
    F(f64),
    I(i64),
    Bool(bool),
    /// A timestamp: tag 1 over epoch seconds.
    Ts(i64),
}

impl C {
    fn s(v: &str) -> C {
        C::Str(v.to_owned())
    }
}

fn cbor_map(entries: Vec<(&str, C)>) -> C {
    C::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

fn cbor_encode(v: &C, out: &mut Vec<u8>) {
    match v {
        C::Map(entries) => {
            cbor_head(out, 5, entries.len() as u64);
            for (k, v) in entries {
                cbor_encode(&C::Str(k.clone()), out);
                cbor_encode(v, out);
            }
        }
        C::Arr(items) => {
            cbor_head(out, 4, items.len() as u64);
            for i in items {
                cbor_encode(i, out);
            }
        }
        C::Str(s) => {
            cbor_head(out, 3, s.len() as u64);
            out.extend(s.as_bytes());
        }
        C::F(f) => {
            out.push(0xfb);
            out.extend(f.to_be_bytes());
        }
        C::I(i) if *i >= 0 => cbor_head(out, 0, *i as u64),
        C::I(i) => cbor_head(out, 1, (-1 - *i) as u64),
        C::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        C::Ts(secs) => {
            cbor_head(out, 6, 1);
            cbor_encode(&C::I(*secs), out);
        }
    }
}

/// Decodes the CBOR the SDK sends into JSON (timestamps become their epoch seconds).
fn cbor_decode(b: &[u8], i: &mut usize) -> Value {
    let first = b[*i];
    *i += 1;
    let major = first >> 5;
    let info = first & 0x1f;
    let arg = |info: u8, i: &mut usize| -> Option<u64> {
        let n = match info {
            0..=23 => return Some(u64::from(info)),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return None,
            _ => panic!("bad CBOR additional info {info}"),
        };
        let mut v = 0u64;
        for k in 0..n {
            v = (v << 8) | u64::from(b[*i + k]);
        }
        *i += n;
        Some(v)
    };
    match major {
        0 => json!(arg(info, i).unwrap()),
        1 => json!(-1 - arg(info, i).unwrap() as i64),
        2 | 3 => {
            let text = |i: &mut usize, n: usize| {
                let s = String::from_utf8_lossy(&b[*i..*i + n]).into_owned();
                *i += n;
                s
            };
            match arg(info, i) {
                Some(n) => json!(text(i, n as usize)),
                None => {
                    let mut s = String::new();
                    while b[*i] != 0xff {
                        s.push_str(cbor_decode(b, i).as_str().unwrap());
                    }
                    *i += 1;
                    json!(s)
                }
            }
        }
        4 => {
            let mut items = Vec::new();
            match arg(info, i) {
                Some(n) => {
                    for _ in 0..n {
                        items.push(cbor_decode(b, i));
                    }
                }
                None => {
                    while b[*i] != 0xff {
                        items.push(cbor_decode(b, i));
                    }
                    *i += 1;
                }
            }
            Value::Array(items)
        }
        5 => {
            let mut map = serde_json::Map::new();
            let mut entry = |i: &mut usize| {
                let k = cbor_decode(b, i).as_str().unwrap().to_owned();
                let v = cbor_decode(b, i);
                map.insert(k, v);
            };
            match arg(info, i) {
                Some(n) => {
                    for _ in 0..n {
                        entry(i);
                    }
                }
                None => {
                    while b[*i] != 0xff {
                        entry(i);
                    }
                    *i += 1;
                }
            }
            Value::Object(map)
        }
        6 => {
            arg(info, i);
            cbor_decode(b, i)
        }
        7 => match info {
            20 => json!(false),
            21 => json!(true),
            22 | 23 => Value::Null,
            25 => {
                let h = u16::from_be_bytes([b[*i], b[*i + 1]]);
                *i += 2;
                json!(half_to_f64(h))
            }
            26 => {
                let f = f32::from_be_bytes(b[*i..*i + 4].try_into().unwrap());
                *i += 4;
                json!(f)
            }
            27 => {
                let f = f64::from_be_bytes(b[*i..*i + 8].try_into().unwrap());
                *i += 8;
                json!(f)
            }
            _ => panic!("unexpected CBOR simple value {info}"),
        },
        _ => unreachable!(),
    }
}

fn half_to_f64(h: u16) -> f64 {
    let exp = (h >> 10) & 0x1f;
    let mant = f64::from(h & 0x3ff);
    let v = match exp {
        0 => mant * 2f64.powi(-24),
        31 => f64::INFINITY,
        e => (mant + 1024.0) * 2f64.powi(i32::from(e) - 25),
    };
    if h & 0x8000 != 0 { -v } else { v }
}

/// A scripted answer.
enum Reply {
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Read the request and never answer.
    Hang,
}

impl Reply {
    fn ok(body: C) -> Reply {
        let mut bytes = Vec::new();
        cbor_encode(&body, &mut bytes);
        Reply::Answer {
            status: 200,
            headers: Vec::new(),
            body: bytes,
        }
    }

    /// An RPCv2 CBOR error, as CloudWatch sends them (with the awsQueryCompatible header).
    fn error(status: u16, code: &str, message: &str) -> Reply {
        let mut bytes = Vec::new();
        cbor_encode(
            &cbor_map(vec![
                ("__type", C::Str(format!("com.amazonaws.cloudwatch#{code}"))),
                ("message", C::s(message)),
            ]),
            &mut bytes,
        );
        let fault = if status >= 500 { "Receiver" } else { "Sender" };
        Reply::Answer {
            status,
            headers: vec![("x-amzn-query-error".into(), format!("{code};{fault}"))],
            body: bytes,
        }
    }

    fn throttled() -> Reply {
        Reply::error(400, "Throttling", "Rate exceeded")
    }
}

/// A request as received: path, lower-case headers, body decoded from CBOR.
#[derive(Clone)]
struct Recorded {
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
}

#[derive(Clone)]
struct Recorder {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rec = Recorder {
            addr: listener.local_addr().unwrap(),
            requests: Arc::default(),
            replies: Arc::default(),
        };
        let r = rec.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(r.clone().serve(stream));
            }
        });
        rec
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn push(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
    }

    /// A copy of the requests received so far.
    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    async fn serve(self, mut stream: TcpStream) {
        let mut buf = Vec::new();
        loop {
            // Head.
            let head_end = loop {
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p;
                }
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let path = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or_default()
                .to_owned();
            let headers: BTreeMap<String, String> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            // Body.
            let body_start = head_end + 4;
            while buf.len() < body_start + len {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let raw: Vec<u8> = buf[body_start..body_start + len].to_vec();
            buf.drain(..body_start + len);
            let body = if raw.is_empty() {
                Value::Null
            } else {
                cbor_decode(&raw, &mut 0)
            };
            self.requests.lock().unwrap().push(Recorded {
                path,
                headers,
                body,
            });
            let reply = self.replies.lock().unwrap().pop_front();
            let (status, extra, body) = match reply {
                Some(Reply::Hang) => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                Some(Reply::Answer {
                    status,
                    headers,
                    body,
                }) => (status, headers, body),
                // An empty answer: no results, no alarms.
                None => (200, Vec::new(), vec![0xa0]),
            };
            let mut out = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/cbor\r\n\
                 smithy-protocol: rpc-v2-cbor\r\nx-amzn-requestid: test\r\n\
                 content-length: {}\r\n",
                body.len()
            );
            for (k, v) in extra {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let mut bytes = out.into_bytes();
            bytes.extend(body);
            if stream.write_all(&bytes).await.is_err() {
                return;
            }
        }
    }
}
