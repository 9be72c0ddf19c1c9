//! Amounts that name their currency, and balances kept per currency,
//! through the real binary, on each engine: the ledger's default is PHP
//! (2 places); BTC (8 places) and JPY (none) are added.

use serde_json::Value;

use crate::common::{Sandbox, shapes};

/// alice and bob, with BTC and JPY added to the ledger.
fn three_currencies() -> Sandbox {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    s.ok(&["currency", "add", "JPY", "--scale", "0"]);
    s
}

fn user(s: &Sandbox, args: &[&str]) -> shapes::User {
    let mut full = vec!["get-user"];
    full.extend_from_slice(args);
    s.json(&full)
}

/// One currency's figures in a user's `balances` object.
fn balance(user: &shapes::User, code: &str) -> shapes::Balance {
    user.balances
        .as_ref()
        .expect("get-user shows balances")
        .get(code)
        .unwrap_or_else(|| panic!("no {code} in {user:?}"))
        .clone()
}

fn transfer(s: &Sandbox, tx_id: i64) -> shapes::Transfer {
    s.json(&["get-transfer", &tx_id.to_string()])
}

fn queued(s: &Sandbox, args: &[&str]) -> i64 {
    let queued: shapes::Queued = s.json(args);
    queued.tx_id
}

fn verify_ok(s: &Sandbox) {
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok, "{report:?}");
}

fn balances_are_kept_per_currency_and_a_btc_transfer_never_moves_php() {
    let s = three_currencies();
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["deposit", "alice", "1.5", "--currency", "BTC"]);
    s.ok(&["deposit", "alice", "300", "--currency", "jpy"]);
    let moved = queued(
        &s,
        &["transfer", "alice", "bob", "0.25", "--currency", "btc"],
    );
    let pending = user(&s, &["alice"]);
    assert_eq!(balance(&pending, "BTC").pending_out, "0.25000000");
    assert_eq!(pending.pending_out, "0.00", "nothing pending in PHP");
    s.ok(&["settle"]);
    let alice = user(&s, &["alice"]);
    assert_eq!(
        (alice.balance.as_str(), alice.currency.as_str()),
        ("100.00", "PHP")
    );
    let btc = balance(&alice, "BTC");
    assert_eq!(
        (btc.balance.as_str(), btc.available.as_str()),
        ("1.25000000", "1.25000000")
    );
    assert_eq!(balance(&alice, "JPY").balance, "300");
    assert_eq!(balance(&alice, "PHP").balance, "100.00");
    let bob = user(&s, &["bob"]);
    assert_eq!(bob.balance, "0.00", "a BTC transfer moves no PHP");
    assert_eq!(balance(&bob, "BTC").balance, "0.25000000");
    assert!(
        !bob.balances.as_ref().unwrap().contains_key("JPY"),
        "a currency bob never touched is not listed: {bob:?}"
    );
    let in_btc = user(&s, &["bob", "--currency", "BTC"]);
    assert_eq!(
        (in_btc.balance.as_str(), in_btc.currency.as_str()),
        ("0.25000000", "BTC")
    );
    let in_jpy = user(&s, &["bob", "--currency", "jpy"]);
    assert_eq!(
        (
            in_jpy.balance.as_str(),
            in_jpy.available.as_str(),
            in_jpy.currency.as_str()
        ),
        ("0", "0", "JPY"),
        "an untouched currency shows zeros"
    );
    let shown = transfer(&s, moved);
    assert_eq!(
        (
            shown.amount.as_str(),
            shown.currency.as_str(),
            shown.status.as_str()
        ),
        ("0.25000000", "BTC", "COMPLETED")
    );
    let history: Vec<shapes::Transfer> = s.json(&["history", "bob"]);
    assert_eq!(history[0].currency, "BTC");
    assert_eq!(history[0].balance_after.as_deref(), Some("0.25000000"));
    // The external account is per currency, and each sums to zero.
    verify_ok(&s);
}

fn amounts_are_read_at_their_currency_s_scale() {
    let s = three_currencies();
    let too_fine = s.fails(
        &["deposit", "alice", "0.123456789", "--currency", "BTC"],
        "invalid_amount",
        5,
    );
    assert!(too_fine.contains("BTC"), "{too_fine}");
    s.fails(
        &["deposit", "alice", "1.5", "--currency", "JPY"],
        "invalid_amount",
        5,
    );
    s.fails(&["deposit", "alice", "1.555"], "invalid_amount", 5);
    let btc = queued(&s, &["deposit", "alice", "0.12345678", "--currency", "BTC"]);
    let jpy = queued(&s, &["deposit", "alice", "15", "--currency", "JPY"]);
    let php = queued(&s, &["deposit", "alice", "1.55"]);
    assert_eq!(transfer(&s, btc).amount, "0.12345678");
    assert_eq!(transfer(&s, jpy).amount, "15");
    assert_eq!(transfer(&s, php).amount, "1.55");
    s.ok(&["settle"]);
    let alice = user(&s, &["alice"]);
    assert_eq!(balance(&alice, "BTC").balance, "0.12345678");
    assert_eq!(balance(&alice, "JPY").balance, "15");
    assert_eq!(alice.balance, "1.55");
    verify_ok(&s);
}

