//! Client of the Prometheus HTTP query API (`/api/v1/query`, `/api/v1/query_range`), for a
//! plain Prometheus or for Amazon Managed Service for Prometheus (AMP), whose requests are
//! SigV4-signed (service `aps`).
//!
//! Queries are sent as `POST` with a form body (the API accepts both; POST keeps long
//! PromQL out of URLs and logs, and its body is what SigV4 hashes). Arguments are checked
//! before anything is sent; errors name the endpoint. Only 429 and 503 answers are retried
//! (at most [`MAX_RETRIES`] times, with exponential backoff from 250 ms or the server's
//! `Retry-After` up to 5 s), and only when the wait ends within the configured timeout of
//! the first attempt, so a query takes at most about twice the timeout. A 503 reporting a
//! query timeout (`errorType: timeout`) is not retried: it would only time out again.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use serde_json::Value;
use tokio::sync::Mutex;

use super::prom_answer::{Answer, NoSeries};
use super::sigv4::{self, SigV4Scope};
use super::{MetricsError, Series, Window};

/// Prometheus refuses range queries of more than 11,000 points per series.
pub const MAX_POINTS_PER_SERIES: u64 = 11_000;

/// Retries of a 429 / 503 answer, at most.
pub const MAX_RETRIES: u32 = 3;

/// First backoff delay; doubled at each retry.
const BACKOFF_BASE: Duration = Duration::from_millis(250);

/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Largest answer read; a query answering more is refused rather than filling memory.
const MAX_BODY_BYTES: usize = 64 << 20;

/// Credentials are refreshed this long before they expire.
const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// SigV4 signing for Amazon Managed Service for Prometheus: a region and a credentials
/// provider (resolved lazily and cached until shortly before expiry).
#[derive(Clone)]
pub struct AmpAuth {
    region: String,
    provider: SharedCredentialsProvider,
    cached: Arc<Mutex<Option<Credentials>>>,
}

impl fmt::Debug for AmpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmpAuth")
            .field("region", &self.region)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl AmpAuth {
    /// Signs for `region` with credentials from `provider`.
    pub fn new(region: impl Into<String>, provider: SharedCredentialsProvider) -> Self {
        Self {
            region: region.into(),
            provider,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// Signs for `region` with fixed credentials.
    pub fn from_credentials(region: impl Into<String>, credentials: Credentials) -> Self {
        Self::new(region, SharedCredentialsProvider::new(credentials))
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        &self.region
    }

    async fn credentials(&self, endpoint: &str) -> Result<Credentials, MetricsError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = match c.expiry() {
                None => true,
                Some(exp) => exp > SystemTime::now() + CREDENTIALS_REFRESH_MARGIN,
            };
            if fresh {
                return Ok(c.clone());
            }
        }
        let creds = self.provider.provide_credentials().await.map_err(|e| {
            MetricsError::NotConfigured(format!(
                "no AWS credentials to sign requests to {endpoint}: {}",
                error_chain(&e)
            ))
        })?;
        *cached = Some(creds.clone());
        Ok(creds)
    }
}

/// Builds [`AmpAuth`] from the standard AWS configuration chain (environment, shared
/// config/credentials files and `profile`, SSO, web identity / IRSA, ECS and EC2 instance
/// roles). `region` overrides the configured region. Credentials are resolved on first use.
pub async fn amp_from_env(
    region: Option<String>,
    profile: Option<String>,
) -> Result<AmpAuth, MetricsError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = region.filter(|r| !r.trim().is_empty()) {
        loader = loader.region(aws_config::Region::new(r.trim().to_owned()));
    }
    if let Some(p) = profile.filter(|p| !p.trim().is_empty()) {
        loader = loader.profile_name(p.trim());
    }
    let config = loader.load().await;
    let region = config
        .region()
        .map(|r| r.as_ref().to_owned())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            MetricsError::NotConfigured(
                "Amazon Managed Service for Prometheus needs an AWS region: pass it \
                 explicitly or set AWS_REGION (or `region` in the AWS profile)"
                    .into(),
            )
        })?;
    let provider = config.credentials_provider().ok_or_else(|| {
        MetricsError::NotConfigured(
            "no AWS credentials provider is configured for Amazon Managed Service for \
             Prometheus"
                .into(),
        )
    })?;
    Ok(AmpAuth::new(region, provider))
}

