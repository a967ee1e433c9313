//! Access to the Kubernetes API: client construction and typed, read-scoped APIs.
//!
//! Reads go through [`ReadApi`], which has no writing methods, and only the resource types
//! that implement [`Readable`] can be reached; Secrets and ConfigMaps do not implement it,
//! so no tool can read them. Writes need a [`Writer`], which only the guard can obtain:
//! [`Cluster::writer`] takes a [`crate::guard::GuardToken`], and only the guard module can
//! make one.

use k8s_openapi::api::{apps, autoscaling, core, policy};
use kube::api::{ListParams, LogParams, ObjectList};
use kube::{Api, Client};
use serde::de::DeserializeOwned;

pub mod facts;
pub mod template_diff;

use crate::error::ToolError;

/// Resource types a tool may read.
pub trait Readable:
    kube::Resource<DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl Readable for core::v1::Pod {}
impl Readable for core::v1::Event {}
impl Readable for core::v1::Node {}
impl Readable for core::v1::Namespace {}
impl Readable for core::v1::PersistentVolumeClaim {}
impl Readable for apps::v1::Deployment {}
impl Readable for apps::v1::ReplicaSet {}
impl Readable for apps::v1::StatefulSet {}
impl Readable for apps::v1::DaemonSet {}
impl Readable for autoscaling::v2::HorizontalPodAutoscaler {}
impl Readable for policy::v1::PodDisruptionBudget {}
impl Readable for k8s_openapi::api::scheduling::v1::PriorityClass {}

/// Why a connection to a cluster could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig could not be read or used.
    #[error("cannot use the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// Neither a kubeconfig nor an in-cluster configuration was found.
    #[error(
        "no cluster configuration found (set KUBECONFIG, pass --kubeconfig, run in a pod, or use --sandbox): {0}"
    )]
    Infer(#[from] kube::config::InferConfigError),
    /// The client could not be built.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// A connection to one cluster.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    no_retry: Client,
    sandbox: bool,
}

impl Cluster {
    /// Wrap a client; `sandbox` marks the embedded simulated cluster.
    pub fn new(client: Client, sandbox: bool) -> Self {
        Self {
            no_retry: client.clone(),
            client,
            sandbox,
        }
    }

    /// Build the clients from a configuration: one that retries throttled requests a few
    /// times, briefly, and one that does not, for the Eviction API, where 429 means "a
    /// PodDisruptionBudget says not now" and must be reported, not retried.
    ///
    /// kube's own retry policy waits up to 15 times with a backoff that grows to many
    /// seconds and follows `Retry-After`, so a persistently throttled or unavailable API
    /// outlasted the call's time limit and was reported as "no answer in time". Ours gives
    /// up within about a second and reports the API's own 429/503/504.
    pub fn from_config(config: kube::Config, sandbox: bool) -> Result<Self, kube::Error> {
        use kube::client::ClientBuilder;
        use kube::client::retry::RetryPolicy;
        let mut once = config.clone();
        once.default_retry = false;
        let policy = RetryPolicy::new(
            std::time::Duration::from_millis(50),
            std::time::Duration::from_millis(500),
            4,
            false,
        )
        .map_err(|e| kube::Error::Service(Box::new(e)))?;
        // the retry layer clones its inner service; a buffer makes kube's boxed stack cloneable
        let client = ClientBuilder::try_from(once.clone())?
            .with_layer(&tower::buffer::BufferLayer::new(1024))
            .with_layer(&tower::retry::RetryLayer::new(policy))
            .build();
        Ok(Self {
            client,
            no_retry: Client::try_from(once)?,
            sandbox,
        })
    }

    /// Connect with the standard kubeconfig (or in-cluster config), optionally a given
    /// kubeconfig file and context.
    pub async fn from_kubeconfig(
        kubeconfig: Option<&std::path::Path>,
        context: Option<&str>,
    ) -> Result<Self, ConnectError> {
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let config = match kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)?;
                kube::Config::from_custom_kubeconfig(kc, &options).await?
            }
            None if context.is_some() => kube::Config::from_kubeconfig(&options).await?,
            None => kube::Config::infer().await?,
        };
        Ok(Self::from_config(config, false)?)
    }

    /// Whether this is the embedded sandbox cluster.
    pub fn is_sandbox(&self) -> bool {
        self.sandbox
    }

    /// A typed API for a readable resource type; `None` namespace means all namespaces
    /// (or a cluster-scoped type).
    pub fn api<K>(&self, namespace: Option<&str>) -> ReadApi<K>
    where
        K: Readable + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        ReadApi(match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        })
    }

    /// A typed API for a cluster-scoped readable resource type (nodes, namespaces).
    pub fn cluster_api<K>(&self) -> ReadApi<K>
    where
        K: Readable + kube::Resource<Scope = k8s_openapi::ClusterResourceScope>,
    {
        ReadApi(Api::all(self.client.clone()))
    }

    /// Read one namespaced object that must exist; a missing one is a [`ToolError::NotFound`]
    /// naming `what` (e.g. "deployment") and ending with `hint` (where to look instead).
    pub async fn get_in<K>(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        hint: &str,
    ) -> Result<K, ToolError>
    where
        K: Readable + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        self.api::<K>(Some(namespace))
            .get_opt(name)
            .await
            .map_err(|e| ToolError::from_kube(format!("reading {what} {namespace}/{name}"), e))?
            .ok_or_else(|| {
                ToolError::NotFound(format!(
                    "{what} {name:?} does not exist in namespace {namespace:?}; {hint}"
                ))
            })
    }

    /// Write access, for the guard only: the token cannot be made outside the guard module.
    pub fn writer(&self, _token: &crate::guard::GuardToken) -> Writer {
        Writer {
            client: self.client.clone(),
            no_retry: self.no_retry.clone(),
        }
    }

    /// Fail with a helpful error when a namespace does not exist.
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<(), ToolError> {
        let api: ReadApi<core::v1::Namespace> = self.cluster_api();
        match api.get_opt(namespace).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                let known = api
                    .list(&Default::default())
                    .await
                    .map(|l| {
                        l.items
                            .into_iter()
                            .filter_map(|n| n.metadata.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                Err(ToolError::NotFound(format!(
                    "namespace {namespace:?} does not exist; existing namespaces: {known}"
                )))
            }
            Err(e) => Err(ToolError::from_kube(
                format!("reading namespace {namespace}"),
                e,
            )),
        }
    }
}

