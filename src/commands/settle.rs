//! `wallet settle`: apply pending transfers, oldest first, each exactly once.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::Context;
use crate::cli::SettleArgs;
use crate::error::Result;
use crate::ledger::{SettleOptions, SettleSummary};
use crate::report::{Human, Report};

#[derive(Serialize)]
struct Settled {
    processed: u64,
    completed: u64,
    failed: u64,
    remaining: u64,
}

pub fn run(context: &Context, args: SettleArgs) -> Result<Report> {
    let mut ledger = context.open_or_create()?;
    let options = SettleOptions {
        limit: args.limit,
        batch_size: usize::try_from(args.batch_size).unwrap_or(usize::MAX),
    };
    let progress = if context.show_progress {
        let pending = ledger.pending_count()?;
        let total = args.limit.map_or(pending, |limit| limit.min(pending));
        progress_bar(total, args.batch_size)
    } else {
        ProgressBar::hidden()
    };
    let summary = ledger.settle(&options, |so_far| progress.set_position(so_far.processed))?;
    progress.finish_and_clear();
    let SettleSummary {
        processed,
        completed,
        failed,
        remaining,
    } = summary;
    let line = format!(
        "settled {processed} transfer{}: {completed} completed, {failed} failed, {remaining} still pending",
        if processed == 1 { "" } else { "s" }
    );
    Ok(Report::new(
        Settled {
            processed,
            completed,
            failed,
            remaining,
        },
        Human::Line(line),
    ))
}

/// A bar only when there is more than one batch to wait for.
fn progress_bar(total: u64, batch_size: u64) -> ProgressBar {
    if total <= batch_size {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("settling {bar:40} {pos}/{len} transfers ({per_sec}, {eta})")
    {
        bar.set_style(style);
    }
    bar
}
