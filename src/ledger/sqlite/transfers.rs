//! Transfers: reading them by id or key, cancelling, and history pages.

use rusqlite::{Connection, OptionalExtension, params};

use super::error::{SqlResult, commit};
use super::slots;
use super::users;
use crate::domain::UserName;
use crate::error::WalletError;
use crate::ledger::clock;
use crate::ledger::events::EventKind;
use crate::ledger::model::BalanceKey;
use crate::ledger::model::Instant;
use crate::ledger::model::TxId;
use crate::ledger::model::{HistoryQuery, Refund, Status, TransferRecord, TransferRef};
use crate::ledger::rules;

/// A transfer's refunds, as the last two columns of every read of
/// transfers `t`: each as `tx_id:amount:status` (space-separated; sorted
/// when read) and the sum of those paid ([`rules::refund_paid`]), each from
/// the index of refunds.
pub(super) fn refund_columns() -> String {
    format!(
        "(SELECT group_concat(r.tx_id || ':' || r.amount || ':' || r.status, ' ') FROM transfers r
          INDEXED BY transfers_by_refund_of WHERE r.refund_of = t.tx_id),
        (SELECT coalesce(sum(r.amount), 0) FROM transfers r INDEXED BY transfers_by_refund_of
          WHERE r.refund_of = t.tx_id AND r.status IN ({}))",
        rules::refund_paid_statuses_sql()
    )
}

/// A transfer as readers show it; `?balance` is the column for
/// `balance_after` (NULL where no user is asked about).
pub(super) fn select_transfer(balance: &str) -> String {
    format!(
        "SELECT t.tx_id, s.name, d.name, t.amount, t.memo, t.status,
            t.reason, t.idem_key, t.created_at, t.settled_at, t.hold_amount, t.expires_at,
            t.refund_of, {balance}, {refunds}, t.currency, t.pair_tx_id
         FROM transfers t
         JOIN accounts s ON s.id = t.src
         JOIN accounts d ON d.id = t.dst",
        refunds = refund_columns()
    )
}

/// One transfer, by id or by idempotency key, with its status as of now.
pub(super) fn transfer(conn: &Connection, which: TransferRef<'_>) -> SqlResult<TransferRecord> {
    let found = match which {
        TransferRef::Id(tx_id) => conn
            .prepare_cached(&format!("{} WHERE t.tx_id = ?1", select_transfer("NULL")))?
            .query_row([tx_id], transfer_from_row)
            .optional()?,
        TransferRef::Key(key) => conn
            .prepare_cached(&format!(
                "{} WHERE t.idem_key = ?1",
                select_transfer("NULL")
            ))?
            .query_row([key.as_str()], transfer_from_row)
            .optional()?,
    };
    let found = found.ok_or_else(|| {
        WalletError::TransferNotFound(match which {
            TransferRef::Id(tx_id) => tx_id.to_string(),
            TransferRef::Key(key) => format!("with key '{}'", key.as_str()),
        })
    })?;
    Ok(found.seen_at(Instant::new(clock::now_ms())))
}

/// A transfer as cancel reads it under the write lock.
struct Cancelled {
    tx_id: i64,
    src: i64,
    dst: i64,
    amount: i64,
    /// As readers report it: a hold past its expiry is EXPIRED.
    status: Status,
    currency: crate::money::CurrencyId,
    pair: Option<i64>,
}

fn cancelled(tx: &rusqlite::Transaction<'_>, tx_id: i64) -> SqlResult<Option<Cancelled>> {
    let found = tx
        .prepare_cached(
            "SELECT src, dst, amount, status, expires_at, currency, pair_tx_id
             FROM transfers WHERE tx_id = ?1",
        )?
        .query_row([tx_id], |row| {
            Ok((
                Cancelled {
                    tx_id,
                    src: row.get(0)?,
                    dst: row.get(1)?,
                    amount: row.get(2)?,
                    status: Status::Pending,
                    currency: crate::money::CurrencyId(row.get(5)?),
                    pair: row.get(6)?,
                },
                row.get::<_, String>(3)?,
                row.get::<_, Option<i64>>(4)?,
            ))
        })
        .optional()?;
    let Some((mut found, stored, expires_at)) = found else {
        return Ok(None);
    };
    found.status = rules::stored_status(&stored)?
        .as_of(expires_at.map(Instant::new), Instant::new(clock::now_ms()));
    Ok(Some(found))
}

