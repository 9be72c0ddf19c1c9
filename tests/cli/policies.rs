//! Account policies as an operator sets them: `overdraft`, `freeze`,
//! `unfreeze`, `close` and `create-user --overdraft`, each change recorded
//! and shown by `get-user` (now and `--at`), `users`, `balances` and the
//! hledger journal, on each engine.

use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use crate::common::{Sandbox, shapes};

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-01T01:00:00Z";
const T2: &str = "2026-01-01T02:00:00Z";
const T3: &str = "2026-01-01T03:00:00Z";

/// What `overdraft`, `freeze`, `unfreeze` and `close` print: the change as
/// recorded, the same object the change feed lists.
#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Change {
    change_id: i64,
    user: String,
    change: String,
    overdraft: Option<String>,
    memo: Option<String>,
    at: String,
}

/// `wallet --json ARGS…` run with the test clock at `now`.
fn run_at(s: &Sandbox, now: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    s.cmd(&full).env("WALLET_TEST_NOW", now).output().unwrap()
}

/// Runs `wallet --json ARGS…` at `now`; asserts success; parses stdout.
fn at<T: serde::de::DeserializeOwned>(s: &Sandbox, now: &str, args: &[&str]) -> T {
    let out = run_at(s, now, args);
    assert!(
        out.status.success(),
        "wallet {args:?} at {now} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `wallet --json ARGS…` at `now`; asserts it fails with `code`/`exit`.
fn fails_at(s: &Sandbox, now: &str, args: &[&str], code: &str, exit: i32) -> String {
    crate::common::assert_error(&run_at(s, now, args), code, exit, args)
}

fn each_command_prints_the_change_it_recorded() {
    let s = Sandbox::new();
    s.alice_and_bob();
    let limit: Change = at(
        &s,
        T0,
        &["overdraft", "alice", "50", "--memo", "credit line"],
    );
    assert_eq!(
        limit,
        Change {
            change_id: 1,
            user: "alice".into(),
            change: "overdraft".into(),
            overdraft: Some("50.00".into()),
            memo: Some("credit line".into()),
            at: "2026-01-01T00:00:00.000Z".into(),
        }
    );
    let frozen: Change = at(&s, T1, &["freeze", "ALICE"]);
    assert_eq!(
        frozen,
        Change {
            change_id: 2,
            user: "alice".into(),
            change: "freeze".into(),
            overdraft: None,
            memo: None,
            at: "2026-01-01T01:00:00.000Z".into(),
        }
    );
    // Recorded even when it changes nothing: the operator's action is the record.
    let again: Change = at(&s, T1, &["freeze", "alice", "--memo", "second look"]);
    assert_eq!((again.change_id, again.change.as_str()), (3, "freeze"));
    let thawed: Change = at(&s, T2, &["unfreeze", "alice"]);
    assert_eq!((thawed.change_id, thawed.change.as_str()), (4, "unfreeze"));
    let removed: Change = at(&s, T2, &["overdraft", "alice", "0"]);
    assert_eq!(removed.overdraft.as_deref(), Some("0.00"));
    let closed: Change = at(&s, T3, &["close", "bob", "--memo", "asked to"]);
    assert_eq!(
        (
            closed.change_id,
            closed.user.as_str(),
            closed.change.as_str(),
            closed.overdraft,
            closed.memo.as_deref()
        ),
        (6, "bob", "close", None, Some("asked to"))
    );
    // The human lines, and the change id alone with --quiet.
    assert_eq!(
        s.ok(&["overdraft", "alice", "12.5"]),
        "alice: overdraft limit 12.50 (change 7)\n"
    );
    assert_eq!(s.ok(&["freeze", "alice"]), "alice: frozen (change 8)\n");
    assert_eq!(s.ok(&["unfreeze", "alice"]), "alice: unfrozen (change 9)\n");
    assert_eq!(
        s.ok(&["overdraft", "alice", "0"]),
        "alice: no overdraft limit (change 10)\n"
    );
    assert_eq!(s.ok(&["-q", "freeze", "alice"]), "11\n");
    // Each change and its event are rows of their own.
    let counted = s.query_text(
        "SELECT CAST((SELECT count(*) FROM policy_changes) AS TEXT),
                CAST((SELECT count(*) FROM events WHERE change_id IS NOT NULL) AS TEXT),
                CAST((SELECT count(*) FROM events e JOIN policy_changes c
                        ON c.change_id = e.change_id AND c.at = e.at) AS TEXT)",
    );
    assert_eq!(
        counted,
        vec![Some("11".into()), Some("11".into()), Some("11".into())]
    );
}

fn get_user_and_users_show_the_policy() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["overdraft", "alice", "30"]);
    s.ok(&["freeze", "alice"]);
    s.ok(&["close", "bob"]);
    let alice: shapes::User = s.json(&["get-user", "alice"]);
    assert_eq!(
        (
            alice.overdraft.as_str(),
            alice.available.as_str(),
            alice.frozen,
            alice.closed
        ),
        ("30.00", "30.00", true, false)
    );
    let users: Vec<shapes::User> = s.json(&["users"]);
    let flags: Vec<(&str, &str, bool, bool)> = users
        .iter()
        .map(|u| (u.name.as_str(), u.overdraft.as_str(), u.frozen, u.closed))
        .collect();
    assert_eq!(
        flags,
        vec![
            ("alice", "30.00", true, false),
            ("bob", "0.00", false, true)
        ]
    );
    let table = s.ok(&["users"]);
    let header = table.lines().next().unwrap();
    for column in ["overdraft", "frozen", "closed"] {
        assert!(header.contains(column), "{table}");
    }
    let balances: Value = s.json(&["balances"]);
    let closed: Vec<(String, bool)> = balances["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_string(),
                u["closed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        closed,
        vec![("alice".to_string(), false), ("bob".to_string(), true)]
    );
}

fn create_user_with_an_overdraft_records_it_as_a_change() {
    let s = Sandbox::new();
    let created: shapes::UserCreated = at(
        &s,
        T0,
        &[
            "create-user",
            "shop",
            "shop@example.com",
            "--overdraft",
            "500",
        ],
    );
    assert_eq!(created.name, "shop");
    let shop: shapes::User = s.json(&["get-user", "shop"]);
    assert_eq!(
        (shop.overdraft.as_str(), shop.available.as_str()),
        ("500.00", "500.00")
    );
    let recorded = s.query_text(
        "SELECT c.kind, CAST(c.overdraft AS TEXT), CAST(c.at AS TEXT), CAST(a.created_at AS TEXT),
                CAST((SELECT count(*) FROM events WHERE change_id = c.change_id) AS TEXT)
         FROM policy_changes c JOIN accounts a ON a.id = c.account",
    );
    let created_ms = "1767225600000".to_string();
    assert_eq!(
        recorded,
        vec![
            Some("overdraft".into()),
            Some("50000".into()),
            Some(created_ms.clone()),
            Some(created_ms),
            Some("1".into())
        ]
    );
    // The next change takes the next id; no limit, or 0, records nothing.
    s.ok(&["create-user", "plain", "plain@example.com"]);
    s.ok(&[
        "create-user",
        "zero",
        "zero@example.com",
        "--overdraft",
        "0.00",
    ]);
    let next: Change = s.json(&["freeze", "zero"]);
    assert_eq!(next.change_id, 2);
    let zero: shapes::User = s.json(&["get-user", "zero"]);
    assert_eq!(zero.overdraft, "0.00");
    // Refused limits create neither the user nor, on a new ledger, the ledger.
    for bad in ["-5", "abc", "1.234", "01"] {
        s.fails(
            &["create-user", "other", "o@example.com", "--overdraft", bad],
            "invalid_amount",
            5,
        );
    }
    s.fails(&["get-user", "other"], "user_not_found", 3);
    let fresh = Sandbox::new();
    fresh.fails(
        &["create-user", "shop", "s@example.com", "--overdraft", "-1"],
        "invalid_amount",
        5,
    );
    assert!(!fresh.ledger_exists(), "a refused limit creates no ledger");
}

fn close_is_refused_while_anything_is_left_and_taken_at_zero() {
    let s = Sandbox::new();
    s.alice_and_bob();
    at::<Value>(&s, T0, &["deposit", "alice", "10"]);
    let left = fails_at(&s, T0, &["close", "alice"], "account_not_empty", 4);
    assert!(left.contains("10.00 pending in"), "{left}");
    at::<Value>(&s, T0, &["settle"]);
    let left = fails_at(&s, T0, &["close", "alice"], "account_not_empty", 4);
    assert!(left.contains("a balance of 10.00"), "{left}");
    at::<Value>(&s, T0, &["transfer", "alice", "bob", "3"]);
    let left = fails_at(&s, T0, &["close", "alice"], "account_not_empty", 4);
    assert!(
        left.contains("a balance of 10.00 and 3.00 pending out"),
        "{left}"
    );
    let left = fails_at(&s, T0, &["close", "bob"], "account_not_empty", 4);
    assert!(left.contains("3.00 pending in"), "{left}");
    at::<Value>(&s, T0, &["settle"]);
    let hold: Value = at(&s, T0, &["hold", "alice", "bob", "7", "--expires-at", T1]);
    let left = fails_at(&s, T0, &["close", "alice"], "account_not_empty", 4);
    assert!(left.contains("a balance of 7.00 and 7.00 held"), "{left}");
    // Past its expiry the hold reserves nothing, and settle gives it back.
    at::<Value>(&s, T2, &["withdraw", "alice", "7"]);
    at::<Value>(&s, T2, &["settle"]);
    let hold_id = hold["tx_id"].as_i64().unwrap();
    // A hold past its expiry that nothing has marked yet: held as stored,
    // but not as of now, so it keeps nothing from closing.
    s.tamper(&format!(
        "UPDATE transfers SET status = 'HELD', settled_at = NULL WHERE tx_id = {hold_id};
         UPDATE accounts SET held = 700 WHERE name = 'alice';"
    ));
    let closed: Change = at(&s, T3, &["close", "alice"]);
    assert_eq!(closed.change, "close");
    let alice: shapes::User = s.json(&["get-user", "alice"]);
    assert!(alice.closed);
}

fn a_closed_user_takes_no_change_and_keeps_its_name() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["close", "alice"]);
    for args in [
        &["overdraft", "alice", "5"][..],
        &["overdraft", "Alice", "0"],
        &["freeze", "alice"],
        &["unfreeze", "alice"],
        &["close", "alice", "--memo", "again"],
    ] {
        let message = s.fails(args, "account_closed", 4);
        assert!(message.contains("alice"), "{message}");
    }
    for name in ["alice", "ALICE"] {
        s.fails(&["create-user", name, "new@example.com"], "user_exists", 4);
    }
    let alice: shapes::User = s.json(&["get-user", "alice"]);
    assert_eq!(
        (alice.closed, alice.email.as_str()),
        (true, "alice@example.com")
    );
}

