//! The storage seam: what an engine must do, in coarse, transaction-sized steps.
//!
//! Each method is one transaction (or one read snapshot), so an engine on
//! a server makes one round of statements per call and an engine with
//! single-writer caches (SQLite) can keep them valid from one call to the
//! next. Engines only store, read and lock; what a figure should become is
//! decided by [`super::rules`], which every engine calls.

use std::time::Duration;

use crate::domain::{Email, UserName};
use crate::error::Result;
use crate::money::{Currencies, Currency, CurrencyId};

use super::events::{Cursor, EventRecord};
use super::model::{
    BalanceAt, BatchCounts, BatchLine, BatchSink, BatchSummary, ExportFilter, Exported,
    HistoryQuery, Instant, PointInTime, PolicyChange, PolicyChangeRecord, TransferRecord,
    TransferRef, TrialBalance, TxId, UserRecord, VerifyOptions, VerifyReport,
};

/// How a process wants the ledger opened.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long to wait for another process's write lock before `busy`.
    pub lock_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(5),
        }
    }
}

/// What a command may do with the ledger it opens, which decides how far
/// opening goes with the schema it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Write: an older schema is upgraded first; a changed one is refused.
    Write,
    /// Only read: nothing changes, and an older schema is `upgrade_needed`.
    Read,
    /// `verify`: a schema that differs is left for the checks to report,
    /// and nothing is migrated or written; a foreign or newer ledger is
    /// still refused.
    Verify,
}

/// What an engine says of itself to the loops that drive it, so that no
/// caller asks which engine it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// How many connections may write at once to any purpose: more settle
    /// workers than this would only queue for a lock.
    pub max_writers: usize,
    /// Transfers per settle transaction when the caller names no number.
    pub settle_batch: usize,
}

/// How the ledgers of one engine are opened, created and upgraded: one
/// implementation per engine, chosen from the [`super::Location`] by
/// [`super::open`], and the only way a [`Store`] comes to be.
pub(super) trait Engine {
    /// Opens a ledger that must already exist; never creates one.
    fn open(&self, access: Access, options: &OpenOptions) -> Result<Box<dyn Store>>;

    /// Opens the ledger to write, creating it with `currency` if there is none.
    fn open_or_create(&self, currency: &Currency, options: &OpenOptions) -> Result<Box<dyn Store>>;

    /// Creates a new ledger; refuses if one (or anything else) is already there.
    fn create(&self, currency: &Currency, options: &OpenOptions) -> Result<()>;

    /// Brings the ledger's schema up to the version this binary writes;
    /// returns the versions before and after.
    fn migrate(&self, options: &OpenOptions) -> Result<(i64, i64)>;
}

pub trait Store {
    /// The ledger's currency, read when it was opened.
    fn currency(&self) -> &Currency;

    /// The ledger's currencies, the default first, as read when it was
    /// opened and after this store's own [`Store::add_currency`]: a scale
    /// never changes, so the list only grows.
    fn currencies(&self) -> &Currencies;

    /// Adds a currency with the next id, and the external account's
    /// balance in it at zero, in one transaction; returns its id and
    /// whether it was there already with the same scale (a replay). The
    /// same code with another scale is `currency_exists`.
    fn add_currency(&mut self, currency: &Currency) -> Result<(CurrencyId, bool)>;

    /// What this engine takes at once and in one transaction.
    fn profile(&self) -> Profile;

    /// Adds a user with a zero balance; names are unique regardless of case.
    /// An `overdraft` limit above zero is recorded as the user's first
    /// policy change, in the same transaction.
    fn create_user(&mut self, name: &UserName, email: &Email, overdraft: i64)
    -> Result<UserRecord>;

    /// Changes a user's policy as [`super::rules::policy::apply_change`]
    /// decides, under the lock settle and capture take on the account, and
    /// records the change and its event in the same transaction. An
    /// overdraft in a `currency` other than the default sets that
    /// currency's limit alone; every other change covers every currency.
    fn change_policy(
        &mut self,
        name: &UserName,
        change: PolicyChange,
        currency: CurrencyId,
        memo: Option<&str>,
    ) -> Result<PolicyChangeRecord>;

    /// Adds many users with zero balances in one transaction: all or none.
    fn create_users(&mut self, users: &[(UserName, Email)]) -> Result<()>;

    /// Looks a user up by name, regardless of case.
    fn user(&mut self, name: &UserName) -> Result<UserRecord>;

    /// Says that a long stream of [`Store::queue_chunk`] calls follows, so
    /// the engine may size its caches for it.
    fn expect_bulk_ingest(&mut self) -> Result<()> {
        Ok(())
    }

