//! The production path: a cluster reached through a kubeconfig file and context, here
//! the sandbox's kubeconfig. Results then do not claim to come from the sandbox.

use eks_ops_mcp::cluster::Cluster;
use eks_ops_mcp::server::{EksOpsServer, ServerSettings};
use eks_ops_mcp::tools::ToolContext;
use serde_json::json;

use crate::fixture::start;

#[tokio::test]
async fn kubeconfig_and_context_reach_the_cluster() {
    let f = start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, f.sandbox.kubeconfig()).unwrap();

    let cluster = Cluster::from_kubeconfig(Some(&path), Some("eks-ops-sandbox"))
        .await
        .unwrap();
    assert!(!cluster.is_sandbox());
    let server = EksOpsServer::new(ToolContext::new(cluster), ServerSettings::default());
    let r = server
        .call("get_node_status", json!({}).as_object().cloned().unwrap())
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true));
    let v = r.structured_content.unwrap();
    assert_eq!(v["sandbox"], false);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3);

    let err = Cluster::from_kubeconfig(Some(&path), Some("no-such-context"))
        .await
        .err()
        .expect("unknown context fails");
    assert!(err.to_string().contains("no-such-context"), "{err}");
    let err = Cluster::from_kubeconfig(Some(&dir.path().join("missing")), None)
        .await
        .err()
        .expect("missing file fails");
    assert!(err.to_string().contains("kubeconfig"), "{err}");
}