fn a_source_with_nothing_in_a_currency_fails_for_want_of_funds() {
    let s = three_currencies();
    s.ok(&["deposit", "bob", "500"]);
    let tx = queued(&s, &["transfer", "bob", "alice", "1", "--currency", "BTC"]);
    s.ok(&["settle"]);
    let failed = transfer(&s, tx);
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_deref()),
        ("FAILED", Some("insufficient_funds"))
    );
    let bob = user(&s, &["bob"]);
    assert_eq!(bob.balance, "500.00", "PHP does not pay for BTC");
    assert_eq!(balance(&bob, "BTC").balance, "0.00000000");
    assert_eq!(balance(&bob, "BTC").pending_out, "0.00000000");
    verify_ok(&s);
}

fn frozen_covers_every_currency() {
    let s = three_currencies();
    s.ok(&["deposit", "alice", "2", "--currency", "BTC"]);
    s.ok(&["settle"]);
    s.ok(&["freeze", "alice"]);
    let tx = queued(&s, &["transfer", "alice", "bob", "1", "--currency", "BTC"]);
    s.ok(&["settle"]);
    assert_eq!(transfer(&s, tx).reason.as_deref(), Some("account_frozen"));
    s.fails(
        &["hold", "alice", "bob", "1", "--currency", "BTC"],
        "account_frozen",
        4,
    );
    assert_eq!(balance(&user(&s, &["alice"]), "BTC").balance, "2.00000000");
}

fn close_is_refused_while_another_currency_holds_money() {
    let s = three_currencies();
    s.ok(&["deposit", "alice", "0.5", "--currency", "BTC"]);
    s.ok(&["settle"]);
    let left = s.fails(&["close", "alice"], "account_not_empty", 4);
    assert!(left.contains("BTC"), "{left}");
    s.ok(&["withdraw", "alice", "0.5", "--currency", "BTC"]);
    s.ok(&["settle"]);
    s.ok(&["close", "alice"]);
    assert!(user(&s, &["alice"]).closed);
    verify_ok(&s);
}

fn holds_capture_release_and_cancel_work_in_their_currency() {
    let s = three_currencies();
    s.ok(&["deposit", "alice", "1", "--currency", "BTC"]);
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["settle"]);
    let hold = queued(&s, &["hold", "alice", "bob", "0.4", "--currency", "BTC"]);
    let alice = user(&s, &["alice"]);
    assert_eq!(balance(&alice, "BTC").held, "0.40000000");
    assert_eq!(balance(&alice, "BTC").available, "0.60000000");
    assert_eq!(alice.held, "0.00", "a BTC hold reserves no PHP");
    // The capture's amount is read at the hold's scale.
    s.fails(
        &["capture", &hold.to_string(), "0.000000001"],
        "invalid_amount",
        5,
    );
    s.ok(&["capture", &hold.to_string(), "0.15"]);
    s.ok(&["settle"]);
    let second = queued(&s, &["hold", "alice", "bob", "0.1", "--currency", "BTC"]);
    s.ok(&["release", &second.to_string()]);
    let pending = queued(
        &s,
        &["transfer", "alice", "bob", "0.2", "--currency", "BTC"],
    );
    s.ok(&["cancel", &pending.to_string()]);
    let alice = user(&s, &["alice"]);
    let btc = balance(&alice, "BTC");
    assert_eq!(
        (
            btc.balance.as_str(),
            btc.held.as_str(),
            btc.pending_out.as_str()
        ),
        ("0.85000000", "0.00000000", "0.00000000")
    );
    assert_eq!(alice.balance, "100.00");
    assert_eq!(balance(&user(&s, &["bob"]), "BTC").balance, "0.15000000");
    verify_ok(&s);
}

