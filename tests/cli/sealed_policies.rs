//! Policy changes sealed in the hash chain, on either engine: a past limit,
//! freeze or close edited, deleted or forged after a link sealed it fails
//! `verify`'s chain check, naming the link; a change not sealed yet is
//! counted, and the next `settle` seals it; links sealed before links
//! sealed policy changes keep verifying.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::Sandbox;
use crate::old_links::{self, first_link_hash};

/// Records a policy change of `user` the way the `overdraft`, `freeze`,
/// `unfreeze` and `close` commands do: a `policy_changes` row, by account
/// id, and the account's new state. `overdraft_minor` is the new limit in
/// minor units, for kind `overdraft` only.
fn record_change(s: &Sandbox, user: &str, kind: &str, overdraft_minor: Option<i64>) {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let limit = overdraft_minor.map_or("NULL".to_string(), |n| n.to_string());
    let state = match kind {
        "overdraft" => format!("overdraft = {limit}"),
        "freeze" => "frozen = TRUE".to_string(),
        "unfreeze" => "frozen = FALSE".to_string(),
        "close" => "closed = TRUE".to_string(),
        other => panic!("no policy change of kind {other}"),
    };
    s.tamper(&format!(
        "INSERT INTO policy_changes (account, kind, overdraft, memo, at)
             SELECT id, '{kind}', {limit}, '{kind} by ops', {at} FROM accounts WHERE name = '{user}';
         UPDATE accounts SET {state} WHERE name = '{user}';"
    ));
}

/// The chain check's detail in a passing `verify`.
fn chain_detail(s: &Sandbox) -> String {
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "chain")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The chain's head hash as `verify --head` prints it.
fn head(s: &Sandbox) -> String {
    let doc: Value = s.json(&["verify", "--head"]);
    assert_eq!(doc["ok"], true, "{doc}");
    doc["head"]["hash"].as_str().unwrap().to_string()
}

/// alice paid bob 30.00 of a 100.00 deposit; alice was given a 50.00
/// credit line, bob frozen, and mallory's empty account closed; all
/// settled and sealed in link 1.
fn sealed() -> Sandbox {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["create-user", "mallory", "mallory@example.com"]);
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["transfer", "alice", "bob", "30", "--memo", "rent"]);
    record_change(&s, "alice", "overdraft", Some(5000));
    record_change(&s, "bob", "freeze", None);
    record_change(&s, "mallory", "close", None);
    s.ok(&["settle"]);
    let detail = chain_detail(&s);
    assert!(detail.starts_with("1 link seals"), "{detail}");
    assert!(!detail.contains("policy change"), "{detail}");
    s
}

/// Runs verify, which must fail on the chain (other checks may fail too),
/// with the first problem naming link `seq`; then `verify --expect-head`
/// with the head recorded before the edit fails too.
fn the_chain_fails_at(s: &Sandbox, seq: i64, recorded: &str) {
    let failure = s.verify_fails();
    let chain = failure
        .report
        .checks
        .iter()
        .find(|c| c.name == "chain")
        .unwrap_or_else(|| panic!("{:?}", failure.report));
    assert!(!chain.ok, "{:?}", failure.report);
    let first = &chain.problems[0].message;
    assert!(
        first.starts_with(&format!("link {seq} of the hash chain")),
        "{first}"
    );
    let out = s
        .cmd(&["--json", "verify", "--expect-head", recorded])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
}

fn sealed_policy_changes_untouched_verify() {
    let s = sealed();
    let sealed_to = s.query_text(
        "SELECT CAST(changes_to AS TEXT), CAST((SELECT max(change_id) FROM policy_changes) AS TEXT)
           FROM chain_links WHERE seq = 1",
    );
    assert_eq!(sealed_to[0], sealed_to[1], "link 1 seals every change");
    // Nothing new: settle adds no link.
    s.ok(&["settle"]);
    let detail = chain_detail(&s);
    assert!(detail.starts_with("1 link seals"), "{detail}");
}

fn a_change_not_sealed_yet_is_counted_and_sealed_by_the_next_settle() {
    let s = sealed();
    record_change(&s, "bob", "unfreeze", None);
    let detail = chain_detail(&s);
    assert!(
        detail.ends_with("; 1 policy change not sealed yet"),
        "{detail}"
    );
    // Nothing but the change waits: settle seals it all the same.
    s.ok(&["settle"]);
    let detail = chain_detail(&s);
    assert!(detail.starts_with("2 links seal"), "{detail}");
    assert!(!detail.contains("policy change"), "{detail}");
    let recorded = head(&s);
    s.tamper("UPDATE policy_changes SET kind = 'freeze' WHERE kind = 'unfreeze'");
    the_chain_fails_at(&s, 2, &recorded);
}

