//! A sandbox cluster and a server over it, per test.

use std::net::SocketAddr;

use eks_ops_mcp::cluster::Cluster;
use eks_ops_mcp::sandbox::{Sandbox, Scenario};
use eks_ops_mcp::server::{EksOpsServer, ServerSettings};
use eks_ops_mcp::tools::ToolContext;
use rmcp::model::CallToolResult;
use serde_json::Value;

pub struct Fixture {
    pub sandbox: Sandbox,
    pub server: EksOpsServer,
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
    let server = EksOpsServer::new(
        ToolContext {
            cluster: Cluster::new(client, true),
        },
        ServerSettings::default(),
    );
    Fixture { sandbox, server }
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

    /// Call a tool that must succeed; returns its structured content.
    pub async fn ok(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args.clone()).await;
        assert_ne!(r.is_error, Some(true), "{tool} {args} failed: {}", text(&r));
        let v = r.structured_content.clone().expect("structured content");
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

pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}
