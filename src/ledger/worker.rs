//! Settle as a process runs it: one loop, or several workers on their own
//! connections, once through the queue or (`watch`) until told to stop,
//! riding out a lock held elsewhere, a failure that may pass and a server
//! that restarts.
//!
//! What it shows on the way (progress, a warning before each retry) goes
//! to [`Events`], so the loop knows nothing of terminals or JSON and runs
//! the same under a test as under the CLI.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Ledger;
use super::model::{SettleOptions, SettleStopped, SettleSummary};
use super::store::OpenOptions;
use crate::error::WalletError;
use crate::location::Location;

/// How a settle run goes.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Settle at most this many transfers; `None` drains the queue.
    pub limit: Option<u64>,
    /// Transfers per transaction; `None` takes the engine's own default.
    pub batch_size: Option<usize>,
    /// Connections settling at once, cut down to what the engine takes.
    pub workers: usize,
    /// Keep settling as transfers are queued, sleeping this long whenever
    /// the queue is empty, until `stop` is set.
    pub watch: Option<Duration>,
    /// Looked at before each batch: once set, every worker returns after
    /// the batch in hand.
    pub stop: Option<Arc<AtomicBool>>,
}

/// What a settle run tells its caller on the way; every method may be
/// called from any worker's thread.
pub trait Events: Sync {
    /// Whether [`Events::started`] is wanted: it costs a count of the queue.
    fn wants_total(&self) -> bool {
        false
    }

    /// Before the first batch of a run that ends by itself: how many
    /// transfers it will settle at most, and how many per transaction.
    fn started(&self, _total: u64, _batch_size: u64) {}

    /// A batch committed, settling `more` transfers.
    fn settled(&self, _more: u64) {}

    /// A failure the run rides out: it tries again after `pause`. Batches
    /// before it may have committed, so the error's own "nothing was
    /// written" may not hold for the run.
    fn retrying(&self, _error: &WalletError, _pause: Duration) {}
}

/// Events nobody listens to.
pub struct Silent;

impl Events for Silent {}

type Outcome = std::result::Result<SettleSummary, SettleStopped>;

/// Settles the ledger at `location` as `plan` says. The summary counts
/// every worker's batches, and what is still pending when they are done;
/// an error comes with what the batches before it committed.
pub fn settle(
    location: &Location,
    options: &OpenOptions,
    plan: &Plan,
    events: &dyn Events,
) -> Outcome {
    match plan.watch {
        Some(interval) => watch(location, options, plan, interval, events),
        None => drain(location, options, plan, events),
    }
}

fn nothing_done(error: WalletError) -> SettleStopped {
    SettleStopped {
        done: SettleSummary::default(),
        error,
    }
}

/// Settles until the queue is empty or the limit is reached, with as many
/// workers as the engine takes; a limit is shared out among them.
fn drain(location: &Location, options: &OpenOptions, plan: &Plan, events: &dyn Events) -> Outcome {
    let mut ledger = Ledger::open(location, options).map_err(nothing_done)?;
    let profile = ledger.profile();
    let batch_size = plan.batch_size.unwrap_or(profile.settle_batch);
    let workers = plan.workers.clamp(1, profile.max_writers.max(1));
    if events.wants_total() {
        let pending = ledger.pending_count().map_err(nothing_done)?;
        let total = plan.limit.map_or(pending, |limit| limit.min(pending));
        events.started(total, batch_size as u64);
    }
    let settle_options = |limit| SettleOptions {
        limit,
        batch_size,
        stop: plan.stop.clone(),
    };
    let settle_on = |ledger: &mut Ledger, limit| {
        let mut seen = 0;
        ledger.settle(&settle_options(limit), |so_far| {
            events.settled(so_far.processed - seen);
            seen = so_far.processed;
        })
    };
    if workers == 1 {
        return settle_on(&mut ledger, plan.limit);
    }
    let (mut total, failure) = run_workers(workers, |i| {
        let share = plan.limit.map(|limit| {
            let n = workers as u64;
            limit / n + u64::from((i as u64) < limit % n)
        });
        let mut ledger = Ledger::open(location, options).map_err(nothing_done)?;
        settle_on(&mut ledger, share)
    });
    let counted = ledger.pending_count();
    total.remaining = counted.as_ref().ok().copied();
    // What is left that cannot be counted is no success: the summary says
    // what was applied, the error why the rest is unknown.
    match failure.or(counted.err()) {
        None => Ok(total),
        Some(error) => Err(SettleStopped { done: total, error }),
    }
}