/// Cancels a PENDING transfer, and both legs of an exchange together when
/// it is one. The status is checked under the write lock, so a concurrent
/// `settle` either applied it first (and this fails with `not_pending`) or
/// will find it cancelled.
pub(super) fn cancel(conn: &mut Connection, tx_id: i64) -> SqlResult<TransferRecord> {
    let tx = super::guard::begin_write(conn)?;
    let asked =
        cancelled(&tx, tx_id)?.ok_or_else(|| WalletError::TransferNotFound(tx_id.to_string()))?;
    let pair = match asked.pair {
        Some(pair) => {
            let other = cancelled(&tx, pair)?;
            rules::check_pair_cancellable(
                (tx_id, asked.status.as_str()),
                other.as_ref().map(|o| (o.tx_id, o.status.as_str())),
            )?;
            other
        }
        None => {
            rules::check_cancellable(tx_id, asked.status.as_str())?;
            None
        }
    };
    let now = clock::now_ms();
    let mut legs = [Some(asked), pair];
    legs.sort_unstable_by_key(|leg| leg.as_ref().map_or(i64::MAX, |leg| leg.tx_id));
    for leg in legs.iter().flatten() {
        release(&tx, leg, now)?;
    }
    super::events::record(
        &tx,
        EventKind::TransferDecided,
        now,
        legs.iter().flatten().map(|leg| leg.tx_id),
    )?;
    super::settle::post(
        &tx,
        legs.iter()
            .flatten()
            .map(|leg| (leg.tx_id, leg.src, None, leg.dst, None)),
        &mut Vec::new(),
    )?;
    let record = transfer(&tx, TransferRef::Id(TxId::new(tx_id)))?;
    let what = match legs {
        [Some(a), Some(b)] => format!("the cancel of exchange {}/{}", a.tx_id, b.tx_id),
        _ => format!("the cancel of transfer {tx_id}"),
    };
    commit(tx, &what, "`wallet get-transfer` shows its status")?;
    Ok(record)
}

