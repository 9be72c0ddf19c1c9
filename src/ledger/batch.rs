//! Batch ingest: queueing a stream of transfers in chunked transactions.
//!
//! Each chunk is one `BEGIN IMMEDIATE` transaction. Names resolve through a
//! cache, and the pending sums of the accounts a chunk touches are kept in
//! memory and written once per chunk, so a line costs one insert rather than
//! an insert and two updates. Both caches are kept from chunk to chunk only
//! while no other connection commits in between.

use std::iter::Peekable;

use rusqlite::{CachedStatement, OptionalExtension, Transaction, TransactionBehavior, params};

use super::transfers::{SELECT_BY_KEY, replay};
use super::{CommitWatch, EXTERNAL_ACCOUNT, Ledger, NewTransfer, Queued, Status, clock};
use crate::domain::{IdempotencyKey, Memo, UserName};
use crate::error::{Result, WalletError};
use rustc_hash::FxHashMap as FastMap;

/// One input line, numbered from 1, already parsed into a transfer or refused.
#[derive(Debug)]
pub struct BatchLine {
    pub line: u64,
    pub transfer: Result<NewTransfer>,
}

/// How a batch is committed.
#[derive(Debug, Clone)]
pub struct BatchOptions {
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

/// What a batch did.
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
    /// Whether the work was kept; false only for an atomic batch with a failed line.
    pub committed: bool,
}

/// Receives each line's outcome. Outcomes arrive before the transaction
/// holding them commits; `committed` says that everything recorded so far
/// is durable, so only then may a line be reported as queued.
pub trait BatchSink {
    fn record(
        &mut self,
        line: u64,
        outcome: std::result::Result<&Queued, &WalletError>,
    ) -> Result<()>;
    fn committed(&mut self) -> Result<()>;
}

/// Past this many cached names or accounts the caches start over, so that
/// memory stays bounded however many users a file names.
const MAX_CACHED: usize = 1 << 20;

impl Ledger {
    /// Queues every line of `lines`. Bad lines are reported to `sink` and,
    /// unless `options.atomic`, skipped while the good ones are kept.
    /// An error returned here (I/O, lock time-out) rolls back the current
    /// chunk; chunks already reported committed stay.
    pub fn queue_batch(
        &mut self,
        lines: impl Iterator<Item = Result<BatchLine>>,
        options: &BatchOptions,
        sink: &mut impl BatchSink,
    ) -> Result<BatchSummary> {
        // Every id a line carries was read from `accounts` under the write
        // lock, in this transaction or one with no foreign commit since
        // (see `Cache::revalidate`), so SQLite's own parent-key lookups
        // would only repeat that work; they cost a third of an insert.
        self.conn().pragma_update(None, "foreign_keys", false)?;
        let result = self.queue_batch_with_foreign_keys_off(lines, options, sink);
        self.conn().pragma_update(None, "foreign_keys", true)?;
        result
    }

    fn queue_batch_with_foreign_keys_off(
        &mut self,
        lines: impl Iterator<Item = Result<BatchLine>>,
        options: &BatchOptions,
        sink: &mut impl BatchSink,
    ) -> Result<BatchSummary> {
        let mut lines = lines.peekable();
        let mut cache = Cache::default();
        let mut summary = BatchSummary {
            committed: true,
            ..BatchSummary::default()
        };
        let chunk = if options.atomic {
            usize::MAX
        } else {
            options.chunk_size.max(1)
        };
        while lines.peek().is_some() {
            let tx = self
                .conn_mut()
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            cache.revalidate(&tx)?;
            ingest_chunk(&tx, &mut lines, chunk, &mut cache, sink, &mut summary)?;
            if options.atomic && summary.failed > 0 {
                tx.rollback()?;
                summary.committed = false;
                return Ok(summary);
            }
            tx.commit()?;
            sink.committed()?;
        }
        Ok(summary)
    }
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

#[derive(Default)]
struct Cache {
    /// Lower-cased user name to account id.
    names: FastMap<NameKey, i64>,
    accounts: FastMap<i64, Pending>,
    /// Whether another connection committed since the last chunk began; if
    /// not, `accounts` and `names` still hold.
    commits: CommitWatch,
}

impl Cache {
    fn revalidate(&mut self, tx: &Transaction<'_>) -> Result<()> {
        // Another connection may have changed pending sums, or removed a
        // user whose id is cached; start over from the file.
        let stale = self.commits.others_committed(tx)?;
        if stale || self.accounts.len() > MAX_CACHED || self.names.len() > MAX_CACHED {
            self.accounts.clear();
            self.names.clear();
        }
        Ok(())
    }

