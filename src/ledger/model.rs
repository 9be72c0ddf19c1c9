//! The ledger's records and requests as every engine speaks them: plain values, no I/O.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::domain::{IdempotencyKey, Memo, UserName};
use crate::error::{Result, WalletError};
use crate::money::Amount;

mod policy_change;

pub use policy_change::{PolicyChange, PolicyChangeRecord};

/// The id of the built-in account on the other side of deposits and
/// withdrawals. It has no name, so no user can collide with it.
pub(crate) const EXTERNAL_ACCOUNT: i64 = 0;

/// A transfer's id: the order transfers were queued in. Engines turn it
/// into an integer only at their SQL boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TxId(i64);

impl TxId {
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for TxId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        text.parse().map(Self)
    }
}

/// An instant, in milliseconds since the Unix epoch: the form the ledger
/// keeps time in. Engines turn it into an integer only at their SQL
/// boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(i64);

impl Instant {
    pub const fn new(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

/// Where a transfer is in its life. Only `Pending` and `Held` ever change:
/// a hold becomes `Pending` when captured, `Released` or `Expired` when
/// voided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Completed,
    Failed,
    Cancelled,
    Held,
    Released,
    Expired,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
        Status::Held,
        Status::Released,
        Status::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
            Status::Cancelled => "CANCELLED",
            Status::Held => "HELD",
            Status::Released => "RELEASED",
            Status::Expired => "EXPIRED",
        }
    }

    /// The status a reader reports: a hold past its expiry is `Expired`
    /// from that instant, whether or not `settle` has marked it yet.
    pub fn as_of(self, expires_at: Option<Instant>, now: Instant) -> Self {
        match (self, expires_at) {
            (Status::Held, Some(at)) if at <= now => Status::Expired,
            _ => self,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why settlement refused a transfer, as stored in its `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailReason {
    /// The source's balance did not cover the amount when it was decided.
    InsufficientFunds,
    /// A balance would leave the range of a 64-bit count of minor units.
    BalanceOverflow,
    /// A refund that, with the refunds completed before it, would return
    /// more than the transfer it refunds.
    RefundExceedsOriginal,
    /// The source was frozen when settlement decided it.
    AccountFrozen,
}

impl FailReason {
    pub(crate) const ALL: [FailReason; 4] = [
        FailReason::InsufficientFunds,
        FailReason::BalanceOverflow,
        FailReason::RefundExceedsOriginal,
        FailReason::AccountFrozen,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FailReason::InsufficientFunds => "insufficient_funds",
            FailReason::BalanceOverflow => "balance_overflow",
            FailReason::RefundExceedsOriginal => "refund_exceeds_original",
            FailReason::AccountFrozen => "account_frozen",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// A transfer request names at least one user, and never the same account
/// on both sides. Names are unique regardless of ASCII case, so two names
/// that differ only in case are one account.
pub(crate) fn check_parties(src: Option<&UserName>, dst: Option<&UserName>) -> Result<()> {
    match (src, dst) {
        (None, None) => Err(WalletError::InvalidLine(
            "src and dst are both null; at least one must name a user".into(),
        )),
        (Some(src), Some(dst)) if src.as_str().eq_ignore_ascii_case(dst.as_str()) => {
            Err(WalletError::SameAccount(src.to_string()))
        }
        _ => Ok(()),
    }
}

/// An exchange moves two currencies, one each way: the same currency on
/// both legs would be two transfers that cancel out.
pub(crate) fn check_exchange_currencies(
    paid: crate::money::CurrencyId,
    back: crate::money::CurrencyId,
) -> Result<()> {
    if paid == back {
        return Err(WalletError::InvalidCurrency(
            "an exchange needs two currencies".into(),
        ));
    }
    Ok(())
}

/// A transfer to queue, checked by [`check_parties`] when built. `None`
/// on one side means the external account: a deposit has no source user, a
/// withdrawal no destination user.
#[derive(Debug, Clone)]
pub struct NewTransfer {
    src: Option<UserName>,
    dst: Option<UserName>,
    amount: Amount,
    memo: Option<Memo>,
    key: Option<IdempotencyKey>,
    kind: Kind,
    currency: crate::money::CurrencyId,
}

/// What a request queues: a plain transfer, a hold that reserves money
/// until captured, released or expired, a refund of a COMPLETED transfer,
/// or an exchange: two transfers decided as one, the request's own from its
/// source to a desk and the counter leg back from the desk in another
/// currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Transfer,
    Hold(Expiry),
    Refund(TxId),
    Exchange(Counter),
}

/// An exchange's second leg: what the desk pays back, in its own currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub amount: Amount,
    pub currency: crate::money::CurrencyId,
}

/// Which of an exchange's two transfers a row is. The first (source to
/// desk) holds the key and the smaller id; each names the other as its
/// pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leg {
    First,
    Second,
}

impl NewTransfer {
    /// The one way to make a transfer request, for the command line and for
    /// batch lines alike, so every request passes the same checks.
    pub fn new(
        src: Option<UserName>,
        dst: Option<UserName>,
        amount: Amount,
        memo: Option<Memo>,
        key: Option<IdempotencyKey>,
    ) -> Result<Self> {
        check_parties(src.as_ref(), dst.as_ref())?;
        Ok(Self {
            src,
            dst,
            amount,
            memo,
            key,
            kind: Kind::Transfer,
            currency: crate::money::CurrencyId::DEFAULT,
        })
    }

    /// The same request in another of the ledger's currencies; its amount
    /// is already in that currency's minor units.
    pub fn with_currency(mut self, currency: crate::money::CurrencyId) -> Self {
        self.currency = currency;
        self
    }

    pub fn currency(&self) -> crate::money::CurrencyId {
        self.currency
    }

    /// The same request as a hold (which needs a user on the paying side),
    /// a refund, or an exchange (a user on each side: the source and its
    /// desk, in two currencies). Call it after [`Self::with_currency`].
    pub fn with_kind(mut self, kind: Kind) -> Result<Self> {
        if matches!(kind, Kind::Hold(_)) && self.src.is_none() {
            return Err(WalletError::InvalidLine(
                "a hold needs a user as src: it reserves that user's money".into(),
            ));
        }
        if let Kind::Exchange(counter) = kind {
            if self.src.is_none() || self.dst.is_none() {
                return Err(WalletError::InvalidLine(
                    "an exchange needs a user and a desk: both sides are users".into(),
                ));
            }
            check_exchange_currencies(self.currency, counter.currency)?;
        }
        self.kind = kind;
        Ok(self)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn src(&self) -> Option<&UserName> {
        self.src.as_ref()
    }

    pub fn dst(&self) -> Option<&UserName> {
        self.dst.as_ref()
    }

    pub fn amount(&self) -> Amount {
        self.amount
    }

    pub fn memo(&self) -> Option<&str> {
        self.memo.as_ref().map(Memo::as_str)
    }

    pub fn key(&self) -> Option<&IdempotencyKey> {
        self.key.as_ref()
    }
}

/// What queueing answered: the transfer's id and current status, and
/// whether an earlier request with the same key had already queued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub tx_id: TxId,
    pub status: Status,
    pub replayed: bool,
    /// For an exchange: the id of its second leg (`tx_id` is the first's).
    pub pair_tx_id: Option<TxId>,
}

/// A user as stored, with the balance settlement maintains and the sums of
/// the transfers still waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub balance: i64,
    pub pending_in: i64,
    pub pending_out: i64,
    /// The sum of the user's live holds: reserved, not yet moved.
    pub held: i64,
    /// The user's policy in force now.
    pub policy: Policy,
    /// The user's figures in every other currency it has touched, in
    /// currency order; the fields above are the default currency's. Filled
    /// by the reads of users; empty when a record is made otherwise.
    pub others: Vec<CurrencyFigures>,
}

/// A user's figures in one currency. Frozen and closed are the account's,
/// for every currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyFigures {
    pub currency: crate::money::CurrencyId,
    pub balance: i64,
    pub pending_in: i64,
    pub pending_out: i64,
    pub held: i64,
    pub overdraft: i64,
}

impl CurrencyFigures {
    /// What the user can still commit in this currency.
    pub fn available(&self) -> i64 {
        available(self.balance, self.overdraft, self.pending_out, self.held)
    }
}

impl UserRecord {
    /// The user's figures in `currency`: zeros in one it never touched.
    pub fn in_currency(&self, currency: crate::money::CurrencyId) -> CurrencyFigures {
        if currency == crate::money::CurrencyId::DEFAULT {
            return CurrencyFigures {
                currency,
                balance: self.balance,
                pending_in: self.pending_in,
                pending_out: self.pending_out,
                held: self.held,
                overdraft: self.policy.overdraft,
            };
        }
        self.others
            .iter()
            .find(|figures| figures.currency == currency)
            .copied()
            .unwrap_or(CurrencyFigures {
                currency,
                balance: 0,
                pending_in: 0,
                pending_out: 0,
                held: 0,
                overdraft: 0,
            })
    }

    /// What the user can still commit without a transfer failing; negative
    /// when queued transfers already exceed the balance and the limit.
    pub fn available(&self) -> i64 {
        available(
            self.balance,
            self.policy.overdraft,
            self.pending_out,
            self.held,
        )
    }
}

/// What an account allows: how far below zero its balance may go, and
/// whether money may leave it (frozen) or it takes transfers at all
/// (closed). The external account has none of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Minor units the balance may go below zero; 0 when none is set.
    pub overdraft: i64,
    pub frozen: bool,
    pub closed: bool,
}

/// Money a user can still commit: the balance and the overdraft limit,
/// less what is pending out and what live holds reserve.
///
/// Summed exactly and only then held to the 64-bit range, so that it
/// compares with any amount as the exact sum would: a balance near the
/// top and a large limit must not saturate before what is reserved is
/// taken off.
pub(crate) fn available(balance: i64, overdraft: i64, pending_out: i64, held: i64) -> i64 {
    let exact =
        i128::from(balance) + i128::from(overdraft) - i128::from(pending_out) - i128::from(held);
    i64::try_from(exact).unwrap_or(if exact > 0 { i64::MAX } else { i64::MIN })
}

/// Which balance a figure belongs to: an account's, in one currency. An
/// account holds a balance, pending sums, held money and an overdraft limit
/// per currency it has touched, and every rule of money that keeps figures
/// per account keeps them by this key. Ordered by account, then currency:
/// the order engines lock and write in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BalanceKey {
    pub account: i64,
    pub currency: crate::money::CurrencyId,
}

impl BalanceKey {
    pub(crate) const fn new(account: i64, currency: crate::money::CurrencyId) -> Self {
        Self { account, currency }
    }

    /// The account's balance in the ledger's default currency.
    pub(crate) const fn default_currency(account: i64) -> Self {
        Self::new(account, crate::money::CurrencyId::DEFAULT)
    }
}

/// A user's balance at a point of the past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceAt {
    pub name: String,
    pub balance: i64,
    /// The last transfer applied to the user by then; `None` before any.
    pub tx_id: Option<TxId>,
    /// When that transfer was applied.
    pub settled_at: Option<Instant>,
    /// The policy in force then: the state after the last change made at
    /// or before the instant (for a transfer, the instant it was applied).
    pub policy: Policy,
}

/// Which transfers `export` streams: created within `[since, until]`
/// (Unix milliseconds, inclusive) and, if any are named, with one of
/// `statuses` (as readers report them: an expired hold is EXPIRED).
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub since: Option<Instant>,
    pub until: Option<Instant>,
    pub statuses: Vec<Status>,
    /// Whether the policy changes made within the same bounds come too,
    /// before the transfers (the journal interleaves them by time).
    pub changes: bool,
}

/// What `export` streams: the policy changes asked for, by time, then the
/// transfers, by `tx_id`.
#[derive(Debug, Clone)]
pub enum Exported {
    Change(PolicyChangeRecord),
    Transfer(TransferRecord),
}

impl ExportFilter {
    pub fn keeps(&self, record: &TransferRecord) -> bool {
        self.statuses.is_empty() || self.statuses.contains(&record.status)
    }
}

/// Every account's balance in one currency at one moment: the users by
/// name, and the external account, whose balance is the negative of the
/// money that came in net of what went out, so that the whole sums to zero.
/// In the default currency every user is listed; in another, the users
/// with a balance in it.
#[derive(Debug, Clone, Default)]
pub struct TrialBalance {
    pub currency: crate::money::CurrencyId,
    pub users: Vec<UserBalance>,
    pub external: i64,
}

/// One user's line of a [`TrialBalance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserBalance {
    pub name: String,
    pub balance: i64,
    /// Whether the user was closed by then.
    pub closed: bool,
}

/// Which point of the past [`BalanceAt`] is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointInTime {
    /// Everything settled at or before this instant (Unix milliseconds).
    Time(Instant),
    /// Right after this transfer was applied.
    Transfer(TxId),
}

/// When a hold stops reserving money unless captured first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    /// This many milliseconds after the hold is placed, by the ledger's clock.
    After(i64),
    /// At this instant (Unix milliseconds).
    At(i64),
}

