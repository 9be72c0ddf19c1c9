//! The change feed on a ledger file: the `events` rows each writing path
//! adds in its own transaction, and the feed's read.
//!
//! One writer commits at a time, and `event_id` is the rowid, given in
//! increasing order under the write lock; so `event_id` order is commit
//! order, and a reader that has seen event N has seen every event below it.

use rusqlite::{Connection, Transaction};

use super::error::SqlResult;
use crate::ledger::events::{Cursor, EventKind, EventRow};

/// Rows inserted by one statement: each execution costs about as much as
/// the row it inserts.
const ROWS_PER_STATEMENT: usize = 64;

/// `INSERT` of `rows` events of one kind and instant: `?1` the kind, `?2`
/// the instant, then the transfers' ids.
fn insert_sql(rows: usize) -> String {
    let values = (0..rows)
        .map(|i| format!("(?1, ?{}, ?2)", i + 3))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO events (kind, tx_id, at) VALUES {values}")
}

/// Records that `kind` happened at `at` to each of `tx_ids`, in that
/// order, in the open transaction.
pub(super) fn record(
    tx: &Transaction<'_>,
    kind: EventKind,
    at: i64,
    tx_ids: impl IntoIterator<Item = i64>,
) -> SqlResult<()> {
    let ids: Vec<i64> = tx_ids.into_iter().collect();
    let mut rows = ids.chunks_exact(ROWS_PER_STATEMENT);
    let kind = kind.code();
    if rows.len() > 0 {
        let mut insert = tx.prepare_cached(&insert_sql(ROWS_PER_STATEMENT))?;
        for chunk in rows.by_ref() {
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() + 2);
            values.push(&kind);
            values.push(&at);
            values.extend(chunk.iter().map(|id| id as &dyn rusqlite::ToSql));
            insert.execute(values.as_slice())?;
        }
    }
    let mut insert = tx.prepare_cached(&insert_sql(1))?;
    for id in rows.remainder() {
        insert.execute(rusqlite::params![kind, at, id])?;
    }
    Ok(())
}

/// Records the decision of every PENDING transfer with an id in `range`,
/// in `tx_id` order, by one statement that walks the range (no parameter
/// per row); returns how many. `dense` says every id of the range is one
/// of them, as when a batch takes the queue in order: the walk then reads
/// no row's status, which costs as much as a fifth of the insert. The row
/// keeps no instant: the decision's is the `settled_at` the batch stamps
/// on its transfers.
pub(super) fn record_decided_range(
    tx: &Transaction<'_>,
    (first, last): (i64, i64),
    dense: bool,
) -> SqlResult<usize> {
    let sql = if dense {
        "INSERT INTO events (kind, tx_id)
         SELECT ?1, tx_id FROM transfers NOT INDEXED
          WHERE tx_id BETWEEN ?2 AND ?3
          ORDER BY tx_id"
    } else {
        "INSERT INTO events (kind, tx_id)
         SELECT ?1, tx_id FROM transfers NOT INDEXED
          WHERE tx_id BETWEEN ?2 AND ?3 AND status = 'PENDING'
          ORDER BY tx_id"
    };
    Ok(tx.prepare_cached(sql)?.execute(rusqlite::params![
        EventKind::TransferDecided.code(),
        first,
        last
    ])?)
}

/// The counter SQLite moves whenever another connection commits.
pub(super) fn data_version(conn: &Connection) -> SqlResult<i64> {
    Ok(conn
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |row| row.get(0))?)
}

/// Up to `limit` events after `after`, with what each is about, in
/// `event_id` order, by one statement (one read snapshot).
pub(super) fn read(conn: &Connection, after: Option<i64>, limit: u32) -> SqlResult<Vec<EventRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.event_id, e.kind, coalesce(e.at, t.settled_at), e.tx_id, e.change_id,
                t.status, t.reason, src.name, dst.name, t.amount, t.hold_amount, t.memo,
                owner.name, p.kind, p.overdraft, p.memo,
                tc.code, tc.scale, t.pair_tx_id, pc.code, pc.scale
           FROM events e
           LEFT JOIN transfers t ON t.tx_id = e.tx_id
           LEFT JOIN accounts src ON src.id = t.src
           LEFT JOIN accounts dst ON dst.id = t.dst
           LEFT JOIN currencies tc ON tc.id = t.currency
           LEFT JOIN policy_changes p ON p.change_id = e.change_id
           LEFT JOIN accounts owner ON owner.id = p.account
           LEFT JOIN currencies pc ON pc.id = p.currency
          WHERE e.event_id > ?1
          ORDER BY e.event_id
          LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![after.unwrap_or(0), limit], |row| {
        Ok(EventRow {
            event_id: row.get(0)?,
            xid: None,
            // A code no kind has is passed on as text, which the record
            // refuses as damage.
            kind: {
                let code: i64 = row.get(1)?;
                EventKind::from_code(code)
                    .map_or_else(|| format!("code {code}"), |k| k.as_str().to_string())
            },
            at: row.get(2)?,
            tx_id: row.get(3)?,
            change_id: row.get(4)?,
            status: row.get(5)?,
            reason: row.get(6)?,
            from: row.get(7)?,
            to: row.get(8)?,
            amount: row.get(9)?,
            hold_amount: row.get(10)?,
            memo: row.get(11)?,
            user: row.get(12)?,
            change: row.get(13)?,
            overdraft: row.get(14)?,
            change_memo: row.get(15)?,
            currency: row.get(16)?,
            scale: row.get(17)?,
            pair_tx_id: row.get(18)?,
            change_currency: row.get(19)?,
            change_scale: row.get(20)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The event id a cursor names on this engine.
pub(super) fn after(cursor: Option<&Cursor>) -> crate::error::Result<Option<i64>> {
    match cursor {
        None => Ok(None),
        Some(Cursor::EventId(id)) => Ok(Some(*id)),
        Some(other) => Err(other.foreign()),
    }
}
