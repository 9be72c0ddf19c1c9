//! Holds and refunds: what a chunk's plan reads of them (a hold source's
//! figures, a refund's original), writing a placed hold, and capturing or
//! releasing one.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::error::{SqlResult, commit};
use super::transfers;
use crate::error::WalletError;
use crate::ledger::events::EventKind;
use crate::ledger::model::{BalanceKey, TxId};
use crate::ledger::model::{Policy, TransferRecord, TransferRef};
use crate::ledger::rules::{
    self,
    plan::{HoldFigures, NewRow, Original},
};
use crate::money::Currency;

/// The currency a hold moves, as the ledger records it.
fn currency(tx: &Connection, id: crate::money::CurrencyId) -> SqlResult<Currency> {
    let (code, scale): (String, u8) = tx
        .prepare_cached("SELECT code, scale FROM currencies WHERE id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(Currency { code, scale })
}

/// Gives back the reservations of the account's holds that are past their
/// expiry, marking them EXPIRED: a write that reads `held` first makes it
/// exact, as `settle` does for every account.
fn expire_holds_of(tx: &Transaction<'_>, key: BalanceKey, now: i64) -> SqlResult<()> {
    let account = key.account;
    let past_expiry = rules::past_expiry_sql("", "?2");
    let expired: i64 = tx
        .prepare_cached(&format!(
            "SELECT coalesce(sum(hold_amount), 0) FROM transfers INDEXED BY transfers_held_by_expiry
             WHERE src = ?1 AND currency = ?3 AND {past_expiry}"
        ))?
        .query_row(params![account, now, key.currency], |row| row.get(0))?;
    if expired > 0 {
        let mut gone = tx
            .prepare_cached(&format!(
                "UPDATE transfers SET status = 'EXPIRED', settled_at = ?2
                 WHERE tx_id IN (SELECT tx_id FROM transfers INDEXED BY transfers_held_by_expiry
                                 WHERE src = ?1 AND currency = ?3 AND {past_expiry})
                 RETURNING tx_id"
            ))?
            .query_map(params![account, now, key.currency], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        gone.sort_unstable();
        super::events::record(tx, EventKind::HoldExpired, now, gone)?;
        super::slots::execute(
            tx,
            key,
            "UPDATE accounts SET held = held - ?2 WHERE id = ?1",
            "UPDATE balances SET held = held - ?2 WHERE account = ?1 AND currency = ?3",
            &[&expired],
        )?;
    }
    Ok(())
}

/// A hold source's balance, policy and what its live holds reserve, its
/// holds past their expiry given back first.
pub(super) fn hold_figures(
    tx: &Transaction<'_>,
    key: BalanceKey,
    now: i64,
) -> SqlResult<HoldFigures> {
    expire_holds_of(tx, key, now)?;
    // Frozen covers every currency: it is read from the account's row. A
    // balance with no row yet reads as zero; the row is made only when a
    // hold is placed on it.
    let figures = super::slots::query_row(
        tx,
        key,
        "SELECT balance, held, overdraft, frozen FROM accounts WHERE id = ?1",
        "SELECT coalesce((SELECT balance FROM balances WHERE account = ?1 AND currency = ?2), 0),
                coalesce((SELECT held FROM balances WHERE account = ?1 AND currency = ?2), 0),
                coalesce((SELECT overdraft FROM balances WHERE account = ?1 AND currency = ?2), 0),
                frozen
         FROM accounts WHERE id = ?1",
        &[],
        |row| {
            Ok(HoldFigures {
                balance: row.get(0)?,
                held: row.get(1)?,
                overdraft: row.get(2)?,
                frozen: row.get(3)?,
            })
        },
    )?;
    figures.ok_or_else(|| {
        WalletError::internal(anyhow::anyhow!("account {} has no row", key.account)).into()
    })
}

/// Writes a hold a chunk's plan placed; returns its id.
pub(super) fn place(
    tx: &Transaction<'_>,
    row: &NewRow,
    memo: Option<&str>,
    key: Option<&str>,
    now: i64,
    expires_at: Option<i64>,
) -> SqlResult<i64> {
    tx.prepare_cached(
        "INSERT INTO transfers (src, dst, amount, status, memo, idem_key, created_at,
                                hold_amount, expires_at, currency)
         VALUES (?1, ?2, ?3, 'HELD', ?4, ?5, ?6, ?3, ?7, ?8)",
    )?
    .execute(params![
        row.src,
        row.dst,
        row.amount,
        memo,
        key,
        now,
        expires_at,
        row.currency
    ])?;
    let tx_id = tx.last_insert_rowid();
    super::events::record(tx, EventKind::HoldPlaced, now, [tx_id])?;
    super::settle::post(
        tx,
        std::iter::once((tx_id, row.src, None, row.dst, None)),
        &mut Vec::new(),
    )?;
    Ok(tx_id)
}

/// The transfer a refund pays back, with its refunds queued or completed.
pub(super) fn original(tx: &Transaction<'_>, tx_id: i64) -> SqlResult<Option<Original>> {
    Ok(tx
        .prepare_cached(&format!(
            "SELECT o.src, o.dst, o.amount, o.status, o.expires_at,
                    (SELECT coalesce(sum(r.amount), 0) FROM transfers r
                     INDEXED BY transfers_by_refund_of
                     WHERE r.refund_of = o.tx_id AND r.status IN ({})),
                    o.pair_tx_id
             FROM transfers o WHERE o.tx_id = ?1",
            rules::refund_counting_statuses_sql()
        ))?
        .query_row([tx_id], |row| {
            Ok(Original {
                src: row.get(0)?,
                dst: row.get(1)?,
                amount: row.get(2)?,
                status: row.get(3)?,
                expires_at: row.get(4)?,
                refunded: row.get(5)?,
                pair: row.get(6)?,
            })
        })
        .optional()?)
}

/// The row of a hold as capture and release read it under the write lock.
struct HoldRow {
    src: i64,
    dst: i64,
    currency: crate::money::CurrencyId,
    hold_amount: i64,
    status: String,
    expires_at: Option<i64>,
}

fn read_hold(tx: &Transaction<'_>, tx_id: i64) -> SqlResult<HoldRow> {
    let row = tx
        .prepare_cached(
            "SELECT src, dst, hold_amount, status, expires_at, currency FROM transfers
             WHERE tx_id = ?1",
        )?
        .query_row([tx_id], |row| {
            Ok((
                HoldRow {
                    src: row.get(0)?,
                    dst: row.get(1)?,
                    currency: crate::money::CurrencyId(row.get(5)?),
                    hold_amount: row.get::<_, Option<i64>>(2)?.unwrap_or(0),
                    status: row.get(3)?,
                    expires_at: row.get(4)?,
                },
                row.get::<_, Option<i64>>(2)?.is_some(),
            ))
        })
        .optional()?;
    let Some((hold, is_hold)) = row else {
        return Err(WalletError::TransferNotFound(tx_id.to_string()).into());
    };
    if !is_hold {
        return Err(WalletError::NotHeld {
            tx_id,
            status: format!("a transfer ({})", hold.status),
        }
        .into());
    }
    Ok(hold)
}

/// One side of a hold being captured: its sums and its policy.
struct CaptureSide {
    name: Option<String>,
    pending_out: i64,
    pending_in: i64,
    held: i64,
    policy: Policy,
}

fn capture_side(tx: &Transaction<'_>, key: BalanceKey, now: i64) -> SqlResult<CaptureSide> {
    super::slots::ensure(tx, key, now)?;
    let side = super::slots::query_row(
        tx,
        key,
        "SELECT name, pending_out, pending_in, held, overdraft, frozen, closed
         FROM accounts WHERE id = ?1",
        "SELECT a.name, b.pending_out, b.pending_in, b.held, b.overdraft, a.frozen, a.closed
         FROM balances b JOIN accounts a ON a.id = b.account
         WHERE b.account = ?1 AND b.currency = ?2",
        &[],
        |row| {
            Ok(CaptureSide {
                name: row.get(0)?,
                pending_out: row.get(1)?,
                pending_in: row.get(2)?,
                held: row.get(3)?,
                policy: Policy {
                    overdraft: row.get(4)?,
                    frozen: row.get(5)?,
                    closed: row.get(6)?,
                },
            })
        },
    )?;
    side.ok_or_else(|| {
        WalletError::internal(anyhow::anyhow!("account {} has no row", key.account)).into()
    })
}

/// Turns a live hold into a PENDING transfer of `amount` (all of it by
/// default; the rest is released), with the same `tx_id`, unless its
/// source is frozen or its destination closed.
pub(super) fn capture(
    conn: &mut Connection,
    tx_id: i64,
    amount: Option<i64>,
) -> SqlResult<TransferRecord> {
    let tx = super::guard::begin_write(conn)?;
    let now = crate::ledger::clock::now_ms();
    let hold = read_hold(&tx, tx_id)?;
    rules::check_live_hold(tx_id, &hold.status, hold.expires_at, now)?;
    let currency = currency(&tx, hold.currency)?;
    let (src_key, dst_key) = (
        BalanceKey::new(hold.src, hold.currency),
        BalanceKey::new(hold.dst, hold.currency),
    );
    let src = capture_side(&tx, src_key, now)?;
    let dst = capture_side(&tx, dst_key, now)?;
    rules::check_capture_parties(
        src.name.as_deref(),
        src.policy,
        dst.name.as_deref(),
        dst.policy,
    )?;
    let captured = rules::captured_amount(hold.hold_amount, amount, &currency)?;
    let (src_out, src_held, dst_in) = (src.pending_out, src.held, dst.pending_in);
    let held = rules::release_pending(hold.src, src_held, hold.hold_amount)?;
    let (out, r#in) = (src_out.checked_add(captured), dst_in.checked_add(captured));
    let (Some(out), Some(r#in)) = (out, r#in) else {
        return Err(WalletError::PendingOverflow(format!("transfer {tx_id}'s accounts")).into());
    };
    tx.execute(
        "UPDATE transfers SET status = 'PENDING', amount = ?2 WHERE tx_id = ?1 AND status = 'HELD'",
        params![tx_id, captured],
    )?;
    super::slots::execute(
        &tx,
        src_key,
        "UPDATE accounts SET held = ?2, pending_out = ?3 WHERE id = ?1",
        "UPDATE balances SET held = ?2, pending_out = ?3 WHERE account = ?1 AND currency = ?4",
        &[&held, &out],
    )?;
    super::slots::execute(
        &tx,
        dst_key,
        "UPDATE accounts SET pending_in = ?2 WHERE id = ?1",
        "UPDATE balances SET pending_in = ?2 WHERE account = ?1 AND currency = ?3",
        &[&r#in],
    )?;
    super::events::record(&tx, EventKind::HoldCaptured, now, [tx_id])?;
    let record = transfers::transfer(&tx, TransferRef::Id(TxId::new(tx_id)))?;
    commit(
        tx,
        &format!("the capture of hold {tx_id}"),
        "`wallet get-transfer` shows whether it is PENDING",
    )?;
    Ok(record)
}

/// Voids a live hold: its reservation is given back, nothing moves.
pub(super) fn release(conn: &mut Connection, tx_id: i64) -> SqlResult<TransferRecord> {
    let tx = super::guard::begin_write(conn)?;
    let now = crate::ledger::clock::now_ms();
    let hold = read_hold(&tx, tx_id)?;
    rules::check_live_hold(tx_id, &hold.status, hold.expires_at, now)?;
    let src_key = BalanceKey::new(hold.src, hold.currency);
    super::slots::ensure(&tx, src_key, now)?;
    let src_held: i64 = super::slots::query_row(
        &tx,
        src_key,
        "SELECT held FROM accounts WHERE id = ?1",
        "SELECT held FROM balances WHERE account = ?1 AND currency = ?2",
        &[],
        |r| r.get(0),
    )?
    .unwrap_or(0);
    let held = rules::release_pending(hold.src, src_held, hold.hold_amount)?;
    tx.execute(
        "UPDATE transfers SET status = 'RELEASED', settled_at = ?2 WHERE tx_id = ?1 AND status = 'HELD'",
        params![tx_id, now],
    )?;
    super::slots::execute(
        &tx,
        src_key,
        "UPDATE accounts SET held = ?2 WHERE id = ?1",
        "UPDATE balances SET held = ?2 WHERE account = ?1 AND currency = ?3",
        &[&held],
    )?;
    super::events::record(&tx, EventKind::HoldReleased, now, [tx_id])?;
    let record = transfers::transfer(&tx, TransferRef::Id(TxId::new(tx_id)))?;
    commit(
        tx,
        &format!("the release of hold {tx_id}"),
        "`wallet get-transfer` shows whether it is RELEASED",
    )?;
    Ok(record)
}
