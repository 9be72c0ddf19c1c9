//! Queueing: the one path every new transfer takes, a single `transfer`
//! (a chunk of one line) and a batch input (chunks of many) alike.
//!
//! Each chunk is one `BEGIN IMMEDIATE` transaction, read, decided and
//! written a group of lines at a time: [`rules::plan::plan_chunk`] decides
//! a group's lines in input order, over its stored keys read by one
//! statement (or taken to be none, until a group finds stored keys, and
//! checked by their unique index, see [`decide_and_write`]), and its rows
//! go in in that
//! order. Names resolve through a cache, and
//! the pending sums of the accounts a chunk touches are kept in memory
//! (the plan moves them there) and written once per chunk, so a line costs
//! a share of one insert rather than an insert and two updates. Both caches are kept from chunk to chunk only
//! while no other connection commits in between; a chunk that does not
//! commit drops them.

use rusqlite::{CachedStatement, Connection, OptionalExtension, Transaction, params};

use super::CommitWatch;
use super::error::{Fault, SqlResult, commit};
use super::slots;
use crate::domain::{IdempotencyKey, UserName};
use crate::error::{Result, WalletError};
use crate::ledger::clock;
use crate::ledger::model::{BalanceKey, BatchLine, BatchSink, BatchSummary, Leg, Queued, Span};
use crate::ledger::rules::{
    self,
    plan::{
        ChunkFacts, ChunkPlan, HoldFigures, Named, NewRow, Original, PendingSums, Planned, RowKind,
        StoredKey,
    },
};
use crate::money::Currencies;
use rustc_hash::FxHashMap as FastMap;

/// Past this many cached names or accounts the caches start over, so that
/// memory stays bounded however many users a file names.
const MAX_CACHED: usize = 1 << 20;

/// Queues up to `max` lines in one transaction; see [`crate::ledger::store::Store::queue_chunk`].
pub(super) fn queue_chunk(
    conn: &mut Connection,
    cache: &mut IngestCache,
    currencies: &Currencies,
    lines: &mut dyn Iterator<Item = Result<BatchLine>>,
    max: usize,
    all_or_nothing: bool,
    sink: &mut dyn BatchSink,
) -> SqlResult<BatchSummary> {
    // Every id a line carries was read from `accounts` under the write
    // lock, in this transaction or one with no foreign commit since
    // (see `IngestCache::revalidate`), so SQLite's own parent-key lookups
    // would only repeat that work; they cost a third of an insert. The
    // pragma is a no-op inside a transaction, so it brackets this one.
    conn.pragma_update(None, "foreign_keys", false)?;
    let outcome =
        queue_chunk_in_one_transaction(conn, cache, currencies, lines, max, all_or_nothing, sink);
    // Restoring the pragma touches no file; should it fail all the same, a
    // committed chunk must still be reported as committed.
    let restored = conn.pragma_update(None, "foreign_keys", true);
    if !matches!(
        outcome,
        Ok(BatchSummary {
            committed: true,
            ..
        })
    ) {
        restored?;
    }
    if !matches!(
        outcome,
        Ok(BatchSummary {
            committed: true,
            ..
        })
    ) {
        // Rolled back: the pending sums in memory are not what the file holds.
        *cache = IngestCache::default();
    }
    outcome
}

fn queue_chunk_in_one_transaction(
    conn: &mut Connection,
    cache: &mut IngestCache,
    currencies: &Currencies,
    lines: &mut dyn Iterator<Item = Result<BatchLine>>,
    max: usize,
    all_or_nothing: bool,
    sink: &mut dyn BatchSink,
) -> SqlResult<BatchSummary> {
    let tx = super::guard::begin_write(conn)?;
    cache.revalidate(&tx)?;
    let mut summary = BatchSummary::default();
    let mut lines = lines.take(max);
    let span = ingest(
        &tx,
        currencies,
        &mut lines,
        all_or_nothing,
        cache,
        sink,
        &mut summary,
    )?;
    if (all_or_nothing && summary.failed > 0) || sink.dry_run() {
        tx.rollback()?;
        return Ok(summary);
    }
    // Whatever can fail in the sink fails now, while the chunk can still
    // be rolled back.
    sink.before_commit()?;
    commit(
        tx,
        &span.describe(),
        "`wallet get-transfer` shows what is there; only a retry with the same --id (or \"id\") is exact, without one it queues again",
    )?;
    summary.committed = true;
    Ok(summary)
}

/// An account's pending sums as this batch has left them.
#[derive(Debug, Clone, Copy)]
struct Pending {
    out: i64,
    r#in: i64,
    dirty: bool,
}

/// A user name lower-cased and zero-padded in place: a valid name is at
/// most 32 ASCII characters and never holds a NUL, so the padding cannot
/// make two names equal, and a lookup reads no memory beyond the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct NameKey([u8; 32]);

impl NameKey {
    fn of(name: &UserName) -> Self {
        let mut key = [0u8; 32];
        for (slot, byte) in key.iter_mut().zip(name.as_str().bytes()) {
            *slot = byte.to_ascii_lowercase();
        }
        Self(key)
    }
}

/// What ingest keeps in memory from chunk to chunk.
#[derive(Default)]
pub(super) struct IngestCache {
    /// Lower-cased user name to the account's id and whether it is closed:
    /// one look-up a side of a line, where a second one in `accounts`, at
    /// another random place in memory (a cache miss), cost a batch 3–4 %.
    names: FastMap<NameKey, Named>,
    accounts: FastMap<BalanceKey, Pending>,
    /// Whether the last keyed group to read its keys found some of them
    /// stored: then groups read their keys before they are decided.
    replaying: bool,
    /// Whether another connection committed since the last chunk began; if
    /// not, `accounts` and `names` still hold.
    commits: CommitWatch,
}

impl IngestCache {
    fn revalidate(&mut self, tx: &Transaction<'_>) -> SqlResult<()> {
        // Another connection may have changed pending sums, closed a user
        // or removed one whose id is cached; start over from the file.
        let stale = self.commits.others_committed(tx)?;
        if stale || self.accounts.len() > MAX_CACHED || self.names.len() > MAX_CACHED {
            self.accounts.clear();
            self.names.clear();
        }
        Ok(())
    }

