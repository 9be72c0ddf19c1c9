//! What opening a ledger on PostgreSQL finds: its schema version, its
//! currency and lanes, its currencies and, for a read, whether its catalog
//! is the one the migrations build.
//!
//! Nearly every open finds a ledger at the latest version, unchanged: that
//! is read in one round trip ([`at_once`]). Anything else (no schema, an
//! older or newer version, a changed catalog, a damaged table) is read
//! again statement by statement, which names what it found.

use postgres::{Client, SimpleQueryMessage};

use super::Gate;
use super::connect::Target;
use super::error::{PgFault, PgResult};
use super::schema;
use crate::error::WalletError;
use crate::money::Currency;

/// What `open` found in the database.
pub(super) struct Found {
    pub(super) version: i64,
    pub(super) meta: Option<(Currency, i32)>,
    /// The `currencies` rows (id, code, scale) in id order, when they were
    /// read with the rest.
    pub(super) currencies: Option<Vec<(i64, String, i64)>>,
}

/// Checks that the schema is a ledger this binary can use, as `gate`
/// allows. A read compares the catalog before any statement reads a table
/// of the ledger, so nothing planted there (a row-security policy's
/// expression) runs first.
pub(super) fn inspect(client: &mut Client, target: &Target, gate: Gate) -> PgResult<Found> {
    if gate != Gate::Report
        && let Some(found) = at_once(client, target, gate)?
    {
        return Ok(found);
    }
    step_by_step(client, target, gate)
}

/// The catalog check of a read, compared on the server with the text of
/// what the migrations build, so that it fails before the statements after
/// it in the same round trip run. The text is sent as a literal: hashing it
/// on the server costs a new connection more (its functions looked up for
/// the first time) than sending it. The failing cast takes the catalog
/// found, so that the planner cannot fold it before the condition is known.
pub(super) fn catalog_check_sql(schema: &str) -> String {
    format!(
        "SELECT CASE WHEN found = {QUOTE}{expected}{QUOTE} THEN 0
                     ELSE ('the catalog differs: ' || length(found))::integer END
           FROM ({catalog}) AS catalog(found)",
        catalog = schema::catalog_text_sql(schema),
        expected = schema::expected_lines().join("\n")
    )
}

/// The dollar quote around the expected catalog, which holds no `$`.
const QUOTE: &str = "$wallet_catalog$";

/// A ledger at the latest version, its meta row and currencies (and for a
/// read, its catalog compared first), in one simple query; `None` when
/// anything is otherwise, which [`step_by_step`] then names.
pub(super) fn at_once(client: &mut Client, target: &Target, gate: Gate) -> PgResult<Option<Found>> {
    let mut sql = String::new();
    if gate == Gate::Read {
        sql.push_str(&catalog_check_sql(&target.schema));
        sql.push(';');
    }
    sql.push_str(
        "SELECT (SELECT max(version) FROM schema_version), currency, scale, lanes
           FROM ledger_meta WHERE id = 1;
         SELECT id, code, scale FROM currencies ORDER BY id",
    );
    let messages = match client.simple_query(&sql) {
        Ok(messages) => messages,
        // The server refused a statement: which one, and why, is for the
        // statement-by-statement read to say.
        Err(err) if err.as_db_error().is_some() => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let results = results(&messages);
    // A read's first result is its catalog check's, which passed.
    let skip = usize::from(gate == Gate::Read);
    let [meta, currencies] = results.get(skip..).unwrap_or_default() else {
        return Ok(None);
    };
    let [row] = meta.as_slice() else {
        return Ok(None);
    };
    let number = |i: usize| row.get(i).and_then(|v| v.parse::<i64>().ok());
    let (Some(version), Some(code), Some(scale), Some(lanes)) =
        (number(0), row.get(1), number(2), number(3))
    else {
        return Ok(None);
    };
    if version != schema::latest_version() {
        return Ok(None);
    }
    let (Ok(scale), Ok(lanes)) = (i32::try_from(scale), i32::try_from(lanes)) else {
        return Ok(None);
    };
    let meta = ledger_meta(code.clone(), scale, lanes)?;
    let mut listed = Vec::with_capacity(currencies.len());
    for row in currencies {
        let (Some(id), Some(code), Some(scale)) = (
            row.first().and_then(|v| v.parse().ok()),
            row.get(1),
            row.get(2).and_then(|v| v.parse().ok()),
        ) else {
            return Ok(None);
        };
        listed.push((id, code.clone(), scale));
    }
    Ok(Some(Found {
        version,
        meta: Some(meta),
        currencies: Some(listed),
    }))
}

/// The rows of each statement of a simple query, in order, each column as
/// text (a NULL as none: such a row is not a ledger's).
fn results(messages: &[SimpleQueryMessage]) -> Vec<Vec<Vec<String>>> {
    let mut out = Vec::new();
    let mut rows = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::Row(row) => {
                let columns: Option<Vec<String>> = (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect();
                rows.push(columns.unwrap_or_default());
            }
            SimpleQueryMessage::CommandComplete(_) => out.push(std::mem::take(&mut rows)),
            _ => {}
        }
    }
    out
}

