//! Fidelity check with a client nobody here wrote: `kubectl` against the sandbox.
//! Set EKS_OPS_MCP_SKIP_KUBECTL=1 to skip where kubectl cannot be installed; the
//! project's test command installs it.

use std::process::Command;

use crate::fixture::start;

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .args(["--request-timeout=10s"])
        .args(args)
        .output()
        .expect("kubectl is installed (the test command installs it; set EKS_OPS_MCP_SKIP_KUBECTL=1 to skip)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_the_sandbox() {
    if std::env::var_os("EKS_OPS_MCP_SKIP_KUBECTL").is_some() {
        eprintln!("skipped: EKS_OPS_MCP_SKIP_KUBECTL is set");
        return;
    }
    let f = start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, f.sandbox.kubeconfig()).unwrap();
    let kc2 = kc.clone();
    let run = move |args: Vec<&'static str>| {
        let kc = kc2.clone();
        tokio::task::spawn_blocking(move || kubectl(&kc, &args))
    };

    let pods = run(vec!["get", "pods", "-n", "shop"]).await.unwrap();
    assert!(pods.contains("cart-7d9f8b6c5d-xk2lp"), "{pods}");
    // kubectl's table view, with the columns a real API server gives it
    let header = pods.lines().next().unwrap_or_default();
    for col in ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] {
        assert!(header.contains(col), "{pods}");
    }
    let cart = pods
        .lines()
        .find(|l| l.starts_with("cart-7d9f8b6c5d-xk2lp"))
        .unwrap_or_default();
    assert!(
        cart.contains("CrashLoopBackOff") && cart.split_whitespace().nth(3) == Some("7"),
        "{pods}"
    );
    let everywhere = run(vec!["get", "pods", "-A"]).await.unwrap();
    assert!(
        everywhere.starts_with("NAMESPACE") && everywhere.contains("payments"),
        "{everywhere}"
    );
    let wide = run(vec!["get", "deploy", "-n", "shop"]).await.unwrap();
    assert!(
        wide.contains("UP-TO-DATE") && wide.contains("AVAILABLE"),
        "{wide}"
    );
    let nodes_table = run(vec!["get", "nodes"]).await.unwrap();
    assert!(
        nodes_table.contains("VERSION") && nodes_table.contains("Ready"),
        "{nodes_table}"
    );
    let all = run(vec![
        "get",
        "pods",
        "-A",
        "-l",
        "app=postgres",
        "-o",
        "name",
    ])
    .await
    .unwrap();
    assert_eq!(all.lines().count(), 3, "{all}");
    let deps = run(vec![
        "get",
        "deployments",
        "-n",
        "shop",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ])
    .await
    .unwrap();
    assert_eq!(deps, "cart checkout frontend recommender");
    let rs = run(vec![
        "get",
        "rs",
        "-n",
        "shop",
        "-l",
        "app=checkout",
        "-o",
        "name",
    ])
    .await
    .unwrap();
    assert_eq!(rs.lines().count(), 3, "{rs}");
    let nodes = run(vec![
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ])
    .await
    .unwrap();
    assert_eq!(nodes.split(' ').count(), 3, "{nodes}");
    let events = run(vec![
        "get",
        "events",
        "-n",
        "shop",
        "--field-selector",
        "reason=BackOff",
        "-o",
        "name",
    ])
    .await
    .unwrap();
    assert_eq!(events.lines().count(), 1, "{events}");
    let logs = run(vec![
        "logs",
        "-n",
        "shop",
        "cart-7d9f8b6c5d-xk2lp",
        "--previous",
    ])
    .await
    .unwrap();
    assert!(logs.contains("panic: failed to connect to redis"), "{logs}");
    let logs = run(vec![
        "logs",
        "-n",
        "shop",
        "frontend-59b8c7d6e4-a1b2c",
        "-c",
        "envoy",
        "--tail",
        "2",
    ])
    .await
    .unwrap();
    assert_eq!(logs.lines().count(), 2, "{logs}");
    let desc = run(vec![
        "get",
        "deploy",
        "checkout",
        "-n",
        "shop",
        "-o",
        "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    ])
    .await
    .unwrap();
    assert_eq!(desc, "3");
    drop(f);
}
