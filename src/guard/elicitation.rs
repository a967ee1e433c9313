//! Asking a human through MCP elicitation.
//!
//! Two ways, chosen by the protocol version of the call:
//!
//! * Up to `2025-11-25` (the `initialize` handshake era), the server sends an
//!   `elicitation/create` request to the client while the tool call is in flight, and waits
//!   for the answer: [`ElicitationApprover`].
//! * From `2026-07-28` on, a server may not send requests to the client. The tool call
//!   answers with an `InputRequiredResult` that carries the elicitation request instead; the
//!   client asks the human and calls the tool again with the answer and the echoed
//!   `requestState` (SEP-2322, "multi round-trip requests"). [`PendingApprovals`] runs that
//!   flow: the first round runs the call until the guard asks for approval and parks it there
//!   (plan and decision already made, nothing changed); the retry hands the answer to the
//!   parked call, which then finishes exactly as it would have with a direct answer.
//!
//! In both, only an explicit accept with `approve: true` approves; every other answer, a
//! failure to ask, or silence (after the timeout) leaves the change unmade.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolResponse, CallToolResult, ClientCapabilities, ClientResult, ElicitRequest,
    ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema, InputRequest,
    InputRequests, InputRequiredResult, InputResponses, JsonObject, ProtocolVersion, RequestId,
    ServerRequest,
};
use rmcp::service::{OriginatingRequestId, Peer, PeerRequestOptions, RequestContext, ServiceError};
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::Value;
use tokio::sync::oneshot;

use super::approval::{ApprovalOutcome, ApprovalRequest, Approver, FixedApprover};

/// How long a human has to answer, unless configured otherwise.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(120);

/// The key of the approval question in an `InputRequiredResult`'s `inputRequests` (and of
/// the answer in the retry's `inputResponses`).
pub const APPROVAL_INPUT_KEY: &str = "eks-ops-mcp/approval";

/// The first protocol version that forbids server-to-client requests.
const INPUT_REQUIRED_FROM: ProtocolVersion = ProtocolVersion::V_2026_07_28;

/// Time kept for applying and verifying after the human answered, out of the call timeout.
const APPLY_MARGIN: Duration = Duration::from_secs(5);

/// How long a parked call's outcome is kept for a late retry after its approval timed out.
const LATE_RETRY_GRACE: Duration = Duration::from_secs(60);

/// Most approvals that may wait for an answer at once (across all sessions).
const MAX_PENDING: usize = 256;

/// The form shown to the human: a required boolean `approve` (unchecked by default) and an
/// optional `comment`.
pub fn approval_schema() -> ElicitationSchema {
    ElicitationSchema::builder()
        .title("Approve this change?")
        .required_bool_with("approve", |b| {
            b.title("Approve")
                .description("Check to make this change now; leave unchecked to refuse it.")
                .with_default(false)
        })
        .optional_string_with("comment", |s| {
            s.title("Comment")
                .description("Optional note, recorded in the server log.")
                .max_length(1000)
        })
        .build_unchecked()
}

/// The elicitation parameters for an approval request.
pub fn approval_params(request: &ApprovalRequest) -> ElicitRequestParams {
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: request.message(),
        requested_schema: approval_schema(),
    }
}

/// What an elicitation answer means for the approval. Only `accept` with `approve: true`
/// approves; `accept` with `approve: false` and `decline` decline; `cancel` cancels; an
/// `accept` whose content has no boolean `approve` is not an answer at all.
pub fn outcome_of(result: &ElicitResult) -> ApprovalOutcome {
    match result.action {
        ElicitationAction::Accept => {
            let comment = result
                .content
                .as_ref()
                .and_then(|c| c.get("comment"))
                .and_then(Value::as_str)
                .filter(|c| !c.trim().is_empty());
            let approve = result.content.as_ref().and_then(|c| c.get("approve"));
            let outcome = match approve {
                Some(Value::Bool(true)) => ApprovalOutcome::Approved,
                Some(Value::Bool(false)) => ApprovalOutcome::Declined,
                Some(other) => ApprovalOutcome::Unavailable(format!(
                    "the client accepted the approval form but sent approve={other}, not a boolean"
                )),
                None => ApprovalOutcome::Unavailable(
                    "the client accepted the approval form without an approve answer".into(),
                ),
            };
            if let Some(comment) = comment {
                tracing::info!(outcome = outcome.label(), comment, "approval comment");
            }
            outcome
        }
        ElicitationAction::Decline => ApprovalOutcome::Declined,
        ElicitationAction::Cancel => ApprovalOutcome::Cancelled,
        _ => ApprovalOutcome::Unavailable(
            "the client answered the approval form with an unknown action".into(),
        ),
    }
}

