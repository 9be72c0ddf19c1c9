//! The figures `history` and `get-user --at/--at-tx` read beside the
//! transfers, through the real binary on either engine: each user's
//! running balance, and the settle batches and instants that place a
//! transfer in time. `verify` replays them from the transfers (check
//! `history`); each edit here first makes a reader lie, then is caught.

use serde_json::Value;

use crate::common::{Sandbox, engine, shapes};

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-01T01:00:00Z";
const T2: &str = "2026-01-01T02:00:00Z";
const T3: &str = "2026-01-01T03:00:00Z";
const T4: &str = "2026-01-01T04:00:00Z";

/// Runs `wallet --json ARGS…` with the test clock at `now`; asserts success.
fn at(s: &Sandbox, now: &str, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = s.cmd(&full).env("WALLET_TEST_NOW", now).output().unwrap();
    assert!(
        out.status.success(),
        "wallet {args:?} at {now} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn balance(v: &Value) -> String {
    v["balance"].as_str().unwrap().to_string()
}

fn is_sqlite() -> bool {
    engine().name() == "sqlite"
}

/// alice (id 1) is paid 100.00 at T0 and pays bob (id 2) 30.00 (tx 3) at
/// T2; bob is paid 5.00 at T0 (tx 2); every check passes.
fn settled() -> Sandbox {
    let s = Sandbox::new();
    s.alice_and_bob();
    at(&s, T0, &["deposit", "alice", "100"]);
    at(&s, T0, &["deposit", "bob", "5"]);
    at(&s, T0, &["settle"]);
    at(&s, T1, &["transfer", "alice", "bob", "30"]);
    at(&s, T2, &["settle"]);
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
    s
}

/// Runs verify, which must fail on `failed` alone; returns the problems of
/// `history`.
fn caught(s: &Sandbox, failed: &[&str]) -> Vec<shapes::Problem> {
    let failure = s.verify_fails();
    assert_eq!(failure.report.failed(), failed, "{:?}", failure.report);
    let history = failure
        .report
        .checks
        .iter()
        .find(|c| c.name == "history")
        .unwrap();
    assert_eq!(history.problem_count as usize, history.problems.len());
    history.problems.clone()
}

fn a_busy_sound_ledger_replays_clean() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["create-user", "carol", "carol@example.com"]);
    at(&s, T0, &["deposit", "alice", "100"]);
    at(&s, T0, &["deposit", "bob", "50"]);
    at(&s, T0, &["settle"]);
    let captured = at(&s, T0, &["hold", "alice", "bob", "20"])["tx_id"].to_string();
    let released = at(&s, T0, &["hold", "alice", "carol", "10"])["tx_id"].to_string();
    at(&s, T0, &["hold", "bob", "alice", "5", "--expires-in", "1h"]);
    let paid = at(&s, T1, &["transfer", "alice", "bob", "30"])["tx_id"].to_string();
    at(&s, T1, &["transfer", "bob", "carol", "1000"]);
    at(&s, T1, &["transfer", "carol", "alice", "1"]);
    let cancelled = at(&s, T1, &["deposit", "carol", "3"])["tx_id"].to_string();
    at(&s, T1, &["cancel", &cancelled]);
    at(&s, T1, &["settle", "--limit", "1"]);
    at(&s, T1, &["settle", "--limit", "1"]);
    at(&s, T1, &["settle"]);
    at(&s, T2, &["capture", &captured, "15"]);
    at(&s, T2, &["release", &released]);
    at(&s, T2, &["transfer", "carol", "alice", "5"]);
    at(&s, T2, &["refund", &paid, "10"]);
    at(&s, T2, &["refund", &paid, "20"]);
    at(&s, T2, &["settle"]);
    at(&s, T3, &["withdraw", "bob", "10"]);
    at(&s, T3, &["deposit", "carol", "7"]);
    at(&s, T3, &["settle"]);
    at(&s, T4, &["settle"]);
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok, "{report:?}");
    let history = report.checks.iter().find(|c| c.name == "history").unwrap();
    // A FAILED transfer records the balance that lacked the funds on
    // PostgreSQL: three of them, on two sides each.
    let replayed = if is_sqlite() { "12" } else { "18" };
    assert!(
        history
            .detail
            .starts_with(&format!("{replayed} recorded balances replayed")),
        "{}",
        history.detail
    );
    // The figures replayed are those the readers show.
    let then = at(&s, T4, &["get-user", "alice", "--at", T1]);
    assert_eq!(balance(&then), "70.00");
    let then = at(&s, T4, &["get-user", "alice", "--at", T2]);
    assert_eq!(balance(&then), "85.00");
}

