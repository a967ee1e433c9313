//! The MCP server: tool listing and dispatch, with every call bounded in time and
//! shielded from panics.

// Logging (setLevel) is deprecated by SEP-2577 but clients on older protocol versions
// still send it, so the server keeps answering it.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::Arc;
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
use crate::tools::{self, Registered, ToolContext};

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
}

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
    /// isolation, and the audit record. Never panics and never leaves the call unanswered.
    pub async fn call_as(
        &self,
        name: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        caller: Caller,
    ) -> Result<CallToolResult, McpError> {
        let Some(&idx) = self.inner.by_name.get(name) else {
            let known: Vec<&str> = self
                .inner
                .tools
                .iter()
                .map(|t| t.def.name.as_ref())
                .collect();
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool {name:?}; available tools: {}",
                    known.join(", ")
                ),
                None,
            ));
        };
        let tool = &self.inner.tools[idx];
        let handler = tool.handler.clone();
        let mut ctx = self.inner.ctx.clone();
        let principal = caller.principal.clone();
        ctx.caller = caller;
        let audited_args = serde_json::Value::Object(arguments.clone());
        // a mutating call may wait for a human: the approval window comes on top
        let timeout = if tools::is_read_only(tool) {
            self.inner.settings.call_timeout
        } else {
            self.inner.settings.call_timeout + self.inner.settings.approval_timeout
        };
        let started = Instant::now();
        // Spawned so that a panic inside the tool is caught by the runtime and reported.
        let task =
            tokio::spawn(
                async move { tokio::time::timeout(timeout, handler(ctx, arguments)).await },
            );
        let outcome = match task.await {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(ToolError::Timeout(timeout.as_secs())),
            Err(join) if join.is_panic() => {
                let payload = join.into_panic();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(tool = name, panic = %msg, "tool panicked");
                Err(ToolError::Internal(format!(
                    "the tool {name} failed unexpectedly ({msg}); nothing was changed; this is a defect of the server"
                )))
            }
            Err(join) => Err(ToolError::Internal(format!(
                "the tool {name} was cancelled: {join}"
            ))),
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Some(audit) = &self.inner.settings.audit {
            let (is_error, detail) = match &outcome {
                Ok(answer) => (false, serde_json::json!({"result": answer.value})),
                Err(e) => (
                    true,
                    serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}}),
                ),
            };
            let mut record = serde_json::json!({
                "phase": "completed", "principal": principal, "tool": name,
                "arguments": audited_args, "is_error": is_error, "duration_ms": elapsed_ms,
            });
            if let (Some(r), Some(d)) = (record.as_object_mut(), detail.as_object()) {
                r.extend(d.clone());
            }
            // a mutating call's record is synced to disk; a read's is written and flushed
            if let Err(e) = audit.append_with(record, !tools::is_read_only(tool)) {
                tracing::error!(tool = name, "audit record could not be written: {e}");
                return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "{name}: the audit record of this call could not be written ({e}); the server refuses to answer unrecorded"
                ))]));
            }
        }
        Ok(match outcome {
            Ok(answer) => {
                tracing::debug!(tool = name, elapsed_ms, "tool call succeeded");
                let mut r = CallToolResult::structured(answer.value);
                r.content = vec![ContentBlock::text(answer.summary)];
                if let Some(png) = answer.png {
                    use base64::Engine as _;
                    r.content.push(ContentBlock::image(
                        base64::engine::general_purpose::STANDARD.encode(png),
                        "image/png",
                    ));
                }
                r
            }
            Err(e) => {
                tracing::info!(tool = name, elapsed_ms, error = %e, "tool call failed");
                let mut r = CallToolResult::error(vec![ContentBlock::text(format!("{name}: {e}"))]);
                r.meta = serde_json::json!({"eks-ops-mcp/error": {"code": e.code()}})
                    .as_object()
                    .cloned()
                    .map(Into::into);
                r
            }
        })
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
            return PendingApprovals::global()
                .call(
                    binding,
                    request.request_state,
                    request.input_responses,
                    capabilities.as_ref(),
                    approval_timeout,
                    move |approver| async move {
                        let caller = Caller {
                            principal: call.principal,
                            approver,
                        };
                        server.call_as(&call.tool, call.arguments, caller).await
                    },
                )
                .await;
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
