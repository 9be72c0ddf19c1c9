//! `wallet settle`: apply pending transfers, oldest first, each exactly once;
//! with `--watch`, keep doing so as a worker until SIGINT or SIGTERM.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use indicatif::HumanCount;
use serde::Serialize;

mod shown;

use super::Context;
use crate::cli::SettleArgs;
use crate::error::{Result, WalletError};
use crate::ledger::worker::{self, Plan};
use crate::ledger::{SettleStopped, SettleSummary};
use crate::output::{Human, Report, plural};
use shown::Shown;

#[derive(Serialize)]
struct Settled {
    processed: u64,
    completed: u64,
    failed: u64,
    /// `null` when it could not be counted.
    remaining: Option<u64>,
    /// Holds found past their expiry and marked EXPIRED.
    expired: u64,
}

pub(super) fn run(context: &Context, args: SettleArgs) -> Result<Report> {
    let stop = if args.watch {
        Some(on_signals()?)
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

/// A flag set by SIGINT, SIGTERM or SIGHUP: a worker finishes the batch in
/// hand, then stops.
fn on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|e| {
            WalletError::Io(anyhow::Error::new(e).context("cannot install a signal handler"))
        })?;
    }
    Ok(stop)
}

/// An error after some batches committed: those batches are the output,
/// so a script can tell what was applied; the error says why it stopped
/// and that those batches stay.
fn stopped_part_way(stopped: SettleStopped) -> WalletError {
    let SettleSummary {
        processed, expired, ..
    } = stopped.done;
    if processed == 0 && expired == 0 {
        return stopped.error;
    }
    let mut committed = format!(
        "before it, {processed} transfer{} had been settled and committed",
        plural(processed)
    );
    if expired > 0 {
        committed.push_str(&format!(
            " and {expired} expired hold{} marked",
            plural(expired)
        ));
    }
    committed.push_str(
        " (the summary on stdout); `wallet settle` again is safe: it applies each transfer once",
    );
    WalletError::StoppedPartWay {
        done: Box::new(report(stopped.done)),
        error: Box::new(stopped.error),
        committed,
    }
}

fn report(summary: SettleSummary) -> Report {
    let SettleSummary {
        processed,
        completed,
        failed,
        expired,
        remaining,
    } = summary;
    // Counts for people, written as the progress bar writes them; JSON keeps numbers.
    let mut line = format!(
        "settled {} transfer{}: {} completed, {} failed, {}",
        HumanCount(processed),
        plural(processed),
        HumanCount(completed),
        HumanCount(failed),
        match remaining {
            Some(remaining) => format!("{} still pending", HumanCount(remaining)),
            None => "how many are still pending could not be read".to_string(),
        }
    );
    if expired > 0 {
        line.push_str(&format!(
            "; {} expired hold{} marked",
            HumanCount(expired),
            plural(expired)
        ));
    }
    let report = Report::new(
        Settled {
            processed,
            completed,
            failed,
            remaining,
            expired,
        },
        Human::Line(line),
    );
    if processed == 0 && expired == 0 {
        return report;
    }
    report.committed(
        format!(
            "the settlement of {processed} transfer{}",
            plural(processed)
        ),
        "`wallet settle` again is safe: it applies each transfer once",
    )
}
