//! `uncordon_node`: make a node schedulable again.

use super::common::check_name;
use super::cordon_node::{Args, SetSchedulable, refuse_when_scoped};
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
        refuse_when_scoped(&ctx, Self::NAME)?;
        check_name("name", &args.name)?;
        ctx.guard()?
            .run(
                &ctx.cluster,
                &ctx.caller,
                &SetSchedulable {
                    args,
                    unschedulable: false,
                },
            )
            .await
    }

    fn summary(out: &MutationReport) -> String {
        out.text()
    }
}