fn a_sealed_overdraft_limit_edited_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    // The account's limit raised with it, so that only the seal tells.
    s.tamper(
        "UPDATE policy_changes SET overdraft = 9000000 WHERE kind = 'overdraft';
         UPDATE accounts SET overdraft = 9000000 WHERE name = 'alice';",
    );
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_sealed_change_s_kind_edited_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper(
        "UPDATE policy_changes SET kind = 'unfreeze' WHERE kind = 'freeze';
         UPDATE accounts SET frozen = FALSE WHERE name = 'bob';",
    );
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_sealed_change_s_time_moved_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper("UPDATE policy_changes SET at = at - 86400000 WHERE kind = 'overdraft'");
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_sealed_change_s_memo_edited_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper("UPDATE policy_changes SET memo = 'approved by risk' WHERE kind = 'close'");
    the_chain_fails_at(&s, 1, &recorded);
    let s = sealed();
    let recorded = head(&s);
    s.tamper("UPDATE policy_changes SET memo = NULL WHERE kind = 'close'");
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_sealed_change_moved_to_another_account_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper(
        "UPDATE policy_changes SET account = (SELECT id FROM accounts WHERE name = 'bob')
          WHERE kind = 'overdraft'",
    );
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_sealed_change_deleted_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper(
        "DELETE FROM policy_changes WHERE kind = 'close';
         UPDATE accounts SET closed = FALSE WHERE name = 'mallory';",
    );
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_change_forged_below_the_sealed_ones_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper(
        "INSERT INTO policy_changes (change_id, account, kind, overdraft, memo, at)
             SELECT 0, id, 'overdraft', 100000000, NULL, 1 FROM accounts WHERE name = 'bob'",
    );
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_change_forged_between_sealed_ones_breaks_their_link() {
    let s = sealed();
    record_change(&s, "alice", "freeze", None);
    // A gap left in the ids, as a change rolled back would leave one.
    s.tamper(
        "INSERT INTO policy_changes (change_id, account, kind, overdraft, memo, at)
             SELECT max(change_id) + 2, max(account), 'unfreeze', NULL, NULL, max(at)
               FROM policy_changes WHERE kind = 'freeze';
         UPDATE accounts SET frozen = FALSE WHERE name = 'bob';",
    );
    s.ok(&["settle"]);
    let detail = chain_detail(&s);
    assert!(detail.starts_with("2 links seal"), "{detail}");
    let recorded = head(&s);
    s.tamper(
        "INSERT INTO policy_changes (change_id, account, kind, overdraft, memo, at)
             SELECT max(change_id) - 1, min(account), 'overdraft', 100000000, NULL, min(at)
               FROM policy_changes",
    );
    the_chain_fails_at(&s, 2, &recorded);
}

fn a_chain_sealed_before_links_sealed_policy_changes_still_verifies() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["transfer", "alice", "bob", "30", "--memo", "rent"]);
    s.ok(&["settle"]);
    // Link 1 as the version before sealed it: no `changes_to`, its hash
    // taken without one.
    let accounts_to: i64 = s.query_text("SELECT CAST(max(id) AS TEXT) FROM accounts")[0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let hash = first_link_hash(&s, 2, old_links::Sealed::Accounts { accounts_to });
    s.tamper(&format!(
        "UPDATE chain_links SET changes_to = NULL, currencies_to = NULL, hash = '{hash}'
          WHERE seq = 1"
    ));
    let doc: Value = s.json(&["verify", "--head", "--expect-head", &hash]);
    assert_eq!(doc["ok"], true, "{doc}");
    record_change(&s, "alice", "overdraft", Some(5000));
    let detail = chain_detail(&s);
    assert!(
        detail.starts_with("1 link seals 2 transfers")
            && detail.contains("; 1 policy change not sealed yet"),
        "{detail}"
    );
    // The next settle seals every change, with nothing else new.
    s.ok(&["settle"]);
    let doc: Value = s.json(&["verify", "--head", "--expect-head", &hash]);
    assert_eq!(doc["head"]["link"], 2, "{doc}");
    let detail = chain_detail(&s);
    assert!(!detail.contains("policy change"), "{detail}");
    let recorded = head(&s);
    s.tamper("UPDATE policy_changes SET overdraft = 9000000");
    the_chain_fails_at(&s, 2, &recorded);
}

/// A change whose transaction has not committed yet holds an id below one
/// that has: the seal waits for it rather than pass over its id, which it
/// could never seal afterwards.
fn a_seal_waits_for_a_change_still_being_written() {
    let s = sealed();
    let mut writer = s.postgres();
    writer
        .batch_execute(
            "BEGIN;
             INSERT INTO policy_changes (account, kind, overdraft, memo, at)
                 SELECT id, 'overdraft', 7000, NULL, 1 FROM accounts WHERE name = 'alice';",
        )
        .unwrap();
    record_change(&s, "bob", "unfreeze", None);
    let mut settle = s
        .process(&["settle"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        settle.try_wait().unwrap().is_none(),
        "settle sealed past a change still being written"
    );
    writer.batch_execute("COMMIT").unwrap();
    let out = settle.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let detail = chain_detail(&s);
    assert!(detail.starts_with("2 links seal"), "{detail}");
    assert!(!detail.contains("policy change"), "{detail}");
}

engine_tests! {
    both: [
        sealed_policy_changes_untouched_verify,
        a_change_not_sealed_yet_is_counted_and_sealed_by_the_next_settle,
        a_sealed_overdraft_limit_edited_breaks_the_chain,
        a_sealed_change_s_kind_edited_breaks_the_chain,
        a_sealed_change_s_time_moved_breaks_the_chain,
        a_sealed_change_s_memo_edited_breaks_the_chain,
        a_sealed_change_moved_to_another_account_breaks_the_chain,
        a_sealed_change_deleted_breaks_the_chain,
        a_change_forged_below_the_sealed_ones_breaks_the_chain,
        a_change_forged_between_sealed_ones_breaks_their_link,
        a_chain_sealed_before_links_sealed_policy_changes_still_verifies,
    ],
    postgres: [a_seal_waits_for_a_change_still_being_written],
}
