//! Holds, refunds and balances in time, through the real binary, on each
//! engine.

use serde_json::Value;

use crate::common::Sandbox;

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-01T01:00:00Z";
const T2: &str = "2026-01-01T02:00:00Z";
const T3: &str = "2026-01-01T03:00:00Z";

/// `wallet --json ARGS…` run with the test clock at `now`.
fn run_at(s: &Sandbox, now: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    s.cmd(&full).env("WALLET_TEST_NOW", now).output().unwrap()
}

/// Runs `wallet --json ARGS…` with the test clock at `now`; asserts success.
fn at(s: &Sandbox, now: &str, args: &[&str]) -> Value {
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

fn money(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .to_string()
}

/// alice with 100.00 settled, bob with nothing, all at T0.
fn alice_with_100(s: &Sandbox) {
    s.alice_and_bob();
    at(s, T0, &["deposit", "alice", "100"]);
    at(s, T0, &["settle"]);
}

fn a_hold_reserves_money_and_one_beyond_available_is_refused() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let hold = at(&s, T0, &["hold", "alice", "bob", "60"]);
    assert_eq!(hold["status"], "HELD");
    let alice = at(&s, T0, &["get-user", "alice"]);
    assert_eq!(
        (
            money(&alice, "balance"),
            money(&alice, "held"),
            money(&alice, "available")
        ),
        ("100.00".into(), "60.00".into(), "40.00".into())
    );
    let message = fails_at(
        &s,
        T0,
        &["hold", "alice", "bob", "40.01"],
        "insufficient_funds",
        4,
    );
    assert!(message.contains("40.00 available"), "{message}");
    // An ordinary transfer cannot spend reserved money: it fails at settle.
    at(&s, T0, &["transfer", "alice", "bob", "50"]);
    let settled = at(&s, T1, &["settle"]);
    assert_eq!(settled["failed"], 1);
    let alice = at(&s, T1, &["get-user", "alice"]);
    assert_eq!(money(&alice, "balance"), "100.00");
    assert_eq!(money(&alice, "held"), "60.00");
}

fn a_partial_capture_settles_what_was_captured_and_releases_the_rest() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let id = at(&s, T0, &["hold", "alice", "bob", "60"])["tx_id"].to_string();
    let captured = at(&s, T0, &["capture", &id, "25.50"]);
    assert_eq!(
        captured["tx_id"].to_string(),
        id,
        "the hold keeps its tx_id"
    );
    assert_eq!(captured["status"], "PENDING");
    assert_eq!(captured["amount"], "25.50");
    assert_eq!(captured["hold_amount"], "60.00");
    let alice = at(&s, T0, &["get-user", "alice"]);
    assert_eq!(money(&alice, "held"), "0.00");
    assert_eq!(money(&alice, "available"), "74.50");
    at(&s, T1, &["settle"]);
    assert_eq!(
        money(&at(&s, T1, &["get-user", "alice"]), "balance"),
        "74.50"
    );
    assert_eq!(money(&at(&s, T1, &["get-user", "bob"]), "balance"), "25.50");
    // Captured once: a second capture or a release is refused.
    fails_at(&s, T1, &["capture", &id], "not_held", 4);
    fails_at(&s, T1, &["release", &id], "not_held", 4);
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
}

