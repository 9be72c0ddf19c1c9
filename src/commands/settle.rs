//! `wallet settle`: apply pending transfers, oldest first, each exactly once;
//! with `--watch`, keep doing so as a worker until SIGINT or SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::Context;
use crate::cli::SettleArgs;
use crate::error::{Result, WalletError};
use crate::ledger::{Ledger, SettleOptions, SettleStopped, SettleSummary};
use crate::report::{Human, Report};

#[derive(Serialize)]
struct Settled {
    processed: u64,
    completed: u64,
    failed: u64,
    remaining: u64,
}

pub fn run(context: &Context, args: SettleArgs) -> Result<Report> {
    let batch_size = usize::try_from(args.batch_size).unwrap_or(usize::MAX);
    if args.watch {
        return watch(context, batch_size, Duration::from_millis(args.interval));
    }
    let mut ledger = context.open()?;
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
    let settled = ledger.settle(&options, |so_far| progress.set_position(so_far.processed));
    progress.finish_and_clear();
    match settled {
        Ok(summary) => Ok(report(summary)),
        Err(stopped) => Err(stopped_part_way(stopped)),
    }
}

/// An error after some batches committed: those batches are the output,
/// so a script can tell what was applied; the error says why it stopped.
fn stopped_part_way(stopped: SettleStopped) -> WalletError {
    if stopped.done.processed == 0 {
        return stopped.error;
    }
    WalletError::StoppedPartWay {
        done: Box::new(report(stopped.done)),
        error: Box::new(stopped.error),
    }
}

/// How long a worker waits for the write lock before it looks at its stop
/// flag again: a signal ends it within about this long even while another
/// process holds the ledger.
const WATCH_LOCK_SLICE: Duration = Duration::from_millis(200);

/// The longest pause between retries after a failure that may pass (a full
/// disk, an I/O error, a commit whose outcome is unknown).
const WATCH_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Drains the queue again and again, sleeping `interval` whenever it is
/// empty, until SIGINT, SIGTERM or SIGHUP. A signal is only noted; the
/// batch in hand commits before the loop looks at it. A failure that may
/// pass is logged on stderr and retried with a growing pause; damage to
/// the ledger stops the worker.
fn watch(context: &Context, batch_size: usize, interval: Duration) -> Result<Report> {
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
    let mut open_options = context.open_options.clone();
    open_options.lock_timeout = open_options.lock_timeout.min(WATCH_LOCK_SLICE);
    let mut ledger = Ledger::open(&context.db, &open_options)?;
    let options = SettleOptions {
        limit: None,
        batch_size,
        stop: Some(Arc::clone(&stop)),
    };
    let mut total = SettleSummary::default();
    let mut backoff = interval;
    while !stop.load(Ordering::Relaxed) {
        let (done, failure) = match ledger.settle(&options, |_| {}) {
            Ok(done) => (done, None),
            Err(SettleStopped { done, error }) => (done, Some(error)),
        };
        total.processed += done.processed;
        total.completed += done.completed;
        total.failed += done.failed;
        total.remaining = done.remaining;
        let pause = match failure {
            None if done.processed > 0 => {
                backoff = interval;
                continue;
            }
            None => interval,
            // Another writer held the lock; a worker waits its turn.
            Some(WalletError::Busy(_)) => interval.min(WATCH_LOCK_SLICE),
            Some(error @ (WalletError::Io(_) | WalletError::OutcomeUnknown(_))) => {
                // Settling again is always safe: each transfer is applied once.
                log_retry(&error, backoff, context.json_errors);
                let pause = backoff;
                backoff = (backoff * 2).clamp(Duration::from_millis(100), WATCH_MAX_BACKOFF);
                pause
            }
            Some(error) => {
                return Err(stopped_part_way(SettleStopped { done: total, error }));
            }
        };
        sleep_unless(&stop, pause);
    }
    if let Ok(remaining) = ledger.pending_count() {
        total.remaining = remaining;
    }
    Ok(report(total))
}

/// One line on stderr for a failure the worker rides out.
fn log_retry(error: &WalletError, pause: Duration, json: bool) {
    let pause_ms = pause.as_millis();
    if json {
        eprintln!(
            "{}",
            serde_json::json!({"warning": {"code": error.code(), "message": error.to_string(), "retry_in_ms": pause_ms}})
        );
    } else {
        eprintln!("warning: {error}; retrying in {pause_ms} ms");
    }
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
    // Counts for people, written as the progress bar writes them; JSON keeps numbers.
    let line = format!(
        "settled {} transfer{}: {} completed, {} failed, {} still pending",
        HumanCount(processed),
        if processed == 1 { "" } else { "s" },
        HumanCount(completed),
        HumanCount(failed),
        HumanCount(remaining)
    );
    let report = Report::new(
        Settled {
            processed,
            completed,
            failed,
            remaining,
        },
        Human::Line(line),
    );
    if processed == 0 {
        return report;
    }
    report.committed(
        format!(
            "the settlement of {processed} transfer{}",
            if processed == 1 { "" } else { "s" }
        ),
        "`wallet settle` again is safe: it applies each transfer once",
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
