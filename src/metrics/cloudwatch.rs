//! CloudWatch client: metric data through `GetMetricData` (a single metric or a metric-math
//! expression with the metrics it references) and alarms through `DescribeAlarms`.
//!
//! Requests go through the AWS SDK (Smithy RPCv2 CBOR protocol), with the standard credential
//! chain of `aws-config` (environment, profile, SSO, web identity / IRSA, ECS, IMDS), a
//! per-operation timeout and retries with backoff for throttling errors only: the SDK's
//! standard retry strategy also retries transient errors (connect / IO errors, timeouts,
//! HTTP 500/502/503/504, `RequestTimeout`), which a client with a short, user-facing timeout
//! must not do, so a retry classifier forbids every retry that is not a throttling error.
//!
//! Everything is checked before it is sent ([`CloudWatchQuery::validate`], the window and the
//! alarm filters), so that an agent gets a message naming what is allowed rather than a
//! service error.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_cloudwatch::config::retry::{ClassifyRetry, RetryAction, RetryConfig};
use aws_sdk_cloudwatch::config::timeout::TimeoutConfig;
use aws_sdk_cloudwatch::config::{Credentials, Region};
use aws_sdk_cloudwatch::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsError;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataError;
use aws_sdk_cloudwatch::types::{
    AlarmType, CompositeAlarm, Dimension, Metric, MetricAlarm, MetricDataQuery, MetricStat, ScanBy,
    StateValue, StatusCode,
};
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{MetricsError, Series, Window};

/// Most points one series may hold: a window longer than this many periods is refused.
pub const MAX_POINTS_PER_SERIES: usize = 11_000;
/// Most `GetMetricData` pages fetched for one query; past it the result is marked partial.
pub const MAX_PAGES: usize = 50;
/// The API's own maximum of `MaxDatapoints` per page.
pub const API_MAX_DATAPOINTS: usize = 100_800;
/// Most metrics an expression may reference (the API allows 500 queries per request).
pub const MAX_METRICS: usize = 100;
/// Most dimensions per metric (the API's limit).
pub const MAX_DIMENSIONS: usize = 30;
/// Most characters of an expression (the API's limit).
pub const MAX_EXPRESSION_CHARS: usize = 2048;

/// Periods allowed below one minute (high-resolution metrics).
const HIGH_RES_PERIODS: [u64; 5] = [1, 5, 10, 20, 30];
/// The plain statistics.
const STATISTICS: [&str; 5] = ["Average", "Sum", "Maximum", "Minimum", "SampleCount"];
/// Alarm states accepted by the filter.
const ALARM_STATES: [&str; 3] = ["ALARM", "INSUFFICIENT_DATA", "OK"];
/// Label keys set by this client; a dimension of the same name is renamed `dimension.NAME`.
const RESERVED_LABELS: [&str; 8] = [
    "id",
    "label",
    "namespace",
    "metric_name",
    "stat",
    "expression",
    "status",
    "messages",
];
/// Error codes that mean throttling (those the SDK's own classifier knows that CloudWatch
/// can send).
const THROTTLING_CODES: [&str; 8] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
];
/// Error codes that mean the request was not valid.
const VALIDATION_CODES: [&str; 8] = [
    "InvalidParameterValue",
    "InvalidParameterValueException",
    "InvalidParameterCombination",
    "InvalidParameterCombinationException",
    "MissingParameter",
    "MissingRequiredParameterException",
    "ValidationError",
    "ValidationException",
];

/// What to read from CloudWatch: either one metric (`namespace`, `metric_name`,
/// `dimensions`, `stat`) or a metric-math / Metrics Insights `expression` with the metrics
/// it references (`metrics`, ids `m1`, `m2`…). Exactly one of the two forms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchQuery {
    /// Metric form: the namespace, e.g. `AWS/EC2`, `ContainerInsights`, `AWS/ApplicationELB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Metric form: the metric name, e.g. `CPUUtilization`, `pod_cpu_utilization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// Metric form: dimensions as name → value, e.g. `{"ClusterName": "prod"}`. All the
    /// metric's dimensions must be given: CloudWatch matches the exact set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
    /// Metric form: the statistic: `Average`, `Sum`, `Maximum`, `Minimum`, `SampleCount`,
    /// or an extended statistic such as `p99`, `p99.9`, `tm90`, `TM(10%:90%)`, `IQM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<String>,
    /// Expression form: a metric-math expression over the ids of `metrics`, e.g.
    /// `m1 / m2 * 100` or `ANOMALY_DETECTION_BAND(m1, 2)`, or a Metrics Insights / SEARCH
    /// query that needs no `metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Expression form: the metrics the expression refers to by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<CloudWatchMetric>,
    /// Optional label of the returned series (of the metric, or of the expression's result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A metric referenced by an expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchMetric {
    /// Id used in the expression: starts with a lowercase letter, then letters, digits or
    /// `_`, e.g. `m1`.
    pub id: String,
    /// Namespace, e.g. `AWS/EC2`.
    pub namespace: String,
    /// Metric name, e.g. `CPUUtilization`.
    pub metric_name: String,
    /// Dimensions as name → value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
    /// Statistic: `Average`, `Sum`, `Maximum`, `Minimum`, `SampleCount` or extended
    /// (`p99`, `tm90`, `TM(10%:90%)`…).
    pub stat: String,
    /// Also return this metric's own series besides the expression's (default false).
    #[serde(default)]
    pub return_data: bool,
}

impl CloudWatchQuery {
    /// A single-metric query.
    pub fn metric(
        namespace: impl Into<String>,
        metric_name: impl Into<String>,
        stat: impl Into<String>,
    ) -> Self {
        Self {
            namespace: Some(namespace.into()),
            metric_name: Some(metric_name.into()),
            stat: Some(stat.into()),
            ..Self::default()
        }
    }

    /// An expression over `metrics`.
    pub fn expression(expression: impl Into<String>, metrics: Vec<CloudWatchMetric>) -> Self {
        Self {
            expression: Some(expression.into()),
            metrics,
            ..Self::default()
        }
    }

