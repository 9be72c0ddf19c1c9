//! Settlement's decisions, once for every engine: a batch of due transfers
//! decided oldest first over the accounts an engine read for it.
//!
//! An engine reads the batch (the oldest PENDING transfers it may take),
//! the accounts they name and, for refunds, the transfers they pay back;
//! [`settle_due`] decides every transfer against those figures as earlier
//! ones of the batch left them, and the engine writes what it returns.
//! The account map is the engine's: SQLite keeps it from batch to batch
//! while it can prove it fresh, PostgreSQL reads it anew under its locks.
//! It is keyed by [`BalanceKey`]: a transfer moves the figures of its two
//! accounts in its own currency and no others.

use std::collections::HashMap;
use std::hash::BuildHasher;

use rustc_hash::FxHashMap;

use crate::error::{Result, WalletError};
use crate::ledger::model::{BalanceKey, BatchCounts, EXTERNAL_ACCOUNT, FailReason, Status};
use crate::money::CurrencyId;

use super::{Decision, decide, refund_fits, release_pending};

/// A PENDING transfer as settlement reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    pub tx_id: i64,
    pub src: i64,
    pub dst: i64,
    pub amount: i64,
    /// The currency it moves: the figures it reads and changes are its
    /// accounts' in this currency.
    pub currency: CurrencyId,
    /// For a refund: the transfer it pays back.
    pub refund_of: Option<i64>,
    /// For an exchange leg: the other leg, decided with it.
    pub pair: Option<i64>,
}

impl Due {
    /// The source's balance this transfer draws on.
    pub(crate) fn src_key(&self) -> BalanceKey {
        BalanceKey::new(self.src, self.currency)
    }

    /// The destination's balance this transfer pays into.
    pub(crate) fn dst_key(&self) -> BalanceKey {
        BalanceKey::new(self.dst, self.currency)
    }
}

/// An account's figures in one currency as settlement reads and changes
/// them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Account {
    pub balance: i64,
    pub pending_in: i64,
    pub pending_out: i64,
    /// Reserved by live holds: not for PENDING transfers to spend.
    pub held: i64,
    /// How far below zero the balance may go, as in force when read.
    pub overdraft: i64,
    /// Nothing leaves a frozen account, in any currency: an engine reads
    /// the flag of the account into each of its balances.
    pub frozen: bool,
    /// Changed since the engine last wrote it back; the engine clears it.
    pub dirty: bool,
}

impl Account {
    /// Figures as read, not yet changed; the policy is read with them, in
    /// the same statement, so a decision sees the one in force.
    pub(crate) fn read(
        balance: i64,
        pending_in: i64,
        pending_out: i64,
        held: i64,
        overdraft: i64,
        frozen: bool,
    ) -> Self {
        Self {
            balance,
            pending_in,
            pending_out,
            held,
            overdraft,
            frozen,
            dirty: false,
        }
    }
}

/// A transfer that refunds are paid back from, as settlement reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Original {
    pub amount: i64,
    /// Its refunds COMPLETED so far, those of this batch included once
    /// [`settle_due`] completed them.
    pub refunded: i64,
}

/// The instant a settle batch is stamped with: the clock's, but never
/// before the batch it follows, so that a clock stepped back cannot place a
/// later batch before an earlier one (`get-user --at` finds batches by
/// time, and `verify`'s history holds them in order).
pub(crate) fn batch_instant(clock: i64, previous_batch: Option<i64>) -> i64 {
    previous_batch.map_or(clock, |previous| clock.max(previous))
}

/// Holds past their expiry, as found by an engine (the source's balance in
/// the hold's currency, amount reserved): the reservation each balance gets
/// back, in (account, currency) order, so an engine can write them in the
/// order it locks accounts. Returns how many holds expired.
pub(crate) fn expire_holds(
    found: impl IntoIterator<Item = (BalanceKey, i64)>,
    released: &mut Vec<(BalanceKey, i64)>,
) -> u64 {
    released.clear();
    let mut count = 0u64;
    for (src, hold_amount) in found {
        count += 1;
        released.push((src, hold_amount));
    }
    released.sort_unstable_by_key(|&(src, _)| src);
    released.dedup_by(|later, kept| {
        if later.0 != kept.0 {
            return false;
        }
        kept.1 = kept.1.saturating_add(later.1);
        true
    });
    count
}