impl Expiry {
    /// The instant it names, for a hold placed at `now`.
    pub fn instant(self, now: i64) -> Option<i64> {
        match self {
            Expiry::Never => None,
            Expiry::After(ms) => Some(now.saturating_add(ms)),
            Expiry::At(at) => Some(at),
        }
    }

    /// The expiry a hold request asks for, as every front end takes it:
    /// `expires_in` a duration after the hold is placed, `expires_at` an
    /// instant, neither for none. Both at once is refused before either
    /// is read (the command line's parser refuses it first).
    pub fn asked(expires_in: Option<&str>, expires_at: Option<&str>) -> Result<Self> {
        match (expires_in, expires_at) {
            (Some(_), Some(_)) => Err(WalletError::InvalidLine(
                "a hold takes expires_in or expires_at, not both".into(),
            )),
            (Some(duration), None) => Ok(Expiry::After(crate::time::parse_duration(duration)?)),
            (None, Some(at)) => Ok(Expiry::At(crate::time::parse_instant(at)?)),
            (None, None) => Ok(Expiry::Never),
        }
    }
}

/// A transfer as stored, with user names in place of account ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRecord {
    pub tx_id: TxId,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub amount: i64,
    pub memo: Option<String>,
    pub status: Status,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: Instant,
    pub settled_at: Option<Instant>,
    /// For a hold: the amount it reserved (`amount` is what was captured).
    pub hold_amount: Option<i64>,
    /// For a hold: when it stops reserving money unless captured first.
    pub expires_at: Option<Instant>,
    /// For a refund: the transfer it pays back.
    pub refund_of: Option<TxId>,
    /// The refunds of this transfer, oldest first, whatever their status,
    /// and the sum of those COMPLETED.
    pub refunds: Vec<Refund>,
    pub refunded: i64,
    /// In a user's history: that user's balance right after it was applied.
    pub balance_after: Option<i64>,
    /// The currency it moves; every amount above is in its minor units.
    pub currency: crate::money::CurrencyId,
    /// For an exchange leg: the other leg.
    pub pair_tx_id: Option<TxId>,
}