    /// Adds a dimension (metric form).
    pub fn with_dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions.insert(name.into(), value.into());
        self
    }

    /// Checks the query: exactly one form, its fields present and well-formed (ids, stats,
    /// dimensions, sizes). Returns [`MetricsError::Invalid`] with what is allowed.
    pub fn validate(&self) -> Result<(), MetricsError> {
        let metric_fields: Vec<&str> = [
            ("namespace", self.namespace.is_some()),
            ("metric_name", self.metric_name.is_some()),
            ("stat", self.stat.is_some()),
            ("dimensions", !self.dimensions.is_empty()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        match &self.expression {
            Some(expression) => {
                if !metric_fields.is_empty() {
                    return Err(invalid(format!(
                        "give either a metric (namespace, metric_name, stat, dimensions) or an \
                         expression with its metrics, not both: {} set beside expression; \
                         put the metric in `metrics` with an id and refer to it in the expression",
                        metric_fields.join(", ")
                    )));
                }
                let expression = expression.trim();
                if expression.is_empty() {
                    return Err(invalid("expression is empty"));
                }
                let chars = expression.chars().count();
                if chars > MAX_EXPRESSION_CHARS {
                    return Err(invalid(format!(
                        "expression has {chars} characters; at most {MAX_EXPRESSION_CHARS}"
                    )));
                }
                if self.metrics.len() > MAX_METRICS {
                    return Err(invalid(format!(
                        "{} metrics; an expression may reference at most {MAX_METRICS}",
                        self.metrics.len()
                    )));
                }
                let mut seen = std::collections::BTreeSet::new();
                for (i, m) in self.metrics.iter().enumerate() {
                    let what = format!("metrics[{i}]");
                    validate_id(&m.id, &what)?;
                    if !seen.insert(m.id.as_str()) {
                        return Err(invalid(format!(
                            "{what}: id `{}` is used twice; each metric needs its own id",
                            m.id
                        )));
                    }
                    validate_metric(&m.namespace, &m.metric_name, &m.dimensions, &what)?;
                    validate_stat(&m.stat, &what)?;
                }
            }
            None => {
                if !self.metrics.is_empty() {
                    return Err(invalid(
                        "`metrics` is only for an expression that refers to them; for a single \
                         metric give namespace, metric_name, stat and dimensions",
                    ));
                }
                if metric_fields.is_empty() {
                    return Err(invalid(
                        "give either a metric (namespace, metric_name, stat, and dimensions if \
                         it has any) or an expression (with `metrics` it refers to by id)",
                    ));
                }
                let missing: Vec<&str> = [
                    ("namespace", self.namespace.is_none()),
                    ("metric_name", self.metric_name.is_none()),
                    ("stat", self.stat.is_none()),
                ]
                .into_iter()
                .filter_map(|(name, missing)| missing.then_some(name))
                .collect();
                if !missing.is_empty() {
                    return Err(invalid(format!(
                        "a metric query needs namespace, metric_name and stat: {} missing",
                        missing.join(", ")
                    )));
                }
                validate_metric(
                    self.namespace.as_deref().unwrap_or_default(),
                    self.metric_name.as_deref().unwrap_or_default(),
                    &self.dimensions,
                    "metric",
                )?;
                validate_stat(self.stat.as_deref().unwrap_or_default(), "metric")?;
            }
        }
        if let Some(label) = &self.label
            && label.chars().count() > 1024
        {
            return Err(invalid("label: at most 1024 characters"));
        }
        Ok(())
    }
}

fn invalid(message: impl Into<String>) -> MetricsError {
    MetricsError::Invalid(message.into())
}

/// A metric-data-query id: `^[a-z][a-zA-Z0-9_]*$`, at most 255 characters.
fn validate_id(id: &str, what: &str) -> Result<(), MetricsError> {
    let mut chars = id.chars();
    let ok = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 255;
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what}: id `{id}` is not valid: an id starts with a lowercase letter followed by \
             letters, digits or `_` (at most 255), e.g. `m1`"
        )))
    }
}

fn validate_metric(
    namespace: &str,
    metric_name: &str,
    dimensions: &BTreeMap<String, String>,
    what: &str,
) -> Result<(), MetricsError> {
    if namespace.trim().is_empty() || namespace.len() > 255 {
        return Err(invalid(format!(
            "{what}: namespace must be 1 to 255 characters, e.g. `AWS/EC2`"
        )));
    }
    if metric_name.trim().is_empty() || metric_name.len() > 255 {
        return Err(invalid(format!(
            "{what}: metric_name must be 1 to 255 characters, e.g. `CPUUtilization`"
        )));
    }
    if dimensions.len() > MAX_DIMENSIONS {
        return Err(invalid(format!(
            "{what}: {} dimensions; at most {MAX_DIMENSIONS}",
            dimensions.len()
        )));
    }
    for (name, value) in dimensions {
        if name.trim().is_empty() || name.len() > 255 || name.starts_with(':') {
            return Err(invalid(format!(
                "{what}: dimension name `{name}` is not valid: 1 to 255 characters, not \
                 starting with `:`"
            )));
        }
        if value.trim().is_empty() || value.len() > 1024 {
            return Err(invalid(format!(
                "{what}: dimension `{name}` needs a value of 1 to 1024 characters"
            )));
        }
    }
    Ok(())
}

/// A plain or extended statistic, as CloudWatch accepts them.
pub fn is_valid_stat(stat: &str) -> bool {
    if STATISTICS.contains(&stat) || stat == "IQM" {
        return true;
    }
    // pNN, tmNN, tcNN, tsNN, wmNN: a percentage 0–100 with optional decimals.
    for prefix in ["p", "tm", "tc", "ts", "wm"] {
        if let Some(rest) = stat.strip_prefix(prefix)
            && is_percentage(rest)
        {
            return true;
        }
    }
    // TM(a%:b%), TC, TS, WM with percentages; PR(a:b) with absolute values. Either bound
    // may be left out, not both.
    for (prefix, percent) in [
        ("TM", true),
        ("TC", true),
        ("TS", true),
        ("WM", true),
        ("PR", false),
    ] {
        if let Some(inner) = stat
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
            && let Some((lo, hi)) = inner.split_once(':')
        {
            if lo.is_empty() && hi.is_empty() {
                return false;
            }
            let bound_ok = |b: &str| {
                if b.is_empty() {
                    return true;
                }
                if percent {
                    b.strip_suffix('%').is_some_and(is_percentage)
                } else {
                    is_number(b)
                }
            };
            return bound_ok(lo) && bound_ok(hi);
        }
    }
    false
}