    /// Says that the stream of [`Store::queue_chunk`] calls has ended, with
    /// every chunk committed; what the engine does here is an optimisation
    /// only, so its failure is no failure of the batch.
    fn finish_bulk_ingest(&mut self, _summary: &BatchSummary) {}

    /// Queues up to `max` lines of `lines` in one transaction, reporting
    /// each line's outcome to `sink` before the commit. A refused line is
    /// skipped, unless `all_or_nothing`, when any refused line rolls the
    /// whole chunk back (`committed: false`). An error returned here
    /// (I/O, lock time-out) rolls the chunk back too.
    fn queue_chunk(
        &mut self,
        lines: &mut dyn Iterator<Item = Result<BatchLine>>,
        max: usize,
        all_or_nothing: bool,
        sink: &mut dyn BatchSink,
    ) -> Result<BatchSummary>;

    /// One transfer, by id or by idempotency key.
    fn transfer(&mut self, which: TransferRef<'_>) -> Result<TransferRecord>;

    /// Cancels a PENDING transfer, checking its status under the lock that
    /// settlement takes, so one of the two wins cleanly.
    fn cancel(&mut self, tx_id: TxId) -> Result<TransferRecord>;

    /// One page of a user's transfers, newest first.
    fn history(&mut self, name: &UserName, query: &HistoryQuery) -> Result<Vec<TransferRecord>>;

    /// Turns a live hold into a PENDING transfer of `amount` (all of it if
    /// `None`), deciding by [`super::rules::check_live_hold`] under the
    /// lock that a concurrent capture or release takes, so one wins.
    fn capture(&mut self, tx_id: TxId, amount: Option<i64>) -> Result<TransferRecord>;

    /// Voids a live hold, under the same lock as [`Store::capture`].
    fn release(&mut self, tx_id: TxId) -> Result<TransferRecord>;

    /// A user's balance in `currency` at a point of the past, from an index.
    fn balance_at(
        &mut self,
        name: &UserName,
        at: PointInTime,
        currency: CurrencyId,
    ) -> Result<BalanceAt>;

    /// Seals into the hash chain every transfer that can no longer change
    /// and is not sealed yet, if no other process is sealing; returns the
    /// links added.
    fn seal(&mut self) -> Result<u64>;

    /// Every link recomputed from what it covers, from one snapshot.
    fn chain(&mut self) -> Result<super::chain::ChainState>;

    /// Up to `limit` users after `after` (by name, regardless of case).
    fn users(&mut self, after: Option<&UserName>, limit: u32) -> Result<Vec<UserRecord>>;

    /// Every account's balance now, or at an instant, from one snapshot:
    /// the default currency's first, then each other currency's in id order.
    fn trial_balance(&mut self, at: Option<Instant>) -> Result<Vec<TrialBalance>>;

    /// Streams every transfer `filter` keeps, oldest first, to `each`, from
    /// one snapshot and in constant memory, after the policy changes within
    /// its bounds by time if it asks for them; `each` returns false to stop.
    fn export(
        &mut self,
        filter: &ExportFilter,
        each: &mut dyn FnMut(Exported) -> Result<bool>,
    ) -> Result<()>;

    /// Marks the holds past their expiry EXPIRED, then decides up to `max`
    /// of the oldest PENDING transfers with
    /// [`super::rules::settle::settle_due`] in one transaction: statuses
    /// and balances commit together, and only a transfer still PENDING
    /// under the lock is applied, so concurrent or re-run settles never
    /// apply one twice.
    fn settle_batch(&mut self, max: u64) -> Result<BatchCounts>;

    /// Up to `limit` events after `after` (all if `None`), in the order
    /// they committed, from one snapshot; only events that no transaction
    /// still running can come before are read, so a cursor taken from them
    /// never passes an event that commits later. A cursor of another
    /// engine's form is a usage error.
    fn events(&mut self, after: Option<&Cursor>, limit: u32) -> Result<Vec<EventRecord>>;

    /// Whether a commit may have added events since the last
    /// [`Store::events`], asked between reads by `events --follow`: a look
    /// that holds no snapshot and blocks no writer. True unless the engine
    /// can tell cheaply that nothing committed.
    fn may_have_new_events(&mut self) -> Result<bool> {
        Ok(true)
    }

    /// How many transfers wait for settlement.
    fn pending_count(&mut self) -> Result<u64>;

    /// Every check of the ledger from one consistent snapshot: the engine's
    /// own checks of its storage, then [`super::rules::verify`]'s.
    fn verify(&mut self, options: &VerifyOptions) -> Result<VerifyReport>;
}

impl super::Ledger {
    /// The engine under the facade, for code written once against any
    /// engine's [`Store`] (the conformance story in `tests/story`).
    pub fn store(&mut self) -> &mut dyn Store {
        &mut *self.store
    }
}
