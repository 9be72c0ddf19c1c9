//! Balances in currencies other than the default, which live in
//! `balances` (the default's live in `accounts`): read for a chunk being
//! queued and for a settle batch alike. A user's row is made by the first
//! queued line that reserves on it (`queue::move_sums`).

use postgres::{Client, ToStatement};

use super::error::PgResult;
use crate::ledger::model::BalanceKey;
use crate::money::CurrencyId;

/// A row of `balances` with its account's `frozen`, which covers every
/// currency.
pub(super) struct BalanceRow {
    pub balance: i64,
    pub pending_in: i64,
    pub pending_out: i64,
    pub held: i64,
    pub overdraft: i64,
    pub frozen: bool,
}

/// The read of [`read`], for a caller that runs it prepared.
pub(super) const READ: &str = "
SELECT b.account, b.currency, b.balance, b.pending_in, b.pending_out, b.held,
       b.overdraft, a.frozen
  FROM balances b JOIN accounts a ON a.id = b.account
 WHERE (b.account, b.currency) IN (SELECT * FROM unnest($1::bigint[], $2::smallint[]))";

/// Reads the rows of `keys` that exist, by `statement`: [`READ`], as text
/// or prepared.
pub(super) fn read<T: ?Sized + ToStatement>(
    client: &mut Client,
    statement: &T,
    keys: &[BalanceKey],
) -> PgResult<Vec<(BalanceKey, BalanceRow)>> {
    let ids: Vec<i64> = keys.iter().map(|k| k.account).collect();
    let currencies: Vec<i16> = keys.iter().map(|k| k.currency.0).collect();
    let rows = client.query(statement, &[&ids, &currencies])?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                BalanceKey::new(row.get(0), CurrencyId(row.get::<_, i16>(1))),
                BalanceRow {
                    balance: row.get(2),
                    pending_in: row.get(3),
                    pending_out: row.get(4),
                    held: row.get(5),
                    overdraft: row.get(6),
                    frozen: row.get(7),
                },
            )
        })
        .collect())
}