/// Gives the reservations of expired holds back to the balances of
/// `accounts` they belong to; the engine writes the same amounts for every
/// balance (those it has not read included) as relative updates of `held`.
pub(crate) fn release_holds<S: BuildHasher>(
    released: &[(BalanceKey, i64)],
    accounts: &mut HashMap<BalanceKey, Account, S>,
) -> Result<()> {
    for &(key, amount) in released {
        if let Some(account) = accounts.get_mut(&key) {
            account.held = account
                .held
                .checked_sub(amount)
                .filter(|left| *left >= 0)
                .ok_or_else(|| {
                    WalletError::Integrity(format!(
                        "account {} holds less than the holds that expired reserved",
                        key.account
                    ))
                })?;
        }
    }
    Ok(())
}

/// Decides `due` (oldest first) over `accounts`, which must hold the
/// balance of every account a due transfer names in its currency, and
/// `originals`, which must hold every transfer a due refund pays back. Each
/// transfer's [`Outcome`] goes into `outcomes`, in the order of `due`. Both
/// balances a transfer names leave its pending sum whatever the outcome,
/// and are marked dirty; no other balance is touched.
///
/// The two legs of an exchange are decided together, at the first leg's
/// place: each is judged on its own balances (the legs move two currencies,
/// so they share none), as the transfers before the first left them; both
/// complete, or both fail with the reason of the first that could not (the
/// first leg's before the second's), and then no balance moves. That is
/// the place each leg would be decided at alone: no transfer naming either
/// party is queued between the legs. An engine hands over whole pairs only;
/// a leg without its partner in `due` is a damaged ledger or engine.
pub(crate) fn settle_due<S: BuildHasher, T: BuildHasher>(
    due: &[Due],
    accounts: &mut HashMap<BalanceKey, Account, S>,
    originals: &mut HashMap<i64, Original, T>,
    outcomes: &mut Vec<Outcome>,
) -> Result<BatchCounts> {
    outcomes.clear();
    outcomes.reserve(due.len());
    let mut counts = BatchCounts::default();
    if !due.iter().any(|d| d.pair.is_some()) {
        for d in due {
            let judged = judge(d, accounts, originals)?;
            outcomes.push(apply(d, judged, accounts, originals, &mut counts)?);
        }
        return Ok(counts);
    }
    // Built only when a pair's legs are not next to each other in `due`.
    let mut partners: Option<FxHashMap<i64, usize>> = None;
    // Every slot is written below: a first leg writes its second's too.
    outcomes.resize(
        due.len(),
        Outcome {
            decision: Decision::Fail(FailReason::InsufficientFunds),
            src_balance: 0,
            dst_balance: 0,
        },
    );
    for (index, d) in due.iter().enumerate() {
        let Some(pair) = d.pair else {
            let judged = judge(d, accounts, originals)?;
            outcomes[index] = apply(d, judged, accounts, originals, &mut counts)?;
            continue;
        };
        let partner = partner(d, index, pair, due, &mut partners)?;
        if pair < d.tx_id {
            continue;
        }
        let second = &due[partner];
        let (mut first_judged, mut second_judged) = (
            judge(d, accounts, originals)?,
            judge(second, accounts, originals)?,
        );
        let failed = match (first_judged.0, second_judged.0) {
            (Decision::Fail(reason), _) | (_, Decision::Fail(reason)) => Some(reason),
            _ => None,
        };
        if let Some(reason) = failed {
            first_judged.0 = Decision::Fail(reason);
            second_judged.0 = Decision::Fail(reason);
        }
        outcomes[index] = apply(d, first_judged, accounts, originals, &mut counts)?;
        outcomes[partner] = apply(second, second_judged, accounts, originals, &mut counts)?;
    }
    Ok(counts)
}

/// The index in `due` of a leg's partner, which must name it back and move
/// another currency between the same two accounts the other way.
fn partner(
    leg: &Due,
    index: usize,
    pair: i64,
    due: &[Due],
    partners: &mut Option<FxHashMap<i64, usize>>,
) -> Result<usize> {
    let next_to = [index.checked_sub(1), Some(index + 1)]
        .into_iter()
        .flatten()
        .find(|&i| due.get(i).is_some_and(|other| other.tx_id == pair));
    let at = next_to.or_else(|| {
        partners
            .get_or_insert_with(|| {
                due.iter()
                    .enumerate()
                    .filter(|(_, d)| d.pair.is_some())
                    .map(|(index, d)| (d.tx_id, index))
                    .collect()
            })
            .get(&pair)
            .copied()
    });
    let found = at.filter(|&index| {
        let other = &due[index];
        other.pair == Some(leg.tx_id)
            && (other.src, other.dst) == (leg.dst, leg.src)
            && other.currency != leg.currency
            && other.refund_of.is_none()
            && leg.refund_of.is_none()
    });
    found.ok_or_else(|| {
        WalletError::Integrity(format!(
            "exchange leg {} is not settled with its pair {pair}, which is missing or does not mirror it; run `wallet verify`",
            leg.tx_id
        ))
    })
}

