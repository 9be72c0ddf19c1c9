//! Helpers for driving the real `wallet` binary against a ledger in a temp dir.

use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use serde::de::DeserializeOwned;
use tempfile::TempDir;

pub(crate) use crate::engines::HeldLock;
use crate::engines::TestEngine;
use crate::engines::TestLedger;

thread_local! {
    static ENGINE: std::cell::Cell<Option<&'static dyn TestEngine>> = const { std::cell::Cell::new(None) };
}

/// Runs one test with the engine called `name` (in `engines::ALL`) as the
/// engine of its sandboxes; a test on an engine that cannot run here is
/// skipped, with a note (unless `CI=true`), and the tests beside it still
/// run.
pub(crate) fn run_on(name: &str, test: fn()) {
    let engine = crate::engines::named(name);
    if !engine.available() {
        return;
    }
    ENGINE.with(|e| e.set(Some(engine)));
    test();
}

/// The engine of the running test, set by its `engine_tests!` wrapper.
pub(crate) fn engine() -> &'static dyn TestEngine {
    ENGINE.with(|e| e.get()).expect(
        "no engine set: a CLI test is a plain fn listed in its file's engine_tests!, not a #[test]",
    )
}

/// A temporary directory (the working directory of every run), and one
/// ledger of the test's engine.
pub(crate) struct Sandbox {
    pub dir: TempDir,
    ledger: Box<dyn TestLedger>,
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = engine().new_ledger(dir.path());
        Self { dir, ledger }
    }

    /// The ledger as `--db` names it: the file's path, or the server's URL.
    pub(crate) fn db(&self) -> PathBuf {
        self.ledger.db()
    }

    /// Whether a ledger exists at [`Sandbox::db`].
    pub(crate) fn ledger_exists(&self) -> bool {
        self.ledger.exists()
    }

    /// A direct connection to the sandbox's database on the test server,
    /// with `search_path` on its ledger's schema.
    pub(crate) fn postgres(&self) -> postgres::Client {
        self.ledger
            .as_any()
            .downcast_ref::<crate::engines::postgres::PostgresLedger>()
            .expect("a PostgreSQL sandbox")
            .connect()
    }

    /// `wallet --db <sandbox ledger> ARGS…` as a plain process, for spawning.
    pub(crate) fn process(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wallet"));
        cmd.current_dir(self.dir.path())
            .env_remove("WALLET_DB")
            .env_remove("WALLET_LOCK_TIMEOUT")
            .env("NO_COLOR", "1")
            .arg("--db")
            .arg(self.db())
            .args(args);
        cmd
    }

    /// `wallet --db <sandbox ledger> ARGS…`, not yet run.
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        Command::from_std(self.process(args))
    }

    /// Runs and asserts success, returning stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("run wallet");
        assert!(
            out.status.success(),
            "wallet {args:?} failed with {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs with `--json`, asserts success, and parses stdout as `T`.
    pub(crate) fn json<T: DeserializeOwned>(&self, args: &[&str]) -> T {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let stdout = self.ok(&with_json);
        assert!(stdout.ends_with('\n'), "JSON output is newline-terminated");
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("wallet {args:?} printed {stdout:?}: {e}"))
    }

    /// Runs with `--json`, asserts it fails with `code` and `exit`, stdout
    /// empty, and returns the error message.
    pub(crate) fn fails(&self, args: &[&str], code: &str, exit: i32) -> String {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let out = self.cmd(&with_json).output().expect("run wallet");
        assert_error(&out, code, exit, args)
    }

    /// Creates the users alice and bob, with nothing in their accounts.
    pub(crate) fn alice_and_bob(&self) {
        self.ok(&["create-user", "alice", "alice@example.com"]);
        self.ok(&["create-user", "bob", "bob@example.com"]);
    }

    /// One figure of `get-user --json` (`balance`, `pending_in`, …).
    pub(crate) fn figure(&self, user: &str, field: &str) -> String {
        let doc: serde_json::Value =
            serde_json::from_str(&self.ok(&["--json", "get-user", user])).unwrap();
        doc[field].as_str().unwrap().to_string()
    }

    /// Creates users and funds them with settled deposits.
    pub(crate) fn funded(&self, users: &[(&str, &str)]) {
        for (name, amount) in users {
            self.ok(&["create-user", name, &format!("{name}@example.com")]);
            self.ok(&["deposit", name, amount]);
        }
        self.ok(&["settle"]);
    }

    /// Runs `verify --json` expecting it to find broken invariants: exit 7,
    /// code `integrity`, stdout empty, the report inside the error.
    pub(crate) fn verify_fails(&self) -> shapes::VerifyError {
        let out = self
            .cmd(&["--json", "verify"])
            .output()
            .expect("run wallet");
        assert_eq!(
            out.status.code(),
            Some(7),
            "verify: stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "stdout stays empty on failure");
        let doc: shapes::VerifyFailure = serde_json::from_slice(&out.stderr)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(doc.error.code, "integrity");
        assert!(!doc.error.report.ok);
        doc.error
    }

    /// Runs SQL on the ledger the way another program would, to damage or
    /// tamper with it: the same SQL works on every engine, whose tables and
    /// columns have the same names.
    pub(crate) fn tamper(&self, sql: &str) {
        self.ledger.tamper(sql);
    }

    /// Marks the ledger as written by a wallet with schema `version`.
    pub(crate) fn set_schema_version(&self, version: i64) {
        self.ledger.set_schema_version(version);
    }

    /// The first row of a query on the ledger, each column as text
    /// (written to return text on every engine).
    pub(crate) fn query_text(&self, sql: &str) -> Vec<Option<String>> {
        self.ledger.query_text(sql)
    }

    /// Holds the write lock of the ledger, as another writer in the middle
    /// of a transaction would, until dropped.
    pub(crate) fn hold_write_lock(&self) -> HeldLock {
        self.ledger.hold_write_lock()
    }

    /// The engine's SQL shell on the ledger (`sqlite3 FILE`, or `psql` with
    /// `search_path` on the ledger's schema), taking SQL on stdin.
    pub(crate) fn sql_shell(&self) -> std::process::Command {
        self.ledger.sql_shell()
    }

    /// Runs one SQL statement in the engine's shell; returns its output, one
    /// row a line with `|` between columns on every engine.
    pub(crate) fn sql_shell_running(&self, sql: &str) -> String {
        let out = self
            .ledger
            .sql_shell_running(sql)
            .output()
            .expect("run the SQL shell");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// A direct connection to the sandbox ledger, for building damaged or
    /// tampered files the way another program would.
    pub(crate) fn sqlite(&self) -> rusqlite::Connection {
        self.ledger
            .as_any()
            .downcast_ref::<crate::engines::sqlite::SqliteLedger>()
            .expect("a SQLite sandbox")
            .connect()
    }

    /// Scribbles over the last 1,000 bytes of the root page of the table
    /// or index `name` (where its cells are), as a failing disk might, and
    /// returns the file's bytes as left. A ledger file's only: a server's
    /// ledger has no pages to damage.
    pub(crate) fn damage_root_page(&self, name: &str) -> Vec<u8> {
        let (root, page_size): (i64, i64) = {
            let conn = self.sqlite();
            let root = conn
                .query_row(
                    "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .unwrap();
            let page_size = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap();
            (root, page_size)
        };
        let mut bytes = self.ledger_bytes();
        let start = usize::try_from(root * page_size - 1000).unwrap();
        bytes[start..start + 1000].fill(0xff);
        std::fs::write(self.db(), &bytes).unwrap();
        bytes
    }

    /// Everything the ledger holds, to compare before and after a command:
    /// the file and its write-ahead log, or every row of every table of the
    /// schema.
    pub(crate) fn ledger_bytes(&self) -> Vec<u8> {
        self.ledger.ledger_bytes()
    }
}

pub(crate) use crate::engines::file_bytes;

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorDoc {
    pub error: ErrorBody,
}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// A `--json transfer --batch` run's answer: each line's result as JSON,
/// the exit status and stderr.
pub(crate) fn batch_results(out: &Output) -> (Vec<serde_json::Value>, Option<i32>, String) {
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (
        lines,
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
/// Checks a failed `--json` run: exit status, stdout empty, one JSON error on stderr.
pub(crate) fn assert_error(out: &Output, code: &str, exit: i32, args: &[&str]) -> String {
    assert_eq!(
        out.status.code(),
        Some(exit),
        "wallet {args:?}: stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "stdout not empty for {args:?}");
    let doc: ErrorDoc = serde_json::from_slice(&out.stderr).unwrap_or_else(|e| {
        panic!(
            "stderr of {args:?} is not one JSON error: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        doc.error.code, code,
        "wallet {args:?}: {}",
        doc.error.message
    );
    assert!(!doc.error.message.is_empty());
    doc.error.message
}

/// The contract's JSON documents, strict so that any drift fails a test.
pub(crate) mod shapes {
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Init {
        pub status: String,
        pub currency: String,
        pub scale: u8,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct UserCreated {
        pub status: String,
        pub name: String,
        pub email: String,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct User {
        pub name: String,
        pub email: String,
        pub balance: String,
        pub available: String,
        pub pending_in: String,
        pub pending_out: String,
        pub held: String,
        pub currency: String,
        pub overdraft: String,
        pub frozen: bool,
        pub closed: bool,
        /// `get-user` only: the figures in every currency the user has, by code.
        #[serde(default)]
        pub balances: Option<std::collections::BTreeMap<String, Balance>>,
    }

    /// A user's figures in one currency, in `get-user`'s `balances`.
    #[derive(Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Balance {
        pub balance: String,
        pub available: String,
        pub pending_in: String,
        pub pending_out: String,
        pub held: String,
        pub overdraft: String,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Queued {
        pub tx_id: i64,
        pub status: String,
        pub replayed: bool,
        /// An exchange's second leg; absent for anything else.
        #[serde(default)]
        pub pair_tx_id: Option<i64>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Settled {
        pub processed: u64,
        pub completed: u64,
        pub failed: u64,
        pub remaining: u64,
        pub expired: u64,
    }

    /// `verify`'s report, on stdout on success and under `error.report` on failure.
    #[derive(Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct VerifyReport {
        pub ok: bool,
        pub checks: Vec<Check>,
    }

    impl VerifyReport {
        /// The names of the checks that failed, in report order.
        pub(crate) fn failed(&self) -> Vec<&str> {
            self.checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.name.as_str())
                .collect()
        }
    }

    #[derive(Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Check {
        pub name: String,
        pub ok: bool,
        pub detail: String,
        pub problem_count: u64,
        pub problems: Vec<Problem>,
    }

    #[derive(Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Problem {
        pub user: Option<String>,
        pub tx_id: Option<i64>,
        pub message: String,
    }

    /// A failed `verify --json`: the error with its report.
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct VerifyFailure {
        pub error: VerifyError,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct VerifyError {
        pub code: String,
        pub message: String,
        pub report: VerifyReport,
    }

    #[derive(Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Transfer {
        pub tx_id: i64,
        pub src: Option<String>,
        pub dst: Option<String>,
        pub amount: String,
        pub memo: Option<String>,
        pub key: Option<String>,
        pub status: String,
        pub reason: Option<String>,
        pub created_at: String,
        pub settled_at: Option<String>,
        pub hold_amount: Option<String>,
        pub expires_at: Option<String>,
        pub refund_of: Option<i64>,
        pub refunded: String,
        pub refunds: Vec<i64>,
        pub refund_details: Vec<RefundDetail>,
        #[serde(default)]
        pub balance_after: Option<String>,
        /// The code of the currency it moves.
        pub currency: String,
        /// For an exchange leg: the other leg.
        pub pair_tx_id: Option<i64>,
    }

    /// One refund as its original lists it.
    #[derive(Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct RefundDetail {
        pub tx_id: i64,
        pub amount: String,
        pub status: String,
    }
}

/// SplitMix64: small, seedable, good enough to pick amounts and users.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seed of a randomised test: `WALLET_BANK_SEED`, else the clock.
pub(crate) fn seed() -> u64 {
    match std::env::var("WALLET_BANK_SEED") {
        Ok(text) => text.trim().parse().expect("WALLET_BANK_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// The arm of a test's `match` on [`engine`]`().name()` for an engine it
/// has no case for: a test that differs per engine names each one, and an
/// engine added to `engines::ALL` is given its case there.
pub(crate) fn no_case(engine: &str) -> ! {
    panic!("this test has no case for the engine {engine}")
}

/// The text of [`SQLITE_TO_VERSION_9`], for the steps further back to
/// start with.
macro_rules! sqlite_to_version_9 {
    () => {
        "DROP TABLE queue_mark;
DROP INDEX transfers_captured;
CREATE INDEX transfers_pending ON transfers (tx_id) WHERE status = 'PENDING';
PRAGMA user_version = 9;"
    };
}

/// SQL that takes a ledger file of the current schema (version 10) back to
/// what version 9 built, text for text: the queue read through an index of
/// its PENDING rows, with no mark.
pub(crate) const SQLITE_TO_VERSION_9: &str = sqlite_to_version_9!();

/// The text of [`SQLITE_TO_VERSION_8`], for the steps further back to
/// start with.
macro_rules! sqlite_to_version_8 {
    () => {
        concat!(
            sqlite_to_version_9!(),
            "
DROP INDEX transfers_pending;
CREATE INDEX transfers_pending ON transfers (status) WHERE status = 'PENDING';
PRAGMA user_version = 8;"
        )
    };
}

/// SQL that takes a ledger file of the current schema (version 10) back to
/// what version 8 built, text for text: the queue's index keyed by status.
pub(crate) const SQLITE_TO_VERSION_8: &str = sqlite_to_version_8!();

/// The text of [`SQLITE_TO_VERSION_7`], for the steps further back to
/// start with.
macro_rules! sqlite_to_version_7 {
    () => {
        concat!(
            sqlite_to_version_8!(),
            "
PRAGMA foreign_keys = OFF;
DROP TABLE balances;
DROP TABLE currencies;
ALTER TABLE transfers DROP COLUMN pair_tx_id;
ALTER TABLE transfers DROP COLUMN currency;
ALTER TABLE policy_changes DROP COLUMN currency;
ALTER TABLE chain_links DROP COLUMN currencies_to;
PRAGMA foreign_keys = ON;
PRAGMA user_version = 7;"
        )
    };
}

/// SQL that takes a ledger file of the current schema (version 10) back to
/// what version 7 built, text for text: one currency, no exchange pairs.
/// Each added column carries only its own check, so it can be dropped.
pub(crate) const SQLITE_TO_VERSION_7: &str = sqlite_to_version_7!();

/// SQL that takes a ledger file of the current schema back to what version
/// 6 built, text for text: no account policies, no change feed. The
/// accounts table is built again as versions 1 and 4 left it.
pub(crate) const SQLITE_TO_VERSION_6: &str = concat!(
    sqlite_to_version_7!(),
    "
PRAGMA foreign_keys = OFF;
PRAGMA legacy_alter_table = ON;
DROP TABLE events;
DROP TABLE policy_changes;
ALTER TABLE chain_links DROP COLUMN changes_to;
ALTER TABLE accounts RENAME TO accounts_v7;
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    name        TEXT,
    email       TEXT,
    balance     INTEGER NOT NULL DEFAULT 0,
    pending_in  INTEGER NOT NULL DEFAULT 0 CHECK (pending_in >= 0),
    pending_out INTEGER NOT NULL DEFAULT 0 CHECK (pending_out >= 0),
    created_at  INTEGER NOT NULL,
    CHECK ((id = 0) = (name IS NULL)),
    CHECK (id = 0 OR balance >= 0)
) STRICT;
ALTER TABLE accounts ADD COLUMN held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0);
INSERT INTO accounts SELECT id, name, email, balance, pending_in, pending_out, created_at, held
    FROM accounts_v7;
DROP TABLE accounts_v7;
CREATE UNIQUE INDEX accounts_by_name ON accounts (name COLLATE NOCASE);
PRAGMA legacy_alter_table = OFF;
PRAGMA foreign_keys = ON;
PRAGMA user_version = 6;"
);

/// The text of [`POSTGRES_TO_VERSION_8`], for the steps further back to
/// start with.
macro_rules! postgres_to_version_8 {
    () => {
        "UPDATE events SET event_ids = ARRAY(
        SELECT event_id - cardinality(tx_ids) + n FROM generate_series(1, cardinality(tx_ids)) AS n)
  WHERE tx_ids IS NOT NULL AND event_ids IS NULL;
ALTER TABLE events DROP CONSTRAINT events_about_check;
ALTER TABLE events ADD CONSTRAINT events_about_check CHECK (
    num_nonnulls(tx_id, change_id, tx_ids) = 1
    AND (tx_ids IS NULL) = (event_ids IS NULL)
    AND cardinality(tx_ids) = cardinality(event_ids)
    AND (tx_ids IS NULL OR kind = 0)
);
ALTER TABLE events ALTER COLUMN event_id SET INCREMENT BY 1 SET CACHE 1000;
ALTER TABLE events ALTER COLUMN tx_ids SET STORAGE EXTENDED,
                   ALTER COLUMN event_ids SET STORAGE EXTENDED;
SELECT setval(pg_get_serial_sequence('events', 'event_id'), (SELECT max(event_id) FROM events));
DELETE FROM schema_version WHERE version >= 9;"
    };
}

/// SQL that takes a PostgreSQL ledger of the current schema (version 9)
/// back to what version 8 built: a settle batch's event ids listed in its
/// row, drawn one by one from a sequence that steps by one.
pub(crate) const POSTGRES_TO_VERSION_8: &str = postgres_to_version_8!();

/// The text of [`POSTGRES_TO_VERSION_7`], for the steps further back to
/// start with.
macro_rules! postgres_to_version_7 {
    () => {
        concat!(
            postgres_to_version_8!(),
            "
DROP INDEX transfers_captured;
DELETE FROM schema_version WHERE version >= 8;"
        )
    };
}

/// SQL that takes a PostgreSQL ledger of the current schema back to what
/// version 7 built: no index of captured holds.
pub(crate) const POSTGRES_TO_VERSION_7: &str = postgres_to_version_7!();

/// The text of [`POSTGRES_TO_VERSION_6`], for the steps further back to
/// start with.
macro_rules! postgres_to_version_6 {
    () => {
        concat!(
            postgres_to_version_7!(),
            "
DROP TABLE balances;
DROP TABLE currencies;
ALTER TABLE transfers DROP CONSTRAINT transfers_pair_check;
ALTER TABLE transfers DROP COLUMN pair_tx_id, DROP COLUMN currency;
ALTER TABLE policy_changes DROP COLUMN currency;
ALTER TABLE chain_links DROP COLUMN currencies_to;
DELETE FROM schema_version WHERE version >= 7;"
        )
    };
}

/// SQL that takes a PostgreSQL ledger of the current schema back to what
/// version 6 built: one currency, no exchange pairs.
pub(crate) const POSTGRES_TO_VERSION_6: &str = postgres_to_version_6!();

/// SQL that takes a PostgreSQL ledger of the current schema back to what
/// version 4 built.
pub(crate) const POSTGRES_TO_VERSION_4: &str = concat!(
    postgres_to_version_6!(),
    "
DROP TABLE events;
DROP TABLE policy_changes;
ALTER TABLE chain_links DROP COLUMN changes_to;
ALTER TABLE accounts DROP COLUMN overdraft, DROP COLUMN frozen, DROP COLUMN closed;
ALTER TABLE accounts ADD CONSTRAINT accounts_check1 CHECK (id = 0 OR balance >= 0);
DELETE FROM schema_version WHERE version >= 5;"
);

/// `hledger -f JOURNAL ARGS…`, asserting success; its stdout.
pub(crate) fn hledger(journal: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("hledger")
        .arg("-f")
        .arg(journal)
        .args(args)
        .output()
        .expect("hledger is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "hledger {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(journal).unwrap()
    );
    out.stdout
}