fn a_full_capture_is_never_failed_for_funds() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let id = at(&s, T0, &["hold", "alice", "bob", "100"])["tx_id"].to_string();
    // A later transfer queued first in the settle order cannot take it.
    at(&s, T0, &["transfer", "alice", "bob", "1"]);
    at(&s, T0, &["settle"]);
    at(&s, T0, &["capture", &id]);
    let settled = at(&s, T1, &["settle"]);
    assert_eq!(
        (settled["completed"].as_u64(), settled["failed"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(at(&s, T1, &["get-transfer", &id])["status"], "COMPLETED");
    assert_eq!(
        money(&at(&s, T1, &["get-user", "bob"]), "balance"),
        "100.00"
    );
}

fn a_release_gives_the_money_back_and_moves_nothing() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let id = at(&s, T0, &["hold", "alice", "bob", "70"])["tx_id"].to_string();
    let released = at(&s, T0, &["release", &id]);
    assert_eq!(released["status"], "RELEASED");
    let alice = at(&s, T0, &["get-user", "alice"]);
    assert_eq!(
        (money(&alice, "available"), money(&alice, "balance")),
        ("100.00".into(), "100.00".into())
    );
    fails_at(&s, T0, &["capture", &id], "not_held", 4);
    // Capture of something that is not a hold at all.
    fails_at(&s, T0, &["capture", "1"], "not_held", 4);
    fails_at(&s, T0, &["capture", "999"], "transfer_not_found", 3);
}

fn an_expired_hold_stops_reserving_what_it_reserved_not_its_amount() {
    let s = Sandbox::new();
    alice_with_100(&s);
    at(
        &s,
        T0,
        &["hold", "alice", "bob", "80", "--expires-in", "1h"],
    );
    // `held` counts a hold's `hold_amount`; its `amount` is what a capture
    // takes. Were the two ever apart, the reservation is what expiry frees.
    s.tamper("UPDATE transfers SET amount = 30 WHERE status = 'HELD'");
    let later = at(&s, T2, &["get-user", "alice"]);
    assert_eq!(
        (money(&later, "held"), money(&later, "available")),
        ("0.00".into(), "100.00".into())
    );
    let listed = at(&s, T2, &["users"]);
    assert!(listed.to_string().contains("\"held\":\"0.00\""), "{listed}");
}

fn a_hold_expires_by_the_clock_before_anything_marks_it() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let id = at(
        &s,
        T0,
        &["hold", "alice", "bob", "80", "--expires-in", "1h"],
    )["tx_id"]
        .to_string();
    assert_eq!(money(&at(&s, T0, &["get-user", "alice"]), "held"), "80.00");
    // From its expiry on, reads leave it out, without any write.
    let later = at(&s, T2, &["get-user", "alice"]);
    assert_eq!(
        (money(&later, "held"), money(&later, "available")),
        ("0.00".into(), "100.00".into())
    );
    let expired = at(&s, T2, &["get-transfer", &id]);
    assert_eq!(expired["status"], "EXPIRED");
    // It ended at its expiry, which is what a reconciliation needs.
    assert_eq!(
        expired["expires_at"],
        at(&s, T0, &["get-transfer", &id])["expires_at"]
    );
    assert_eq!(expired["settled_at"], expired["expires_at"], "{expired}");
    let listed = at(&s, T2, &["history", "alice", "--status", "EXPIRED"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    fails_at(&s, T2, &["capture", &id], "not_held", 4);
    // settle marks it; the stored figures then agree.
    let settled = at(&s, T2, &["settle"]);
    assert_eq!(settled["expired"], 1);
    let marked = at(&s, T3, &["get-transfer", &id]);
    assert_eq!(marked["settled_at"], expired["expires_at"], "{marked}");
    let exported = s.ok(&["export", "--status", "EXPIRED"]);
    let line: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(line["settled_at"], expired["expires_at"], "{line}");
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
    // A hold whose expiry has passed cannot be placed.
    fails_at(
        &s,
        T2,
        &["hold", "alice", "bob", "1", "--expires-at", T1],
        "invalid_time",
        5,
    );
    fails_at(
        &s,
        T2,
        &["hold", "alice", "bob", "1", "--expires-in", "5w"],
        "invalid_time",
        5,
    );
}

fn concurrent_captures_of_one_hold_let_exactly_one_win() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let id = at(&s, T0, &["hold", "alice", "bob", "50"])["tx_id"].to_string();
    let runs: Vec<_> = (0..6)
        .map(|i| {
            let verb = if i % 2 == 0 { "capture" } else { "release" };
            s.process(&["--json", verb, &id])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<i32> = runs
        .into_iter()
        .map(|child| child.wait_with_output().unwrap().status.code().unwrap())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 0 || *c == 4), "{codes:?}");
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
}

fn refunds_never_add_up_to_more_than_the_transfer() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let paid = at(&s, T0, &["transfer", "alice", "bob", "40"])["tx_id"].to_string();
    // Only a COMPLETED transfer can be refunded.
    fails_at(&s, T0, &["refund", &paid], "not_refundable", 4);
    at(&s, T0, &["settle"]);
    let first = at(&s, T0, &["refund", &paid, "15"]);
    assert_eq!(first["status"], "PENDING");
    let dropped = at(&s, T0, &["refund", &paid, "5"])["tx_id"].clone();
    at(&s, T0, &["cancel", &dropped.to_string()]);
    // 15 queued: 25 left, counting the refund not yet settled.
    let message = fails_at(
        &s,
        T0,
        &["refund", &paid, "25.01"],
        "refund_exceeds_original",
        4,
    );
    assert!(message.contains("25.00 is left"), "{message}");
    fails_at(&s, T0, &["refund", &paid], "refund_exceeds_original", 4);
    let second = at(&s, T0, &["refund", &paid, "25", "--id", "r2"]);
    // The same key and fields replay it.
    let again = at(&s, T0, &["refund", &paid, "25", "--id", "r2"]);
    assert_eq!(
        (again["tx_id"].clone(), again["replayed"].clone()),
        (second["tx_id"].clone(), Value::Bool(true))
    );
    at(&s, T1, &["settle"]);
    let original = at(&s, T1, &["get-transfer", &paid]);
    // `refunded` counts what was paid back (COMPLETED); `refunds` lists
    // every refund, and `refund_details` says what became of each.
    assert_eq!(original["refunded"], "40.00");
    assert_eq!(
        original["refunds"],
        serde_json::json!([first["tx_id"], dropped, second["tx_id"]])
    );
    assert_eq!(
        original["refund_details"],
        serde_json::json!([
            {"tx_id": first["tx_id"], "amount": "15.00", "status": "COMPLETED"},
            {"tx_id": dropped, "amount": "5.00", "status": "CANCELLED"},
            {"tx_id": second["tx_id"], "amount": "25.00", "status": "COMPLETED"},
        ])
    );
    let table = s.ok(&["get-transfer", &paid]);
    assert!(
        table.contains(&format!("{dropped} (5.00 CANCELLED)")),
        "{table}"
    );
    let refund = at(&s, T1, &["get-transfer", &first["tx_id"].to_string()]);
    assert_eq!(
        (refund["src"].clone(), refund["dst"].clone()),
        (Value::from("bob"), Value::from("alice"))
    );
    assert_eq!(refund["refund_of"].to_string(), paid);
    assert_eq!(
        money(&at(&s, T1, &["get-user", "alice"]), "balance"),
        "100.00"
    );
    // A deposit's refund is a withdrawal.
    let deposit = at(&s, T1, &["refund", "1", "10"]);
    let withdrawal = at(&s, T1, &["get-transfer", &deposit["tx_id"].to_string()]);
    assert_eq!(
        (withdrawal["src"].clone(), withdrawal["dst"].clone()),
        (Value::from("alice"), Value::Null)
    );
    // A refund whose source has spent the money fails at settle; one still
    // queued is PENDING. Both are listed; neither counts as refunded.
    at(&s, T1, &["settle"]);
    at(&s, T1, &["transfer", "alice", "bob", "90"]);
    let failed = at(&s, T1, &["refund", "1", "5"])["tx_id"].clone();
    at(&s, T1, &["settle"]);
    let pending = at(&s, T1, &["refund", "1", "5"])["tx_id"].clone();
    let original = at(&s, T1, &["get-transfer", "1"]);
    assert_eq!(original["refunded"], "10.00", "{original}");
    assert_eq!(
        original["refund_details"],
        serde_json::json!([
            {"tx_id": deposit["tx_id"], "amount": "10.00", "status": "COMPLETED"},
            {"tx_id": failed, "amount": "5.00", "status": "FAILED"},
            {"tx_id": pending, "amount": "5.00", "status": "PENDING"},
        ])
    );
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
}

