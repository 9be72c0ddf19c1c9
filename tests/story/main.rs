//! The conformance story: what every engine must do, written once against
//! `&mut dyn Store` and told once per engine of `tests/engines` (a SQLite
//! file in a temp dir, a schema on the PostgreSQL server the tests start).
//!
//! Each chapter takes the ledger's location, so that it can open a second
//! connection where the story needs two.

// The story needs a fresh ledger of each engine only, not the other tools.
#[allow(dead_code)]
#[macro_use]
#[path = "../engines/mod.rs"]
mod engines;

use std::time::Duration;

use tempfile::TempDir;
use wallet::domain::{Email, IdempotencyKey, UserName};
use wallet::error::{Result, WalletError};
use wallet::ledger::{
    BatchCounts, BatchLine, BatchSink, Expiry, Kind, Ledger, Location, NewTransfer, OpenOptions,
    Queued, Status, Store, TransferRef, TxId,
};
use wallet::money::{Amount, Currency};

/// A ledger created for one chapter; the temp dir lives as long as it.
struct Place {
    location: Location,
    _dir: TempDir,
}

impl Place {
    /// A ledger of the engine called `name`, with alice, bob and carol.
    fn on(name: &str) -> Self {
        let dir = TempDir::new().unwrap();
        let db = engines::named(name).new_ledger(dir.path()).db();
        Self::created(Location::parse(&db).unwrap(), dir)
    }

    fn created(location: Location, dir: TempDir) -> Self {
        Ledger::create(&location, &Currency::default(), &OpenOptions::default()).unwrap();
        let mut ledger = Self::open_at(&location);
        for name in ["alice", "bob", "carol"] {
            ledger
                .store()
                .create_user(
                    &user(name),
                    &Email::parse(&format!("{name}@example.com")).unwrap(),
                    0,
                )
                .unwrap();
        }
        Self {
            location,
            _dir: dir,
        }
    }

    fn open_at(location: &Location) -> Ledger {
        Ledger::open(location, &OpenOptions::default()).unwrap()
    }

    /// A connection of its own.
    fn open(&self) -> Ledger {
        Self::open_at(&self.location)
    }
}

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

fn side(name: &str) -> Option<UserName> {
    (!name.is_empty()).then(|| user(name))
}

/// A transfer from `src` to `dst` ("" is the outside world) of `minor` units.
fn transfer(src: &str, dst: &str, minor: i64, key: Option<&str>) -> NewTransfer {
    NewTransfer::new(
        side(src),
        side(dst),
        Amount::from_minor_units(minor).unwrap(),
        None,
        key.map(|k| IdempotencyKey::parse(k).unwrap()),
    )
    .unwrap()
}

/// Every line's outcome, in the order the engine reported them.
#[derive(Default)]
struct Recorded(Vec<(u64, Result<Queued>)>);

impl BatchSink for Recorded {
    fn record(&mut self, line: u64, outcome: Result<Queued>) -> Result<()> {
        self.0.push((line, outcome));
        Ok(())
    }

