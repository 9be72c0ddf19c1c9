//! `verify`'s replay of the figures `history` and `get-user --at/--at-tx`
//! read: each user's running balance, recorded beside every transfer
//! decided for it, and the settle batch and instant that place the
//! transfer in time.
//!
//! None of these figures is hashed by the chain, so an edit of one alone
//! (a balance raised in one history entry, a batch's time moved) would
//! keep every other check green. They are derived from the transfers,
//! whose fields the chain seals: replaying each user's transfers in the
//! order they were decided must give every recorded balance, and the
//! batches that place them must be in order and agree with the
//! transfers' own settlement times.
//!
//! An engine streams the user sides of its transfers here, in the order
//! its readers take them (by settle batch, then `tx_id`), and the replay
//! keeps one running figure per balance (an account in one currency): a
//! pass over the log, in memory for the balances only.

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;

use crate::ledger::model::{BalanceKey, Check, EXTERNAL_ACCOUNT, Findings, Problem, Status};
use crate::ledger::rules::verify::AccountFigures;
use crate::money::{Currency, CurrencyId};
use crate::time::rfc3339;

pub(crate) use super::verify::HISTORY_CHECK;

/// Which decided transfers record a user's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Only those that moved money: the balance right after
    /// ([`super::settle::Outcome::balances_after`]).
    WhenApplied,
    /// Failed ones too, with the balance as the decision found it
    /// ([`super::settle::Outcome::balances_seen`]).
    WhenDecided,
}

/// Where a ledger's index of time places a decided transfer: the settle
/// batch that decided it and that batch's instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    pub batch: i64,
    pub at: i64,
}

/// How a ledger places a decided transfer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// By what its own row holds (PostgreSQL's `settle_batch` and
    /// `settled_at`), if anything.
    Stored(Option<Placed>),
    /// By the log of settle batches ([`Replay::logged`]): an applied
    /// transfer belongs to the first batch that decided up to its id,
    /// unless it is listed as applied late.
    Logged,
}

/// One user side of a transfer, as stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Side<'a> {
    pub account: i64,
    /// The transfer's currency: the balance of the account it moves.
    pub currency: CurrencyId,
    pub tx_id: i64,
    /// As stored: a damaged ledger may hold any text.
    pub status: &'a str,
    pub amount: i64,
    /// Whether the account is the transfer's destination.
    pub incoming: bool,
    /// Whether the ledger has an entry for this side to record a balance
    /// in; a missing one is the `postings` check's to report.
    pub listed: bool,
    /// The balance recorded after the transfer.
    pub stored: Option<i64>,
    /// Where the index of time places it.
    pub placed: Placement,
    /// The transfer's own settlement time (sealed by the chain).
    pub settled_at: Option<i64>,
}

/// A side applied after transfers with larger ids had been decided (a hold
/// captured late), as a ledger that records them apart lists it: its
/// batch, that batch's instant if the batch is logged, and the largest id
/// the batches before it had decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LateSide {
    pub account: i64,
    pub tx_id: i64,
    pub batch: i64,
    pub at: Option<i64>,
    pub decided_before: Option<i64>,
}

/// A side as the replay keeps it, placed.
#[derive(Debug, Clone, Copy)]
struct Entry {
    account: i64,
    currency: CurrencyId,
    tx_id: i64,
    status: Option<Status>,
    amount: i64,
    incoming: bool,
    listed: bool,
    stored: Option<i64>,
    placed: Option<Placed>,
    settled_at: Option<i64>,
}

/// One balance's replay so far.
#[derive(Debug, Default, Clone, Copy)]
struct Running {
    balance: i128,
    /// The last placed side: (batch, instant, tx_id).
    last: Option<(i64, i64, i64)>,
}

