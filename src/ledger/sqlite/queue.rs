//! Queueing: the one path every new transfer takes, a single `transfer`
//! (a chunk of one line) and a batch input (chunks of many) alike.
//!
//! Each chunk is one `BEGIN IMMEDIATE` transaction. Names resolve through a
//! cache, and the pending sums of the accounts a chunk touches are kept in
//! memory and written once per chunk, so a line costs one insert rather than
//! an insert and two updates. Both caches are kept from chunk to chunk only
//! while no other connection commits in between; a chunk that does not
//! commit drops them.

use rusqlite::{
    CachedStatement, Connection, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::CommitWatch;
use super::error::{SqlResult, commit};
use crate::domain::{IdempotencyKey, UserName};
use crate::error::{Result, WalletError};
use crate::ledger::clock;
use crate::ledger::model::{
    BatchLine, BatchSink, BatchSummary, EXTERNAL_ACCOUNT, Kind, NewTransfer, Queued, Span, Status,
};
use crate::ledger::rules::{self, Pinned, PinnedExpiry};
use rustc_hash::FxHashMap as FastMap;

/// Past this many cached names or accounts the caches start over, so that
/// memory stays bounded however many users a file names.
const MAX_CACHED: usize = 1 << 20;

/// Queues up to `max` lines in one transaction; see [`crate::ledger::store::Store::queue_chunk`].
pub(super) fn queue_chunk(
    conn: &mut Connection,
    cache: &mut IngestCache,
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
    let outcome = queue_chunk_in_one_transaction(conn, cache, lines, max, all_or_nothing, sink);
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
    lines: &mut dyn Iterator<Item = Result<BatchLine>>,
    max: usize,
    all_or_nothing: bool,
    sink: &mut dyn BatchSink,
) -> SqlResult<BatchSummary> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    cache.revalidate(&tx)?;
    let mut summary = BatchSummary::default();
    let span = ingest(&tx, lines, max, all_or_nothing, cache, sink, &mut summary)?;
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
    /// Lower-cased user name to account id.
    names: FastMap<NameKey, i64>,
    accounts: FastMap<i64, Pending>,
    /// Whether another connection committed since the last chunk began; if
    /// not, `accounts` and `names` still hold.
    commits: CommitWatch,
}

impl IngestCache {
    fn revalidate(&mut self, tx: &Transaction<'_>) -> SqlResult<()> {
        // Another connection may have changed pending sums, or removed a
        // user whose id is cached; start over from the file.
        let stale = self.commits.others_committed(tx)?;
        if stale || self.accounts.len() > MAX_CACHED || self.names.len() > MAX_CACHED {
            self.accounts.clear();
            self.names.clear();
        }
        Ok(())
    }

    fn user_id(
        &mut self,
        stmt: &mut CachedStatement<'_>,
        name: &UserName,
    ) -> SqlResult<Option<i64>> {
        let key = NameKey::of(name);
        if let Some(&id) = self.names.get(&key) {
            return Ok(Some(id));
        }
        let id: Option<i64> = stmt
            .query_row([name.as_str()], |row| row.get(0))
            .optional()?;
        if let Some(id) = id {
            self.names.insert(key, id);
        }
        Ok(id)
    }

    fn load(&mut self, stmt: &mut CachedStatement<'_>, id: i64) -> SqlResult<Pending> {
        if let Some(&pending) = self.accounts.get(&id) {
            return Ok(pending);
        }
        let pending = stmt.query_row([id], |row| {
            Ok(Pending {
                out: row.get(0)?,
                r#in: row.get(1)?,
                dirty: false,
            })
        })?;
        self.accounts.insert(id, pending);
        Ok(pending)
    }
}

/// Queues a transfer, or does nothing if its key is already taken.
const INSERT_TRANSFER_UNLESS_KEY_USED: &str =
    "INSERT INTO transfers (src, dst, amount, status, memo, idem_key, created_at)
     VALUES (?1, ?2, ?3, 'PENDING', ?4, ?5, ?6)
     ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING";

struct Statements<'c> {
    by_name: CachedStatement<'c>,
    pending: CachedStatement<'c>,
    by_key: CachedStatement<'c>,
    insert: CachedStatement<'c>,
}