fn unknown_users_and_invalid_input_are_refused() {
    let s = Sandbox::new();
    s.alice_and_bob();
    for args in [
        &["overdraft", "ghost", "5"][..],
        &["freeze", "ghost"],
        &["unfreeze", "ghost"],
        &["close", "ghost"],
    ] {
        s.fails(args, "user_not_found", 3);
    }
    for amount in ["-5", "abc", "5.001", "", "1e3", " 5"] {
        s.fails(&["overdraft", "alice", amount], "invalid_amount", 5);
    }
    s.fails(&["freeze", "no such name"], "invalid_name", 5);
    s.fails(
        &["freeze", "alice", "--memo", "line\nbreak"],
        "invalid_memo",
        5,
    );
    s.fails(
        &["overdraft", "alice", "5", "--memo", &"m".repeat(257)],
        "invalid_memo",
        5,
    );
    // Usage errors: a missing amount or name.
    s.fails(&["overdraft", "alice"], "usage", 2);
    s.fails(&["close"], "usage", 2);
}

fn a_refused_command_changes_nothing() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "5"]);
    s.ok(&["settle"]);
    s.ok(&["close", "bob"]);
    let before = s.ledger_bytes();
    s.fails(&["close", "alice"], "account_not_empty", 4);
    s.fails(&["freeze", "bob"], "account_closed", 4);
    s.fails(&["overdraft", "bob", "9"], "account_closed", 4);
    s.fails(&["overdraft", "ghost", "9"], "user_not_found", 3);
    s.fails(&["overdraft", "alice", "-9"], "invalid_amount", 5);
    s.fails(
        &["create-user", "carol", "c@example.com", "--overdraft", "x"],
        "invalid_amount",
        5,
    );
    assert_eq!(before, s.ledger_bytes(), "a refused change wrote nothing");
}

