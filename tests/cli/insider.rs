//! The hash chain against an insider with write access to the ledger, on
//! either engine: edits that keep the books consistent and reach past what
//! the links' hashes covered before (a side table emptied, a row below the
//! first link, who an account is).

use serde_json::Value;

use crate::common::{POSTGRES_TO_VERSION_4, SQLITE_TO_VERSION_6, Sandbox, engine};
use crate::old_links::{Sealed, first_link_hash};

/// The smallest `tx_id`, which lies below the first link's range.
const SMALLEST: &str = "-9223372036854775808";

/// alice paid bob 30.00 of a 100.00 deposit; mallory has an account too;
/// everything settled and sealed.
fn sealed() -> Sandbox {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["create-user", "mallory", "mallory@example.com"]);
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["transfer", "alice", "bob", "30", "--memo", "rent"]);
    s.ok(&["settle"]);
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
    s
}

fn on_postgres() -> bool {
    engine().name() == "postgres"
}

/// The chain's head as `verify --head` prints it, which a careful operator
/// keeps outside the ledger.
fn head(s: &Sandbox) -> String {
    let doc: Value = s.json(&["verify", "--head"]);
    assert_eq!(doc["ok"], true, "{doc}");
    doc["head"]["hash"].as_str().unwrap().to_string()
}

/// Runs verify, which must fail on the chain (other checks may fail too);
/// returns the chain's problems.
fn the_chain_fails(s: &Sandbox) -> Vec<String> {
    let failure = s.verify_fails();
    assert!(
        failure.report.failed().contains(&"chain"),
        "{:?}",
        failure.report
    );
    failure
        .report
        .checks
        .iter()
        .find(|c| c.name == "chain")
        .unwrap()
        .problems
        .iter()
        .map(|p| p.message.clone())
        .collect()
}

/// `verify --expect-head` with a head recorded before the edit fails too.
fn the_recorded_head_fails(s: &Sandbox, head: &str) {
    let out = s
        .cmd(&["--json", "verify", "--expect-head", head])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Empties whatever table the chain keeps beside its links to remember
/// which transfers it still owes a seal (a ledger before the chain read
/// that from its links kept one).
fn empty_side_tables(s: &Sandbox) {
    let found = if on_postgres() {
        s.query_text("SELECT (to_regclass('chain_open') IS NOT NULL)::text")
    } else {
        s.query_text(
            "SELECT CAST(count(*) > 0 AS TEXT) FROM sqlite_schema WHERE name = 'chain_open'",
        )
    };
    if matches!(found[0].as_deref(), Some("true" | "1")) {
        s.tamper("DELETE FROM chain_open");
    }
}

/// Turns a COMPLETED transfer into a FAILED one, with both balances and the
/// figures recorded after it made to agree.
fn flip_to_failed(s: &Sandbox, tx_id: &str) {
    let amount = format!("(SELECT amount FROM transfers WHERE tx_id = {tx_id})");
    let mut sql = format!(
        "UPDATE accounts SET balance = balance + {amount}
             WHERE id = (SELECT src FROM transfers WHERE tx_id = {tx_id});
         UPDATE accounts SET balance = balance - {amount}
             WHERE id = (SELECT dst FROM transfers WHERE tx_id = {tx_id});"
    );
    if on_postgres() {
        sql.push_str(&format!(
            "UPDATE transfers SET src_balance = src_balance + amount,
                 dst_balance = dst_balance - amount WHERE tx_id = {tx_id};"
        ));
    } else {
        sql.push_str(&format!(
            "UPDATE postings SET balance_after = NULL WHERE tx_id = {tx_id};"
        ));
    }
    sql.push_str(&format!(
        "UPDATE transfers SET status = 'FAILED', reason = 'insufficient_funds' WHERE tx_id = {tx_id};"
    ));
    s.tamper(&sql);
}

/// Settles what waits, checks that the chain sealed it all, and returns
/// the head recorded then.
fn settle_and_record(s: &Sandbox) -> String {
    s.ok(&["settle"]);
    let doc: Value = s.json(&["verify", "--head"]);
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(
        doc["head"]["unsealed"], 0,
        "every decision is sealed: {doc}"
    );
    head(s)
}

fn a_hold_captured_after_a_seal_is_sealed_whatever_side_table_is_emptied() {
    let s = sealed();
    let hold: Value = s.json(&["hold", "alice", "bob", "10"]);
    let id = hold["tx_id"].to_string();
    s.ok(&["settle"]);
    empty_side_tables(&s);
    s.ok(&["capture", &id]);
    let recorded = settle_and_record(&s);
    flip_to_failed(&s, &id);
    let problems = the_chain_fails(&s);
    assert!(problems[0].contains("link 3"), "{problems:?}");
    the_recorded_head_fails(&s, &recorded);
}

fn a_transfer_pending_at_a_seal_is_sealed_once_decided_whatever_side_table_is_emptied() {
    let s = sealed();
    s.ok(&["transfer", "alice", "bob", "1"]);
    s.ok(&["transfer", "alice", "bob", "2"]);
    s.ok(&["settle", "--limit", "1"]);
    empty_side_tables(&s);
    let recorded = settle_and_record(&s);
    flip_to_failed(&s, "4");
    the_chain_fails(&s);
    the_recorded_head_fails(&s, &recorded);
}

fn a_deposit_forged_below_the_first_link_is_caught() {
    let s = sealed();
    let recorded = head(&s);
    let (lane, lane_value) = if on_postgres() {
        ("lane, ", "0, ")
    } else {
        ("", "")
    };
    let mut sql = format!(
        "INSERT INTO transfers (tx_id, {lane}src, dst, amount, status, created_at, settled_at)
             VALUES ({SMALLEST}, {lane_value}0, 1, 100000000, 'COMPLETED', 1, 1);
         UPDATE accounts SET balance = balance + 100000000 WHERE name = 'alice';
         UPDATE accounts SET balance = balance - 100000000 WHERE id = 0;"
    );
    if on_postgres() {
        sql.push_str(&format!(
            "UPDATE transfers SET dst_balance = 100000000 WHERE tx_id = {SMALLEST};"
        ));
    } else {
        sql.push_str(&format!(
            "INSERT INTO postings (account, tx_id, balance_after) VALUES (1, {SMALLEST}, 100000000);"
        ));
    }
    s.tamper(&sql);
    let problems = the_chain_fails(&s);
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&format!("transfer {SMALLEST} lies outside every link"))),
        "{problems:?}"
    );
    the_recorded_head_fails(&s, &recorded);
}