fn is_number(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && (s.find('.').is_none() || (!frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit())))
}

fn is_percentage(s: &str) -> bool {
    is_number(s) && s.parse::<f64>().is_ok_and(|v| (0.0..=100.0).contains(&v))
}

fn validate_stat(stat: &str, what: &str) -> Result<(), MetricsError> {
    if is_valid_stat(stat) {
        return Ok(());
    }
    let hint = STATISTICS
        .iter()
        .find(|s| s.eq_ignore_ascii_case(stat))
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    Err(invalid(format!(
        "{what}: unknown stat `{stat}`{hint}: use Average, Sum, Maximum, Minimum, SampleCount, \
         IQM, or an extended statistic: pNN (p99, p99.9), tmNN, tcNN, tsNN, wmNN, or \
         TM(a%:b%), TC(a%:b%), TS(a%:b%), WM(a%:b%), PR(a:b)"
    )))
}

/// Checks the window and returns the period in seconds.
fn validate_window(w: &Window) -> Result<i32, MetricsError> {
    if w.end <= w.start {
        return Err(invalid(format!(
            "the window ends ({}) before or when it starts ({}): end must be after start",
            w.end, w.start
        )));
    }
    let step = w.step;
    if step.subsec_nanos() != 0 || step.is_zero() {
        return Err(invalid(format!(
            "period {step:?} is not a whole number of seconds: use 60 s or a multiple of 60 \
             (or 1, 5, 10, 20, 30 s for high-resolution metrics)"
        )));
    }
    let secs = step.as_secs();
    if !(secs.is_multiple_of(60) || HIGH_RES_PERIODS.contains(&secs)) {
        return Err(invalid(format!(
            "period {secs} s is not allowed: use 60 s or a multiple of 60 (e.g. 60, 300, 3600), \
             or 1, 5, 10, 20, 30 s for high-resolution metrics"
        )));
    }
    let period =
        i32::try_from(secs).map_err(|_| invalid(format!("period {secs} s is too long")))?;
    let span = w.end.as_second() - w.start.as_second();
    let points = span / i64::from(period) + 1;
    if points > MAX_POINTS_PER_SERIES as i64 {
        return Err(invalid(format!(
            "a window of {span} s at a period of {secs} s is {points} points per series; at \
             most {MAX_POINTS_PER_SERIES}: use a longer period or a shorter window"
        )));
    }
    Ok(period)
}

/// An alarm as `DescribeAlarms` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Alarm {
    /// Alarm name.
    pub name: String,
    /// `metric` (one metric, metric math or anomaly detection) or `composite`.
    pub kind: String,
    /// State: `ALARM`, `INSUFFICIENT_DATA` or `OK`.
    pub state: String,
    /// Why it is in that state, as CloudWatch explains it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    /// When the state was last updated (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_updated: Option<String>,
    /// Description given when the alarm was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The metric behind a single-metric alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<AlarmMetric>,
    /// Threshold (single-metric and metric-math alarms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Comparison, e.g. `GreaterThanThreshold`, `LessThanLowerOrGreaterThanUpperThreshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<String>,
    /// Number of periods evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_periods: Option<i32>,
    /// Number of breaching data points that trigger the alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapoints_to_alarm: Option<i32>,
    /// Metric-math and anomaly-detection alarms: the metrics and expressions evaluated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<AlarmQuery>,
    /// Anomaly-detection alarms: the id of the `ANOMALY_DETECTION_BAND` expression used as
    /// the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_metric_id: Option<String>,
    /// Composite alarms: the rule over other alarms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// The metric an alarm watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlarmMetric {
    /// Namespace.
    pub namespace: String,
    /// Metric name.
    pub metric_name: String,
    /// Dimensions as name → value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
    /// Statistic (plain or extended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<String>,
    /// Period in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<i32>,
    /// Unit, if the alarm sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// One metric or expression of a metric-math / anomaly-detection alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlarmQuery {
    /// Id, referred to by expressions and by `threshold_metric_id`.
    pub id: String,
    /// The expression, for an expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// The metric, for a metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<AlarmMetric>,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Whether this is the series the alarm evaluates.
    pub return_data: bool,
}

/// Retry classifier: forbids every retry but throttling (see the module documentation).
#[derive(Debug, Default)]
struct ThrottlingOnly;

impl ThrottlingOnly {
    fn is_throttling(ctx: &aws_sdk_cloudwatch::config::interceptors::InterceptorContext) -> bool {
        let code = ctx
            .output_or_error()
            .and_then(|r| r.err())
            .and_then(|e| e.as_operation_error())
            .and_then(|e| {
                e.downcast_ref::<GetMetricDataError>()
                    .and_then(|e| e.code().map(str::to_owned))
                    .or_else(|| {
                        e.downcast_ref::<DescribeAlarmsError>()
                            .and_then(|e| e.code().map(str::to_owned))
                    })
            });
        if code.is_some_and(|c| THROTTLING_CODES.contains(&c.as_str())) {
            return true;
        }
        let Some(response) = ctx.response() else {
            return false;
        };
        if response.status().as_u16() == 429 {
            return true;
        }
        // awsQueryCompatible services name the query-protocol code in this header.
        response
            .headers()
            .get("x-amzn-query-error")
            .and_then(|v| v.split(';').next())
            .is_some_and(|c| THROTTLING_CODES.contains(&c))
    }
}

impl ClassifyRetry for ThrottlingOnly {
    fn classify_retry(
        &self,
        ctx: &aws_sdk_cloudwatch::config::interceptors::InterceptorContext,
    ) -> RetryAction {
        match ctx.output_or_error() {
            None | Some(Ok(_)) => RetryAction::NoActionIndicated,
            Some(Err(_)) if Self::is_throttling(ctx) => RetryAction::throttling_error(),
            Some(Err(_)) => RetryAction::RetryForbidden,
        }
    }

    fn name(&self) -> &'static str {
        "eks-ops-mcp: retry throttling only"
    }
}

/// A CloudWatch client for metric data and alarms.
#[derive(Clone)]
pub struct CloudWatchClient {
    client: aws_sdk_cloudwatch::Client,
    endpoint: String,
    timeout: Duration,
    page_datapoints: usize,
    cluster_name: Option<String>,
}