    fn named(
        &mut self,
        stmt: &mut CachedStatement<'_>,
        name: &UserName,
    ) -> SqlResult<Option<Named>> {
        let key = NameKey::of(name);
        if let Some(&named) = self.names.get(&key) {
            return Ok(Some(named));
        }
        let named = stmt
            .query_row([name.as_str()], |row| {
                Ok(Named {
                    id: row.get(0)?,
                    closed: row.get(1)?,
                })
            })
            .optional()?;
        if let Some(named) = named {
            self.names.insert(key, named);
        }
        Ok(named)
    }

    fn load(
        &mut self,
        tx: &Transaction<'_>,
        stmt: &mut CachedStatement<'_>,
        key: BalanceKey,
    ) -> SqlResult<Pending> {
        if let Some(&pending) = self.accounts.get(&key) {
            return Ok(pending);
        }
        let read = |row: &rusqlite::Row<'_>| {
            Ok(Pending {
                out: row.get(0)?,
                r#in: row.get(1)?,
                dirty: false,
            })
        };
        let pending = if slots::in_accounts(key) {
            stmt.query_row([key.account], read)?
        } else {
            // A balance in another currency with no row yet reads as zero:
            // its row is made when a queued line first reserves on it.
            // Subqueries, not a join: SQLite plans a join of the two on a
            // bound account again for every account bound.
            tx.prepare_cached(
                "SELECT coalesce((SELECT pending_out FROM balances
                                   WHERE account = ?1 AND currency = ?2), 0),
                        coalesce((SELECT pending_in FROM balances
                                   WHERE account = ?1 AND currency = ?2), 0)
                 FROM accounts WHERE id = ?1",
            )?
            .query_row(params![key.account, key.currency], read)?
        };
        self.accounts.insert(key, pending);
        Ok(pending)
    }
}

/// Lines decided by one plan and written by one statement a run of plain
/// transfers: each execution of a statement costs about as much as the row
/// it inserts, and the transfers holding a group's keys are read by one.
const LINES_PER_GROUP: usize = 64;

/// The transfers holding any of up to [`LINES_PER_GROUP`] keys; unused
/// places are bound to NULL, which matches nothing, so one statement
/// serves every group.
fn stored_keys_query() -> String {
    let places = (1..=LINES_PER_GROUP)
        .map(|n| format!("?{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT t.idem_key, t.tx_id, t.src, t.dst, t.amount, t.memo, t.status, t.hold_amount,
                t.expires_at, t.refund_of, t.created_at, t.currency,
                p.tx_id, p.amount, p.currency
         FROM transfers t LEFT JOIN transfers p ON p.tx_id = t.pair_tx_id
         WHERE t.idem_key IN ({places})"
    )
}

struct Statements<'c> {
    by_name: CachedStatement<'c>,
    pending: CachedStatement<'c>,
    /// Prepared when a group first reads its keys: most never do.
    by_keys: Option<CachedStatement<'c>>,
}

impl<'c> Statements<'c> {
    fn prepare(tx: &'c Transaction<'_>) -> SqlResult<Self> {
        Ok(Self {
            by_name: tx
                .prepare_cached("SELECT id, closed FROM accounts WHERE name = ?1 COLLATE NOCASE")?,
            pending: tx
                .prepare_cached("SELECT pending_out, pending_in FROM accounts WHERE id = ?1")?,
            by_keys: None,
        })
    }
}

/// What a group of lines is decided over: names and pending sums from the
/// single-writer cache, the group's stored keys read ahead (or taken to be
/// none), and a hold's
/// figures or a refund's original read as the plan asks, all under the
/// write lock this transaction holds.
struct Facts<'f, 's, 'c> {
    tx: &'f Transaction<'c>,
    now: i64,
    cache: &'f mut IngestCache,
    statements: &'f mut Statements<'s>,
    keys: StoredKeys,
}

/// What a group's plan is told of the keys stored before it.
enum StoredKeys {
    /// Read ahead by one statement.
    Read(FastMap<String, StoredKey>),
    /// Taken to be none, which the unique index on keys then checks as the
    /// group's one statement writes its rows: on a new ledger or a stream
    /// of new keys, the look-up a key would take before its insert is the
    /// same B-tree descent the insert takes again. A plan over this holds
    /// only if each keyed line became a row or names one: a line the plan
    /// refused past the key's place in its checks (a pending sum that would
    /// overflow) might have been a replay, so any refused keyed line sends
    /// the group to be decided again, whatever refused it. The pending sums
    /// the plan replaces are kept for that.
    AssumedNone {
        replaced: Vec<(BalanceKey, Pending)>,
    },
}

impl ChunkFacts for Facts<'_, '_, '_> {
    type Fault = Fault;

    fn account(&mut self, name: &UserName) -> SqlResult<Option<Named>> {
        self.cache.named(&mut self.statements.by_name, name)
    }

    fn stored_key(&mut self, key: &IdempotencyKey) -> SqlResult<Option<StoredKey>> {
        Ok(match &self.keys {
            StoredKeys::Read(found) => found.get(key.as_str()).cloned(),
            StoredKeys::AssumedNone { .. } => None,
        })
    }

    fn sums(&mut self, key: BalanceKey) -> SqlResult<PendingSums> {
        let pending = self
            .cache
            .load(self.tx, &mut self.statements.pending, key)?;
        Ok(PendingSums {
            out: pending.out,
            r#in: pending.r#in,
        })
    }

    fn set_sums(&mut self, key: BalanceKey, sums: PendingSums) {
        if let Some(pending) = self.cache.accounts.get_mut(&key) {
            if let StoredKeys::AssumedNone { replaced } = &mut self.keys {
                replaced.push((key, *pending));
            }
            pending.out = sums.out;
            pending.r#in = sums.r#in;
            pending.dirty = true;
        }
    }

    fn hold_figures(&mut self, key: BalanceKey) -> SqlResult<HoldFigures> {
        super::holds::hold_figures(self.tx, key, self.now)
    }

    fn original(&mut self, tx_id: i64) -> SqlResult<Option<Original>> {
        super::holds::original(self.tx, tx_id)
    }
}

