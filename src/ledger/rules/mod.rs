//! The rules of money, once for every engine: pure functions over figures an
//! engine has read, with no I/O.
//!
//! An engine reads and locks rows; these functions decide what the rows
//! become: whether a request names two distinct parties, whether a reused
//! idempotency key replays or conflicts, how pending sums move, and whether
//! a due transfer completes or fails, what a status reads as at an instant
//! and what can still change. A chunk of queued lines is decided in input
//! order by [`plan::plan_chunk`], the one planner every engine calls;
//! settlement's loop over a batch is in [`settle`], `verify`'s checks over
//! the figures in [`verify`], its replay of the running balances and
//! settle times the histories read in [`replay`], and what an operator's
//! change makes of an account's policy, and the policy in force at an
//! instant, in [`policy`].

pub(crate) mod claim;
pub(crate) mod currencies;
pub(crate) mod plan;
pub(crate) mod policy;
pub(crate) mod replay;
pub(crate) mod settle;
pub(crate) mod verify;

use crate::domain::{IdempotencyKey, UserName};
use crate::error::{Result, WalletError};
use crate::money::{Currency, CurrencyId};

use super::model::{
    EXTERNAL_ACCOUNT, Expiry, FailReason, Instant, Kind, NewTransfer, Policy, Queued, Status, TxId,
};
pub(crate) use super::model::{available, check_exchange_currencies, check_parties};

/// A refund must be decided against the refunds already completed: it
/// fails if, with them, it would return more than the original.
pub(crate) fn refund_fits(original_amount: i64, completed_refunds: i64, amount: i64) -> bool {
    completed_refunds
        .checked_add(amount)
        .is_some_and(|total| total <= original_amount)
}

/// The fields an idempotency key pins: a second request under the same key
/// must repeat all of them to be a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pinned<'a> {
    pub src: i64,
    pub dst: i64,
    /// For a hold, the amount it reserved, whatever was captured since.
    pub amount: i64,
    pub currency: CurrencyId,
    pub memo: Option<&'a str>,
    pub hold: bool,
    pub refund_of: Option<i64>,
    /// A hold's expiry: as a request asks it, or as an earlier hold was
    /// stored; `None` for anything that is not a hold.
    pub expiry: Option<PinnedExpiry>,
    /// For an exchange: what the desk pays back (amount, currency).
    pub counter: Option<(i64, CurrencyId)>,
}

/// A hold's expiry on either side of a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinnedExpiry {
    /// What a request asks: none, an instant, or a time after placement.
    Asked(Expiry),
    /// What an earlier hold holds: when it was placed and when it expires.
    Stored {
        placed_at: i64,
        expires_at: Option<i64>,
    },
}

impl PinnedExpiry {
    /// An earlier hold's expiry as stored.
    pub(crate) fn stored(placed_at: i64, expires_at: Option<i64>) -> Self {
        Self::Stored {
            placed_at,
            expires_at,
        }
    }
}

/// What a stored transfer was, as far as its key pins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoredAs {
    /// A transfer, or a refund of `refund_of`.
    Transfer { refund_of: Option<i64> },
    /// A hold of `amount` (whatever was captured since), placed at
    /// `placed_at`.
    Hold {
        amount: i64,
        placed_at: i64,
        expires_at: Option<i64>,
    },
}

impl<'a> Pinned<'a> {
    /// What a stored transfer pins: its accounts, its amount as stored
    /// (a hold's own amount instead) and currency, its memo and what it was.
    pub(crate) fn stored(
        src: i64,
        dst: i64,
        (amount, currency): (i64, CurrencyId),
        memo: Option<&'a str>,
        stored_as: StoredAs,
    ) -> Self {
        match stored_as {
            StoredAs::Transfer { refund_of } => Self {
                src,
                dst,
                amount,
                currency,
                memo,
                hold: false,
                refund_of,
                expiry: None,
                counter: None,
            },
            StoredAs::Hold {
                amount,
                placed_at,
                expires_at,
            } => Self {
                src,
                dst,
                amount,
                currency,
                memo,
                hold: true,
                refund_of: None,
                expiry: Some(PinnedExpiry::stored(placed_at, expires_at)),
                counter: None,
            },
        }
    }

