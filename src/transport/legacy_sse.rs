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

use crate::server::EksOpsServer;

/// Largest accepted message body.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Open legacy sessions: session id → sender of client messages into that session.
#[derive(Clone, Default)]
pub struct LegacySessions {
    inner: Arc<Mutex<HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>>>,
}

impl LegacySessions {
    fn insert(&self, id: String, tx: mpsc::Sender<ClientJsonRpcMessage>) {
        if let Ok(mut m) = self.inner.lock() {
            m.insert(id, tx);
        }
    }
    fn get(&self, id: &str) -> Option<mpsc::Sender<ClientJsonRpcMessage>> {
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
pub async fn sse_handler(
    State(state): State<LegacyState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (client_tx, client_rx) = mpsc::channel::<ClientJsonRpcMessage>(64);
    let (server_tx, server_rx) = mpsc::channel(64);
    state.sessions.insert(id.clone(), client_tx);
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
    let messages = server_rx.map(move |msg| {
        let _keep = &guard;
        let data = serde_json::to_string(&msg).unwrap_or_else(|e| {
            format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"error","data":"serialisation failed: {e}"}}}}"#)
        });
        Ok(Event::default().event("message").data(data))
    });
    let shutdown = state.shutdown.clone();
    let stream = first
        .chain(messages)
        .take_until(async move { shutdown.cancelled_owned().await });
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
    let Some(mut tx) = state.sessions.get(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown or closed session; open a new one with GET /sse",
        );
    };
    if body.len() > MAX_MESSAGE_BYTES {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "message larger than 4 MiB");
    }
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
