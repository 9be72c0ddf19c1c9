//! Queueing on PostgreSQL: a chunk of lines decided in memory from a few
//! set-based reads, then written with one insert (binary `COPY` into a
//! staging table and one `INSERT … SELECT` for a large chunk) and one
//! update of the pending sums per account.
//!
//! Ids come from the table's sequence, taken in one round trip for the
//! whole chunk, so each line knows its `tx_id` before anything is written.
//! The idempotency key's unique index is the truth about keys: a line whose
//! key another process inserted meanwhile is skipped by `ON CONFLICT DO
//! NOTHING` and answered from that process's transfer.

use std::collections::HashMap;

use postgres::Client;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use super::NOW_MS;
use super::commit;
use super::error::{PgFault, PgResult};
use crate::domain::IdempotencyKey;
use crate::error::{Result, WalletError};
use crate::ledger::model::{
    BatchLine, BatchSink, BatchSummary, EXTERNAL_ACCOUNT, Kind, Queued, Span, Status,
};
use crate::ledger::rules::{self, Pinned};

/// From this many new transfers on, a chunk is written through `COPY`;
/// below it, one `INSERT … SELECT FROM unnest(…)` costs less than the
/// staging table's round trips.
pub const COPY_THRESHOLD: usize = 512;

/// The staging table a connection copies a chunk into. Temporary (only this
/// session sees it, and it is never logged) and emptied at each commit.
pub fn create_staging(client: &mut Client) -> PgResult<()> {
    client.batch_execute(
        "CREATE TEMPORARY TABLE IF NOT EXISTS wallet_staging (
             tx_id bigint, lane integer, src bigint, dst bigint, amount bigint,
             memo text, idem_key text, created_at bigint
         ) ON COMMIT DELETE ROWS",
    )?;
    Ok(())
}

