//! The ledger: the facade commands talk to, over one storage engine.
//!
//! Commands hand it validated values and get records back; they never see
//! an engine's types. The engine is chosen once, from the [`Location`], by
//! [`open`], and says what callers need of it through [`Store::profile`].
//! The loops that span transactions (settle's batches, a batch input's
//! chunks) live here, so every engine stops, limits and reports progress
//! the same way; each step inside them is one call to the [`Store`].
//! [`worker`] runs settle's loop as a process does: workers, `--watch`,
//! retries.

pub(crate) mod chain;
pub(crate) mod clock;
pub(crate) mod events;
mod model;
mod open;
mod postgres;
pub(crate) mod rules;
mod sqlite;
mod store;
pub mod worker;

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::domain::{Email, IdempotencyKey, Memo, UserName};
use crate::error::{Result, WalletError};
use crate::money::{Amount, Currencies, Currency, CurrencyId};

pub use crate::location::{Location, hide_passwords_in};
pub use events::{About, Cursor, EventKind, EventRecord};
pub(crate) use model::{
    BalanceAt, BatchOptions, BatchStopped, BatchSummary, Check, ExportFilter, Exported, Findings,
    HistoryQuery, PointInTime, Problem, SettleOptions, SettleStopped, SettleSummary, Span,
    TransferRecord, TrialBalance, UserRecord, VerifyOptions, VerifyReport,
};
pub use model::{
    BatchCounts, BatchLine, BatchSink, Counter, CurrencyFigures, DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE, Expiry, Instant, Kind, NewTransfer, PolicyChange, PolicyChangeRecord,
    Queued, Status, TransferRef, TxId,
};
pub use store::Store;
pub use store::{Access, OpenOptions, Profile};

/// An open, validated ledger.
pub struct Ledger {
    store: Box<dyn Store>,
}

impl Ledger {
    /// Opens a ledger that must already exist; never creates one.
    pub fn open(location: &Location, options: &OpenOptions) -> Result<Self> {
        Self::open_for(location, Access::Write, options)
    }

    /// Opens a ledger that must already exist, only to read: nothing in it
    /// changes, and a schema older than this binary reads is refused with
    /// `upgrade_needed` rather than upgraded.
    pub(crate) fn open_to_read(location: &Location, options: &OpenOptions) -> Result<Self> {
        Self::open_for(location, Access::Read, options)
    }

    /// Opens an existing ledger for `verify`: a schema that differs from
    /// ours is left for the checks to report instead of refused, and nothing
    /// is migrated or written. A foreign or newer ledger is still refused.
    pub(crate) fn open_to_verify(location: &Location, options: &OpenOptions) -> Result<Self> {
        Self::open_for(location, Access::Verify, options)
    }

    /// Opens a ledger that must already exist, as far as `access` allows.
    pub(crate) fn open_for(
        location: &Location,
        access: Access,
        options: &OpenOptions,
    ) -> Result<Self> {
        Ok(Self {
            store: open::open(location, access, options)?,
        })
    }

    /// Brings the ledger's schema up to the version this binary writes;
    /// returns the versions before and after.
    pub(crate) fn migrate(location: &Location, options: &OpenOptions) -> Result<(i64, i64)> {
        open::migrate(location, options)
    }

    /// Opens the ledger, creating it with `currency` if there is none.
    pub(crate) fn open_or_create(
        location: &Location,
        currency: &Currency,
        options: &OpenOptions,
    ) -> Result<Self> {
        Ok(Self {
            store: open::open_or_create(location, currency, options)?,
        })
    }

    /// Creates a new ledger; refuses if one (or anything else) is already
    /// there. Nothing more is done with it, so that the creation is the
    /// command's last step: nothing can fail after it but its answer.
    pub fn create(location: &Location, currency: &Currency, options: &OpenOptions) -> Result<()> {
        open::create(location, currency, options)
    }

    /// What the engine takes at once and in one transaction.
    pub fn profile(&self) -> Profile {
        self.store.profile()
    }

    pub(crate) fn currency(&self) -> &Currency {
        self.store.currency()
    }

