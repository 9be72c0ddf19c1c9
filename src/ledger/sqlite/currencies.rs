//! The ledger's currencies on a file: the list read when it is opened, and
//! `currency add`.

use rusqlite::{Connection, OptionalExtension, params};

use super::error::{SqlResult, commit};
use crate::ledger::clock;
use crate::ledger::rules::currencies::{AddCurrency, add_currency, listed};
use crate::money::{Currencies, Currency, CurrencyId};

/// The schema version that brought `currencies`; a ledger before it has
/// only its default currency, the one `ledger_meta` names.
const SINCE_VERSION: i64 = 8;

/// The ledger's currencies in id order, the default first. An older
/// ledger, read as it is, has its default alone.
pub(super) fn load(conn: &Connection, version: i64, default: &Currency) -> SqlResult<Currencies> {
    if version < SINCE_VERSION {
        return Ok(Currencies::new(default.clone()));
    }
    let mut stmt = conn.prepare_cached("SELECT id, code, scale FROM currencies ORDER BY id")?;
    let rows = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(listed(rows)?)
}

/// `currency add`: a new code takes the next id, with the external
/// account's balance in it at zero, in one transaction; the same code and
/// scale again answers the stored one ([`add_currency`] decides).
pub(super) fn add(conn: &mut Connection, currency: &Currency) -> SqlResult<(CurrencyId, bool)> {
    let tx = super::guard::begin_write(conn)?;
    let stored: Option<(i16, i64)> = tx
        .query_row(
            "SELECT id, scale FROM currencies WHERE code = ?1",
            [&currency.code],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let largest: Option<i16> =
        tx.query_row("SELECT max(id) FROM currencies", [], |row| row.get(0))?;
    let decided = add_currency(
        stored.map(|(id, scale)| (CurrencyId(id), scale)),
        largest.map(CurrencyId),
        currency,
    )?;
    let id = match decided {
        AddCurrency::Replay(id) => return Ok((id, true)),
        AddCurrency::Insert(id) => id,
    };
    let now = clock::now_ms();
    tx.execute(
        "INSERT INTO currencies (id, code, scale, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id.0, currency.code, currency.scale, now],
    )?;
    tx.execute(
        "INSERT INTO balances (account, currency, created_at) VALUES (0, ?1, ?2)",
        params![id.0, now],
    )?;
    commit(
        tx,
        &format!("currency {}", currency.code),
        "`wallet currencies` lists it if it was added",
    )?;
    Ok((id, false))
}
