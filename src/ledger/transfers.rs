//! Transfers: queueing them (with idempotency keys), looking them up, cancelling, history.

use std::fmt;

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::accounts::user_id;
use super::{EXTERNAL_ACCOUNT, Ledger, clock};
use crate::domain::{IdempotencyKey, Memo, UserName};
use crate::error::{Result, WalletError};
use crate::money::Amount;

/// Where a transfer is in its life. Only `Pending` ever changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Pending,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
            Status::Cancelled => "CANCELLED",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transfer to queue. `None` on one side means the external account:
/// a deposit has no source user, a withdrawal no destination user.
#[derive(Debug, Clone)]
pub struct NewTransfer {
    pub src: Option<UserName>,
    pub dst: Option<UserName>,
    pub amount: Amount,
    pub memo: Option<Memo>,
    pub key: Option<IdempotencyKey>,
}

/// What queueing answered: the transfer's id and current status, and
/// whether an earlier request with the same key had already queued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub tx_id: i64,
    pub status: Status,
    pub replayed: bool,
}

/// A transfer as stored, with user names in place of account ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRecord {
    pub tx_id: i64,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub amount: i64,
    pub memo: Option<String>,
    pub status: Status,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub settled_at: Option<i64>,
}

/// Which part of a user's history to read.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub limit: u32,
    pub status: Option<Status>,
    /// Only transfers with a smaller id: the cursor for the next page.
    pub before: Option<i64>,
}

const SELECT_TRANSFER: &str = "SELECT t.tx_id, s.name, d.name, t.amount, t.memo, t.status,
        t.reason, t.idem_key, t.created_at, t.settled_at
     FROM transfers t
     JOIN accounts s ON s.id = t.src
     JOIN accounts d ON d.id = t.dst";