/// What a JSON answer (an `inputResponses` entry) means for the approval.
pub fn outcome_of_value(answer: Option<&Value>) -> ApprovalOutcome {
    let Some(answer) = answer else {
        return ApprovalOutcome::Unavailable(format!(
            "the client retried the call without an answer to the approval request ({APPROVAL_INPUT_KEY} missing from inputResponses)"
        ));
    };
    match serde_json::from_value::<ElicitResult>(answer.clone()) {
        Ok(result) => outcome_of(&result),
        Err(e) => ApprovalOutcome::Unavailable(format!(
            "the client's answer to the approval request is not an elicitation result: {e}"
        )),
    }
}

/// Whether client capabilities include form elicitation (a bare `elicitation: {}` means
/// form, for clients of 2025-06-18).
pub fn supports_form_elicitation(capabilities: Option<&ClientCapabilities>) -> bool {
    capabilities
        .and_then(|c| c.elicitation.as_ref())
        .is_some_and(|e| e.form.is_some() || e.url.is_none())
}

fn no_form_reason(capabilities: Option<&ClientCapabilities>) -> String {
    match capabilities.and_then(|c| c.elicitation.as_ref()) {
        Some(_) => {
            "the client declared elicitation only in url mode; approval needs form mode".into()
        }
        None => "the client did not declare the elicitation capability".into(),
    }
}

/// Whether a call on `version` must use `InputRequiredResult` instead of server-to-client
/// requests.
pub fn uses_input_required(version: Option<&ProtocolVersion>) -> bool {
    version.is_some_and(|v| *v >= INPUT_REQUIRED_FROM)
}

/// How long a human may take within a call that must finish in `call_timeout`: the whole
/// call (plan, approval, apply, verify) is bounded by the call timeout, so the approval wait
/// ends early enough for the call to report `timed_out` itself instead of failing as a
/// whole. At most [`DEFAULT_APPROVAL_TIMEOUT`].
pub fn approval_timeout(call_timeout: Duration) -> Duration {
    let budget = call_timeout
        .saturating_sub(APPLY_MARGIN)
        .max(call_timeout * 3 / 4);
    budget.min(DEFAULT_APPROVAL_TIMEOUT)
}

// --------------------------------------------------------------------------- direct requests

/// Asks the human with an `elicitation/create` request to the calling session's client
/// (protocol versions up to 2025-11-25).
#[derive(Clone)]
pub struct ElicitationApprover {
    peer: Peer<RoleServer>,
    /// The tool call the question belongs to: on Streamable HTTP the question travels on that
    /// call's response stream. (rmcp finds it from a task-local, which does not survive the
    /// `tokio::spawn` the tool runs in, so it is carried here.)
    originating: Option<RequestId>,
    /// The protocol version of the call.
    protocol_version: Option<ProtocolVersion>,
    /// How long the human has to answer.
    pub timeout: Duration,
}

