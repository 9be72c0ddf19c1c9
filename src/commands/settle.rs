//! `wallet settle`: apply pending transfers, oldest first, each exactly once;
//! with `--watch`, keep doing so as a worker until SIGINT or SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::Context;
use crate::cli::SettleArgs;
use crate::error::{Result, WalletError};
use crate::ledger::{Ledger, SettleOptions, SettleSummary};
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
    let batch_size = usize::try_from(args.batch_size).unwrap_or(usize::MAX);
    if args.watch {
        let summary = watch(
            &mut ledger,
            batch_size,
            Duration::from_millis(args.interval),
        )?;
        return Ok(report(summary));
    }
    let options = SettleOptions {
        limit: args.limit,
        batch_size,
        stop: None,
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
    Ok(report(summary))
}

/// Drains the queue again and again, sleeping `interval` whenever it is
/// empty, until SIGINT or SIGTERM. A signal is only noted; the batch in
/// hand commits before the loop looks at it.
fn watch(ledger: &mut Ledger, batch_size: usize, interval: Duration) -> Result<SettleSummary> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|e| {
            WalletError::Io(anyhow::Error::new(e).context("cannot install a signal handler"))
        })?;
    }
    let options = SettleOptions {
        limit: None,
        batch_size,
        stop: Some(Arc::clone(&stop)),
    };
    let mut total = SettleSummary::default();
    while !stop.load(Ordering::Relaxed) {
        let idle = match ledger.settle(&options, |_| {}) {
            Ok(done) => {
                total.processed += done.processed;
                total.completed += done.completed;
                total.failed += done.failed;
                total.remaining = done.remaining;
                done.processed == 0
            }
            // Another writer held the lock past the time-out; a worker waits its turn.
            Err(WalletError::Busy(_)) => true,
            Err(other) => return Err(other),
        };
        if idle {
            sleep_unless(&stop, interval);
        }
    }
    total.remaining = ledger.pending_count()?;
    Ok(total)
}

/// Sleeps for `duration`, waking early once `stop` is set.
fn sleep_unless(stop: &AtomicBool, duration: Duration) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

fn report(summary: SettleSummary) -> Report {
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
    Report::new(
        Settled {
            processed,
            completed,
            failed,
            remaining,
        },
        Human::Line(line),
    )
}

/// A bar only when there is more than one batch to wait for.
fn progress_bar(total: u64, batch_size: u64) -> ProgressBar {
    if total <= batch_size {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "settling {bar:40} {human_pos}/{human_len} transfers ({eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}
