//! Holds and refunds on PostgreSQL: placing a hold or queueing a refund
//! inside a chunk's transaction, and capturing or releasing a hold.

use postgres::Client;

use super::error::PgResult;
use super::{NOW_MS, commit, transfers};
use crate::error::{Result, WalletError};
use crate::ledger::model::{
    EXTERNAL_ACCOUNT, Kind, NewTransfer, Queued, Status, TransferRecord, TransferRef,
};
use crate::ledger::rules::{self, Pinned, PinnedExpiry};
use crate::money::Currency;

fn currency(client: &mut Client) -> PgResult<Currency> {
    let row = client.query_one("SELECT currency, scale FROM ledger_meta", &[])?;
    Ok(Currency {
        code: row.get(0),
        scale: u8::try_from(row.get::<_, i32>(1)).unwrap_or(2),
    })
}

fn account_id(
    client: &mut Client,
    name: Option<&crate::domain::UserName>,
) -> PgResult<Result<i64>> {
    let Some(name) = name else {
        return Ok(Ok(EXTERNAL_ACCOUNT));
    };
    let row = client.query_opt(
        "SELECT id FROM accounts WHERE lower(name) = lower($1)",
        &[&name.as_str()],
    )?;
    Ok(row
        .map(|row| row.get(0))
        .ok_or_else(|| WalletError::UserNotFound(name.to_string())))
}

/// Places a hold or queues a refund, in the open transaction of a chunk.
pub fn queue_line(
    client: &mut Client,
    transfer: &NewTransfer,
    lanes: i32,
) -> PgResult<Result<Queued>> {
    let src = match account_id(client, transfer.src())? {
        Ok(id) => id,
        Err(refused) => return Ok(Err(refused)),
    };
    let dst = match account_id(client, transfer.dst())? {
        Ok(id) => id,
        Err(refused) => return Ok(Err(refused)),
    };
    let requested = Pinned::requested(transfer, src, dst);
    if let Some(key) = transfer.key() {
        let earlier = client.query_opt(
            &format!(
                "SELECT tx_id, src, dst, coalesce(hold_amount, amount), memo, hold_amount IS NOT NULL,
                        refund_of, expires_at, created_at,
                        CASE WHEN status = 'HELD' AND expires_at <= {NOW_MS} THEN 'EXPIRED' ELSE status END
                   FROM transfers WHERE idem_key = $1"
            ),
            &[&key.as_str()],
        )?;
        if let Some(row) = earlier {
            let memo: Option<String> = row.get(4);
            let earlier = Pinned {
                src: row.get(1),
                dst: row.get(2),
                amount: row.get(3),
                memo: memo.as_deref(),
                hold: row.get(5),
                refund_of: row.get(6),
                expiry: row
                    .get::<_, bool>(5)
                    .then(|| PinnedExpiry::stored(row.get(8), row.get(7))),
            };
            let status = rules::stored_status(&row.get::<_, String>(9))?;
            return Ok(rules::replay_or_conflict(
                key,
                row.get(0),
                status,
                earlier,
                requested,
            ));
        }
    }
    let currency = currency(client)?;
    let lane = ((if src == EXTERNAL_ACCOUNT { dst } else { src }) % i64::from(lanes)) as i32;
    let key = transfer.key().map(|k| k.as_str());
    match transfer.kind() {
        Kind::Hold(expiry) => {
            let Some(source) = transfer.src() else {
                return Ok(Err(WalletError::InvalidLine(
                    "a hold needs a user as src".into(),
                )));
            };
            let now: i64 = client.query_one(&format!("SELECT {NOW_MS}"), &[])?.get(0);
            let expires_at = expiry.instant(now);
            if let Err(refused) = rules::check_expiry(expires_at, now) {
                return Ok(Err(refused));
            }
            let row = client.query_one(
                "SELECT balance, pending_out, held FROM accounts WHERE id = $1 FOR UPDATE",
                &[&src],
            )?;
            let (balance, pending_out, held): (i64, i64, i64) =
                (row.get(0), row.get(1), row.get(2));
            let expired: i64 = client
                .query_one(
                    &format!(
                        "WITH gone AS (
                            UPDATE transfers SET status = 'EXPIRED', settled_at = {NOW_MS}
                             WHERE src = $1 AND status = 'HELD' AND expires_at <= {NOW_MS}
                            RETURNING hold_amount)
                         SELECT coalesce(sum(hold_amount), 0)::bigint FROM gone"
                    ),
                    &[&src],
                )?
                .get(0);
            let held = held - expired;
            let new_held = match rules::check_hold(
                source,
                balance,
                pending_out,
                held,
                requested.amount,
                &currency,
            ) {
                Ok(new_held) => new_held,
                Err(refused) => return Ok(Err(refused)),
            };
            let row = client.query_one(
                "INSERT INTO transfers (lane, src, dst, amount, status, memo, idem_key, created_at,
                                        hold_amount, expires_at)
                 VALUES ($1, $2, $3, $4, 'HELD', $5, $6, $7, $4, $8) RETURNING tx_id",
                &[
                    &lane,
                    &src,
                    &dst,
                    &requested.amount,
                    &requested.memo,
                    &key,
                    &now,
                    &expires_at,
                ],
            )?;
            client.execute(
                "UPDATE accounts SET held = $2 WHERE id = $1",
                &[&src, &new_held],
            )?;
            Ok(Ok(Queued {
                tx_id: row.get(0),
                status: Status::Held,
                replayed: false,
            }))
        }
        Kind::Refund(original) => {
            // The original's row lock orders refunds of one transfer.
            let row = client.query_opt(
                &format!(
                    "SELECT src, dst, amount,
                            CASE WHEN status = 'HELD' AND expires_at <= {NOW_MS} THEN 'EXPIRED' ELSE status END
                       FROM transfers WHERE tx_id = $1 FOR UPDATE"
                ),
                &[&original],
            )?;
            let Some(row) = row else {
                return Ok(Err(WalletError::TransferNotFound(original.to_string())));
            };
            let (o_src, o_dst, o_amount, o_status): (i64, i64, i64, String) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            if (src, dst) != (o_dst, o_src) {
                return Ok(Err(WalletError::InvalidLine(format!(
                    "a refund of transfer {original} goes from its destination back to its source"
                ))));
            }
            let already: i64 = client
                .query_one(
                    "SELECT coalesce(sum(amount), 0)::bigint FROM transfers
                      WHERE refund_of = $1 AND status IN ('PENDING', 'COMPLETED')",
                    &[&original],
                )?
                .get(0);
            if let Err(refused) = rules::check_refund(
                original,
                &o_status,
                o_amount,
                already,
                requested.amount,
                &currency,
            ) {
                return Ok(Err(refused));
            }
            let mut users: Vec<i64> = [src, dst]
                .into_iter()
                .filter(|id| *id != EXTERNAL_ACCOUNT)
                .collect();
            users.sort_unstable();
            client.query(
                "SELECT 1 FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&users],
            )?;
            let row = client.query_one(
                &format!(
                    "INSERT INTO transfers (lane, src, dst, amount, status, memo, idem_key, created_at, refund_of)
                     VALUES ($1, $2, $3, $4, 'PENDING', $5, $6, {NOW_MS}, $7) RETURNING tx_id"
                ),
                &[&lane, &src, &dst, &requested.amount, &requested.memo, &key, &original],
            )?;
            client.execute(
                "UPDATE accounts SET pending_out = pending_out + $2 WHERE id = $1",
                &[&src, &requested.amount],
            )?;
            client.execute(
                "UPDATE accounts SET pending_in = pending_in + $2 WHERE id = $1",
                &[&dst, &requested.amount],
            )?;
            Ok(Ok(Queued {
                tx_id: row.get(0),
                status: Status::Pending,
                replayed: false,
            }))
        }
        Kind::Transfer => {
            Err(WalletError::internal(anyhow::anyhow!("a plain transfer on the hold path")).into())
        }
    }
}