impl std::fmt::Debug for ElicitationApprover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElicitationApprover")
            .field("originating", &self.originating)
            .field("protocol_version", &self.protocol_version)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ElicitationApprover {
    /// Ask the client of `peer` (no originating request).
    pub fn new(peer: Peer<RoleServer>) -> Self {
        let protocol_version = peer.peer_info().map(|i| i.protocol_version.clone());
        Self {
            peer,
            originating: None,
            protocol_version,
            timeout: DEFAULT_APPROVAL_TIMEOUT,
        }
    }

    /// Ask the client of the session `context` belongs to, as part of that request.
    pub fn for_request(context: &RequestContext<RoleServer>) -> Self {
        Self {
            peer: context.peer.clone(),
            originating: Some(context.id.clone()),
            protocol_version: context.protocol_version(),
            timeout: DEFAULT_APPROVAL_TIMEOUT,
        }
    }

    /// Set how long the human has to answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn ask(&self, request: &ApprovalRequest) -> ApprovalOutcome {
        if uses_input_required(self.protocol_version.as_ref()) {
            return ApprovalOutcome::Unavailable(format!(
                "protocol {} forbids server-to-client requests and the call did not go through the input_required flow",
                INPUT_REQUIRED_FROM
            ));
        }
        let capabilities = self.peer.peer_info().map(|i| i.capabilities.clone());
        if !supports_form_elicitation(capabilities.as_ref()) {
            return ApprovalOutcome::Unavailable(no_form_reason(capabilities.as_ref()));
        }
        let mut elicit = ElicitRequest::new(approval_params(request));
        if let Some(id) = &self.originating {
            elicit.extensions.insert(OriginatingRequestId(id.clone()));
        }
        let mut options = PeerRequestOptions::no_options();
        options.timeout = Some(self.timeout);
        let answer = match self
            .peer
            .send_request_with_option(ServerRequest::ElicitRequest(elicit), options)
            .await
        {
            Ok(handle) => handle.await_response().await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(ClientResult::ElicitResult(result)) => outcome_of(&result),
            Ok(_) => ApprovalOutcome::Unavailable(
                "the client answered the approval request with something other than an elicitation result".into(),
            ),
            Err(ServiceError::Timeout { .. }) => ApprovalOutcome::TimedOut,
            Err(ServiceError::McpError(e)) => ApprovalOutcome::Unavailable(format!(
                "the client refused the approval request: {}",
                e.message
            )),
            Err(ServiceError::TransportClosed | ServiceError::TransportSend(_)) => {
                ApprovalOutcome::Unavailable(
                    "the connection to the client closed before a human answered".into(),
                )
            }
            Err(e) => ApprovalOutcome::Unavailable(format!("the approval request failed: {e}")),
        }
    }
}

impl Approver for ElicitationApprover {
    fn approve<'a>(
        &'a self,
        request: &'a ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = ApprovalOutcome> + Send + 'a>> {
        Box::pin(async move {
            let outcome = self.ask(request).await;
            tracing::info!(
                action = %request.action,
                target = %request.target.name,
                outcome = outcome.label(),
                "approval by elicitation"
            );
            outcome
        })
    }
}

// --------------------------------------------------------------------------- input_required

/// What a retry must match to receive the answer: the same caller, tool and arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct CallBinding {
    /// The calling agent.
    pub principal: String,
    /// The tool.
    pub tool: String,
    /// The arguments.
    pub arguments: JsonObject,
}

/// The approver of a call in the first round: it hands the question to the round and waits
/// for the answer that the retry delivers.
struct ParkedApprover {
    ask: Mutex<Option<oneshot::Sender<Question>>>,
    timeout: Duration,
}

struct Question {
    params: ElicitRequestParams,
    answer: oneshot::Sender<ApprovalOutcome>,
}

impl Approver for ParkedApprover {
    fn approve<'a>(
        &'a self,
        request: &'a ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = ApprovalOutcome> + Send + 'a>> {
        Box::pin(async move {
            let ask = self.ask.lock().ok().and_then(|mut a| a.take());
            let Some(ask) = ask else {
                return ApprovalOutcome::Unavailable("a call can ask for one approval only".into());
            };
            let (answer, answered) = oneshot::channel();
            let question = Question {
                params: approval_params(request),
                answer,
            };
            if ask.send(question).is_err() {
                return ApprovalOutcome::Unavailable("the approval request was abandoned".into());
            }
            let outcome = match tokio::time::timeout(self.timeout, answered).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => ApprovalOutcome::Unavailable(
                    "the approval request was abandoned before an answer arrived".into(),
                ),
                Err(_) => ApprovalOutcome::TimedOut,
            };
            tracing::info!(
                action = %request.action,
                target = %request.target.name,
                outcome = outcome.label(),
                "approval by input_required"
            );
            outcome
        })
    }
}

type CallTask = tokio::task::JoinHandle<Result<CallToolResult, McpError>>;

struct Parked {
    binding: CallBinding,
    answer: oneshot::Sender<ApprovalOutcome>,
    call: CallTask,
    /// After this, a finished call's entry may be dropped.
    keep_until: Instant,
}

