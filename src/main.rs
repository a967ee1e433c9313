//! Command line of eks-ops-mcp: `serve`, `sandbox`, `tools`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::sync::Arc;

use eks_ops_mcp::audit::{self, AuditFailurePolicy, AuditLog, AuditOptions, ResultMode};
use eks_ops_mcp::cluster::Cluster;
use eks_ops_mcp::forecast::store::ForecastStore;
use eks_ops_mcp::guard::{Caller, Guard, GuardConfig, NoApprover};
use eks_ops_mcp::metrics::Metrics;
use eks_ops_mcp::metrics::cloudwatch::CloudWatchClient;
use eks_ops_mcp::metrics::prometheus::{PrometheusClient, amp_from_env};
use eks_ops_mcp::policy::{self, PolicyEngine};
use eks_ops_mcp::sandbox::{Sandbox, Scenario};
use eks_ops_mcp::server::{EksOpsServer, ServerSettings};
use eks_ops_mcp::tools::{self, ToolContext};
use eks_ops_mcp::transport::{self, accept::ConnectionLimits, http::HttpSettings};
use tokio_util::sync::CancellationToken;

/// A line on stderr that never fails: stderr may be closed or full (`2>/dev/full`), and
/// the server must keep serving (`eprintln!` panics then).
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "eks-ops-mcp",
    version,
    about = "Policy-gated, predictive operations tools for Amazon EKS over MCP"
)]
struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. info, debug, eks_ops_mcp=debug. Logs go to stderr.
    #[arg(long, global = true, env = "EKS_OPS_MCP_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the MCP server (stdio by default, or HTTP with --http).
    Serve(Box<ServeArgs>),
    /// Run only the sandbox cluster's Kubernetes API and print a kubeconfig for it (for kubectl).
    Sandbox(SandboxArgs),
    /// Predictive scaling job: forecast a Deployment's load, recommend replicas ahead of the
    /// traffic and (with --apply) make the proposed call through the policy guard. Takes every
    /// serve flag (cluster, metrics, policies, audit).
    Forecast(Box<ForecastJobArgs>),
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check and test the Cedar policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Print the tool definitions as JSON, or write one file per tool with --write DIR.
    Tools {
        /// Folder to write `<tool>.json` files into.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

#[derive(Args)]
struct PolicySource {
    /// Folder of *.cedar policies (and optionally schema.cedarschema) replacing the built-in defaults.
    #[arg(long)]
    policies: Option<PathBuf>,
    /// With --policies: load the built-in defaults too, and the folder's policies on top.
    #[arg(long, requires = "policies")]
    extend: bool,
}

impl PolicySource {
    fn load(&self) -> Result<PolicyEngine, String> {
        match &self.policies {
            Some(dir) => PolicyEngine::from_dir(dir, self.extend),
            None => PolicyEngine::builtin(),
        }
        .map_err(|e| format!("policies are not valid:\n{e}"))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum AuditFailureArg {
    Refuse,
    ReadsContinue,
}

#[derive(Clone, Copy, ValueEnum)]
enum AuditResultsArg {
    Digest,
    Full,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of an audit log: detects edited, removed, reordered or truncated records.
    Verify {
        /// The log file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Run the policy test cases (policies/tests/*.json by default); prints `N passed, M failed`.
    Test {
        #[command(flatten)]
        source: PolicySource,
        /// Folder of case files.
        #[arg(long, default_value = "policies/tests")]
        cases: PathBuf,
    },
    /// Decide one request. Either a request file with the facts ({principal, action,
    /// resource, facts}; `-` reads stdin), or --tool and --args: the facts are then gathered from
    /// the cluster (--sandbox, or the kubeconfig) by the tool's own plan step, as a dry run.
    Check {
        /// The request file (with the facts).
        #[arg(conflicts_with_all = ["tool", "args"])]
        request: Option<PathBuf>,
        /// A mutating tool, e.g. scale_deployment.
        #[arg(long, requires = "args")]
        tool: Option<String>,
        /// The tool's arguments as JSON, e.g. '{"namespace":"shop","name":"checkout","replicas":9}'.
        #[arg(long, requires = "tool")]
        args: Option<String>,
        /// Decide as if a human approved (escalations lifted, hard rules kept); request files only.
        #[arg(long, conflicts_with = "tool")]
        approved: bool,
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Use the embedded sandbox cluster instead of a real one.
    #[arg(long)]
    sandbox: bool,
    /// Scenario file for the sandbox (default: the built-in incident scenario).
    #[arg(long, requires = "sandbox")]
    scenario: Option<PathBuf>,
    /// Print the sandbox kubeconfig to stderr at startup (point kubectl at it).
    #[arg(long, requires = "sandbox")]
    print_kubeconfig: bool,
    /// Write the sandbox kubeconfig to this file at startup.
    #[arg(long, requires = "sandbox")]
    kubeconfig_out: Option<PathBuf>,
    /// Serve Streamable HTTP (/mcp), legacy SSE (/sse, /message) and /healthz on this address instead of stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// File holding the bearer token HTTP clients must send (required for a non-loopback --http).
    #[arg(long)]
    auth_token_file: Option<PathBuf>,
    /// Bearer token for HTTP clients (prefer --auth-token-file; the variable keeps it out of `ps`).
    #[arg(
        long = "auth-token-env-only",
        hide = true,
        env = "EKS_OPS_MCP_AUTH_TOKEN"
    )]
    auth_token_env: Option<String>,
    /// Extra Host header value to accept over HTTP (repeatable); loopback names are always accepted.
    #[arg(long = "allowed-host")]
    allowed_hosts: Vec<String>,
    /// Extra Origin to accept over HTTP (repeatable), e.g. https://console.example.com.
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// Largest JSON-RPC message accepted, in bytes: an HTTP request body, or a line on stdin.
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=1 << 30))]
    max_message_bytes: u64,
    /// Most HTTP connections open at once; further clients wait until one closes.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    http_max_connections: u64,
    /// Seconds a client has to send a request's headers; also how long an idle kept-alive
    /// connection stays open.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    http_header_timeout: u64,
    /// Seconds a client has to send a whole request body.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    http_body_timeout: u64,
    /// Most MCP sessions open at once over HTTP (Streamable HTTP and legacy SSE each).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    http_max_sessions: u64,
    /// Seconds after which an HTTP MCP session without requests is closed.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    http_session_idle_timeout: u64,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long)]
    context: Option<String>,
    /// Read-only mode: mutating tools are not even listed.
    #[arg(long)]
    read_only: bool,
    /// Shadow mode: every mutation is a server-side dry run; decisions are still made and recorded.
    #[arg(long, conflicts_with = "read_only")]
    dry_run_only: bool,
    /// Only these namespaces (comma-separated); tools refuse others.
    #[arg(long, value_delimiter = ',')]
    namespaces: Option<Vec<String>>,
    #[command(flatten)]
    policy: PolicySource,
    /// kubectl verbs agents may use (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "get,describe,logs,top,rollout,scale,delete,cordon,drain"
    )]
    allowed_verbs: Vec<String>,
    /// Highest replica count any action may set.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    replica_ceiling: i64,
    /// Audit log file (JSON Lines, hash-chained); `-` writes to stderr. Default:
    /// $XDG_STATE_HOME/eks-ops-mcp/audit.jsonl (~/.local/state/eks-ops-mcp/audit.jsonl).
    #[arg(long, env = "EKS_OPS_MCP_AUDIT_LOG")]
    audit_log: Option<String>,
    /// When an audit record cannot be written (a full disk): `refuse` every call (default), or
    /// `reads-continue`: answer reads with a warning in the server's log. Mutations are always refused.
    #[arg(long, value_enum, default_value_t = AuditFailureArg::Refuse)]
    audit_failure: AuditFailureArg,
    /// What a read's audit record keeps of the result: `digest` (SHA-256 and size) or `full`.
    #[arg(long, value_enum, default_value_t = AuditResultsArg::Digest)]
    audit_results: AuditResultsArg,
    /// Rotate the audit log file into FILE.1, FILE.2, … when it reaches this many bytes (0: never).
    #[arg(long, default_value_t = audit::DEFAULT_MAX_BYTES)]
    audit_max_bytes: u64,
    /// Prometheus HTTP API base URL (self-managed Prometheus, or an AMP workspace URL with --amp).
    #[arg(long, env = "EKS_OPS_MCP_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Sign Prometheus requests with SigV4 for Amazon Managed Service for Prometheus (service aps).
    #[arg(long, requires = "prometheus_url")]
    amp: bool,
    /// Read CloudWatch (region and credentials from the standard AWS configuration).
    #[arg(long)]
    cloudwatch: bool,
    /// CloudWatch endpoint override (VPC endpoints, tests); implies --cloudwatch.
    #[arg(long)]
    cloudwatch_endpoint: Option<String>,
    /// The cluster's name in Container Insights (its ClusterName dimension): with
    /// --namespaces, CloudWatch metrics and alarms of other clusters are refused.
    #[arg(long)]
    cloudwatch_cluster_name: Option<String>,
    /// AWS region (default: from the AWS configuration).
    #[arg(long, env = "AWS_REGION")]
    aws_region: Option<String>,
    /// AWS profile (default: from the AWS configuration).
    #[arg(long, env = "AWS_PROFILE")]
    aws_profile: Option<String>,
    /// Timeout of every metrics request, in seconds.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=300))]
    metrics_timeout: u64,
    /// Where issued forecasts are kept for forecast_accuracy (default: forecasts.jsonl in the state folder).
    #[arg(long, env = "EKS_OPS_MCP_FORECAST_STORE")]
    forecast_store: Option<String>,
    /// How long a human has to answer an approval request (MCP elicitation), in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(5..=3600))]
    approval_timeout: u64,
    /// Longest a tool call may take, in seconds (a mutating call also gets the approval time).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    call_timeout: u64,
}