fn ingest(
    tx: &Transaction<'_>,
    currencies: &Currencies,
    lines: &mut dyn Iterator<Item = Result<BatchLine>>,
    all_or_nothing: bool,
    cache: &mut IngestCache,
    sink: &mut dyn BatchSink,
    summary: &mut BatchSummary,
) -> SqlResult<Span> {
    let now = clock::now_ms();
    let mut span = Span::default();
    let mut queued_by: Option<(i64, Vec<u64>)> = None;
    let mut statements = Statements::prepare(tx)?;
    let mut group: Vec<BatchLine> = Vec::new();
    let mut ids: Vec<i64> = Vec::new();
    let mut outcomes: Vec<(u64, Result<Queued>)> = Vec::new();
    loop {
        group.clear();
        for item in (&mut *lines).take(LINES_PER_GROUP) {
            group.push(item?);
        }
        if group.is_empty() {
            break;
        }
        let plan = decide_and_write(
            tx,
            &group,
            cache,
            &mut statements,
            (now, currencies),
            &mut ids,
        )?;
        for (key, held) in &plan.held {
            slots::ensure(tx, *key, now)?;
            slots::execute(
                tx,
                *key,
                "UPDATE accounts SET held = ?2 WHERE id = ?1",
                "UPDATE balances SET held = ?2 WHERE account = ?1 AND currency = ?3",
                &[held],
            )?;
        }
        let answers: Vec<Option<Result<Queued>>> =
            plan.answers(&group, &ids, all_or_nothing).collect();
        for (answer, line) in answers.into_iter().zip(group.drain(..)) {
            let outcome = match (answer, line.transfer) {
                (Some(outcome), _) => outcome,
                // Refused when read: the line's own error.
                (None, Err(refused)) => Err(refused),
                (None, Ok(_)) => Err(WalletError::internal(anyhow::anyhow!(
                    "a line read well was planned as refused when read"
                ))),
            };
            outcomes.push((line.line, outcome));
        }
        report(
            &mut outcomes,
            all_or_nothing,
            &mut queued_by,
            &mut span,
            summary,
            sink,
        )?;
    }
    drop(statements);
    let mut write =
        tx.prepare_cached("UPDATE accounts SET pending_out = ?2, pending_in = ?3 WHERE id = ?1")?;
    for (key, pending) in cache.accounts.iter_mut().filter(|(_, p)| p.dirty) {
        if slots::in_accounts(*key) {
            write.execute(params![key.account, pending.out, pending.r#in])?;
        } else {
            slots::ensure(tx, *key, now)?;
            slots::execute(
                tx,
                *key,
                "",
                "UPDATE balances SET pending_out = ?2, pending_in = ?3
                 WHERE account = ?1 AND currency = ?4",
                &[&pending.out, &pending.r#in],
            )?;
        }
        pending.dirty = false;
    }
    Ok(span)
}

/// Decides a group and writes its rows, setting `ids` to theirs.
///
/// Unless the last keyed group read found stored keys, a group of keyed
/// plain transfers is first decided as if no stored transfer held its
/// keys, and written by one statement, so that the unique index on keys,
/// refusing the statement whole, is the only look-up. If it does (or a
/// keyed line was refused), the group is decided again over the keys it
/// holds, read by one statement, as every other keyed group is; and while
/// such reads find stored keys, the groups after it are read first too (a
/// retried stream replays keys in runs).
fn decide_and_write<'s>(
    tx: &'s Transaction<'_>,
    group: &[BatchLine],
    cache: &mut IngestCache,
    statements: &mut Statements<'s>,
    (now, currencies): (i64, &Currencies),
    ids: &mut Vec<i64>,
) -> SqlResult<ChunkPlan> {
    let keyed = |line: &BatchLine| line.transfer.as_ref().is_ok_and(|t| t.key().is_some());
    if !cache.replaying && group.iter().any(keyed) && group.iter().all(is_plain) {
        let mut facts = Facts {
            tx,
            now,
            cache: &mut *cache,
            statements: &mut *statements,
            keys: StoredKeys::AssumedNone {
                replaced: Vec::new(),
            },
        };
        let plan = rules::plan::plan_chunk(group, &mut facts, now, currencies)?;
        let StoredKeys::AssumedNone { replaced } = facts.keys else {
            unreachable!("the facts were built assuming no stored keys")
        };
        let refused_a_key = plan
            .lines
            .iter()
            .zip(group)
            .any(|(planned, line)| matches!(planned, Planned::Refused(_)) && keyed(line));
        if !refused_a_key && plan.held.is_empty() && plan.rows.iter().all(in_a_run) {
            match write_rows(tx, group, &plan, now, ids) {
                Ok(()) => return Ok(plan),
                Err(fault) if !refused_for_its_replays(&fault) => return Err(fault),
                // The refused statement left no row behind it.
                Err(_) => {}
            }
        }
        for (key, pending) in replaced.into_iter().rev() {
            cache.accounts.insert(key, pending);
        }
    }
    let found = stored_keys(tx, &mut statements.by_keys, group)?;
    if group.iter().any(keyed) {
        cache.replaying = !found.is_empty();
    }
    let keys = StoredKeys::Read(found);
    let mut facts = Facts {
        tx,
        now,
        cache,
        statements,
        keys,
    };
    let plan = rules::plan::plan_chunk(group, &mut facts, now, currencies)?;
    write_rows(tx, group, &plan, now, ids)?;
    Ok(plan)
}

/// A line read well that asks for a transfer in the ledger's default
/// currency, or a line read badly (which writes no row).
fn is_plain(line: &BatchLine) -> bool {
    line.transfer.as_ref().map_or(true, |t| {
        matches!(t.kind(), crate::ledger::model::Kind::Transfer)
            && t.currency() == crate::money::CurrencyId::DEFAULT
    })
}

/// Whether [`write_rows`] writes a row with the run of rows around it, by
/// one statement.
fn in_a_run(row: &NewRow) -> bool {
    row.kind == RowKind::Transfer
        && row.currency == crate::money::CurrencyId::DEFAULT
        && row.leg.is_none()
}

/// Whether a write of a group decided over keys taken to be new was
/// refused for rows its replays, decided over the keys as read, would not
/// write: a key a stored transfer holds, or ids past the last one a run
/// can take.
fn refused_for_its_replays(fault: &Fault) -> bool {
    match fault {
        Fault::Sql(rusqlite::Error::SqliteFailure(e, Some(message))) => {
            e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                && message.contains("transfers.idem_key")
        }
        Fault::Wallet(WalletError::Internal(err)) => err.downcast_ref::<IdsExhausted>().is_some(),
        _ => false,
    }
}

/// A run refused before it goes in: its ids would pass `i64::MAX`, where
/// SQLite picks ids at random.
#[derive(Debug)]
struct IdsExhausted(i64);

impl std::fmt::Display for IdsExhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transfer ids have reached their limit ({})", self.0)
    }
}