impl fmt::Debug for CloudWatchClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudWatchClient")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("page_datapoints", &self.page_datapoints)
            .field("cluster_name", &self.cluster_name)
            .finish()
    }
}

impl CloudWatchClient {
    /// A client with the standard credential chain (environment, `profile` or the default
    /// profile, SSO, web identity, container and instance roles). `region` overrides the
    /// region chain; `endpoint` overrides the service endpoint (tests, VPC endpoints).
    /// `timeout` bounds each operation, retries included.
    pub async fn new(
        region: Option<String>,
        profile: Option<String>,
        endpoint: Option<String>,
        timeout: Duration,
    ) -> Result<Self, MetricsError> {
        Self::build(region, profile, endpoint, timeout, None).await
    }

    /// Like [`new`](Self::new) with fixed credentials instead of the credential chain (tests
    /// against an emulator, callers that already hold credentials). The region is required.
    pub async fn with_credentials(
        region: String,
        endpoint: Option<String>,
        timeout: Duration,
        credentials: Credentials,
    ) -> Result<Self, MetricsError> {
        Self::build(Some(region), None, endpoint, timeout, Some(credentials)).await
    }

    async fn build(
        region: Option<String>,
        profile: Option<String>,
        endpoint: Option<String>,
        timeout: Duration,
        credentials: Option<Credentials>,
    ) -> Result<Self, MetricsError> {
        if timeout.is_zero() {
            return Err(invalid("the CloudWatch timeout must be more than zero"));
        }
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(MetricsError::NotConfigured(format!(
                "CloudWatch endpoint `{e}` must be an http:// or https:// URL"
            )));
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(timeout)
                    .operation_attempt_timeout(timeout)
                    .connect_timeout(timeout)
                    .read_timeout(timeout)
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(4)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(5)),
            );
        if let Some(r) = region {
            loader = loader.region(Region::new(r));
        }
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        if let Some(e) = &endpoint {
            loader = loader.endpoint_url(e.clone());
        }
        if let Some(c) = credentials {
            loader = loader.credentials_provider(c);
        }
        let sdk = loader.load().await;
        let Some(region) = sdk.region().cloned() else {
            return Err(MetricsError::NotConfigured(
                "CloudWatch: no AWS region is configured (give one, or set AWS_REGION or a \
                 profile with a region)"
                    .into(),
            ));
        };
        let conf = aws_sdk_cloudwatch::config::Builder::from(&sdk)
            .retry_classifier(ThrottlingOnly)
            .build();
        let endpoint = endpoint
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_CLOUDWATCH").ok())
            .or_else(|| sdk.endpoint_url().map(str::to_owned))
            .unwrap_or_else(|| default_endpoint(region.as_ref()));
        Ok(Self {
            client: aws_sdk_cloudwatch::Client::from_conf(conf),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            timeout,
            page_datapoints: API_MAX_DATAPOINTS,
            cluster_name: None,
        })
    }

    /// The name Container Insights knows this server's cluster by (its `ClusterName`
    /// dimension): a namespace-scoped server then reads only metrics of that cluster.
    pub fn with_cluster_name(mut self, name: impl Into<String>) -> Self {
        self.cluster_name = Some(name.into());
        self
    }

    /// The cluster name given with [`Self::with_cluster_name`].
    pub fn cluster_name(&self) -> Option<&str> {
        self.cluster_name.as_deref()
    }

    /// Sets `MaxDatapoints` per `GetMetricData` page (1 to 100,800; default the maximum):
    /// smaller pages mean more requests.
    pub fn with_page_datapoints(mut self, n: usize) -> Self {
        self.page_datapoints = n.clamp(1, API_MAX_DATAPOINTS);
        self
    }

    /// The endpoint requests go to (the override, or the region's public endpoint).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The underlying SDK client (for callers needing an operation this type does not wrap).
    pub fn sdk(&self) -> &aws_sdk_cloudwatch::Client {
        &self.client
    }

    /// Reads `q` over `w` (its step is the period) with `GetMetricData`, following
    /// `NextToken`. One series per result, labelled with `id`, `label` and the dimensions
    /// (plus `namespace`, `metric_name`, `stat` for a metric, `expression` for the expression,
    /// and `status` / `messages` when CloudWatch says the data is not complete), points
    /// oldest first.
    pub async fn range(
        &self,
        q: &CloudWatchQuery,
        w: &Window,
    ) -> Result<Vec<Series>, MetricsError> {
        q.validate()?;
        let period = validate_window(w)?;
        let (queries, meta) = build_queries(q, period);
        let span = w.end.as_second() - w.start.as_second();
        let per_series = (span / i64::from(period) + 1) as usize;
        let returned = queries
            .iter()
            .filter(|q| q.return_data != Some(false))
            .count();
        let max_datapoints = self
            .page_datapoints
            .min(per_series.saturating_mul(returned.max(1)))
            .clamp(1, API_MAX_DATAPOINTS);

        let mut merged: Vec<(String, Partial)> = Vec::new();
        let mut top_messages: Vec<String> = Vec::new();
        let mut next: Option<String> = None;
        let mut pages = 0usize;
        let mut truncated = false;
        loop {
            pages += 1;
            let out = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(to_datetime(w.start))
                .end_time(to_datetime(w.end))
                .scan_by(ScanBy::TimestampAscending)
                .max_datapoints(max_datapoints as i32)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| self.map_error(e))?;
            for m in out.messages() {
                let text = message_text(m.code(), m.value());
                if !top_messages.contains(&text) {
                    top_messages.push(text);
                }
            }
            // A page answers the PartialData of the pages before it.
            for (_, p) in &mut merged {
                if p.status == Some(StatusCode::PartialData) {
                    p.status = None;
                }
            }
            for r in out.metric_data_results() {
                let id = r.id().unwrap_or_default().to_owned();
                let idx = match merged.iter().position(|(k, _)| *k == id) {
                    Some(i) => i,
                    None => {
                        merged.push((id.clone(), Partial::default()));
                        merged.len() - 1
                    }
                };
                let entry = &mut merged[idx].1;
                if entry.label.is_none() {
                    entry.label = r.label().map(str::to_owned);
                }
                match r.status_code() {
                    None | Some(StatusCode::Complete) => {}
                    Some(StatusCode::PartialData) => entry.status = Some(StatusCode::PartialData),
                    // InternalError, Forbidden…: kept whatever later pages say.
                    Some(other) => entry.problem = Some(other.clone()),
                }
                for m in r.messages() {
                    let text = message_text(m.code(), m.value());
                    if !entry.messages.contains(&text) {
                        entry.messages.push(text);
                    }
                }
                entry.points.extend(
                    r.timestamps()
                        .iter()
                        .zip(r.values())
                        .map(|(t, v)| (t.secs(), *v)),
                );
            }
            next = out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next.is_none() {
                break;
            }
            if pages >= MAX_PAGES
                || merged
                    .iter()
                    .any(|(_, p)| p.points.len() >= MAX_POINTS_PER_SERIES)
            {
                truncated = true;
                break;
            }
        }

        let mut series = Vec::with_capacity(merged.len());
        for (id, mut p) in merged {
            p.points.sort_by_key(|(t, _)| *t);
            p.points.dedup_by_key(|(t, _)| *t);
            p.points.truncate(MAX_POINTS_PER_SERIES);
            let mut labels = BTreeMap::new();
            if let Some(m) = meta.get(&id) {
                labels.extend(m.clone());
            }
            labels.insert("id".to_owned(), id);
            if let Some(l) = p.label {
                labels.insert("label".to_owned(), l);
            }
            let mut status = p.problem.or(p.status).map(|s| s.as_str().to_owned());
            if truncated && status.is_none() {
                status = Some(StatusCode::PartialData.as_str().to_owned());
            }
            if truncated {
                p.messages.push(format!(
                    "stopped after {pages} pages (at most {MAX_PAGES} pages and \
                     {MAX_POINTS_PER_SERIES} points per series are read): narrow the window or \
                     use a longer period"
                ));
            }
            if let Some(s) = status.filter(|s| s != StatusCode::Complete.as_str()) {
                labels.insert("status".to_owned(), s);
            }
            p.messages.extend(top_messages.iter().cloned());
            if !p.messages.is_empty() {
                labels.insert("messages".to_owned(), p.messages.join("; "));
            }
            series.push(Series {
                labels,
                points: p.points,
            });
        }
        Ok(series)
    }

    /// Alarms (metric, metric-math, anomaly-detection and composite) with `DescribeAlarms`,
    /// following `NextToken`, at most `max` (sorted by name). `state` filters by state
    /// (`ALARM`, `INSUFFICIENT_DATA`, `OK`, any case); `name_prefix` by the start of the name.
    pub async fn alarms(
        &self,
        state: Option<String>,
        name_prefix: Option<String>,
        max: usize,
    ) -> Result<Vec<Alarm>, MetricsError> {
        if max == 0 {
            return Err(invalid("max must be at least 1"));
        }
        let state = match state {
            None => None,
            Some(s) => {
                let upper = s.trim().to_ascii_uppercase();
                if !ALARM_STATES.contains(&upper.as_str()) {
                    return Err(invalid(format!(
                        "state `{s}` is not an alarm state: use ALARM, INSUFFICIENT_DATA or OK"
                    )));
                }
                Some(StateValue::from(upper.as_str()))
            }
        };
        if let Some(p) = &name_prefix
            && (p.is_empty() || p.chars().count() > 255)
        {
            return Err(invalid("name_prefix must be 1 to 255 characters"));
        }

        let mut alarms = Vec::new();
        let mut next: Option<String> = None;
        let mut pages = 0usize;
        loop {
            pages += 1;
            let remaining = max.saturating_sub(alarms.len()).clamp(1, 100);
            let out = self
                .client
                .describe_alarms()
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .set_state_value(state.clone())
                .set_alarm_name_prefix(name_prefix.clone())
                .max_records(remaining as i32)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| self.map_error(e))?;
            // The service filters already; filtering again keeps the result right with
            // emulators that apply only one of the filters (LocalStack ignores the state
            // when a name prefix is given).
            let keep = |a: &Alarm| {
                state.as_ref().is_none_or(|s| a.state == s.as_str())
                    && name_prefix
                        .as_ref()
                        .is_none_or(|p| a.name.starts_with(p.as_str()))
            };
            alarms.extend(
                out.metric_alarms()
                    .iter()
                    .map(metric_alarm)
                    .chain(out.composite_alarms().iter().map(composite_alarm))
                    .filter(keep),
            );
            next = out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next.is_none() || alarms.len() >= max || pages >= MAX_PAGES {
                break;
            }
        }
        alarms.sort_by(|a, b| a.name.cmp(&b.name));
        alarms.truncate(max);
        Ok(alarms)
    }

    /// Maps an SDK error to a [`MetricsError`] naming the endpoint.
    fn map_error<E>(&self, e: SdkError<E>) -> MetricsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        SdkError<E>: std::error::Error + 'static,
    {
        let endpoint = self.endpoint.clone();
        let seconds = self.timeout.as_secs().max(1);
        match &e {
            SdkError::TimeoutError(_) => MetricsError::Timeout { endpoint, seconds },
            SdkError::DispatchFailure(d) if d.is_timeout() => {
                MetricsError::Timeout { endpoint, seconds }
            }
            // Credentials are resolved just before sending: their failure is a dispatch
            // failure too, but a matter of configuration, not of reachability.
            SdkError::DispatchFailure(_) if is_credentials_error(&e) => {
                MetricsError::NotConfigured(format!(
                    "no usable AWS credentials for {endpoint} (environment, profile, SSO, web                      identity, container or instance role): {}",
                    DisplayErrorContext(&e)
                ))
            }
            SdkError::DispatchFailure(_) => MetricsError::Unreachable {
                endpoint,
                message: DisplayErrorContext(&e).to_string(),
            },
            SdkError::ServiceError(s) => {
                let err = s.err();
                let code = err.code().unwrap_or("");
                let message = err
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| DisplayErrorContext(err).to_string());
                let status = s.raw().status().as_u16();
                if VALIDATION_CODES.contains(&code) || code == "InvalidNextToken" {
                    MetricsError::BadQuery {
                        endpoint,
                        message: format!("{code}: {message}"),
                    }
                } else if THROTTLING_CODES.contains(&code) || status == 429 {
                    MetricsError::Server {
                        endpoint,
                        message: format!("throttled after retries ({code}): {message}"),
                    }
                } else {
                    let code = if code.is_empty() {
                        "no error code"
                    } else {
                        code
                    };
                    MetricsError::Server {
                        endpoint,
                        message: format!("HTTP {status}, {code}: {message}"),
                    }
                }
            }
            SdkError::ResponseError(r) => MetricsError::Server {
                endpoint,
                message: format!(
                    "unexpected answer (HTTP {}): {}",
                    r.raw().status().as_u16(),
                    DisplayErrorContext(&e)
                ),
            },
            _ => MetricsError::Server {
                endpoint,
                message: DisplayErrorContext(&e).to_string(),
            },
        }
    }
}