/// One refund of a transfer, as its original's readers list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refund {
    pub tx_id: TxId,
    pub amount: i64,
    pub status: Status,
}

impl Refund {
    /// The form both engines read a refund in: `tx_id:amount:status`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let refund = Self {
            tx_id: parts.next()?.parse().ok()?,
            amount: parts.next()?.parse().ok()?,
            status: Status::parse(parts.next()?)?,
        };
        parts.next().is_none().then_some(refund)
    }

    /// A list of refunds in that form, in any order, oldest first; `None`
    /// if any is unreadable (a damaged ledger).
    pub fn parse_all<'a>(texts: impl IntoIterator<Item = &'a str>) -> Option<Vec<Self>> {
        let mut refunds = texts
            .into_iter()
            .map(Self::parse)
            .collect::<Option<Vec<_>>>()?;
        refunds.sort_unstable_by_key(|refund| refund.tx_id);
        Some(refunds)
    }
}

/// Which transfer to read.
#[derive(Debug, Clone, Copy)]
pub enum TransferRef<'a> {
    Id(TxId),
    Key(&'a IdempotencyKey),
}

/// One page of a user's history.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub limit: u32,
    pub status: Option<Status>,
    /// Only transfers with a smaller `tx_id`: the paging cursor.
    pub before: Option<TxId>,
}