fn balances_in_time_before_between_and_after_transfers() {
    let s = Sandbox::new();
    s.alice_and_bob();
    at(&s, T0, &["deposit", "alice", "100"]);
    at(&s, T0, &["settle"]);
    let paid = at(&s, T1, &["transfer", "alice", "bob", "30"])["tx_id"].to_string();
    at(&s, T2, &["settle"]);
    let balance_at =
        |who: &str, when: &str| money(&at(&s, T3, &["get-user", who, "--at", when]), "balance");
    assert_eq!(balance_at("alice", "2025-12-31"), "0.00");
    assert_eq!(balance_at("alice", "2026-01-01T00:30:00Z"), "100.00");
    assert_eq!(
        balance_at("alice", T1),
        "100.00",
        "queued at T1, settled at T2"
    );
    assert_eq!(balance_at("alice", T2), "70.00");
    assert_eq!(balance_at("bob", "2026-01-01"), "30.00");
    let after = at(&s, T3, &["get-user", "alice", "--at-tx", &paid]);
    assert_eq!(
        (money(&after, "balance"), after["tx_id"].to_string()),
        ("70.00".into(), paid.clone())
    );
    fails_at(
        &s,
        T3,
        &["get-user", "alice", "--at-tx", "999"],
        "transfer_not_found",
        3,
    );
    fails_at(
        &s,
        T3,
        &["get-user", "alice", "--at", "noon"],
        "invalid_time",
        5,
    );
    let history = at(&s, T3, &["history", "alice"]);
    let running: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["balance_after"].as_str().unwrap())
        .collect();
    assert_eq!(running, ["70.00", "100.00"]);
}