#[derive(Args)]
struct ForecastJobArgs {
    /// The Deployment, as namespace/name.
    #[arg(long)]
    deployment: String,
    /// PromQL giving the Deployment's total load (e.g. its request rate).
    #[arg(long)]
    promql: Option<String>,
    /// A CloudWatch query as JSON ({namespace, metric_name, dimensions, stat} or {expression, metrics}).
    #[arg(long)]
    cloudwatch_query: Option<String>,
    /// Load one pod handles at 100%, in the metric's units.
    #[arg(long)]
    capacity_per_pod: f64,
    /// Fraction of a pod's capacity to plan for (default: the HPA's CPU target, else 0.7).
    #[arg(long)]
    target_utilization: Option<f64>,
    /// How far ahead to provision.
    #[arg(long, default_value = "30m")]
    lead: String,
    /// Interval level whose upper bound is provisioned for (default 0.8: the 90th percentile;
    /// 0.9 is safer and costs more replicas, see BENCHMARKS.md).
    #[arg(long)]
    level: Option<f64>,
    /// History to forecast from (less is used when the metric store keeps less).
    #[arg(long, default_value = "21d")]
    history: String,
    /// Resolution of the history.
    #[arg(long, default_value = "5m")]
    step: String,
    /// Make the proposed call (scale_deployment or adjust_hpa) through the guard.
    #[arg(long)]
    apply: bool,
    /// `table` (readable) or `json`.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Args)]
struct SandboxArgs {
    /// Scenario file (default: the built-in incident scenario).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Address for the Kubernetes API.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write the kubeconfig to this file instead of stdout.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
}

fn load_scenario(path: Option<&PathBuf>) -> Result<Scenario, String> {
    match path {
        Some(p) => Scenario::load(p).map_err(|e| e.to_string()),
        None => Scenario::builtin().map_err(|e| format!("built-in scenario: {e}")),
    }
}

fn write_kubeconfig(path: &PathBuf, text: &str) -> Result<(), String> {
    std::fs::write(path, text)
        .map_err(|e| format!("cannot write kubeconfig to {}: {e}", path.display()))
}

async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}