/// A due transfer's decision over the balances as they stand, with the
/// figures it found; nothing is changed yet.
fn judge<S: BuildHasher, T: BuildHasher>(
    d: &Due,
    accounts: &HashMap<BalanceKey, Account, S>,
    originals: &HashMap<i64, Original, T>,
) -> Result<(Decision, Account, Account)> {
    let src_before = figures(accounts, d.src_key())?;
    let dst_before = figures(accounts, d.dst_key())?;
    let mut decision = decide(d.src, &src_before, dst_before.balance, d.amount);
    if let (Some(refunded), Decision::Complete { .. }) = (d.refund_of, decision) {
        let original = originals.get(&refunded).ok_or_else(|| {
            WalletError::Integrity(format!(
                "refund {} pays back transfer {refunded}, which does not exist; run `wallet verify`",
                d.tx_id
            ))
        })?;
        if !refund_fits(original.amount, original.refunded, d.amount) {
            decision = Decision::Fail(FailReason::RefundExceedsOriginal);
        }
    }
    Ok((decision, src_before, dst_before))
}

/// Writes a judged decision into the figures: the balances move if it
/// completed, the pending sums are released either way.
fn apply<S: BuildHasher, T: BuildHasher>(
    d: &Due,
    (decision, src_before, dst_before): (Decision, Account, Account),
    accounts: &mut HashMap<BalanceKey, Account, S>,
    originals: &mut HashMap<i64, Original, T>,
    counts: &mut BatchCounts,
) -> Result<Outcome> {
    let (src_balance, dst_balance) = match decision {
        Decision::Complete {
            src_balance,
            dst_balance,
        } => {
            if let Some(original) = d.refund_of.and_then(|o| originals.get_mut(&o)) {
                original.refunded += d.amount;
            }
            counts.completed += 1;
            (src_balance, dst_balance)
        }
        Decision::Fail(_) => {
            counts.failed += 1;
            (src_before.balance, dst_before.balance)
        }
    };
    let src_pending_out = release_pending(d.src, src_before.pending_out, d.amount)?;
    let dst_pending_in = release_pending(d.dst, dst_before.pending_in, d.amount)?;
    let src = accounts.get_mut(&d.src_key()).expect("read above");
    src.balance = src_balance;
    src.pending_out = src_pending_out;
    src.dirty = true;
    let dst = accounts.get_mut(&d.dst_key()).expect("read above");
    dst.balance = dst_balance;
    dst.pending_in = dst_pending_in;
    dst.dirty = true;
    Ok(Outcome {
        decision,
        src_balance,
        dst_balance,
    })
}

fn figures<S: BuildHasher>(
    accounts: &HashMap<BalanceKey, Account, S>,
    key: BalanceKey,
) -> Result<Account> {
    accounts.get(&key).copied().ok_or_else(|| {
        WalletError::Integrity(format!(
            "a transfer names account {}, which does not exist; run `wallet verify`",
            key.account
        ))
    })
}

/// What settlement made of one due transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub decision: Decision,
    /// Each side's balance once it was decided: after it moved, or as the
    /// failed transfer found it.
    pub src_balance: i64,
    pub dst_balance: i64,
}

impl Outcome {
    /// The status a decided transfer is stored with.
    pub(crate) fn status(self) -> Status {
        match self.decision {
            Decision::Complete { .. } => Status::Completed,
            Decision::Fail(_) => Status::Failed,
        }
    }

    /// Why it failed, as stored; none for a completed transfer.
    pub(crate) fn reason(self) -> Option<FailReason> {
        match self.decision {
            Decision::Complete { .. } => None,
            Decision::Fail(reason) => Some(reason),
        }
    }

    /// Each user side's balance right after the transfer was applied, as
    /// its history records it: none where it failed, and none for the
    /// external account, which keeps no history.
    pub(crate) fn balances_after(self, due: &Due) -> (Option<i64>, Option<i64>) {
        match self.decision {
            Decision::Complete { .. } => self.balances_seen(due),
            Decision::Fail(_) => (None, None),
        }
    }

    /// Each user side's balance once the transfer was decided, applied or
    /// not: what an audit of a failure compares with its amount. None for
    /// the external account, whose figures a worker may read unlocked.
    pub(crate) fn balances_seen(self, due: &Due) -> (Option<i64>, Option<i64>) {
        let user = |id: i64, balance: i64| (id != EXTERNAL_ACCOUNT).then_some(balance);
        (
            user(due.src, self.src_balance),
            user(due.dst, self.dst_balance),
        )
    }
}
