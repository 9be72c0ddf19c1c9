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
use crate::ledger::{Ledger, Location, OpenOptions, SettleOptions, SettleStopped, SettleSummary};
use crate::output::{Human, Report, plural};

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

pub fn run(context: &Context, args: SettleArgs) -> Result<Report> {
    let batch_size = args.batch_size.map_or_else(
        || context.db.default_settle_batch(),
        |n| usize::try_from(n).unwrap_or(usize::MAX),
    );
    // A ledger file takes one writer at a time: more workers would only
    // queue for its lock.
    let workers = match context.db {
        Location::Server(_) => usize::try_from(args.workers).unwrap_or(1).max(1),
        Location::File(_) => 1,
    };
    if args.watch {
        return watch(
            context,
            batch_size,
            Duration::from_millis(args.interval),
            workers,
        );
    }
    if workers > 1 {
        return drain_in_parallel(context, args.limit, batch_size, workers);
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
        progress_bar(total, batch_size as u64)
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

/// Drains the queue with `workers` connections at once, each settling the
/// lanes the others leave; a limit is shared out among them.
fn drain_in_parallel(
    context: &Context,
    limit: Option<u64>,
    batch_size: usize,
    workers: usize,
) -> Result<Report> {
    let mut ledger = context.open()?;
    let progress = if context.show_progress {
        let pending = ledger.pending_count()?;
        let total = limit.map_or(pending, |limit| limit.min(pending));
        progress_bar(total, batch_size as u64)
    } else {
        ProgressBar::hidden()
    };
    let (mut total, failure) = run_workers(workers, |i| {
        let share = limit.map(|limit| {
            let n = workers as u64;
            limit / n + u64::from((i as u64) < limit % n)
        });
        let mut ledger =
            Ledger::open(&context.db, &context.open_options).map_err(|error| SettleStopped {
                done: SettleSummary::default(),
                error,
            })?;
        let options = SettleOptions {
            limit: share,
            batch_size,
            stop: None,
        };
        let mut seen = 0;
        ledger.settle(&options, |so_far| {
            progress.inc(so_far.processed - seen);
            seen = so_far.processed;
        })
    });
    progress.finish_and_clear();
    let counted = ledger.pending_count();
    total.remaining = counted.as_ref().ok().copied();
    // What is left that cannot be counted is no success: the summary says
    // what was applied, the error why the rest is unknown.
    match failure.or(counted.err()) {
        None => Ok(report(total)),
        Some(error) => Err(stopped_part_way(SettleStopped { done: total, error })),
    }
}

/// Runs `work(i)` on `workers` threads at once and adds up what they did;
/// the first error any of them stopped with is the one reported.
fn run_workers(
    workers: usize,
    work: impl Fn(usize) -> std::result::Result<SettleSummary, SettleStopped> + Sync,
) -> (SettleSummary, Option<WalletError>) {
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..workers).map(|i| scope.spawn(move || work(i))).collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(SettleStopped {
                        done: SettleSummary::default(),
                        error: WalletError::internal(anyhow::anyhow!("a settle worker panicked")),
                    })
                })
            })
            .collect()
    });
    let mut total = SettleSummary::default();
    let mut failure = None;
    for outcome in outcomes {
        let done = match outcome {
            Ok(done) => done,
            Err(SettleStopped { done, error }) => {
                failure.get_or_insert(error);
                done
            }
        };
        add(&mut total, &done);
    }
    (total, failure)
}