impl TransferRecord {
    /// The record with its effective status at `now` (see [`Status::as_of`]).
    pub fn seen_at(mut self, now: Instant) -> Self {
        self.status = self.status.as_of(self.expires_at, now);
        self
    }

    /// When the transfer was decided, as readers report it. An EXPIRED
    /// hold ended at its expiry, not when `settle` came to mark it (or
    /// before any did): a reconciliation needs the instant the money was
    /// free again.
    pub fn decided_at(&self) -> Option<Instant> {
        match self.status {
            Status::Expired => self.expires_at.or(self.settled_at),
            _ => self.settled_at,
        }
    }
}

/// How much `settle` may do in one call.
#[derive(Debug, Clone)]
pub(crate) struct SettleOptions {
    /// Stop after this many transfers; `None` drains the queue.
    pub limit: Option<u64>,
    /// Transfers applied per transaction.
    pub batch_size: usize,
    /// Looked at before each batch: once set, `settle` returns after the
    /// batch in hand, so a worker can stop cleanly on a signal.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for SettleOptions {
    fn default() -> Self {
        Self {
            limit: None,
            batch_size: DEFAULT_BATCH_SIZE,
            stop: None,
        }
    }
}

/// Transfers per settle transaction by default. Per batch `settle` pays one
/// commit (an fsync), one write per account touched, and a write of each
/// page of the users' histories it adds to, which on a large ledger is
/// most of them; with 10,000 active users a batch of 10,000 writes almost
/// as many account rows as it settles transfers. Settling a million such
/// transfers took a third less CPU in batches of 50,000 than of 10,000, a
/// tenth less again at 100,000, and 12 % less time again at 200,000, for
/// about 185 bytes of memory a transfer (37 MB a batch; settle peaked at
/// 56 MB on a ledger of ten million, under the 64 MB the performance page
/// holds it to) and a write lock held about half a second.
pub const DEFAULT_BATCH_SIZE: usize = 200_000;

