//! The MCP server: tool listing and dispatch, with every call bounded in time and
//! shielded from panics.

// Logging (setLevel) is deprecated by SEP-2577 but clients on older protocol versions
// still send it, so the server keeps answering it.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    SetLevelRequestParams, Tool as ToolDef,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use crate::audit::AuditLog;
use crate::error::ToolError;
use crate::guard::Caller;
use crate::guard::elicitation::{self, CallBinding, ElicitationApprover, PendingApprovals};
use crate::redact;
use crate::tools::{self, Registered, ToolContext, untrusted};

/// Server settings that shape tool behaviour.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Longest a tool call may take.
    pub call_timeout: Duration,
    /// Where every call is recorded (none: not recorded).
    pub audit: Option<Arc<AuditLog>>,
    /// How long a human has to answer an approval request; a mutating call's time limit is
    /// the call timeout plus this.
    pub approval_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(30),
            audit: None,
            approval_timeout: elicitation::DEFAULT_APPROVAL_TIMEOUT,
        }
    }
}

struct Inner {
    tools: Vec<Registered>,
    by_name: HashMap<String, usize>,
    ctx: ToolContext,
    settings: ServerSettings,
    /// Completion records of changes that were applied while the audit log could not be
    /// written; written ahead of the next record that can be (bounded).
    unwritten: std::sync::Mutex<Vec<serde_json::Value>>,
}

/// Most completion records kept for a log that cannot be written.
const MAX_UNWRITTEN: usize = 1000;

/// The eks-ops-mcp server; cheap to clone (one per MCP session).
#[derive(Clone)]
pub struct EksOpsServer {
    inner: Arc<Inner>,
}

impl EksOpsServer {
    /// Build a server over a tool context.
    pub fn new(ctx: ToolContext, settings: ServerSettings) -> Self {
        Self::with_tools(ctx, settings, tools::all())
    }

