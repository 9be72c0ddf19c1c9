//! The ledger's currencies on PostgreSQL: the list read when it is opened,
//! and `currency add`.

use postgres::Client;

use super::NOW_MS;
use super::commit;
use super::error::PgResult;
use super::guard::Guard;
use crate::ledger::rules::currencies::{AddCurrency, add_currency, listed};
use crate::money::{Currencies, Currency, CurrencyId};

/// The schema version that brought `currencies`; a ledger before it has
/// only its default currency, the one `ledger_meta` names.
const SINCE_VERSION: i64 = 7;

/// The ledger's currencies in id order, the default first. An older
/// ledger, read as it is, has its default alone.
pub(super) fn load(client: &mut Client, version: i64, default: &Currency) -> PgResult<Currencies> {
    if version < SINCE_VERSION {
        return Ok(Currencies::new(default.clone()));
    }
    let rows = client.query("SELECT id, code, scale FROM currencies ORDER BY id", &[])?;
    let rows = rows.iter().map(|row| {
        (
            i64::from(row.get::<_, i16>(0)),
            row.get(1),
            i64::from(row.get::<_, i32>(2)),
        )
    });
    Ok(listed(rows)?)
}

/// `currency add`: a new code takes the next id, with the external
/// account's balance in it at zero, in one transaction; the same code and
/// scale again answers the stored one ([`add_currency`] decides). Adders
/// take turns on the default currency's row, which no `balances` row
/// references, so two at once never draw the same id; the statements
/// after the lock see what the one before committed.
pub(super) fn add(
    client: &mut Client,
    guard: &mut Guard,
    currency: &Currency,
) -> PgResult<(CurrencyId, bool)> {
    guard.begin(client, &["currencies", "balances"], &[])?;
    client.execute(
        "SELECT 1 FROM currencies WHERE id = 0 FOR NO KEY UPDATE",
        &[],
    )?;
    let stored = client
        .query_opt(
            "SELECT id, scale FROM currencies WHERE code = $1",
            &[&currency.code],
        )?
        .map(|row| (CurrencyId(row.get(0)), i64::from(row.get::<_, i32>(1))));
    let largest: Option<i16> = client
        .query_one("SELECT max(id) FROM currencies", &[])?
        .get(0);
    let id = match add_currency(stored, largest.map(CurrencyId), currency)? {
        AddCurrency::Replay(id) => {
            client.batch_execute("ROLLBACK")?;
            return Ok((id, true));
        }
        AddCurrency::Insert(id) => id,
    };
    client.execute(
        &format!(
            "WITH added AS (
                INSERT INTO currencies (id, code, scale, created_at)
                VALUES ($1, $2, $3, {NOW_MS}) RETURNING id, created_at)
             INSERT INTO balances (account, currency, created_at)
             SELECT 0, id, created_at FROM added"
        ),
        &[&id.0, &currency.code, &i32::from(currency.scale)],
    )?;
    commit(
        client,
        guard,
        &format!("currency {}", currency.code),
        "`wallet currencies` lists it if it was added",
    )?;
    Ok((id, false))
}