/// Transfers per settle transaction on PostgreSQL by default. A batch locks
/// the lanes its transfers span, so parallel workers need batches that
/// span few of the 1,024 lanes; per batch the server pays about a dozen
/// round trips and one commit. Measured with 10,000 users (`cargo bench
/// --bench postgres`): one worker settled 21k/s in batches of 250, 30k/s
/// in batches of 1,000 and 37k/s in batches of 4,000, where two workers
/// gained 26 %, 7 % and nothing over one.
pub(super) const DEFAULT_SERVER_BATCH_SIZE: usize = 1_000;

/// What one settle transaction decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub completed: u64,
    pub failed: u64,
    /// Holds found past their expiry and marked EXPIRED.
    pub expired: u64,
    /// The batch saw the end of the queue: nothing that was PENDING when it
    /// looked is left. Without it, a short batch (other workers held some of
    /// the work, or took it first) says nothing about what is left.
    pub drained: bool,
}

impl BatchCounts {
    pub fn processed(&self) -> u64 {
        self.completed + self.failed
    }
}

/// What a `settle` call did, and how many transfers still wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettleSummary {
    pub processed: u64,
    pub completed: u64,
    pub failed: u64,
    pub expired: u64,
    /// `None` when it could not be counted (the server went away): an
    /// unknown count is never shown as 0.
    pub remaining: Option<u64>,
}

/// A `settle` stopped by an error after it had applied `done`.
#[derive(Debug)]
pub struct SettleStopped {
    pub done: SettleSummary,
    pub error: WalletError,
}

impl From<SettleStopped> for WalletError {
    fn from(stopped: SettleStopped) -> Self {
        stopped.error
    }
}

/// A batch input stopped by an error after earlier chunks had committed
/// `done` (all zero if none had).
#[derive(Debug)]
pub(crate) struct BatchStopped {
    pub done: BatchSummary,
    /// The input line the last committed chunk ended on.
    pub last_line: Option<u64>,
    pub error: WalletError,
}

/// One input line, numbered from 1, already parsed into a transfer or refused.
#[derive(Debug)]
pub struct BatchLine {
    pub line: u64,
    pub transfer: Result<NewTransfer>,
}

/// How a batch is committed.
#[derive(Debug, Clone)]
pub(crate) struct BatchOptions {
    /// Lines per transaction when not atomic.
    pub chunk_size: usize,
    /// One transaction for the whole input, rolled back if any line fails.
    pub atomic: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            atomic: false,
        }
    }
}

/// Lines per transaction. Each commit writes every index page the chunk
/// touched to the WAL, and the per-account indexes take inserts all over,
/// so a commit costs about the size of those indexes: on a million-transfer
/// ledger, chunks of 50,000 spent a fifth of the run on it and chunks of
/// 100,000 half that. Larger chunks gain little more and hold the write
/// lock past a second, which other writers wait out.
pub const DEFAULT_CHUNK_SIZE: usize = 100_000;

/// What a batch, or one chunk of it, did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Non-blank lines read.
    pub lines: u64,
    /// Lines that queued a new transfer.
    pub queued: u64,
    /// Lines whose idempotency key named an earlier, identical transfer.
    pub replayed: u64,
    /// Lines refused.
    pub failed: u64,
    /// Whether the work was kept; false only for an all-or-nothing chunk
    /// with a failed line.
    pub committed: bool,
}