/// `$XDG_STATE_HOME/eks-ops-mcp`, else `~/.local/state/eks-ops-mcp`, else the working folder.
fn state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map_or_else(|| PathBuf::from("."), |d| d.join("eks-ops-mcp"))
}

/// The default audit log: `audit.jsonl` in the state folder.
fn default_audit_log() -> String {
    state_dir().join("audit.jsonl").display().to_string()
}

/// The metric sources the flags configure (the sandbox's own Prometheus with --sandbox).
async fn metrics_sources(
    args: &ServeArgs,
    sandbox_prometheus: Option<String>,
) -> Result<Metrics, String> {
    let timeout = Duration::from_secs(args.metrics_timeout);
    let prometheus = match (&args.prometheus_url, sandbox_prometheus) {
        (Some(url), _) => {
            let amp = if args.amp {
                Some(
                    amp_from_env(args.aws_region.clone(), args.aws_profile.clone())
                        .await
                        .map_err(|e| e.to_string())?,
                )
            } else {
                None
            };
            Some(PrometheusClient::new(url, amp, timeout).map_err(|e| e.to_string())?)
        }
        (None, Some(url)) => {
            Some(PrometheusClient::new(&url, None, timeout).map_err(|e| e.to_string())?)
        }
        (None, None) => None,
    };
    let cloudwatch = if args.cloudwatch || args.cloudwatch_endpoint.is_some() {
        Some(
            CloudWatchClient::new(
                args.aws_region.clone(),
                args.aws_profile.clone(),
                args.cloudwatch_endpoint.clone(),
                timeout,
            )
            .await
            .map(|c| match &args.cloudwatch_cluster_name {
                Some(name) => c.with_cluster_name(name),
                None => c,
            })
            .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    Ok(Metrics {
        prometheus,
        cloudwatch,
    })
}

/// A bearer token must be long enough not to be guessed.
fn checked_token(token: &str, what: &str) -> Result<String, String> {
    if token.chars().count() < 16 {
        return Err(format!(
            "{what} is shorter than 16 characters; use a long random token (e.g. openssl rand -hex 32)"
        ));
    }
    Ok(token.to_string())
}

/// Build the server the flags describe; the sandbox (if any) lives as long as the returned handle.
async fn build_server(args: &ServeArgs) -> Result<(EksOpsServer, Option<Sandbox>), String> {
    let mut _sandbox = None;
    let mut sandbox_prometheus = None;
    let cluster = if args.sandbox {
        let scenario = load_scenario(args.scenario.as_ref())?;
        let sb = Sandbox::start(&scenario, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| e.to_string())?;
        if args.print_kubeconfig {
            note!("{}", sb.kubeconfig());
        }
        if let Some(p) = &args.kubeconfig_out {
            write_kubeconfig(p, &sb.kubeconfig())?;
        }
        let cluster = sb
            .cluster()
            .map_err(|e| format!("cannot build a client for the sandbox: {e}"))?;
        sandbox_prometheus = Some(sb.prometheus_url());
        _sandbox = Some(sb);
        cluster
    } else {
        Cluster::from_kubeconfig(args.kubeconfig.as_deref(), args.context.as_deref())
            .await
            .map_err(|e| e.to_string())?
    };
    let audit_target = args.audit_log.clone().unwrap_or_else(default_audit_log);
    let options = AuditOptions {
        failure: match args.audit_failure {
            AuditFailureArg::Refuse => AuditFailurePolicy::RefuseAll,
            AuditFailureArg::ReadsContinue => AuditFailurePolicy::AllowReads,
        },
        results: match args.audit_results {
            AuditResultsArg::Digest => ResultMode::Digest,
            AuditResultsArg::Full => ResultMode::Full,
        },
        max_bytes: Some(args.audit_max_bytes).filter(|&n| n > 0),
    };
    let audit = Arc::new(AuditLog::open_with(&audit_target, options).map_err(|e| e.to_string())?);
    tracing::info!(audit = audit.target(), "recording every tool call");
    let mut ctx = ToolContext::new(cluster)
        .with_metrics(Arc::new(metrics_sources(args, sandbox_prometheus).await?));
    if !args.read_only {
        let engine = args.policy.load()?;
        tracing::info!(policies = engine.len(), "policies loaded and validated");
        let config = GuardConfig {
            allowed_verbs: args.allowed_verbs.clone(),
            replica_ceiling: args.replica_ceiling,
            dry_run_only: args.dry_run_only,
            namespaces: args.namespaces.clone(),
            ..GuardConfig::default()
        };
        ctx = ctx.with_guard(Arc::new(Guard::new(
            Arc::new(engine),
            audit.clone(),
            config,
        )));
    }
    if let Some(ns) = &args.namespaces {
        ctx = ctx.with_scope(ns.clone());
    }
    let forecast_store = args
        .forecast_store
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| state_dir().join("forecasts.jsonl"));
    ctx = ctx.with_forecast_store(Arc::new(ForecastStore::new(forecast_store)));
    let settings = ServerSettings {
        call_timeout: Duration::from_secs(args.call_timeout),
        audit: Some(audit),
        approval_timeout: Duration::from_secs(args.approval_timeout),
    };
    let tools = tools::all()
        .into_iter()
        .filter(|t| !args.read_only || tools::is_read_only(t))
        .collect();
    Ok((EksOpsServer::with_tools(ctx, settings, tools), _sandbox))
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let (server, _sandbox) = build_server(&args).await?;
    let Some(addr) = args.http else {
        let max_line = usize::try_from(args.max_message_bytes).unwrap_or(usize::MAX);
        return transport::stdio::serve_stdio_with_limit(server, max_line)
            .await
            .map_err(|e| e.to_string());
    };
    let auth_token = match (&args.auth_token_file, &args.auth_token_env) {
        (Some(f), _) => {
            let t = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read --auth-token-file {}: {e}", f.display()))?;
            Some(checked_token(
                t.trim(),
                &format!("the token in {}", f.display()),
            )?)
        }
        (None, Some(t)) if !t.trim().is_empty() => {
            Some(checked_token(t.trim(), "EKS_OPS_MCP_AUTH_TOKEN")?)
        }
        _ => None,
    };
    let settings = HttpSettings {
        bind: Some(addr),
        auth_token,
        allowed_hosts: args.allowed_hosts,
        allowed_origins: args.allowed_origins,
        limits: ConnectionLimits {
            max_connections: usize::try_from(args.http_max_connections).unwrap_or(usize::MAX),
            header_read_timeout: Duration::from_secs(args.http_header_timeout),
            body_read_timeout: Duration::from_secs(args.http_body_timeout),
            ..ConnectionLimits::default()
        },
        max_body_bytes: usize::try_from(args.max_message_bytes).unwrap_or(usize::MAX),
        max_sessions: usize::try_from(args.http_max_sessions).unwrap_or(usize::MAX),
        session_idle_timeout: Duration::from_secs(args.http_session_idle_timeout),
    };
    let listener = transport::http::bind(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%local, "serving MCP over HTTP: /mcp (Streamable HTTP), /sse + /message (legacy SSE), /healthz");
    // A machine-readable line on stderr so scripts and tests can find the port.
    note!("eks-ops-mcp listening on http://{local}");
    let token = CancellationToken::new();
    tokio::spawn(shutdown_signal(token.clone()));
    transport::http::serve(listener, server, settings, token)
        .await
        .map_err(|e| e.to_string())
}

/// The predictive scaler as a job (e.g. a Kubernetes CronJob every 15 minutes): history →
/// forecast → recommendation → (with --apply) the proposed call, through the guard.
async fn forecast_job(job: ForecastJobArgs) -> Result<(), String> {
    let (ns, name) = job.deployment.split_once('/').ok_or_else(|| {
        format!(
            "--deployment {:?} must be written namespace/name",
            job.deployment
        )
    })?;
    let query = match (&job.promql, &job.cloudwatch_query) {
        (Some(q), None) => serde_json::json!({"source": "prometheus", "promql": q}),
        (None, Some(cw)) => {
            let cw: serde_json::Value = serde_json::from_str(cw)
                .map_err(|e| format!("--cloudwatch-query is not JSON: {e}"))?;
            serde_json::json!({"source": "cloudwatch", "cloudwatch": cw})
        }
        _ => return Err(
            "give the load history with --promql QUERY or --cloudwatch-query JSON (exactly one)"
                .into(),
        ),
    };
    let (server, _sandbox) = build_server(&job.serve).await?;
    let mut args = serde_json::json!({
        "namespace": ns, "name": name, "capacity_per_pod": job.capacity_per_pod, "lead": job.lead,
        "history": {"query": query, "window": {"last": job.history, "step": job.step}},
    });
    if let Some(u) = job.target_utilization {
        args["target_utilization"] = serde_json::json!(u);
    }
    if let Some(level) = job.level {
        args["level"] = serde_json::json!(level);
    }
    let caller = Caller {
        principal: "eks-ops-mcp-forecast-job".into(),
        approver: Arc::new(NoApprover),
    };
    let call = |tool: &'static str, args: serde_json::Value| {
        let server = server.clone();
        let caller = caller.clone();
        async move {
            let args = args.as_object().cloned().unwrap_or_default();
            let r = server
                .call_as(tool, args, caller)
                .await
                .map_err(|e| e.message.to_string())?;
            let text: Vec<String> = r
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect();
            if r.is_error == Some(true) {
                return Err(format!("{tool} failed: {}", text.join("\n")));
            }
            Ok::<_, String>((r.structured_content.unwrap_or_default(), text.join("\n")))
        }
    };
    let (rec, rec_text) = call("recommend_replicas", args).await?;
    let mut report = serde_json::json!({"recommendation": rec});
    let mut exit = Ok(());
    if job.apply {
        if let (Some(tool), Some(arguments)) = (
            rec["call"]["tool"].as_str(),
            rec.get("call").map(|c| c["arguments"].clone()),
        ) {
            let tool: &'static str = match tool {
                "scale_deployment" => "scale_deployment",
                "adjust_hpa" => "adjust_hpa",
                other => return Err(format!("unexpected proposed tool {other}")),
            };
            let (applied, applied_text) = call(tool, arguments).await?;
            if applied["status"] != "applied" {
                exit = Err(format!(
                    "the proposed {tool} was not applied: {applied_text}"
                ));
            }
            report["applied"] = applied;
            if job.output != "json" {
                println!("{rec_text}\n{applied_text}");
            }
        } else if job.output != "json" {
            println!("{rec_text}\nnothing to apply");
        }
    } else if job.output != "json" {
        println!("{rec_text}\n(dry: add --apply to make the proposed call)");
    }
    if job.output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    }
    exit
}