/// A client of one Prometheus (or AMP workspace) query endpoint.
#[derive(Debug, Clone)]
pub struct PrometheusClient {
    endpoint: String,
    http: reqwest::Client,
    amp: Option<AmpAuth>,
    timeout: Duration,
}

impl PrometheusClient {
    /// A client of the Prometheus API under `base_url` (`http://host:9090`, or for AMP
    /// `https://aps-workspaces.REGION.amazonaws.com/workspaces/WORKSPACE_ID`), signing with
    /// `amp` when given; every request is bounded by `timeout`.
    pub fn new(
        base_url: &str,
        amp: Option<AmpAuth>,
        timeout: Duration,
    ) -> Result<Self, MetricsError> {
        let url = validate_base_url(base_url)?;
        let endpoint = url.as_str().trim_end_matches('/').to_owned();
        if amp.is_some() && url.scheme() == "http" && !is_loopback(&url) {
            return Err(MetricsError::Invalid(format!(
                "Prometheus URL `{endpoint}`: SigV4-signed (AMP) requests need https:// \
                 (plain http:// is allowed only for loopback addresses)"
            )));
        }
        if timeout.is_zero() {
            return Err(MetricsError::Invalid(format!(
                "Prometheus endpoint {endpoint}: the timeout must be greater than zero"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("eks-ops-mcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                MetricsError::NotConfigured(format!(
                    "cannot set up an HTTP client for {endpoint}: {}",
                    error_chain(&e)
                ))
            })?;
        Ok(Self {
            endpoint,
            http,
            amp,
            timeout,
        })
    }

    /// The base URL queries go to (without a trailing `/`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether requests are SigV4-signed (AMP).
    pub fn is_amp(&self) -> bool {
        self.amp.is_some()
    }

    /// A range query (`/api/v1/query_range`) over `w`, one point per `w.step`.
    pub async fn range(&self, promql: &str, w: &Window) -> Result<Vec<Series>, MetricsError> {
        let promql = check_promql(promql)?;
        check_window(&self.endpoint, w)?;
        let params = [
            ("query", promql.to_owned()),
            ("start", format_time(w.start)),
            ("end", format_time(w.end)),
            ("step", format_step(w.step)),
        ];
        self.post("api/v1/query_range", &params).await
    }

    /// An instant query (`/api/v1/query`) at `at` (default: the server's now). A vector
    /// gives one single-point series per element; a scalar one single-point series without
    /// labels.
    pub async fn instant(
        &self,
        promql: &str,
        at: Option<Timestamp>,
    ) -> Result<Vec<Series>, MetricsError> {
        let promql = check_promql(promql)?;
        let mut params = vec![("query", promql.to_owned())];
        if let Some(t) = at {
            params.push(("time", format_time(t)));
        }
        self.post("api/v1/query", &params).await
    }

    /// Sends one query, retrying 429 / 503; returns the series of a success.
    async fn post(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Series>, MetricsError> {
        let url = format!("{}/{path}", self.endpoint);
        let body = form_encode(params);
        let started = Instant::now();
        let mut retries = 0;
        loop {
            let mut request = self
                .http
                .post(&url)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(ACCEPT, "application/json")
                .body(body.clone())
                .build()
                .map_err(|e| self.transport_error(&e))?;
            if let Some(amp) = &self.amp {
                let creds = amp.credentials(&self.endpoint).await?;
                sigv4::sign_request(&mut request, &creds, &SigV4Scope::amp(&amp.region))
                    .map_err(|e| MetricsError::NotConfigured(format!("{}: {e}", self.endpoint)))?;
            }
            let response = self
                .http
                .execute(request)
                .await
                .map_err(|e| self.transport_error(&e))?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = self.read_body(response).await?;
            if (status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE)
                && retries < MAX_RETRIES
                && !is_query_timeout(&bytes)
            {
                let delay = backoff(retries, &headers);
                if started.elapsed() + delay <= self.timeout {
                    tracing::debug!(
                        endpoint = %self.endpoint,
                        %status,
                        retry = retries + 1,
                        delay_ms = delay.as_millis() as u64,
                        "retrying Prometheus query"
                    );
                    tokio::time::sleep(delay).await;
                    retries += 1;
                    continue;
                }
            }
            return self.decode(&url, status, &headers, &bytes, retries);
        }
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, MetricsError> {
        let mut out = Vec::new();
        loop {
            match response.chunk().await {
                Ok(None) => return Ok(out),
                Ok(Some(chunk)) => {
                    if out.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(MetricsError::Server {
                            endpoint: self.endpoint.clone(),
                            message: format!(
                                "the answer is larger than {} MiB: narrow the query (fewer \
                                 series, a larger step or a shorter window)",
                                MAX_BODY_BYTES >> 20
                            ),
                        });
                    }
                    out.extend_from_slice(&chunk);
                }
                Err(e) if e.is_timeout() => return Err(self.timeout_error()),
                Err(e) => {
                    return Err(MetricsError::Server {
                        endpoint: self.endpoint.clone(),
                        message: format!("the answer was cut short: {}", error_chain(&e)),
                    });
                }
            }
        }
    }

    fn timeout_error(&self) -> MetricsError {
        let t = self.timeout;
        MetricsError::Timeout {
            endpoint: self.endpoint.clone(),
            seconds: t.as_secs() + u64::from(t.subsec_nanos() > 0),
        }
    }

    fn transport_error(&self, e: &reqwest::Error) -> MetricsError {
        if e.is_timeout() {
            return self.timeout_error();
        }
        MetricsError::Unreachable {
            endpoint: self.endpoint.clone(),
            message: error_chain(e),
        }
    }

    /// Turns an HTTP answer into the series of a success or an error.
    fn decode(
        &self,
        url: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        retries: u32,
    ) -> Result<Vec<Series>, MetricsError> {
        let endpoint = self.endpoint.clone();
        if status.is_success() {
            // the common case, parsed straight into samples (no JSON tree)
            match serde_json::from_slice::<Answer>(body) {
                Ok(a) if a.status == "success" => {
                    for w in a.warnings.iter().flatten() {
                        tracing::warn!(endpoint, warning = %w, "Prometheus query warning");
                    }
                    return match a.data.map(|d| d.into_series()) {
                        Some(Ok(series)) => Ok(series),
                        Some(Err(NoSeries::StringResult)) => Err(MetricsError::BadQuery {
                            endpoint,
                            message: "the query evaluates to a string, not to numbers".into(),
                        }),
                        None => Err(MetricsError::Server {
                            endpoint,
                            message: "unexpected answer: a success without `data`".into(),
                        }),
                    };
                }
                Ok(_) => {}
                Err(e) => {
                    // a success whose data does not parse, or not Prometheus JSON at all
                    let v: Option<Value> = serde_json::from_slice(body).ok();
                    if v.as_ref()
                        .and_then(|v| v.get("status"))
                        .and_then(Value::as_str)
                        == Some("success")
                    {
                        return Err(MetricsError::Server {
                            endpoint,
                            message: format!("unexpected answer: {e}"),
                        });
                    }
                }
            }
        }
        // errors: small bodies, read as a JSON tree
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let prom_error = json.as_ref().and_then(prometheus_error);
        if status.is_success() {
            if let Some((_, message)) = prom_error {
                return Err(MetricsError::BadQuery { endpoint, message });
            }
            return Err(MetricsError::Server {
                endpoint,
                message: format!(
                    "unexpected answer to {url} (HTTP {status}, not Prometheus API JSON): {}",
                    snippet(body)
                ),
            });
        }
        let message = prom_error
            .as_ref()
            .map(|(_, m)| m.clone())
            .or_else(|| json.as_ref().and_then(aws_error_message))
            .unwrap_or_else(|| snippet(body));
        let after = if retries > 0 {
            format!(" (after {retries} retries)")
        } else {
            String::new()
        };
        if status.is_redirection() {
            let to = headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            return Err(MetricsError::Server {
                endpoint,
                message: format!(
                    "HTTP {status}: redirected to {to}; configure the final URL as the endpoint"
                ),
            });
        }
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let hint = if self.amp.is_some() {
                    "check the AWS region, the credentials and the aps:QueryMetrics permission"
                } else {
                    "the endpoint requires authentication (for AMP, enable SigV4 signing)"
                };
                Err(MetricsError::NotConfigured(format!(
                    "{endpoint} refused access (HTTP {status}): {message}; {hint}"
                )))
            }
            StatusCode::NOT_FOUND => Err(MetricsError::NotConfigured(format!(
                "{endpoint} has no Prometheus query API (HTTP 404 for {url}): check the base \
                 URL (e.g. http://HOST:9090, or for AMP \
                 https://aps-workspaces.REGION.amazonaws.com/workspaces/WORKSPACE_ID)"
            ))),
            StatusCode::TOO_MANY_REQUESTS => Err(MetricsError::Server {
                endpoint,
                message: format!("throttled (HTTP {status}){after}: {message}"),
            }),
            s if s.is_server_error() => Err(MetricsError::Server {
                endpoint,
                message: format!("HTTP {status}{after}: {message}"),
            }),
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                Err(MetricsError::BadQuery { endpoint, message })
            }
            s if s.is_client_error() && prom_error.is_some() => {
                Err(MetricsError::BadQuery { endpoint, message })
            }
            _ => Err(MetricsError::Server {
                endpoint,
                message: format!("unexpected HTTP {status}: {message}"),
            }),
        }
    }
}