impl Ledger {
    /// Queues a transfer as PENDING in one transaction. With a key already
    /// used for the same fields it returns that transfer instead.
    pub fn queue_transfer(&mut self, transfer: &NewTransfer) -> Result<Queued> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let queued = queue_in(&tx, transfer, clock::now_ms())?;
        tx.commit()?;
        Ok(queued)
    }

    pub fn transfer(&self, tx_id: i64) -> Result<TransferRecord> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!("{SELECT_TRANSFER} WHERE t.tx_id = ?1"))?;
        stmt.query_row([tx_id], transfer_from_row)
            .optional()?
            .ok_or_else(|| WalletError::TransferNotFound(tx_id.to_string()))
    }

    pub fn transfer_by_key(&self, key: &IdempotencyKey) -> Result<TransferRecord> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!("{SELECT_TRANSFER} WHERE t.idem_key = ?1"))?;
        stmt.query_row([key.as_str()], transfer_from_row)
            .optional()?
            .ok_or_else(|| WalletError::TransferNotFound(format!("with key '{}'", key.as_str())))
    }

    /// Cancels a PENDING transfer. The status is checked under the write
    /// lock, so a concurrent `settle` either applied it first (and this
    /// fails with `not_pending`) or will find it cancelled.
    pub fn cancel(&mut self, tx_id: i64) -> Result<TransferRecord> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (src, dst, amount, status): (i64, i64, i64, String) = tx
            .query_row(
                "SELECT src, dst, amount, status FROM transfers WHERE tx_id = ?1",
                [tx_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?
            .ok_or_else(|| WalletError::TransferNotFound(tx_id.to_string()))?;
        if status != Status::Pending.as_str() {
            return Err(WalletError::NotPending { tx_id, status });
        }
        tx.execute(
            "UPDATE transfers SET status = 'CANCELLED', settled_at = ?2
             WHERE tx_id = ?1 AND status = 'PENDING'",
            params![tx_id, clock::now_ms()],
        )?;
        release_pending(&tx, src, dst, amount)?;
        let record = tx.query_row(
            &format!("{SELECT_TRANSFER} WHERE t.tx_id = ?1"),
            [tx_id],
            transfer_from_row,
        )?;
        tx.commit()?;
        Ok(record)
    }

    /// A user's transfers, newest first. Each side (sent, received) is read
    /// newest first from an index, at most `limit` rows each, and the two
    /// short lists are merged; see [`history_sql`] for which index serves
    /// which filter.
    pub fn history(&self, name: &UserName, query: &HistoryQuery) -> Result<Vec<TransferRecord>> {
        let user = self.user(name)?;
        let before = query.before.unwrap_or(i64::MAX);
        let mut stmt = self.conn().prepare_cached(&history_sql(query.status))?;
        let rows = match query.status {
            Some(status) => stmt.query_map(
                params![user.id, before, query.limit, status.as_str()],
                transfer_from_row,
            )?,
            None => stmt.query_map(params![user.id, before, query.limit], transfer_from_row)?,
        };
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The page query of [`Ledger::history`]: `?1` user id, `?2` exclusive upper
/// bound on `tx_id`, `?3` page size and, with a status, `?4` that status.
///
/// Each side is an index range read newest first and stopped after `?3`
/// rows, so a page costs the same for a user with ten transfers or a million:
/// all of them and COMPLETED ones (what nearly every transfer becomes) from
/// `transfers_by_src`/`_dst`; FAILED and CANCELLED, which may be rare in a
/// long history, from the partial `transfers_unapplied_by_*` indexes;
/// PENDING from the queue's own `transfers_pending`, whose length is bounded
/// by how often `settle` runs. The partial indexes need their own condition
/// spelled out in the query, and the indexes are named because statistics
/// from a ledger where one user dominates can tempt the planner into walking
/// the whole table backwards, which is ruinous for every other user.
fn history_sql(status: Option<Status>) -> String {
    let (src_index, dst_index, filter) = match status {
        None => ("transfers_by_src", "transfers_by_dst", ""),
        Some(Status::Completed) => ("transfers_by_src", "transfers_by_dst", " AND status = ?4"),
        Some(Status::Pending) => (
            "transfers_pending",
            "transfers_pending",
            " AND status = ?4 AND status = 'PENDING'",
        ),
        Some(Status::Failed | Status::Cancelled) => (
            "transfers_unapplied_by_src",
            "transfers_unapplied_by_dst",
            " AND status = ?4 AND status IN ('FAILED', 'CANCELLED')",
        ),
    };
    format!(
        "WITH page(tx_id) AS (
             SELECT tx_id FROM (SELECT tx_id FROM transfers INDEXED BY {src_index}
                 WHERE src = ?1{filter} AND tx_id < ?2 ORDER BY tx_id DESC LIMIT ?3)
             UNION ALL
             SELECT tx_id FROM (SELECT tx_id FROM transfers INDEXED BY {dst_index}
                 WHERE dst = ?1{filter} AND tx_id < ?2 ORDER BY tx_id DESC LIMIT ?3)
         )
         {SELECT_TRANSFER} WHERE t.tx_id IN (SELECT tx_id FROM page)
         ORDER BY t.tx_id DESC LIMIT ?3"
    )
}

/// Queues one transfer inside the caller's write transaction, so a batch
/// of them can share one commit.
pub(crate) fn queue_in(tx: &Transaction<'_>, transfer: &NewTransfer, now: i64) -> Result<Queued> {
    let src = match &transfer.src {
        Some(name) => user_id(tx, name)?,
        None => EXTERNAL_ACCOUNT,
    };
    let dst = match &transfer.dst {
        Some(name) => user_id(tx, name)?,
        None => EXTERNAL_ACCOUNT,
    };
    if src == dst {
        let name = transfer.src.as_ref().or(transfer.dst.as_ref());
        return Err(WalletError::SameAccount(
            name.map(ToString::to_string).unwrap_or_default(),
        ));
    }
    let amount = transfer.amount.minor_units();
    let memo = transfer.memo.as_ref().map(Memo::as_str);
    if let Some(key) = &transfer.key {
        let mut stmt = tx.prepare_cached(SELECT_BY_KEY)?;
        if let Some(queued) = replay(&mut stmt, key, src, dst, amount, memo)? {
            return Ok(queued);
        }
    }
    if let Some(full) = reserve_pending(tx, (src, dst), amount)? {
        let name = if full == src {
            transfer.src.as_ref()
        } else {
            transfer.dst.as_ref()
        };
        return Err(WalletError::PendingOverflow(name.map_or_else(
            || "the external account".to_string(),
            |name| format!("user '{name}'"),
        )));
    }
    let mut insert = tx.prepare_cached(INSERT_TRANSFER)?;
    insert.execute(params![
        src,
        dst,
        amount,
        memo,
        transfer.key.as_ref().map(IdempotencyKey::as_str),
        now
    ])?;
    Ok(Queued {
        tx_id: tx.last_insert_rowid(),
        status: Status::Pending,
        replayed: false,
    })
}

/// Adds one PENDING transfer; the caller has reserved its pending sums.
pub(super) const INSERT_TRANSFER: &str =
    "INSERT INTO transfers (src, dst, amount, status, memo, idem_key, created_at)
     VALUES (?1, ?2, ?3, 'PENDING', ?4, ?5, ?6)";

/// Reads the transfer an idempotency key already names, for [`replay`].
pub(super) const SELECT_BY_KEY: &str =
    "SELECT tx_id, src, dst, amount, memo, status FROM transfers WHERE idem_key = ?1";

/// The earlier transfer queued under `key`, if any: returned as a replay
/// when its fields match the new request, refused as a conflict otherwise.
pub(super) fn replay(
    stmt: &mut rusqlite::Statement<'_>,
    key: &IdempotencyKey,
    src: i64,
    dst: i64,
    amount: i64,
    memo: Option<&str>,
) -> Result<Option<Queued>> {
    let earlier = stmt
        .query_row([key.as_str()], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, String>(5)?,
            ))
        })
        .optional()?;
    let Some((tx_id, e_src, e_dst, e_amount, e_memo, status)) = earlier else {
        return Ok(None);
    };
    let field = if e_src != src {
        Some("source")
    } else if e_dst != dst {
        Some("destination")
    } else if e_amount != amount {
        Some("amount")
    } else if e_memo.as_deref() != memo {
        Some("memo")
    } else {
        None
    };
    if let Some(field) = field {
        return Err(WalletError::IdempotencyConflict {
            key: key.as_str().to_string(),
            field,
            tx_id,
        });
    }
    Ok(Some(Queued {
        tx_id,
        status: parse_status(&status)?,
        replayed: true,
    }))
}