fn a_raised_running_balance_is_caught() {
    let s = settled();
    s.tamper(if is_sqlite() {
        "UPDATE postings SET balance_after = balance_after + 100000 WHERE account = 1 AND tx_id = 3"
    } else {
        "UPDATE transfers SET src_balance = src_balance + 100000 WHERE tx_id = 3"
    });
    // The readers believe it.
    let history = at(&s, T4, &["history", "alice"]);
    assert_eq!(history[0]["balance_after"], "1070.00", "{history}");
    let then = at(&s, T4, &["get-user", "alice", "--at-tx", "3"]);
    assert_eq!(balance(&then), "1070.00");
    let problems = caught(&s, &["history"]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].user.as_deref(), problems[0].tx_id),
        (Some("alice"), Some(3))
    );
    assert_eq!(
        problems[0].message,
        "user 'alice' has 1070.00 recorded as the balance after transfer 3, but the transfers replayed in the order they were decided give 70.00"
    );
}

fn a_moved_settle_time_is_caught() {
    let s = settled();
    // The first settle moved past the second: before it, alice had nothing.
    s.tamper(if is_sqlite() {
        "UPDATE settle_log SET settled_at = settled_at + 3 * 3600 * 1000 WHERE batch = 1"
    } else {
        "UPDATE transfers SET settled_at = settled_at + 3 * 3600 * 1000 WHERE tx_id IN (1, 2)"
    });
    let then = at(&s, T4, &["get-user", "alice", "--at", T1]);
    assert_eq!(balance(&then), "0.00", "{then}");
    // On PostgreSQL the time is the transfer's own, which the chain seals.
    let failed: &[&str] = if is_sqlite() {
        &["history"]
    } else {
        &["history", "chain"]
    };
    let problems = caught(&s, failed);
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    let out_of_order = "transfer 3 of user 'alice' is placed at 2026-01-01T02:00:00.000Z, before transfer 1 (2026-01-01T03:00:00.000Z), which was decided earlier";
    assert!(messages.contains(&out_of_order), "{messages:?}");
    if is_sqlite() {
        assert!(
            messages.contains(&"settle batch 2 is logged at 2026-01-01T02:00:00.000Z, before batch 1 (2026-01-01T03:00:00.000Z)"),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"transfer 1 was settled at 2026-01-01T00:00:00.000Z, but settle batch 1, which places it in the history of user 'alice', ran at 2026-01-01T03:00:00.000Z"),
            "{messages:?}"
        );
    }
}

/// Two settle batches at one instant: only their order tells which
/// balance is the later.
fn batches_of_one_instant_kept_in_order() -> Sandbox {
    let s = Sandbox::new();
    s.alice_and_bob();
    at(&s, T0, &["deposit", "alice", "100"]);
    at(&s, T0, &["transfer", "alice", "bob", "30"]);
    at(&s, T0, &["settle", "--limit", "1"]);
    at(&s, T0, &["settle", "--limit", "1"]);
    let then = at(&s, T1, &["get-user", "alice", "--at", T0]);
    assert_eq!(balance(&then), "70.00");
    s
}

fn batches_of_one_instant_put_out_of_order_are_caught() {
    let s = batches_of_one_instant_kept_in_order();
    s.tamper(if is_sqlite() {
        "UPDATE settle_log SET max_tx = 1 WHERE batch = 2"
    } else {
        "UPDATE transfers SET settle_batch = 3 - settle_batch WHERE tx_id IN (1, 2)"
    });
    let then = at(&s, T1, &["get-user", "alice", "--at", T0]);
    assert_eq!(balance(&then), "100.00", "{then}");
    let problems = caught(&s, &["history"]);
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    // The log still runs forward, but no batch covers transfer 2 now; on
    // PostgreSQL the replay in the new order disagrees with each balance.
    let wanted = if is_sqlite() {
        "transfer 2 was applied to user 'alice', but no settle batch places it in time"
    } else {
        "user 'alice' has 70.00 recorded as the balance after transfer 2, but the transfers replayed in the order they were decided give -30.00"
    };
    assert!(messages.contains(&wanted), "{messages:?}");
}

fn a_balance_given_to_a_failed_or_cancelled_transfer_is_caught() {
    let s = settled();
    at(&s, T3, &["transfer", "bob", "alice", "500"]);
    at(&s, T3, &["settle"]);
    let cancelled = at(&s, T3, &["transfer", "bob", "alice", "1"])["tx_id"].to_string();
    at(&s, T3, &["cancel", &cancelled]);
    s.ok(&["verify"]);
    // Transfer 4 FAILED: a ledger file records no balance for it, and
    // PostgreSQL the balance that lacked the funds (bob's 35.00).
    s.tamper(if is_sqlite() {
        "UPDATE postings SET balance_after = 53500 WHERE tx_id = 4 AND account = 2;
         UPDATE postings SET balance_after = 100 WHERE tx_id = 5 AND account = 2;"
    } else {
        "UPDATE transfers SET src_balance = 53500 WHERE tx_id = 4;
         UPDATE transfers SET src_balance = 100 WHERE tx_id = 5;"
    });
    let problems = caught(&s, &["history"]);
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    let failed = if is_sqlite() {
        "user 'bob' has 535.00 recorded as the balance after transfer 4, which is FAILED and records none"
    } else {
        "user 'bob' has 535.00 recorded as the balance after transfer 4, but the transfers replayed in the order they were decided give 35.00"
    };
    assert_eq!(
        messages,
        [
            failed,
            "user 'bob' has 1.00 recorded as the balance after transfer 5, which is CANCELLED and records none"
        ]
    );
}