fn ingest(
    tx: &Transaction<'_>,
    lines: &mut dyn Iterator<Item = Result<BatchLine>>,
    max: usize,
    all_or_nothing: bool,
    cache: &mut IngestCache,
    sink: &mut dyn BatchSink,
    summary: &mut BatchSummary,
) -> SqlResult<Span> {
    let now = clock::now_ms();
    let mut span = Span::default();
    let mut queued_by: Option<(i64, Vec<u64>)> = None;
    let mut statements = Statements {
        by_name: tx.prepare_cached("SELECT id FROM accounts WHERE name = ?1 COLLATE NOCASE")?,
        pending: tx.prepare_cached("SELECT pending_out, pending_in FROM accounts WHERE id = ?1")?,
        by_key: tx.prepare_cached(
            "SELECT tx_id, src, dst, amount, memo, status, hold_amount, expires_at, refund_of,
                    created_at
             FROM transfers WHERE idem_key = ?1",
        )?,
        insert: tx.prepare_cached(INSERT_TRANSFER_UNLESS_KEY_USED)?,
    };
    let mut taken = 0usize;
    // Keyless lines that queue a transfer wait here, their rows and their
    // line numbers, to go in a statement at a time; every other line waits
    // for them, so that ids and results keep the order of the lines.
    let mut waiting = Waiting::default();
    let mut outcomes: Vec<(u64, Result<Queued>)> = Vec::new();
    loop {
        let item = if taken < max { lines.next() } else { None };
        let Some(item) = item else {
            waiting.flush(tx, now, cache, &mut statements.by_key, &mut outcomes)?;
            report(
                &mut outcomes,
                all_or_nothing,
                &mut queued_by,
                &mut span,
                summary,
                sink,
            )?;
            break;
        };
        let BatchLine { line, transfer } = item?;
        taken += 1;
        // A line may wait with the ones before it unless it is refused
        // already, the batch of waiting rows is full, or its key is one a
        // waiting row holds (it must then see that row in the table).
        let may_wait = match &transfer {
            Ok(t) => {
                t.kind() == Kind::Transfer
                    && t.key()
                        .is_none_or(|key| !waiting.keys.contains(key.as_str()))
            }
            Err(_) => false,
        };
        if !may_wait || waiting.rows.len() >= ROWS_PER_INSERT {
            waiting.flush(tx, now, cache, &mut statements.by_key, &mut outcomes)?;
        }
        let mut before = waiting.rows.len();
        let outcome = match transfer {
            Ok(transfer) => {
                let mut outcome = queue_one(
                    tx,
                    &transfer,
                    now,
                    &mut statements,
                    cache,
                    Some(&mut waiting.rows),
                )?;
                if outcome.is_err() && waiting.rows.len() == before && before > 0 {
                    // Refused against sums that waiting rows reserved: one
                    // whose key turns out taken gives its share back when
                    // it goes in, so the line is decided again after them.
                    waiting.flush(tx, now, cache, &mut statements.by_key, &mut outcomes)?;
                    before = 0;
                    outcome = queue_one(
                        tx,
                        &transfer,
                        now,
                        &mut statements,
                        cache,
                        Some(&mut waiting.rows),
                    )?;
                }
                outcome
            }
            Err(refused) => Err(refused),
        };
        if waiting.rows.len() > before {
            waiting.lines.push(line);
            if let Some(key) = &waiting.rows[before].key {
                waiting.keys.insert(key.clone());
            }
        } else {
            // Answered at once (refused, or replayed from a committed
            // transfer): the lines before it are answered first.
            waiting.flush(tx, now, cache, &mut statements.by_key, &mut outcomes)?;
            outcomes.push((line, outcome));
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
    for (id, pending) in cache.accounts.iter_mut().filter(|(_, p)| p.dirty) {
        write.execute(params![id, pending.out, pending.r#in])?;
        pending.dirty = false;
    }
    Ok(span)
}

/// Lines decided and waiting to go in with the rows after them.
#[derive(Default)]
struct Waiting {
    rows: Vec<DeferredRow>,
    lines: Vec<u64>,
    /// The keys the waiting rows hold.
    keys: rustc_hash::FxHashSet<String>,
}

impl Waiting {
    /// Inserts the waiting rows and turns their lines into results,
    /// appended to `outcomes` in line order. A row whose key a committed
    /// transfer holds is not inserted: its line is answered by that
    /// transfer (a replay or a conflict) and gives back the pending sums it
    /// had reserved.
    fn flush(
        &mut self,
        tx: &Transaction<'_>,
        now: i64,
        cache: &mut IngestCache,
        by_key: &mut CachedStatement<'_>,
        outcomes: &mut Vec<(u64, Result<Queued>)>,
    ) -> SqlResult<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let ids = insert_deferred(tx, &self.rows, now)?;
        for ((row, line), tx_id) in self.rows.drain(..).zip(self.lines.drain(..)).zip(ids) {
            let outcome = match tx_id {
                Some(tx_id) => Ok(Queued {
                    tx_id,
                    status: Status::Pending,
                    replayed: false,
                }),
                None => {
                    unreserve(cache, &row);
                    let key = IdempotencyKey::parse(row.key.as_deref().unwrap_or_default())?;
                    let requested = Pinned {
                        src: row.src,
                        dst: row.dst,
                        amount: row.amount,
                        memo: row.memo.as_deref(),
                        hold: false,
                        refund_of: None,
                        expiry: None,
                    };
                    replay(by_key, &key, requested)?.ok_or_else(|| {
                        WalletError::internal(anyhow::anyhow!(
                            "a transfer was neither queued nor found under its key"
                        ))
                    })?
                }
            };
            outcomes.push((line, outcome));
        }
        self.keys.clear();
        Ok(())
    }
}

/// Gives back the pending sums a row reserved when it was decided.
fn unreserve(cache: &mut IngestCache, row: &DeferredRow) {
    if let Some(pending) = cache.accounts.get_mut(&row.src) {
        pending.out -= row.amount;
        pending.dirty = true;
    }
    if let Some(pending) = cache.accounts.get_mut(&row.dst) {
        pending.r#in -= row.amount;
        pending.dirty = true;
    }
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
                ..
            }) => queued_by
                .get_or_insert_with(|| (*tx_id, Vec::new()))
                .1
                .push(line),
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

/// Queues one transfer. The outer error is fatal to the chunk (SQLite,
/// I/O); the inner one refuses only this line.
fn queue_one(
    tx: &Transaction<'_>,
    transfer: &NewTransfer,
    now: i64,
    statements: &mut Statements<'_>,
    cache: &mut IngestCache,
    deferred: Option<&mut Vec<DeferredRow>>,
) -> SqlResult<Result<Queued>> {
    let mut side = |name: Option<&UserName>| -> SqlResult<Result<i64>> {
        match name {
            None => Ok(Ok(EXTERNAL_ACCOUNT)),
            Some(name) => Ok(cache
                .user_id(&mut statements.by_name, name)?
                .ok_or_else(|| WalletError::UserNotFound(name.to_string()))),
        }
    };
    let src = match side(transfer.src())? {
        Ok(id) => id,
        Err(refused) => return Ok(Err(refused)),
    };
    let dst = match side(transfer.dst())? {
        Ok(id) => id,
        Err(refused) => return Ok(Err(refused)),
    };
    let requested = Pinned::requested(transfer, src, dst);
    let mut deferred = deferred;
    if transfer.kind() != Kind::Transfer {
        // A hold or a refund reads what it depends on, so it is never
        // deferred; a key taken before answers it as for any line.
        deferred = None;
        if let Some(key) = transfer.key()
            && let Some(earlier) = replay(&mut statements.by_key, key, requested)?
        {
            return Ok(earlier);
        }
        match transfer.kind() {
            Kind::Hold(expiry) => {
                let pending_out = cache.load(&mut statements.pending, src)?.out;
                return super::holds::place(tx, transfer, requested, pending_out, expiry, now);
            }
            Kind::Refund(original) => {
                if let Err(refused) = super::holds::check_refund(tx, original, requested)? {
                    return Ok(Err(refused));
                }
            }
            Kind::Transfer => {}
        }
    }
    let src_pending = cache.load(&mut statements.pending, src)?;
    let dst_pending = cache.load(&mut statements.pending, dst)?;
    let (new_out, new_in) =
        match rules::reserve_pending(transfer, src_pending.out, dst_pending.r#in) {
            Ok(sums) => sums,
            Err(refused) => {
                // A request whose key was used before is answered by that
                // use, whatever the sums say now.
                if let Some(key) = transfer.key()
                    && let Some(earlier) = replay(&mut statements.by_key, key, requested)?
                {
                    return Ok(earlier);
                }
                return Ok(Err(refused));
            }
        };
    if let Some(deferred) = deferred {
        // It goes in with the next rows; only a key another transfer
        // already holds can still turn it into a replay or a conflict.
        deferred.push(DeferredRow {
            src,
            dst,
            amount: requested.amount,
            memo: transfer.memo().map(str::to_string),
            key: transfer.key().map(|key| key.as_str().to_string()),
        });
        reserve(cache, src, dst, new_out, new_in);
        return Ok(Ok(Queued {
            tx_id: 0,
            status: Status::Pending,
            replayed: false,
        }));
    }
    // The unique index on keys finds an earlier use of the key as it
    // inserts; only then is the earlier transfer read, to replay it or to
    // report the conflict. New keys cost no lookup of their own.
    let inserted = statements.insert.execute(params![
        src,
        dst,
        requested.amount,
        requested.memo,
        transfer.key().map(IdempotencyKey::as_str),
        now
    ])?;
    if inserted == 0 {
        let earlier = match transfer.key() {
            Some(key) => replay(&mut statements.by_key, key, requested)?,
            None => None,
        };
        return earlier.ok_or_else(|| {
            WalletError::internal(anyhow::anyhow!(
                "a transfer was neither queued nor found under its key"
            ))
            .into()
        });
    }
    let tx_id = tx.last_insert_rowid();
    if let Some(original) = requested.refund_of {
        tx.prepare_cached("UPDATE transfers SET refund_of = ?2 WHERE tx_id = ?1")?
            .execute(params![tx_id, original])?;
    }
    reserve(cache, src, dst, new_out, new_in);
    Ok(Ok(Queued {
        tx_id,
        status: Status::Pending,
        replayed: false,
    }))
}

/// Records the new pending sums of a queued transfer's two accounts.
fn reserve(cache: &mut IngestCache, src: i64, dst: i64, new_out: i64, new_in: i64) {
    if let Some(pending) = cache.accounts.get_mut(&src) {
        pending.out = new_out;
        pending.dirty = true;
    }
    if let Some(pending) = cache.accounts.get_mut(&dst) {
        pending.r#in = new_in;
        pending.dirty = true;
    }
}

/// A transfer decided and waiting to go in with the rows after it.
struct DeferredRow {
    src: i64,
    dst: i64,
    amount: i64,
    memo: Option<String>,
    key: Option<String>,
}

/// Rows inserted by one statement: each execution of a statement costs
/// about as much as the row it inserts.
const ROWS_PER_INSERT: usize = 64;

/// Inserts the waiting rows, `ROWS_PER_INSERT` a statement, and returns
/// the id of each in order, `None` for a row whose key a committed transfer
/// holds. The rows that go in take consecutive ids in the order they are
/// listed (under the write lock a new row takes the largest id plus one),
/// so the ids the statement returns, sorted, are theirs in order. SQLite
/// picks ids at random once the largest reaches `i64::MAX`, so a group that
/// could reach it is refused before it goes in.
fn insert_deferred(
    tx: &Transaction<'_>,
    rows: &[DeferredRow],
    now: i64,
) -> SqlResult<Vec<Option<i64>>> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut largest = tx.prepare_cached("SELECT coalesce(max(tx_id), 0) FROM transfers")?;
    for group in rows.chunks(ROWS_PER_INSERT) {
        let top: i64 = largest.query_row([], |row| row.get(0))?;
        if top > i64::MAX - group.len() as i64 {
            return Err(WalletError::internal(anyhow::anyhow!(
                "transfer ids have reached their limit ({top})"
            ))
            .into());
        }
        if group.iter().all(|row| row.key.is_none()) {
            // No key to conflict: every row goes in, the last one's id
            // says them all, and the statement needs no answer rows.
            let values = vec!["(?, ?, ?, 'PENDING', ?, NULL, ?)"; group.len()].join(", ");
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO transfers (src, dst, amount, status, memo, idem_key, created_at) VALUES {values}"
            ))?;
            let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(group.len() * 5);
            for row in group {
                params.extend([
                    &row.src as &dyn rusqlite::ToSql,
                    &row.dst,
                    &row.amount,
                    &row.memo,
                    &now,
                ]);
            }
            let inserted = insert.execute(params.as_slice())?;
            let last = tx.last_insert_rowid();
            if inserted != group.len() || last != top + group.len() as i64 {
                return Err(WalletError::internal(anyhow::anyhow!(
                    "{inserted} of {} rows went in, the last as {last}",
                    group.len()
                ))
                .into());
            }
            let first = last - group.len() as i64 + 1;
            ids.extend((first..=last).map(Some));
            continue;
        }
        let values = vec!["(?, ?, ?, 'PENDING', ?, ?, ?)"; group.len()].join(", ");
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO transfers (src, dst, amount, status, memo, idem_key, created_at)
             VALUES {values}
             ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING
             RETURNING tx_id, idem_key"
        ))?;
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(group.len() * 6);
        for row in group {
            params.extend([
                &row.src as &dyn rusqlite::ToSql,
                &row.dst,
                &row.amount,
                &row.memo,
                &row.key,
                &now,
            ]);
        }
        let mut inserted: Vec<i64> = Vec::with_capacity(group.len());
        let mut taken_keys = rustc_hash::FxHashSet::default();
        let mut returned = insert.query(params.as_slice())?;
        while let Some(row) = returned.next()? {
            inserted.push(row.get(0)?);
            if let Some(key) = row.get::<_, Option<String>>(1)? {
                taken_keys.insert(key);
            }
        }
        inserted.sort_unstable();
        let mut next = inserted.into_iter();
        for row in group {
            let went_in = row.key.as_ref().is_none_or(|key| taken_keys.contains(key));
            ids.push(if went_in { next.next() } else { None });
        }
    }
    Ok(ids)
}