fn batch_lines_place_holds() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let file = s.dir.path().join("holds.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"30\",\"hold\":true,\"expires_in\":\"1h\"}\n",
            "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"5\"}\n",
            "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"80\",\"hold\":true}\n",
        ),
    )
    .unwrap();
    let out = s
        .cmd(&["transfer", "--batch", file.to_str().unwrap()])
        .env("WALLET_TEST_NOW", T0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "one line is refused");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["status"], "HELD");
    assert_eq!(lines[1]["status"], "PENDING");
    assert_eq!(lines[2]["error"]["code"], "insufficient_funds");
    let alice = at(&s, T0, &["get-user", "alice"]);
    assert_eq!(
        (money(&alice, "held"), money(&alice, "available")),
        ("30.00".into(), "65.00".into())
    );
    assert!(
        at(&s, T0, &["get-transfer", &lines[0]["tx_id"].to_string()])["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-01T01:00:00")
    );
}

fn verify_finds_a_reservation_that_is_not_the_sum_of_its_holds() {
    let s = Sandbox::new();
    alice_with_100(&s);
    at(&s, T0, &["hold", "alice", "bob", "60"]);
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
    // Reserved money quietly given back: the holds still say 60.00.
    s.tamper("UPDATE accounts SET held = 0 WHERE name = 'alice'");
    let failure = s.verify_fails();
    let holds = failure
        .report
        .checks
        .iter()
        .find(|check| check.name == "holds")
        .expect("a holds check");
    assert!(!holds.ok);
    assert!(
        holds.problems[0]
            .message
            .contains("held but its HELD holds sum to 60.00"),
        "{:?}",
        holds.problems
    );
}

fn a_hold_with_a_key_replays_and_a_transfer_cannot_take_its_key() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let first = at(&s, T0, &["hold", "alice", "bob", "10", "--id", "order-9"]);
    let again = at(&s, T0, &["hold", "alice", "bob", "10", "--id", "order-9"]);
    assert_eq!(again["tx_id"], first["tx_id"]);
    assert_eq!(again["replayed"], true);
    assert_eq!(
        money(&at(&s, T0, &["get-user", "alice"]), "held"),
        "10.00",
        "held once"
    );
    let message = fails_at(
        &s,
        T0,
        &["transfer", "alice", "bob", "10", "--id", "order-9"],
        "idempotency_conflict",
        4,
    );
    assert!(message.contains("kind"), "{message}");
    fails_at(
        &s,
        T0,
        &["hold", "alice", "bob", "11", "--id", "order-9"],
        "idempotency_conflict",
        4,
    );
    // Captured since: a retry of the hold still answers with the hold.
    at(&s, T0, &["capture", &first["tx_id"].to_string(), "4"]);
    let later = at(&s, T0, &["hold", "alice", "bob", "10", "--id", "order-9"]);
    assert_eq!(
        (later["tx_id"].clone(), later["status"].clone()),
        (first["tx_id"].clone(), Value::from("PENDING"))
    );
}