impl std::error::Error for IdsExhausted {}

/// The transfers stored before this group that hold a key its lines use,
/// by one statement.
fn stored_keys<'c>(
    tx: &'c Transaction<'_>,
    statement: &mut Option<CachedStatement<'c>>,
    group: &[BatchLine],
) -> SqlResult<FastMap<String, StoredKey>> {
    let mut found = FastMap::default();
    let mut keys = group
        .iter()
        .filter_map(|line| line.transfer.as_ref().ok())
        .filter_map(|t| t.key().map(IdempotencyKey::as_str))
        .peekable();
    if keys.peek().is_none() {
        return Ok(found);
    }
    let by_keys = match statement {
        Some(prepared) => prepared,
        None => statement.insert(tx.prepare_cached(&stored_keys_query())?),
    };
    let mut bound = 0;
    for (place, key) in keys.enumerate() {
        by_keys.raw_bind_parameter(place + 1, key)?;
        bound = place + 1;
    }
    for place in bound..LINES_PER_GROUP {
        by_keys.raw_bind_parameter(place + 1, rusqlite::types::Null)?;
    }
    let mut rows = by_keys.raw_query();
    while let Some(row) = rows.next()? {
        found.insert(
            row.get(0)?,
            StoredKey {
                tx_id: row.get(1)?,
                src: row.get(2)?,
                dst: row.get(3)?,
                amount: row.get(4)?,
                currency: crate::money::CurrencyId(row.get(11)?),
                memo: row.get(5)?,
                status: row.get(6)?,
                hold_amount: row.get(7)?,
                expires_at: row.get(8)?,
                refund_of: row.get(9)?,
                created_at: row.get(10)?,
                pair: match row.get::<_, Option<i64>>(12)? {
                    Some(pair) => {
                        Some((pair, row.get(13)?, crate::money::CurrencyId(row.get(14)?)))
                    }
                    None => None,
                },
            },
        );
    }
    Ok(found)
}

/// Writes the plan's rows in its order and sets `ids` to the id of each.
/// Under the write lock a new row takes the largest id plus one, and a key
/// a stored transfer holds refuses the whole statement it is in (the plan
/// either read the stored keys or assumed none), so no row of a run is
/// skipped and a run takes consecutive ids. SQLite picks ids at
/// random once the largest reaches `i64::MAX`, so a run that could reach it
/// is refused before it goes in.
fn write_rows(
    tx: &Transaction<'_>,
    group: &[BatchLine],
    plan: &ChunkPlan,
    now: i64,
    ids: &mut Vec<i64>,
) -> SqlResult<()> {
    ids.clear();
    // The largest id, as read before any row of the group went in: the
    // first run's ids follow it. A run after another row reads it again.
    let mut top = Some(super::queue_mark::keep_below_new_rows(tx)?);
    let extras = |row: &NewRow| {
        group[row.line]
            .transfer
            .as_ref()
            .ok()
            .map_or((None, None), |t| {
                (t.memo(), t.key().map(IdempotencyKey::as_str))
            })
    };
    let mut rows = plan.rows.as_slice();
    while let Some(first) = rows.first() {
        let run = rows.iter().take_while(|row| in_a_run(row)).count();
        if run == 0 {
            top = None;
            let (memo, key) = extras(first);
            let tx_id = match first.kind {
                RowKind::Hold { expires_at } => {
                    super::holds::place(tx, first, memo, key, now, expires_at)?
                }
                RowKind::Refund { original } => {
                    tx.prepare_cached(
                        "INSERT INTO transfers (src, dst, amount, status, memo, idem_key, created_at,
                                                refund_of, currency)
                         VALUES (?1, ?2, ?3, 'PENDING', ?4, ?5, ?6, ?7, ?8)",
                    )?
                    .execute(params![
                        first.src,
                        first.dst,
                        first.amount,
                        memo,
                        key,
                        now,
                        original,
                        first.currency
                    ])?;
                    tx.last_insert_rowid()
                }
                RowKind::Transfer if first.leg.is_some() => {
                    let Some((second, rest)) = rows.get(1).zip(rows.get(2..)) else {
                        return Err(WalletError::internal(anyhow::anyhow!(
                            "an exchange was planned without its second leg"
                        ))
                        .into());
                    };
                    let (a, b) = insert_pair(tx, first, second, memo, key, now)?;
                    ids.extend([a, b]);
                    rows = rest;
                    continue;
                }
                // A transfer in another currency: the run above keeps the
                // default currency's statement as it was.
                RowKind::Transfer => {
                    tx.prepare_cached(
                        "INSERT INTO transfers (src, dst, amount, status, memo, idem_key, created_at,
                                                currency)
                         VALUES (?1, ?2, ?3, 'PENDING', ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        first.src,
                        first.dst,
                        first.amount,
                        memo,
                        key,
                        now,
                        first.currency
                    ])?;
                    tx.last_insert_rowid()
                }
            };
            ids.push(tx_id);
            rows = &rows[1..];
            continue;
        }
        let (head, rest) = rows.split_at(run);
        let before = match top.take() {
            Some(top) => top,
            None => tx
                .prepare_cached("SELECT coalesce(max(tx_id), 0) FROM transfers")?
                .query_row([], |row| row.get(0))?,
        };
        if before > i64::MAX - run as i64 {
            return Err(WalletError::internal(IdsExhausted(before)).into());
        }
        let values = vec!["(?, ?, ?, 'PENDING', ?, ?, ?)"; run].join(", ");
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO transfers (src, dst, amount, status, memo, idem_key, created_at) VALUES {values}"
        ))?;
        let mut bound: Vec<(Option<&str>, Option<&str>)> = Vec::with_capacity(run);
        bound.extend(head.iter().map(extras));
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(run * 6);
        for (row, (memo, key)) in head.iter().zip(&bound) {
            params.extend([
                &row.src as &dyn rusqlite::ToSql,
                &row.dst,
                &row.amount,
                memo,
                key,
                &now,
            ]);
        }
        let inserted = insert.execute(params.as_slice())?;
        let last = tx.last_insert_rowid();
        if inserted != run || last != before + run as i64 {
            return Err(WalletError::internal(anyhow::anyhow!(
                "{inserted} of {run} rows went in, the last as {last}"
            ))
            .into());
        }
        ids.extend(last - run as i64 + 1..=last);
        rows = rest;
    }
    Ok(())
}