/// The answer to a request whose key an earlier transfer holds, decided by
/// [`rules::replay_or_conflict`]; `None` if no transfer holds the key.
fn replay(
    by_key: &mut CachedStatement<'_>,
    key: &IdempotencyKey,
    requested: Pinned<'_>,
) -> SqlResult<Option<Result<Queued>>> {
    let earlier = by_key
        .query_row([key.as_str()], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, Option<i64>>(6)?,
                row.get::<_, Option<i64>>(7)?,
                row.get::<_, Option<i64>>(8)?,
                row.get::<_, i64>(9)?,
            ))
        })
        .optional()?;
    let Some((
        tx_id,
        src,
        dst,
        amount,
        memo,
        status,
        hold_amount,
        expires_at,
        refund_of,
        placed_at,
    )) = earlier
    else {
        return Ok(None);
    };
    let earlier = Pinned {
        src,
        dst,
        amount: hold_amount.unwrap_or(amount),
        memo: memo.as_deref(),
        hold: hold_amount.is_some(),
        refund_of,
        expiry: hold_amount.map(|_| PinnedExpiry::stored(placed_at, expires_at)),
    };
    let status = rules::stored_status(&status)?.as_of(expires_at, clock::now_ms());
    Ok(Some(rules::replay_or_conflict(
        key, tx_id, status, earlier, requested,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;
    use crate::ledger::{BatchOptions, Ledger, Location, OpenOptions};
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
                .create_user(&UserName::parse(user).unwrap(), &email)
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
        let ids: Vec<_> = sink
            .outcomes
            .iter()
            .map(|(n, o)| (*n, o.as_ref().map(|q| q.tx_id).map_err(String::as_str)))
            .collect();
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

    /// A line read while a replayed line waits is decided against sums that
    /// do not count the replay's reservation.
    #[test]
    fn a_waiting_replay_does_not_refuse_the_lines_after_it() {
        let dir = TempDir::new().unwrap();
        let mut ledger = ledger(&dir);
        let mut sink = Recorder::new(|| {});
        let big = 4_000_000_000_000_000_000;
        let first = vec![line(1, "", "alice", big, Some("k1"))];
        ledger
            .queue_batch(first.into_iter(), &BatchOptions::default(), &mut sink)
            .unwrap();
        let second = vec![
            line(1, "", "alice", big, Some("k1")),
            line(2, "", "bob", 3_000_000_000_000_000_000, None),
        ];
        let summary = ledger
            .queue_batch(second.into_iter(), &BatchOptions::default(), &mut sink)
            .unwrap();
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
                140 => assert_eq!(outcome.as_ref().unwrap().tx_id, 70),
                _ => {
                    assert_eq!(outcome.as_ref().unwrap().tx_id, next, "line {n}");
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
        ledger.cancel(3).unwrap();
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