/// Objects asked of the API per page when listing.
pub const LIST_PAGE: u32 = 500;

/// Most objects one list may read: past this the call fails, asking for a narrower query.
pub const LIST_CAP: usize = 10_000;

/// The error of a list that matched more than [`LIST_CAP`] objects.
fn too_many<K: Readable>(seen: usize) -> kube::Error {
    let kind = K::kind(&());
    kube::Error::Api(
        kube::core::Status::failure(
            &format!(
                "more than {LIST_CAP} {kind} objects match ({seen} read before stopping); narrow the query with a namespace, a label selector or a field selector"
            ),
            "TooManyObjects",
        )
        .with_code(413)
        .boxed(),
    )
}

/// A read-only view of a typed API: get, list and (for pods) logs; nothing that writes.
pub struct ReadApi<K>(Api<K>);

impl<K: Readable> ReadApi<K> {
    /// Get one object; `Ok(None)` when it does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>, kube::Error> {
        self.0.get_opt(name).await
    }

    /// Get one object.
    pub async fn get(&self, name: &str) -> Result<K, kube::Error> {
        self.0.get(name).await
    }

    /// List objects, page by page ([`LIST_PAGE`] at a time), and at most [`LIST_CAP`] of
    /// them: a cluster with a huge list costs bounded memory, every page is a point where the
    /// call's time limit can stop the work, and too broad a query fails with a message that
    /// says how to narrow it. A caller's own `limit` is one page, as the API defines it.
    pub async fn list(&self, lp: &ListParams) -> Result<ObjectList<K>, kube::Error> {
        if lp.limit.is_some() {
            return self.0.list(lp).await;
        }
        let mut page = lp.clone().limit(LIST_PAGE);
        let mut all = self.0.list(&page).await?;
        while let Some(token) = all.metadata.continue_.clone().filter(|t| !t.is_empty()) {
            if all.items.len() >= LIST_CAP {
                return Err(too_many::<K>(all.items.len()));
            }
            page = page.continue_token(&token);
            let next = self.0.list(&page).await?;
            all.items.extend(next.items);
            all.metadata = next.metadata;
        }
        if all.items.len() > LIST_CAP {
            return Err(too_many::<K>(all.items.len()));
        }
        Ok(all)
    }
}

impl ReadApi<core::v1::Pod> {
    /// A container's logs.
    pub async fn logs(&self, name: &str, lp: &LogParams) -> Result<String, kube::Error> {
        self.0.logs(name, lp).await
    }
}

/// Write access to the cluster. Only the guard holds one, and hands it to a mutation's
/// `apply` step after the policies allowed it.
#[derive(Clone)]
pub struct Writer {
    client: Client,
    no_retry: Client,
}

impl Writer {
    /// Reads over the same connection: an apply step whose answer was lost reads back.
    pub fn reader(&self) -> Cluster {
        Cluster {
            client: self.client.clone(),
            no_retry: self.no_retry.clone(),
            sandbox: false,
        }
    }

    /// Pods of a namespace through the client that does not retry 429 (for evictions).
    pub fn evictions(&self, namespace: &str) -> Api<core::v1::Pod> {
        Api::namespaced(self.no_retry.clone(), namespace)
    }

    /// A typed API with write methods, namespaced (never Secrets or ConfigMaps: they are not
    /// [`Readable`]).
    pub fn namespaced<K>(&self, namespace: &str) -> Api<K>
    where
        K: Readable + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// A typed API with write methods, cluster-scoped.
    pub fn cluster<K>(&self) -> Api<K>
    where
        K: Readable + kube::Resource<Scope = k8s_openapi::ClusterResourceScope>,
    {
        Api::all(self.client.clone())
    }
}
