//! The HTTP listener: Streamable HTTP at `/mcp`, legacy SSE at `/sse` + `/message`,
//! `/healthz`, and the checks every request passes first (bearer token, Host and
//! Origin validation against DNS rebinding).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, SessionConfig};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::accept::{self, ConnectionLimits};
use super::legacy_sse::{self, LegacySessions, LegacyState};
use crate::server::EksOpsServer;

/// Settings of the HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address to bind.
    pub bind: Option<SocketAddr>,
    /// Bearer token every request must carry, if set.
    pub auth_token: Option<String>,
    /// Extra allowed `Host` names (besides loopback names).
    pub allowed_hosts: Vec<String>,
    /// Extra allowed `Origin`s (besides loopback origins), e.g. `https://console.example.com`.
    pub allowed_origins: Vec<String>,
    /// Timeouts and the connection limit.
    pub limits: ConnectionLimits,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Most MCP sessions open at once, per transport (Streamable HTTP, legacy SSE).
    pub max_sessions: usize,
    /// A session without a request for this long is closed.
    pub session_idle_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: None,
            auth_token: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            limits: ConnectionLimits::default(),
            max_body_bytes: 4 * 1024 * 1024,
            max_sessions: 1000,
            session_idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Why the HTTP listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A non-loopback bind without a token.
    #[error(
        "refusing to listen on {0}: it is not a loopback address and no auth token is configured; pass --auth-token-file FILE (or set EKS_OPS_MCP_AUTH_TOKEN) or bind to 127.0.0.1"
    )]
    UnprotectedBind(SocketAddr),
    /// Bind failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("HTTP server error: {0}")]
    Serve(std::io::Error),
}

/// Status and message of a refused request.
type Refusal = (StatusCode, String);

#[derive(Clone)]
struct Guard {
    /// SHA-256 of the bearer token: comparing digests takes the same time whatever the
    /// presented token's length and content.
    token: Option<[u8; 32]>,
    loopback_bind: bool,
    allowed_hosts: Arc<Vec<String>>,
    allowed_origins: Arc<Vec<String>>,
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Split `host[:port]` (IPv6 in brackets) into the host part.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.rsplit_once(':').map_or(authority, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            authority
        }
    })
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The credentials of an `Authorization` value if its scheme is `Bearer` (compared
/// case-insensitively, RFC 7235 §2.1).
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// The single value of `name`: a header sent twice is refused (proxies and this server
/// could otherwise each act on a different one).
fn single<'h>(
    headers: &'h HeaderMap,
    name: &header::HeaderName,
) -> Result<Option<&'h header::HeaderValue>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("the {name} header is sent more than once"),
        ));
    }
    Ok(first)
}

fn deny(status: StatusCode, msg: &str) -> Response {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000, "message": msg}});
    let mut resp = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

impl Guard {
    fn host_allowed(&self, authority: &str) -> bool {
        let h = host_part(authority);
        let listed = self
            .allowed_hosts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(h) || a.eq_ignore_ascii_case(authority));
        listed || is_loopback_host(h) || (!self.loopback_bind && self.allowed_hosts.is_empty())
    }

    fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let authorization = single(headers, &header::AUTHORIZATION)?;
        let host = single(headers, &header::HOST)?;
        let origin = single(headers, &header::ORIGIN)?;
        if let Some(token) = &self.token {
            let presented = authorization
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_credentials);
            match presented {
                Some(p) if same(&digest(p), token) => {}
                Some(_) => return Err((StatusCode::UNAUTHORIZED, "invalid bearer token".into())),
                None => {
                    return Err((
                        StatusCode::UNAUTHORIZED,
                        "missing Authorization: Bearer token".into(),
                    ));
                }
            }
        }
        // An absolute-form target (`POST http://host/mcp`) names the host itself and
        // overrides Host (RFC 9112 §3.2.2), so it passes the same check.
        if let Some(authority) = uri.authority()
            && !self.host_allowed(authority.as_str())
        {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "request target host {:?} is not allowed (DNS rebinding protection); allow it with --allowed-host",
                    authority.as_str()
                ),
            ));
        }
        if let Some(host) = host {
            let host = host.to_str().map_err(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    "the Host header is not ASCII".to_string(),
                )
            })?;
            if !self.host_allowed(host) {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "Host {host:?} is not allowed (DNS rebinding protection); allow it with --allowed-host"
                    ),
                ));
            }
        }
        if let Some(origin) = origin {
            let origin = origin.to_str().unwrap_or("");
            let listed = self
                .allowed_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(origin));
            let loopback = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|rest| is_loopback_host(host_part(rest)));
            if !(listed || loopback) {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!("Origin {origin:?} is not allowed; allow it with --allowed-origin"),
                ));
            }
        }
        Ok(())
    }
}

