//! Ledgers whose schema was changed behind our back: planted triggers and views, altered tables.
//!
//! Every command refuses them untouched, `verify` names what differs, and a
//! planted trigger never runs.

use crate::common::{Sandbox, shapes};

/// Every command that opens an existing ledger, reading or writing.
const COMMANDS: &[&[&str]] = &[
    &["get-user", "alice"],
    &["history", "alice"],
    &["get-transfer", "1"],
    &["deposit", "alice", "1"],
    &["withdraw", "alice", "1"],
    &["transfer", "alice", "mallory", "1"],
    &["settle"],
    &["cancel", "3"],
    &["create-user", "eve", "eve@example.com"],
];

/// alice and mallory funded and settled, and one transfer (3) still PENDING,
/// so a settle would update it.
fn ledger() -> Sandbox {
    let s = Sandbox::new();
    s.funded(&[("alice", "100"), ("mallory", "1")]);
    let pending: shapes::Queued = s.json(&["transfer", "alice", "mallory", "10"]);
    assert_eq!(pending.tx_id, 3);
    s
}

/// Every command fails with `not_a_ledger` naming `why`; the file stays as it was.
fn refused_everywhere(s: &Sandbox, why: &str) {
    let before = s.ledger_bytes();
    for args in COMMANDS {
        let message = s.fails(args, "not_a_ledger", 7);
        assert!(message.contains(why), "{args:?}: {message}");
    }
    assert_eq!(
        before,
        s.ledger_bytes(),
        "a refused ledger is left untouched"
    );
}

/// `verify` fails and its `schema` check lists `problem` among what differs.
fn verify_names(s: &Sandbox, problem: &str) -> shapes::VerifyError {
    let before = s.ledger_bytes();
    let error = s.verify_fails();
    let schema = error
        .report
        .checks
        .iter()
        .find(|c| c.name == "schema")
        .unwrap();
    assert!(!schema.ok);
    assert!(
        schema.problems.iter().any(|p| p.message == problem),
        "{schema:?}"
    );
    assert_eq!(before, s.ledger_bytes(), "verify writes nothing");
    error
}

fn scalar(s: &Sandbox, sql: &str) -> i64 {
    s.sqlite().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn a_planted_trigger_is_refused_and_never_fires() {
    let s = ledger();
    s.sqlite()
        .execute_batch(
            "CREATE TRIGGER skim AFTER INSERT ON transfers BEGIN
                 UPDATE accounts SET balance = balance + NEW.amount WHERE name = 'mallory';
             END;
             CREATE TRIGGER ghost AFTER UPDATE OF status ON transfers BEGIN
                 INSERT INTO accounts (name, email, created_at) VALUES ('ghost', 'g@example.com', 0);
             END;
             CREATE TRIGGER wipe BEFORE UPDATE ON accounts BEGIN
                 DELETE FROM transfers;
             END;",
        )
        .unwrap();
    refused_everywhere(&s, "trigger 'ghost' is not part of the wallet schema");
    verify_names(&s, "trigger 'skim' is not part of the wallet schema");
    verify_names(&s, "trigger 'wipe' is not part of the wallet schema");

    // Had any fired, mallory would be richer, a ghost would exist, or transfers would be gone.
    assert_eq!(
        scalar(&s, "SELECT balance FROM accounts WHERE name = 'mallory'"),
        100
    );
    assert_eq!(
        scalar(&s, "SELECT count(*) FROM accounts WHERE name = 'ghost'"),
        0
    );
    assert_eq!(scalar(&s, "SELECT count(*) FROM transfers"), 3);
    assert_eq!(
        scalar(
            &s,
            "SELECT count(*) FROM transfers WHERE status = 'PENDING'"
        ),
        1
    );
}

fn a_planted_view_or_table_is_refused_and_reported() {
    let s = ledger();
    s.sqlite()
        .execute_batch("CREATE VIEW rich AS SELECT name, balance FROM accounts WHERE balance > 0")
        .unwrap();
    refused_everywhere(&s, "view 'rich' is not part of the wallet schema");
    verify_names(&s, "view 'rich' is not part of the wallet schema");

    let s = ledger();
    s.sqlite()
        .execute_batch("CREATE TABLE audit_log (line TEXT)")
        .unwrap();
    refused_everywhere(&s, "table 'audit_log' is not part of the wallet schema");
    verify_names(&s, "table 'audit_log' is not part of the wallet schema");
}

fn a_table_with_an_added_column_is_refused_and_reported() {
    let s = ledger();
    s.sqlite()
        .execute_batch("ALTER TABLE accounts ADD COLUMN note TEXT")
        .unwrap();
    let differs = "the definition of table 'accounts' differs from the wallet schema";
    refused_everywhere(&s, differs);
    let error = verify_names(&s, differs);
    // The data itself is still sound; only the schema check fails.
    let failed = error.report.failed();
    assert_eq!(failed, ["schema"]);
}

fn a_dropped_index_is_refused_and_reported() {
    let s = ledger();
    s.sqlite()
        .execute_batch("DROP INDEX transfers_captured")
        .unwrap();
    let missing = "'transfers_captured' of the wallet schema is missing";
    refused_everywhere(&s, missing);
    verify_names(&s, missing);
}

fn a_check_dropped_through_writable_schema_is_refused_and_its_damage_reported() {
    let s = ledger();
    {
        let conn = s.sqlite();
        conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
        let changed = conn
            .execute(
                "UPDATE sqlite_schema
                 SET sql = replace(sql, ' CHECK (pending_out >= 0)', '')
                 WHERE name = 'accounts'",
                [],
            )
            .unwrap();
        assert_eq!(changed, 1);
        conn.execute_batch("PRAGMA writable_schema = OFF").unwrap();
    }
    let sql: String = s
        .sqlite()
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'accounts'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!sql.contains("pending_out >= 0"), "{sql}");
    // With the CHECK gone, another program can owe a user a negative sum.
    s.sqlite()
        .execute(
            "UPDATE accounts SET pending_out = -500 WHERE name = 'alice'",
            [],
        )
        .unwrap();

    refused_everywhere(
        &s,
        "the definition of table 'accounts' differs from the wallet schema",
    );
    let error = verify_names(
        &s,
        "the definition of table 'accounts' differs from the wallet schema",
    );
    let failed = error.report.failed();
    assert_eq!(failed, ["schema", "pending_totals"]);
}

fn hostile_names_in_a_tampered_file_are_quoted_safely() {
    let s = ledger();
    s.sqlite()
        .execute_batch(
            "CREATE TRIGGER \"x\x1b[2J\ny\" AFTER INSERT ON transfers BEGIN SELECT 1; END;",
        )
        .unwrap();
    for args in [&["get-user", "alice"][..], &["verify"]] {
        let out = s.cmd(args).output().unwrap();
        assert_eq!(out.status.code(), Some(7), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains("trigger 'x\\u{1b}[2J\\ny'"), "{stderr}");
        assert!(!out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b));
    }
}

engine_tests! {
    both: [],
    sqlite: [
        a_planted_trigger_is_refused_and_never_fires,
        a_planted_view_or_table_is_refused_and_reported,
        a_table_with_an_added_column_is_refused_and_reported,
        a_dropped_index_is_refused_and_reported,
        a_check_dropped_through_writable_schema_is_refused_and_its_damage_reported,
        hostile_names_in_a_tampered_file_are_quoted_safely,
    ],
}