/// What became of one line, before ids are known to the sink.
enum Planned {
    /// Refused, or answered by a transfer queued before this chunk.
    Settled(Result<Queued>),
    /// Queued as the `n`th new row of the chunk.
    New(usize),
    /// Its key names the new row `n` of an earlier line of this chunk, with
    /// the same fields (a replay) or not (a conflict, naming the field and
    /// the key); the line's own accounts and amount are kept to answer it
    /// again should that row lose its key to another process.
    SameKeyAs(usize, Option<(&'static str, String)>, (i64, i64, i64)),
    /// A hold or a refund, decided after the chunk's plain rows are written
    /// (see [`queue_special_lines`]).
    Special,
}

/// A chunk decided and written, not yet committed.
pub struct PlannedChunk {
    lines: Vec<(u64, Planned)>,
    rows: Vec<NewRow>,
    /// The line each new row came from, to name it in a conflict.
    row_lines: Vec<u64>,
    write: bool,
}

/// One new transfer of a chunk.
struct NewRow {
    tx_id: i64,
    src: i64,
    dst: i64,
    amount: i64,
}

pub enum Attempt {
    Done(PlannedChunk),
    /// A pending sum may overflow: decide again with the accounts locked.
    Careful,
}

/// Decides every line and writes the new transfers and pending sums, in an
/// open transaction. `careful` locks the accounts before reading their
/// sums; otherwise the sums are read unlocked and moved by relative
/// updates, so concurrent writers only queue for the moment of the update,
/// and a line that an unlocked sum would refuse sends the chunk back here
/// with `careful` set.
pub fn plan_and_write(
    client: &mut Client,
    chunk: &[BatchLine],
    all_or_nothing: bool,
    lanes: i32,
    careful: bool,
) -> PgResult<Attempt> {
    client.batch_execute("BEGIN")?;
    let names = resolve_names(client, chunk)?;
    let keyed = earlier_uses(client, chunk)?;
    let users: Vec<i64> = {
        let mut ids: Vec<i64> = names.values().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    // Careful: the users locked in id order, as every writer locks them;
    // the external account is never locked before the end of a transaction.
    let lock = if careful { " FOR UPDATE" } else { "" };
    let mut sums: HashMap<i64, (i64, i64)> = client
        .query(
            &format!(
                "SELECT id, pending_out, pending_in FROM accounts WHERE id = ANY($1) ORDER BY id{lock}"
            ),
            &[&users],
        )?
        .iter()
        .chain(
            client
                .query(
                    "SELECT id, pending_out, pending_in FROM accounts WHERE id = 0",
                    &[],
                )?
                .iter(),
        )
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    let mut lines = Vec::with_capacity(chunk.len());
    let mut rows: Vec<NewRow> = Vec::new();
    let mut row_lines: Vec<u64> = Vec::new();
    let mut first_use: HashMap<&str, usize> = HashMap::new();
    let mut refused = false;
    for BatchLine { line, transfer } in chunk {
        let transfer = match transfer {
            Ok(transfer) => transfer,
            Err(err) => {
                refused = true;
                lines.push((*line, Planned::Settled(Err(clone_refusal(err)))));
                continue;
            }
        };
        if transfer.kind() != Kind::Transfer {
            lines.push((*line, Planned::Special));
            continue;
        }
        let side = |name: Option<&crate::domain::UserName>| match name {
            None => Ok(EXTERNAL_ACCOUNT),
            Some(name) => names
                .get(&name.as_str().to_ascii_lowercase())
                .copied()
                .ok_or_else(|| WalletError::UserNotFound(name.to_string())),
        };
        let (src, dst) = match (side(transfer.src()), side(transfer.dst())) {
            (Ok(src), Ok(dst)) => (src, dst),
            (Err(err), _) | (_, Err(err)) => {
                refused = true;
                lines.push((*line, Planned::Settled(Err(err))));
                continue;
            }
        };
        let requested = Pinned {
            src,
            dst,
            amount: transfer.amount().minor_units(),
            memo: transfer.memo(),
            hold: false,
            refund_of: None,
            expiry: None,
        };
        if let Some(key) = transfer.key() {
            if let Some(earlier) = keyed.get(key.as_str()) {
                let outcome = earlier.answer(key, requested);
                refused |= outcome.is_err();
                lines.push((*line, Planned::Settled(outcome)));
                continue;
            }
            if let Some(&row) = first_use.get(key.as_str()) {
                let earlier = &rows[row];
                let (earlier_memo, _) = memo_of(chunk, row_lines[row]);
                let field = rules::replay_or_conflict(
                    key,
                    0,
                    Status::Pending,
                    Pinned {
                        src: earlier.src,
                        dst: earlier.dst,
                        amount: earlier.amount,
                        memo: earlier_memo,
                        hold: false,
                        refund_of: None,
                        expiry: None,
                    },
                    requested,
                )
                .err()
                .and_then(|err| match err {
                    WalletError::IdempotencyConflict { field, key, .. } => Some((field, key)),
                    _ => None,
                });
                refused |= field.is_some();
                lines.push((
                    *line,
                    Planned::SameKeyAs(row, field, (src, dst, requested.amount)),
                ));
                continue;
            }
        }
        let (src_out, _) = sums.get(&src).copied().unwrap_or_default();
        let (_, dst_in) = sums.get(&dst).copied().unwrap_or_default();
        match rules::reserve_pending(transfer, src_out, dst_in) {
            Ok((out, r#in)) => {
                sums.entry(src).or_default().0 = out;
                sums.entry(dst).or_default().1 = r#in;
            }
            Err(err) => {
                if !careful {
                    return Ok(Attempt::Careful);
                }
                refused = true;
                lines.push((*line, Planned::Settled(Err(err))));
                continue;
            }
        }
        if let Some(key) = transfer.key() {
            first_use.insert(key.as_str(), rows.len());
        }
        lines.push((*line, Planned::New(rows.len())));
        row_lines.push(*line);
        rows.push(NewRow {
            tx_id: 0,
            src,
            dst,
            amount: requested.amount,
        });
    }
    let mut planned = PlannedChunk {
        lines,
        rows,
        row_lines,
        write: !(all_or_nothing && refused),
    };
    if planned.write {
        lock_users(client, &planned.rows)?;
    }
    let now = take_ids(client, &mut planned.rows)?;
    if !planned.write || planned.rows.is_empty() {
        return Ok(Attempt::Done(planned));
    }
    let inserted = insert(client, chunk, &planned, lanes, now)?;
    if inserted.len() != planned.rows.len() {
        // Another process committed one of these keys after they were
        // looked up: answer those lines from its transfer instead.
        lost_key_races(client, chunk, &mut planned, &inserted)?;
        if all_or_nothing
            && planned
                .lines
                .iter()
                .any(|(_, p)| matches!(p, Planned::Settled(Err(_))))
        {
            planned.write = false;
            return Ok(Attempt::Done(planned));
        }
    }
    match move_pending_sums(client, &planned, &inserted) {
        // Sums read unlocked were raised meanwhile past what 64 bits hold.
        Err(fault) if fault.is_out_of_range() && !careful => Ok(Attempt::Careful),
        Err(fault) => Err(fault),
        Ok(()) => Ok(Attempt::Done(planned)),
    }
}

/// Places the chunk's holds and queues its refunds, in line order, in the
/// transaction that wrote its plain rows; each reads and locks what it
/// depends on. A refused one rolls an all-or-nothing chunk back.
pub fn queue_special_lines(
    client: &mut Client,
    chunk: &[BatchLine],
    planned: &mut PlannedChunk,
    all_or_nothing: bool,
    lanes: i32,
) -> PgResult<()> {
    if !planned.write {
        for (_, plan) in &mut planned.lines {
            if matches!(plan, Planned::Special) {
                *plan = Planned::Settled(Err(WalletError::BatchFailed {
                    failed: 1,
                    lines: 1,
                    queued: 0,
                    replayed: 0,
                }));
            }
        }
        return Ok(());
    }
    for (line, plan) in &mut planned.lines {
        if !matches!(plan, Planned::Special) {
            continue;
        }
        let Some(Ok(transfer)) = chunk.iter().find(|l| l.line == *line).map(|l| &l.transfer) else {
            continue;
        };
        let outcome = super::holds::queue_line(client, transfer, lanes)?;
        if outcome.is_err() && all_or_nothing {
            planned.write = false;
        }
        *plan = Planned::Settled(outcome);
    }
    Ok(())
}

/// Reports every line to the sink and commits, or rolls back an
/// all-or-nothing chunk that has a refused line.
pub fn finish(
    client: &mut Client,
    planned: PlannedChunk,
    all_or_nothing: bool,
    sink: &mut dyn BatchSink,
) -> PgResult<BatchSummary> {
    let mut summary = BatchSummary::default();
    let mut span = Span::default();
    let PlannedChunk {
        lines,
        rows,
        row_lines,
        write,
    } = planned;
    for (line, planned) in lines {
        let outcome = match planned {
            Planned::Settled(outcome) => outcome,
            Planned::New(row) => Ok(Queued {
                tx_id: rows[row].tx_id,
                status: Status::Pending,
                replayed: false,
            }),
            Planned::SameKeyAs(row, None, _) => Ok(Queued {
                tx_id: rows[row].tx_id,
                status: Status::Pending,
                replayed: true,
            }),
            Planned::SameKeyAs(row, Some((field, key)), _) => {
                Err(WalletError::IdempotencyConflict {
                    key,
                    field,
                    tx_id: rows[row].tx_id,
                    earlier_line: all_or_nothing.then_some(row_lines[row]),
                })
            }
            Planned::Special => Err(WalletError::internal(anyhow::anyhow!(
                "a hold or refund line was never decided"
            ))),
        };
        span.note(line, &outcome);
        summary.count(&outcome);
        sink.record(line, outcome)?;
    }
    if !write || sink.dry_run() {
        client.batch_execute("ROLLBACK")?;
        return Ok(summary);
    }
    sink.before_commit()?;
    commit(
        client,
        &span.describe(),
        "`wallet get-transfer` shows what is there; only a retry with the same --id (or \"id\") is exact, without one it queues again",
    )?;
    summary.committed = true;
    Ok(summary)
}

/// Every user name the chunk names, resolved in one query.
fn resolve_names(client: &mut Client, chunk: &[BatchLine]) -> PgResult<HashMap<String, i64>> {
    let mut wanted: Vec<String> = chunk
        .iter()
        .filter_map(|line| line.transfer.as_ref().ok())
        .flat_map(|t| [t.src(), t.dst()])
        .flatten()
        .map(|name| name.as_str().to_ascii_lowercase())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client.query(
        "SELECT lower(name), id FROM accounts WHERE lower(name) = ANY($1)",
        &[&wanted],
    )?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// A transfer that already holds a key.
struct Earlier {
    tx_id: i64,
    src: i64,
    dst: i64,
    amount: i64,
    memo: Option<String>,
    status: String,
    hold_amount: Option<i64>,
    refund_of: Option<i64>,
}

impl Earlier {
    fn answer(&self, key: &IdempotencyKey, requested: Pinned<'_>) -> Result<Queued> {
        let status = rules::stored_status(&self.status)?;
        let earlier = Pinned {
            src: self.src,
            dst: self.dst,
            amount: self.hold_amount.unwrap_or(self.amount),
            memo: self.memo.as_deref(),
            hold: self.hold_amount.is_some(),
            refund_of: self.refund_of,
            expiry: None,
        };
        rules::replay_or_conflict(key, self.tx_id, status, earlier, requested)
    }
}

/// The transfers that already hold any key the chunk uses, in one query.
fn earlier_uses(client: &mut Client, chunk: &[BatchLine]) -> PgResult<HashMap<String, Earlier>> {
    let keys: Vec<&str> = chunk
        .iter()
        .filter_map(|line| line.transfer.as_ref().ok())
        .filter_map(|t| t.key().map(IdempotencyKey::as_str))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client.query(
        "SELECT idem_key, tx_id, src, dst, amount, memo, status, hold_amount, refund_of
           FROM transfers WHERE idem_key = ANY($1)",
        &[&keys],
    )?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get(0),
                Earlier {
                    tx_id: row.get(1),
                    src: row.get(2),
                    dst: row.get(3),
                    amount: row.get(4),
                    memo: row.get(5),
                    status: row.get(6),
                    hold_amount: row.get(7),
                    refund_of: row.get(8),
                },
            )
        })
        .collect())
}

/// The memo and key of the line numbered `line`.
fn memo_of(chunk: &[BatchLine], line: u64) -> (Option<&str>, Option<&str>) {
    chunk
        .iter()
        .find(|l| l.line == line)
        .and_then(|l| l.transfer.as_ref().ok())
        .map_or((None, None), |t| {
            (t.memo(), t.key().map(IdempotencyKey::as_str))
        })
}

/// Locks the user accounts of the new rows, in id order as every writer
/// locks them (so no two writers deadlock), before their ids are drawn. A
/// source's new transfers thus take their ids in the order they commit,
/// so a settle worker, which locks the source too, never finds a transfer
/// of that source committed after a later one of it was decided.
fn lock_users(client: &mut Client, rows: &[NewRow]) -> PgResult<()> {
    let mut users: Vec<i64> = rows
        .iter()
        .flat_map(|row| [row.src, row.dst])
        .filter(|id| *id != EXTERNAL_ACCOUNT)
        .collect();
    users.sort_unstable();
    users.dedup();
    if !users.is_empty() {
        client.query(
            "SELECT 1 FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&users],
        )?;
    }
    Ok(())
}

/// Ids for the new rows, in line order, from the table's own sequence, and
/// the server's clock to stamp them with, in one round trip.
fn take_ids(client: &mut Client, rows: &mut [NewRow]) -> PgResult<i64> {
    if rows.is_empty() {
        return Ok(0);
    }
    // The lock every insert takes anyway, taken before the ids are drawn:
    // the hash chain's sealer waits for such transactions before it fixes
    // which ids are final (`chain::seal`), so none can commit an id below
    // the bound it sealed. Writers do not conflict on it.
    client.batch_execute("LOCK TABLE transfers IN ROW EXCLUSIVE MODE")?;
    let ids = client.query(
        &format!(
            "SELECT nextval('transfers_tx_id_seq'), {NOW_MS} FROM generate_series(1, $1::bigint)"
        ),
        &[&(rows.len() as i64)],
    )?;
    for (row, id) in rows.iter_mut().zip(&ids) {
        row.tx_id = id.get(0);
    }
    Ok(ids[0].get(1))
}

/// Inserts the new rows, skipping any whose key is taken; returns the ids
/// inserted.
fn insert(
    client: &mut Client,
    chunk: &[BatchLine],
    planned: &PlannedChunk,
    lanes: i32,
    now: i64,
) -> PgResult<Vec<i64>> {
    let lane = |row: &NewRow| {
        let owner = if row.src == EXTERNAL_ACCOUNT {
            row.dst
        } else {
            row.src
        };
        (owner % i64::from(lanes)) as i32
    };
    let by_line: HashMap<u64, &BatchLine> = chunk.iter().map(|l| (l.line, l)).collect();
    let extras = |i: usize| {
        by_line
            .get(&planned.row_lines[i])
            .and_then(|l| l.transfer.as_ref().ok())
            .map_or((None, None), |t| {
                (t.memo(), t.key().map(IdempotencyKey::as_str))
            })
    };
    const INSERT: &str = "INSERT INTO transfers
             (tx_id, lane, src, dst, amount, status, memo, idem_key, created_at)";
    const ON_KEY: &str =
        "ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING RETURNING tx_id";
    let rows = if planned.rows.len() < COPY_THRESHOLD {
        let (mut ids, mut lanes_, mut srcs, mut dsts, mut amounts, mut memos, mut keys) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for (i, row) in planned.rows.iter().enumerate() {
            let (memo, key) = extras(i);
            ids.push(row.tx_id);
            lanes_.push(lane(row));
            srcs.push(row.src);
            dsts.push(row.dst);
            amounts.push(row.amount);
            memos.push(memo);
            keys.push(key);
        }
        client.query(
            &format!(
                "{INSERT} SELECT i, l, s, d, a, 'PENDING', m, k, $8
                 FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::bigint[],
                             $5::bigint[], $6::text[], $7::text[]) AS u(i, l, s, d, a, m, k)
                 ORDER BY i {ON_KEY}"
            ),
            &[&ids, &lanes_, &srcs, &dsts, &amounts, &memos, &keys, &now],
        )?
    } else {
        let sink = client.copy_in(
            "COPY wallet_staging (tx_id, lane, src, dst, amount, memo, idem_key, created_at) FROM STDIN BINARY",
        )?;
        let mut writer = BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT8,
                Type::INT4,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
            ],
        );
        for (i, row) in planned.rows.iter().enumerate() {
            let (memo, key) = extras(i);
            writer.write(&[
                &row.tx_id,
                &lane(row),
                &row.src,
                &row.dst,
                &row.amount,
                &memo,
                &key,
                &now,
            ])?;
        }
        writer.finish()?;
        let inserted = client.query(
            &format!(
                "{INSERT} SELECT tx_id, lane, src, dst, amount, 'PENDING', memo, idem_key, created_at
                 FROM wallet_staging ORDER BY tx_id {ON_KEY}"
            ),
            &[],
        )?;
        client.batch_execute("TRUNCATE wallet_staging")?;
        inserted
    };
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Answers the lines whose new row was not inserted because another
/// process took the key meanwhile.
fn lost_key_races(
    client: &mut Client,
    chunk: &[BatchLine],
    planned: &mut PlannedChunk,
    inserted: &[i64],
) -> PgResult<()> {
    let inserted: std::collections::HashSet<i64> = inserted.iter().copied().collect();
    let lost: Vec<usize> = (0..planned.rows.len())
        .filter(|&i| !inserted.contains(&planned.rows[i].tx_id))
        .collect();
    let lost_lines: Vec<&BatchLine> = lost
        .iter()
        .filter_map(|&i| chunk.iter().find(|l| l.line == planned.row_lines[i]))
        .collect();
    let owned: Vec<BatchLine> = lost_lines
        .iter()
        .map(|l| BatchLine {
            line: l.line,
            transfer: l.transfer.as_ref().map(Clone::clone).map_err(clone_refusal),
        })
        .collect();
    let earlier = earlier_uses(client, &owned)?;
    for &i in &lost {
        let line = planned.row_lines[i];
        let (_, key) = memo_of(chunk, line);
        let (Some(key), Some(found)) = (key, key.and_then(|k| earlier.get(k))) else {
            return Err(PgFault::Wallet(WalletError::internal(anyhow::anyhow!(
                "line {line} was neither queued nor found under its key"
            ))));
        };
        let key = IdempotencyKey::parse(key)?;
        // Each line that leaned on the lost row is answered from the
        // transfer that holds the key now, by its own fields: a line that
        // repeated the first one replays it, one that differed conflicts.
        for (l, p) in planned.lines.iter_mut() {
            let own = match p {
                Planned::New(r) if *r == i => {
                    let row = &planned.rows[i];
                    (row.src, row.dst, row.amount)
                }
                Planned::SameKeyAs(r, _, own) if *r == i => *own,
                _ => continue,
            };
            let (memo, _) = memo_of(chunk, *l);
            *p = Planned::Settled(found.answer(
                &key,
                Pinned {
                    src: own.0,
                    dst: own.1,
                    amount: own.2,
                    memo,
                    hold: false,
                    refund_of: None,
                    expiry: None,
                },
            ));
        }
    }
    Ok(())
}