impl BatchSummary {
    /// Counts one line's outcome.
    pub fn count(&mut self, outcome: &Result<Queued>) {
        self.lines += 1;
        match outcome {
            Ok(queued) if queued.replayed => self.replayed += 1,
            Ok(_) => self.queued += 1,
            Err(_) => self.failed += 1,
        }
    }

    /// Adds a chunk's counts to the batch's.
    pub fn add(&mut self, chunk: &BatchSummary) {
        self.lines += chunk.lines;
        self.queued += chunk.queued;
        self.replayed += chunk.replayed;
        self.failed += chunk.failed;
        self.committed = chunk.committed;
    }
}

/// The lines a chunk read and the new transfers it queued, to name them
/// when their fate cannot be told for sure (a failed commit, lost results).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span {
    lines: Option<(u64, u64)>,
    queued: Option<(TxId, TxId)>,
}

impl Span {
    /// Counts one line's outcome in.
    pub(crate) fn note(&mut self, line: u64, outcome: &Result<Queued>) {
        self.lines = Some(self.lines.map_or((line, line), |(first, _)| (first, line)));
        if let Ok(Queued {
            tx_id,
            replayed: false,
            pair_tx_id,
            ..
        }) = *outcome
        {
            let last = pair_tx_id.unwrap_or(tx_id);
            self.queued = Some(
                self.queued
                    .map_or((tx_id, last), |(first, _)| (first, last)),
            );
        }
    }

    /// `transfer 5`, `the transfers 5–9 queued from lines 3–7`, …
    pub(crate) fn describe(&self) -> String {
        match (self.lines, self.queued) {
            (Some((a, b)), Some((x, y))) if a == b && x == y => format!("transfer {x}"),
            (Some((a, b)), Some((x, y))) => {
                format!("the transfers {x}–{y} queued from lines {a}–{b}")
            }
            (Some((a, b)), None) => format!("lines {a}–{b}, which queued no new transfer,"),
            (None, _) => "an empty chunk".to_string(),
        }
    }
}

/// Receives each line's outcome. Outcomes arrive before the transaction
/// holding them commits; `committed` says that everything recorded so far
/// is durable, so only then may a line be reported as queued.
pub trait BatchSink {
    fn record(&mut self, line: u64, outcome: Result<Queued>) -> Result<()>;
    /// Called just before the commit: anything that could fail in making
    /// the results reportable must fail here, while the work can still be
    /// rolled back.
    fn before_commit(&mut self) -> Result<()> {
        Ok(())
    }
    fn committed(&mut self) -> Result<()>;
    /// A dry run: every line is decided in the transaction, which is then
    /// rolled back instead of committed.
    fn dry_run(&self) -> bool {
        false
    }
}

/// How thoroughly `verify` checks.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The engine's quicker file check instead of its full one.
    pub quick: bool,
}

/// The outcome of every check, in the order they ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub checks: Vec<Check>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|check| check.ok)
    }
}

/// One named invariant and whether it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// One line: what was checked and what was found.
    pub detail: String,
    /// What broke and where, at most [`MAX_LISTED_PROBLEMS`] of them.
    pub problems: Vec<Problem>,
    /// How many problems were found in all, listed or not.
    pub problem_count: u64,
}

/// At most this many problems are listed per check; the count covers all.
pub(crate) const MAX_LISTED_PROBLEMS: usize = 100;

/// One broken invariant, naming the user or transfer it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The user concerned; `None` for the external account or the file as a whole.
    pub user: Option<String>,
    pub tx_id: Option<i64>,
    pub message: String,
}

impl Problem {
    pub fn about_file(message: impl Into<String>) -> Self {
        Self {
            user: None,
            tx_id: None,
            message: message.into(),
        }
    }
}

/// Collects the problems of one check, listing only the first few.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    problems: Vec<Problem>,
    count: u64,
}

impl Findings {
    pub(crate) fn push(&mut self, problem: Problem) {
        self.count += 1;
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(problem);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn into_check(self, name: &'static str, detail: String) -> Check {
        Check {
            name,
            ok: self.count == 0,
            detail,
            problems: self.problems,
            problem_count: self.count,
        }
    }
}

/// A check that could not run counts as failed, naming why.
pub(super) fn failed_to_run(name: &'static str, err: &WalletError) -> Check {
    let mut findings = Findings::default();
    findings.push(Problem::about_file(format!(
        "the check could not run: {err}"
    )));
    findings.into_check(name, "the ledger could not be read for this check".into())
}