/// Adds a queued amount to the source's `pending_out` and the destination's
/// `pending_in`, refusing rather than overflowing either sum: returns the
/// account whose sum is full, if one is.
fn reserve_pending(
    tx: &Transaction<'_>,
    (src, dst): (i64, i64),
    amount: i64,
) -> Result<Option<i64>> {
    let headroom = i64::MAX - amount;
    let mut out = tx.prepare_cached(
        "UPDATE accounts SET pending_out = pending_out + ?2 WHERE id = ?1 AND pending_out <= ?3",
    )?;
    let mut r#in = tx.prepare_cached(
        "UPDATE accounts SET pending_in = pending_in + ?2 WHERE id = ?1 AND pending_in <= ?3",
    )?;
    if out.execute(params![src, amount, headroom])? != 1 {
        return Ok(Some(src));
    }
    if r#in.execute(params![dst, amount, headroom])? != 1 {
        return Ok(Some(dst));
    }
    Ok(None)
}

/// Takes a transfer's amount back out of the pending sums when it leaves PENDING.
pub(super) fn release_pending(tx: &Transaction<'_>, src: i64, dst: i64, amount: i64) -> Result<()> {
    let mut out =
        tx.prepare_cached("UPDATE accounts SET pending_out = pending_out - ?2 WHERE id = ?1")?;
    let mut r#in =
        tx.prepare_cached("UPDATE accounts SET pending_in = pending_in - ?2 WHERE id = ?1")?;
    out.execute(params![src, amount])?;
    r#in.execute(params![dst, amount])?;
    Ok(())
}

fn parse_status(text: &str) -> Result<Status> {
    Status::parse(text).ok_or_else(|| {
        WalletError::Integrity(format!("a transfer has the unknown status '{text}'"))
    })
}

fn transfer_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TransferRecord> {
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
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{Status, history_sql};
    use crate::ledger::schema;

    /// The `detail` column of `EXPLAIN QUERY PLAN` for the history query,
    /// with the parameters bound as `history` binds them.
    fn plan(conn: &Connection, status: Option<Status>) -> Vec<String> {
        let sql = format!("EXPLAIN QUERY PLAN {}", history_sql(status));
        let mut stmt = conn.prepare(&sql).unwrap();
        fn detail(row: &rusqlite::Row<'_>) -> rusqlite::Result<String> {
            row.get(3)
        }
        let rows = match status {
            Some(status) => {
                stmt.query_map(rusqlite::params![1, i64::MAX, 50, status.as_str()], detail)
            }
            None => stmt.query_map(rusqlite::params![1, i64::MAX, 50], detail),
        }
        .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    /// Every filter reads both sides from the index meant for it, with no
    /// table scan and no sort.
    fn assert_served_by_indexes(conn: &Connection) {
        let by_user = |column: &str| format!("transfers_by_{column} ({column}=? AND tx_id<?)");
        let unapplied = |column: &str| {
            format!("transfers_unapplied_by_{column} ({column}=? AND status=? AND tx_id<?)")
        };
        let pending = "transfers_pending (status=? AND rowid<?)".to_string();
        let cases = [
            (None, [by_user("src"), by_user("dst")]),
            (Some(Status::Completed), [by_user("src"), by_user("dst")]),
            (Some(Status::Failed), [unapplied("src"), unapplied("dst")]),
            (
                Some(Status::Cancelled),
                [unapplied("src"), unapplied("dst")],
            ),
            (Some(Status::Pending), [pending.clone(), pending]),
        ];
        for (status, indexes) in cases {
            let plan = plan(conn, status);
            let text = plan.join("\n");
            let searches: Vec<&String> = plan
                .iter()
                .filter(|line| line.starts_with("SEARCH transfers USING "))
                .collect();
            assert_eq!(
                searches.len(),
                2,
                "{status:?}: one read per side in\n{text}"
            );
            for (line, index) in searches.iter().zip(&indexes) {
                assert!(
                    line.ends_with(&format!("INDEX {index}")),
                    "{status:?}: `{index}` wanted in\n{text}"
                );
            }
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
}