/// Adds what the inserted rows hold pending to their accounts: the users
/// (locked by [`lock_users`]) first, the external account last.
fn move_pending_sums(
    client: &mut Client,
    planned: &PlannedChunk,
    inserted: &[i64],
) -> PgResult<()> {
    let inserted: std::collections::HashSet<i64> = inserted.iter().copied().collect();
    let mut deltas: HashMap<i64, (i64, i64)> = HashMap::new();
    for row in planned.rows.iter().filter(|r| inserted.contains(&r.tx_id)) {
        deltas.entry(row.src).or_default().0 += row.amount;
        deltas.entry(row.dst).or_default().1 += row.amount;
    }
    let external = deltas.remove(&EXTERNAL_ACCOUNT);
    let mut users: Vec<(i64, (i64, i64))> = deltas.into_iter().collect();
    users.sort_unstable_by_key(|(id, _)| *id);
    if !users.is_empty() {
        let ids: Vec<i64> = users.iter().map(|(id, _)| *id).collect();
        let outs: Vec<i64> = users.iter().map(|(_, d)| d.0).collect();
        let ins: Vec<i64> = users.iter().map(|(_, d)| d.1).collect();
        client.execute(
            "UPDATE accounts a SET pending_out = a.pending_out + u.o, pending_in = a.pending_in + u.i
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, o, i)
             WHERE a.id = u.id",
            &[&ids, &outs, &ins],
        )?;
    }
    if let Some((out, r#in)) = external {
        client.execute(
            "UPDATE accounts SET pending_out = pending_out + $1, pending_in = pending_in + $2 WHERE id = 0",
            &[&out, &r#in],
        )?;
    }
    Ok(())
}

/// A refusal handed on again: the error types are not `Clone`, but a
/// refused line's error is always one of the contract's plain ones, whose
/// code and message are all it carries.
fn clone_refusal(err: &WalletError) -> WalletError {
    match err {
        WalletError::IdempotencyConflict {
            key,
            field,
            tx_id,
            earlier_line,
        } => WalletError::IdempotencyConflict {
            key: key.clone(),
            field,
            tx_id: *tx_id,
            earlier_line: *earlier_line,
        },
        WalletError::UserNotFound(name) => WalletError::UserNotFound(name.clone()),
        WalletError::SameAccount(name) => WalletError::SameAccount(name.clone()),
        WalletError::PendingOverflow(who) => WalletError::PendingOverflow(who.clone()),
        WalletError::InvalidLine(why) => WalletError::InvalidLine(why.clone()),
        WalletError::InvalidAmount { input, why } => WalletError::InvalidAmount {
            input: input.clone(),
            why: why.clone(),
        },
        WalletError::InvalidName { input, why } => WalletError::InvalidName {
            input: input.clone(),
            why,
        },
        WalletError::InvalidKey { input, why } => WalletError::InvalidKey {
            input: input.clone(),
            why,
        },
        WalletError::InvalidMemo { input, why } => WalletError::InvalidMemo {
            input: input.clone(),
            why,
        },
        WalletError::InvalidEmail { input, why } => WalletError::InvalidEmail {
            input: input.clone(),
            why,
        },
        other => WalletError::InvalidLine(other.to_string()),
    }
}