/// Calls parked at an approval, waiting for the client's retry (protocol 2026-07-28 and
/// later). The `requestState` a client echoes is an unguessable handle to an entry here,
/// valid once; the state itself never leaves the server.
#[derive(Default)]
pub struct PendingApprovals {
    parked: Mutex<HashMap<String, Parked>>,
}

static GLOBAL: LazyLock<PendingApprovals> = LazyLock::new(PendingApprovals::default);

impl PendingApprovals {
    /// The registry of this process (shared by all sessions and transports).
    pub fn global() -> &'static Self {
        &GLOBAL
    }

    /// Number of parked calls (answered or not).
    pub fn len(&self) -> usize {
        self.parked.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// Whether no call is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Run one round of a tool call that may need a human's approval.
    ///
    /// Without `request_state`: run the call (`run`, given the approver to use); if it finishes
    /// without asking, that is the result; if it asks, park it and answer `InputRequired` with
    /// the approval form. With `request_state`: hand the answer in `input_responses` to the
    /// parked call and return its result. `input_responses` without a known `request_state`
    /// are never taken as an answer.
    #[allow(clippy::too_many_arguments)]
    pub async fn call<F, Fut>(
        &self,
        binding: CallBinding,
        request_state: Option<String>,
        input_responses: Option<InputResponses>,
        capabilities: Option<&ClientCapabilities>,
        timeout: Duration,
        run: F,
    ) -> Result<CallToolResponse, McpError>
    where
        F: FnOnce(Arc<dyn Approver>) -> Fut,
        Fut: Future<Output = Result<CallToolResult, McpError>> + Send + 'static,
    {
        if let Some(state) = request_state {
            return self.resume(binding, &state, input_responses, run).await;
        }
        if input_responses.is_some() {
            tracing::warn!(
                tool = %binding.tool,
                "inputResponses without requestState ignored: answers count only for a question this server asked"
            );
        }
        if !supports_form_elicitation(capabilities) {
            let approver =
                FixedApprover(ApprovalOutcome::Unavailable(no_form_reason(capabilities)));
            return run(Arc::new(approver)).await.map(Into::into);
        }
        let (ask, asked) = oneshot::channel();
        let approver = ParkedApprover {
            ask: Mutex::new(Some(ask)),
            timeout,
        };
        let mut call = tokio::spawn(run(Arc::new(approver)));
        let question = tokio::select! {
            done = &mut call => return joined(done).map(Into::into),
            asked = asked => match asked {
                Ok(question) => question,
                // the approver is gone without asking: the call is finishing
                Err(_) => return joined(call.await).map(Into::into),
            },
        };
        let Question { params, answer } = question;
        let handle = uuid::Uuid::new_v4().simple().to_string();
        // parks the call, or gives it back when too many are waiting
        let refused = {
            let mut parked = self
                .parked
                .lock()
                .map_err(|_| McpError::internal_error("approval registry poisoned", None))?;
            let now = Instant::now();
            parked.retain(|_, p| !(p.call.is_finished() && now > p.keep_until));
            if parked.len() >= MAX_PENDING {
                Some((answer, call))
            } else {
                parked.insert(
                    handle.clone(),
                    Parked {
                        binding,
                        answer,
                        call,
                        keep_until: now + timeout + LATE_RETRY_GRACE,
                    },
                );
                None
            }
        };
        if let Some((answer, call)) = refused {
            let _ = answer.send(ApprovalOutcome::Unavailable(format!(
                "too many approvals are waiting for an answer (at most {MAX_PENDING})"
            )));
            return joined(call.await).map(Into::into);
        }
        let mut requests = InputRequests::new();
        requests.insert(
            APPROVAL_INPUT_KEY.to_string(),
            InputRequest::Elicitation(ElicitRequest::new(params)),
        );
        Ok(InputRequiredResult::new(Some(requests), Some(handle)).into())
    }

    async fn resume<F, Fut>(
        &self,
        binding: CallBinding,
        state: &str,
        input_responses: Option<InputResponses>,
        run: F,
    ) -> Result<CallToolResponse, McpError>
    where
        F: FnOnce(Arc<dyn Approver>) -> Fut,
        Fut: Future<Output = Result<CallToolResult, McpError>> + Send + 'static,
    {
        let entry = {
            let mut parked = self
                .parked
                .lock()
                .map_err(|_| McpError::internal_error("approval registry poisoned", None))?;
            match parked.get(state) {
                Some(p) if p.binding != binding => {
                    return Err(McpError::invalid_params(
                        "requestState belongs to a different tool call (tool, arguments or caller differ); retry with the requestState of this call",
                        None,
                    ));
                }
                Some(_) => parked.remove(state),
                None => None,
            }
        };
        let Some(entry) = entry else {
            // Unknown: already answered, expired, the server restarted, or the retry reached
            // another server instance. Run the call afresh, without taking any answer.
            let approver = FixedApprover(ApprovalOutcome::Unavailable(
                "the approval request this retry answers is unknown to this server (already answered, expired, or asked by another server instance or before a restart); call the tool again without requestState".into(),
            ));
            return run(Arc::new(approver)).await.map(Into::into);
        };
        let answer = input_responses
            .as_ref()
            .and_then(|r| r.get(APPROVAL_INPUT_KEY));
        // if the call already gave up waiting (timed out), this answer is too late; its
        // result says so
        let _ = entry.answer.send(outcome_of_value(answer));
        joined(entry.call.await).map(Into::into)
    }
}