fn a_hold_captured_after_later_transfers_counts_from_when_it_was_applied() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let hold = at(&s, T0, &["hold", "alice", "bob", "50"])["tx_id"].to_string();
    let later = at(&s, T0, &["transfer", "alice", "bob", "10"])["tx_id"].to_string();
    at(&s, T1, &["settle"]);
    at(&s, T1, &["capture", &hold]);
    at(&s, T2, &["settle"]);
    let balance_at = |when: &str| -> (String, Value) {
        let then = at(&s, T3, &["get-user", "alice", "--at", when]);
        (money(&then, "balance"), then["tx_id"].clone())
    };
    // The hold has the smaller id but was applied last.
    assert_eq!(
        balance_at(T1),
        ("90.00".into(), Value::from(later.parse::<i64>().unwrap()))
    );
    assert_eq!(
        balance_at(T2),
        ("40.00".into(), Value::from(hold.parse::<i64>().unwrap()))
    );
    assert_eq!(
        balance_at(T3),
        ("40.00".into(), Value::from(hold.parse::<i64>().unwrap()))
    );
    assert_eq!(
        money(
            &at(&s, T3, &["get-user", "alice", "--at-tx", &hold]),
            "balance"
        ),
        "40.00"
    );
    assert_eq!(
        money(
            &at(&s, T3, &["get-user", "alice", "--at-tx", &later]),
            "balance"
        ),
        "90.00"
    );
    assert_eq!(
        money(&at(&s, T3, &["get-user", "bob", "--at", T2]), "balance"),
        "60.00"
    );
}

fn a_hold_retried_with_another_expiry_is_a_conflict_and_bad_expiries_are_invalid_time() {
    let s = Sandbox::new();
    alice_with_100(&s);
    at(
        &s,
        T0,
        &[
            "hold",
            "alice",
            "bob",
            "10",
            "--id",
            "h",
            "--expires-at",
            "2026-01-02",
        ],
    );
    let message = fails_at(
        &s,
        T0,
        &[
            "hold",
            "alice",
            "bob",
            "10",
            "--id",
            "h",
            "--expires-at",
            "2030-12-31",
        ],
        "idempotency_conflict",
        4,
    );
    assert!(message.contains("expiry"), "{message}");
    fails_at(
        &s,
        T0,
        &["hold", "alice", "bob", "10", "--id", "h"],
        "idempotency_conflict",
        4,
    );
    // Relative to when it was placed: a retry cannot repeat it, so it replays.
    at(
        &s,
        T0,
        &[
            "hold",
            "alice",
            "bob",
            "5",
            "--id",
            "r",
            "--expires-in",
            "1h",
        ],
    );
    let again = at(
        &s,
        T1,
        &[
            "hold",
            "alice",
            "bob",
            "5",
            "--id",
            "r",
            "--expires-in",
            "1h",
        ],
    );
    assert_eq!(again["replayed"], true);
    // The same duration however written replays; another duration, an
    // instant or no expiry at all is another request.
    let same = at(
        &s,
        T2,
        &[
            "hold",
            "alice",
            "bob",
            "5",
            "--id",
            "r",
            "--expires-in",
            "60m",
        ],
    );
    assert_eq!(same["replayed"], true);
    for other in [
        &["--expires-in", "7d"][..],
        &["--expires-in", "59m"],
        &["--expires-at", T3],
        &[],
    ] {
        let mut args = vec!["hold", "alice", "bob", "5", "--id", "r"];
        args.extend_from_slice(other);
        let message = fails_at(&s, T0, &args, "idempotency_conflict", 4);
        assert!(message.contains("expiry"), "{other:?}: {message}");
    }
    for bad in ["3000000d", "-5m", "+5m", " 5m"] {
        let message = fails_at(
            &s,
            T0,
            &["hold", "alice", "bob", "1", "--expires-in", bad],
            "invalid_time",
            5,
        );
        assert!(!message.contains("unit must be"), "{bad}: {message}");
    }
    // A past expiry is wrong whatever the funds.
    fails_at(
        &s,
        T0,
        &["hold", "alice", "bob", "500", "--expires-at", "2025-01-01"],
        "invalid_time",
        5,
    );
}

fn an_expired_hold_is_named_expired_by_cancel_and_refund_too() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let id = at(
        &s,
        T0,
        &["hold", "alice", "bob", "10", "--expires-in", "1h"],
    )["tx_id"]
        .to_string();
    let message = fails_at(&s, T2, &["cancel", &id], "not_pending", 4);
    assert!(message.contains("EXPIRED"), "{message}");
    let message = fails_at(&s, T2, &["refund", &id], "not_refundable", 4);
    assert!(message.contains("EXPIRED"), "{message}");
}