/// Writes an exchange's two legs, each naming the other: the first with the
/// line's key, the second with its pair, then the first's pair. Under the
/// write lock the second takes the next id, so no transfer lies between the
/// legs, which is what lets settle decide the pair at its first leg.
fn insert_pair(
    tx: &Transaction<'_>,
    first: &NewRow,
    second: &NewRow,
    memo: Option<&str>,
    key: Option<&str>,
    now: i64,
) -> SqlResult<(i64, i64)> {
    if first.leg != Some(Leg::First) || second.leg != Some(Leg::Second) {
        return Err(WalletError::internal(anyhow::anyhow!(
            "an exchange's legs were planned out of order"
        ))
        .into());
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO transfers (src, dst, amount, status, memo, idem_key, created_at,
                                currency, pair_tx_id)
         VALUES (?1, ?2, ?3, 'PENDING', ?4, ?5, ?6, ?7, ?8)",
    )?;
    insert.execute(params![
        first.src,
        first.dst,
        first.amount,
        memo,
        key,
        now,
        first.currency,
        None::<i64>
    ])?;
    let a = tx.last_insert_rowid();
    insert.execute(params![
        second.src,
        second.dst,
        second.amount,
        memo,
        None::<&str>,
        now,
        second.currency,
        a
    ])?;
    let b = tx.last_insert_rowid();
    if b != a + 1 {
        return Err(WalletError::internal(anyhow::anyhow!(
            "the legs of an exchange took ids {a} and {b}, not consecutive ones"
        ))
        .into());
    }
    tx.prepare_cached("UPDATE transfers SET pair_tx_id = ?2 WHERE tx_id = ?1")?
        .execute(params![a, b])?;
    Ok((a, b))
}

/// Hands the results gathered so far to the sink, in line order.
fn report(
    outcomes: &mut Vec<(u64, Result<Queued>)>,
    all_or_nothing: bool,
    queued_by: &mut Option<(i64, Vec<u64>)>,
    span: &mut Span,
    summary: &mut BatchSummary,
    sink: &mut dyn BatchSink,
) -> SqlResult<()> {
    for (line, mut outcome) in outcomes.drain(..) {
        record(line, &mut outcome, all_or_nothing, queued_by, span, summary);
        sink.record(line, outcome)?;
    }
    Ok(())
}

