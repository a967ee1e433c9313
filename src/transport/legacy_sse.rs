//! The legacy HTTP+SSE transport of protocol version 2024-11-05 (`GET /sse`,
//! `POST /message?sessionId=…`), for clients that still speak it (Kagent's
//! `protocol: SSE`, older Strands `sse_client`). rmcp no longer ships it, so it is
//! adapted here on rmcp's sink/stream transport: each SSE connection is one MCP
//! session served by its own `EksOpsServer` clone.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use rmcp::ServiceExt;
use rmcp::model::ClientJsonRpcMessage;
use serde::Deserialize;
use tokio::time::Instant;

use crate::server::EksOpsServer;

/// One open legacy session.
#[derive(Clone)]
struct Session {
    /// Sender of client messages into the session.
    tx: mpsc::Sender<ClientJsonRpcMessage>,
    /// When the client last posted a message, or the server sent one (or the stream opened).
    last_seen: Arc<Mutex<Instant>>,
}

/// Open legacy sessions: session id → the session.
#[derive(Clone, Default)]
pub struct LegacySessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
}

impl LegacySessions {
    fn insert(&self, id: String, session: Session) {
        if let Ok(mut m) = self.inner.lock() {
            m.insert(id, session);
        }
    }
    fn get(&self, id: &str) -> Option<Session> {
        self.inner.lock().ok().and_then(|m| m.get(id).cloned())
    }
    fn remove(&self, id: &str) {
        if let Ok(mut m) = self.inner.lock() {
            m.remove(id);
        }
    }
    /// Number of open sessions.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|m| m.len()).unwrap_or(0)
    }
    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// State of the legacy endpoints.
#[derive(Clone)]
pub struct LegacyState {
    /// Prototype server; cloned per session.
    pub server: EksOpsServer,
    /// Open sessions.
    pub sessions: LegacySessions,
    /// Path of the message endpoint as clients must call it.
    pub message_path: String,
    /// Cancelled when the server shuts down: every open stream then ends.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Most sessions open at once.
    pub max_sessions: usize,
    /// A session without messages either way for this long is closed (its stream ends).
    pub idle_timeout: Duration,
}

/// Resolves once `last_seen` is more than `idle` ago.
async fn idle_for(last_seen: Arc<Mutex<Instant>>, idle: Duration) {
    loop {
        let seen = last_seen
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| Instant::now());
        let due = seen + idle;
        if Instant::now() >= due {
            return;
        }
        tokio::time::sleep_until(due).await;
    }
}

/// Removes the session when the SSE stream is dropped (client went away).
struct SessionGuard {
    id: String,
    sessions: LegacySessions,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.remove(&self.id);
        tracing::debug!(session = %self.id, "legacy SSE session closed");
    }
}

/// `GET /sse`: open a session; the first event names the message endpoint.
pub async fn sse_handler(State(state): State<LegacyState>) -> Response {
    let open = state.sessions.len();
    if open >= state.max_sessions {
        let mut resp = error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "{open} legacy SSE sessions are open, the most this server keeps; retry later"
            ),
        );
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("30"),
        );
        return resp;
    }
    open_session(state).into_response()
}

fn open_session(state: LegacyState) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (client_tx, client_rx) = mpsc::channel::<ClientJsonRpcMessage>(64);
    let (server_tx, server_rx) = mpsc::channel(64);
    let last_seen = Arc::new(Mutex::new(Instant::now()));
    state.sessions.insert(
        id.clone(),
        Session {
            tx: client_tx,
            last_seen: last_seen.clone(),
        },
    );
    let server = state.server.clone();
    let session_id = id.clone();
    tokio::spawn(async move {
        match server.serve((server_tx, client_rx)).await {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => {
                tracing::info!(session = %session_id, "legacy SSE session ended during initialisation: {e}")
            }
        }
    });
    let guard = SessionGuard {
        id: id.clone(),
        sessions: state.sessions.clone(),
    };
    let endpoint = format!("{}?sessionId={id}", state.message_path);
    let first =
        futures::stream::once(async move { Ok(Event::default().event("endpoint").data(endpoint)) });
    let active = last_seen.clone();
    let messages = server_rx.map(move |msg| {
        let _keep = &guard;
        // the server talking (a long tool call's progress, its answer) is activity too
        if let Ok(mut t) = active.lock() {
            *t = Instant::now();
        }
        let data = serde_json::to_string(&msg).unwrap_or_else(|e| {
            format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"error","data":"serialisation failed: {e}"}}}}"#)
        });
        Ok(Event::default().event("message").data(data))
    });
    let shutdown = state.shutdown.clone();
    let idle = idle_for(last_seen, state.idle_timeout);
    let stream = first.chain(messages).take_until(async move {
        tokio::select! {
            () = shutdown.cancelled_owned() => {}
            () = idle => tracing::info!("legacy SSE session idle too long; closing it"),
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Query of `POST /message`.
#[derive(Debug, Deserialize)]
pub struct MessageQuery {
    /// The session id from the `endpoint` event.
    #[serde(rename = "sessionId")]
    pub session_id: Option<String>,
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, msg.to_string()).into_response()
}

/// `POST /message?sessionId=…`: hand one JSON-RPC message to the session; the answer
/// arrives on the SSE stream.
pub async fn message_handler(
    State(state): State<LegacyState>,
    Query(q): Query<MessageQuery>,
    body: Bytes,
) -> Response {
    let Some(id) = q.session_id.filter(|s| !s.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing sessionId query parameter; use the endpoint announced on GET /sse",
        );
    };
    let Some(session) = state.sessions.get(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown or closed session; open a new one with GET /sse",
        );
    };
    if let Ok(mut t) = session.last_seen.lock() {
        *t = Instant::now();
    }
    let mut tx = session.tx;
    let msg: ClientJsonRpcMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("body is not a JSON-RPC message: {e}"),
            );
        }
    };
    match tx.send(msg).await {
        Ok(()) => (StatusCode::ACCEPTED, "Accepted").into_response(),
        Err(_) => {
            state.sessions.remove(&id);
            error(
                StatusCode::GONE,
                "session has ended; open a new one with GET /sse",
            )
        }
    }
}