/// What the replay found, kept as data until the users' names are known.
#[derive(Debug, Clone)]
enum Finding {
    Balance {
        account: i64,
        tx_id: i64,
        status: Option<Status>,
        stored: Option<i64>,
        replayed: Option<i128>,
    },
    Unplaced {
        account: i64,
        tx_id: i64,
    },
    Time {
        account: i64,
        tx_id: i64,
        placed: Placed,
        settled_at: Option<i64>,
    },
    Order {
        account: i64,
        tx_id: i64,
        at: i64,
        earlier_tx: i64,
        earlier_at: i64,
        same_batch: bool,
    },
    LogTime {
        batch: i64,
        at: i64,
        previous: i64,
        previous_at: i64,
    },
    LogCover {
        batch: i64,
        max_tx: i64,
        previous: i64,
        previous_max: i64,
    },
    LateStray(LateSide),
    LateUnlogged(LateSide),
    LateNotLate(LateSide),
}

/// The replay of every user's history; see the module's notes.
#[derive(Debug)]
pub(crate) struct Replay<'a> {
    recorded: Recorded,
    /// Every account, to name the users a finding concerns.
    names: &'a [AccountFigures],
    /// Positions in `names` by id, built at the first finding.
    index: HashMap<i64, usize>,
    currency: &'a Currency,
    accounts: FxHashMap<BalanceKey, Running>,
    /// Sides a ledger lists as applied late, until their transfer streams by.
    late: HashMap<(i64, i64), LateSide>,
    /// Late sides met, waiting for their place: by (batch, tx_id, account).
    waiting: BTreeMap<(i64, i64, i64), Entry>,
    /// The last settle batch logged: (batch, instant, largest id decided).
    logged: Option<(i64, i64, i64)>,
    /// Whether the log has no more batches to give.
    log_ended: bool,
    batches: u64,
    replayed: u64,
    findings: Findings,
}

impl<'a> Replay<'a> {
    /// A replay that names users from `accounts`, as `verify` read them.
    pub(crate) fn new(
        recorded: Recorded,
        accounts: &'a [AccountFigures],
        currency: &'a Currency,
    ) -> Self {
        Self {
            recorded,
            names: accounts,
            index: HashMap::new(),
            currency,
            accounts: FxHashMap::default(),
            late: HashMap::new(),
            waiting: BTreeMap::new(),
            logged: None,
            log_ended: false,
            batches: 0,
            replayed: 0,
            findings: Findings::default(),
        }
    }

    /// A side the ledger lists as applied late; given before the stream.
    pub(crate) fn late(&mut self, side: LateSide) {
        self.late.insert((side.account, side.tx_id), side);
    }

    /// Whether the log must give its next batch before `tx_id` can be
    /// placed: the batches logged so far decided only smaller ids. A
    /// ledger that logs batches streams them in batch order, interleaved
    /// with the transfers as this asks, so that neither is held in memory.
    pub(crate) fn wants_log(&self, tx_id: i64) -> bool {
        !self.log_ended && self.logged.is_none_or(|(_, _, max_tx)| max_tx < tx_id)
    }

    /// The log has given every batch.
    pub(crate) fn log_ended(&mut self) {
        self.log_ended = true;
    }

    /// A settle batch of a ledger that logs them, in batch order: each
    /// ran no earlier than the one before and decided up to an id no
    /// smaller.
    pub(crate) fn logged(&mut self, batch: i64, at: i64, max_tx: i64) {
        self.batches += 1;
        if let Some((previous, previous_at, previous_max)) = self.logged {
            if at < previous_at {
                self.find(Finding::LogTime {
                    batch,
                    at,
                    previous,
                    previous_at,
                });
            }
            if max_tx < previous_max {
                self.find(Finding::LogCover {
                    batch,
                    max_tx,
                    previous,
                    previous_max,
                });
            }
        }
        self.logged = Some((batch, at, max_tx));
    }