/// Marks one PENDING transfer CANCELLED and gives back what it reserved in
/// its two balances.
fn release(tx: &rusqlite::Transaction<'_>, leg: &Cancelled, now: i64) -> SqlResult<()> {
    let marked = tx.execute(
        "UPDATE transfers SET status = 'CANCELLED', settled_at = ?2
         WHERE tx_id = ?1 AND status = 'PENDING'",
        params![leg.tx_id, now],
    )?;
    if marked != 1 {
        return Err(WalletError::internal(anyhow::anyhow!(
            "transfer {} was not PENDING when cancelled",
            leg.tx_id
        ))
        .into());
    }
    let (src, dst, amount) = (leg.src, leg.dst, leg.amount);
    let (src_key, dst_key) = (
        BalanceKey::new(src, leg.currency),
        BalanceKey::new(dst, leg.currency),
    );
    let sums = |key: BalanceKey| -> SqlResult<(i64, i64)> {
        slots::query_row(
            tx,
            key,
            "SELECT pending_out, pending_in FROM accounts WHERE id = ?1",
            "SELECT pending_out, pending_in FROM balances WHERE account = ?1 AND currency = ?2",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .ok_or_else(|| {
            WalletError::internal(anyhow::anyhow!("account {} has no row", key.account)).into()
        })
    };
    let (src_out, _) = sums(src_key)?;
    let (_, dst_in) = sums(dst_key)?;
    slots::execute(
        tx,
        src_key,
        "UPDATE accounts SET pending_out = ?2 WHERE id = ?1",
        "UPDATE balances SET pending_out = ?2 WHERE account = ?1 AND currency = ?3",
        &[&rules::release_pending(src, src_out, amount)?],
    )?;
    slots::execute(
        tx,
        dst_key,
        "UPDATE accounts SET pending_in = ?2 WHERE id = ?1",
        "UPDATE balances SET pending_in = ?2 WHERE account = ?1 AND currency = ?3",
        &[&rules::release_pending(dst, dst_in, amount)?],
    )?;
    Ok(())
}

/// A user's transfers, newest first. Each side (sent, received) is read
/// newest first from an index, at most `limit` rows each, and the two
/// short lists are merged; see [`history_sql`] for which index serves
/// which filter.
pub(super) fn history(
    conn: &Connection,
    name: &UserName,
    query: &HistoryQuery,
) -> SqlResult<Vec<TransferRecord>> {
    let user = users::user(conn, name)?;
    let before = query.before.map_or(i64::MAX, TxId::get);
    let mut stmt = conn.prepare_cached(&history_sql(query.status))?;
    let now = clock::now_ms();
    let rows = match query.status {
        Some(status) => stmt.query_map(
            params![user.id, before, query.limit, status.as_str(), now],
            transfer_from_row,
        )?,
        None => stmt.query_map(params![user.id, before, query.limit], transfer_from_row)?,
    };
    let records: Vec<TransferRecord> = rows.collect::<Result<_, _>>()?;
    Ok(records
        .into_iter()
        .map(|record| record.seen_at(Instant::new(now)))
        .collect())
}

/// The page query of [`history`]: `?1` user id, `?2` exclusive upper
/// bound on `tx_id`, `?3` page size and, with a status, `?4` that status.
///
/// Each part is a range read newest first and stopped after `?3` rows,
/// and the short lists are merged, so a page costs the same for a user
/// with ten transfers or a million: decided transfers (and COMPLETED ones)
/// from the user's `postings`; FAILED and CANCELLED, which may be rare in a
/// long history, from the partial `transfers_unapplied_by_*` indexes;
/// PENDING ones from the queue (the table from its mark on, and the
/// captured holds' own index), read newest first and filtered by user,
/// whose length is bounded by how often `settle` runs. The indexes (and the
/// table's own order) are named because statistics from a ledger where one
/// user dominates can tempt the planner into walking the whole table
/// backwards, which is ruinous for every other user.
fn history_sql(status: Option<Status>) -> String {
    let decided = |join: &str| {
        format!(
            "SELECT tx_id FROM (SELECT p.tx_id FROM postings p{join}
                 WHERE p.account = ?1 AND p.tx_id < ?2 ORDER BY p.tx_id DESC LIMIT ?3)"
        )
    };
    // The queue: its rows from the mark on, along the table, and the
    // captured holds (`queue_mark::queue_sql`). With the mark's row
    // gone, the walk starts at the first row, slower but whole.
    let pending = |filter: &str| {
        use super::queue_mark::{CAPTURED, FROM_MARK, MARK};
        format!(
            "SELECT tx_id FROM (SELECT tx_id FROM transfers NOT INDEXED
                 WHERE tx_id >= coalesce({MARK}, 0) AND tx_id < ?2 AND {FROM_MARK}{filter}
                 AND (src = ?1 OR dst = ?1) ORDER BY tx_id DESC LIMIT ?3)
             UNION ALL
             SELECT tx_id FROM (SELECT tx_id FROM transfers INDEXED BY transfers_captured
                 WHERE {CAPTURED}{filter}
                 AND (src = ?1 OR dst = ?1) AND tx_id < ?2 ORDER BY tx_id DESC LIMIT ?3)"
        )
    };
    let unapplied = |side: &str| {
        format!(
            "SELECT tx_id FROM (SELECT tx_id FROM transfers INDEXED BY transfers_unapplied_by_{side}
                 WHERE {side} = ?1 AND status = ?4 AND status IN ('FAILED', 'CANCELLED')
                 AND tx_id < ?2 ORDER BY tx_id DESC LIMIT ?3)"
        )
    };
    // Holds are posted when placed, so every status but PENDING is found
    // among the user's postings; a hold's status there is read as of now
    // (`?5`), so that an expired one not yet marked counts as EXPIRED.
    let parts = match status {
        None => vec![decided(""), pending("")],
        Some(Status::Completed | Status::Released) => vec![decided(
            " JOIN transfers d ON d.tx_id = p.tx_id AND d.status = ?4 AND ?5 IS NOT NULL",
        )],
        Some(Status::Held) => vec![decided(&format!(
            " JOIN transfers d ON d.tx_id = p.tx_id AND d.status = ?4 AND {}",
            rules::before_expiry_sql("d.", "?5")
        ))],
        Some(Status::Expired) => vec![decided(&format!(
            " JOIN transfers d ON d.tx_id = p.tx_id AND (d.status = ?4 OR ({}))",
            rules::past_expiry_sql("d.", "?5")
        ))],
        Some(Status::Pending) => vec![pending(" AND status = ?4 AND ?5 IS NOT NULL")],
        Some(Status::Failed | Status::Cancelled) => vec![unapplied("src"), unapplied("dst")],
    };
    let filtered = if status.is_some_and(|s| matches!(s, Status::Failed | Status::Cancelled)) {
        " AND ?5 IS NOT NULL"
    } else {
        ""
    };
    format!(
        "WITH page(tx_id) AS ({})
         {}
         LEFT JOIN postings mine ON mine.account = ?1 AND mine.tx_id = t.tx_id
         WHERE t.tx_id IN (SELECT tx_id FROM page){filtered}
         ORDER BY t.tx_id DESC LIMIT ?3",
        parts.join(" UNION ALL "),
        select_transfer("mine.balance_after")
    )
}