async fn sandbox(args: SandboxArgs) -> Result<(), String> {
    let scenario = load_scenario(args.scenario.as_ref())?;
    let sb = Sandbox::start(&scenario, args.listen)
        .await
        .map_err(|e| e.to_string())?;
    match &args.kubeconfig_out {
        Some(p) => write_kubeconfig(p, &sb.kubeconfig())?,
        None => println!("{}", sb.kubeconfig()),
    }
    note!(
        "sandbox cluster {:?} serving the Kubernetes API on {}",
        sb.scenario_name(),
        sb.url()
    );
    let token = CancellationToken::new();
    shutdown_signal(token.clone()).await;
    sb.stop();
    Ok(())
}

/// `policy check --tool --args`: the tool's plan step gathers the facts from the cluster and
/// the policies decide; the call is sent as a dry run, so nothing changes.
async fn check_call(tool: &str, args: &str, serve: &ServeArgs) -> Result<(), String> {
    let mut arguments: serde_json::Value =
        serde_json::from_str(args).map_err(|e| format!("--args is not JSON: {e}"))?;
    let obj = arguments
        .as_object_mut()
        .ok_or("--args must be a JSON object")?;
    obj.insert("dry_run".into(), serde_json::Value::Bool(true));
    let (server, _sandbox) = build_server(serve).await?;
    let def = server
        .tool_defs()
        .into_iter()
        .find(|d| d.name == tool)
        .ok_or_else(|| format!("no tool {tool:?}"))?;
    if def.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true) {
        return Err(format!("{tool} only reads; policies decide mutating tools"));
    }
    let caller = Caller {
        principal: "policy-check".into(),
        approver: Arc::new(NoApprover),
    };
    let r = server
        .call_as(tool, obj.clone(), caller)
        .await
        .map_err(|e| e.message.to_string())?;
    let text: Vec<String> = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    if r.is_error == Some(true) {
        return Err(text.join("\n"));
    }
    let report = r.structured_content.unwrap_or_default();
    let out = serde_json::json!({
        "decision": report["decision"], "facts": report["facts"], "target": report["target"],
        "plan": {"summary": report["summary"], "changes": report["changes"]},
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
    );
    Ok(())
}