/// Checks, statement by statement, that the schema is a ledger this binary
/// can use, as `gate` allows, naming what is wrong when it is not.
fn step_by_step(client: &mut Client, target: &Target, gate: Gate) -> PgResult<Found> {
    let schema = &target.schema;
    let not_a_ledger = |why: String| {
        PgFault::Wallet(WalletError::NotALedger {
            ledger: target.shown.clone(),
            why,
        })
    };
    let row = client.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
                to_regclass($2) IS NOT NULL",
        &[schema, &format!("{schema}.schema_version")],
    )?;
    let (exists, versioned): (bool, bool) = (row.get(0), row.get(1));
    if !exists {
        return Err(PgFault::Wallet(WalletError::LedgerNotFound(
            target.shown.clone(),
        )));
    }
    if !versioned {
        return Err(not_a_ledger(format!(
            "schema '{schema}' exists but holds no wallet ledger"
        )));
    }
    let version: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_version", &[])?
        .get(0);
    let version = i64::from(version.unwrap_or(0));
    let latest = schema::latest_version();
    if version > latest {
        return Err(PgFault::Wallet(WalletError::SchemaTooNew {
            ledger: target.shown.clone(),
            found: version,
            known: latest,
        }));
    }
    if version < latest && gate == Gate::Read {
        return Err(PgFault::Wallet(WalletError::UpgradeNeeded {
            ledger: target.shown.clone(),
            found: version,
            latest,
        }));
    }
    // A read is checked here, before its statements. A write is checked
    // in each of its transactions instead, under the locks of the tables
    // it writes (`Guard::begin`): checked here as well, it would pay for
    // the catalog twice.
    if gate == Gate::Read && version == latest {
        let found = schema::catalog(client, schema)?;
        if let Some(first) = schema::differences(&found).into_iter().next() {
            return Err(not_a_ledger(format!(
                "its schema differs from what wallet builds: {first}"
            )));
        }
    }
    let meta = match client.query_opt(
        "SELECT currency, scale, lanes FROM ledger_meta WHERE id = 1",
        &[],
    ) {
        Ok(row) => row,
        // `verify` reports a damaged table by name; a lost server is an
        // error for every command.
        Err(err) if gate == Gate::Report && err.as_db_error().is_some() => None,
        Err(err) => return Err(err.into()),
    };
    let meta = match meta {
        Some(row) => Some(ledger_meta(row.get(0), row.get(1), row.get(2))?),
        None => None,
    };
    Ok(Found {
        version,
        meta,
        currencies: None,
    })
}

/// The ledger's currency and lane count, from its `ledger_meta` row.
fn ledger_meta(code: String, scale: i32, lanes: i32) -> PgResult<(Currency, i32)> {
    let currency = u8::try_from(scale)
        .ok()
        .map(|scale| Currency {
            code: code.clone(),
            scale,
        })
        .ok_or_else(|| {
            PgFault::Wallet(WalletError::Integrity(format!(
                "the ledger's currency ({}, {scale} places) is not one wallet writes",
                crate::text::echo(&code)
            )))
        })?;
    Ok((currency, lanes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_catalog_is_a_dollar_quoted_literal_as_it_stands() {
        let text = schema::expected_lines().join("\n");
        assert!(!text.contains('$'), "a `$` would need another quote");
        assert!(!text.is_empty());
        let sql = catalog_check_sql("wallet");
        assert_eq!(sql.matches(QUOTE).count(), 2);
    }
}
