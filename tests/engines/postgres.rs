//! PostgreSQL: a schema of its own per ledger, in the `wallet_tests`
//! database of the server the tests start ([`super::pgserver`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::{HeldLock, TestEngine, TestLedger, pgserver};

pub(crate) struct Postgres;

impl TestEngine for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn available(&self) -> bool {
        pgserver::available()
    }

    fn new_ledger(&self, _dir: &Path) -> Box<dyn TestLedger> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Started here, not on a first command: a test that cannot have a
        // server stops before it runs anything.
        pgserver::shared();
        Box::new(PostgresLedger {
            schema: format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        })
    }

    /// The server's own check of the ledger's indexes.
    fn storage_checks(&self) -> &'static [&'static str] {
        &["amcheck"]
    }
}

pub(crate) struct PostgresLedger {
    schema: String,
}

impl PostgresLedger {
    /// A direct connection to the ledger's database, with `search_path` on
    /// its schema.
    pub(crate) fn connect(&self) -> postgres::Client {
        let mut client = pgserver::shared().connect("wallet_tests");
        client
            .batch_execute(&format!("SET search_path = {}", self.schema))
            .unwrap();
        client
    }
}

/// A transaction holding the tables' write lock.
struct Locked(postgres::Client);

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = self.0.batch_execute("ROLLBACK");
    }
}

impl TestLedger for PostgresLedger {
    fn db(&self) -> PathBuf {
        PathBuf::from(pgserver::shared().url("wallet_tests", &self.schema))
    }

    fn exists(&self) -> bool {
        pgserver::shared()
            .connect("wallet_tests")
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                &[&self.schema],
            )
            .map(|row| row.get::<_, i64>(0) == 1)
            .unwrap()
    }

    fn tamper(&self, sql: &str) {
        self.connect()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    fn set_schema_version(&self, version: i64) {
        self.tamper(&format!(
            "INSERT INTO schema_version (version, applied_at) VALUES ({version}, 0)"
        ));
    }

    fn query_text(&self, sql: &str) -> Vec<Option<String>> {
        let row = self.connect().query_one(sql, &[]).unwrap();
        (0..row.len())
            .map(|i| row.get::<_, Option<String>>(i))
            .collect()
    }

    fn hold_write_lock(&self) -> HeldLock {
        let mut client = self.connect();
        client
            .batch_execute("BEGIN; LOCK TABLE accounts, transfers IN EXCLUSIVE MODE")
            .unwrap();
        HeldLock(Box::new(Locked(client)))
    }

    /// `psql` with `search_path` on the ledger's schema, printing bare rows
    /// with `|` between columns, as `sqlite3` does.
    fn sql_shell(&self) -> std::process::Command {
        let server = pgserver::shared();
        let mut cmd = std::process::Command::new(server.psql_binary());
        cmd.args([
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "postgres",
            "-d",
            "wallet_tests",
            "-h",
        ])
        .arg(&server.dir)
        .env("PGOPTIONS", format!("-c search_path={}", self.schema));
        cmd
    }

    fn sql_shell_running(&self, sql: &str) -> std::process::Command {
        let mut cmd = self.sql_shell();
        cmd.arg("-c").arg(sql);
        cmd
    }

    /// Every row of every table of the schema. Sequences are left out: the
    /// server never rolls them back, and a refused command may have drawn
    /// from one.
    fn ledger_bytes(&self) -> Vec<u8> {
        if !self.exists() {
            return Vec::new();
        }
        let mut client = self.connect();
        let mut dump = String::new();
        for table in [
            "ledger_meta",
            "schema_version",
            "lanes",
            "accounts",
            "transfers",
            "currencies",
            "balances",
        ] {
            // A ledger of a schema before currencies lacks the last two.
            let present: bool = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
                .unwrap()
                .get(0);
            if !present {
                continue;
            }
            let row = client
                .query_one(
                    &format!(
                        "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM {table} t"
                    ),
                    &[],
                )
                .unwrap();
            dump.push_str(table);
            dump.push('\n');
            dump.push_str(&row.get::<_, String>(0));
            dump.push('\n');
        }
        dump.into_bytes()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