    /// The ledger's currencies, the default first.
    pub(crate) fn currencies(&self) -> &Currencies {
        self.store.currencies()
    }

    /// Adds a currency; returns its id and whether the ledger had it
    /// already with the same scale (a replay).
    pub(crate) fn add_currency(&mut self, currency: &Currency) -> Result<(CurrencyId, bool)> {
        self.store.add_currency(currency)
    }

    /// Adds a user; an `overdraft` above zero is recorded as its first
    /// policy change.
    pub(crate) fn create_user(
        &mut self,
        name: &UserName,
        email: &Email,
        overdraft: i64,
    ) -> Result<UserRecord> {
        self.store.create_user(name, email, overdraft)
    }

    /// Changes a user's policy and records the change; see
    /// [`rules::policy::apply_change`] for what is refused.
    pub(crate) fn change_policy(
        &mut self,
        name: &UserName,
        change: PolicyChange,
        currency: CurrencyId,
        memo: Option<&Memo>,
    ) -> Result<PolicyChangeRecord> {
        self.store
            .change_policy(name, change, currency, memo.map(Memo::as_str))
    }

    /// Adds many users in one transaction: all or none.
    pub fn create_users(&mut self, users: &[(UserName, Email)]) -> Result<()> {
        self.store.create_users(users)
    }

    pub(crate) fn user(&mut self, name: &UserName) -> Result<UserRecord> {
        self.store.user(name)
    }

    /// Queues one transfer: a batch of one line through the same path as
    /// [`Ledger::queue_batch`], so a single request meets every check and
    /// every message a batch line does.
    pub(crate) fn queue_transfer(&mut self, transfer: NewTransfer) -> Result<Queued> {
        let mut line = std::iter::once(Ok(BatchLine {
            line: 1,
            transfer: Ok(transfer),
        }));
        let mut outcome = OneOutcome(None);
        self.store.queue_chunk(&mut line, 1, true, &mut outcome)?;
        match outcome.0 {
            Some(outcome) => outcome,
            None => Err(WalletError::internal(anyhow::anyhow!(
                "the transfer was neither queued nor refused"
            ))),
        }
    }