fn joined(
    done: Result<Result<CallToolResult, McpError>, tokio::task::JoinError>,
) -> Result<CallToolResult, McpError> {
    done.unwrap_or_else(|e| {
        Err(McpError::internal_error(
            format!("the tool call failed while waiting for approval: {e}"),
            None,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Target;
    use rmcp::ServerHandler;
    use rmcp::model::{CallToolRequestParams, ContentBlock, ServerCapabilities, ServerConfig};
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    fn request() -> ApprovalRequest {
        ApprovalRequest {
            action: "scale_deployment".into(),
            target: Target {
                kind: "Deployment".into(),
                namespace: "shop".into(),
                name: "checkout".into(),
                labels: Default::default(),
            },
            summary: "scale from 4 to 20 replicas".into(),
            changes: vec![],
            why: "a large scale-up needs a human".into(),
            policies: vec![],
            dry_run: false,
        }
    }

    fn elicit(action: ElicitationAction, content: Option<Value>) -> ElicitResult {
        let mut r = ElicitResult::new(action);
        r.content = content;
        r
    }

    #[test]
    fn only_an_explicit_accept_with_approve_true_approves() {
        use ApprovalOutcome::*;
        let cases = [
            (
                elicit(ElicitationAction::Accept, Some(json!({"approve": true}))),
                "approved",
            ),
            (
                elicit(
                    ElicitationAction::Accept,
                    Some(json!({"approve": true, "comment": "ok"})),
                ),
                "approved",
            ),
            (
                elicit(ElicitationAction::Accept, Some(json!({"approve": false}))),
                "declined",
            ),
            (
                elicit(ElicitationAction::Accept, Some(json!({"approve": "true"}))),
                "unavailable",
            ),
            (
                elicit(ElicitationAction::Accept, Some(json!({"approve": 1}))),
                "unavailable",
            ),
            (
                elicit(ElicitationAction::Accept, Some(json!({}))),
                "unavailable",
            ),
            (elicit(ElicitationAction::Accept, None), "unavailable"),
            (
                elicit(ElicitationAction::Decline, Some(json!({"approve": true}))),
                "declined",
            ),
            (
                elicit(ElicitationAction::Cancel, Some(json!({"approve": true}))),
                "cancelled",
            ),
        ];
        for (answer, label) in cases {
            let outcome = outcome_of(&answer);
            assert_eq!(outcome.label(), label, "{answer:?}");
            assert_eq!(outcome == Approved, label == "approved");
        }
        assert_eq!(outcome_of_value(None).label(), "unavailable");
        assert_eq!(
            outcome_of_value(Some(
                &json!({"action": "accept", "content": {"approve": true}})
            )),
            Approved
        );
        assert_eq!(
            outcome_of_value(Some(&json!({"action": "maybe"}))).label(),
            "unavailable"
        );
    }

    #[test]
    fn the_form_asks_for_a_boolean_approve_and_an_optional_comment() {
        let schema = serde_json::to_value(approval_schema()).unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["properties"]["approve"]["type"], "boolean");
        assert_eq!(schema["properties"]["approve"]["default"], false);
        assert_eq!(schema["properties"]["comment"]["type"], "string");
        assert_eq!(schema["required"], json!(["approve"]));
        let ElicitRequestParams::FormElicitationParams { message, .. } =
            approval_params(&request())
        else {
            panic!("not a form");
        };
        assert_eq!(message, request().message());
    }

    #[test]
    fn capabilities_and_versions() {
        let caps = |v: Value| serde_json::from_value::<ClientCapabilities>(v).unwrap();
        assert!(!supports_form_elicitation(None));
        assert!(!supports_form_elicitation(Some(&caps(json!({})))));
        assert!(supports_form_elicitation(Some(&caps(
            json!({"elicitation": {}})
        ))));
        assert!(supports_form_elicitation(Some(&caps(
            json!({"elicitation": {"form": {}, "url": {}}})
        ))));
        assert!(!supports_form_elicitation(Some(&caps(
            json!({"elicitation": {"url": {}}})
        ))));
        assert!(no_form_reason(Some(&caps(json!({"elicitation": {"url": {}}})))).contains("url"));
        assert!(!uses_input_required(None));
        assert!(!uses_input_required(Some(&ProtocolVersion::V_2025_11_25)));
        assert!(uses_input_required(Some(&ProtocolVersion::V_2026_07_28)));
    }

    #[test]
    fn the_approval_wait_fits_in_the_call_timeout() {
        let s = Duration::from_secs;
        assert_eq!(approval_timeout(s(30)), s(25));
        assert_eq!(approval_timeout(s(4)), s(3));
        assert_eq!(approval_timeout(s(600)), DEFAULT_APPROVAL_TIMEOUT);
        assert_eq!(approval_timeout(s(125)), s(120));
    }

    // ----------------------------------------------------------------- over a real session

    /// A server whose one tool asks for approval with [`ElicitationApprover`] from a spawned
    /// task (as the guard does) and reports the outcome.
    #[derive(Clone)]
    struct AskServer {
        timeout: Duration,
    }

    impl ServerHandler for AskServer {
        fn get_info(&self) -> ServerConfig {
            ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        }

        async fn call_tool(
            &self,
            _request: CallToolRequestParams,
            context: RequestContext<RoleServer>,
        ) -> Result<CallToolResponse, McpError> {
            let approver = ElicitationApprover::for_request(&context).with_timeout(self.timeout);
            let outcome = tokio::spawn(async move { approver.approve(&request()).await })
                .await
                .unwrap();
            let mut r = CallToolResult::structured(
                json!({"approval": outcome.label(), "detail": outcome.detail()}),
            );
            r.content = vec![ContentBlock::text(outcome.label())];
            Ok(r.into())
        }
    }

    /// A JSON-RPC client written by hand: initialize (with or without elicitation), call the
    /// tool, answer the elicitation request (if one comes) with `reply`, return the tool
    /// result and the elicitation request seen.
    async fn session(
        capabilities: Value,
        reply: Option<Value>,
        timeout: Duration,
    ) -> (Value, Option<Value>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (server_read, server_write) = tokio::io::split(server);
        let service = AskServer { timeout };
        tokio::spawn(async move {
            if let Ok(running) = rmcp::serve_server(service, (server_read, server_write)).await {
                let _ = running.waiting().await;
            }
        });
        let (read, mut write) = tokio::io::split(client);
        let mut lines = BufReader::new(read).lines();
        async fn send(w: &mut (impl AsyncWriteExt + Unpin), v: Value) {
            w.write_all(format!("{v}\n").as_bytes()).await.unwrap();
            w.flush().await.unwrap();
        }
        send(
            &mut write,
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": capabilities,
                "clientInfo": {"name": "test", "version": "1"}}}),
        )
        .await;
        let init: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(init["id"], 1, "{init}");
        send(
            &mut write,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await;
        send(
            &mut write,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "scale"}}),
        )
        .await;
        let mut asked = None;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .expect("the server answers")
                .unwrap()
                .unwrap();
            let msg: Value = serde_json::from_str(&line).unwrap();
            if msg["method"] == "elicitation/create" {
                asked = Some(msg["params"].clone());
                if let Some(reply) = &reply {
                    let mut reply = reply.clone();
                    reply["id"] = msg["id"].clone();
                    reply["jsonrpc"] = json!("2.0");
                    send(&mut write, reply).await;
                }
            } else if msg["id"] == 2 {
                return (msg["result"]["structuredContent"].clone(), asked);
            }
        }
    }

    const FORM: fn() -> Value = || json!({"elicitation": {"form": {}}});

    async fn answered(result: Value) -> (String, Option<Value>) {
        let (r, asked) = session(
            FORM(),
            Some(json!({"result": result})),
            Duration::from_secs(5),
        )
        .await;
        (r["approval"].as_str().unwrap().to_string(), asked)
    }

    #[tokio::test]
    async fn accept_with_approve_true_approves() {
        let (label, asked) =
            answered(json!({"action": "accept", "content": {"approve": true}})).await;
        assert_eq!(label, "approved");
        let asked = asked.expect("the human was asked");
        assert_eq!(asked["message"], request().message());
        assert_eq!(
            asked["requestedSchema"]["properties"]["approve"]["type"],
            "boolean"
        );
    }

    #[tokio::test]
    async fn every_other_answer_does_not_approve() {
        for (answer, label) in [
            (
                json!({"action": "accept", "content": {"approve": false}}),
                "declined",
            ),
            (
                json!({"action": "accept", "content": {"comment": "hm"}}),
                "unavailable",
            ),
            (json!({"action": "decline"}), "declined"),
            (json!({"action": "cancel"}), "cancelled"),
        ] {
            assert_eq!(answered(answer.clone()).await.0, label, "{answer}");
        }
    }

    #[tokio::test]
    async fn an_error_answer_is_unavailable_with_the_reason() {
        let (r, asked) = session(
            FORM(),
            Some(json!({"error": {"code": -32600, "message": "Elicitation not supported"}})),
            Duration::from_secs(5),
        )
        .await;
        assert!(asked.is_some());
        assert_eq!(r["approval"], "unavailable");
        assert!(
            r["detail"]
                .as_str()
                .unwrap()
                .contains("Elicitation not supported"),
            "{r}"
        );
    }

    #[tokio::test]
    async fn silence_times_out() {
        let (r, asked) = session(FORM(), None, Duration::from_millis(200)).await;
        assert!(asked.is_some());
        assert_eq!(r["approval"], "timed_out");
    }

    #[tokio::test]
    async fn a_client_without_elicitation_is_not_asked() {
        let (r, asked) = session(json!({}), None, Duration::from_secs(5)).await;
        assert!(asked.is_none());
        assert_eq!(r["approval"], "unavailable");
        assert!(
            r["detail"]
                .as_str()
                .unwrap()
                .contains("did not declare the elicitation capability"),
            "{r}"
        );
        let (r, asked) = session(
            json!({"elicitation": {"url": {}}}),
            None,
            Duration::from_secs(5),
        )
        .await;
        assert!(asked.is_none());
        assert!(r["detail"].as_str().unwrap().contains("url mode"), "{r}");
    }

    // ----------------------------------------------------------------- input_required

    fn binding() -> CallBinding {
        CallBinding {
            principal: "agent".into(),
            tool: "scale_deployment".into(),
            arguments: json!({"replicas": 20}).as_object().unwrap().clone(),
        }
    }

    fn form_caps() -> ClientCapabilities {
        serde_json::from_value(FORM()).unwrap()
    }

    type CallFuture = Pin<Box<dyn Future<Output = Result<CallToolResult, McpError>> + Send>>;

    /// A call that asks for approval when `escalate`, and reports the outcome.
    fn run(escalate: bool) -> impl FnOnce(Arc<dyn Approver>) -> CallFuture {
        move |approver| {
            Box::pin(async move {
                let label = if escalate {
                    approver.approve(&request()).await.label()
                } else {
                    "not asked"
                };
                Ok(CallToolResult::structured(json!({"approval": label})))
            })
        }
    }

    fn complete(r: CallToolResponse) -> String {
        match r {
            CallToolResponse::Complete(r) => r.structured_content.unwrap()["approval"]
                .as_str()
                .unwrap()
                .to_string(),
            other => panic!("not complete: {other:?}"),
        }
    }

    fn input_required(r: CallToolResponse) -> (String, Value) {
        match r {
            CallToolResponse::InputRequired(r) => {
                let requests = serde_json::to_value(r.input_requests.unwrap()).unwrap();
                (r.request_state.unwrap(), requests)
            }
            other => panic!("not input_required: {other:?}"),
        }
    }

    fn responses(answer: Value) -> Option<InputResponses> {
        Some(InputResponses::from([(
            APPROVAL_INPUT_KEY.to_string(),
            answer,
        )]))
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_call_that_does_not_escalate_completes_at_once() {
        let p = PendingApprovals::default();
        let r = p
            .call(binding(), None, None, Some(&form_caps()), T, run(false))
            .await;
        assert_eq!(complete(r.unwrap()), "not asked");
        assert!(p.is_empty());
    }

    #[tokio::test]
    async fn an_escalated_call_asks_and_the_retry_answers() {
        for (answer, label) in [
            (
                json!({"action": "accept", "content": {"approve": true}}),
                "approved",
            ),
            (
                json!({"action": "accept", "content": {"approve": false}}),
                "declined",
            ),
            (json!({"action": "decline"}), "declined"),
            (json!({"action": "cancel"}), "cancelled"),
            (json!({"action": "accept"}), "unavailable"),
        ] {
            let p = PendingApprovals::default();
            let first = p
                .call(binding(), None, None, Some(&form_caps()), T, run(true))
                .await;
            let (state, requests) = input_required(first.unwrap());
            let asked = &requests[APPROVAL_INPUT_KEY];
            assert_eq!(asked["method"], "elicitation/create");
            assert_eq!(asked["params"]["message"], request().message());
            assert_eq!(p.len(), 1);
            // a retry's own run is never used when the parked call is found
            let second = p
                .call(
                    binding(),
                    Some(state.clone()),
                    responses(answer),
                    None,
                    T,
                    run(false),
                )
                .await;
            assert_eq!(complete(second.unwrap()), label);
            assert!(p.is_empty());
            // the state is single-use: a replay does not reach the (finished) call
            let replay = p
                .call(
                    binding(),
                    Some(state),
                    responses(json!({"action": "accept", "content": {"approve": true}})),
                    Some(&form_caps()),
                    T,
                    run(true),
                )
                .await;
            assert_eq!(complete(replay.unwrap()), "unavailable");
        }
    }

    #[tokio::test]
    async fn answers_without_a_known_request_state_never_approve() {
        let p = PendingApprovals::default();
        let yes = || responses(json!({"action": "accept", "content": {"approve": true}}));
        // answers on a first round are ignored: the call asks
        let first = p
            .call(binding(), None, yes(), Some(&form_caps()), T, run(true))
            .await;
        let (state, _) = input_required(first.unwrap());
        // a made-up state is unknown
        let forged = p
            .call(
                binding(),
                Some("forged".into()),
                yes(),
                Some(&form_caps()),
                T,
                run(true),
            )
            .await;
        assert_eq!(complete(forged.unwrap()), "unavailable");
        // the state of another call is refused, and the parked call still waits
        let mut other = binding();
        other.arguments.insert("replicas".into(), json!(90));
        let err = p
            .call(
                other,
                Some(state.clone()),
                yes(),
                Some(&form_caps()),
                T,
                run(true),
            )
            .await
            .unwrap_err();
        assert!(err.message.contains("different tool call"), "{err:?}");
        assert_eq!(p.len(), 1);
        let r = p
            .call(binding(), Some(state), yes(), None, T, run(false))
            .await;
        assert_eq!(complete(r.unwrap()), "approved");
    }

    #[tokio::test]
    async fn a_client_without_elicitation_is_not_asked_in_input_required_mode() {
        let p = PendingApprovals::default();
        let r = p.call(binding(), None, None, None, T, run(true)).await;
        assert_eq!(complete(r.unwrap()), "unavailable");
        assert!(p.is_empty());
    }

    #[tokio::test]
    async fn a_late_answer_finds_the_call_timed_out() {
        let p = PendingApprovals::default();
        let short = Duration::from_millis(100);
        let first = p
            .call(binding(), None, None, Some(&form_caps()), short, run(true))
            .await;
        let (state, _) = input_required(first.unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let yes = responses(json!({"action": "accept", "content": {"approve": true}}));
        let r = p
            .call(binding(), Some(state), yes, None, short, run(false))
            .await;
        assert_eq!(complete(r.unwrap()), "timed_out");
    }
}
