//! The check each writing transaction on a ledger file makes under the
//! write lock, so that code planted in the file after a process opened it
//! never runs in a transaction of ours.
//!
//! A command checks the whole schema when it opens the file; a process
//! that keeps writing (a `settle --watch` worker, a batch fed slowly
//! through a pipe, a command that waited for the lock) would not see what
//! another connection added since. In a ledger file only a trigger runs
//! code when a row is written (a view takes no write but through an
//! `INSTEAD OF` trigger, and SQLite has no rules or policies), and a
//! schema change needs the write lock this transaction holds, so checking
//! for triggers and views once the lock is taken leaves nothing to slip in
//! before the commit. It reads the schema table's few rows.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::error::{SqlResult, not_a_ledger};
use crate::text::echo;

/// The first trigger or view in the file, which no ledger has.
const PLANTED: &str = "SELECT type, name FROM sqlite_schema
     WHERE type IN ('trigger', 'view') ORDER BY type, name LIMIT 1";

/// Begins a writing transaction (`BEGIN IMMEDIATE`) and refuses it with
/// `not_a_ledger`, before it writes anything, when the file holds a trigger
/// or a view; the caller's error drops it, which rolls it back.
pub(super) fn begin_write(conn: &mut Connection) -> SqlResult<Transaction<'_>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let planted: Option<(String, String)> = tx
        .prepare_cached(PLANTED)?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    if let Some((kind, name)) = planted {
        let path = tx.path().unwrap_or_default().to_string();
        return Err(not_a_ledger(
            Path::new(&path),
            &format!(
                "its schema is not the wallet schema: {} '{}' is not part of the wallet schema",
                echo(&kind),
                echo(&name)
            ),
        )
        .into());
    }
    Ok(tx)
}