    /// Queues every line of `lines`, a chunk per transaction (or all of
    /// them in one, if `options.atomic`). Bad lines are reported to `sink`
    /// and, unless atomic, skipped while the good ones are kept. An error
    /// (I/O, lock time-out, a server gone) rolls back the chunk in hand;
    /// chunks already reported committed stay, and the error comes with
    /// their counts.
    pub(crate) fn queue_batch(
        &mut self,
        lines: impl Iterator<Item = Result<BatchLine>>,
        options: &BatchOptions,
        sink: &mut dyn BatchSink,
    ) -> std::result::Result<BatchSummary, Box<BatchStopped>> {
        let mut summary = BatchSummary {
            committed: true,
            ..BatchSummary::default()
        };
        let mut last_line = None;
        let stopped = |done: BatchSummary, last_line, error| {
            Box::new(BatchStopped {
                done,
                last_line,
                error,
            })
        };
        if let Err(error) = self.store.expect_bulk_ingest() {
            return Err(stopped(BatchSummary::default(), None, error));
        }
        let mut lines = lines.peekable();
        let max = if options.atomic {
            usize::MAX
        } else {
            options.chunk_size.max(1)
        };
        while lines.peek().is_some() {
            let mut taken = None;
            let mut noted = (&mut lines).inspect(|line| {
                if let Ok(line) = line {
                    taken = Some(line.line);
                }
            });
            let chunk = self
                .store
                .queue_chunk(&mut noted, max, options.atomic, sink);
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => return Err(stopped(summary, last_line, error)),
            };
            if !chunk.committed {
                summary.add(&chunk);
                break;
            }
            // Lines whose results could not be printed are named by the
            // error; the summary keeps those that were.
            if let Err(error) = sink.committed() {
                return Err(stopped(summary, last_line, error));
            }
            summary.add(&chunk);
            last_line = taken.or(last_line);
        }
        self.store.finish_bulk_ingest(&summary);
        Ok(summary)
    }

    pub(crate) fn transfer(&mut self, which: TransferRef<'_>) -> Result<TransferRecord> {
        self.store.transfer(which)
    }

    /// Cancels a PENDING transfer; anything else fails with `not_pending`.
    pub(crate) fn cancel(&mut self, tx_id: TxId) -> Result<TransferRecord> {
        self.store.cancel(tx_id)
    }

    /// Turns a live hold into a PENDING transfer of all of it or part.
    /// Captures a live hold: all of it, or `amount` (text as the user
    /// wrote it, read at the scale of the hold's currency).
    pub(crate) fn capture(&mut self, tx_id: TxId, amount: Option<&str>) -> Result<TransferRecord> {
        let amount = match amount {
            // A transfer's currency never changes, so it may be read
            // before the capture's own transaction.
            Some(text) => {
                let hold = self.store.transfer(TransferRef::Id(tx_id))?;
                Some(self.currency_of(&hold)?.parse_amount(text)?.minor_units())
            }
            None => None,
        };
        self.store.capture(tx_id, amount)
    }

    /// The currency a stored transfer moves.
    fn currency_of(&self, record: &TransferRecord) -> Result<&Currency> {
        self.currencies().get(record.currency).ok_or_else(|| {
            WalletError::Integrity(format!(
                "transfer {} names currency {}, which the ledger does not have",
                record.tx_id, record.currency.0
            ))
        })
    }

    /// Voids a live hold: its money is available again.
    pub(crate) fn release(&mut self, tx_id: TxId) -> Result<TransferRecord> {
        self.store.release(tx_id)
    }

    /// Queues a refund of a COMPLETED transfer: from its destination back
    /// to its source, all of it unless `amount` says less.
    pub(crate) fn refund(
        &mut self,
        tx_id: TxId,
        amount: Option<&str>,
        memo: Option<Memo>,
        key: Option<IdempotencyKey>,
    ) -> Result<Queued> {
        let original = self.store.transfer(TransferRef::Id(tx_id))?;
        let amount = amount
            .map(|text| self.currency_of(&original)?.parse_amount(text))
            .transpose()?;
        let name = |name: &Option<String>| -> Result<Option<UserName>> {
            name.as_deref().map(UserName::parse).transpose()
        };
        let amount = match amount {
            Some(amount) => amount,
            None => Amount::from_minor_units(original.amount).ok_or_else(|| {
                WalletError::Integrity(format!("transfer {tx_id} has an invalid amount"))
            })?,
        };
        let refund = NewTransfer::new(
            name(&original.dst)?,
            name(&original.src)?,
            amount,
            memo,
            key,
        )?
        .with_kind(Kind::Refund(tx_id))?
        .with_currency(original.currency);
        self.queue_transfer(refund)
    }

    /// A user's balance right after a transfer, or at an instant.
    pub(crate) fn balance_at(&mut self, name: &UserName, at: PointInTime) -> Result<BalanceAt> {
        self.store.balance_at(name, at)
    }

    /// Up to `limit` users after `after`, by name regardless of case.
    pub(crate) fn users(
        &mut self,
        after: Option<&UserName>,
        limit: u32,
    ) -> Result<Vec<UserRecord>> {
        self.store.users(after, limit)
    }

    /// Every account's balance now, or at an instant.
    pub(crate) fn trial_balance(&mut self, at: Option<Instant>) -> Result<TrialBalance> {
        self.store.trial_balance(at)
    }

    /// Streams the transfers `filter` keeps, oldest first, after the policy
    /// changes if it asks for them.
    pub(crate) fn export(
        &mut self,
        filter: &ExportFilter,
        each: &mut dyn FnMut(Exported) -> Result<bool>,
    ) -> Result<()> {
        self.store.export(filter, each)
    }

    /// Hands `each` the change feed's events in commit order; see
    /// [`events::stream`]. Returns how many it took.
    pub(crate) fn stream_events(
        &mut self,
        options: &events::FeedOptions,
        each: &mut dyn FnMut(&events::EventRecord) -> Result<bool>,
    ) -> Result<u64> {
        events::stream(&mut *self.store, options, each)
    }

    /// A user's transfers, newest first, one page.
    pub(crate) fn history(
        &mut self,
        name: &UserName,
        query: &HistoryQuery,
    ) -> Result<Vec<TransferRecord>> {
        self.store.history(name, query)
    }

    /// Applies PENDING transfers oldest first, one transaction per batch,
    /// until the queue is empty, the limit is reached or the stop flag is
    /// set. An error stops it with what the batches before it applied.
    pub(crate) fn settle(
        &mut self,
        options: &SettleOptions,
        on_progress: impl FnMut(&SettleSummary),
    ) -> std::result::Result<SettleSummary, SettleStopped> {
        let mut summary = SettleSummary::default();
        match self.settle_batches(options, on_progress, &mut summary) {
            Ok(()) => Ok(summary),
            Err(error) => {
                // The connection may have gone with the error: then what is
                // left is unknown, not zero.
                summary.remaining = self.store.pending_count().ok();
                Err(SettleStopped {
                    done: summary,
                    error,
                })
            }
        }
    }

    fn settle_batches(
        &mut self,
        options: &SettleOptions,
        mut on_progress: impl FnMut(&SettleSummary),
        summary: &mut SettleSummary,
    ) -> Result<()> {
        let batch_size = options.batch_size.max(1) as u64;
        loop {
            if options
                .stop
                .as_ref()
                .is_some_and(|stop| stop.load(Ordering::Relaxed))
            {
                break;
            }
            let wanted = match options.limit {
                // A batch may take one more than asked to keep a pair whole.
                Some(limit) => batch_size.min(limit.saturating_sub(summary.processed)),
                None => batch_size,
            };
            if wanted == 0 {
                break;
            }
            let batch = self.store.settle_batch(wanted)?;
            summary.completed += batch.completed;
            summary.failed += batch.failed;
            summary.expired += batch.expired;
            summary.processed += batch.processed();
            if batch.processed() > 0 {
                on_progress(summary);
            }
            if batch.drained {
                break;
            }
            if batch.processed() == 0 {
                // Other workers hold every lane with work left; theirs
                // commit within a batch's time.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        summary.remaining = Some(self.store.pending_count()?);
        // What this call decided goes into the hash chain now, by one
        // process at a time, after the batches: no worker waits on it.
        self.store.seal()?;
        Ok(())
    }

    /// How many transfers wait for settlement.
    pub(crate) fn pending_count(&mut self) -> Result<u64> {
        self.store.pending_count()
    }

    /// Every check, from one consistent snapshot, then the hash chain
    /// recomputed from a snapshot of its own.
    pub(crate) fn verify(&mut self, options: &VerifyOptions) -> Result<VerifyReport> {
        let mut report = self.store.verify(options)?;
        let check = match self.store.chain() {
            Ok(state) => chain::check(&state),
            Err(err) if matches!(err.code(), "busy" | "server_unavailable") => return Err(err),
            Err(err) => model::failed_to_run(chain::CHAIN_CHECK, &err),
        };
        report.checks.push(check);
        Ok(report)
    }

    /// The hash chain, every link recomputed.
    pub(crate) fn chain(&mut self) -> Result<chain::ChainState> {
        self.store.chain()
    }
}

/// The sink of a batch of one: keeps its line's outcome.
struct OneOutcome(Option<Result<Queued>>);

impl BatchSink for OneOutcome {
    fn record(&mut self, _line: u64, outcome: Result<Queued>) -> Result<()> {
        self.0 = Some(outcome);
        Ok(())
    }

    fn committed(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A new ledger file at `path` with one user, alice: the start of the
/// ledger's own tests.
#[cfg(test)]
pub(crate) fn file_with_alice(path: &std::path::Path) -> Location {
    let location = Location::File(path.to_path_buf());
    let options = OpenOptions::default();
    Ledger::create(&location, &Currency::default(), &options).unwrap();
    let alice = UserName::parse("alice").unwrap();
    let email = Email::parse("alice@example.com").unwrap();
    Ledger::open(&location, &options)
        .unwrap()
        .create_user(&alice, &email, 0)
        .unwrap();
    location
}