/// Whether a credentials error is in the error's source chain.
fn is_credentials_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// A result accumulated over pages.
#[derive(Default)]
struct Partial {
    label: Option<String>,
    /// PartialData when the last page that had this result said so.
    status: Option<StatusCode>,
    /// InternalError, Forbidden or an unknown status seen on any page.
    problem: Option<StatusCode>,
    messages: Vec<String>,
    points: Vec<(i64, f64)>,
}

fn message_text(code: Option<&str>, value: Option<&str>) -> String {
    match (code, value) {
        (Some(c), Some(v)) => format!("{c}: {v}"),
        (Some(c), None) => c.to_owned(),
        (None, Some(v)) => v.to_owned(),
        (None, None) => String::new(),
    }
}

fn default_endpoint(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://monitoring.{region}.amazonaws.com.cn")
    } else {
        format!("https://monitoring.{region}.amazonaws.com")
    }
}

fn to_datetime(t: jiff::Timestamp) -> DateTime {
    DateTime::from_millis(t.as_millisecond())
}

fn format_time(t: Option<&DateTime>) -> Option<String> {
    t.and_then(|t| t.fmt(Format::DateTime).ok())
}

fn dimensions(map: &BTreeMap<String, String>) -> Vec<Dimension> {
    map.iter()
        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
        .collect()
}

