//! `get_alarms`: CloudWatch alarms with their state, reason and the metric behind them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::bounded;
use super::{Tool, ToolContext};
use crate::error::ToolError;
use crate::metrics::MetricsError;
use crate::metrics::cloudwatch::Alarm;

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
}

/// The `get_alarms` tool.
pub struct GetAlarms;

impl Tool for GetAlarms {
    const NAME: &'static str = "get_alarms";
    const TITLE: &'static str = "Get CloudWatch alarms";
    const DESCRIPTION: &'static str = "CloudWatch alarms (DescribeAlarms), filtered by state (ALARM, INSUFFICIENT_DATA, OK) and name prefix: state and the reason CloudWatch gives, the metric behind each alarm with threshold and comparison, and for metric-math and anomaly-detection alarms the metrics and expressions evaluated.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        let limit = bounded("limit", args.limit, 50, 500)? as usize;
        let cw = ctx.metrics()?.cloudwatch.as_ref().ok_or_else(|| {
            ToolError::from(MetricsError::NotConfigured(
                "CloudWatch is not configured; start the server with --cloudwatch (region from the AWS configuration or --aws-region)".into(),
            ))
        })?;
        let alarms = cw.alarms(args.state, args.name_prefix, limit).await?;
        Ok(Output {
            endpoint: cw.endpoint().to_string(),
            alarms,
        })
    }

    const UNTRUSTED: &'static [&'static str] = &["/alarms/*/state_reason", "/alarms/*/description"];

    fn summary(out: &Output) -> String {
        let firing = out.alarms.iter().filter(|a| a.state == "ALARM").count();
        let mut s = format!("{} alarm(s), {firing} in ALARM.", out.alarms.len());
        for a in out.alarms.iter().filter(|a| a.state == "ALARM").take(8) {
            s.push_str(&format!("\n{}", a.name));
        }
        s
    }
}