/// Runs `work(i)` on `workers` threads at once and adds up what they did;
/// the first error any of them stopped with is the one reported.
fn run_workers(
    workers: usize,
    work: impl Fn(usize) -> Outcome + Sync,
) -> (SettleSummary, Option<WalletError>) {
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..workers).map(|i| scope.spawn(move || work(i))).collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(nothing_done(WalletError::internal(anyhow::anyhow!(
                        "a settle worker panicked"
                    ))))
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

/// How long a worker waits for the write lock before it looks at its stop
/// flag again: a signal ends it within about this long even while another
/// process holds the ledger.
const WATCH_LOCK_SLICE: Duration = Duration::from_millis(200);

/// The longest pause between retries after a failure that may pass (a full
/// disk, an I/O error, a commit whose outcome is unknown).
const WATCH_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Drains the queue again and again, sleeping `interval` whenever it is
/// empty, until `stop` is set, with as many workers as the engine takes,
/// each doing so. A stop is only noted; the batch in hand commits before
/// the loop looks at it. A failure that may pass is reported to `events`
/// and retried with a growing pause; damage to the ledger stops every worker.
fn watch(
    location: &Location,
    options: &OpenOptions,
    plan: &Plan,
    interval: Duration,
    events: &dyn Events,
) -> Outcome {
    let stop = plan.stop.clone().unwrap_or_default();
    let mut options = options.clone();
    options.lock_timeout = options.lock_timeout.min(WATCH_LOCK_SLICE);
    let options = &options;
    // Opened before any worker starts, so a missing or foreign ledger
    // fails at once; it counts what is left when the workers are done.
    let Some(mut ledger) =
        open_patiently(location, options, &stop, events).map_err(nothing_done)?
    else {
        return Ok(SettleSummary::default());
    };
    let profile = ledger.profile();
    let settle_options = SettleOptions {
        limit: None,
        batch_size: plan.batch_size.unwrap_or(profile.settle_batch),
        stop: Some(Arc::clone(&stop)),
    };
    let workers = plan.workers.clamp(1, profile.max_writers.max(1));
    let (mut total, failure) = run_workers(workers, |_| {
        let outcome = watch_worker(location, options, &settle_options, interval, &stop, events);
        if outcome.is_err() {
            // One worker's fatal error stops them all.
            stop.store(true, Ordering::Relaxed);
        }
        outcome
    });
    // The connection opened first may have died with a server that came
    // back since: a fresh one counts what is left.
    let counted = ledger
        .pending_count()
        .or_else(|_| Ledger::open(location, options).and_then(|mut fresh| fresh.pending_count()));
    total.remaining = counted.as_ref().ok().copied();
    match failure.or(counted.err()) {
        None => Ok(total),
        Some(error) => Err(SettleStopped { done: total, error }),
    }
}