struct HoldRow {
    src: i64,
    dst: i64,
    hold_amount: i64,
    status: String,
    expires_at: Option<i64>,
    now: i64,
}

fn lock_hold(client: &mut Client, tx_id: i64) -> PgResult<HoldRow> {
    let row = client
        .query_opt(
            &format!(
                "SELECT src, dst, hold_amount, status, expires_at, {NOW_MS}
                   FROM transfers WHERE tx_id = $1 FOR UPDATE"
            ),
            &[&tx_id],
        )?
        .ok_or_else(|| WalletError::TransferNotFound(tx_id.to_string()))?;
    let status: String = row.get(3);
    let Some(hold_amount) = row.get::<_, Option<i64>>(2) else {
        return Err(WalletError::NotHeld {
            tx_id,
            status: format!("a transfer ({status})"),
        }
        .into());
    };
    let hold = HoldRow {
        src: row.get(0),
        dst: row.get(1),
        hold_amount,
        status,
        expires_at: row.get(4),
        now: row.get(5),
    };
    rules::check_live_hold(tx_id, &hold.status, hold.expires_at, hold.now)?;
    // The user accounts in id order, as every writer locks them.
    let mut users: Vec<i64> = [hold.src, hold.dst]
        .into_iter()
        .filter(|id| *id != EXTERNAL_ACCOUNT)
        .collect();
    users.sort_unstable();
    client.query(
        "SELECT 1 FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &[&users],
    )?;
    Ok(hold)
}

/// Turns a live hold into a PENDING transfer of `amount` (all by default).
pub fn capture(client: &mut Client, tx_id: i64, amount: Option<i64>) -> PgResult<TransferRecord> {
    client.batch_execute("BEGIN")?;
    let hold = lock_hold(client, tx_id)?;
    let currency = currency(client)?;
    let captured = rules::captured_amount(hold.hold_amount, amount, &currency)?;
    client.execute(
        "UPDATE transfers SET status = 'PENDING', amount = $2 WHERE tx_id = $1 AND status = 'HELD'",
        &[&tx_id, &captured],
    )?;
    client.execute(
        "UPDATE accounts SET held = held - $2, pending_out = pending_out + $3 WHERE id = $1",
        &[&hold.src, &hold.hold_amount, &captured],
    )?;
    client.execute(
        "UPDATE accounts SET pending_in = pending_in + $2 WHERE id = $1",
        &[&hold.dst, &captured],
    )?;
    let record = transfers::transfer(client, TransferRef::Id(tx_id))?;
    commit(
        client,
        &format!("the capture of hold {tx_id}"),
        "`wallet get-transfer` shows whether it is PENDING",
    )?;
    Ok(record)
}

/// Voids a live hold: its reservation is given back, nothing moves.
pub fn release(client: &mut Client, tx_id: i64) -> PgResult<TransferRecord> {
    client.batch_execute("BEGIN")?;
    let hold = lock_hold(client, tx_id)?;
    client.execute(
        "UPDATE transfers SET status = 'RELEASED', settled_at = $2 WHERE tx_id = $1 AND status = 'HELD'",
        &[&tx_id, &hold.now],
    )?;
    client.execute(
        "UPDATE accounts SET held = held - $2 WHERE id = $1",
        &[&hold.src, &hold.hold_amount],
    )?;
    let record = transfers::transfer(client, TransferRef::Id(tx_id))?;
    commit(
        client,
        &format!("the release of hold {tx_id}"),
        "`wallet get-transfer` shows whether it is RELEASED",
    )?;
    Ok(record)
}