    /// Build a server with an explicit tool list (tests add tools of their own).
    pub fn with_tools(ctx: ToolContext, settings: ServerSettings, tools: Vec<Registered>) -> Self {
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.def.name.to_string(), i))
            .collect();
        Self {
            inner: Arc::new(Inner {
                tools,
                by_name,
                ctx,
                settings,
                unwritten: std::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// The tool definitions, in listing order.
    pub fn tool_defs(&self) -> Vec<ToolDef> {
        self.inner.tools.iter().map(|t| t.def.clone()).collect()
    }

    fn instructions(&self) -> String {
        let mut s = String::from(
            "eks-ops-mcp: operations tools for Amazon EKS. Look first: get_events (what happened), \
             get_pod_status (what is unhealthy and why), get_pod_logs (previous=true for crashed \
             containers), list_workloads, get_node_status, get_rollout_history. Results are \
             bounded; narrow with namespace, selectors, since and limit. Secrets and ConfigMaps \
             are never read.",
        );
        if self.inner.ctx.cluster.is_sandbox() {
            s.push_str(
                " This server is connected to the embedded SANDBOX cluster (simulated, not a real \
                 cluster): every result carries sandbox: true.",
            );
        }
        s
    }

    /// Run one tool call as an anonymous caller that cannot approve escalations.
    pub async fn call(
        &self,
        name: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
    ) -> Result<CallToolResult, McpError> {
        self.call_as(name, arguments, Caller::default()).await
    }

    /// Run one tool call to completion: argument parsing, the tool, a timeout, panic
    /// isolation, redaction of what leaves the server, and the audit record. Never panics
    /// and never leaves the call unanswered or unrecorded: a call of an unknown tool is
    /// recorded as `unknown_tool`, and the call runs in a task of its own, so a client that
    /// cancels or disconnects does not stop its record (and a call still running when the
    /// server stops is recorded as `abandoned`).
    pub async fn call_as(
        &self,
        name: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        caller: Caller,
    ) -> Result<CallToolResult, McpError> {
        let Some(&idx) = self.inner.by_name.get(name) else {
            return Err(self.unknown_tool(name, arguments, &caller.principal));
        };
        let server = self.clone();
        match tokio::spawn(server.run_recorded(idx, arguments, caller)).await {
            Ok(result) => result,
            Err(e) => Err(McpError::internal_error(
                format!("the call of {name} failed: {e}"),
                None,
            )),
        }
    }

    /// Answer and record a call of a tool this server does not have (on a `--read-only`
    /// server, every mutating tool).
    fn unknown_tool(
        &self,
        name: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        principal: &str,
    ) -> McpError {
        let shown = redact::redact_str(bounded_text(name, MAX_NAME_BYTES)).into_owned();
        let known: Vec<&str> = self
            .inner
            .tools
            .iter()
            .map(|t| t.def.name.as_ref())
            .collect();
        let message = format!(
            "unknown tool {shown:?}; available tools: {}",
            known.join(", ")
        );
        if let Some(audit) = &self.inner.settings.audit {
            let record = serde_json::json!({
                "phase": "completed", "principal": principal, "tool": shown,
                "arguments": audited_arguments(arguments), "is_error": true,
                "outcome": "unknown_tool", "duration_ms": 0.0,
                "error": {"code": "unknown_tool", "message": message},
            });
            if let Err(e) = audit.append(record) {
                tracing::error!("audit record of an unknown tool's call could not be written: {e}");
                return McpError::internal_error(
                    format!(
                        "the audit record of this call could not be written ({e}); the server refuses to answer unrecorded"
                    ),
                    None,
                );
            }
        }
        McpError::invalid_params(message, None)
    }

    async fn run_recorded(
        self,
        idx: usize,
        arguments: serde_json::Map<String, serde_json::Value>,
        caller: Caller,
    ) -> Result<CallToolResult, McpError> {
        let tool = &self.inner.tools[idx];
        let name = tool.def.name.to_string();
        let read_only = tools::is_read_only(tool);
        let handler = tool.handler.clone();
        let mut ctx = self.inner.ctx.clone();
        let principal = caller.principal.clone();
        ctx.caller = caller;
        let record = serde_json::json!({
            "phase": "completed", "principal": principal, "tool": name,
            "arguments": audited_arguments(arguments.clone()),
        });
        let started = Instant::now();
        // written if this task is dropped before the call completes (the runtime shuts down)
        let mut unfinished = self.inner.settings.audit.clone().map(|audit| Unfinished {
            audit,
            record: record.clone(),
            durable: !read_only,
            started,
        });
        // a mutating call may wait for a human: the approval window comes on top
        let timeout = if read_only {
            self.inner.settings.call_timeout
        } else {
            self.inner.settings.call_timeout + self.inner.settings.approval_timeout
        };
        // Spawned so that a panic inside the tool is caught by the runtime and reported.
        let task =
            tokio::spawn(
                async move { tokio::time::timeout(timeout, handler(ctx, arguments)).await },
            );
        let outcome = match task.await {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(ToolError::Timeout {
                what: if read_only {
                    format!(
                        "the call (its reads of the cluster API{})",
                        if uses_metrics(&name) {
                            " and the metrics source"
                        } else {
                            ""
                        }
                    )
                } else {
                    "the call (planning, approval and the change)".to_string()
                },
                seconds: timeout.as_secs(),
            }),
            Err(join) if join.is_panic() => {
                let payload = join.into_panic();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                let msg = redact::redact_str(bounded_text(&msg, MAX_NAME_BYTES)).into_owned();
                tracing::error!(tool = %name, panic = %msg, "tool panicked");
                Err(ToolError::Internal(format!(
                    "the tool {name} failed unexpectedly ({msg}); nothing was changed; this is a defect of the server"
                )))
            }
            Err(join) => Err(ToolError::Internal(format!(
                "the tool {name} was cancelled: {join}"
            ))),
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        // one redaction pass over everything that leaves the server: the structured
        // result, the text, error messages, and the audit record built from them
        let reply = match outcome {
            Ok(answer) => {
                let mut value = answer.value;
                redact::redact_value(&mut value);
                Ok((
                    value,
                    redact::redact_str(&answer.summary).into_owned(),
                    answer.png,
                ))
            }
            Err(e) => Err((e.code(), redact::redact_str(&e.to_string()).into_owned())),
        };
        if let Some(audit) = &self.inner.settings.audit {
            let mut record = record;
            if let Some(r) = record.as_object_mut() {
                r.insert("is_error".into(), reply.is_err().into());
                r.insert(
                    "outcome".into(),
                    if reply.is_ok() { "ok" } else { "error" }.into(),
                );
                r.insert("duration_ms".into(), elapsed_ms.into());
                match &reply {
                    Ok((value, _, _)) => r.insert("result".into(), value.clone()),
                    Err((code, message)) => r.insert(
                        "error".into(),
                        serde_json::json!({"code": code, "message": message}),
                    ),
                };
            }
            // the call has completed, whether or not its record can be written
            if let Some(u) = unfinished.as_mut() {
                u.disarm();
            }
            // records of earlier applied changes that could not be written go first
            self.write_unwritten(audit);
            // a mutating call's record is synced to disk; a read's is written and flushed
            if let Err(e) = audit.append_with(record.clone(), !read_only) {
                tracing::error!(tool = %name, "audit record could not be written: {e}");
                // A change that went through must not be reported as "nothing done": say
                // what happened, and keep the record for the next write that succeeds.
                let status = match &reply {
                    Ok((value, _, _)) if !read_only => value
                        .get("status")
                        .and_then(serde_json::Value::as_str)
                        .filter(|s| matches!(*s, "applied" | "unknown"))
                        .map(str::to_string),
                    _ => None,
                };
                if let (Some(status), Ok((value, summary, _))) = (status, reply) {
                    if let Ok(mut kept) = self.inner.unwritten.lock()
                        && kept.len() < MAX_UNWRITTEN
                    {
                        kept.push(record);
                    }
                    let what = if status == "applied" {
                        "the change WAS APPLIED"
                    } else {
                        "the change MAY HAVE BEEN APPLIED (see outcome)"
                    };
                    let mut r = CallToolResult::structured(value);
                    r.is_error = Some(true);
                    r.content = vec![ContentBlock::text(format!(
                        "{name}: {what}, but its completion record could not be written to the audit log ({e}); the decision recorded before the change is on file, and this record is kept and written with the next record that can be. {summary}"
                    ))];
                    return Ok(r);
                }
                return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "{name}: the audit record of this call could not be written ({e}); the server refuses to answer unrecorded"
                ))]));
            }
        }
        Ok(match reply {
            Ok((value, summary, png)) => {
                tracing::debug!(tool = %name, elapsed_ms, "tool call succeeded");
                let untrusted = untrusted::block(&value);
                let mut r = CallToolResult::structured(value);
                r.content = vec![ContentBlock::text(summary)];
                if let Some(block) = untrusted {
                    r.content.push(ContentBlock::text(block));
                }
                if let Some(png) = png {
                    use base64::Engine as _;
                    r.content.push(ContentBlock::image(
                        base64::engine::general_purpose::STANDARD.encode(png),
                        "image/png",
                    ));
                }
                r
            }
            Err((code, message)) => {
                tracing::info!(tool = %name, elapsed_ms, error = %message, "tool call failed");
                let mut r =
                    CallToolResult::error(vec![ContentBlock::text(format!("{name}: {message}"))]);
                r.meta = serde_json::json!({"eks-ops-mcp/error": {"code": code}})
                    .as_object()
                    .cloned()
                    .map(Into::into);
                r
            }
        })
    }

    /// Write the completion records kept while the audit log could not be written.
    fn write_unwritten(&self, audit: &AuditLog) {
        let Ok(mut kept) = self.inner.unwritten.lock() else {
            return;
        };
        while let Some(record) = kept.first().cloned() {
            let mut late = record;
            if let Some(r) = late.as_object_mut() {
                r.insert("written_late".into(), true.into());
            }
            if audit.append_with(late, true).is_err() {
                return;
            }
            kept.remove(0);
        }
    }

    /// Record a call that was refused before it ran (a retry whose `requestState` belongs
    /// to another call).
    fn record_rejected(&self, binding: &CallBinding, error: &McpError) {
        let Some(audit) = &self.inner.settings.audit else {
            return;
        };
        let record = serde_json::json!({
            "phase": "completed", "principal": binding.principal,
            "tool": redact::redact_str(bounded_text(&binding.tool, MAX_NAME_BYTES)),
            "arguments": audited_arguments(binding.arguments.clone()), "is_error": true,
            "outcome": "rejected", "duration_ms": 0.0,
            "error": {"code": "rejected", "message": redact::redact_str(&error.message)},
        });
        if let Err(e) = audit.append(record) {
            tracing::error!("audit record of a rejected call could not be written: {e}");
        }
    }
}