fn swapped_names_and_emails_break_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper(
        "UPDATE accounts SET name = 'swap', email = 'swap@example.com' WHERE name = 'alice';
         UPDATE accounts SET name = 'alice', email = 'alice@example.com' WHERE name = 'mallory';
         UPDATE accounts SET name = 'mallory', email = 'mallory@example.com' WHERE name = 'swap';",
    );
    let problems = the_chain_fails(&s);
    assert!(problems[0].starts_with("link 1 "), "{problems:?}");
    the_recorded_head_fails(&s, &recorded);
}

fn an_account_not_sealed_yet_is_counted_and_sealed_by_the_next_settle() {
    let s = sealed();
    s.ok(&["create-user", "carol", "carol@example.com"]);
    let chain = |s: &Sandbox| -> String {
        let report: Value = s.json(&["verify"]);
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "chain")
            .unwrap()
            .clone();
        check["detail"].as_str().unwrap().to_string()
    };
    let detail = chain(&s);
    assert!(detail.ends_with("; 1 account not sealed yet"), "{detail}");
    // Nothing but the new account waits: settle seals it all the same.
    s.ok(&["settle"]);
    let detail = chain(&s);
    assert!(detail.starts_with("2 links seal"), "{detail}");
    assert!(!detail.contains("account"), "{detail}");
}

fn an_email_edited_after_its_account_was_sealed_breaks_the_chain() {
    let s = sealed();
    s.ok(&["create-user", "carol", "carol@example.com"]);
    let recorded = settle_and_record(&s);
    s.tamper("UPDATE accounts SET email = 'mallory@example.com' WHERE name = 'carol'");
    let problems = the_chain_fails(&s);
    assert!(problems[0].starts_with("link 2 "), "{problems:?}");
    the_recorded_head_fails(&s, &recorded);
}

fn an_account_s_creation_time_moved_breaks_the_chain() {
    let s = sealed();
    s.tamper("UPDATE accounts SET created_at = created_at - 86400000 WHERE name = 'mallory'");
    the_chain_fails(&s);
}