async fn policy(cmd: PolicyCommand) -> Result<(), String> {
    match cmd {
        PolicyCommand::Test { source, cases } => {
            let engine = source.load()?;
            let results = policy::cases::run_dir(&engine, &cases).map_err(|e| e.to_string())?;
            let failed = results.iter().filter(|r| !r.passed).count();
            for r in &results {
                let file = std::path::Path::new(&r.file)
                    .file_name()
                    .map_or(r.file.clone(), |f| f.to_string_lossy().into_owned());
                println!(
                    "{} {file}: {} — {}",
                    if r.passed { "ok  " } else { "FAIL" },
                    r.name,
                    r.detail
                );
            }
            println!("{} passed, {failed} failed", results.len() - failed);
            if failed > 0 {
                return Err(format!("{failed} policy case(s) failed"));
            }
            Ok(())
        }
        PolicyCommand::Check {
            tool: Some(tool),
            args: Some(args),
            serve,
            ..
        } => check_call(&tool, &args, &serve).await,
        PolicyCommand::Check {
            request,
            approved,
            serve,
            ..
        } => {
            let request = request.ok_or("give a request file, or --tool and --args")?;
            let engine = serve.policy.load()?;
            let text = if request.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| format!("cannot read stdin: {e}"))?
            } else {
                std::fs::read_to_string(&request)
                    .map_err(|e| format!("cannot read {}: {e}", request.display()))?
            };
            let req: policy::PolicyRequest = serde_json::from_str(&text)
                .map_err(|e| format!("the request is not valid: {e}; expected {{principal, action, resource: {{kind, namespace, name, labels}}, facts}}"))?;
            let decision = if approved {
                engine.decide_approved(&req)
            } else {
                engine.decide(&req)
            }
            .map_err(|e| e.to_string())?;
            let text = serde_json::to_string_pretty(&decision).map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(())
        }
    }
}