    fn user_id(&mut self, stmt: &mut CachedStatement<'_>, name: &UserName) -> Result<Option<i64>> {
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

    fn load(&mut self, stmt: &mut CachedStatement<'_>, id: i64) -> Result<Pending> {
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

fn ingest_chunk<I: Iterator<Item = Result<BatchLine>>>(
    tx: &Transaction<'_>,
    lines: &mut Peekable<I>,
    max: usize,
    cache: &mut Cache,
    sink: &mut impl BatchSink,
    summary: &mut BatchSummary,
) -> Result<()> {
    let now = clock::now_ms();
    let mut statements = Statements {
        by_name: tx.prepare_cached("SELECT id FROM accounts WHERE name = ?1 COLLATE NOCASE")?,
        pending: tx.prepare_cached("SELECT pending_out, pending_in FROM accounts WHERE id = ?1")?,
        by_key: tx.prepare_cached(SELECT_BY_KEY)?,
        insert: tx.prepare_cached(INSERT_TRANSFER_UNLESS_KEY_USED)?,
    };
    let mut taken = 0usize;
    while taken < max {
        let Some(item) = lines.next() else { break };
        let BatchLine { line, transfer } = item?;
        taken += 1;
        summary.lines += 1;
        let outcome = match transfer {
            Ok(transfer) => queue_one(tx, &transfer, now, &mut statements, cache)?,
            Err(refused) => Err(refused),
        };
        match &outcome {
            Ok(queued) if queued.replayed => summary.replayed += 1,
            Ok(_) => summary.queued += 1,
            Err(_) => summary.failed += 1,
        }
        sink.record(line, outcome.as_ref())?;
    }
    drop(statements);
    let mut write =
        tx.prepare_cached("UPDATE accounts SET pending_out = ?2, pending_in = ?3 WHERE id = ?1")?;
    for (id, pending) in cache.accounts.iter_mut().filter(|(_, p)| p.dirty) {
        write.execute(params![id, pending.out, pending.r#in])?;
        pending.dirty = false;
    }
    Ok(())
}

/// Queues one transfer. The outer error is fatal to the batch (SQLite,
/// I/O); the inner one refuses only this line.
fn queue_one(
    tx: &Transaction<'_>,
    transfer: &NewTransfer,
    now: i64,
    statements: &mut Statements<'_>,
    cache: &mut Cache,
) -> Result<Result<Queued>> {
    let mut side = |name: &Option<UserName>| -> Result<Result<i64>> {
        match name {
            None => Ok(Ok(EXTERNAL_ACCOUNT)),
            Some(name) => Ok(cache
                .user_id(&mut statements.by_name, name)?
                .ok_or_else(|| WalletError::UserNotFound(name.to_string()))),
        }
    };
    let src = match side(&transfer.src)? {
        Ok(id) => id,
        Err(refused) => return Ok(Err(refused)),
    };
    let dst = match side(&transfer.dst)? {
        Ok(id) => id,
        Err(refused) => return Ok(Err(refused)),
    };
    if src == dst {
        let name = transfer.src.as_ref().or(transfer.dst.as_ref());
        return Ok(Err(WalletError::SameAccount(
            name.map(ToString::to_string).unwrap_or_default(),
        )));
    }
    let amount = transfer.amount.minor_units();
    let memo = transfer.memo.as_ref().map(Memo::as_str);
    let key = transfer.key.as_ref();
    let replayed = |statements: &mut Statements<'_>, key: &IdempotencyKey| match replay(
        &mut statements.by_key,
        key,
        src,
        dst,
        amount,
        memo,
    ) {
        Ok(Some(queued)) => Ok(Some(Ok(queued))),
        Ok(None) => Ok(None),
        Err(conflict @ WalletError::IdempotencyConflict { .. }) => Ok(Some(Err(conflict))),
        Err(fatal) => Err(fatal),
    };
    let src_pending = cache.load(&mut statements.pending, src)?;
    let dst_pending = cache.load(&mut statements.pending, dst)?;
    let (Some(new_out), Some(new_in)) = (
        src_pending.out.checked_add(amount),
        dst_pending.r#in.checked_add(amount),
    ) else {
        if let Some(outcome) = key
            .map(|key| replayed(statements, key))
            .transpose()?
            .flatten()
        {
            return Ok(outcome);
        }
        return Ok(Err(WalletError::InvalidAmount {
            input: amount.to_string(),
            why: "the pending total of an account would overflow".into(),
        }));
    };
    // The unique index on keys finds an earlier use of the key as it
    // inserts; only then is the earlier transfer read, to replay it or to
    // report the conflict. New keys cost no lookup of their own.
    let inserted = statements.insert.execute(params![
        src,
        dst,
        amount,
        memo,
        key.map(IdempotencyKey::as_str),
        now
    ])?;
    if inserted == 0 {
        let earlier = match key {
            Some(key) => replayed(statements, key)?,
            None => None,
        };
        return earlier.map(Ok).unwrap_or_else(|| {
            Err(WalletError::internal(anyhow::anyhow!(
                "a transfer was neither queued nor found under its key"
            )))
        });
    }
    let tx_id = tx.last_insert_rowid();
    if let Some(pending) = cache.accounts.get_mut(&src) {
        pending.out = new_out;
        pending.dirty = true;
    }
    if let Some(pending) = cache.accounts.get_mut(&dst) {
        pending.r#in = new_in;
        pending.dirty = true;
    }
    Ok(Ok(Queued {
        tx_id,
        status: Status::Pending,
        replayed: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;
    use crate::ledger::OpenOptions;
    use crate::money::{Amount, Currency};
    use tempfile::TempDir;

    /// Keeps every outcome, and runs `between` after each commit.
    struct Recorder<F: FnMut()> {
        outcomes: Vec<(u64, std::result::Result<Queued, String>)>,
        commits: usize,
        between: F,
    }

    impl<F: FnMut()> BatchSink for Recorder<F> {
        fn record(
            &mut self,
            line: u64,
            outcome: std::result::Result<&Queued, &WalletError>,
        ) -> Result<()> {
            self.outcomes
                .push((line, outcome.copied().map_err(|e| e.code().to_string())));
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
            transfer: Ok(NewTransfer {
                src: (!src.is_empty()).then(|| UserName::parse(src).unwrap()),
                dst: (!dst.is_empty()).then(|| UserName::parse(dst).unwrap()),
                amount: Amount::from_minor_units(minor).unwrap(),
                memo: None,
                key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
            }),
        })
    }

    fn ledger(dir: &TempDir) -> Ledger {
        let path = dir.path().join("wallet.db");
        let mut ledger =
            Ledger::create(&path, &Currency::default(), &OpenOptions::default()).unwrap();
        for user in ["alice", "bob"] {
            let email = Email::parse(&format!("{user}@example.com")).unwrap();
            ledger
                .create_user(&UserName::parse(user).unwrap(), &email)
                .unwrap();
        }
        ledger
    }

    fn pending(ledger: &Ledger, user: &str) -> (i64, i64) {
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
        let mut sink = Recorder {
            outcomes: vec![],
            commits: 0,
            between: || {},
        };
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
        assert_eq!(pending(&ledger, "alice"), (100, 7));
        assert_eq!(pending(&ledger, "bob"), (7, 100));
    }

    #[test]
    fn a_write_by_another_connection_between_chunks_is_seen() {
        let dir = TempDir::new().unwrap();
        let mut ledger = ledger(&dir);
        let mut other = Ledger::open(ledger.path(), &OpenOptions::default()).unwrap();
        let lines = (1..=4).map(|n| line(n, "", "alice", 10, None));
        let mut sink = Recorder {
            outcomes: vec![],
            commits: 0,
            between: || {
                other
                    .queue_transfer(&NewTransfer {
                        src: name("bob"),
                        dst: name("alice"),
                        amount: Amount::from_minor_units(1000).unwrap(),
                        memo: None,
                        key: None,
                    })
                    .unwrap();
            },
        };
        let options = BatchOptions {
            chunk_size: 2,
            atomic: false,
        };
        ledger.queue_batch(lines, &options, &mut sink).unwrap();
        assert_eq!(pending(&ledger, "alice"), (0, 40 + 2 * 1000));
        assert_eq!(pending(&ledger, "bob"), (2000, 0));
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
        let mut sink = Recorder {
            outcomes: vec![],
            commits: 0,
            between: || {},
        };
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
        assert_eq!(pending(&ledger, "alice"), (0, 0));
    }
}