pub(super) fn transfer_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TransferRecord> {
    let status: String = row.get(5)?;
    let status = Status::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            5,
            rusqlite::types::Type::Text,
            format!("unknown status '{status}'").into(),
        )
    })?;
    Ok(TransferRecord {
        tx_id: row.get(0)?,
        src: row.get(1)?,
        dst: row.get(2)?,
        amount: row.get(3)?,
        memo: row.get(4)?,
        status,
        reason: row.get(6)?,
        idempotency_key: row.get(7)?,
        created_at: row.get(8)?,
        settled_at: row.get(9)?,
        hold_amount: row.get(10)?,
        expires_at: row.get(11)?,
        refund_of: row.get(12)?,
        refunds: {
            let listed = row.get::<_, Option<String>>(14)?.unwrap_or_default();
            Refund::parse_all(listed.split(' ').filter(|item| !item.is_empty())).ok_or_else(
                || {
                    rusqlite::Error::FromSqlConversionFailure(
                        14,
                        rusqlite::types::Type::Text,
                        format!("unreadable refunds '{listed}'").into(),
                    )
                },
            )?
        },
        refunded: row.get(15)?,
        balance_after: row.get(13)?,
        currency: crate::money::CurrencyId(row.get(16)?),
        pair_tx_id: row.get(17)?,
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{Status, history_sql};
    use crate::ledger::model::Instant;
    use crate::ledger::sqlite::schema;

    /// The `detail` column of `EXPLAIN QUERY PLAN` for the history query,
    /// with the parameters bound as `history` binds them.
    fn plan(conn: &Connection, status: Option<Status>) -> Vec<String> {
        let sql = format!("EXPLAIN QUERY PLAN {}", history_sql(status));
        let mut stmt = conn.prepare(&sql).unwrap();
        fn detail(row: &rusqlite::Row<'_>) -> rusqlite::Result<String> {
            row.get(3)
        }
        let rows = match status {
            Some(status) => stmt.query_map(
                rusqlite::params![1, i64::MAX, 50, status.as_str(), 0],
                detail,
            ),
            None => stmt.query_map(rusqlite::params![1, i64::MAX, 50], detail),
        }
        .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    /// Every filter reads both sides from the index meant for it, with no
    /// table scan and no sort.
    fn assert_served_by_indexes(conn: &Connection) {
        let postings = "SEARCH p USING PRIMARY KEY (account=? AND tx_id<?)".to_string();
        let pending = vec![
            "SEARCH transfers USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)".to_string(),
            "SEARCH transfers USING INDEX transfers_captured (tx_id<?)".to_string(),
        ];
        let unapplied = |column: &str| {
            format!(
                "SEARCH transfers USING INDEX transfers_unapplied_by_{column} ({column}=? AND status=? AND tx_id<?)"
            )
        };
        let cases = [
            (None, [vec![postings.clone()], pending.clone()].concat()),
            (Some(Status::Completed), vec![postings]),
            (
                Some(Status::Failed),
                vec![unapplied("src"), unapplied("dst")],
            ),
            (
                Some(Status::Cancelled),
                vec![unapplied("src"), unapplied("dst")],
            ),
            (Some(Status::Pending), pending),
        ];
        for (status, reads) in cases {
            let plan = plan(conn, status);
            let text = plan.join("\n");
            // Whether SQLite reads the row too or the index covers it.
            let found: Vec<String> = plan
                .iter()
                .filter(|line| {
                    line.starts_with("SEARCH transfers USING ") || line.starts_with("SEARCH p ")
                })
                .map(|line| line.replace("COVERING INDEX", "INDEX"))
                .collect();
            assert_eq!(found, reads, "{status:?}:\n{text}");
            for line in &plan {
                let scans_a_table = line.starts_with("SCAN ") && !line.starts_with("SCAN (");
                assert!(!scans_a_table, "{status:?}: a full scan in\n{text}");
                assert!(
                    !line.contains("TEMP B-TREE"),
                    "{status:?}: a sort in\n{text}"
                );
            }
        }
    }

    #[test]
    fn history_reads_pages_from_indexes_without_scanning_or_sorting() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        assert_served_by_indexes(&conn);
    }

    #[test]
    fn history_plan_holds_once_statistics_show_one_busy_user() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts (id, name, email, created_at)
                 VALUES (1, 'alice', 'a@example.com', 0), (2, 'bob', 'b@example.com', 0);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO transfers (src, dst, amount, status, reason, created_at)
                 SELECT CASE WHEN i % 3 = 0 THEN 2 ELSE 1 END,
                        CASE WHEN i % 3 = 0 THEN 1 ELSE 0 END,
                        100,
                        CASE WHEN i % 100 = 0 THEN 'FAILED'
                             WHEN i % 101 = 0 THEN 'CANCELLED'
                             WHEN i > 2990 THEN 'PENDING'
                             ELSE 'COMPLETED' END,
                        CASE WHEN i % 100 = 0 THEN 'insufficient_funds' END,
                        i
                 FROM n;
             ANALYZE;",
        )
        .unwrap();
        assert_served_by_indexes(&conn);
    }

    /// The SQL forms of "past its expiry" and "before it" pick exactly the
    /// rows the rule reads as EXPIRED though stored otherwise, and the
    /// HELD ones it leaves HELD.
    #[test]
    fn the_sql_expiry_conditions_agree_with_the_status_as_of_an_instant() {
        use crate::ledger::rules::{before_expiry_sql, past_expiry_sql};
        let conn = Connection::open_in_memory().unwrap();
        let now = 1_000;
        let sql = format!(
            "SELECT coalesce(({}), 0), coalesce(t.status = 'HELD' AND {}, 0)
               FROM (SELECT ?1 AS status, ?2 AS expires_at) t",
            past_expiry_sql("t.", "?3"),
            before_expiry_sql("t.", "?3")
        );
        for status in Status::ALL {
            for expires_at in [None, Some(now - 1), Some(now), Some(now + 1)] {
                let (past, live): (bool, bool) = conn
                    .query_row(
                        &sql,
                        rusqlite::params![status.as_str(), expires_at, now],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .unwrap();
                let read = status.as_of(expires_at.map(Instant::new), Instant::new(now));
                let case = format!("{status:?} expiring at {expires_at:?}");
                assert_eq!(past, read != status, "{case}");
                assert_eq!(live, read == Status::Held, "{case}");
            }
        }
    }
}