fn an_account_forged_below_the_sealed_ones_breaks_the_chain() {
    let s = sealed();
    s.tamper(
        "INSERT INTO accounts (id, name, email, created_at) VALUES (-7, 'eve', 'eve@example.com', 1)",
    );
    let problems = the_chain_fails(&s);
    assert!(problems[0].starts_with("link 1 "), "{problems:?}");
}

fn a_sealed_account_deleted_breaks_the_chain() {
    let s = sealed();
    s.ok(&["create-user", "carol", "carol@example.com"]);
    s.ok(&["settle"]);
    s.tamper("DELETE FROM accounts WHERE name = 'carol'");
    the_chain_fails(&s);
}

/// The `chain_links` and `chain_open` tables as the schema before links
/// sealed accounts built them (SQLite version 5, PostgreSQL version 3).
const SQLITE_CHAIN_V5: &str = "DROP TABLE chain_links;
CREATE TABLE chain_links (
    seq         INTEGER PRIMARY KEY,
    first_tx    INTEGER NOT NULL,
    last_tx     INTEGER NOT NULL,
    excluded    TEXT    NOT NULL,
    late        TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    hash        TEXT    NOT NULL,
    sealed_at   INTEGER NOT NULL
) STRICT;
CREATE TABLE chain_open (
    tx_id       INTEGER PRIMARY KEY
) STRICT;
PRAGMA user_version = 5;";

const POSTGRES_CHAIN_V3: &str = "DROP TABLE chain_links;
CREATE TABLE chain_links (
    seq         bigint  PRIMARY KEY,
    first_tx    bigint  NOT NULL,
    last_tx     bigint  NOT NULL,
    excluded    text    NOT NULL,
    late        text    NOT NULL,
    count       bigint  NOT NULL,
    hash        text    NOT NULL,
    sealed_at   bigint  NOT NULL
);
CREATE TABLE chain_open (
    tx_id       bigint  PRIMARY KEY
);
DELETE FROM schema_version WHERE version = 4;";

fn a_chain_sealed_before_links_sealed_accounts_verifies_after_the_upgrade() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["transfer", "alice", "bob", "30", "--memo", "rent"]);
    s.ok(&["settle"]);
    s.tamper(if on_postgres() {
        POSTGRES_TO_VERSION_4
    } else {
        SQLITE_TO_VERSION_6
    });
    s.tamper(if on_postgres() {
        POSTGRES_CHAIN_V3
    } else {
        SQLITE_CHAIN_V5
    });
    let hash = first_link_hash(&s, 2, Sealed::Transfers);
    s.tamper(&format!(
        "INSERT INTO chain_links (seq, first_tx, last_tx, excluded, late, count, hash, sealed_at)
         VALUES (1, -9223372036854775807, 2, '', '', 2, '{hash}', 1)"
    ));
    s.ok(&["migrate"]);
    let doc: Value = s.json(&["verify", "--head", "--expect-head", &hash]);
    assert_eq!(doc["ok"], true, "{doc}");
    let report: Value = s.json(&["verify"]);
    let detail = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "chain")
        .unwrap()["detail"]
        .to_string();
    assert!(
        detail.contains("1 link seals 2 transfers") && detail.contains("3 accounts not sealed yet"),
        "{detail}"
    );
    // The next settle seals every account, the old ones included.
    s.ok(&["settle"]);
    let doc: Value = s.json(&["verify", "--head", "--expect-head", &hash]);
    assert_eq!(doc["head"]["link"], 2, "{doc}");
    s.tamper("UPDATE accounts SET email = 'mallory@example.com' WHERE name = 'alice'");
    let problems = the_chain_fails(&s);
    assert!(problems[0].starts_with("link 2 "), "{problems:?}");
}

engine_tests! {
    both: [
        a_hold_captured_after_a_seal_is_sealed_whatever_side_table_is_emptied,
        a_transfer_pending_at_a_seal_is_sealed_once_decided_whatever_side_table_is_emptied,
        a_deposit_forged_below_the_first_link_is_caught,
        swapped_names_and_emails_break_the_chain,
        an_account_not_sealed_yet_is_counted_and_sealed_by_the_next_settle,
        an_email_edited_after_its_account_was_sealed_breaks_the_chain,
        an_account_s_creation_time_moved_breaks_the_chain,
        an_account_forged_below_the_sealed_ones_breaks_the_chain,
        a_sealed_account_deleted_breaks_the_chain,
        a_chain_sealed_before_links_sealed_accounts_verifies_after_the_upgrade,
    ],
}
