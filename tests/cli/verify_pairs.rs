//! `verify`'s `pairs` check through the real binary: the two legs of an
//! exchange, linked both ways by `pair_tx_id`, mirror each other in two
//! currencies and are decided alike; each way of breaking that is found
//! and named. And the amounts `verify` prints of another currency are at
//! its scale, with its code.

use crate::common::{Sandbox, shapes};

/// alice pays the desk 5.00 PHP (tx 3) and the desk pays her 50 JPY back
/// (tx 4), linked both ways while still PENDING and then settled in one
/// batch: the pair an exchange makes.
fn paired() -> Sandbox {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.ok(&["create-user", "desk", "desk@example.com"]);
    s.ok(&["currency", "add", "JPY", "--scale", "0"]);
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["deposit", "desk", "1000", "--currency", "JPY"]);
    s.ok(&["settle"]);
    s.ok(&["transfer", "alice", "desk", "5", "--id", "swap-1"]);
    s.ok(&["transfer", "desk", "alice", "50", "--currency", "JPY"]);
    s.tamper(
        "UPDATE transfers SET pair_tx_id = 4 WHERE tx_id = 3;
         UPDATE transfers SET pair_tx_id = 3 WHERE tx_id = 4",
    );
    s.ok(&["settle"]);
    s
}

/// The `pairs` check's messages after `sql`, which must make it fail.
fn pairs_after(sql: &str) -> Vec<String> {
    let s = paired();
    s.tamper(sql);
    let failure = s.verify_fails();
    assert!(
        failure.report.failed().contains(&"pairs"),
        "{sql}: {:?}",
        failure.report
    );
    let check: &shapes::Check = failure
        .report
        .checks
        .iter()
        .find(|c| c.name == "pairs")
        .unwrap();
    check.problems.iter().map(|p| p.message.clone()).collect()
}

fn a_sound_pair_passes_verify() {
    let s = paired();
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok, "{report:?}");
    let pairs = report.checks.iter().find(|c| c.name == "pairs").unwrap();
    assert!(pairs.ok && pairs.problems.is_empty(), "{pairs:?}");
}

fn verify_names_each_way_a_pair_is_broken() {
    let cases = [
        (
            "UPDATE transfers SET status = 'FAILED', reason = 'insufficient_funds' WHERE tx_id = 4",
            "the legs 3 and 4 of an exchange were decided apart: 3 COMPLETED but 4 FAILED (insufficient_funds)",
        ),
        (
            "UPDATE transfers SET pair_tx_id = NULL WHERE tx_id = 4",
            "transfer 3 names 4 as the other leg of its exchange, but transfer 4 names no pair",
        ),
        (
            "UPDATE transfers SET pair_tx_id = 9 WHERE tx_id = 4",
            "transfer 4 names 9 as the other leg of its exchange, but there is no transfer 9",
        ),
        (
            "UPDATE transfers SET currency = 0 WHERE tx_id = 4",
            "the legs 3 and 4 of an exchange are both in PHP",
        ),
        (
            "UPDATE transfers SET idem_key = 'swap-2' WHERE tx_id = 4",
            "carry a key on the second leg 4, which only the first may hold",
        ),
        (
            "UPDATE transfers SET dst = 0 WHERE tx_id = 4",
            "the legs 3 and 4 of an exchange do not mirror each other",
        ),
        (
            "UPDATE transfers SET settled_at = settled_at + 1 WHERE tx_id = 4",
            "were settled at different times or in different batches",
        ),
    ];
    for (sql, expected) in cases {
        let messages = pairs_after(sql);
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "{sql}: {messages:?}"
        );
    }
}

/// The messages of check `name` in a failed verify.
fn messages(s: &Sandbox, name: &str) -> Vec<String> {
    let failure = s.verify_fails();
    let check = failure
        .report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", failure.report));
    assert!(!check.ok, "{check:?}");
    check.problems.iter().map(|p| p.message.clone()).collect()
}

fn verify_shows_another_currency_s_amounts_at_its_scale_with_its_code() {
    let s = paired();
    // A held sum in JPY (scale 0) and a recorded running balance after the
    // desk's JPY deposit (tx 2), each tampered.
    s.tamper("UPDATE balances SET held = 7 WHERE currency = 1 AND account = 2");
    let held = messages(&s, "holds");
    assert!(
        held.iter()
            .any(|m| m.ends_with("has 7 JPY held but its HELD holds sum to 0 JPY")),
        "{held:?}"
    );
    let recorded = match crate::common::engine().name() {
        "postgres" => "UPDATE transfers SET dst_balance = 999 WHERE tx_id = 2",
        _ => "UPDATE postings SET balance_after = 999 WHERE tx_id = 2",
    };
    s.tamper(recorded);
    let history = messages(&s, "history");
    assert!(
        history.iter().any(|m| m.contains(
            "has 999 JPY recorded as the balance after transfer 2, but the transfers replayed in the order they were decided give 1000 JPY"
        )),
        "{history:?}"
    );
}

engine_tests! {
    both: [
        a_sound_pair_passes_verify,
        verify_names_each_way_a_pair_is_broken,
        verify_shows_another_currency_s_amounts_at_its_scale_with_its_code,
    ],
}