fn dimension_map(dims: &[Dimension]) -> BTreeMap<String, String> {
    dims.iter()
        .map(|d| {
            (
                d.name().unwrap_or_default().to_owned(),
                d.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn metric_stat(
    namespace: &str,
    metric_name: &str,
    dims: &BTreeMap<String, String>,
    stat: &str,
    period: i32,
) -> MetricStat {
    MetricStat::builder()
        .metric(
            Metric::builder()
                .namespace(namespace)
                .metric_name(metric_name)
                .set_dimensions(Some(dimensions(dims)))
                .build(),
        )
        .period(period)
        .stat(stat)
        .build()
}

/// Labels of a metric's series (dimensions first, so that reserved keys win).
fn metric_labels(
    namespace: &str,
    metric_name: &str,
    dims: &BTreeMap<String, String>,
    stat: &str,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (k, v) in dims {
        let key = if RESERVED_LABELS.contains(&k.as_str()) {
            format!("dimension.{k}")
        } else {
            k.clone()
        };
        labels.insert(key, v.clone());
    }
    labels.insert("namespace".to_owned(), namespace.to_owned());
    labels.insert("metric_name".to_owned(), metric_name.to_owned());
    labels.insert("stat".to_owned(), stat.to_owned());
    labels
}

/// The `MetricDataQuery` list of a validated query, and the labels to give each result id.
fn build_queries(
    q: &CloudWatchQuery,
    period: i32,
) -> (
    Vec<MetricDataQuery>,
    BTreeMap<String, BTreeMap<String, String>>,
) {
    let mut meta = BTreeMap::new();
    match &q.expression {
        None => {
            let namespace = q.namespace.as_deref().unwrap_or_default();
            let metric_name = q.metric_name.as_deref().unwrap_or_default();
            let stat = q.stat.as_deref().unwrap_or_default();
            let id = "m1".to_owned();
            meta.insert(
                id.clone(),
                metric_labels(namespace, metric_name, &q.dimensions, stat),
            );
            let query = MetricDataQuery::builder()
                .id(id)
                .metric_stat(metric_stat(
                    namespace,
                    metric_name,
                    &q.dimensions,
                    stat,
                    period,
                ))
                .set_label(q.label.clone())
                .return_data(true)
                .build();
            (vec![query], meta)
        }
        Some(expression) => {
            let mut queries = Vec::with_capacity(q.metrics.len() + 1);
            for m in &q.metrics {
                meta.insert(
                    m.id.clone(),
                    metric_labels(&m.namespace, &m.metric_name, &m.dimensions, &m.stat),
                );
                queries.push(
                    MetricDataQuery::builder()
                        .id(&m.id)
                        .metric_stat(metric_stat(
                            &m.namespace,
                            &m.metric_name,
                            &m.dimensions,
                            &m.stat,
                            period,
                        ))
                        .return_data(m.return_data)
                        .build(),
                );
            }
            let id = (1..)
                .map(|n| format!("e{n}"))
                .find(|id| q.metrics.iter().all(|m| m.id != *id))
                .unwrap_or_else(|| "e1".to_owned());
            meta.insert(
                id.clone(),
                BTreeMap::from([("expression".to_owned(), expression.trim().to_owned())]),
            );
            // Period on an expression is for Metrics Insights / SEARCH queries; metric math
            // takes it from the metrics it refers to.
            let period = q.metrics.is_empty().then_some(period);
            queries.push(
                MetricDataQuery::builder()
                    .id(id)
                    .expression(expression.trim())
                    .set_label(q.label.clone())
                    .set_period(period)
                    .return_data(true)
                    .build(),
            );
            (queries, meta)
        }
    }
}

fn alarm_metric(
    namespace: Option<&str>,
    metric_name: Option<&str>,
    dims: &[Dimension],
    stat: Option<String>,
    period: Option<i32>,
    unit: Option<String>,
) -> Option<AlarmMetric> {
    let metric_name = metric_name?;
    Some(AlarmMetric {
        namespace: namespace.unwrap_or_default().to_owned(),
        metric_name: metric_name.to_owned(),
        dimensions: dimension_map(dims),
        stat,
        period,
        unit,
    })
}

fn metric_alarm(a: &MetricAlarm) -> Alarm {
    let stat = a
        .statistic()
        .map(|s| s.as_str().to_owned())
        .or_else(|| a.extended_statistic().map(str::to_owned));
    let metrics = a
        .metrics()
        .iter()
        .map(|q| AlarmQuery {
            id: q.id().unwrap_or_default().to_owned(),
            expression: q.expression().map(str::to_owned),
            metric: q.metric_stat().and_then(|ms| {
                let m = ms.metric()?;
                alarm_metric(
                    m.namespace(),
                    m.metric_name(),
                    m.dimensions(),
                    ms.stat().map(str::to_owned),
                    ms.period(),
                    ms.unit().map(|u| u.as_str().to_owned()),
                )
            }),
            label: q.label().map(str::to_owned),
            return_data: q.return_data().unwrap_or(true),
        })
        .collect();
    Alarm {
        name: a.alarm_name().unwrap_or_default().to_owned(),
        kind: "metric".to_owned(),
        state: a
            .state_value()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        state_reason: a.state_reason().map(str::to_owned),
        state_updated: format_time(a.state_updated_timestamp()),
        description: a.alarm_description().map(str::to_owned),
        metric: alarm_metric(
            a.namespace(),
            a.metric_name(),
            a.dimensions(),
            stat,
            a.period(),
            a.unit().map(|u| u.as_str().to_owned()),
        ),
        threshold: a.threshold(),
        comparison: a.comparison_operator().map(|c| c.as_str().to_owned()),
        evaluation_periods: a.evaluation_periods(),
        datapoints_to_alarm: a.datapoints_to_alarm(),
        metrics,
        threshold_metric_id: a.threshold_metric_id().map(str::to_owned),
        rule: None,
    }
}

fn composite_alarm(a: &CompositeAlarm) -> Alarm {
    Alarm {
        name: a.alarm_name().unwrap_or_default().to_owned(),
        kind: "composite".to_owned(),
        state: a
            .state_value()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        state_reason: a.state_reason().map(str::to_owned),
        state_updated: format_time(a.state_updated_timestamp()),
        description: a.alarm_description().map(str::to_owned),
        metric: None,
        threshold: None,
        comparison: None,
        evaluation_periods: None,
        datapoints_to_alarm: None,
        metrics: Vec::new(),
        threshold_metric_id: None,
        rule: a.alarm_rule().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn window(start: i64, end: i64, step: u64) -> Window {
        Window {
            start: Timestamp::from_second(start).unwrap(),
            end: Timestamp::from_second(end).unwrap(),
            step: Duration::from_secs(step),
        }
    }

    fn m(id: &str) -> CloudWatchMetric {
        CloudWatchMetric {
            id: id.into(),
            namespace: "AWS/EC2".into(),
            metric_name: "CPUUtilization".into(),
            dimensions: BTreeMap::from([("InstanceId".into(), "i-1".into())]),
            stat: "Average".into(),
            return_data: false,
        }
    }

    fn err(r: Result<(), MetricsError>) -> String {
        match r {
            Err(MetricsError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn metric_and_expression_forms_are_valid() {
        CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "p99")
            .with_dimension("InstanceId", "i-1")
            .validate()
            .unwrap();
        CloudWatchQuery::expression("ANOMALY_DETECTION_BAND(m1, 2)", vec![m("m1")])
            .validate()
            .unwrap();
        CloudWatchQuery::expression("SELECT AVG(CPUUtilization) FROM \"AWS/EC2\"", vec![])
            .validate()
            .unwrap();
    }

    #[test]
    fn both_or_neither_form_is_refused() {
        let mut q = CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "Average");
        q.expression = Some("m1 * 2".into());
        let msg = err(q.validate());
        assert!(msg.contains("not both"), "{msg}");
        assert!(msg.contains("namespace, metric_name, stat"), "{msg}");

        let msg = err(CloudWatchQuery::default().validate());
        assert!(msg.contains("either a metric"), "{msg}");

        let q = CloudWatchQuery {
            metrics: vec![m("m1")],
            ..CloudWatchQuery::default()
        };
        assert!(err(q.validate()).contains("only for an expression"));

        let q = CloudWatchQuery {
            namespace: Some("AWS/EC2".into()),
            ..CloudWatchQuery::default()
        };
        let msg = err(q.validate());
        assert!(msg.contains("metric_name, stat missing"), "{msg}");

        let msg = err(CloudWatchQuery::expression("  ", vec![]).validate());
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn ids_are_checked() {
        for bad in ["M1", "1m", "m-1", "", "m 1"] {
            let msg = err(CloudWatchQuery::expression("m1", vec![m(bad)]).validate());
            assert!(
                msg.contains("starts with a lowercase letter"),
                "{bad}: {msg}"
            );
        }
        for good in ["m1", "cpu_total", "aBC9"] {
            CloudWatchQuery::expression("x", vec![m(good)])
                .validate()
                .unwrap();
        }
        let msg = err(CloudWatchQuery::expression("m1", vec![m("m1"), m("m1")]).validate());
        assert!(msg.contains("used twice"), "{msg}");
    }

    #[test]
    fn stats_are_checked() {
        for good in [
            "Average",
            "Sum",
            "Maximum",
            "Minimum",
            "SampleCount",
            "IQM",
            "p99",
            "p99.9",
            "p0",
            "p100",
            "tm90",
            "tc99.5",
            "ts50",
            "wm95",
            "TM(10%:90%)",
            "TM(:95%)",
            "TC(5%:)",
            "WM(10%:90%)",
            "PR(100:2000)",
            "PR(:300)",
        ] {
            assert!(is_valid_stat(good), "{good} should be valid");
        }
        for bad in [
            "average",
            "avg",
            "p101",
            "p",
            "p9x",
            "Median",
            "TM(:)",
            "TM(10:90)",
            "PR(a:b)",
            "",
            "p99.",
            "TM10%:90%",
        ] {
            assert!(!is_valid_stat(bad), "{bad} should be invalid");
        }
        let msg = err(CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "average").validate());
        assert!(msg.contains("did you mean `Average`"), "{msg}");
        assert!(msg.contains("SampleCount"), "{msg}");
        let mut bad = m("m1");
        bad.stat = "Mean".into();
        let msg = err(CloudWatchQuery::expression("m1", vec![bad]).validate());
        assert!(msg.starts_with("metrics[0]: unknown stat `Mean`"), "{msg}");
    }

    #[test]
    fn dimensions_are_checked() {
        let q = CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "Average")
            .with_dimension("InstanceId", " ");
        assert!(err(q.validate()).contains("needs a value"));
        let q = CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "Average")
            .with_dimension(":x", "y");
        assert!(err(q.validate()).contains("not starting with `:`"));
        let mut q = CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "Average");
        for i in 0..31 {
            q = q.with_dimension(format!("d{i}"), "v");
        }
        assert!(err(q.validate()).contains("at most 30"));
    }

    #[test]
    fn periods_and_windows_are_checked() {
        for ok in [1, 5, 10, 20, 30, 60, 120, 300, 3600, 86400] {
            assert_eq!(
                validate_window(&window(0, 86400 * 30, ok.max(300))).unwrap(),
                ok.max(300) as i32
            );
            validate_window(&window(0, 600, ok)).unwrap();
        }
        for bad in [2, 15, 45, 90, 61] {
            let msg = err(validate_window(&window(0, 600, bad)).map(|_| ()));
            assert!(msg.contains("multiple of 60"), "{bad}: {msg}");
            assert!(msg.contains("1, 5, 10, 20, 30"), "{msg}");
        }
        let w = Window {
            step: Duration::from_millis(60_500),
            ..window(0, 600, 60)
        };
        assert!(err(validate_window(&w).map(|_| ())).contains("whole number"));
        let msg = err(validate_window(&window(600, 0, 60)).map(|_| ()));
        assert!(msg.contains("end must be after start"), "{msg}");
        assert!(err(validate_window(&window(600, 600, 60)).map(|_| ())).contains("after start"));
        let msg = err(validate_window(&window(0, 86400 * 30, 60)).map(|_| ()));
        assert!(msg.contains("at most 11000"), "{msg}");
    }

    #[test]
    fn queries_are_built_with_ids_and_labels() {
        let q = CloudWatchQuery::metric("AWS/EC2", "CPUUtilization", "p99")
            .with_dimension("InstanceId", "i-1")
            .with_dimension("id", "clash");
        let (queries, meta) = build_queries(&q, 300);
        assert_eq!(queries.len(), 1);
        assert_eq!(queries[0].id(), Some("m1"));
        let ms = queries[0].metric_stat().unwrap();
        assert_eq!(ms.period(), Some(300));
        assert_eq!(ms.stat(), Some("p99"));
        assert_eq!(ms.metric().unwrap().dimensions().len(), 2);
        let labels = &meta["m1"];
        assert_eq!(labels["InstanceId"], "i-1");
        assert_eq!(labels["dimension.id"], "clash");
        assert_eq!(labels["stat"], "p99");

        let mut m2 = m("m2");
        m2.return_data = true;
        let q = CloudWatchQuery::expression(" ANOMALY_DETECTION_BAND(e1, 2) ", vec![m("e1"), m2]);
        let (queries, meta) = build_queries(&q, 60);
        assert_eq!(queries.len(), 3);
        assert_eq!(queries[0].return_data(), Some(false));
        assert_eq!(queries[1].return_data(), Some(true));
        let e = &queries[2];
        assert_eq!(
            e.id(),
            Some("e2"),
            "the expression id avoids the metric ids"
        );
        assert_eq!(e.expression(), Some("ANOMALY_DETECTION_BAND(e1, 2)"));
        assert_eq!(e.period(), None);
        assert_eq!(meta["e2"]["expression"], "ANOMALY_DETECTION_BAND(e1, 2)");

        let (queries, _) = build_queries(&CloudWatchQuery::expression("SELECT 1", vec![]), 60);
        assert_eq!(queries[0].period(), Some(60));
    }

    #[tokio::test]
    async fn dispatch_failures_are_mapped() {
        use aws_credential_types::provider::error::CredentialsError;
        use aws_sdk_cloudwatch::error::ConnectorError;
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let cw = CloudWatchClient::with_credentials(
            "us-east-1".into(),
            Some("http://127.0.0.1:9".into()),
            Duration::from_secs(3),
            Credentials::for_tests(),
        )
        .await
        .unwrap();
        let creds: SdkError<GetMetricDataError> =
            SdkError::dispatch_failure(ConnectorError::other(
                Box::new(CredentialsError::not_loaded("no providers in chain")),
                None,
            ));
        match cw.map_error(creds) {
            MetricsError::NotConfigured(m) => {
                assert!(m.contains("http://127.0.0.1:9"), "{m}");
                assert!(m.contains("credentials"), "{m}");
            }
            other => panic!("expected NotConfigured, got {other:?}"),
        }
        let io: SdkError<GetMetricDataError> = SdkError::dispatch_failure(ConnectorError::io(
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ));
        assert!(matches!(
            cw.map_error(io),
            MetricsError::Unreachable { endpoint, .. } if endpoint == "http://127.0.0.1:9"
        ));
        let timeout: SdkError<GetMetricDataError> =
            SdkError::dispatch_failure(ConnectorError::timeout("slow".into()));
        assert!(matches!(
            cw.map_error(timeout),
            MetricsError::Timeout { seconds: 3, .. }
        ));
    }

    #[test]
    fn query_schema_and_serde_deny_unknown_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(CloudWatchQuery)).unwrap();
        assert_eq!(schema["additionalProperties"], false);
        let props = schema["properties"].as_object().unwrap();
        for key in [
            "namespace",
            "metric_name",
            "dimensions",
            "stat",
            "expression",
            "metrics",
        ] {
            assert!(props.contains_key(key), "{key}");
            assert!(
                props[key]["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{key} has a description"
            );
        }
        let bad = serde_json::from_value::<CloudWatchQuery>(serde_json::json!({
            "namespace": "AWS/EC2", "metric": "x"
        }));
        assert!(bad.is_err());
        let ok: CloudWatchQuery = serde_json::from_value(serde_json::json!({
            "expression": "m1 * 2",
            "metrics": [{"id": "m1", "namespace": "AWS/EC2", "metric_name": "CPUUtilization",
                         "stat": "Average", "dimensions": {"InstanceId": "i-1"}}]
        }))
        .unwrap();
        ok.validate().unwrap();
        assert!(!ok.metrics[0].return_data);
    }
}