async fn guard_layer(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    match guard.check(req.uri(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err((status, msg)) => deny(status, &msg),
    }
}

/// Refuses a body announced larger than the limit before any of it is read.
async fn body_limit_layer(State(max): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return deny(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than the limit of {max} bytes"),
        );
    }
    next.run(req).await
}

/// State of the Streamable HTTP session cap.
#[derive(Clone)]
struct SessionCap {
    manager: Arc<LocalSessionManager>,
    max: usize,
}

/// A POST without `Mcp-Session-Id` opens a session: refused while `max` are open, so that
/// abandoned sessions cannot grow memory without bound (idle ones expire).
async fn session_cap_layer(State(cap): State<SessionCap>, req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !req.headers().contains_key("mcp-session-id") {
        let open = cap.manager.sessions.read().await.len();
        if open >= cap.max {
            let mut resp = deny(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "{open} MCP sessions are open, the most this server keeps; close unused ones (HTTP DELETE) or retry when idle ones expire"
                ),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
            return resp;
        }
    }
    next.run(req).await
}

/// Open sessions of both HTTP transports, for the memory reclaimer.
#[derive(Clone)]
pub struct OpenSessions {
    streamable: Arc<LocalSessionManager>,
    legacy: LegacySessions,
}

impl OpenSessions {
    /// Number of open sessions.
    pub async fn count(&self) -> usize {
        self.streamable.sessions.read().await.len() + self.legacy.len()
    }
}

/// Build the router for all HTTP endpoints.
pub fn router(
    server: EksOpsServer,
    settings: &HttpSettings,
    shutdown: CancellationToken,
) -> Router {
    router_with_sessions(server, settings, shutdown).0
}

fn router_with_sessions(
    server: EksOpsServer,
    settings: &HttpSettings,
    shutdown: CancellationToken,
) -> (Router, OpenSessions) {
    let loopback_bind = settings.bind.is_none_or(|a| a.ip().is_loopback());
    let guard = Guard {
        token: settings.auth_token.as_deref().map(digest),
        loopback_bind,
        allowed_hosts: Arc::new(settings.allowed_hosts.clone()),
        allowed_origins: Arc::new(settings.allowed_origins.clone()),
    };
    // Host and Origin are checked by the guard for every endpoint, so rmcp's own host
    // list is opened to avoid two diverging rule sets.
    let mut config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_max_request_body_bytes(settings.max_body_bytes);
    config.cancellation_token = shutdown.child_token();
    let mut session_config = SessionConfig::default();
    session_config.keep_alive = Some(settings.session_idle_timeout);
    let mut manager = LocalSessionManager::default();
    manager.session_config = session_config;
    let manager = Arc::new(manager);
    let proto = server.clone();
    let mcp = StreamableHttpService::new(move || Ok(proto.clone()), manager.clone(), config);
    let mcp = Router::new()
        .fallback_service(mcp)
        .layer(middleware::from_fn_with_state(
            SessionCap {
                manager: manager.clone(),
                max: settings.max_sessions,
            },
            session_cap_layer,
        ));
    let legacy_sessions = LegacySessions::default();
    let legacy = LegacyState {
        server,
        sessions: legacy_sessions.clone(),
        message_path: "/message".into(),
        shutdown: shutdown.clone(),
        max_sessions: settings.max_sessions,
        idle_timeout: settings.session_idle_timeout,
    };
    let app = Router::new()
        .route("/sse", get(legacy_sse::sse_handler))
        .route("/message", post(legacy_sse::message_handler))
        .with_state(legacy)
        .route("/healthz", get(|| async { "ok" }))
        .nest_service("/mcp", mcp)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            settings.max_body_bytes,
            body_limit_layer,
        ))
        .layer(middleware::from_fn_with_state(guard, guard_layer));
    (
        app,
        OpenSessions {
            streamable: manager,
            legacy: legacy_sessions,
        },
    )
}

