//! The statements a connection runs batch after batch (a settle worker's),
//! parsed and described once per connection instead of once per run: an
//! unnamed statement costs a round trip and a parse each time, which on a
//! batch of a thousand transfers is a few per cent of its time.
//!
//! A prepared statement outlives the transactions it runs in, rolled back
//! or not, and the server plans it again when what it reads changes; the
//! schema guard still checks every transaction that runs one.

use std::collections::HashMap;

use postgres::{Client, Statement};

use super::error::PgResult;

/// One connection's prepared statements, by their text.
#[derive(Default)]
pub(super) struct Prepared(HashMap<String, Statement>);

impl Prepared {
    /// The statement for `sql`, prepared on `client` the first time.
    pub(super) fn get(&mut self, client: &mut Client, sql: &str) -> PgResult<Statement> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.0.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}