fn get_user_at_shows_the_policy_in_force_then() {
    let s = Sandbox::new();
    at::<Value>(&s, T0, &["create-user", "alice", "a@example.com"]);
    at::<Value>(&s, T0, &["deposit", "alice", "10"]);
    at::<Value>(&s, T0, &["settle"]);
    at::<Change>(&s, T1, &["overdraft", "alice", "50"]);
    at::<Value>(&s, T1, &["deposit", "alice", "1"]);
    at::<Value>(&s, T2, &["settle"]);
    at::<Change>(&s, T3, &["freeze", "alice"]);
    at::<Change>(&s, T3, &["overdraft", "alice", "20"]);
    let policy = |args: &[&str]| -> (String, String, bool, bool) {
        let mut full = vec!["get-user", "alice"];
        full.extend_from_slice(args);
        let then: Value = s.json(&full);
        (
            then["balance"].as_str().unwrap().to_string(),
            then["overdraft"].as_str().unwrap().to_string(),
            then["frozen"].as_bool().unwrap(),
            then["closed"].as_bool().unwrap(),
        )
    };
    let before_any = "2025-12-31T00:00:00Z";
    assert_eq!(
        policy(&["--at", before_any]),
        ("0.00".into(), "0.00".into(), false, false)
    );
    assert_eq!(
        policy(&["--at", T0]),
        ("10.00".into(), "0.00".into(), false, false)
    );
    assert_eq!(
        policy(&["--at", T1]),
        ("10.00".into(), "50.00".into(), false, false)
    );
    assert_eq!(
        policy(&["--at", "2026-01-01T00:59:59.999Z"]),
        ("10.00".into(), "0.00".into(), false, false)
    );
    assert_eq!(
        policy(&["--at", T3]),
        ("11.00".into(), "20.00".into(), true, false)
    );
    // A transfer's point is the instant it was applied.
    assert_eq!(
        policy(&["--at-tx", "1"]),
        ("10.00".into(), "0.00".into(), false, false)
    );
    assert_eq!(
        policy(&["--at-tx", "2"]),
        ("11.00".into(), "50.00".into(), false, false)
    );
    let human = s.ok(&["get-user", "alice", "--at", T3]);
    assert!(
        human.contains("overdraft") && human.contains("20.00 PHP"),
        "{human}"
    );
}

