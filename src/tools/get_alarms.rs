//! `get_alarms`: CloudWatch alarms with their state, reason and the metric behind them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::bounded;
use super::{Tool, ToolContext};
use crate::error::ToolError;
use crate::metrics::MetricsError;
use crate::metrics::cloudwatch::Alarm;
use crate::metrics::cloudwatch_scope::alarm_in_scope;

/// Most alarms returned (and read, on a scoped server, before filtering).
pub const MAX_LIMIT: u32 = 500;

/// Arguments of `get_alarms`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Only alarms in this state: ALARM, INSUFFICIENT_DATA or OK.
    #[serde(default)]
    pub state: Option<String>,
    /// Only alarms whose name starts with this.
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// Alarms at most (1–500, default 50).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// Result of `get_alarms`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// The CloudWatch endpoint asked.
    pub endpoint: String,
    /// The alarms, sorted by name.
    pub alarms: Vec<Alarm>,
    /// On a namespace-scoped server: alarms left out because they watch metrics that are
    /// not limited to its namespaces (see the README on --namespaces).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_scope: Option<usize>,
}

/// The `get_alarms` tool.
pub struct GetAlarms;

impl Tool for GetAlarms {
    const NAME: &'static str = "get_alarms";
    const TITLE: &'static str = "Get CloudWatch alarms";
    const DESCRIPTION: &'static str = "CloudWatch alarms (DescribeAlarms), filtered by state (ALARM, INSUFFICIENT_DATA, OK) and name prefix: state and the reason CloudWatch gives, the metric behind each alarm with threshold and comparison, and for metric-math and anomaly-detection alarms the metrics and expressions evaluated. On a namespace-scoped server only alarms on Container Insights metrics of its namespaces are listed.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        let limit = bounded("limit", args.limit, 50, MAX_LIMIT)? as usize;
        let cw = ctx.metrics()?.cloudwatch.as_ref().ok_or_else(|| {
            ToolError::from(MetricsError::NotConfigured(
                "CloudWatch is not configured; start the server with --cloudwatch (region from the AWS configuration or --aws-region)".into(),
            ))
        })?;
        // On a scoped server an alarm is shown only when every metric it watches is a
        // Container Insights metric of an allowed namespace (and its expressions compute
        // over those only): state reasons quote the values, and composite alarms or alarms
        // on other metrics would tell about namespaces the server may not read. Filtering
        // (rather than refusing the tool) keeps it useful for the namespaces it may read;
        // the count left out says that filtering happened. Read as many as allowed, so
        // that the filter does not shrink the page more than needed.
        let (alarms, out_of_scope) = match ctx.scope.as_deref() {
            None => (cw.alarms(args.state, args.name_prefix, limit).await?, None),
            Some(allowed) => {
                let all = cw
                    .alarms(args.state, args.name_prefix, MAX_LIMIT as usize)
                    .await?;
                let total = all.len();
                let mut kept: Vec<Alarm> = all
                    .into_iter()
                    .filter(|a| alarm_in_scope(a, allowed, cw.cluster_name()))
                    .collect();
                let hidden = total - kept.len();
                kept.truncate(limit);
                (kept, Some(hidden))
            }
        };
        Ok(Output {
            endpoint: cw.endpoint().to_string(),
            alarms,
            out_of_scope,
        })
    }

    const UNTRUSTED: &'static [&'static str] = &["/alarms/*/state_reason", "/alarms/*/description"];

    fn summary(out: &Output) -> String {
        let firing = out.alarms.iter().filter(|a| a.state == "ALARM").count();
        let mut s = format!("{} alarm(s), {firing} in ALARM.", out.alarms.len());
        if let Some(n) = out.out_of_scope.filter(|n| *n > 0) {
            s.push_str(&format!(
                " {n} alarm(s) left out: they watch metrics outside this server's namespaces."
            ));
        }
        for a in out.alarms.iter().filter(|a| a.state == "ALARM").take(8) {
            s.push_str(&format!("\n{}", a.name));
        }
        s
    }
}