fn a_running_balance_set_to_null_is_caught() {
    let s = settled();
    s.tamper(if is_sqlite() {
        "UPDATE postings SET balance_after = NULL WHERE account = 2 AND tx_id = 3"
    } else {
        "UPDATE transfers SET dst_balance = NULL WHERE tx_id = 3"
    });
    let problems = caught(&s, &["history"]);
    assert_eq!(
        problems[0].message,
        "user 'bob' has no balance recorded after transfer 3, but the transfers replayed in the order they were decided give 35.00"
    );
    assert_eq!(problems[0].user.as_deref(), Some("bob"));
}

/// alice holds 50.00 for bob (tx 2), pays him 10.00 (tx 3) settled at T1,
/// and the hold is captured and settled at T2: applied after tx 3.
fn captured_late() -> Sandbox {
    let s = Sandbox::new();
    s.alice_and_bob();
    at(&s, T0, &["deposit", "alice", "100"]);
    at(&s, T0, &["settle"]);
    at(&s, T0, &["hold", "alice", "bob", "50"]);
    at(&s, T0, &["transfer", "alice", "bob", "10"]);
    at(&s, T1, &["settle"]);
    at(&s, T1, &["capture", "2"]);
    at(&s, T2, &["settle"]);
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        balance(&at(&s, T3, &["get-user", "alice", "--at", T2])),
        "40.00"
    );
    s
}

fn a_late_posting_forgotten_is_caught() {
    let s = captured_late();
    s.tamper("DELETE FROM late_applied WHERE account = 1 AND tx_id = 2");
    // alice's balance after the hold is now read as before it.
    assert_eq!(
        balance(&at(&s, T3, &["get-user", "alice", "--at", T2])),
        "90.00"
    );
    let problems = caught(&s, &["history"]);
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "transfer 2 was settled at 2026-01-01T02:00:00.000Z, but settle batch 2, which places it in the history of user 'alice', ran at 2026-01-01T01:00:00.000Z",
            "user 'alice' has 40.00 recorded as the balance after transfer 2, but the transfers replayed in the order they were decided give 50.00",
            "user 'alice' has 90.00 recorded as the balance after transfer 3, but the transfers replayed in the order they were decided give 40.00",
        ],
    );
}

fn a_late_posting_moved_to_another_batch_is_caught() {
    let s = captured_late();
    s.tamper("UPDATE late_applied SET batch = 2 WHERE account = 2");
    let problems = caught(&s, &["history"]);
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert!(
        messages.contains(&"transfer 2 is listed as applied to user 'bob' late, in settle batch 2, but the batches before it had decided only up to transfer 1"),
        "{messages:?}"
    );
    // A row for a transfer that was never applied late.
    let s = captured_late();
    s.tamper("INSERT INTO late_applied (account, tx_id, batch) VALUES (2, 3, 9)");
    let problems = caught(&s, &["history"]);
    assert!(
        problems[0]
            .message
            .ends_with("in settle batch 9, which is not logged"),
        "{problems:?}"
    );
}

/// The clock stepped back between two settles (an NTP step): the later
/// batch is stamped no earlier than the one before, so the ledger still
/// verifies and `get-user --at` never sees the later batch first.
fn a_clock_stepped_back_between_settles_keeps_batches_in_order() {
    let s = Sandbox::new();
    s.alice_and_bob();
    at(&s, T0, &["deposit", "alice", "100"]);
    at(&s, T2, &["settle"]);
    at(&s, T2, &["transfer", "alice", "bob", "30"]);
    let second = at(&s, T1, &["settle"]);
    assert_eq!(second["completed"], 1, "{second}");
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
    let paid = at(&s, T3, &["get-transfer", "2"]);
    assert_eq!(
        paid["settled_at"], "2026-01-01T02:00:00.000Z",
        "stamped with the batch before it: {paid}"
    );
    assert_eq!(
        balance(&at(&s, T3, &["get-user", "alice", "--at", T1])),
        "0.00"
    );
    assert_eq!(
        balance(&at(&s, T3, &["get-user", "alice", "--at", T2])),
        "70.00"
    );
}

engine_tests! {
    both: [
        a_busy_sound_ledger_replays_clean,
        a_raised_running_balance_is_caught,
        a_moved_settle_time_is_caught,
        batches_of_one_instant_put_out_of_order_are_caught,
        a_balance_given_to_a_failed_or_cancelled_transfer_is_caught,
        a_running_balance_set_to_null_is_caught,
    ],
    sqlite: [
        a_clock_stepped_back_between_settles_keeps_batches_in_order,
        a_late_posting_forgotten_is_caught,
        a_late_posting_moved_to_another_batch_is_caught,
    ],
}