    /// What a request pins, once its parties are resolved to accounts.
    pub(crate) fn requested(transfer: &'a NewTransfer, src: i64, dst: i64) -> Self {
        Self {
            src,
            dst,
            amount: transfer.amount().minor_units(),
            currency: request_currency(transfer),
            memo: transfer.memo(),
            hold: matches!(transfer.kind(), Kind::Hold(_)),
            refund_of: match transfer.kind() {
                Kind::Refund(original) => Some(original.get()),
                _ => None,
            },
            expiry: match transfer.kind() {
                Kind::Hold(expiry) => Some(PinnedExpiry::Asked(expiry)),
                _ => None,
            },
            counter: match transfer.kind() {
                Kind::Exchange(counter) => Some((counter.amount.minor_units(), counter.currency)),
                _ => None,
            },
        }
    }

    /// The same stored first leg of an exchange, with what its second leg
    /// pays back.
    pub(crate) fn with_counter(self, counter: Option<(i64, CurrencyId)>) -> Self {
        Self { counter, ..self }
    }
}

/// The currency a request moves: the one it names, else the ledger's
/// default.
pub(crate) fn request_currency(transfer: &NewTransfer) -> CurrencyId {
    transfer.currency()
}

/// Decides a request whose key is already taken by transfer `earlier_id`:
/// the same fields replay it (its id and current status), any field that
/// differs is a conflict naming the first such field.
pub(crate) fn replay_or_conflict(
    key: &IdempotencyKey,
    earlier_id: i64,
    earlier_status: Status,
    earlier: Pinned<'_>,
    requested: Pinned<'_>,
) -> Result<Queued> {
    let field = if earlier.src != requested.src {
        Some("source")
    } else if earlier.dst != requested.dst {
        Some("destination")
    } else if earlier.currency != requested.currency {
        // Before the amount: amounts in two currencies are not comparable.
        Some("currency")
    } else if earlier.amount != requested.amount {
        Some("amount")
    } else if earlier.memo != requested.memo {
        Some("memo")
    } else if earlier.hold != requested.hold {
        Some("kind (hold or transfer)")
    } else if earlier.refund_of != requested.refund_of {
        Some("refunded transfer")
    } else if earlier.counter.is_some() != requested.counter.is_some() {
        Some("kind (exchange or transfer)")
    } else if earlier.counter.map(|(_, c)| c) != requested.counter.map(|(_, c)| c) {
        Some("exchanged currency")
    } else if earlier.counter != requested.counter {
        Some("exchanged amount")
    } else if let Some(PinnedExpiry::Asked(wanted)) = requested.expiry
        && !matches!(earlier.expiry, Some(PinnedExpiry::Stored { placed_at, expires_at })
                     if wanted.instant(placed_at) == expires_at)
    {
        // A relative expiry is compared as the time it asks after the
        // hold was placed, never as an instant taken from the retry's own
        // clock: `--expires-in 7d` does not replay a hold of `1h`.
        Some("expiry")
    } else {
        None
    };
    match field {
        Some(field) => Err(WalletError::IdempotencyConflict {
            key: key.as_str().to_string(),
            field,
            tx_id: earlier_id,
            earlier_line: None,
        }),
        None => Ok(Queued {
            tx_id: TxId::new(earlier_id),
            status: earlier_status,
            replayed: true,
            pair_tx_id: None,
        }),
    }
}

/// A status as an engine stored it; anything unknown means a damaged ledger.
pub(crate) fn stored_status(text: &str) -> Result<Status> {
    Status::parse(text).ok_or_else(|| {
        WalletError::Integrity(format!(
            "a transfer has the unknown status '{}'",
            crate::text::echo(text)
        ))
    })
}

/// The SQL condition picking the rows [`Status::as_of`] reads as EXPIRED
/// though they are stored HELD: `row` prefixes the columns (`""`, `"h."`)
/// and `now` is the SQL expression of the instant. It names HELD as a
/// partial index over held transfers does, so that index serves it.
pub(crate) fn past_expiry_sql(row: &str, now: impl std::fmt::Display) -> String {
    format!(
        "{row}status = '{}' AND {row}expires_at <= {now}",
        Status::Held.as_str()
    )
}

/// The SQL condition on a hold's expiry alone under which [`Status::as_of`]
/// leaves a stored HELD as HELD: it has none, or it lies after `now`.
pub(crate) fn before_expiry_sql(row: &str, now: impl std::fmt::Display) -> String {
    format!("({row}expires_at IS NULL OR {row}expires_at > {now})")
}

