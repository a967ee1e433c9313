//! The metrics layer: Prometheus / Amazon Managed Service for Prometheus (PromQL over the
//! Prometheus HTTP API, SigV4-signed for AMP) and CloudWatch (`GetMetricData`), with results
//! bounded and summarised so that an agent's context is not flooded.

pub mod cloudwatch;
pub mod cloudwatch_scope;
pub mod prom_answer;
pub mod prometheus;
pub mod promql_scope;
pub mod query;
pub mod sigv4;
pub mod summary;
pub mod values;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One time series: labels (Prometheus labels, or CloudWatch id/label/dimensions) and
/// points as (unix seconds, value), sorted by time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Series {
    /// Labels identifying the series.
    pub labels: BTreeMap<String, String>,
    /// (unix seconds, value), oldest first.
    pub points: Vec<(i64, f64)>,
}

/// A time window with a resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Start (inclusive).
    pub start: Timestamp,
    /// End (inclusive).
    pub end: Timestamp,
    /// Step (Prometheus) or period (CloudWatch).
    pub step: Duration,
}

/// The configured metric sources.
#[derive(Default)]
pub struct Metrics {
    /// Prometheus / AMP, when configured.
    pub prometheus: Option<prometheus::PrometheusClient>,
    /// CloudWatch, when configured.
    pub cloudwatch: Option<cloudwatch::CloudWatchClient>,
}

impl Metrics {
    /// The CloudWatch `ClusterName` of this server's cluster, when it was given.
    pub fn cloudwatch_cluster(&self) -> Option<&str> {
        self.cloudwatch.as_ref().and_then(|c| c.cluster_name())
    }
}

/// Errors of the metrics layer; every message names the endpoint it concerns.
#[derive(Debug, Error)]
pub enum MetricsError {
    /// The query or its parameters were refused by the server (bad PromQL, bad dimension…).
    #[error("{endpoint} refused the query: {message}")]
    BadQuery {
        /// Endpoint.
        endpoint: String,
        /// The server's message.
        message: String,
    },
    /// The endpoint could not be reached.
    #[error("cannot reach {endpoint}: {message}")]
    Unreachable {
        /// Endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// No answer within the configured timeout.
    #[error("{endpoint} did not answer within {seconds} s")]
    Timeout {
        /// Endpoint.
        endpoint: String,
        /// The timeout.
        seconds: u64,
    },
    /// The server failed (5xx, throttling after retries, unexpected answer).
    #[error("{endpoint} failed: {message}")]
    Server {
        /// Endpoint.
        endpoint: String,
        /// What it answered.
        message: String,
    },
    /// The source is not configured on this server.
    #[error("{0}")]
    NotConfigured(String),
    /// The arguments are not valid (checked before anything is sent).
    #[error("{0}")]
    Invalid(String),
    /// The query is not limited to the namespaces this server is scoped to (checked
    /// before anything is sent).
    #[error("{0}")]
    OutOfScope(String),
}

impl MetricsError {
    /// The same error, its message prefixed with the argument it concerns (for tools that
    /// take more than one query); errors about the source itself are left as they are.
    pub fn about(self, arg: &str) -> Self {
        match self {
            Self::Invalid(m) => Self::Invalid(format!("{arg}: {m}")),
            Self::OutOfScope(m) => Self::OutOfScope(format!("{arg}: {m}")),
            other => other,
        }
    }
}

impl From<MetricsError> for crate::error::ToolError {
    fn from(e: MetricsError) -> Self {
        match e {
            MetricsError::Invalid(m) => Self::InvalidArgs(m),
            MetricsError::BadQuery { .. } => Self::InvalidArgs(e.to_string()),
            MetricsError::NotConfigured(m) | MetricsError::OutOfScope(m) => Self::Refused(m),
            MetricsError::Unreachable { .. } => Self::Upstream {
                message: e.to_string(),
                hint: "check the endpoint's address and that it is up; retry when it is".into(),
            },
            MetricsError::Timeout { .. } => Self::Upstream {
                message: e.to_string(),
                hint: "narrow the window or the query, or raise --metrics-timeout".into(),
            },
            MetricsError::Server { .. } => Self::Upstream {
                message: e.to_string(),
                hint: "the metrics service failed, not the query; retry later".into(),
            },
        }
    }
}