/// Counts one line's result into the chunk's span and summary. In an
/// all-or-nothing chunk it also notes which line queued each new transfer
/// (their ids are consecutive under the write lock), so that a key
/// conflict with an earlier line names that line: its transfer is rolled
/// back with the rest. Eight bytes a line.
fn record(
    line: u64,
    outcome: &mut Result<Queued>,
    all_or_nothing: bool,
    queued_by: &mut Option<(i64, Vec<u64>)>,
    span: &mut Span,
    summary: &mut BatchSummary,
) {
    if all_or_nothing {
        match outcome {
            Ok(Queued {
                tx_id,
                replayed: false,
                pair_tx_id,
                ..
            }) => {
                let (_, lines) = queued_by.get_or_insert_with(|| (tx_id.get(), Vec::new()));
                // An exchange's second leg takes the id after its first.
                lines.extend(std::iter::repeat_n(
                    line,
                    1 + usize::from(pair_tx_id.is_some()),
                ));
            }
            Err(WalletError::IdempotencyConflict {
                tx_id,
                earlier_line,
                ..
            }) => {
                if let Some((first, lines)) = queued_by {
                    *earlier_line = usize::try_from(*tx_id - *first)
                        .ok()
                        .and_then(|i| lines.get(i))
                        .copied();
                }
            }
            _ => {}
        }
    }
    span.note(line, outcome);
    summary.count(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;
    use crate::ledger::model::NewTransfer;
    use crate::ledger::model::TxId;
    use crate::ledger::{BatchOptions, BatchSummary, Ledger, Location, OpenOptions};
    use crate::money::{Amount, Currency};
    use tempfile::TempDir;

    /// Keeps every outcome, and runs `between` after each commit.
    struct Recorder<F: FnMut()> {
        outcomes: Vec<(u64, std::result::Result<Queued, String>)>,
        commits: usize,
        between: F,
    }

    impl<F: FnMut()> Recorder<F> {
        fn new(between: F) -> Self {
            Self {
                outcomes: vec![],
                commits: 0,
                between,
            }
        }
    }

    impl<F: FnMut()> Recorder<F> {
        /// Each line's number with its transfer id, or its error's code.
        fn ids(&self) -> Vec<(u64, std::result::Result<i64, &str>)> {
            self.outcomes
                .iter()
                .map(|(n, o)| {
                    (
                        *n,
                        o.as_ref().map(|q| q.tx_id.get()).map_err(String::as_str),
                    )
                })
                .collect()
        }

        /// Each line's transfer id and whether it was replayed, or its
        /// error's code.
        fn ids_and_replays(&self) -> Vec<std::result::Result<(i64, bool), &str>> {
            self.outcomes
                .iter()
                .map(|(_, o)| {
                    o.as_ref()
                        .map(|q| (q.tx_id.get(), q.replayed))
                        .map_err(String::as_str)
                })
                .collect()
        }
    }

    impl<F: FnMut()> BatchSink for Recorder<F> {
        fn record(&mut self, line: u64, outcome: Result<Queued>) -> Result<()> {
            self.outcomes
                .push((line, outcome.map_err(|e| e.code().to_string())));
            Ok(())
        }

        fn committed(&mut self) -> Result<()> {
            self.commits += 1;
            (self.between)();
            Ok(())
        }
    }

    /// Queues `lines` as one batch with the default options.
    fn queue(
        ledger: &mut Ledger,
        lines: Vec<Result<BatchLine>>,
        sink: &mut dyn BatchSink,
    ) -> BatchSummary {
        ledger
            .queue_batch(lines.into_iter(), &BatchOptions::default(), sink)
            .unwrap()
    }

    /// A ledger in `dir` holding transfer 1 (alice to bob, one minor
    /// unit, under `key`), closed so that a test can open the file raw;
    /// returns the sink that recorded it.
    fn queued_one_keyed(dir: &TempDir, key: &str) -> Recorder<impl FnMut()> {
        let mut ledger = ledger(dir);
        let mut sink = Recorder::new(|| {});
        queue(
            &mut ledger,
            vec![line(1, "alice", "bob", 1, Some(key))],
            &mut sink,
        );
        sink
    }

    fn name(text: &str) -> Option<UserName> {
        Some(UserName::parse(text).unwrap())
    }

    fn line(line: u64, src: &str, dst: &str, minor: i64, key: Option<&str>) -> Result<BatchLine> {
        Ok(BatchLine {
            line,
            transfer: NewTransfer::new(
                (!src.is_empty()).then(|| UserName::parse(src).unwrap()),
                (!dst.is_empty()).then(|| UserName::parse(dst).unwrap()),
                Amount::from_minor_units(minor).unwrap(),
                None,
                key.map(|k| IdempotencyKey::parse(k).unwrap()),
            ),
        })
    }

    fn location(dir: &TempDir) -> Location {
        Location::File(dir.path().join("wallet.db"))
    }

    fn ledger(dir: &TempDir) -> Ledger {
        Ledger::create(
            &location(dir),
            &Currency::default(),
            &OpenOptions::default(),
        )
        .unwrap();
        let mut ledger = Ledger::open(&location(dir), &OpenOptions::default()).unwrap();
        for user in ["alice", "bob"] {
            let email = Email::parse(&format!("{user}@example.com")).unwrap();
            ledger
                .create_user(&UserName::parse(user).unwrap(), &email, 0)
                .unwrap();
        }
        ledger
    }

    fn pending(ledger: &mut Ledger, user: &str) -> (i64, i64) {
        let user = ledger.user(&UserName::parse(user).unwrap()).unwrap();
        (user.pending_out, user.pending_in)
    }

    #[test]
    fn keys_replay_within_and_across_chunks_and_conflict_on_other_fields() {
        let dir = TempDir::new().unwrap();
        let mut ledger = ledger(&dir);
        let lines = vec![
            line(1, "alice", "bob", 100, Some("k1")),
            line(2, "alice", "bob", 100, Some("k1")),
            line(3, "Bob", "ALICE", 7, None),
            line(4, "alice", "bob", 100, Some("k1")),
            line(5, "alice", "bob", 101, Some("k1")),
            line(6, "alice", "carol", 1, None),
        ];
        let mut sink = Recorder::new(|| {});
        let options = BatchOptions {
            chunk_size: 3,
            atomic: false,
        };
        let summary = ledger
            .queue_batch(lines.into_iter(), &options, &mut sink)
            .unwrap();
        assert_eq!(sink.commits, 2);
        assert_eq!(
            (summary.queued, summary.replayed, summary.failed),
            (2, 2, 2)
        );
        let ids = sink.ids();
        assert_eq!(
            ids,
            vec![
                (1, Ok(1)),
                (2, Ok(1)),
                (3, Ok(2)),
                (4, Ok(1)),
                (5, Err("idempotency_conflict")),
                (6, Err("user_not_found")),
            ]
        );
        assert_eq!(pending(&mut ledger, "alice"), (100, 7));
        assert_eq!(pending(&mut ledger, "bob"), (7, 100));
    }

    /// Groups of new keys are written on the unique index's word alone; a
    /// group holding a stored key, even one stored by an earlier group of
    /// the same transaction, is decided again over what is stored, with
    /// nothing of its first decision left in the rows or the sums.
    #[test]
    fn a_group_that_replays_a_stored_key_is_decided_again_over_it() {
        let dir = TempDir::new().unwrap();
        let mut ledger = ledger(&dir);
        let mut sink = Recorder::new(|| {});
        let first = vec![line(1, "bob", "alice", 9, Some("old"))];
        queue(&mut ledger, first, &mut sink);
        // One chunk of four groups: new keys; a replay of the first group's
        // key, a conflict with another of its keys and one with the key
        // stored before the batch, among new keys; new keys again; and a
        // group with no key at all.
        let key = |n: u64| Some(format!("k{n}"));
        let lines: Vec<_> = (1..=LINES_PER_GROUP as u64 * 4)
            .map(|n| {
                let (minor, key) = match n {
                    70 => (5, Some("k5".to_string())),
                    71 => (7, Some("k6".to_string())),
                    72 => (9, Some("old".to_string())),
                    n if n > LINES_PER_GROUP as u64 * 3 => (n as i64, None),
                    n => (n as i64, key(n)),
                };
                line(n, "alice", "bob", minor, key.as_deref())
            })
            .collect();
        sink.outcomes.clear();
        let summary = queue(&mut ledger, lines, &mut sink);
        let total = LINES_PER_GROUP as i64 * 4;
        assert_eq!(
            (summary.queued, summary.replayed, summary.failed),
            (total as u64 - 3, 1, 2),
            "{:?}",
            sink.outcomes
        );
        let answers: Vec<_> = sink
            .ids()
            .into_iter()
            .filter(|(n, _)| (69..=73).contains(n))
            .collect();
        assert_eq!(
            answers,
            vec![
                (69, Ok(70)),
                (70, Ok(6)),
                (71, Err("idempotency_conflict")),
                (72, Err("idempotency_conflict")),
                (73, Ok(71)),
            ]
        );
        // Every line but the three queued once, at its own amount.
        let queued: i64 = (1..=total).filter(|n| !(70..=72).contains(n)).sum();
        assert_eq!(pending(&mut ledger, "alice"), (queued, 9));
        assert_eq!(pending(&mut ledger, "bob"), (9, queued));
        let last = sink.outcomes.last().unwrap().1.as_ref().unwrap();
        assert_eq!(last.tx_id.get(), 1 + total - 3);
    }

    /// A group of new keys reads none; a group with a stored key reads
    /// them, and so do the groups after it until a read finds none.
    #[test]
    fn only_groups_after_a_stored_key_read_their_keys() {
        let dir = TempDir::new().unwrap();
        queued_one_keyed(&dir, "old");
        let mut conn = Connection::open(dir.path().join("wallet.db")).unwrap();
        let tx = conn.transaction().unwrap();
        let currencies = super::super::currencies::load(
            &tx,
            super::super::schema::latest_version(),
            &Currency::default(),
        )
        .unwrap();
        let mut cache = IngestCache::default();
        let mut statements = Statements::prepare(&tx).unwrap();
        fn decide<'s>(
            tx: &'s Transaction<'_>,
            keys: &[&str],
            cache: &mut IngestCache,
            statements: &mut Statements<'s>,
            currencies: &Currencies,
        ) -> (usize, Vec<i64>) {
            let group: Vec<BatchLine> = keys
                .iter()
                .map(|key| line(1, "alice", "bob", 1, Some(key)).unwrap())
                .collect();
            let mut ids = Vec::new();
            let plan =
                decide_and_write(tx, &group, cache, statements, (0, currencies), &mut ids).unwrap();
            (plan.rows.len(), ids)
        }
        assert_eq!(
            decide(&tx, &["a", "b"], &mut cache, &mut statements, &currencies),
            (2, vec![2, 3])
        );
        assert!(statements.by_keys.is_none(), "new keys were looked up");
        assert_eq!(
            decide(&tx, &["c", "old"], &mut cache, &mut statements, &currencies),
            (1, vec![4])
        );
        assert!(statements.by_keys.is_some() && cache.replaying);
        assert_eq!(
            decide(&tx, &["d"], &mut cache, &mut statements, &currencies),
            (1, vec![5])
        );
        assert!(!cache.replaying, "a read that found no stored key");
    }

    /// A replay is answered as one even when the line, taken for new, would
    /// be refused: here its reservation would overflow the pending sums.
    #[test]
    fn a_replay_that_would_overflow_as_a_new_line_is_a_replay() {
        let dir = TempDir::new().unwrap();
        let mut ledger = ledger(&dir);
        let mut sink = Recorder::new(|| {});
        let big = i64::MAX / 2 + 1;
        for _ in 0..2 {
            let lines = vec![line(1, "alice", "bob", big, Some("big"))];
            queue(&mut ledger, lines, &mut sink);
        }
        let answers = sink.ids_and_replays();
        assert_eq!(answers, vec![Ok((1, false)), Ok((1, true))]);
        assert_eq!(pending(&mut ledger, "alice"), (big, 0));
    }

    /// Next to the last id a row can take, a group whose replays are taken
    /// for new rows would run past it; decided over its keys as read, it
    /// answers the replays and writes the one new row that fits.
    #[test]
    fn replays_at_the_last_ids_are_answered() {
        let dir = TempDir::new().unwrap();
        let mut sink = queued_one_keyed(&dir, "k1");
        Connection::open(dir.path().join("wallet.db"))
            .unwrap()
            .execute(
                "UPDATE transfers SET tx_id = ?1 WHERE tx_id = 1",
                [i64::MAX - 1],
            )
            .unwrap();
        let mut ledger = Ledger::open(&location(&dir), &OpenOptions::default()).unwrap();
        sink.outcomes.clear();
        let lines = vec![
            line(1, "alice", "bob", 1, Some("k1")),
            line(2, "alice", "bob", 2, Some("k2")),
        ];
        queue(&mut ledger, lines, &mut sink);
        let answers = sink.ids_and_replays();
        assert_eq!(
            answers,
            vec![Ok((i64::MAX - 1, true)), Ok((i64::MAX, false))]
        );
    }

    /// A line read while a replayed line waits is decided against sums that
    /// do not count the replay's reservation.
    #[test]
    fn a_waiting_replay_does_not_refuse_the_lines_after_it() {
        let dir = TempDir::new().unwrap();
        let mut ledger = ledger(&dir);
        let mut sink = Recorder::new(|| {});
        let big = 4_000_000_000_000_000_000;
        let first = vec![line(1, "", "alice", big, Some("k1"))];
        queue(&mut ledger, first, &mut sink);
        let second = vec![
            line(1, "", "alice", big, Some("k1")),
            line(2, "", "bob", 3_000_000_000_000_000_000, None),
        ];
        let summary = queue(&mut ledger, second, &mut sink);
        assert_eq!(
            (summary.queued, summary.replayed, summary.failed),
            (1, 1, 0),
            "{:?}",
            sink.outcomes
        );
        assert_eq!(pending(&mut ledger, "bob"), (0, 3_000_000_000_000_000_000));
    }

    /// Keyless lines go in many to a statement; results and ids still
    /// follow the lines, across keyed and refused lines between them.
    #[test]
    fn lines_keep_their_order_and_ids_around_keyed_and_refused_ones() {
        let dir = TempDir::new().unwrap();
        let mut ledger = ledger(&dir);
        let lines = (1..=200).map(|n| match n {
            70 => line(n, "alice", "bob", 1, Some("k70")),
            71 => line(n, "alice", "nobody", 1, None),
            140 => line(n, "alice", "bob", 1, Some("k70")),
            n => line(n, "", "alice", 1, None),
        });
        let mut sink = Recorder::new(|| {});
        let summary = ledger
            .queue_batch(lines, &BatchOptions::default(), &mut sink)
            .unwrap();
        assert_eq!(
            (summary.queued, summary.replayed, summary.failed),
            (198, 1, 1)
        );
        let lines: Vec<u64> = sink.outcomes.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, (1..=200).collect::<Vec<_>>());
        let mut next = 1;
        for (n, outcome) in &sink.outcomes {
            match n {
                71 => assert_eq!(outcome.as_ref().unwrap_err(), "user_not_found"),
                140 => assert_eq!(outcome.as_ref().unwrap().tx_id.get(), 70),
                _ => {
                    assert_eq!(outcome.as_ref().unwrap().tx_id.get(), next, "line {n}");
                    next += 1;
                }
            }
        }
        assert_eq!(pending(&mut ledger, "alice"), (1, 197));
    }

    #[test]
    fn a_write_by_another_connection_between_chunks_is_seen() {
        let dir = TempDir::new().unwrap();
        let mut ledger = ledger(&dir);
        let mut other = Ledger::open(&location(&dir), &OpenOptions::default()).unwrap();
        let lines = (1..=4).map(|n| line(n, "", "alice", 10, None));
        let mut sink = Recorder::new(|| {
            let transfer = NewTransfer::new(
                name("bob"),
                name("alice"),
                Amount::from_minor_units(1000).unwrap(),
                None,
                None,
            )
            .unwrap();
            other.queue_transfer(transfer).unwrap();
        });
        let options = BatchOptions {
            chunk_size: 2,
            atomic: false,
        };
        ledger.queue_batch(lines, &options, &mut sink).unwrap();
        assert_eq!(pending(&mut ledger, "alice"), (0, 40 + 2 * 1000));
        assert_eq!(pending(&mut ledger, "bob"), (2000, 0));
    }

    #[test]
    fn an_atomic_batch_with_a_bad_line_keeps_nothing() {
        let dir = TempDir::new().unwrap();
        let mut ledger = ledger(&dir);
        let lines = vec![
            line(1, "", "alice", 10, Some("d1")),
            line(2, "alice", "nobody", 10, None),
            line(3, "", "bob", 10, None),
        ];
        let mut sink = Recorder::new(|| {});
        let options = BatchOptions {
            chunk_size: 1,
            atomic: true,
        };
        let summary = ledger
            .queue_batch(lines.into_iter(), &options, &mut sink)
            .unwrap();
        assert!(!summary.committed);
        assert_eq!(sink.commits, 0);
        assert_eq!(ledger.pending_count().unwrap(), 0);
        assert_eq!(pending(&mut ledger, "alice"), (0, 0));
    }

    /// The caches outlive one call; this store's own cancel and settle in
    /// between must not leave them stale, as `data_version` does not see them.
    #[test]
    fn the_store_s_own_writes_between_batches_are_seen() {
        let dir = TempDir::new().unwrap();
        let mut ledger = ledger(&dir);
        let mut sink = Recorder::new(|| {});
        let options = BatchOptions::default();
        let lines = (1..=3).map(|n| line(n, "", "alice", 10, None));
        ledger.queue_batch(lines, &options, &mut sink).unwrap();
        ledger.cancel(TxId::new(3)).unwrap();
        let lines = (1..=1).map(|n| line(n, "alice", "bob", 5, None));
        ledger.queue_batch(lines, &options, &mut sink).unwrap();
        assert_eq!(pending(&mut ledger, "alice"), (5, 20));
        ledger
            .settle(&crate::ledger::SettleOptions::default(), |_| {})
            .unwrap();
        let lines = (1..=1).map(|n| line(n, "bob", "alice", 1, None));
        ledger.queue_batch(lines, &options, &mut sink).unwrap();
        assert_eq!(pending(&mut ledger, "alice"), (0, 1));
        assert_eq!(pending(&mut ledger, "bob"), (1, 0));
        // Settle, queue, settle: settle's cached figures must see the queueing.
        ledger
            .settle(&crate::ledger::SettleOptions::default(), |_| {})
            .unwrap();
        let lines = (1..=1).map(|n| line(n, "bob", "alice", 2, None));
        ledger.queue_batch(lines, &options, &mut sink).unwrap();
        ledger
            .settle(&crate::ledger::SettleOptions::default(), |_| {})
            .unwrap();
        // An atomic batch rolled back, then another: the sums in memory
        // from the rolled-back one must not be written by the next.
        let atomic = BatchOptions {
            atomic: true,
            ..BatchOptions::default()
        };
        let lines = vec![
            line(1, "", "alice", 7, None),
            line(2, "bob", "nobody", 1, None),
        ];
        let summary = ledger
            .queue_batch(lines.into_iter(), &atomic, &mut sink)
            .unwrap();
        assert!(!summary.committed);
        let lines = (1..=1).map(|n| line(n, "", "alice", 1, None));
        ledger.queue_batch(lines, &options, &mut sink).unwrap();
        assert_eq!(pending(&mut ledger, "alice"), (0, 1));
        let report = ledger
            .verify(&crate::ledger::VerifyOptions::default())
            .unwrap();
        assert!(report.ok(), "{report:?}");
    }
}