/// Check the bind rules, then bind the listener.
pub async fn bind(settings: &HttpSettings) -> Result<tokio::net::TcpListener, HttpError> {
    let addr = settings
        .bind
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    if !addr.ip().is_loopback() && settings.auth_token.is_none() {
        return Err(HttpError::UnprotectedBind(addr));
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serve HTTP on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: EksOpsServer,
    settings: HttpSettings,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    let (app, sessions) = router_with_sessions(server, &settings, shutdown.clone());
    tokio::spawn(super::memory::reclaim_after_sessions_close(
        sessions,
        shutdown.clone(),
    ));
    accept::serve(listener, app, settings.limits, shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(token: Option<&str>) -> Guard {
        Guard {
            token: token.map(digest),
            loopback_bind: true,
            allowed_hosts: Arc::new(vec![]),
            allowed_origins: Arc::new(vec!["https://console.example.com".into()]),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn at(uri: &'static str, pairs: &[(&'static str, &str)]) -> Result<(), Refusal> {
        guard(Some("s3cret")).check(&Uri::from_static(uri), &headers(pairs))
    }

    #[test]
    fn a_header_sent_twice_is_refused() {
        let auth = ("authorization", "Bearer s3cret");
        for name in ["host", "origin"] {
            let (first, second) = if name == "host" {
                ("localhost", "evil.example")
            } else {
                ("http://localhost", "https://evil.example")
            };
            let r = at(
                "/mcp",
                &[auth, ("host", "localhost"), (name, first), (name, second)],
            );
            assert_eq!(r.map_err(|e| e.0), Err(StatusCode::BAD_REQUEST), "{name}");
        }
        let r = at("/mcp", &[auth, auth, ("host", "localhost")]);
        assert_eq!(r.map_err(|e| e.0), Err(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn an_absolute_request_target_must_name_an_allowed_host() {
        let auth = ("authorization", "Bearer s3cret");
        let r = at("http://evil.example/mcp", &[auth, ("host", "localhost")]);
        assert_eq!(r.map_err(|e| e.0), Err(StatusCode::FORBIDDEN));
        assert!(at("http://127.0.0.1:8080/mcp", &[auth, ("host", "localhost")]).is_ok());
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let value = format!("{scheme} s3cret");
            assert!(
                at("/mcp", &[("host", "localhost"), ("authorization", &value)]).is_ok(),
                "{scheme}"
            );
        }
        for wrong in [
            "Basic s3cret",
            "Bearers3cret",
            "Bearer s3cre",
            "Bearer s3crett",
        ] {
            assert!(
                at("/mcp", &[("host", "localhost"), ("authorization", wrong)]).is_err(),
                "{wrong}"
            );
        }
    }

    #[test]
    fn host_and_origin_rules() {
        let g = guard(None);
        assert!(
            g.check(
                &Uri::from_static("/mcp"),
                &headers(&[("host", "127.0.0.1:8080")])
            )
            .is_ok()
        );
        assert!(
            g.check(
                &Uri::from_static("/mcp"),
                &headers(&[("host", "localhost")])
            )
            .is_ok()
        );
        assert!(
            g.check(
                &Uri::from_static("/mcp"),
                &headers(&[("host", "[::1]:9000")])
            )
            .is_ok()
        );
        assert!(
            g.check(
                &Uri::from_static("/mcp"),
                &headers(&[("host", "evil.example:8080")])
            )
            .is_err()
        );
        assert!(
            g.check(
                &Uri::from_static("/mcp"),
                &headers(&[
                    ("host", "localhost:8080"),
                    ("origin", "http://localhost:3000")
                ])
            )
            .is_ok()
        );
        assert!(
            g.check(
                &Uri::from_static("/mcp"),
                &headers(&[
                    ("host", "localhost:8080"),
                    ("origin", "https://console.example.com")
                ])
            )
            .is_ok()
        );
        assert!(
            g.check(
                &Uri::from_static("/mcp"),
                &headers(&[
                    ("host", "localhost:8080"),
                    ("origin", "https://evil.example")
                ])
            )
            .is_err()
        );
        assert!(
            g.check(
                &Uri::from_static("/mcp"),
                &headers(&[("host", "localhost:8080"), ("origin", "null")])
            )
            .is_err()
        );
    }

    #[test]
    fn bearer_token_rules() {
        let g = guard(Some("s3cret"));
        assert!(
            g.check(
                &Uri::from_static("/mcp"),
                &headers(&[("host", "localhost")])
            )
            .is_err()
        );
        assert!(
            g.check(
                &Uri::from_static("/mcp"),
                &headers(&[("host", "localhost"), ("authorization", "Bearer nope")])
            )
            .is_err()
        );
        assert!(
            g.check(
                &Uri::from_static("/mcp"),
                &headers(&[("host", "localhost"), ("authorization", "Bearer s3cret")])
            )
            .is_ok()
        );
    }
}
