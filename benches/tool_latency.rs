//! Server-side latency of read tools on the sandbox, and the server's overhead on top
//! of the Kubernetes API round trips the tool makes.
//!
//! Run: `cargo bench --bench tool_latency` (prints a table; results go to BENCHMARKS.md).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use eks_ops_mcp::cluster::Cluster;
use eks_ops_mcp::sandbox::{Sandbox, Scenario};
use eks_ops_mcp::server::{EksOpsServer, ServerSettings};
use eks_ops_mcp::tools::ToolContext;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

const WARMUP: usize = 200;
const ITERS: usize = 3000;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

async fn measure<F, Fut>(mut f: F) -> (f64, f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..WARMUP {
        f().await;
    }
    let mut samples = Vec::with_capacity(ITERS);
    for _ in 0..ITERS {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed());
    }
    samples.sort();
    let mean = samples.iter().map(|d| d.as_secs_f64()).sum::<f64>() / samples.len() as f64 * 1e6;
    (pct(&samples, 0.5), pct(&samples, 0.99), mean)
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let scenario = Scenario::builtin().expect("scenario");
        let sb = Sandbox::start(&scenario, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("sandbox");
        let client = sb.client().expect("client");
        let server = EksOpsServer::new(
            ToolContext::new(Cluster::new(client.clone(), true)),
            ServerSettings::default(),
        );
        let call = |tool: &'static str, args: Value| {
            let server = server.clone();
            let args = args.as_object().cloned().unwrap_or_default();
            move || {
                let server = server.clone();
                let args = args.clone();
                async move {
                    let r = server.call(tool, args).await.expect("call");
                    assert_ne!(r.is_error, Some(true));
                }
            }
        };
        println!("| measurement | p50 µs | p99 µs | mean µs |\n|---|---|---|---|");
        let row = |name: &str, (p50, p99, mean): (f64, f64, f64)| {
            println!("| {name} | {p50:.0} | {p99:.0} | {mean:.0} |");
            mean
        };
        // get_pod_status(namespace=shop) = GET namespace + LIST pods
        let tool_pods = row(
            "tool get_pod_status ns=shop",
            measure(call("get_pod_status", json!({"namespace": "shop"}))).await,
        );
        let ns_api: Api<Namespace> = Api::all(client.clone());
        let pod_api: Api<Pod> = Api::namespaced(client.clone(), "shop");
        let raw_pods = row(
            "raw API: get namespace + list pods",
            measure(|| {
                let (ns_api, pod_api) = (ns_api.clone(), pod_api.clone());
                async move {
                    ns_api.get("shop").await.expect("ns");
                    pod_api.list(&ListParams::default()).await.expect("pods");
                }
            })
            .await,
        );
        let tool_events = row(
            "tool get_events ns=shop",
            measure(call("get_events", json!({"namespace": "shop"}))).await,
        );
        let ev_api: Api<Event> = Api::namespaced(client.clone(), "shop");
        let raw_events = row(
            "raw API: get namespace + list events",
            measure(|| {
                let (ns_api, ev_api) = (ns_api.clone(), ev_api.clone());
                async move {
                    ns_api.get("shop").await.expect("ns");
                    ev_api.list(&ListParams::default()).await.expect("events");
                }
            })
            .await,
        );
        let all_events = row(
            "tool get_events all namespaces",
            measure(call("get_events", json!({}))).await,
        );
        let _ = all_events;
        println!();
        println!(
            "server overhead get_pod_status: {:.0} µs per call (mean tool − mean raw API)",
            tool_pods - raw_pods
        );
        println!(
            "server overhead get_events:     {:.0} µs per call (mean tool − mean raw API)",
            tool_events - raw_events
        );
    });
}
