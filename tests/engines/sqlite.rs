//! SQLite: a ledger file, `wallet.db`, in the test's temp dir.

use std::path::{Path, PathBuf};

use super::{HeldLock, TestEngine, TestLedger, file_bytes};

pub(crate) struct Sqlite;

impl TestEngine for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn available(&self) -> bool {
        true
    }

    fn new_ledger(&self, dir: &Path) -> Box<dyn TestLedger> {
        Box::new(SqliteLedger {
            dir: dir.to_path_buf(),
        })
    }

    /// The file's pages, its schema objects, and the per-user history
    /// table only a ledger file keeps.
    fn storage_checks(&self) -> &'static [&'static str] {
        &["integrity_check", "schema", "postings"]
    }
}

pub(crate) struct SqliteLedger {
    dir: PathBuf,
}

impl SqliteLedger {
    /// A direct connection to the file, as another program would open it.
    pub(crate) fn connect(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).expect("open ledger with rusqlite")
    }
}

/// A transaction holding the file's write lock.
struct Locked(rusqlite::Connection);

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

impl TestLedger for SqliteLedger {
    fn db(&self) -> PathBuf {
        self.dir.join("wallet.db")
    }

    fn exists(&self) -> bool {
        self.db().exists()
    }

    fn tamper(&self, sql: &str) {
        self.connect()
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    fn set_schema_version(&self, version: i64) {
        self.connect()
            .pragma_update(None, "user_version", version)
            .unwrap();
    }

    fn query_text(&self, sql: &str) -> Vec<Option<String>> {
        let conn = self.connect();
        let mut stmt = conn.prepare(sql).unwrap();
        let columns = stmt.column_count();
        stmt.query_row([], |row| {
            (0..columns)
                .map(|i| row.get::<_, Option<String>>(i))
                .collect()
        })
        .unwrap()
    }

    fn hold_write_lock(&self) -> HeldLock {
        let conn = self.connect();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        HeldLock(Box::new(Locked(conn)))
    }

    fn sql_shell(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new("sqlite3");
        cmd.arg(self.db());
        cmd
    }

    fn sql_shell_running(&self, sql: &str) -> std::process::Command {
        let mut cmd = self.sql_shell();
        cmd.arg(sql);
        cmd
    }

    /// The file and its write-ahead log: committed changes may sit in the
    /// log until a checkpoint moves them into the file.
    fn ledger_bytes(&self) -> Vec<u8> {
        let mut bytes = file_bytes(&self.db());
        bytes.extend(file_bytes(&self.dir.join("wallet.db-wal")));
        bytes
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