/// Longest tool name or panic message kept in an answer or record.
const MAX_NAME_BYTES: usize = 256;
/// Longest arguments (as JSON text) kept whole in an audit record.
pub const MAX_AUDITED_ARGUMENT_BYTES: usize = 16 * 1024;

/// Text cut to at most `max` bytes, on a character boundary.
fn bounded_text(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A call's arguments as they are recorded: redacted, and when too long, replaced by their
/// size and first argument names.
fn audited_arguments(arguments: serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    let value = redact::redacted(serde_json::Value::Object(arguments));
    let bytes = value.to_string().len();
    if bytes <= MAX_AUDITED_ARGUMENT_BYTES {
        return value;
    }
    let names: Vec<String> = value
        .as_object()
        .map(|o| {
            o.keys()
                .take(32)
                .map(|k| bounded_text(k, 64).to_string())
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({"truncated": true, "bytes": bytes, "names": names})
}

/// The record of a call that has not completed, written if its task is dropped first.
struct Unfinished {
    audit: Arc<AuditLog>,
    record: serde_json::Value,
    durable: bool,
    started: Instant,
}

impl Unfinished {
    /// The call completed: nothing to write on drop.
    fn disarm(&mut self) {
        self.record = serde_json::Value::Null;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.record.is_null() {
            return;
        }
        let mut record = std::mem::take(&mut self.record);
        if let Some(r) = record.as_object_mut() {
            r.insert("is_error".into(), true.into());
            r.insert("outcome".into(), "abandoned".into());
            r.insert(
                "duration_ms".into(),
                (self.started.elapsed().as_secs_f64() * 1000.0).into(),
            );
            r.insert(
                "error".into(),
                serde_json::json!({"code": "abandoned", "message": "the call did not complete: the server stopped while it ran (or waited for an approval)"}),
            );
        }
        if let Err(e) = self.audit.append_with(record, self.durable) {
            tracing::error!("audit record of an abandoned call could not be written: {e}");
        }
    }
}

impl ServerHandler for EksOpsServer {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_logging()
            .build();
        ServerConfig::new(caps)
            .with_server_info(
                Implementation::new("eks-ops-mcp", env!("CARGO_PKG_VERSION"))
                    .with_title("EKS operations (policy-gated, predictive)"),
            )
            .with_instructions(self.instructions())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tool_defs()))
    }

    fn get_tool(&self, name: &str) -> Option<ToolDef> {
        self.inner
            .by_name
            .get(name)
            .map(|&i| self.inner.tools[i].def.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let principal = context
            .client_info()
            .map(|info| info.name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "unknown-client".into());
        let approval_timeout = self.inner.settings.approval_timeout;
        if elicitation::uses_input_required(context.protocol_version().as_ref()) {
            // 2026-07-28 and later: no server-to-client requests; a call that needs approval
            // answers input_required and is resumed by the client's retry
            let binding = CallBinding {
                principal,
                tool: request.name.to_string(),
                arguments: request.arguments.unwrap_or_default(),
            };
            let capabilities = context.client_capabilities();
            let server = self.clone();
            let call = binding.clone();
            let refused = binding.clone();
            let ran = Arc::new(AtomicBool::new(false));
            let started = ran.clone();
            let result = PendingApprovals::global()
                .call(
                    binding,
                    request.request_state,
                    request.input_responses,
                    capabilities.as_ref(),
                    approval_timeout,
                    move |approver| {
                        started.store(true, Ordering::SeqCst);
                        async move {
                            let caller = Caller {
                                principal: call.principal,
                                approver,
                            };
                            server.call_as(&call.tool, call.arguments, caller).await
                        }
                    },
                )
                .await;
            // a call that ran is recorded by call_as; one refused before it ran, here
            if let (Err(e), false) = (&result, ran.load(Ordering::SeqCst)) {
                self.record_rejected(&refused, e);
            }
            return result;
        }
        let args = request.arguments.unwrap_or_default();
        let caller = Caller {
            principal,
            approver: Arc::new(
                ElicitationApprover::for_request(&context).with_timeout(approval_timeout),
            ),
        };
        self.call_as(&request.name, args, caller)
            .await
            .map(Into::into)
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        tracing::info!(level = ?request.level, "client set the log level");
        Ok(())
    }
}

/// Tools that read a metrics source (Prometheus/AMP, CloudWatch) as well as the cluster, so
/// that a timeout names both.
fn uses_metrics(tool: &str) -> bool {
    matches!(
        tool,
        "query_metrics"
            | "get_alarms"
            | "detect_anomalies"
            | "forecast_load"
            | "recommend_replicas"
            | "forecast_accuracy"
            | "rightsizing"
    )
}
