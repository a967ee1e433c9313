//! Dispatch: unknown tools, panics inside tools, and listing.

use std::sync::Arc;

use eks_ops_mcp::server::{EksOpsServer, ServerSettings};
use eks_ops_mcp::tools::{Registered, ToolContext};
use rmcp::model::Tool as ToolDef;
use serde_json::json;

use crate::fixture::{start, text};

#[tokio::test]
async fn unknown_tool_is_a_protocol_error_naming_the_tools() {
    let f = start().await;
    let err = f
        .server
        .call("delete_everything", Default::default())
        .await
        .unwrap_err();
    assert!(
        err.message.contains("unknown tool") && err.message.contains("get_events"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_panicking_tool_answers_with_a_tool_error_and_the_server_goes_on() {
    let f = start().await;
    let mut tools = eks_ops_mcp::tools::all();
    tools.push(Registered {
        def: ToolDef::new("boom", "panics", Arc::new(serde_json::Map::new())),
        handler: Arc::new(|_ctx, _args| Box::pin(async { panic!("kaboom at {}", 42) })),
    });
    let ctx = ToolContext::new(eks_ops_mcp::cluster::Cluster::new(
        f.sandbox.client().unwrap(),
        true,
    ));
    let server = EksOpsServer::with_tools(ctx, ServerSettings::default(), tools);
    let r = server.call("boom", Default::default()).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    assert!(
        t.contains("kaboom at 42") && t.contains("nothing was changed"),
        "{t}"
    );
    // still serving
    let r = server
        .call("get_node_status", json!({}).as_object().cloned().unwrap())
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true));
}

#[tokio::test]
async fn a_slow_call_times_out_with_a_clear_error() {
    let f = start().await;
    let tools = vec![Registered {
        def: ToolDef::new("slow", "sleeps", Arc::new(serde_json::Map::new())),
        handler: Arc::new(|_ctx, _args| {
            Box::pin(async {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                Ok(eks_ops_mcp::tools::Answer {
                    value: json!({}),
                    summary: String::new(),
                    png: None,
                })
            })
        }),
    }];
    let ctx = ToolContext::new(eks_ops_mcp::cluster::Cluster::new(
        f.sandbox.client().unwrap(),
        true,
    ));
    let server = EksOpsServer::with_tools(
        ctx,
        ServerSettings {
            call_timeout: std::time::Duration::from_millis(200),
            approval_timeout: std::time::Duration::ZERO,
            ..Default::default()
        },
        tools,
    );
    let r = server.call("slow", Default::default()).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("timed out"), "{}", text(&r));
}

#[tokio::test]
async fn every_tool_has_schemas_and_honest_annotations() {
    let f = start().await;
    let defs = f.server.tool_defs();
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "get_events",
            "get_pod_logs",
            "get_pod_status",
            "list_workloads",
            "get_node_status",
            "get_rollout_history",
            "query_metrics",
            "get_alarms",
            "detect_anomalies",
            "forecast_load",
            "recommend_replicas",
            "forecast_accuracy",
            "rightsizing",
            "scale_deployment",
            "rollback",
            "restart_pod",
            "restart_workload",
            "adjust_hpa",
            "cordon_node",
            "uncordon_node",
            "drain_node",
            "reserve_capacity",
        ]
    );
    for d in &defs {
        let a = d.annotations.as_ref().expect("annotations");
        const MUTATING: [&str; 9] = [
            "scale_deployment",
            "rollback",
            "restart_pod",
            "restart_workload",
            "adjust_hpa",
            "cordon_node",
            "uncordon_node",
            "drain_node",
            "reserve_capacity",
        ];
        let mutating = MUTATING.contains(&d.name.as_ref());
        assert_eq!(a.read_only_hint, Some(!mutating), "{}", d.name);
        if mutating {
            assert!(
                a.destructive_hint.is_some() && a.idempotent_hint.is_some(),
                "{}",
                d.name
            );
            let props = d.input_schema["properties"].as_object().unwrap();
            assert!(props.contains_key("dry_run"), "{} takes dry_run", d.name);
        }
        let out = d.output_schema.as_ref().expect("output schema");
        assert_eq!(out.get("type"), Some(&json!("object")), "{}", d.name);
        assert!(out["properties"].get("sandbox").is_some(), "{}", d.name);
        assert_eq!(
            d.input_schema.get("additionalProperties"),
            Some(&json!(false)),
            "{} rejects unknown arguments",
            d.name
        );
    }
}
