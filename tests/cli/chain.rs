//! The tamper-evident log through the real binary, on either engine: edits
//! that keep every sum consistent, which only the hash chain can see.

use serde_json::Value;

use crate::common::Sandbox;

/// alice paid bob 30.00 of a 100.00 deposit; everything settled and sealed.
fn sealed() -> Sandbox {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["transfer", "alice", "bob", "30", "--memo", "rent"]);
    s.ok(&["settle"]);
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
    s
}

/// Runs verify, which must fail on the chain alone; returns its problem.
fn only_the_chain_fails(s: &Sandbox) -> String {
    the_chain_fails_among(s, &["chain"])
}

/// Runs verify, which must fail on `failed`, the chain among them;
/// returns the chain's problem.
fn the_chain_fails_among(s: &Sandbox, failed: &[&str]) -> String {
    let failure = s.verify_fails();
    assert_eq!(failure.report.failed(), failed, "{:?}", failure.report);
    let chain = failure
        .report
        .checks
        .iter()
        .find(|c| c.name == "chain")
        .unwrap();
    chain.problems[0].message.clone()
}

fn a_changed_currency_scale_breaks_the_first_link() {
    let s = sealed();
    s.tamper("UPDATE ledger_meta SET scale = 0");
    // The default currency's own row no longer agrees with it either.
    let problem = the_chain_fails_among(&s, &["ledger_meta", "chain"]);
    assert!(problem.starts_with("link 1 of the hash chain"), "{problem}");
}

fn an_amount_edited_with_both_balances_is_caught() {
    let s = sealed();
    s.tamper(
        "UPDATE transfers SET amount = 4000 WHERE tx_id = 2;
         UPDATE accounts SET balance = 6000 WHERE name = 'alice';
         UPDATE accounts SET balance = 4000 WHERE name = 'bob';",
    );
    // The running balances recorded beside it no longer replay either.
    let problem = the_chain_fails_among(&s, &["history", "chain"]);
    assert!(
        problem.contains("link 1") && problem.contains("up to 2"),
        "{problem}"
    );
}

fn a_transfer_deleted_with_its_balances_corrected_is_caught() {
    let s = sealed();
    let mut sql = "DELETE FROM transfers WHERE tx_id = 2;
         UPDATE accounts SET balance = 10000 WHERE name = 'alice';
         UPDATE accounts SET balance = 0 WHERE name = 'bob';"
        .to_string();
    if crate::common::engine().name() == "sqlite" {
        sql.push_str("DELETE FROM postings WHERE tx_id = 2;");
    }
    s.tamper(&sql);
    let problem = only_the_chain_fails(&s);
    assert!(problem.contains("link 1"), "{problem}");
}

fn a_row_inserted_among_sealed_ones_is_caught() {
    let s = sealed();
    let lane = if crate::common::engine().name() == "postgres" {
        "lane, "
    } else {
        ""
    };
    let lane_value = if crate::common::engine().name() == "postgres" {
        "2, "
    } else {
        ""
    };
    let mut sql = format!(
        "INSERT INTO transfers (tx_id, {lane}src, dst, amount, status, created_at, settled_at)
         VALUES (0, {lane_value}0, 2, 500, 'COMPLETED', 1, 2);
         UPDATE accounts SET balance = balance + 500 WHERE name = 'bob';
         UPDATE accounts SET balance = balance - 500 WHERE id = 0;"
    );
    if crate::common::engine().name() == "sqlite" {
        sql.push_str("INSERT INTO postings (account, tx_id, balance_after) VALUES (2, 0, 500);");
    }
    s.tamper(&sql);
    let problem = the_chain_fails_among(&s, &["history", "chain"]);
    assert!(problem.contains("link 1"), "{problem}");
}

fn a_recorded_head_proves_the_books_before_it_were_not_rewritten() {
    let s = sealed();
    let head: Value = s.json(&["verify", "--head"]);
    let hash = head["head"]["hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);
    assert_eq!(head["head"]["last_tx"], 2);
    // New work is queued: not sealed until a settle.
    s.ok(&["transfer", "bob", "alice", "5"]);
    let pending: Value = s.json(&["verify", "--head"]);
    assert_eq!(pending["head"]["unsealed"], 1);
    s.ok(&["settle"]);
    let later: Value = s.json(&["verify", "--head", "--expect-head", &hash]);
    assert_eq!(later["ok"], true, "{later}");
    assert_eq!(later["head"]["last_tx"], 3);
    assert_ne!(later["head"]["hash"].as_str().unwrap(), hash);
    // A head this ledger never had fails, as does a rewrite before it.
    let other = "0".repeat(64);
    let failure = {
        let out = s
            .cmd(&["--json", "verify", "--expect-head", &other])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(7));
        String::from_utf8(out.stderr).unwrap()
    };
    assert!(failure.contains("does not extend head"), "{failure}");
    s.tamper("UPDATE transfers SET memo = 'groceries' WHERE tx_id = 2");
    let out = s
        .cmd(&["--json", "verify", "--expect-head", &hash])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    s.fails(&["verify", "--expect-head", "xyz"], "usage", 2);
}

fn a_hold_is_sealed_once_it_is_decided() {
    let s = sealed();
    let hold: Value = s.json(&["hold", "alice", "bob", "10"]);
    s.ok(&["transfer", "alice", "bob", "1"]);
    s.ok(&["settle"]);
    let head: Value = s.json(&["verify", "--head"]);
    assert_eq!(head["ok"], true, "{head}");
    assert_eq!(head["head"]["unsealed"], 1, "the live hold waits: {head}");
    s.ok(&["capture", &hold["tx_id"].to_string()]);
    s.ok(&["settle"]);
    let head: Value = s.json(&["verify", "--head"]);
    assert_eq!(head["head"]["unsealed"], 0, "{head}");
    // Editing the captured hold now breaks the link that sealed it late.
    s.tamper(&format!(
        "UPDATE transfers SET memo = 'x' WHERE tx_id = {}",
        hold["tx_id"]
    ));
    only_the_chain_fails(&s);
}

fn a_queued_transfer_is_sealed_by_what_it_asked_for_until_it_is_decided() {
    let s = sealed();
    s.ok(&["transfer", "alice", "bob", "1"]);
    s.ok(&["transfer", "alice", "bob", "2"]);
    s.ok(&["settle", "--limit", "1"]);
    let head: Value = s.json(&["verify", "--head"]);
    assert_eq!(head["ok"], true, "{head}");
    assert_eq!(
        head["head"]["last_tx"], 4,
        "the PENDING one is sealed too: {head}"
    );
    assert_eq!(head["head"]["unsealed"], 1, "its decision is not: {head}");
    // Its amount raised before settle could apply it.
    let mut sql = "UPDATE transfers SET amount = 20000 WHERE tx_id = 4;".to_string();
    sql.push_str(
        "UPDATE accounts SET pending_out = pending_out + 19800 WHERE name = 'alice';
         UPDATE accounts SET pending_in = pending_in + 19800 WHERE name = 'bob';",
    );
    s.tamper(&sql);
    only_the_chain_fails(&s);
}

engine_tests! {
    both: [
        a_changed_currency_scale_breaks_the_first_link,
        an_amount_edited_with_both_balances_is_caught,
        a_transfer_deleted_with_its_balances_corrected_is_caught,
        a_row_inserted_among_sealed_ones_is_caught,
        a_recorded_head_proves_the_books_before_it_were_not_rewritten,
        a_hold_is_sealed_once_it_is_decided,
        a_queued_transfer_is_sealed_by_what_it_asked_for_until_it_is_decided,
    ],
}