/// `wallet --json transfer --batch - ARGS…` fed `input` at T0: each line's
/// result, the exit status and stderr.
fn batch_at_t0(s: &Sandbox, input: &str, args: &[&str]) -> (Vec<Value>, Option<i32>, String) {
    let mut full = vec!["--json", "transfer", "--batch", "-"];
    full.extend_from_slice(args);
    let out = s
        .cmd(&full)
        .env("WALLET_TEST_NOW", T0)
        .write_stdin(input.to_string())
        .output()
        .unwrap();
    crate::common::batch_results(&out)
}

fn holds_in_a_batch_are_decided_in_input_order_with_ids_in_that_order() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let input = concat!(
        "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"60\",\"hold\":true}\n",
        "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"50\"}\n",
        "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"30\",\"hold\":true}\n",
    );
    let (lines, code, _) = batch_at_t0(&s, input, &[]);
    assert_eq!(code, Some(5), "{lines:?}");
    assert_eq!(lines[0]["status"], "HELD", "{lines:?}");
    assert_eq!(lines[1]["status"], "PENDING", "{lines:?}");
    assert_eq!(lines[2]["error"]["code"], "insufficient_funds", "{lines:?}");
    let (first, second) = (lines[0]["tx_id"].as_i64(), lines[1]["tx_id"].as_i64());
    assert!(first.unwrap() < second.unwrap(), "{lines:?}");
    let alice = at(&s, T0, &["get-user", "alice"]);
    assert_eq!(
        (money(&alice, "held"), money(&alice, "available")),
        ("60.00".into(), "-10.00".into())
    );
}

fn a_bad_line_in_an_atomic_or_dry_run_batch_is_the_only_one_reported_as_failed() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let jsonl = concat!(
        "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"10\",\"hold\":true}\n",
        "{\"src\":\"alice\",\"dst\":\"nobody\",\"amount\":\"1\"}\n",
    );
    for flag in ["--atomic", "--dry-run"] {
        let (lines, code, stderr) = batch_at_t0(&s, jsonl, &[flag]);
        assert_eq!(code, Some(5), "{flag}: {lines:?} {stderr}");
        // Nothing is kept, so only the refused line is reported.
        assert_eq!(lines.len(), 1, "{flag}: {lines:?}");
        assert_eq!(lines[0]["line"], 2, "{flag}: {lines:?}");
        assert_eq!(
            lines[0]["error"]["code"], "user_not_found",
            "{flag}: {lines:?}"
        );
        assert!(
            stderr.contains("1 of 2 batch lines failed"),
            "{flag}: {stderr}"
        );
    }
    let csv = "src,dst,amount\nalice,bob,10\nalice,nobody,1\n";
    for flag in ["--atomic", "--dry-run"] {
        let (lines, code, stderr) = batch_at_t0(&s, csv, &["--format", "csv", flag]);
        assert_eq!(code, Some(5), "{flag}: {lines:?} {stderr}");
        assert_eq!(lines.len(), 1, "{flag}: {lines:?}");
        assert_eq!(lines[0]["line"], 3, "{flag}: {lines:?}");
        assert_eq!(
            lines[0]["error"]["code"], "user_not_found",
            "{flag}: {lines:?}"
        );
        assert!(
            stderr.contains("1 of 2 batch lines failed"),
            "{flag}: {stderr}"
        );
    }
    let alice = at(&s, T0, &["get-user", "alice"]);
    assert_eq!(
        (money(&alice, "held"), money(&alice, "available")),
        ("0.00".into(), "100.00".into())
    );
}

