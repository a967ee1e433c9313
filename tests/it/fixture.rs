//! A sandbox cluster and a server over it, per test.

use std::net::SocketAddr;

use std::sync::Arc;

use eks_ops_mcp::audit::AuditLog;
use eks_ops_mcp::cluster::Cluster;
use eks_ops_mcp::forecast::store::ForecastStore;
use eks_ops_mcp::guard::approval::FixedApprover;
use eks_ops_mcp::guard::{ApprovalOutcome, Caller, Guard, GuardConfig};
use eks_ops_mcp::metrics::Metrics;
use eks_ops_mcp::metrics::prometheus::PrometheusClient;
use eks_ops_mcp::policy::PolicyEngine;
use eks_ops_mcp::sandbox::{Sandbox, Scenario};
use eks_ops_mcp::server::{EksOpsServer, ServerSettings};
use eks_ops_mcp::tools::ToolContext;
use rmcp::model::CallToolResult;
use serde_json::Value;

pub struct Fixture {
    pub sandbox: Sandbox,
    pub server: EksOpsServer,
    /// The audit log of a guarded fixture.
    pub audit_path: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

pub async fn start() -> Fixture {
    start_with(Scenario::builtin().expect("built-in scenario loads")).await
}

pub async fn start_with(scenario: Scenario) -> Fixture {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let sandbox = Sandbox::start(&scenario, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("sandbox starts");
    let client = sandbox.client().expect("client for sandbox");
    let dir = tempfile::tempdir().unwrap();
    let server = EksOpsServer::new(
        ToolContext::new(Cluster::new(client, true))
            .with_metrics(sandbox_metrics(&sandbox))
            .with_forecast_store(Arc::new(ForecastStore::new(
                dir.path().join("forecasts.jsonl"),
            ))),
        ServerSettings::default(),
    );
    Fixture {
        sandbox,
        server,
        audit_path: None,
        _dir: None,
    }
}

/// A sandbox and a server with the default policies, a guard and an audit log.
pub async fn start_guarded() -> Fixture {
    start_guarded_with(GuardConfig::default()).await
}

/// Like [`start_guarded`], with a guard configuration.
pub async fn start_guarded_with(config: GuardConfig) -> Fixture {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let scenario = Scenario::builtin().expect("built-in scenario loads");
    let sandbox = Sandbox::start(&scenario, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("sandbox starts");
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let audit = Arc::new(AuditLog::open(audit_path.to_str().unwrap()).unwrap());
    let engine = Arc::new(PolicyEngine::builtin().unwrap());
    let guard = Arc::new(Guard::new(engine, audit.clone(), config));
    let ctx = ToolContext::new(sandbox.cluster().unwrap())
        .with_guard(guard)
        .with_metrics(sandbox_metrics(&sandbox));
    let server = EksOpsServer::new(
        ctx,
        ServerSettings {
            audit: Some(audit),
            ..Default::default()
        },
    );
    Fixture {
        sandbox,
        server,
        audit_path: Some(audit_path),
        _dir: Some(dir),
    }
}

/// The sandbox's Prometheus as the metric source.
pub fn sandbox_metrics(sandbox: &Sandbox) -> Arc<Metrics> {
    let prometheus = PrometheusClient::new(
        &sandbox.prometheus_url(),
        None,
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    Arc::new(Metrics {
        prometheus: Some(prometheus),
        cloudwatch: None,
    })
}

/// A caller whose human gives a fixed answer.
pub fn caller(answer: ApprovalOutcome) -> Caller {
    Caller {
        principal: "test-agent".into(),
        approver: Arc::new(FixedApprover(answer)),
    }
}

impl Fixture {
    /// Call a tool with JSON arguments; returns the raw result.
    pub async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let args = args.as_object().cloned().expect("arguments are an object");
        self.server
            .call(tool, args)
            .await
            .expect("no protocol error")
    }

    /// Call a tool as a given caller; returns the raw result.
    pub async fn call_as(&self, tool: &str, args: Value, caller: Caller) -> CallToolResult {
        let args = args.as_object().cloned().expect("arguments are an object");
        self.server
            .call_as(tool, args, caller)
            .await
            .expect("no protocol error")
    }

    /// Call a tool as `caller` (a principal with an approver); returns its structured
    /// content, which a tool error would not have.
    pub async fn ok_as(&self, tool: &str, args: Value, caller: Caller) -> Value {
        let r = self.call_as(tool, args.clone(), caller).await;
        structured(tool, &args, &r)
    }

    /// Read an object straight from the sandbox store.
    pub async fn object(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let rt = eks_ops_mcp::sandbox::resources::RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .unwrap();
        self.sandbox.store().read().await.get(rt, ns, name).cloned()
    }

    /// Names of the pods in a namespace whose name starts with a prefix.
    pub async fn pods(&self, ns: &str, prefix: &str) -> Vec<String> {
        let rt = eks_ops_mcp::sandbox::resources::RESOURCES
            .iter()
            .find(|r| r.plural == "pods")
            .unwrap();
        self.sandbox
            .store()
            .read()
            .await
            .list(rt, Some(ns))
            .into_iter()
            .filter_map(|p| {
                p.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .filter(|n| n.starts_with(prefix))
            .collect()
    }

    /// The audit records written so far.
    pub fn audit_records(&self) -> Vec<Value> {
        let path = self.audit_path.as_ref().expect("guarded fixture");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Call a tool that must succeed; returns its structured content.
    pub async fn ok(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args.clone()).await;
        let v = structured(tool, &args, &r);
        assert_eq!(v["sandbox"], Value::Bool(true), "sandbox flag");
        assert!(!text(&r).is_empty(), "text summary present");
        v
    }

    /// Call a tool that must fail; returns the error text.
    pub async fn err(&self, tool: &str, args: Value) -> String {
        let r = self.call(tool, args.clone()).await;
        assert_eq!(
            r.is_error,
            Some(true),
            "{tool} {args} should fail, got {:?}",
            r.structured_content
        );
        assert!(r.structured_content.is_none());
        text(&r)
    }
}

/// The structured content of a result that must not be a tool error.
fn structured(tool: &str, args: &Value, r: &CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "{tool} {args} failed: {}", text(r));
    r.structured_content.clone().expect("structured content")
}

pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A read-only server over the built-in sandbox limited to `namespaces`, as `--namespaces`
/// makes it (the guard's own namespace list matters to mutations only).
pub async fn start_scoped(namespaces: &[&str]) -> Fixture {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let scenario = Scenario::builtin().expect("built-in scenario loads");
    let sandbox = Sandbox::start(&scenario, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("sandbox starts");
    let dir = tempfile::tempdir().unwrap();
    let ctx = ToolContext::new(sandbox.cluster().unwrap())
        .with_metrics(sandbox_metrics(&sandbox))
        .with_forecast_store(Arc::new(ForecastStore::new(
            dir.path().join("forecasts.jsonl"),
        )))
        .with_scope(namespaces.iter().map(|s| s.to_string()).collect());
    let server = EksOpsServer::new(ctx, ServerSettings::default());
    Fixture {
        sandbox,
        server,
        audit_path: None,
        _dir: Some(dir),
    }
}