    /// One side, in the order the engine streams them: by batch, then
    /// `tx_id`, save the sides listed as late, which may come early and
    /// wait here for their place. The external account's side is passed
    /// over: it keeps no history.
    pub(crate) fn side(&mut self, side: Side<'_>) {
        if side.account == EXTERNAL_ACCOUNT {
            return;
        }
        let status = Status::parse(side.status);
        let placed = match side.placed {
            Placement::Stored(placed) => placed,
            // Only applied transfers are placed by the log; ordered as the
            // log is, the first batch that decided up to the id is the last
            // one it gave.
            Placement::Logged if status == Some(Status::Completed) => self
                .logged
                .filter(|&(_, _, max_tx)| max_tx >= side.tx_id)
                .map(|(batch, at, _)| Placed { batch, at }),
            Placement::Logged => None,
        };
        let mut entry = Entry {
            account: side.account,
            currency: side.currency,
            tx_id: side.tx_id,
            status,
            amount: side.amount,
            incoming: side.incoming,
            listed: side.listed,
            stored: side.stored,
            placed,
            settled_at: side.settled_at,
        };
        if let Some(late) = self.late.remove(&(side.account, side.tx_id)) {
            if entry.status != Some(Status::Completed) {
                self.find(Finding::LateStray(late));
            } else if let Some(at) = late.at {
                if late.decided_before.is_none_or(|max| late.tx_id >= max) {
                    self.find(Finding::LateNotLate(late));
                }
                entry.placed = Some(Placed {
                    batch: late.batch,
                    at,
                });
                self.waiting
                    .insert((late.batch, late.tx_id, late.account), entry);
                return;
            } else {
                // Placed as if it were not late: the side is judged too.
                self.find(Finding::LateUnlogged(late));
            }
        }
        if let Some(placed) = entry.placed {
            self.flush_before((placed.batch, entry.tx_id, entry.account));
        }
        self.apply(entry);
    }

    fn flush_before(&mut self, bound: (i64, i64, i64)) {
        while let Some(first) = self.waiting.first_entry() {
            if *first.key() >= bound {
                break;
            }
            let entry = first.remove();
            self.apply(entry);
        }
    }

    fn apply(&mut self, entry: Entry) {
        let applied = entry.status == Some(Status::Completed);
        let mut found = Vec::new();
        let running = self
            .accounts
            .entry(BalanceKey::new(entry.account, entry.currency))
            .or_default();
        match entry.placed {
            Some(placed) => {
                if let Some((batch, at, tx_id)) = running.last
                    && (placed.at < at || (placed.batch == batch && placed.at != at))
                {
                    found.push(Finding::Order {
                        account: entry.account,
                        tx_id: entry.tx_id,
                        at: placed.at,
                        earlier_tx: tx_id,
                        earlier_at: at,
                        same_batch: placed.batch == batch,
                    });
                }
                running.last = Some((placed.batch, placed.at, entry.tx_id));
                if applied && entry.settled_at != Some(placed.at) {
                    found.push(Finding::Time {
                        account: entry.account,
                        tx_id: entry.tx_id,
                        placed,
                        settled_at: entry.settled_at,
                    });
                }
            }
            None if applied => found.push(Finding::Unplaced {
                account: entry.account,
                tx_id: entry.tx_id,
            }),
            None => {}
        }
        let before = running.balance;
        if applied {
            let amount = i128::from(entry.amount);
            running.balance += if entry.incoming { amount } else { -amount };
        }
        let replayed = match (entry.status, self.recorded) {
            (Some(Status::Completed), _) => Some(running.balance),
            (Some(Status::Failed), Recorded::WhenDecided) => Some(before),
            _ => None,
        };
        if entry.listed {
            self.replayed += u64::from(replayed.is_some());
            if entry.stored.map(i128::from) != replayed {
                found.push(Finding::Balance {
                    account: entry.account,
                    tx_id: entry.tx_id,
                    status: entry.status,
                    stored: entry.stored,
                    replayed,
                });
            }
        }
        for finding in found {
            self.find(finding);
        }
    }