fn the_journal_has_each_change_as_a_comment_line_that_hledger_reads() {
    let s = Sandbox::new();
    at::<Value>(
        &s,
        T0,
        &["create-user", "shop", "s@example.com", "--overdraft", "50"],
    );
    at::<Value>(&s, T0, &["create-user", "bob", "b@example.com"]);
    at::<Value>(&s, T0, &["deposit", "bob", "10"]);
    at::<Value>(&s, T1, &["settle"]);
    at::<Change>(
        &s,
        T1,
        &["freeze", "shop", "--memo", "review; ticket #4 — ünïcode"],
    );
    at::<Value>(&s, T2, &["transfer", "bob", "shop", "4"]);
    at::<Value>(&s, T2, &["settle"]);
    at::<Change>(&s, T3, &["unfreeze", "shop"]);
    let text = s.ok(&["export", "--format", "hledger"]);
    let comments: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("; 2026"))
        .collect();
    assert_eq!(
        comments,
        vec![
            "; 2026-01-01 change 1: shop overdraft limit 50.00",
            "; 2026-01-01 change 2: shop frozen — review; ticket #4 — ünïcode",
            "; 2026-01-01 change 3: shop unfrozen",
        ],
        "{text}"
    );
    // In time order with the transfers: the freeze comes after the
    // deposit queued before it, and before the transfer queued after it.
    let position = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle}"));
    assert!(position("change 1:") < position("(1)"), "{text}");
    assert!(position("(1)") < position("change 2:"), "{text}");
    assert!(position("change 2:") < position("(2)"), "{text}");
    assert!(position("(2)") < position("change 3:"), "{text}");
    let journal = s.dir.path().join("wallet.journal");
    std::fs::write(&journal, &text).unwrap();
    for args in [&["print"][..], &["check", "--strict"]] {
        let out = Command::new("hledger")
            .arg("-f")
            .arg(&journal)
            .args(args)
            .output()
            .expect("hledger is installed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "hledger {args:?}: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // JSON Lines, CSV and history stay transfers only.
    let lines = s.ok(&["export"]);
    assert_eq!(lines.lines().count(), 2, "{lines}");
    for line in lines.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        assert!(doc["tx_id"].is_i64(), "{line}");
    }
    assert_eq!(s.ok(&["export", "--format", "csv"]).lines().count(), 3);
    let history: Vec<shapes::Transfer> = s.json(&["history", "shop"]);
    assert_eq!(history.len(), 1);
    s.ok(&["verify"]);
}

