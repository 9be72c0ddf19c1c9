//! Where settle starts reading the queue. A ledger file keeps no index of
//! its PENDING transfers, which every transfer would enter as it was
//! queued and leave as it was settled: settle decides the oldest PENDING
//! rows first, so none lies below the first `tx_id` a batch has not reached
//! (`queue_mark.next_tx`) but a captured hold, PENDING again under its old
//! id, which `transfers_captured` indexes.

use rusqlite::{Connection, Transaction};

use super::error::SqlResult;
use crate::error::WalletError;

/// The queue's rows from the mark on: PENDING, and not a captured hold.
pub(super) const FROM_MARK: &str = "status = 'PENDING' AND hold_amount IS NULL";

/// The queue's captured holds, wherever they lie: `transfers_captured`.
pub(super) const CAPTURED: &str = "status = 'PENDING' AND hold_amount IS NOT NULL";

/// The mark, as a scalar subquery.
pub(super) const MARK: &str = "(SELECT next_tx FROM queue_mark WHERE id = 1)";

/// The PENDING transfers, as a compound `SELECT` of `columns` (and then
/// `order`, which a caller may give), `?1` bound to [`read`]: every row
/// from the mark on, read along the table, and the captured holds from
/// their own index. The two parts are disjoint, each in `tx_id` order, so
/// `ORDER BY tx_id` merges them without a sort.
pub(super) fn queue_sql(columns: &str, order: &str) -> String {
    format!(
        "SELECT {columns} FROM transfers WHERE tx_id >= ?1 AND {FROM_MARK}
         UNION ALL
         SELECT {columns} FROM transfers INDEXED BY transfers_captured WHERE {CAPTURED}{order}"
    )
}

/// The mark, if its row is there.
pub(super) fn find(conn: &Connection) -> SqlResult<Option<i64>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {MARK}"))?
        .query_row([], |row| row.get(0))?)
}

/// The mark: no PENDING transfer lies below it but a captured hold.
pub(super) fn read(conn: &Connection) -> SqlResult<i64> {
    find(conn)?.ok_or_else(|| {
            WalletError::Integrity(
                "the ledger has no queue_mark row, so where its queue starts is unknown; run `wallet verify`"
                    .into(),
            )
            .into()
        })
}

/// Moves the mark past a settle batch that read the queue from `mark` and
/// decided every PENDING row up to `last`, the oldest ones.
pub(super) fn passed(tx: &Transaction<'_>, mark: i64, last: i64) -> SqlResult<()> {
    if last >= mark {
        tx.prepare_cached("UPDATE queue_mark SET next_tx = ?1 WHERE id = 1")?
            .execute([last.saturating_add(1)])?;
    }
    Ok(())
}

/// The first id past every transfer, which no row holds yet (at most the
/// largest id a row can take).
const PAST_THE_LAST: &str =
    "(SELECT min(coalesce(max(tx_id), 0), 9223372036854775806) + 1 FROM transfers)";

/// Moves the mark past every transfer once nothing is PENDING, so that
/// the rows a batch never took (cancelled transfers, holds) are not walked
/// again by every settle, count and history page. Whether it moved.
pub(super) fn past_everything(tx: &Transaction<'_>) -> SqlResult<bool> {
    let moved = tx
        .prepare_cached(&format!(
            "UPDATE queue_mark SET next_tx = {PAST_THE_LAST} WHERE id = 1 AND next_tx < {PAST_THE_LAST}"
        ))?
        .execute([])?;
    Ok(moved > 0)
}

/// Keeps the rows about to be queued at or above the mark, and returns the
/// largest id so far (0 for none), which the rows' ids follow. A new row
/// takes the largest id plus one, which lies below the mark only when the
/// newest transfers were deleted by hand since a batch passed them; the
/// mark then comes down to it, which never hides a row (the rows between
/// are gone). In a sound ledger this writes nothing.
pub(super) fn keep_below_new_rows(tx: &Transaction<'_>) -> SqlResult<i64> {
    let (top, mark): (i64, Option<i64>) = tx
        .prepare_cached(&format!(
            "SELECT coalesce(max(tx_id), 0), {MARK} FROM transfers"
        ))?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let past_the_last = top.min(i64::MAX - 1) + 1;
    if mark.is_some_and(|mark| mark > past_the_last) {
        tx.prepare_cached("UPDATE queue_mark SET next_tx = ?1 WHERE id = 1")?
            .execute([past_the_last])?;
    }
    Ok(top)
}