/// Whether a transfer in this stored status can still change: a PENDING
/// one is decided by settlement or a cancel, a HELD one by a capture, a
/// release or its expiry (a hold past its expiry is still HELD on disk
/// until `settle` marks it). The hash chain seals only what cannot.
pub(crate) fn can_change(stored: Status) -> bool {
    matches!(stored, Status::Pending | Status::Held)
}

/// The stored statuses [`can_change`] names, as an SQL list (`'PENDING',
/// 'HELD'`), for the statements that select transfers by it.
pub(crate) fn changing_statuses_sql() -> String {
    statuses_sql(can_change)
}

/// Whether a refund in this stored status counts against what is left of
/// its original when another refund is queued: a completed one paid money
/// back and a pending one may yet, so the refunds queued never promise
/// more than the original. A failed or cancelled one gives its amount back.
pub(crate) fn refund_counts_when_queued(stored: Status) -> bool {
    matches!(stored, Status::Pending | Status::Completed)
}

/// Whether a refund in this stored status has paid money back: only a
/// completed one. Settlement decides a refund against these
/// ([`refund_fits`]) and readers report their sum as `refunded`.
pub(crate) fn refund_paid(stored: Status) -> bool {
    stored == Status::Completed
}

/// The stored statuses [`refund_counts_when_queued`] names, as an SQL list,
/// for the statements that sum a transfer's refunds when one is queued.
pub(crate) fn refund_counting_statuses_sql() -> String {
    statuses_sql(refund_counts_when_queued)
}

/// The stored statuses [`refund_paid`] names, as an SQL list, for the
/// statements that sum a transfer's refunds paid back.
pub(crate) fn refund_paid_statuses_sql() -> String {
    statuses_sql(refund_paid)
}

