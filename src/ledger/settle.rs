//! Settlement: applying PENDING transfers oldest first, each exactly once.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::{EXTERNAL_ACCOUNT, Ledger, clock};
use crate::error::{Result, WalletError};

/// How much `settle` may do in one call.
#[derive(Debug, Clone)]
pub struct SettleOptions {
    /// Stop after this many transfers; `None` drains the queue.
    pub limit: Option<u64>,
    /// Transfers applied per transaction.
    pub batch_size: usize,
}

impl Default for SettleOptions {
    fn default() -> Self {
        Self {
            limit: None,
            batch_size: 10_000,
        }
    }
}

/// What a `settle` call did, and how many transfers still wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettleSummary {
    pub processed: u64,
    pub completed: u64,
    pub failed: u64,
    pub remaining: u64,
}

/// Why settlement refused a transfer, as stored in its `reason`.
pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";
/// A balance would leave the range of a 64-bit count of minor units.
pub const BALANCE_OVERFLOW: &str = "balance_overflow";

impl Ledger {
    /// Applies PENDING transfers in `tx_id` order, one transaction per batch.
    /// Each transfer's status change and balance changes commit together
    /// and only a transfer still PENDING under the write lock is applied,
    /// so concurrent or re-run settles never apply one twice.
    pub fn settle(
        &mut self,
        options: &SettleOptions,
        mut on_progress: impl FnMut(&SettleSummary),
    ) -> Result<SettleSummary> {
        let mut summary = SettleSummary::default();
        let batch_size = options.batch_size.max(1) as u64;
        loop {
            let wanted = match options.limit {
                Some(limit) => batch_size.min(limit - summary.processed),
                None => batch_size,
            };
            if wanted == 0 {
                break;
            }
            let (completed, failed) = settle_batch(self.conn_mut(), wanted)?;
            summary.completed += completed;
            summary.failed += failed;
            summary.processed += completed + failed;
            on_progress(&summary);
            if completed + failed < wanted {
                break;
            }
        }
        summary.remaining = pending_count(self.conn())?;
        Ok(summary)
    }

    /// How many transfers wait for settlement.
    pub fn pending_count(&self) -> Result<u64> {
        pending_count(self.conn())
    }
}

fn pending_count(conn: &Connection) -> Result<u64> {
    let count: i64 = conn.query_row(
        "SELECT count(*) FROM transfers WHERE status = 'PENDING'",
        [],
        |row| row.get(0),
    )?;
    Ok(count as u64)
}

/// An account's figures while a batch is applied in memory.
#[derive(Debug, Clone, Copy)]
struct AccountState {
    balance: i64,
    pending_in: i64,
    pending_out: i64,
}

/// Settles up to `max` of the oldest PENDING transfers in one transaction;
/// returns how many completed and how many failed.
fn settle_batch(conn: &mut Connection, max: u64) -> Result<(u64, u64)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = clock::now_ms();
    let batch: Vec<(i64, i64, i64, i64)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT tx_id, src, dst, amount FROM transfers
             WHERE status = 'PENDING' ORDER BY tx_id LIMIT ?1",
        )?;
        let rows = stmt.query_map([max as i64], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let mut accounts: HashMap<i64, AccountState> = HashMap::new();
    let (mut completed, mut failed) = (0, 0);
    {
        let mut mark = tx.prepare_cached(
            "UPDATE transfers SET status = ?2, reason = ?3, settled_at = ?4
             WHERE tx_id = ?1 AND status = 'PENDING'",
        )?;
        for (tx_id, src, dst, amount) in batch {
            load_account(&tx, &mut accounts, src)?;
            load_account(&tx, &mut accounts, dst)?;
            let src_balance = accounts[&src].balance;
            let dst_balance = accounts[&dst].balance;
            let moved = if src != EXTERNAL_ACCOUNT && src_balance < amount {
                Err(INSUFFICIENT_FUNDS)
            } else {
                match (
                    src_balance.checked_sub(amount),
                    dst_balance.checked_add(amount),
                ) {
                    (Some(new_src), Some(new_dst)) => Ok((new_src, new_dst)),
                    _ => Err(BALANCE_OVERFLOW),
                }
            };
            let (status, reason) = match moved {
                Ok((new_src, new_dst)) => {
                    accounts.get_mut(&src).expect("loaded").balance = new_src;
                    accounts.get_mut(&dst).expect("loaded").balance = new_dst;
                    completed += 1;
                    ("COMPLETED", None)
                }
                Err(reason) => {
                    failed += 1;
                    ("FAILED", Some(reason))
                }
            };
            accounts.get_mut(&src).expect("loaded").pending_out -= amount;
            accounts.get_mut(&dst).expect("loaded").pending_in -= amount;
            if mark.execute(params![tx_id, status, reason, now])? != 1 {
                return Err(WalletError::internal(anyhow::anyhow!(
                    "transfer {tx_id} stopped being PENDING under the write lock"
                )));
            }
        }
    }
    {
        let mut write = tx.prepare_cached(
            "UPDATE accounts SET balance = ?2, pending_in = ?3, pending_out = ?4 WHERE id = ?1",
        )?;
        for (id, state) in &accounts {
            write.execute(params![
                id,
                state.balance,
                state.pending_in,
                state.pending_out
            ])?;
        }
    }
    tx.commit()?;
    Ok((completed, failed))
}

fn load_account(
    tx: &Transaction<'_>,
    accounts: &mut HashMap<i64, AccountState>,
    id: i64,
) -> Result<()> {
    if accounts.contains_key(&id) {
        return Ok(());
    }
    let mut stmt =
        tx.prepare_cached("SELECT balance, pending_in, pending_out FROM accounts WHERE id = ?1")?;
    let state = stmt.query_row([id], |row| {
        Ok(AccountState {
            balance: row.get(0)?,
            pending_in: row.get(1)?,
            pending_out: row.get(2)?,
        })
    })?;
    accounts.insert(id, state);
    Ok(())
}