fn export_bounds_keep_the_changes_within_them() {
    let s = Sandbox::new();
    at::<Value>(&s, T0, &["create-user", "alice", "a@example.com"]);
    at::<Change>(&s, T0, &["freeze", "alice"]);
    at::<Change>(&s, T2, &["unfreeze", "alice"]);
    let text = s.ok(&["export", "--format", "hledger", "--since", T1]);
    assert!(!text.contains("change 1:"), "{text}");
    assert!(
        text.contains("; 2026-01-01 change 2: alice unfrozen"),
        "{text}"
    );
    let text = s.ok(&["export", "--format", "hledger", "--until", T1]);
    assert!(
        text.contains("change 1:") && !text.contains("change 2:"),
        "{text}"
    );
}

/// Starts `close bob` while another writer holds bob's account, having
/// emptied it; `release` commits that writer. The close waits for the
/// lock, then decides on the figures it finds under it: bob is empty.
fn close_waits_for_the_account_and_decides_on_what_it_finds(s: &Sandbox, release: impl FnOnce()) {
    let mut close = s
        .process(&["--json", "close", "bob"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(
        close.try_wait().unwrap().is_none(),
        "close waits for the writer holding the account"
    );
    release();
    let out = close.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "close after the writer committed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let closed: Change = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (closed.user.as_str(), closed.change.as_str()),
        ("bob", "close")
    );
}

/// The statements of a writer that empties bob's 5.00 into the outside.
const EMPTY_BOB: &str = "UPDATE accounts SET balance = 0 WHERE name = 'bob';
     UPDATE accounts SET balance = balance + 500 WHERE id = 0;";

fn a_change_takes_the_write_lock_and_reads_under_it() {
    let s = Sandbox::new();
    s.funded(&[("bob", "5")]);
    let writer = s.sqlite();
    writer
        .execute_batch(&format!("BEGIN IMMEDIATE; {EMPTY_BOB}"))
        .unwrap();
    close_waits_for_the_account_and_decides_on_what_it_finds(&s, || {
        writer.execute_batch("COMMIT").unwrap();
    });
}

fn a_change_locks_the_account_row_and_reads_under_it() {
    let s = Sandbox::new();
    s.funded(&[("bob", "5")]);
    let mut writer = s.postgres();
    writer
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM accounts WHERE name = 'bob' FOR UPDATE; {EMPTY_BOB}"
        ))
        .unwrap();
    close_waits_for_the_account_and_decides_on_what_it_finds(&s, || {
        writer.batch_execute("COMMIT").unwrap();
    });
}

engine_tests! {
    both: [
        each_command_prints_the_change_it_recorded,
        get_user_and_users_show_the_policy,
        create_user_with_an_overdraft_records_it_as_a_change,
        close_is_refused_while_anything_is_left_and_taken_at_zero,
        a_closed_user_takes_no_change_and_keeps_its_name,
        unknown_users_and_invalid_input_are_refused,
        a_refused_command_changes_nothing,
        get_user_at_shows_the_policy_in_force_then,
        the_journal_has_each_change_as_a_comment_line_that_hledger_reads,
        export_bounds_keep_the_changes_within_them,
    ],
    sqlite: [a_change_takes_the_write_lock_and_reads_under_it],
    postgres: [a_change_locks_the_account_row_and_reads_under_it],
}