fn batch_lines_and_csv_rows_name_their_currency() {
    let s = three_currencies();
    let jsonl = s.dir.path().join("lines.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            "{\"dst\":\"alice\",\"amount\":\"0.5\",\"currency\":\"btc\"}\n",
            "{\"dst\":\"alice\",\"amount\":\"7\"}\n",
            "{\"dst\":\"alice\",\"amount\":\"0.5\",\"currency\":\"JPY\"}\n",
            "{\"dst\":\"alice\",\"amount\":\"1\",\"currency\":\"XYZ\"}\n",
        ),
    )
    .unwrap();
    let out = s
        .cmd(&["--json", "transfer", "--batch", jsonl.to_str().unwrap()])
        .output()
        .unwrap();
    let (lines, code, _) = crate::common::batch_results(&out);
    assert_eq!(code, Some(5), "two lines are refused: {lines:?}");
    assert_eq!(lines[0]["status"], "PENDING");
    assert_eq!(lines[1]["status"], "PENDING");
    assert_eq!(lines[2]["error"]["code"], "invalid_amount");
    assert_eq!(lines[3]["error"]["code"], "invalid_currency");
    let csv = s.dir.path().join("rows.csv");
    std::fs::write(
        &csv,
        "src,dst,amount,currency\nalice,bob,0.125,BTC\nalice,bob,2,\n,bob,9,jpy\n",
    )
    .unwrap();
    let out = s
        .cmd(&[
            "--json",
            "transfer",
            "--batch",
            csv.to_str().unwrap(),
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    let (lines, code, stderr) = crate::common::batch_results(&out);
    assert_eq!(code, Some(0), "{lines:?} {stderr}");
    s.ok(&["settle"]);
    let alice = user(&s, &["alice"]);
    assert_eq!(balance(&alice, "BTC").balance, "0.37500000");
    assert_eq!(alice.balance, "5.00");
    let bob = user(&s, &["bob"]);
    assert_eq!(balance(&bob, "BTC").balance, "0.12500000");
    assert_eq!(balance(&bob, "JPY").balance, "9");
    assert_eq!(bob.balance, "2.00");
    verify_ok(&s);
}

fn a_key_replayed_in_another_currency_is_a_conflict_naming_currency() {
    let s = three_currencies();
    let first = queued(&s, &["deposit", "alice", "1", "--id", "k-1"]);
    let again: shapes::Queued = s.json(&["deposit", "alice", "1", "--id", "k-1"]);
    assert_eq!((again.tx_id, again.replayed), (first, true));
    let message = s.fails(
        &["deposit", "alice", "1", "--currency", "BTC", "--id", "k-1"],
        "idempotency_conflict",
        4,
    );
    assert!(message.contains("currency"), "{message}");
    let btc = queued(
        &s,
        &["deposit", "alice", "1", "--currency", "BTC", "--id", "k-2"],
    );
    let replayed: shapes::Queued = s.json(&[
        "deposit",
        "alice",
        "1.00000000",
        "--currency",
        "btc",
        "--id",
        "k-2",
    ]);
    assert_eq!((replayed.tx_id, replayed.replayed), (btc, true));
    let message = s.fails(
        &["deposit", "alice", "1", "--id", "k-2"],
        "idempotency_conflict",
        4,
    );
    assert!(message.contains("currency"), "{message}");
}

fn an_unknown_currency_is_refused_before_anything_is_written() {
    let s = three_currencies();
    s.ok(&["deposit", "alice", "10"]);
    s.ok(&["settle"]);
    let before = user(&s, &["alice"]);
    for args in [
        &["deposit", "alice", "1", "--currency", "XYZ"][..],
        &["withdraw", "alice", "1", "--currency", "XYZ"],
        &["transfer", "alice", "bob", "1", "--currency", "XYZ"],
        &["hold", "alice", "bob", "1", "--currency", "XYZ"],
        &["get-user", "alice", "--currency", "XYZ"],
    ] {
        let message = s.fails(args, "invalid_currency", 5);
        assert!(message.contains("XYZ"), "{message}");
    }
    let history: Vec<Value> = s.json(&["history", "alice"]);
    assert_eq!(history.len(), 1, "nothing was queued: {history:?}");
    assert_eq!(user(&s, &["alice"]), before);
    verify_ok(&s);
}

fn verify_names_the_currency_whose_figures_disagree() {
    let s = three_currencies();
    s.ok(&["deposit", "alice", "1", "--currency", "BTC"]);
    s.ok(&["settle"]);
    verify_ok(&s);
    s.tamper("UPDATE balances SET balance = balance + 5 WHERE currency = 1 AND account <> 0");
    let failure = s.verify_fails();
    let failed = failure.report.failed();
    assert!(failed.contains(&"balances"), "{failed:?}");
    assert!(failed.contains(&"zero_sum"), "{failed:?}");
    let zero_sum = failure
        .report
        .checks
        .iter()
        .find(|c| c.name == "zero_sum")
        .unwrap();
    assert!(zero_sum.problems[0].message.contains("BTC"), "{zero_sum:?}");
}

fn overdraft_limits_are_per_currency() {
    let s = three_currencies();
    let change: Value = s.json(&["overdraft", "alice", "0.5", "--currency", "btc"]);
    assert_eq!(
        (change["change"].as_str(), change["overdraft"].as_str()),
        (Some("overdraft"), Some("0.50000000"))
    );
    s.fails(
        &["overdraft", "alice", "0.000000001", "--currency", "BTC"],
        "invalid_amount",
        5,
    );
    s.fails(
        &["overdraft", "alice", "1", "--currency", "XYZ"],
        "invalid_currency",
        5,
    );
    let alice = user(&s, &["alice"]);
    assert_eq!(alice.overdraft, "0.00", "the PHP limit is untouched");
    let btc = balance(&alice, "BTC");
    assert_eq!(
        (btc.overdraft.as_str(), btc.available.as_str()),
        ("0.50000000", "0.50000000")
    );
    let drawn = queued(
        &s,
        &["transfer", "alice", "bob", "0.4", "--currency", "BTC"],
    );
    let php = queued(&s, &["transfer", "alice", "bob", "1"]);
    s.ok(&["settle"]);
    assert_eq!(transfer(&s, drawn).status, "COMPLETED");
    assert_eq!(
        transfer(&s, php).reason.as_deref(),
        Some("insufficient_funds"),
        "a BTC limit lends no PHP"
    );
    let alice = user(&s, &["alice", "--currency", "BTC"]);
    assert_eq!(
        (alice.balance.as_str(), alice.overdraft.as_str()),
        ("-0.40000000", "0.50000000")
    );
    verify_ok(&s);
    // The limit in force is the BTC one; the default currency's policy in
    // time never saw it.
    let then: Value = s.json(&["get-user", "alice", "--at", "2100-01-01"]);
    assert_eq!(then["overdraft"], "0.00");
}

/// A balance in a currency appears when a queued line first reserves on
/// it. A refused hold, a batch line refused for its other party, and a
/// hold's destination make none: a failed command changes nothing, and a
/// refused line nothing of its own.
fn a_refused_line_makes_no_balance_in_a_new_currency() {
    let s = three_currencies();
    s.ok(&["create-user", "carol", "carol@example.com"]);
    s.fails(
        &["hold", "alice", "bob", "15", "--currency", "JPY"],
        "insufficient_funds",
        4,
    );
    let lines = concat!(
        "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"15\",\"currency\":\"JPY\",\"hold\":true}\n",
        "{\"src\":\"bob\",\"dst\":\"nobody\",\"amount\":\"1\",\"currency\":\"BTC\"}\n",
        "{\"dst\":\"carol\",\"amount\":\"3\",\"currency\":\"JPY\"}\n",
    );
    let out = s
        .cmd(&["transfer", "--batch", "-"])
        .write_stdin(lines)
        .output()
        .unwrap();
    let (results, _, _) = crate::common::batch_results(&out);
    assert_eq!(results[0]["error"]["code"], "insufficient_funds");
    assert_eq!(results[1]["error"]["code"], "user_not_found");
    assert_eq!(results[2]["status"], "PENDING");
    let codes = |name: &str| -> Vec<String> {
        let mut codes: Vec<String> = user(&s, &[name])
            .balances
            .expect("get-user shows balances")
            .keys()
            .cloned()
            .collect();
        codes.sort();
        codes
    };
    assert_eq!(codes("alice"), ["PHP"], "a refused hold makes no balance");
    assert_eq!(
        codes("bob"),
        ["PHP"],
        "a refused line makes none for its party"
    );
    assert_eq!(codes("carol"), ["JPY", "PHP"], "a queued deposit makes one");
    s.ok(&["deposit", "alice", "1", "--currency", "BTC"]);
    s.ok(&["settle"]);
    s.ok(&["hold", "alice", "bob", "0.5", "--currency", "BTC"]);
    assert_eq!(codes("alice"), ["BTC", "PHP"]);
    assert_eq!(codes("bob"), ["PHP"], "a hold reserves on its source alone");
    verify_ok(&s);
}

engine_tests! {
    both: [
        balances_are_kept_per_currency_and_a_btc_transfer_never_moves_php,
        amounts_are_read_at_their_currency_s_scale,
        a_source_with_nothing_in_a_currency_fails_for_want_of_funds,
        frozen_covers_every_currency,
        close_is_refused_while_another_currency_holds_money,
        holds_capture_release_and_cancel_work_in_their_currency,
        batch_lines_and_csv_rows_name_their_currency,
        a_key_replayed_in_another_currency_is_a_conflict_naming_currency,
        an_unknown_currency_is_refused_before_anything_is_written,
        verify_names_the_currency_whose_figures_disagree,
        overdraft_limits_are_per_currency,
        a_refused_line_makes_no_balance_in_a_new_currency,
    ],
}
