//! Holds on PostgreSQL: capturing or releasing one, and expiring them.
//! Placing a hold or queueing a refund is a chunk's line (`queue.rs`).

use postgres::Client;

use super::error::PgResult;
use super::guard::Guard;
use super::{NOW_MS, commit, events, transfers};
use crate::error::WalletError;
use crate::ledger::events::EventKind;
use crate::ledger::model::TxId;
use crate::ledger::model::{EXTERNAL_ACCOUNT, Policy, TransferRecord, TransferRef};
use crate::ledger::rules;
use crate::money::Currency;

/// The currency a hold moves, as the ledger records it.
fn currency(client: &mut Client, id: i16) -> PgResult<Currency> {
    let row = client.query_one("SELECT code, scale FROM currencies WHERE id = $1", &[&id])?;
    Ok(Currency {
        code: row.get(0),
        scale: u8::try_from(row.get::<_, i32>(1)).unwrap_or(2),
    })
}

/// Moves one side's figures by deltas: the `accounts` row in the default
/// currency, else the `balances` row (made at zero if missing: the
/// account's lock is held).
fn move_side(
    client: &mut Client,
    account: i64,
    currency: i16,
    held: i64,
    pending_out: i64,
    pending_in: i64,
) -> PgResult<()> {
    if currency == 0 {
        client.execute(
            "UPDATE accounts SET held = held + $2, pending_out = pending_out + $3,
                    pending_in = pending_in + $4 WHERE id = $1",
            &[&account, &held, &pending_out, &pending_in],
        )?;
    } else {
        client.execute(
            &format!(
                "INSERT INTO balances (account, currency, created_at) VALUES ($1, $2, {NOW_MS})
                 ON CONFLICT (account, currency) DO NOTHING"
            ),
            &[&account, &currency],
        )?;
        client.execute(
            "UPDATE balances SET held = held + $3, pending_out = pending_out + $4,
                    pending_in = pending_in + $5 WHERE account = $1 AND currency = $2",
            &[&account, &currency, &held, &pending_out, &pending_in],
        )?;
    }
    Ok(())
}

struct HoldRow {
    src: i64,
    dst: i64,
    currency: i16,
    hold_amount: i64,
    status: String,
    expires_at: Option<i64>,
    now: i64,
    /// Each user side's name and policy as locked (the external account
    /// has none).
    parties: Vec<(i64, String, Policy)>,
}

impl HoldRow {
    fn party(&self, account: i64) -> (Option<&str>, Policy) {
        self.parties
            .iter()
            .find(|(id, _, _)| *id == account)
            .map_or((None, Policy::default()), |(_, name, policy)| {
                (Some(name.as_str()), *policy)
            })
    }
}