    fn find(&mut self, finding: Finding) {
        if self.index.is_empty() {
            self.index = self
                .names
                .iter()
                .enumerate()
                .map(|(i, a)| (a.id, i))
                .collect();
        }
        let who = |account: i64| -> (Option<String>, String) {
            match self.index.get(&account).map(|&i| &self.names[i]) {
                Some(figures) => (figures.name.clone(), figures.label()),
                None => (None, format!("account {account}")),
            }
        };
        let problem = problem(&finding, &who, self.currency);
        self.findings.push(problem);
    }

    /// The check, once every side has streamed by: what still waits takes
    /// its place, and a late side whose transfer never came is reported.
    pub(crate) fn finish(mut self) -> Check {
        self.flush_before((i64::MAX, i64::MAX, i64::MAX));
        let mut strays: Vec<LateSide> = self.late.drain().map(|(_, side)| side).collect();
        strays.sort_unstable_by_key(|side| (side.tx_id, side.account));
        for side in strays {
            self.find(Finding::LateStray(side));
        }
        let findings = self.findings;
        let batches = if self.batches > 0 {
            format!(
                "; {} settle batch{} logged in order",
                self.batches,
                if self.batches == 1 { "" } else { "es" }
            )
        } else {
            String::new()
        };
        let detail = if findings.is_empty() {
            format!(
                "{} recorded balance{} replayed from the transfers in the order they were decided, each as recorded; settle times in order{batches}",
                self.replayed,
                if self.replayed == 1 { "" } else { "s" }
            )
        } else {
            "recorded balances and settle times checked against the transfers replayed in the order they were decided, and they disagree".into()
        };
        findings.into_check(HISTORY_CHECK, detail)
    }
}