/// One watching worker on its own connection, until its stop flag is set.
fn watch_worker(
    location: &Location,
    options: &OpenOptions,
    settle_options: &SettleOptions,
    interval: Duration,
    stop: &AtomicBool,
    events: &dyn Events,
) -> Outcome {
    let mut total = SettleSummary::default();
    let mut ledger = match open_patiently(location, options, stop, events) {
        Ok(Some(ledger)) => ledger,
        Ok(None) => return Ok(total),
        Err(error) => return Err(SettleStopped { done: total, error }),
    };
    let mut backoff = interval;
    while !stop.load(Ordering::Relaxed) {
        let (done, failure) = match ledger.settle(settle_options, |_| {}) {
            Ok(done) => (done, None),
            Err(SettleStopped { done, error }) => (done, Some(error)),
        };
        add(&mut total, &done);
        if done.processed > 0 {
            events.settled(done.processed);
        }
        let pause = match failure {
            None if done.processed > 0 => {
                backoff = interval;
                continue;
            }
            None => interval,
            // Another writer held the lock; a worker waits its turn.
            Some(WalletError::Busy(_)) => interval.min(WATCH_LOCK_SLICE),
            Some(error @ (WalletError::ServerUnavailable(_) | WalletError::ReadOnly(_))) => {
                // The connection is gone with the server, or reached one
                // that takes no writes (a standby not promoted yet): a new
                // one, once a server takes writes. Settling again is
                // always safe.
                events.retrying(&error, Duration::ZERO);
                match open_patiently(location, options, stop, events) {
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
                events.retrying(&error, backoff);
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
    location: &Location,
    options: &OpenOptions,
    stop: &AtomicBool,
    events: &dyn Events,
) -> crate::error::Result<Option<Ledger>> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match Ledger::open(location, options) {
            Ok(ledger) => return Ok(Some(ledger)),
            Err(error @ (WalletError::ServerUnavailable(_) | WalletError::ReadOnly(_))) => {
                events.retrying(&error, backoff);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU64;

    use tempfile::TempDir;

    use super::*;
    use crate::domain::UserName;
    use crate::ledger::NewTransfer;
    use crate::money::Amount;

    /// Everything a run told its caller.
    #[derive(Default)]
    struct Recorded {
        started: Mutex<Option<(u64, u64)>>,
        settled: AtomicU64,
        retries: Mutex<Vec<String>>,
    }

    impl Events for Recorded {
        fn wants_total(&self) -> bool {
            true
        }

        fn started(&self, total: u64, batch_size: u64) {
            *self.started.lock().unwrap() = Some((total, batch_size));
        }

        fn settled(&self, more: u64) {
            self.settled.fetch_add(more, Ordering::Relaxed);
        }

        fn retrying(&self, error: &WalletError, _pause: Duration) {
            self.retries.lock().unwrap().push(error.code().to_string());
        }
    }

    /// A ledger file with one user, alice.
    fn ledger(dir: &TempDir) -> Location {
        crate::ledger::file_with_alice(&dir.path().join("wallet.db"))
    }

    /// Queues `n` deposits of 1.00 to alice.
    fn deposit(location: &Location, n: usize) {
        let mut ledger = Ledger::open(location, &OpenOptions::default()).unwrap();
        for _ in 0..n {
            let deposit = NewTransfer::new(
                None,
                Some(UserName::parse("alice").unwrap()),
                Amount::from_minor_units(100).unwrap(),
                None,
                None,
            )
            .unwrap();
            ledger.queue_transfer(deposit).unwrap();
        }
    }

    fn pending(location: &Location) -> u64 {
        Ledger::open(location, &OpenOptions::default())
            .unwrap()
            .pending_count()
            .unwrap()
    }

    /// Runs a watch on its own thread; returns its stop flag and handle.
    fn watching(
        location: &Location,
        options: OpenOptions,
        events: Arc<Recorded>,
    ) -> (Arc<AtomicBool>, std::thread::JoinHandle<Outcome>) {
        let stop = Arc::new(AtomicBool::new(false));
        let plan = Plan {
            workers: 1,
            watch: Some(Duration::from_millis(10)),
            stop: Some(Arc::clone(&stop)),
            ..Plan::default()
        };
        let location = location.clone();
        let handle =
            std::thread::spawn(move || settle(&location, &options, &plan, events.as_ref()));
        (stop, handle)
    }

    /// Waits, for at most ten seconds, until nothing is pending.
    fn until_drained(location: &Location) {
        let until = Instant::now() + Duration::from_secs(10);
        while pending(location) > 0 {
            assert!(Instant::now() < until, "the watch left transfers pending");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_file_takes_one_writer_and_settles_in_large_batches() {
        let dir = TempDir::new().unwrap();
        let location = ledger(&dir);
        let profile = Ledger::open(&location, &OpenOptions::default())
            .unwrap()
            .profile();
        assert_eq!(profile.max_writers, 1);
        assert_eq!(profile.settle_batch, crate::ledger::DEFAULT_BATCH_SIZE);
    }

    #[test]
    fn a_drain_settles_up_to_its_limit_and_counts_what_is_left() {
        let dir = TempDir::new().unwrap();
        let location = ledger(&dir);
        deposit(&location, 5);
        let events = Recorded::default();
        // More workers than a file takes run as one.
        let plan = Plan {
            limit: Some(3),
            batch_size: Some(2),
            workers: 4,
            ..Plan::default()
        };
        let done = settle(&location, &OpenOptions::default(), &plan, &events).unwrap();
        assert_eq!(
            (done.processed, done.completed, done.remaining),
            (3, 3, Some(2))
        );
        assert_eq!(*events.started.lock().unwrap(), Some((3, 2)));
        assert_eq!(events.settled.load(Ordering::Relaxed), 3);

        let rest = settle(
            &location,
            &OpenOptions::default(),
            &Plan::default(),
            &Silent,
        )
        .unwrap();
        assert_eq!((rest.processed, rest.remaining), (2, Some(0)));
    }

    #[test]
    fn a_watch_settles_what_is_queued_while_it_runs_until_stopped() {
        let dir = TempDir::new().unwrap();
        let location = ledger(&dir);
        deposit(&location, 2);
        let events = Arc::new(Recorded::default());
        let (stop, handle) = watching(&location, OpenOptions::default(), Arc::clone(&events));
        until_drained(&location);
        deposit(&location, 3);
        until_drained(&location);
        stop.store(true, Ordering::Relaxed);
        let done = handle.join().unwrap().unwrap();
        assert_eq!((done.processed, done.remaining), (5, Some(0)));
        assert_eq!(events.settled.load(Ordering::Relaxed), 5);
        assert!(events.retries.lock().unwrap().is_empty());
        // A watch has no end to count towards.
        assert_eq!(*events.started.lock().unwrap(), None);
    }

    #[test]
    fn a_watch_waits_its_turn_while_another_process_holds_the_lock() {
        let dir = TempDir::new().unwrap();
        let location = ledger(&dir);
        deposit(&location, 4);
        let holder = rusqlite::Connection::open(dir.path().join("wallet.db")).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let options = OpenOptions {
            lock_timeout: Duration::from_millis(50),
        };
        let events = Arc::new(Recorded::default());
        let (stop, handle) = watching(&location, options, Arc::clone(&events));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(pending(&location), 4, "settled under another's lock");
        holder.execute_batch("ROLLBACK").unwrap();
        until_drained(&location);
        stop.store(true, Ordering::Relaxed);
        let done = handle.join().unwrap().unwrap();
        assert_eq!(done.processed, 4);
        // A lock held elsewhere is a turn to wait, not a failure to report.
        assert!(events.retries.lock().unwrap().is_empty());
    }

    #[test]
    fn a_watch_on_a_missing_ledger_fails_at_once() {
        let dir = TempDir::new().unwrap();
        let location = Location::File(dir.path().join("none.db"));
        let events = Arc::new(Recorded::default());
        let (_stop, handle) = watching(&location, OpenOptions::default(), Arc::clone(&events));
        let stopped = handle.join().unwrap().unwrap_err();
        assert_eq!(stopped.error.code(), "ledger_not_found");
        assert_eq!(stopped.done.processed, 0);
        assert!(events.retries.lock().unwrap().is_empty());
    }

    #[test]
    fn a_stop_before_the_first_batch_settles_nothing() {
        let dir = TempDir::new().unwrap();
        let location = ledger(&dir);
        deposit(&location, 2);
        let plan = Plan {
            stop: Some(Arc::new(AtomicBool::new(true))),
            ..Plan::default()
        };
        let done = settle(&location, &OpenOptions::default(), &plan, &Silent).unwrap();
        assert_eq!((done.processed, done.remaining), (0, Some(2)));
    }
}