/// The statuses a rule picks, quoted and comma-separated for an SQL `IN`.
fn statuses_sql(picked: fn(Status) -> bool) -> String {
    Status::ALL
        .into_iter()
        .filter(|status| picked(*status))
        .map(|status| format!("'{}'", status.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A user's `held` as readers report it: the stored sum less what holds
/// past their expiry, not yet marked, reserved (their `hold_amount`: what a
/// hold reserves, which a partial capture leaves in `amount` smaller).
pub(crate) fn held_as_of(stored_held: i64, expired_reserved: i64) -> i64 {
    stored_held.saturating_sub(expired_reserved)
}

/// Only a PENDING transfer can be cancelled; one that settlement (or an
/// earlier cancel) already decided stays as it is.
pub(crate) fn check_cancellable(tx_id: i64, stored: &str) -> Result<()> {
    match stored_status(stored)? {
        Status::Pending => Ok(()),
        _ => Err(WalletError::NotPending {
            tx_id,
            status: stored.to_string(),
        }),
    }
}

/// An exchange is cancelled whole or not at all: both legs must still be
/// PENDING (settlement decides them together, so one decided alone means a
/// damaged ledger, which the status of the leg asked about reports). `asked`
/// is the leg named, `other` its pair, each `(tx_id, stored status)`; a
/// missing pair is a damaged ledger.
pub(crate) fn check_pair_cancellable(asked: (i64, &str), other: Option<(i64, &str)>) -> Result<()> {
    check_cancellable(asked.0, asked.1)?;
    let Some((pair, stored)) = other else {
        return Err(WalletError::Integrity(format!(
            "transfer {} is one leg of an exchange whose other leg does not exist; run `wallet verify`",
            asked.0
        )));
    };
    check_cancellable(pair, stored)
}

/// The pending sums after queueing `transfer`: the source's `pending_out`
/// and the destination's `pending_in`, each grown by the amount. A sum that
/// would overflow refuses the request, naming the account whose sum is full.
pub(crate) fn reserve_pending(
    transfer: &NewTransfer,
    src_out: i64,
    dst_in: i64,
) -> Result<(i64, i64)> {
    reserve_between(
        transfer.amount().minor_units(),
        (transfer.src(), src_out),
        (transfer.dst(), dst_in),
    )
}

/// The pending sums after queueing `amount` from a source (its name, none
/// for the external account, and its `pending_out`) to a destination (its
/// name and `pending_in`).
pub(crate) fn reserve_between(
    amount: i64,
    (src, src_out): (Option<&UserName>, i64),
    (dst, dst_in): (Option<&UserName>, i64),
) -> Result<(i64, i64)> {
    let Some(out) = src_out.checked_add(amount) else {
        return Err(pending_overflow(src));
    };
    let Some(r#in) = dst_in.checked_add(amount) else {
        return Err(pending_overflow(dst));
    };
    Ok((out, r#in))
}

fn pending_overflow(side: Option<&UserName>) -> WalletError {
    WalletError::PendingOverflow(side.map_or_else(
        || "the external account".to_string(),
        |name| format!("user '{name}'"),
    ))
}

/// A pending sum after a transfer of `amount` leaves PENDING (settled or
/// cancelled). A sum smaller than a transfer it holds can only come from a
/// damaged ledger.
pub(crate) fn release_pending(account: i64, sum: i64, amount: i64) -> Result<i64> {
    sum.checked_sub(amount)
        .filter(|left| *left >= 0)
        .ok_or_else(|| {
            WalletError::Integrity(format!(
                "account {account} has a pending total smaller than a transfer it waits on"
            ))
        })
}

/// The sums over every account that hold in any sound ledger: money is only
/// moved, so balances sum to zero, and each pending transfer is counted once
/// out of an account and once into one. Settlement checks them before it
/// pays out of figures it has read.
pub(crate) fn check_account_sums(
    balances: i128,
    pending_in: i128,
    pending_out: i128,
    currency: &Currency,
) -> Result<()> {
    if balances != 0 {
        return Err(WalletError::Integrity(format!(
            "the balances sum to {}, not zero; run `wallet verify`",
            currency.format_wide(balances)
        )));
    }
    if pending_in != pending_out {
        return Err(WalletError::Integrity(format!(
            "the pending totals disagree ({} out, {} in); run `wallet verify`",
            currency.format_wide(pending_out),
            currency.format_wide(pending_in)
        )));
    }
    Ok(())
}

/// A hold is placed only if the source is not frozen and its available
/// money, the overdraft limit counted, covers it; the sum of the source's
/// holds must stay a 64-bit count.
pub(crate) fn check_hold(
    source: &UserName,
    figures: &plan::HoldFigures,
    pending_out: i64,
    amount: i64,
    currency: &Currency,
) -> Result<i64> {
    if figures.frozen {
        return Err(WalletError::AccountFrozen {
            user: source.to_string(),
            action: "no hold can be placed from it",
        });
    }
    let available = available(
        figures.balance,
        figures.overdraft,
        pending_out,
        figures.held,
    );
    if available < amount {
        return Err(WalletError::InsufficientFunds {
            user: source.to_string(),
            available: currency.format(available),
            wanted: currency.format(amount),
        });
    }
    figures
        .held
        .checked_add(amount)
        .ok_or_else(|| WalletError::PendingOverflow(format!("user '{source}'")))
}

/// A request that names a closed user is refused, on either side: a closed
/// account takes no new transfer, and keeps only its history.
pub(crate) fn check_open(name: &UserName, closed: bool) -> Result<()> {
    if closed {
        return Err(WalletError::AccountClosed {
            user: name.to_string(),
            what: "new transfer",
        });
    }
    Ok(())
}

/// A hold is captured only while its source may still pay (not frozen) and
/// its destination still takes money (not closed); refused, the hold stays
/// HELD. The external account (no name) has no policy.
pub(crate) fn check_capture_parties(
    source: Option<&str>,
    source_policy: Policy,
    destination: Option<&str>,
    destination_policy: Policy,
) -> Result<()> {
    if let Some(user) = source
        && source_policy.frozen
    {
        return Err(WalletError::AccountFrozen {
            user: user.to_string(),
            action: "its holds cannot be captured",
        });
    }
    if let Some(user) = destination
        && destination_policy.closed
    {
        return Err(WalletError::AccountClosed {
            user: user.to_string(),
            what: "captured hold",
        });
    }
    Ok(())
}

/// The last instant a timestamp may name: the end of the year 9999, the
/// last one RFC 3339 can write.
pub(crate) const LAST_INSTANT_MS: i64 = 253_402_300_799_999;

/// A hold's expiry must lie ahead of `now`, and within what a timestamp can
/// show; checked before the funds, since no amount of money fixes it.
pub(crate) fn check_expiry(expires_at: Option<i64>, now: i64) -> Result<()> {
    match expires_at {
        Some(at) if at <= now => Err(WalletError::InvalidTime {
            input: super::clock::rfc3339(at),
            why: "a hold must expire in the future",
        }),
        Some(at) if at > LAST_INSTANT_MS => Err(WalletError::InvalidTime {
            input: format!("{at} ms"),
            why: "it is after the year 9999",
        }),
        _ => Ok(()),
    }
}

/// Whether a hold still reserves money at `now`: HELD and not past its
/// expiry. Only a live hold can be captured or released.
pub(crate) fn check_live_hold(
    tx_id: i64,
    stored: &str,
    expires_at: Option<i64>,
    now: i64,
) -> Result<()> {
    let status = stored_status(stored)?.as_of(expires_at.map(Instant::new), Instant::new(now));
    if status == Status::Held {
        return Ok(());
    }
    Err(WalletError::NotHeld {
        tx_id,
        status: status.as_str().to_string(),
    })
}

/// A capture takes all of a hold or part of it, never more.
pub(crate) fn captured_amount(
    hold_amount: i64,
    wanted: Option<i64>,
    currency: &Currency,
) -> Result<i64> {
    let amount = wanted.unwrap_or(hold_amount);
    if amount > hold_amount {
        return Err(WalletError::InvalidAmount {
            input: currency.format(amount),
            why: format!(
                "it is more than the hold's {}",
                currency.format(hold_amount)
            ),
        });
    }
    Ok(amount)
}

/// A refund pays back a COMPLETED transfer, in the other direction, and
/// the refunds of one transfer (queued or completed) never add up to more
/// than it. An exchange leg is never refunded: paying one leg back alone
/// would undo half of a unit that settled whole.
pub(crate) fn check_refund(
    original: i64,
    stored: &str,
    (original_amount, pair): (i64, Option<i64>),
    already: i64,
    amount: i64,
    currency: &Currency,
) -> Result<()> {
    if let Some(pair) = pair {
        return Err(WalletError::LegNotRefundable {
            tx_id: original,
            first: original.min(pair),
            second: original.max(pair),
        });
    }
    if stored_status(stored)? != Status::Completed {
        return Err(WalletError::NotRefundable {
            tx_id: original,
            status: stored.to_string(),
        });
    }
    let left = original_amount.saturating_sub(already);
    if amount > left {
        return Err(WalletError::RefundExceedsOriginal {
            tx_id: original,
            left: currency.format(left),
            wanted: currency.format(amount),
        });
    }
    Ok(())
}

/// `get-user --at-tx` names a transfer that never moved this user's balance.
pub(crate) fn not_applied_to(tx_id: TxId, user: &str) -> WalletError {
    WalletError::TransferNotFound(format!(
        "{tx_id} among the transfers applied to '{user}' (it does not exist, was not applied, or is not theirs)"
    ))
}

/// What settlement makes of one due transfer, given the balances it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Apply it: the two balances afterwards.
    Complete { src_balance: i64, dst_balance: i64 },
    /// Refuse it, for this reason; no balance moves.
    Fail(FailReason),
}

/// Decides a due transfer against the balances as they stand after every
/// older transfer was decided (oldest first). The external account may go
/// below zero (it is the world outside). A frozen user pays nothing,
/// whatever it holds; otherwise a user may go below zero down to its
/// overdraft limit, and its money reserved by live holds cannot pay for
/// it: a captured hold no longer counts there, so it is paid from what it
/// reserved. A limit lowered below what is already drawn refuses every
/// debit until credits bring the balance back within it.
pub(crate) fn decide(
    src: i64,
    source: &settle::Account,
    dst_balance: i64,
    amount: i64,
) -> Decision {
    if src != EXTERNAL_ACCOUNT {
        if source.frozen {
            return Decision::Fail(FailReason::AccountFrozen);
        }
        let spendable =
            i128::from(source.balance) + i128::from(source.overdraft) - i128::from(source.held);
        if spendable < i128::from(amount) {
            return Decision::Fail(FailReason::InsufficientFunds);
        }
    }
    match (
        source.balance.checked_sub(amount),
        dst_balance.checked_add(amount),
    ) {
        (Some(src_balance), Some(dst_balance)) => Decision::Complete {
            src_balance,
            dst_balance,
        },
        _ => Decision::Fail(FailReason::BalanceOverflow),
    }
}

#[cfg(test)]
mod tests;