/// A capture that commits while a settle waits for the source's lock turns
/// a hold older than the batch's transfers into PENDING work the batch did
/// not claim: the batch must not spend what the hold reserved on them. The
/// other program holds alice, the capture asks for her first, the settle
/// (which already read the queue) second.
fn a_hold_captured_while_a_settle_waits_is_paid_before_the_newer_transfers() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let id = at(&s, T0, &["hold", "alice", "bob", "100"])["tx_id"].to_string();
    let newer = at(&s, T0, &["transfer", "alice", "bob", "100"])["tx_id"].to_string();
    let mut other = s.postgres();
    other
        .batch_execute("BEGIN; SELECT 1 FROM accounts WHERE name = 'alice' FOR UPDATE")
        .unwrap();
    let waiting = |args: &[&str]| {
        let mut full = vec!["--json", "--lock-timeout", "30000"];
        full.extend_from_slice(args);
        let child = s
            .process(&full)
            .env("WALLET_TEST_NOW", T0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        child
    };
    let capture = waiting(&["capture", &id]);
    let settle = waiting(&["settle"]);
    other.batch_execute("COMMIT").unwrap();
    for child in [capture, settle] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    at(&s, T0, &["settle"]);
    assert_eq!(at(&s, T0, &["get-transfer", &id])["status"], "COMPLETED");
    let refused = at(&s, T0, &["get-transfer", &newer]);
    assert_eq!(
        (&refused["status"], &refused["reason"]),
        (&Value::from("FAILED"), &Value::from("insufficient_funds")),
        "{refused}"
    );
    assert_eq!(
        money(&at(&s, T0, &["get-user", "bob"]), "balance"),
        "100.00"
    );
    assert_eq!(at(&s, T0, &["verify"])["ok"], true);
}

/// A ledger of version 7 has no index of captured holds: a read asks for
/// the upgrade, `migrate` adds the index alone, and a hold captured before
/// it settles from what it reserved.
fn a_version_7_ledger_gains_the_index_of_captured_holds() {
    let s = Sandbox::new();
    alice_with_100(&s);
    let id = at(&s, T0, &["hold", "alice", "bob", "60"])["tx_id"].to_string();
    at(&s, T0, &["transfer", "alice", "bob", "40"]);
    at(&s, T0, &["capture", &id]);
    s.tamper(crate::common::POSTGRES_TO_VERSION_7);
    s.fails(&["verify"], "upgrade_needed", 7);
    let migrated = at(&s, T0, &["migrate"]);
    assert_eq!(
        (&migrated["from"], &migrated["to"]),
        (&Value::from(7), &Value::from(9))
    );
    // Every test's ledger is a schema of one database: this one's.
    let index = s.query_text(
        "SELECT count(*)::text FROM pg_indexes
          WHERE schemaname = current_schema() AND indexname = 'transfers_captured'",
    );
    assert_eq!(index, [Some("1".to_string())]);
    let settled = at(&s, T0, &["settle"]);
    assert_eq!(
        (settled["completed"].as_u64(), settled["failed"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(at(&s, T0, &["get-transfer", &id])["status"], "COMPLETED");
    assert_eq!(at(&s, T0, &["verify"])["ok"], true);
}

engine_tests! {
    both: [
        a_hold_reserves_money_and_one_beyond_available_is_refused,
        a_partial_capture_settles_what_was_captured_and_releases_the_rest,
        a_full_capture_is_never_failed_for_funds,
        a_release_gives_the_money_back_and_moves_nothing,
        a_hold_expires_by_the_clock_before_anything_marks_it,
        concurrent_captures_of_one_hold_let_exactly_one_win,
        refunds_never_add_up_to_more_than_the_transfer,
        balances_in_time_before_between_and_after_transfers,
        batch_lines_place_holds,
        verify_finds_a_reservation_that_is_not_the_sum_of_its_holds,
        a_hold_with_a_key_replays_and_a_transfer_cannot_take_its_key,
        a_hold_captured_after_later_transfers_counts_from_when_it_was_applied,
        a_hold_retried_with_another_expiry_is_a_conflict_and_bad_expiries_are_invalid_time,
        an_expired_hold_is_named_expired_by_cancel_and_refund_too,
        an_expired_hold_stops_reserving_what_it_reserved_not_its_amount,
        holds_in_a_batch_are_decided_in_input_order_with_ids_in_that_order,
        a_bad_line_in_an_atomic_or_dry_run_batch_is_the_only_one_reported_as_failed,
    ],
    postgres: [
        a_hold_captured_while_a_settle_waits_is_paid_before_the_newer_transfers,
        a_version_7_ledger_gains_the_index_of_captured_holds,
    ],
}
