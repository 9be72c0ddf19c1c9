//! `wallet settle`: apply pending transfers, oldest first, each exactly once;
//! with `--watch`, keep doing so as a worker until SIGINT or SIGTERM.

use std::time::Duration;

mod shown;

use super::Context;
use crate::cli::SettleArgs;
use crate::error::Result;
use crate::ledger::worker::{self, Plan};
use crate::output::Report;
use crate::output::settle_report::{report, stopped_part_way};
use shown::Shown;

pub(super) fn run(context: &Context, args: SettleArgs) -> Result<Report> {
    let stop = if args.watch {
        Some(super::signals::on_signals()?)
    } else {
        None
    };
    let plan = Plan {
        limit: args.limit,
        batch_size: args
            .batch_size
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        workers: usize::try_from(args.workers).unwrap_or(1),
        watch: args.watch.then(|| Duration::from_millis(args.interval)),
        stop,
    };
    let shown = Shown::new(context.show_progress && !args.watch, context.json_errors);
    let settled = worker::settle(&context.db, &context.open_options, &plan, &shown);
    shown.finish();
    match settled {
        Ok(summary) => Ok(report(summary)),
        Err(stopped) => Err(stopped_part_way(stopped)),
    }
}