fn add(total: &mut SettleSummary, done: &SettleSummary) {
    total.processed += done.processed;
    total.completed += done.completed;
    total.failed += done.failed;
    total.expired += done.expired;
    total.remaining = done.remaining;
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

/// How long a worker waits for the write lock before it looks at its stop
/// flag again: a signal ends it within about this long even while another
/// process holds the ledger.
const WATCH_LOCK_SLICE: Duration = Duration::from_millis(200);

/// The longest pause between retries after a failure that may pass (a full
/// disk, an I/O error, a commit whose outcome is unknown).
const WATCH_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Drains the queue again and again, sleeping `interval` whenever it is
/// empty, until SIGINT, SIGTERM or SIGHUP, with `workers` connections each
/// doing so. A signal is only noted; the batch in hand commits before the
/// loop looks at it. A failure that may pass is logged on stderr and
/// retried with a growing pause; damage to the ledger stops every worker.
fn watch(
    context: &Context,
    batch_size: usize,
    interval: Duration,
    workers: usize,
) -> Result<Report> {
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
    // Opened before any worker starts, so a missing or foreign ledger
    // fails at once; it reports what is left when the workers are done.
    let Some(mut ledger) = open_patiently(context, &open_options, &stop)? else {
        return Ok(report(SettleSummary::default()));
    };
    let (mut total, failure) = run_workers(workers, |_| {
        let outcome = watch_worker(context, &open_options, batch_size, interval, &stop);
        if outcome.is_err() {
            // One worker's fatal error stops them all.
            stop.store(true, Ordering::Relaxed);
        }
        outcome
    });
    // The connection opened first may have died with a server that came
    // back since: a fresh one counts what is left.
    let counted = ledger.pending_count().or_else(|_| {
        Ledger::open(&context.db, &open_options).and_then(|mut fresh| fresh.pending_count())
    });
    total.remaining = counted.as_ref().ok().copied();
    match failure.or(counted.err()) {
        None => Ok(report(total)),
        Some(error) => Err(stopped_part_way(SettleStopped { done: total, error })),
    }
}

/// One watching worker on its own connection, until `stop` is set.
fn watch_worker(
    context: &Context,
    open_options: &OpenOptions,
    batch_size: usize,
    interval: Duration,
    stop: &Arc<AtomicBool>,
) -> std::result::Result<SettleSummary, SettleStopped> {
    let mut total = SettleSummary::default();
    let mut ledger = match open_patiently(context, open_options, stop) {
        Ok(Some(ledger)) => ledger,
        Ok(None) => return Ok(total),
        Err(error) => return Err(SettleStopped { done: total, error }),
    };
    let options = SettleOptions {
        limit: None,
        batch_size,
        stop: Some(Arc::clone(stop)),
    };
    let mut backoff = interval;
    while !stop.load(Ordering::Relaxed) {
        let (done, failure) = match ledger.settle(&options, |_| {}) {
            Ok(done) => (done, None),
            Err(SettleStopped { done, error }) => (done, Some(error)),
        };
        add(&mut total, &done);
        let pause = match failure {
            None if done.processed > 0 => {
                backoff = interval;
                continue;
            }
            None => interval,
            // Another writer held the lock; a worker waits its turn.
            Some(WalletError::Busy(_)) => interval.min(WATCH_LOCK_SLICE),
            Some(error @ WalletError::ServerUnavailable(_)) => {
                // The connection is gone with the server: a new one, once
                // the server is back. Settling again is always safe.
                log_retry(&error, Duration::ZERO, context.json_errors);
                match open_patiently(context, open_options, stop) {
                    Ok(Some(fresh)) => {
                        ledger = fresh;
                        backoff = interval;
                    }
                    Ok(None) => break,
                    Err(error) => return Err(SettleStopped { done: total, error }),
                }
                continue;
            }
            Some(error @ (WalletError::Io(_) | WalletError::OutcomeUnknown(_))) => {
                // Settling again is always safe: each transfer is applied once.
                log_retry(&error, backoff, context.json_errors);
                let pause = backoff;
                backoff = (backoff * 2).clamp(Duration::from_millis(100), WATCH_MAX_BACKOFF);
                sleep_unless(stop, pause);
                continue;
            }
            Some(error) => return Err(SettleStopped { done: total, error }),
        };
        sleep_unless(stop, pause);
    }
    Ok(total)
}

/// The longest pause between attempts to reach a server that is away: a
/// restart takes seconds, and work should resume within about one of its
/// end.
const RECONNECT_MAX_PAUSE: Duration = Duration::from_secs(1);

/// Opens the ledger for a worker, waiting out a server that is away (it
/// may be restarting) until it answers or `stop` is set (`None`).
fn open_patiently(
    context: &Context,
    open_options: &OpenOptions,
    stop: &AtomicBool,
) -> Result<Option<Ledger>> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match Ledger::open(&context.db, open_options) {
            Ok(ledger) => return Ok(Some(ledger)),
            Err(error @ WalletError::ServerUnavailable(_)) => {
                log_retry(&error, backoff, context.json_errors);
                sleep_unless(stop, backoff);
                backoff = (backoff * 2).min(RECONNECT_MAX_PAUSE);
            }
            Err(error) => return Err(error),
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
    }
}

/// One line on stderr for a failure the worker rides out: its cause alone,
/// since batches before it in the same pass may have committed.
fn log_retry(error: &WalletError, pause: Duration, json: bool) {
    let pause_ms = pause.as_millis();
    let cause = error.cause();
    if json {
        eprintln!(
            "{}",
            serde_json::json!({"warning": {"code": error.code(), "message": cause, "retry_in_ms": pause_ms}})
        );
    } else {
        eprintln!("warning: {cause}; retrying in {pause_ms} ms");
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
