//! `uncordon_node`: make a node schedulable again.

use super::cordon_node::{Args, SetSchedulable};
use super::{Tool, ToolContext};
use crate::error::ToolError;
use crate::guard::MutationReport;

/// The `uncordon_node` tool.
pub struct UncordonNode;

impl Tool for UncordonNode {
    const NAME: &'static str = "uncordon_node";
    const TITLE: &'static str = "Uncordon a node";
    const DESCRIPTION: &'static str = "Make a cordoned node schedulable again. Never automatic (a human approves), and `uncordon` is not in the default verb allow-list. dry_run=true changes nothing.";
    const READ_ONLY: bool = false;
    const DESTRUCTIVE: bool = false;
    const IDEMPOTENT: bool = true;
    type Args = Args;
    type Output = MutationReport;

    async fn run(ctx: ToolContext, args: Args) -> Result<MutationReport, ToolError> {
        SetSchedulable {
            args,
            unschedulable: false,
        }
        .run(&ctx)
        .await
    }

    fn summary(out: &MutationReport) -> String {
        out.text()
    }
}