fn validate_base_url(base_url: &str) -> Result<reqwest::Url, MetricsError> {
    const ALLOWED: &str = "expected http(s)://HOST[:PORT][/PATH], e.g. http://127.0.0.1:9090 \
                           or https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-…";
    let trimmed = base_url.trim();
    if trimmed.is_empty() {
        return Err(MetricsError::Invalid(format!(
            "the Prometheus URL is empty; {ALLOWED}"
        )));
    }
    if !trimmed.contains("://") {
        return Err(MetricsError::Invalid(format!(
            "the Prometheus URL `{trimmed}` has no scheme: only http and https are allowed; \
             {ALLOWED}"
        )));
    }
    let url = reqwest::Url::parse(trimmed).map_err(|e| {
        MetricsError::Invalid(format!(
            "the Prometheus URL `{trimmed}` is not valid ({e}); {ALLOWED}"
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(MetricsError::Invalid(format!(
            "the Prometheus URL `{trimmed}` has scheme `{}`: only http and https are allowed; \
             {ALLOWED}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(MetricsError::Invalid(format!(
            "the Prometheus URL `{trimmed}` has no host; {ALLOWED}"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(MetricsError::Invalid(
            "the Prometheus URL must not carry credentials (user:password@); use AMP SigV4 \
             signing or a local proxy"
                .into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(MetricsError::Invalid(format!(
            "the Prometheus URL `{trimmed}` must not have a query (?…) or fragment (#…); \
             {ALLOWED}"
        )));
    }
    let path = url.path().trim_end_matches('/');
    if path.ends_with("/api/v1") || path.contains("/api/v1/") {
        return Err(MetricsError::Invalid(format!(
            "the Prometheus URL `{trimmed}` should be the base URL, without `/api/v1…` (it is \
             added per query); {ALLOWED}"
        )));
    }
    Ok(url)
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn check_promql(promql: &str) -> Result<&str, MetricsError> {
    let q = promql.trim();
    if q.is_empty() {
        return Err(MetricsError::Invalid("the PromQL query is empty".into()));
    }
    Ok(q)
}

/// Checks a range query's window: ordered, positive step, at most
/// [`MAX_POINTS_PER_SERIES`] points per series.
fn check_window(endpoint: &str, w: &Window) -> Result<(), MetricsError> {
    if w.end < w.start {
        return Err(MetricsError::Invalid(format!(
            "the window ends ({}) before it starts ({})",
            w.end, w.start
        )));
    }
    if w.step.is_zero() {
        return Err(MetricsError::Invalid(
            "the step must be greater than zero".into(),
        ));
    }
    let span_ns = (w.end.as_nanosecond() - w.start.as_nanosecond()) as u128;
    let step_ns = w.step.as_nanos();
    let points = span_ns / step_ns + 1;
    if points > u128::from(MAX_POINTS_PER_SERIES) {
        let span = Duration::from_nanos(span_ns.min(u128::from(u64::MAX)) as u64);
        let min_step_s = span_ns.div_ceil(u128::from(MAX_POINTS_PER_SERIES - 1) * 1_000_000_000);
        let max_span = w.step.saturating_mul((MAX_POINTS_PER_SERIES - 1) as u32);
        return Err(MetricsError::Invalid(format!(
            "a window of {} at a step of {} gives {points} points per series; Prometheus \
             ({endpoint}) allows at most {MAX_POINTS_PER_SERIES}: use a step of at least {} \
             or a window of at most {} at this step",
            humantime::format_duration(span),
            humantime::format_duration(w.step),
            humantime::format_duration(Duration::from_secs(min_step_s as u64)),
            humantime::format_duration(max_span),
        )));
    }
    Ok(())
}

/// Unix seconds, with milliseconds when not whole.
fn format_time(t: Timestamp) -> String {
    if t.subsec_nanosecond() == 0 {
        t.as_second().to_string()
    } else {
        format!("{:.3}", t.as_millisecond() as f64 / 1000.0)
    }
}

/// Seconds, as the float Prometheus accepts.
fn format_step(step: Duration) -> String {
    if step.subsec_nanos() == 0 {
        step.as_secs().to_string()
    } else {
        step.as_secs_f64().to_string()
    }
}

/// `application/x-www-form-urlencoded`.
fn form_encode(params: &[(&str, String)]) -> String {
    let mut url = reqwest::Url::parse("http://form.invalid/").expect("static URL");
    url.query_pairs_mut()
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
    url.query().unwrap_or_default().to_owned()
}

/// The wait before retry number `retries + 1`: exponential, or the server's `Retry-After`
/// (seconds) when longer, capped.
fn backoff(retries: u32, headers: &HeaderMap) -> Duration {
    let exp = BACKOFF_BASE * 2u32.pow(retries);
    let asked = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or_default();
    exp.max(asked).min(MAX_RETRY_AFTER)
}

/// A 503 that reports the query itself timing out (Prometheus' `errorType: timeout`).
fn is_query_timeout(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .as_ref()
        .and_then(prometheus_error)
        .is_some_and(|(kind, _)| kind == "timeout")
}

/// `(errorType, error)` of a Prometheus API error answer.
fn prometheus_error(v: &Value) -> Option<(String, String)> {
    if v.get("status").and_then(Value::as_str) != Some("error") {
        return None;
    }
    let kind = v
        .get("errorType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = v.get("error").and_then(Value::as_str).unwrap_or_default();
    let message = if message.is_empty() {
        format!("error of type `{kind}` without a message")
    } else {
        message.to_owned()
    };
    Some((kind.to_owned(), message))
}

/// The message of an AWS JSON error (`{"message": …}`), as AMP answers outside PromQL.
fn aws_error_message(v: &Value) -> Option<String> {
    ["message", "Message"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

/// The start of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    match text.char_indices().nth(MAX) {
        None => text.to_owned(),
        Some((i, _)) => format!("{}…", &text[..i]),
    }
}

/// An error and its sources, `: `-separated, without repeats.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn init() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }

    fn client(url: &str) -> PrometheusClient {
        init();
        PrometheusClient::new(url, None, Duration::from_secs(5)).unwrap()
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

    // ---- URL validation -------------------------------------------------------------

    #[test]
    fn urls_are_validated() {
        init();
        let t = Duration::from_secs(1);
        let ok = PrometheusClient::new("http://127.0.0.1:9090/", None, t).unwrap();
        assert_eq!(ok.endpoint(), "http://127.0.0.1:9090");
        let ok = PrometheusClient::new(
            "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1/",
            None,
            t,
        )
        .unwrap();
        assert_eq!(
            ok.endpoint(),
            "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1"
        );
        for (bad, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("127.0.0.1:9090", "only http and https"),
            ("ftp://example.com", "only http and https"),
            ("not a url", "no scheme"),
            ("http://exa mple.com", "not valid"),
            ("http://user:pw@example.com", "credentials"),
            ("http://example.com/?x=1", "query"),
            ("http://example.com/api/v1", "base URL"),
            ("http://example.com/api/v1/query", "base URL"),
        ] {
            let e = PrometheusClient::new(bad, None, t).unwrap_err();
            assert!(matches!(e, MetricsError::Invalid(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains(needle), "{bad}: {e}");
            if !bad.trim().is_empty() {
                assert!(e.to_string().contains("http(s)://") || needle == "credentials");
            }
        }
        let e = PrometheusClient::new("http://127.0.0.1:9090", None, Duration::ZERO).unwrap_err();
        assert!(matches!(e, MetricsError::Invalid(_)));
    }

    #[test]
    fn amp_needs_https_except_on_loopback() {
        init();
        let amp = || {
            Some(AmpAuth::from_credentials(
                "us-east-1",
                Credentials::new("AKID", "SECRET", None, None, "test"),
            ))
        };
        let t = Duration::from_secs(1);
        let e = PrometheusClient::new("http://aps.example.com", amp(), t).unwrap_err();
        assert!(e.to_string().contains("https"), "{e}");
        assert!(PrometheusClient::new("http://127.0.0.1:1", amp(), t).is_ok());
        assert!(PrometheusClient::new("http://localhost:1", amp(), t).is_ok());
        let c = PrometheusClient::new("https://aps.example.com/workspaces/ws", amp(), t).unwrap();
        assert!(c.is_amp());
        // The secret does not show in Debug output.
        assert!(!format!("{c:?}").contains("SECRET"));
    }

    #[tokio::test]
    async fn amp_from_env_takes_the_given_region() {
        let auth = amp_from_env(Some("eu-central-1".into()), None)
            .await
            .unwrap();
        assert_eq!(auth.region(), "eu-central-1");
    }

    // ---- Validation before sending ------------------------------------------------------

    #[tokio::test]
    async fn validation_happens_before_sending() {
        // Port 9 on loopback: nothing is sent anyway, every call fails validation first.
        let c = client("http://127.0.0.1:9");
        let e = c.range("  ", &window(0, 60, 15)).await.unwrap_err();
        assert!(
            matches!(e, MetricsError::Invalid(ref m) if m.contains("empty")),
            "{e}"
        );
        let e = c.instant("", None).await.unwrap_err();
        assert!(matches!(e, MetricsError::Invalid(_)), "{e}");
        let e = c.range("up", &window(100, 50, 15)).await.unwrap_err();
        assert!(
            matches!(e, MetricsError::Invalid(ref m) if m.contains("before")),
            "{e}"
        );
        let e = c.range("up", &window(0, 60, 0)).await.unwrap_err();
        assert!(
            matches!(e, MetricsError::Invalid(ref m) if m.contains("step")),
            "{e}"
        );
    }

    #[test]
    fn point_limit() {
        // 11,000 points exactly: allowed.
        assert!(check_window("e", &window(0, 10_999 * 60, 60)).is_ok());
        // 11,001 points: refused, with numbers and suggestions.
        let e = check_window("http://p:9090", &window(0, 11_000 * 60, 60)).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("11001 points"), "{m}");
        assert!(m.contains("at most 11000"), "{m}");
        assert!(m.contains("step of at least"), "{m}");
        assert!(m.contains("http://p:9090"), "{m}");
        // A week at 30 s: 20,161 points; a step of at least 55 s would do.
        let e = check_window("e", &window(0, 7 * 86_400, 30)).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("20161 points"), "{m}");
        assert!(m.contains("at least 55s"), "{m}");
        assert!(m.contains("at most 3days 19h 39m 30s"), "{m}");
        // A single instant is one point.
        assert!(check_window("e", &window(5, 5, 1)).is_ok());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_time(ts(1_700_000_000)), "1700000000");
        assert_eq!(
            format_time(Timestamp::from_millisecond(1_700_000_000_250).unwrap()),
            "1700000000.250"
        );
        assert_eq!(format_step(Duration::from_secs(300)), "300");
        assert_eq!(format_step(Duration::from_millis(1500)), "1.5");
        assert_eq!(
            form_encode(&[
                ("query", "sum(rate(x{a=\"b c\"}[5m])) + 1".into()),
                ("time", "1".into())
            ]),
            "query=sum%28rate%28x%7Ba%3D%22b+c%22%7D%5B5m%5D%29%29+%2B+1&time=1"
        );
    }

    // ---- Against a scripted loopback HTTP server ---------------------------------------

    /// A captured request: head (request line + headers) and body.
    #[derive(Debug, Clone)]
    struct Captured {
        head: String,
        body: String,
    }

    type Seen = Arc<std::sync::Mutex<Vec<Captured>>>;

    /// Serves `replies` (status, extra header lines, body) in order, one per connection,
    /// the last one repeated; records the requests.
    async fn scripted(replies: Vec<(u16, &'static str, String)>) -> (String, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = Arc::default();
        let seen2 = seen.clone();
        let n = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let i = n.fetch_add(1, Ordering::SeqCst);
                let (status, extra, reply_body) = replies[i.min(replies.len() - 1)].clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    let head_end = loop {
                        let n = sock.read(&mut tmp).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&tmp[..n]);
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            if k.eq_ignore_ascii_case("content-length") {
                                v.trim().parse().ok()
                            } else {
                                None
                            }
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = sock.read(&mut tmp).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&tmp[..n]);
                    }
                    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
                    seen.lock().unwrap().push(Captured { head, body });
                    let out = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{reply_body}",
                        reply_body.len()
                    );
                    let _ = sock.write_all(out.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (url, seen)
    }

    fn ok_vector() -> String {
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1700000000,"7"]}]}}"#.into()
    }

    fn unavailable() -> String {
        r#"{"status":"error","errorType":"unavailable","error":"too busy"}"#.into()
    }

    #[tokio::test]
    async fn retries_503_and_429_then_succeeds() {
        let (url, seen) = scripted(vec![
            (503, "", unavailable()),
            (429, "Retry-After: 0\r\n", "slow down".into()),
            (200, "", ok_vector()),
        ])
        .await;
        let s = client(&url)
            .instant("up", Some(ts(1_700_000_000)))
            .await
            .unwrap();
        assert_eq!(s[0].points, vec![(1_700_000_000, 7.0)]);
        assert_eq!(s[0].labels["job"], "a");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        let first = &seen[0];
        assert!(
            first.head.starts_with("POST /api/v1/query HTTP/1.1"),
            "{}",
            first.head
        );
        assert!(
            first
                .head
                .to_ascii_lowercase()
                .contains("content-type: application/x-www-form-urlencoded"),
            "{}",
            first.head
        );
        assert_eq!(first.body, "query=up&time=1700000000");
        // Not signed without AMP.
        assert!(!first.head.to_ascii_lowercase().contains("authorization"));
    }

    #[tokio::test]
    async fn gives_up_after_three_retries() {
        let (url, seen) = scripted(vec![(429, "", r#"{"message":"Rate exceeded"}"#.into())]).await;
        let started = Instant::now();
        let e = client(&url).instant("up", None).await.unwrap_err();
        assert!(matches!(e, MetricsError::Server { .. }), "{e:?}");
        let m = e.to_string();
        assert!(m.contains(&url), "{m}");
        assert!(m.contains("after 3 retries"), "{m}");
        assert!(m.contains("Rate exceeded"), "{m}");
        assert_eq!(seen.lock().unwrap().len(), 4);
        // 250 + 500 + 1000 ms of backoff.
        assert!(started.elapsed() >= Duration::from_millis(1750));
    }

    #[tokio::test]
    async fn retries_stay_within_the_timeout() {
        let (url, seen) = scripted(vec![(503, "Retry-After: 3\r\n", unavailable())]).await;
        init();
        let c = PrometheusClient::new(&url, None, Duration::from_secs(4)).unwrap();
        let started = Instant::now();
        let e = c.instant("up", None).await.unwrap_err();
        assert!(matches!(e, MetricsError::Server { .. }), "{e:?}");
        // One retry after 3 s; a second would end past the 4 s budget.
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[tokio::test]
    async fn no_retry_on_other_errors() {
        for (status, body) in [
            (500, r#"{"status":"error","errorType":"internal","error":"boom"}"#.to_owned()),
            (502, "bad gateway".to_owned()),
            (
                503,
                r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#
                    .to_owned(),
            ),
        ] {
            let (url, seen) = scripted(vec![(status, "", body), (200, "", ok_vector())]).await;
            let e = client(&url).instant("up", None).await.unwrap_err();
            assert!(matches!(e, MetricsError::Server { .. }), "{status}: {e:?}");
            assert!(e.to_string().contains(&url), "{e}");
            assert_eq!(seen.lock().unwrap().len(), 1, "{status}");
        }
    }

    #[tokio::test]
    async fn prometheus_errors_are_bad_queries() {
        let (url, seen) = scripted(vec![(
            400,
            "",
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:4: parse error: unexpected end of input"}"#
                .into(),
        )])
        .await;
        let e = client(&url).instant("up{", None).await.unwrap_err();
        match &e {
            MetricsError::BadQuery { endpoint, message } => {
                assert_eq!(endpoint, &url);
                assert!(message.contains("parse error"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(seen.lock().unwrap().len(), 1);
        let (url, _) = scripted(vec![(
            422,
            "",
            r#"{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}"#
                .into(),
        )])
        .await;
        let e = client(&url).instant("a + b", None).await.unwrap_err();
        assert!(matches!(e, MetricsError::BadQuery { .. }), "{e:?}");
        assert!(e.to_string().contains("many-to-many"), "{e}");
    }

    #[tokio::test]
    async fn auth_not_found_redirect_and_garbage() {
        let (url, _) = scripted(vec![(
            403,
            "",
            r#"{"message":"User is not authorized"}"#.into(),
        )])
        .await;
        let e = client(&url).instant("up", None).await.unwrap_err();
        assert!(
            matches!(e, MetricsError::NotConfigured(ref m) if m.contains("not authorized") && m.contains(&url)),
            "{e:?}"
        );
        let (url, _) = scripted(vec![(404, "", "404 page not found".into())]).await;
        let e = client(&url).instant("up", None).await.unwrap_err();
        assert!(
            matches!(e, MetricsError::NotConfigured(ref m) if m.contains("404") && m.contains(&url)),
            "{e:?}"
        );
        let (url, _) = scripted(vec![(
            302,
            "Location: https://elsewhere/\r\n",
            String::new(),
        )])
        .await;
        let e = client(&url).instant("up", None).await.unwrap_err();
        assert!(
            matches!(e, MetricsError::Server { ref message, .. } if message.contains("https://elsewhere/")),
            "{e:?}"
        );
        let (url, _) = scripted(vec![(200, "", "<html>hello</html>".into())]).await;
        let e = client(&url).instant("up", None).await.unwrap_err();
        assert!(
            matches!(e, MetricsError::Server { ref message, .. } if message.contains("<html>")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn range_sends_the_window() {
        let (url, seen) = scripted(vec![(
            200,
            "",
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1700000000,"1"],[1700000300,"NaN"]]}]}}"#
                .into(),
        )])
        .await;
        let s = client(&url)
            .range(" rate(x[5m]) ", &window(1_700_000_000, 1_700_000_300, 300))
            .await
            .unwrap();
        assert_eq!(s[0].points.len(), 2);
        assert!(s[0].points[1].1.is_nan());
        let seen = seen.lock().unwrap();
        assert!(
            seen[0]
                .head
                .starts_with("POST /api/v1/query_range HTTP/1.1")
        );
        assert_eq!(
            seen[0].body,
            "query=rate%28x%5B5m%5D%29&start=1700000000&end=1700000300&step=300"
        );
    }

    #[tokio::test]
    async fn amp_requests_are_signed() {
        let (url, seen) = scripted(vec![(200, "", ok_vector())]).await;
        init();
        let amp = AmpAuth::from_credentials(
            "us-west-2",
            Credentials::new("AKIDEXAMPLE", "SECRET", Some("TOKEN".into()), None, "test"),
        );
        let base = format!("{url}/workspaces/ws-abc");
        let c = PrometheusClient::new(&base, Some(amp), Duration::from_secs(5)).unwrap();
        c.instant("up", None).await.unwrap();
        let seen = seen.lock().unwrap();
        let head = seen[0].head.to_ascii_lowercase();
        assert!(
            head.starts_with("post /workspaces/ws-abc/api/v1/query http/1.1"),
            "{head}"
        );
        assert!(
            head.contains("authorization: aws4-hmac-sha256 credential=akidexample/"),
            "{head}"
        );
        assert!(head.contains("/us-west-2/aps/aws4_request"), "{head}");
        assert!(head.contains("x-amz-date: "), "{head}");
        assert!(head.contains("x-amz-content-sha256: "), "{head}");
        assert!(head.contains("x-amz-security-token: token"), "{head}");
    }

    #[tokio::test]
    async fn connection_refused_is_unreachable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let e = client(&url).instant("up", None).await.unwrap_err();
        assert!(matches!(e, MetricsError::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().contains(&url), "{e}");
    }

    #[tokio::test]
    async fn silence_is_a_timeout() {
        // Accepts connections (the kernel does) but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        init();
        let c = PrometheusClient::new(&url, None, Duration::from_millis(300)).unwrap();
        let started = Instant::now();
        let e = c.instant("up", None).await.unwrap_err();
        assert!(
            matches!(e, MetricsError::Timeout { seconds: 1, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains(&url), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(listener);
    }
}