    fn committed(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Queues `lines` as one chunk of a batch, numbered from 1.
fn queue_chunk(store: &mut dyn Store, lines: Vec<Result<NewTransfer>>) -> Recorded {
    let mut sink = Recorded::default();
    let count = lines.len();
    let mut lines = lines.into_iter().enumerate().map(|(i, transfer)| {
        Ok(BatchLine {
            line: i as u64 + 1,
            transfer,
        })
    });
    let summary = store
        .queue_chunk(&mut lines, count, false, &mut sink)
        .unwrap();
    assert!(summary.committed);
    assert_eq!(summary.lines, count as u64);
    sink
}

fn queue(store: &mut dyn Store, transfer: NewTransfer) -> Result<Queued> {
    let mut recorded = queue_chunk(store, vec![Ok(transfer)]);
    recorded.0.pop().unwrap().1
}

/// Settles everything due, `max` transfers per batch.
fn settle(store: &mut dyn Store, max: u64) -> BatchCounts {
    let mut total = BatchCounts::default();
    loop {
        let counts = store.settle_batch(max).unwrap();
        total.completed += counts.completed;
        total.failed += counts.failed;
        total.expired += counts.expired;
        assert!(counts.processed() <= max);
        if counts.drained || store.pending_count().unwrap() == 0 {
            return total;
        }
    }
}

fn figures(store: &mut dyn Store, name: &str) -> (i64, i64, i64, i64) {
    let u = store.user(&user(name)).unwrap();
    (u.balance, u.pending_in, u.pending_out, u.held)
}

fn status(store: &mut dyn Store, tx_id: TxId) -> (Status, Option<String>) {
    let t = store.transfer(TransferRef::Id(tx_id)).unwrap();
    (t.status, t.reason)
}

/// A reused key replays the transfer it first queued, whatever became of
/// it; any pinned field that differs is a conflict naming it.
fn key_replay(place: &Place) {
    let mut ledger = place.open();
    let store = ledger.store();
    let first = queue(store, transfer("", "alice", 100, Some("k1"))).unwrap();
    assert!(!first.replayed);
    let again = queue(store, transfer("", "alice", 100, Some("k1"))).unwrap();
    assert_eq!(
        again,
        Queued {
            tx_id: first.tx_id,
            status: Status::Pending,
            replayed: true,
            pair_tx_id: None,
        }
    );
    settle(store, 10);
    let after = queue(store, transfer("", "alice", 100, Some("k1"))).unwrap();
    assert_eq!(
        (after.tx_id, after.status),
        (first.tx_id, Status::Completed)
    );
    match queue(store, transfer("", "alice", 101, Some("k1"))) {
        Err(WalletError::IdempotencyConflict { field, tx_id, .. }) => {
            assert_eq!((field, tx_id), ("amount", first.tx_id.get()));
        }
        other => panic!("{other:?}"),
    }
    match queue(store, transfer("", "bob", 100, Some("k1"))) {
        Err(WalletError::IdempotencyConflict { field, .. }) => assert_eq!(field, "destination"),
        other => panic!("{other:?}"),
    }
    assert_eq!(figures(store, "alice"), (100, 0, 0, 0));
}

/// A chunk's lines are decided in input order: outcomes come back in it,
/// new transfers take increasing ids in it, a key reused later in the same
/// chunk replays the earlier line, and a refused line leaves the rest.
fn chunk_planning_in_input_order(place: &Place) {
    let mut ledger = place.open();
    let store = ledger.store();
    let recorded = queue_chunk(
        store,
        vec![
            Ok(transfer("", "alice", 50, Some("a"))),
            Ok(transfer("alice", "bob", 30, None)),
            Err(WalletError::InvalidLine("a line that did not parse".into())),
            Ok(transfer("", "alice", 50, Some("a"))),
            Ok(transfer("", "alice", 51, Some("a"))),
            Ok(transfer("bob", "carol", 5, None)),
        ],
    );
    let lines: Vec<u64> = recorded.0.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [1, 2, 3, 4, 5, 6]);
    let ok = |i: usize| recorded.0[i].1.as_ref().unwrap();
    assert!(!ok(0).replayed && !ok(1).replayed && !ok(5).replayed);
    assert!(ok(0).tx_id < ok(1).tx_id && ok(1).tx_id < ok(5).tx_id);
    assert_eq!(recorded.0[2].1.as_ref().unwrap_err().code(), "invalid_line");
    assert_eq!((ok(3).tx_id, ok(3).replayed), (ok(0).tx_id, true));
    assert_eq!(
        recorded.0[4].1.as_ref().unwrap_err().code(),
        "idempotency_conflict"
    );
    assert_eq!(figures(store, "alice"), (0, 50, 30, 0));
    assert_eq!(figures(store, "bob"), (0, 30, 5, 0));
    // Settled in input order: bob's 5 to carol comes after alice's 30 to him.
    settle(store, 100);
    assert_eq!(figures(store, "alice"), (20, 0, 0, 0));
    assert_eq!(figures(store, "bob"), (25, 0, 0, 0));
    assert_eq!(figures(store, "carol"), (5, 0, 0, 0));
}

/// The same work settled in one batch and one transfer per batch reaches
/// the same outcomes and balances, overdrafts (decided oldest first, a
/// later deposit notwithstanding) included.
fn one_batch_equals_one_per_batch(new_place: &dyn Fn() -> Place) {
    let work = [
        ("alice", "bob", 10),
        ("", "alice", 100),
        ("alice", "bob", 60),
        ("bob", "carol", 50),
        ("alice", "carol", 50),
        ("bob", "", 20),
        ("", "carol", 7),
        ("carol", "alice", 57),
        ("alice", "bob", 90),
        ("bob", "alice", 1),
    ];
    let outcome = |max: u64| {
        let place = new_place();
        let mut ledger = place.open();
        let store = ledger.store();
        let ids: Vec<TxId> = work
            .iter()
            .map(|&(src, dst, minor)| queue(store, transfer(src, dst, minor, None)).unwrap().tx_id)
            .collect();
        let counts = settle(store, max);
        let statuses: Vec<_> = ids.iter().map(|id| status(store, *id)).collect();
        let balances: Vec<_> = ["alice", "bob", "carol"]
            .iter()
            .map(|name| figures(store, name))
            .collect();
        (counts.completed, counts.failed, statuses, balances)
    };
    let batched = outcome(1000);
    assert_eq!(batched, outcome(1));
    assert_eq!(batched, outcome(3));
    let (completed, failed, statuses, balances) = &batched;
    assert_eq!((*completed, *failed), (7, 3), "{statuses:?}");
    assert_eq!(balances, &[(8, 0, 0, 0), (99, 0, 0, 0), (0, 0, 0, 0)]);
    assert_eq!(
        statuses[0],
        (Status::Failed, Some("insufficient_funds".into()))
    );
}

/// A hold reserves money until captured (all or part), released, or past
/// its expiry; settle then marks an expired one.
fn holds(place: &Place) {
    let mut ledger = place.open();
    let store = ledger.store();
    queue(store, transfer("", "alice", 100, None)).unwrap();
    settle(store, 10);
    let hold = |store: &mut dyn Store, minor: i64, expiry: Expiry| {
        let held = transfer("alice", "bob", minor, None)
            .with_kind(Kind::Hold(expiry))
            .unwrap();
        queue(store, held).unwrap()
    };
    let captured = hold(store, 40, Expiry::Never);
    assert_eq!(captured.status, Status::Held);
    assert_eq!(figures(store, "alice"), (100, 0, 0, 40));
    // A transfer may not spend what a hold reserves.
    let spend = queue(store, transfer("alice", "carol", 61, None)).unwrap();
    settle(store, 10);
    assert_eq!(
        status(store, spend.tx_id),
        (Status::Failed, Some("insufficient_funds".into()))
    );
    let record = store.capture(captured.tx_id, Some(25)).unwrap();
    assert_eq!((record.status, record.amount), (Status::Pending, 25));
    assert_eq!(
        store.capture(captured.tx_id, None).unwrap_err().code(),
        "not_held"
    );
    settle(store, 10);
    assert_eq!(status(store, captured.tx_id).0, Status::Completed);
    assert_eq!(figures(store, "alice"), (75, 0, 0, 0));
    assert_eq!(figures(store, "bob").0, 25);

    let released = hold(store, 10, Expiry::Never);
    assert_eq!(
        store.release(released.tx_id).unwrap().status,
        Status::Released
    );
    assert_eq!(
        store.release(released.tx_id).unwrap_err().code(),
        "not_held"
    );
    assert_eq!(figures(store, "alice"), (75, 0, 0, 0));

    let expiring = hold(store, 30, Expiry::After(1));
    std::thread::sleep(Duration::from_millis(50));
    // Read as EXPIRED from its expiry on, before anything marks it.
    assert_eq!(status(store, expiring.tx_id).0, Status::Expired);
    assert_eq!(figures(store, "alice").3, 0);
    assert_eq!(
        store.capture(expiring.tx_id, None).unwrap_err().code(),
        "not_held"
    );
    assert_eq!(settle(store, 10).expired, 1);
    assert_eq!(status(store, expiring.tx_id).0, Status::Expired);
    assert_eq!(figures(store, "alice"), (75, 0, 0, 0));
}

/// Refunds pay a COMPLETED transfer back, never more than it in all.
fn refunds(place: &Place) {
    let mut ledger = place.open();
    let store = ledger.store();
    queue(store, transfer("", "alice", 100, None)).unwrap();
    let paid = queue(store, transfer("alice", "bob", 60, None)).unwrap();
    let refund = |store: &mut dyn Store, minor: i64| {
        let back = transfer("bob", "alice", minor, None)
            .with_kind(Kind::Refund(paid.tx_id))
            .unwrap();
        queue(store, back)
    };
    assert_eq!(refund(store, 10).unwrap_err().code(), "not_refundable");
    settle(store, 10);
    let first = refund(store, 40).unwrap();
    assert_eq!(
        refund(store, 21).unwrap_err().code(),
        "refund_exceeds_original"
    );
    let second = refund(store, 20).unwrap();
    settle(store, 10);
    assert_eq!(status(store, first.tx_id).0, Status::Completed);
    assert_eq!(status(store, second.tx_id).0, Status::Completed);
    let original = store.transfer(TransferRef::Id(paid.tx_id)).unwrap();
    assert_eq!(original.refunded, 60);
    assert_eq!(
        refund(store, 1).unwrap_err().code(),
        "refund_exceeds_original"
    );
    assert_eq!(figures(store, "alice"), (100, 0, 0, 0));
    assert_eq!(figures(store, "bob"), (0, 0, 0, 0));
}

/// A queued refund counts against its original until it fails; only a
/// completed one counts as refunded.
fn refunds_that_count(place: &Place) {
    let mut ledger = place.open();
    let store = ledger.store();
    queue(store, transfer("", "alice", 100, None)).unwrap();
    let paid = queue(store, transfer("alice", "bob", 60, None)).unwrap();
    settle(store, 10);
    let refund = |store: &mut dyn Store, minor: i64| {
        let back = transfer("bob", "alice", minor, None)
            .with_kind(Kind::Refund(paid.tx_id))
            .unwrap();
        queue(store, back)
    };
    // Bob spends the money first, so the refund fails at settlement.
    queue(store, transfer("bob", "carol", 60, None)).unwrap();
    let failing = refund(store, 40).unwrap();
    assert_eq!(
        store
            .transfer(TransferRef::Id(paid.tx_id))
            .unwrap()
            .refunded,
        0
    );
    assert_eq!(
        refund(store, 21).unwrap_err().code(),
        "refund_exceeds_original"
    );
    settle(store, 10);
    assert_eq!(
        status(store, failing.tx_id),
        (Status::Failed, Some("insufficient_funds".to_string()))
    );
    assert_eq!(
        store
            .transfer(TransferRef::Id(paid.tx_id))
            .unwrap()
            .refunded,
        0
    );
    queue(store, transfer("carol", "bob", 60, None)).unwrap();
    let whole = refund(store, 60).unwrap();
    settle(store, 10);
    assert_eq!(status(store, whole.tx_id).0, Status::Completed);
    assert_eq!(
        store
            .transfer(TransferRef::Id(paid.tx_id))
            .unwrap()
            .refunded,
        60
    );
    assert_eq!(figures(store, "alice"), (100, 0, 0, 0));
}

/// A cancel and a settle on two connections race for the same transfers:
/// each transfer is won by exactly one of them.
fn cancel_races_settle(place: &Place) {
    const N: i64 = 60;
    let ids: Vec<TxId> = {
        let mut ledger = place.open();
        let store = ledger.store();
        queue(store, transfer("", "alice", N * 10, None)).unwrap();
        settle(store, 10);
        (0..N)
            .map(|_| {
                queue(store, transfer("alice", "bob", 10, None))
                    .unwrap()
                    .tx_id
            })
            .collect()
    };
    let (settled, cancelled) = std::thread::scope(|scope| {
        let settler = scope.spawn(|| {
            let mut ledger = place.open();
            let mut processed = 0;
            while processed < N as u64 {
                let counts = ledger.store().settle_batch(3).unwrap();
                processed += counts.processed();
                if counts.drained || ledger.store().pending_count().unwrap() == 0 {
                    break;
                }
            }
            processed
        });
        let canceller = scope.spawn(|| {
            let mut ledger = place.open();
            let store = ledger.store();
            ids.iter()
                .rev()
                .map(|id| match store.cancel(*id) {
                    Ok(record) => {
                        assert_eq!(record.status, Status::Cancelled);
                        Some(*id)
                    }
                    Err(WalletError::NotPending { status, .. }) => {
                        assert_eq!(status, "COMPLETED");
                        None
                    }
                    Err(other) => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        });
        (settler.join().unwrap(), canceller.join().unwrap())
    });
    let mut ledger = place.open();
    let store = ledger.store();
    let cancelled: Vec<TxId> = cancelled.into_iter().flatten().collect();
    assert_eq!(settled + cancelled.len() as u64, N as u64);
    for id in &ids {
        let want = if cancelled.contains(id) {
            Status::Cancelled
        } else {
            Status::Completed
        };
        assert_eq!(status(store, *id).0, want, "transfer {id}");
    }
    assert_eq!(
        figures(store, "alice"),
        (cancelled.len() as i64 * 10, 0, 0, 0)
    );
    assert_eq!(figures(store, "bob"), (settled as i64 * 10, 0, 0, 0));
}

/// The story told on one engine: a test per chapter, in a module named
/// after the engine (`engines::ALL`), skipped where it cannot run.
macro_rules! story {
    ($engine:ident) => {
        mod $engine {
            use super::*;

            /// A fresh ledger on this engine.
            fn place() -> Place {
                Place::on(stringify!($engine))
            }

            /// Whether this engine can run here (else its chapters are
            /// skipped, with a note).
            fn runs() -> bool {
                engines::named(stringify!($engine)).available()
            }

            #[test]
            fn key_replay() {
                if runs() {
                    super::key_replay(&place());
                }
            }

            #[test]
            fn chunk_planning_in_input_order() {
                if runs() {
                    super::chunk_planning_in_input_order(&place());
                }
            }

            #[test]
            fn one_batch_equals_one_per_batch() {
                if runs() {
                    super::one_batch_equals_one_per_batch(&place);
                }
            }

            #[test]
            fn holds() {
                if runs() {
                    super::holds(&place());
                }
            }

            #[test]
            fn refunds() {
                if runs() {
                    super::refunds(&place());
                }
            }

            #[test]
            fn refunds_that_count() {
                if runs() {
                    super::refunds_that_count(&place());
                }
            }

            #[test]
            fn cancel_races_settle() {
                if runs() {
                    super::cancel_races_settle(&place());
                }
            }
        }
    };
}

for_each_engine!(story!());