/// One finding in words, naming the user and transfer it concerns.
fn problem(
    finding: &Finding,
    who: &dyn Fn(i64) -> (Option<String>, String),
    currency: &Currency,
) -> Problem {
    let about = |account: i64, tx_id: i64, message: String| Problem {
        user: who(account).0,
        tx_id: Some(tx_id),
        message,
    };
    match *finding {
        Finding::Balance {
            account,
            tx_id,
            status,
            stored,
            replayed,
        } => {
            let label = who(account).1;
            let message = match (stored, replayed) {
                (Some(stored), Some(replayed)) => format!(
                    "{label} has {} recorded as the balance after transfer {tx_id}, but the transfers replayed in the order they were decided give {}",
                    currency.format(stored),
                    currency.format_wide(replayed)
                ),
                (None, Some(replayed)) => format!(
                    "{label} has no balance recorded after transfer {tx_id}, but the transfers replayed in the order they were decided give {}",
                    currency.format_wide(replayed)
                ),
                (stored, None) => format!(
                    "{label} has {} recorded as the balance after transfer {tx_id}, which is {} and records none",
                    stored.map_or_else(|| "none".into(), |s| currency.format(s)),
                    status.map_or("of an unknown status", Status::as_str)
                ),
            };
            about(account, tx_id, message)
        }
        Finding::Unplaced { account, tx_id } => about(
            account,
            tx_id,
            format!(
                "transfer {tx_id} was applied to {}, but no settle batch places it in time",
                who(account).1
            ),
        ),
        Finding::Time {
            account,
            tx_id,
            placed,
            settled_at,
        } => about(
            account,
            tx_id,
            format!(
                "transfer {tx_id} was settled at {}, but settle batch {}, which places it in the history of {}, ran at {}",
                settled_at.map_or_else(|| "no time".into(), rfc3339),
                placed.batch,
                who(account).1,
                rfc3339(placed.at)
            ),
        ),
        Finding::Order {
            account,
            tx_id,
            at,
            earlier_tx,
            earlier_at,
            same_batch,
        } => about(
            account,
            tx_id,
            if same_batch {
                format!(
                    "transfer {tx_id} of {} is placed at {}, and transfer {earlier_tx} of the same settle batch at {}",
                    who(account).1,
                    rfc3339(at),
                    rfc3339(earlier_at)
                )
            } else {
                format!(
                    "transfer {tx_id} of {} is placed at {}, before transfer {earlier_tx} ({}), which was decided earlier",
                    who(account).1,
                    rfc3339(at),
                    rfc3339(earlier_at)
                )
            },
        ),
        Finding::LogTime {
            batch,
            at,
            previous,
            previous_at,
        } => Problem::about_file(format!(
            "settle batch {batch} is logged at {}, before batch {previous} ({})",
            rfc3339(at),
            rfc3339(previous_at)
        )),
        Finding::LogCover {
            batch,
            max_tx,
            previous,
            previous_max,
        } => Problem::about_file(format!(
            "settle batch {batch} is logged as deciding up to transfer {max_tx}, less than batch {previous} (up to {previous_max})"
        )),
        Finding::LateStray(late) => about(
            late.account,
            late.tx_id,
            format!(
                "transfer {} is listed as applied to {} late, in settle batch {}, but it is not a COMPLETED transfer of that account",
                late.tx_id,
                who(late.account).1,
                late.batch
            ),
        ),
        Finding::LateUnlogged(late) => about(
            late.account,
            late.tx_id,
            format!(
                "transfer {} is listed as applied to {} late, in settle batch {}, which is not logged",
                late.tx_id,
                who(late.account).1,
                late.batch
            ),
        ),
        Finding::LateNotLate(late) => about(
            late.account,
            late.tx_id,
            format!(
                "transfer {} is listed as applied to {} late, in settle batch {}, but the batches before it had decided {}",
                late.tx_id,
                who(late.account).1,
                late.batch,
                late.decided_before.map_or_else(
                    || "nothing".into(),
                    |max| format!("only up to transfer {max}")
                )
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::ledger::rules::settle::{Account, Due, settle_due};

    /// One side as a settle batch wrote it: (due, status, stored, batch).
    type Written = (Due, Status, (Option<i64>, Option<i64>), i64);

    /// `transfers` (src, dst, amount) among accounts 0 to 3, decided by
    /// [`settle_due`] `batch` at a time, each side's balance stored as
    /// an engine that records `recorded` writes it.
    fn settled(transfers: &[(i64, i64, i64)], batch: usize, recorded: Recorded) -> Vec<Written> {
        let due: Vec<Due> = transfers
            .iter()
            .filter(|(src, dst, _)| src != dst)
            .enumerate()
            .map(|(i, &(src, dst, amount))| Due {
                tx_id: i as i64 + 1,
                src,
                dst,
                amount,
                currency: CurrencyId::DEFAULT,
                refund_of: None,
                pair: None,
            })
            .collect();
        let mut accounts: HashMap<BalanceKey, Account> = (0..4)
            .map(|id| {
                (
                    BalanceKey::default_currency(id),
                    Account::read(0, 1_000_000, 1_000_000, 0, 0, false),
                )
            })
            .collect();
        let mut outcomes = Vec::new();
        let mut written = Vec::new();
        for (n, chunk) in due.chunks(batch).enumerate() {
            settle_due(chunk, &mut accounts, &mut HashMap::new(), &mut outcomes).unwrap();
            for (d, outcome) in chunk.iter().zip(&outcomes) {
                let stored = match recorded {
                    Recorded::WhenApplied => outcome.balances_after(d),
                    Recorded::WhenDecided => outcome.balances_seen(d),
                };
                written.push((*d, outcome.status(), stored, n as i64 + 1));
            }
        }
        written
    }

    /// Replays what was written, each batch placed at an instant of its
    /// own number.
    fn replay(written: &[Written], recorded: Recorded) -> Check {
        let currency = Currency::default();
        let mut replay = Replay::new(recorded, &[], &currency);
        for &(d, status, (src_stored, dst_stored), batch) in written {
            let placed = Some(Placed { batch, at: batch });
            for (account, incoming, stored) in
                [(d.src, false, src_stored), (d.dst, true, dst_stored)]
            {
                replay.side(Side {
                    account,
                    currency: d.currency,
                    tx_id: d.tx_id,
                    status: status.as_str(),
                    amount: d.amount,
                    incoming,
                    listed: true,
                    stored,
                    placed: Placement::Stored(placed),
                    settled_at: Some(batch),
                });
            }
        }
        replay.finish()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn what_settle_records_replays_and_any_balance_moved_is_found(
            transfers in prop::collection::vec((0i64..4, 0i64..4, 1i64..300), 1..60),
            batch in 1usize..10,
            decided in any::<bool>(),
            raised in any::<prop::sample::Index>(),
        ) {
            let recorded = if decided { Recorded::WhenDecided } else { Recorded::WhenApplied };
            let mut written = settled(&transfers, batch, recorded);
            let check = replay(&written, recorded);
            prop_assert!(check.ok, "{:?}", check.problems);
            let with_balance: Vec<usize> = (0..written.len())
                .filter(|&i| written[i].2.0.is_some() || written[i].2.1.is_some())
                .collect();
            if !with_balance.is_empty() {
                let i = with_balance[raised.index(with_balance.len())];
                let stored = &mut written[i].2;
                let side = if stored.0.is_some() { &mut stored.0 } else { &mut stored.1 };
                *side = side.map(|b| b + 1);
                let check = replay(&written, recorded);
                prop_assert!(!check.ok);
                prop_assert_eq!(check.problems[0].tx_id, Some(written[i].0.tx_id));
            }
        }
    }

    fn logged_side(tx_id: i64, incoming: bool, amount: i64, stored: i64, at: i64) -> Side<'static> {
        Side {
            account: 1,
            currency: CurrencyId::DEFAULT,
            tx_id,
            status: "COMPLETED",
            amount,
            incoming,
            listed: true,
            stored: Some(stored),
            placed: Placement::Logged,
            settled_at: Some(at),
        }
    }

    #[test]
    fn a_side_listed_as_late_takes_its_place_in_its_batch() {
        let currency = Currency::default();
        let names = [AccountFigures {
            id: 1,
            currency: CurrencyId::DEFAULT,
            name: Some("alice".into()),
            balance: 0,
            pending_in: 0,
            pending_out: 0,
            largest_limit: 0,
        }];
        // Batch 1 (at 10) decided up to 3: a deposit (1) and a payment
        // (3); the hold 2 was captured and applied in batch 2 (at 20).
        let run = |late: Option<LateSide>| -> Check {
            let mut replay = Replay::new(Recorded::WhenApplied, &names, &currency);
            if let Some(late) = late {
                replay.late(late);
            }
            replay.logged(1, 10, 3);
            replay.side(logged_side(1, true, 100, 100, 10));
            replay.side(logged_side(2, false, 50, 40, 20));
            replay.side(logged_side(3, false, 10, 90, 10));
            replay.logged(2, 20, 3);
            replay.log_ended();
            replay.finish()
        };
        let late = LateSide {
            account: 1,
            tx_id: 2,
            batch: 2,
            at: Some(20),
            decided_before: Some(3),
        };
        let check = run(Some(late));
        assert!(check.ok, "{:?}", check.problems);
        assert_eq!(
            check.detail,
            "3 recorded balances replayed from the transfers in the order they were decided, each as recorded; settle times in order; 2 settle batches logged in order"
        );
        // Without the list, the hold is placed in batch 1 by its id.
        let check = run(None);
        let messages: Vec<&str> = check.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "transfer 2 was settled at 1970-01-01T00:00:00.020Z, but settle batch 1, which places it in the history of user 'alice', ran at 1970-01-01T00:00:00.010Z",
                "user 'alice' has 0.40 recorded as the balance after transfer 2, but the transfers replayed in the order they were decided give 0.50",
                "user 'alice' has 0.90 recorded as the balance after transfer 3, but the transfers replayed in the order they were decided give 0.40",
            ]
        );
        assert_eq!(check.problems[0].user.as_deref(), Some("alice"));
    }
}
