//! The HTTP listener: Streamable HTTP at `/mcp`, legacy SSE at `/sse` + `/message`,
//! `/healthz`, and the checks every request passes first (bearer token, Host and
//! Origin validation against DNS rebinding).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::legacy_sse::{self, LegacySessions, LegacyState};
use crate::server::EksOpsServer;

/// Settings of the HTTP listener.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Address to bind.
    pub bind: Option<SocketAddr>,
    /// Bearer token every request must carry, if set.
    pub auth_token: Option<String>,
    /// Extra allowed `Host` names (besides loopback names).
    pub allowed_hosts: Vec<String>,
    /// Extra allowed `Origin`s (besides loopback origins), e.g. `https://console.example.com`.
    pub allowed_origins: Vec<String>,
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
    token: Option<Arc<str>>,
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
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if let Some(token) = &self.token {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                });
            match presented {
                Some(p) if same(p.trim().as_bytes(), token.as_bytes()) => {}
                Some(_) => return Err((StatusCode::UNAUTHORIZED, "invalid bearer token".into())),
                None => {
                    return Err((
                        StatusCode::UNAUTHORIZED,
                        "missing Authorization: Bearer token".into(),
                    ));
                }
            }
        }
        if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
            let h = host_part(host);
            let listed = self
                .allowed_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(h) || a.eq_ignore_ascii_case(host));
            let ok = listed
                || is_loopback_host(h)
                || (!self.loopback_bind && self.allowed_hosts.is_empty());
            if !ok {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "Host {host:?} is not allowed (DNS rebinding protection); allow it with --allowed-host"
                    ),
                ));
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
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
    match guard.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err((status, msg)) => deny(status, &msg),
    }
}

/// Build the router for all HTTP endpoints.
pub fn router(
    server: EksOpsServer,
    settings: &HttpSettings,
    shutdown: CancellationToken,
) -> Router {
    let loopback_bind = settings.bind.is_none_or(|a| a.ip().is_loopback());
    let guard = Guard {
        token: settings.auth_token.as_deref().map(Arc::from),
        loopback_bind,
        allowed_hosts: Arc::new(settings.allowed_hosts.clone()),
        allowed_origins: Arc::new(settings.allowed_origins.clone()),
    };
    // Host and Origin are checked by the guard for every endpoint, so rmcp's own host
    // list is opened to avoid two diverging rule sets.
    let mut config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    config.cancellation_token = shutdown.child_token();
    let proto = server.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(proto.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let legacy = LegacyState {
        server,
        sessions: LegacySessions::default(),
        message_path: "/message".into(),
        shutdown: shutdown.clone(),
    };
    Router::new()
        .route("/sse", get(legacy_sse::sse_handler))
        .route("/message", post(legacy_sse::message_handler))
        .with_state(legacy)
        .route("/healthz", get(|| async { "ok" }))
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(guard, guard_layer))
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
    let app = router(server, &settings, shutdown.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(HttpError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(token: Option<&str>) -> Guard {
        Guard {
            token: token.map(Arc::from),
            loopback_bind: true,
            allowed_hosts: Arc::new(vec![]),
            allowed_origins: Arc::new(vec!["https://console.example.com".into()]),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn host_and_origin_rules() {
        let g = guard(None);
        assert!(g.check(&headers(&[("host", "127.0.0.1:8080")])).is_ok());
        assert!(g.check(&headers(&[("host", "localhost")])).is_ok());
        assert!(g.check(&headers(&[("host", "[::1]:9000")])).is_ok());
        assert!(g.check(&headers(&[("host", "evil.example:8080")])).is_err());
        assert!(
            g.check(&headers(&[
                ("host", "localhost:8080"),
                ("origin", "http://localhost:3000")
            ]))
            .is_ok()
        );
        assert!(
            g.check(&headers(&[
                ("host", "localhost:8080"),
                ("origin", "https://console.example.com")
            ]))
            .is_ok()
        );
        assert!(
            g.check(&headers(&[
                ("host", "localhost:8080"),
                ("origin", "https://evil.example")
            ]))
            .is_err()
        );
        assert!(
            g.check(&headers(&[("host", "localhost:8080"), ("origin", "null")]))
                .is_err()
        );
    }

    #[test]
    fn bearer_token_rules() {
        let g = guard(Some("s3cret"));
        assert!(g.check(&headers(&[("host", "localhost")])).is_err());
        assert!(
            g.check(&headers(&[
                ("host", "localhost"),
                ("authorization", "Bearer nope")
            ]))
            .is_err()
        );
        assert!(
            g.check(&headers(&[
                ("host", "localhost"),
                ("authorization", "Bearer s3cret")
            ]))
            .is_ok()
        );
    }
}
