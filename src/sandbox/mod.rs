//! The embedded sandbox cluster: a simulated EKS cluster that speaks the real
//! Kubernetes REST API on a loopback port, so that the server's ordinary
//! `kube::Client` (and `kubectl`) can be pointed at it.

pub mod api;
pub mod controller;
pub mod mutate;
pub mod prometheus;
pub mod resources;
pub mod scenario;
pub mod selector;
pub mod series;
pub mod store;
pub mod table;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

pub use scenario::{Scenario, ScenarioError};
use store::Store;

/// A running sandbox cluster.
pub struct Sandbox {
    addr: SocketAddr,
    prometheus_addr: SocketAddr,
    scenario_name: String,
    store: Arc<RwLock<Store>>,
    shutdown: CancellationToken,
}

/// Errors starting the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The scenario is not usable.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr} for the sandbox API: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl Sandbox {
    /// Start the sandbox API server for `scenario` on `addr` (port 0 picks a free port).
    pub async fn start(scenario: &Scenario, addr: SocketAddr) -> Result<Self, SandboxError> {
        let store = Arc::new(RwLock::new(Store::from_scenario(scenario)?));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let state = api::ApiState {
            store: store.clone(),
            address: addr.to_string(),
        };
        let app = axum::Router::new().fallback(api::handle).with_state(state);
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!("sandbox API server stopped: {e}");
            }
        });
        // the Prometheus API on a port of its own (its /api/v1 paths would clash with Kubernetes')
        let now = jiff::Timestamp::now();
        let series = scenario
            .metrics
            .iter()
            .map(|m| series::generate(m, now))
            .collect::<Result<Vec<_>, _>>()?;
        let prom_listener = tokio::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0))
            .await
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let prometheus_addr = prom_listener
            .local_addr()
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let prom_app = axum::Router::new()
            .route(
                "/api/v1/query_range",
                axum::routing::get(prometheus::query_range).post(prometheus::query_range),
            )
            .route(
                "/api/v1/query",
                axum::routing::get(prometheus::query).post(prometheus::query),
            )
            .route("/-/ready", axum::routing::get(prometheus::ready))
            .route("/-/healthy", axum::routing::get(prometheus::ready))
            .with_state(prometheus::PromState {
                series: Arc::new(series),
            });
        let token = shutdown.clone();
        tokio::spawn(async move {
            let serve = axum::serve(prom_listener, prom_app)
                .with_graceful_shutdown(async move { token.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!("sandbox Prometheus API stopped: {e}");
            }
        });
        tracing::info!(%addr, scenario = %scenario.name, "sandbox cluster listening");
        Ok(Self {
            addr,
            prometheus_addr,
            scenario_name: scenario.name.clone(),
            store,
            shutdown,
        })
    }

    /// Address of the API server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// URL of the API server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// URL of the sandbox's Prometheus HTTP API.
    pub fn prometheus_url(&self) -> String {
        format!("http://{}", self.prometheus_addr)
    }

    /// Name of the loaded scenario.
    pub fn scenario_name(&self) -> &str {
        &self.scenario_name
    }

    /// Direct access to the object store (tests use it to check effects).
    pub fn store(&self) -> Arc<RwLock<Store>> {
        self.store.clone()
    }

    /// A kubeconfig (JSON, which kubectl reads like YAML) pointing at the sandbox.
    pub fn kubeconfig(&self) -> String {
        let doc = serde_json::json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "eks-ops-sandbox",
            "clusters": [{"name": "eks-ops-sandbox", "cluster": {"server": self.url()}}],
            "users": [{"name": "sandbox", "user": {}}],
            "contexts": [{"name": "eks-ops-sandbox",
                          "context": {"cluster": "eks-ops-sandbox", "user": "sandbox", "namespace": "default"}}],
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }

    /// A `kube::Client` for the sandbox.
    pub fn client(&self) -> Result<kube::Client, kube::Error> {
        kube::Client::try_from(self.config())
    }

    /// A client configuration for the sandbox.
    pub fn config(&self) -> kube::Config {
        // formatted from a SocketAddr, so always a valid URI
        let url: http::Uri = self
            .url()
            .parse()
            .expect("socket address forms a valid URI");
        kube::Config::new(url)
    }

    /// The sandbox as a [`crate::cluster::Cluster`].
    pub fn cluster(&self) -> Result<crate::cluster::Cluster, kube::Error> {
        crate::cluster::Cluster::from_config(self.config(), true)
    }

    /// Stop the API server.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