fn print_tools(write: Option<PathBuf>) -> Result<(), String> {
    let defs: Vec<_> = tools::all().into_iter().map(|t| t.def).collect();
    match write {
        None => {
            let text = serde_json::to_string_pretty(&defs).map_err(|e| e.to_string())?;
            println!("{text}");
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            for d in defs {
                let path = dir.join(format!("{}.json", d.name));
                let text = serde_json::to_string_pretty(&d).map_err(|e| e.to_string())? + "\n";
                std::fs::write(&path, text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // every record masked and bounded (crates log what they like: kube logs a whole API
        // response when it cannot parse it), and a failed write dropped, never fatal
        .with_writer(eks_ops_mcp::redact::RedactingWriter)
        .with_ansi(false)
        // on a failed write tracing would report it with eprintln!, which panics
        .log_internal_errors(false)
        .init();
    // One TLS crypto provider for every client (kube today, AWS SDKs later).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            note!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Sandbox(args) => sandbox(args).await,
            Command::Policy { command } => policy(command).await,
            Command::Forecast(job) => forecast_job(*job).await,
            Command::Audit {
                command: AuditCommand::Verify { file },
            } => {
                let v = audit::verify(&file).map_err(|e| e.to_string())?;
                println!("{}", verify_report(&file, &v));
                Ok(())
            }
            Command::Tools { write } => print_tools(write),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `audit verify` prints for an intact log.
fn verify_report(file: &std::path::Path, v: &audit::Verified) -> String {
    let mut out = format!(
        "{}: {} records in {} file{}, chain intact{}; last hash {}",
        file.display(),
        v.records,
        v.segments,
        if v.segments == 1 { "" } else { "s" },
        if v.head_checked {
            ", head matches"
        } else {
            " (no head file to check the end against)"
        },
        v.last_hash
    );
    if v.past_head > 0 {
        out.push_str(&format!(
            "\n{} record(s) were added after the head was last updated (normal for reads; not \
             tampering, but their removal could not be detected)",
            v.past_head
        ));
    }
    if let Some(t) = &v.torn_tail {
        out.push_str(&format!(
            "\nthe last record is incomplete, as a crash leaves it: {t}; the next server to open \
             the log moves it to the quarantine file"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