fn lock_hold(client: &mut Client, tx_id: i64) -> PgResult<HoldRow> {
    let row = client
        .query_opt(
            "SELECT src, dst, hold_amount, status, expires_at, currency
               FROM transfers WHERE tx_id = $1 FOR UPDATE",
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
    let (src, dst): (i64, i64) = (row.get(0), row.get(1));
    // The user accounts in id order, as every writer locks them; the clock
    // is read once they are locked. A writer that held them first (a settle
    // that spent what an expired hold had reserved, a hold placed with it)
    // has committed by then, so a hold it took as expired is expired here
    // too, and is not captured into money that is gone.
    let mut users: Vec<i64> = [src, dst]
        .into_iter()
        .filter(|id| *id != EXTERNAL_ACCOUNT)
        .collect();
    users.sort_unstable();
    let locked = client.query_one(
        &format!(
            "SELECT {NOW_MS}, array_agg(id), array_agg(name), array_agg(overdraft),
                    array_agg(frozen), array_agg(closed)
               FROM (SELECT id, name, overdraft, frozen, closed FROM accounts
                      WHERE id = ANY($1) ORDER BY id FOR UPDATE) AS locked"
        ),
        &[&users],
    )?;
    let now: i64 = locked.get(0);
    let ids: Vec<i64> = locked.get::<_, Option<Vec<i64>>>(1).unwrap_or_default();
    let names: Vec<String> = locked.get::<_, Option<Vec<String>>>(2).unwrap_or_default();
    let overdrafts: Vec<i64> = locked.get::<_, Option<Vec<i64>>>(3).unwrap_or_default();
    let frozen: Vec<bool> = locked.get::<_, Option<Vec<bool>>>(4).unwrap_or_default();
    let closed: Vec<bool> = locked.get::<_, Option<Vec<bool>>>(5).unwrap_or_default();
    let parties = ids
        .into_iter()
        .zip(names)
        .zip(overdrafts.into_iter().zip(frozen).zip(closed))
        .map(|((id, name), ((overdraft, frozen), closed))| {
            (
                id,
                name,
                Policy {
                    overdraft,
                    frozen,
                    closed,
                },
            )
        })
        .collect();
    let hold = HoldRow {
        src,
        dst,
        currency: row.get(5),
        hold_amount,
        status,
        expires_at: row.get(4),
        now,
        parties,
    };
    rules::check_live_hold(tx_id, &hold.status, hold.expires_at, hold.now)?;
    Ok(hold)
}

/// Turns a live hold into a PENDING transfer of `amount` (all by default),
/// unless its source is frozen or its destination closed.
pub(super) fn capture(
    client: &mut Client,
    guard: &mut Guard,
    tx_id: i64,
    amount: Option<i64>,
) -> PgResult<TransferRecord> {
    guard.begin(
        client,
        &["transfers", "accounts", "balances", "events"],
        &["currencies"],
    )?;
    let hold = lock_hold(client, tx_id)?;
    let (src, src_policy) = hold.party(hold.src);
    let (dst, dst_policy) = hold.party(hold.dst);
    rules::check_capture_parties(src, src_policy, dst, dst_policy)?;
    let currency = currency(client, hold.currency)?;
    let captured = rules::captured_amount(hold.hold_amount, amount, &currency)?;
    client.execute(
        &events::recorded(
            EventKind::HoldCaptured,
            "UPDATE transfers SET status = 'PENDING', amount = $2 WHERE tx_id = $1 AND status = 'HELD'
             RETURNING tx_id, $3::bigint AS at",
        ),
        &[&tx_id, &captured, &hold.now],
    )?;
    move_side(
        client,
        hold.src,
        hold.currency,
        -hold.hold_amount,
        captured,
        0,
    )?;
    move_side(client, hold.dst, hold.currency, 0, 0, captured)?;
    let record = transfers::transfer(client, TransferRef::Id(TxId::new(tx_id)))?;
    commit(
        client,
        guard,
        &format!("the capture of hold {tx_id}"),
        "`wallet get-transfer` shows whether it is PENDING",
    )?;
    Ok(record)
}

/// Voids a live hold: its reservation is given back, nothing moves.
pub(super) fn release(
    client: &mut Client,
    guard: &mut Guard,
    tx_id: i64,
) -> PgResult<TransferRecord> {
    guard.begin(
        client,
        &["transfers", "accounts", "balances", "events"],
        &[],
    )?;
    let hold = lock_hold(client, tx_id)?;
    client.execute(
        &events::recorded(
            EventKind::HoldReleased,
            "UPDATE transfers SET status = 'RELEASED', settled_at = $2 WHERE tx_id = $1 AND status = 'HELD'
             RETURNING tx_id, settled_at AS at",
        ),
        &[&tx_id, &hold.now],
    )?;
    move_side(client, hold.src, hold.currency, -hold.hold_amount, 0, 0)?;
    let record = transfers::transfer(client, TransferRef::Id(TxId::new(tx_id)))?;
    commit(
        client,
        guard,
        &format!("the release of hold {tx_id}"),
        "`wallet get-transfer` shows whether it is RELEASED",
    )?;
    Ok(record)
}
