//! Exchange: two transfers in two currencies through a desk, queued as one
//! and decided together, through the real binary on each engine. The
//! ledger's default is PHP (2 places); BTC (8 places) is added.

use serde_json::Value;

use crate::common::{Sandbox, batch_results, shapes};

/// alice with 1000.00 PHP, the desk with 1 BTC, both settled.
fn desk_and_alice() -> Sandbox {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.ok(&["create-user", "desk", "desk@example.com"]);
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    s.ok(&["deposit", "alice", "1000.00"]);
    s.ok(&["deposit", "desk", "1", "--currency", "BTC"]);
    s.ok(&["settle"]);
    s
}

fn exchange(s: &Sandbox, extra: &[&str]) -> shapes::Queued {
    let mut args = vec![
        "exchange", "alice", "500.00", "PHP", "--for", "0.001", "BTC", "--via", "desk",
    ];
    args.extend_from_slice(extra);
    s.json(&args)
}

fn transfer(s: &Sandbox, tx_id: i64) -> shapes::Transfer {
    s.json(&["get-transfer", &tx_id.to_string()])
}

/// A user's balance in one currency, from `get-user --json`'s `balances`.
fn balance(s: &Sandbox, user: &str, code: &str) -> String {
    let user: shapes::User = s.json(&["get-user", user]);
    user.balances.expect("balances")[code].balance.clone()
}

fn statuses(s: &Sandbox, ids: [i64; 2]) -> [(String, Option<String>); 2] {
    ids.map(|id| {
        let t = transfer(s, id);
        (t.status, t.reason)
    })
}

fn both_legs_complete_and_every_balance_moves() {
    let s = desk_and_alice();
    let queued = exchange(&s, &[]);
    assert_eq!(
        (queued.status.as_str(), queued.replayed),
        ("PENDING", false)
    );
    let (a, b) = (queued.tx_id, queued.pair_tx_id.expect("pair_tx_id"));
    assert_eq!(b, a + 1, "the legs take consecutive ids");
    let settled: shapes::Settled = s.json(&["settle"]);
    assert_eq!((settled.completed, settled.failed), (2, 0));
    assert_eq!(
        statuses(&s, [a, b]),
        [("COMPLETED".into(), None), ("COMPLETED".into(), None)]
    );
    assert_eq!(balance(&s, "alice", "PHP"), "500.00");
    assert_eq!(balance(&s, "alice", "BTC"), "0.00100000");
    assert_eq!(balance(&s, "desk", "PHP"), "500.00");
    assert_eq!(balance(&s, "desk", "BTC"), "0.99900000");
    s.ok(&["verify"]);
}

fn a_short_payer_fails_both_legs() {
    let s = desk_and_alice();
    let queued: shapes::Queued = s.json(&[
        "exchange", "alice", "1000.01", "PHP", "--for", "0.001", "BTC", "--via", "desk",
    ]);
    s.ok(&["settle"]);
    let failed = ("FAILED".to_string(), Some("insufficient_funds".to_string()));
    assert_eq!(
        statuses(&s, [queued.tx_id, queued.pair_tx_id.unwrap()]),
        [failed.clone(), failed]
    );
    assert_eq!(balance(&s, "alice", "PHP"), "1000.00");
    assert_eq!(balance(&s, "desk", "BTC"), "1.00000000");
    assert_eq!(balance(&s, "alice", "BTC"), "0.00000000");
    s.ok(&["verify"]);
}

fn a_short_desk_fails_both_legs_with_its_reason() {
    let s = desk_and_alice();
    let queued: shapes::Queued = s.json(&[
        "exchange", "alice", "10.00", "PHP", "--for", "2", "BTC", "--via", "desk",
    ]);
    s.ok(&["settle"]);
    let failed = ("FAILED".to_string(), Some("insufficient_funds".to_string()));
    assert_eq!(
        statuses(&s, [queued.tx_id, queued.pair_tx_id.unwrap()]),
        [failed.clone(), failed]
    );
    // The first leg alone could have been paid: it moved nothing.
    assert_eq!(balance(&s, "alice", "PHP"), "1000.00");
    assert_eq!(balance(&s, "desk", "PHP"), "0.00");
    s.ok(&["verify"]);
}

fn a_frozen_desk_fails_both_legs() {
    let s = desk_and_alice();
    let queued = exchange(&s, &[]);
    s.ok(&["freeze", "desk"]);
    s.ok(&["settle"]);
    let failed = ("FAILED".to_string(), Some("account_frozen".to_string()));
    assert_eq!(
        statuses(&s, [queued.tx_id, queued.pair_tx_id.unwrap()]),
        [failed.clone(), failed]
    );
    assert_eq!(balance(&s, "alice", "PHP"), "1000.00");
}

fn a_key_replays_both_ids_and_another_counter_is_a_conflict() {
    let s = desk_and_alice();
    let first = exchange(&s, &["--id", "swap-1"]);
    let again = exchange(&s, &["--id", "swap-1"]);
    assert_eq!(
        (again.tx_id, again.pair_tx_id, again.replayed),
        (first.tx_id, first.pair_tx_id, true)
    );
    let message = s.fails(
        &[
            "exchange", "alice", "500.00", "PHP", "--for", "0.002", "BTC", "--via", "desk", "--id",
            "swap-1",
        ],
        "idempotency_conflict",
        4,
    );
    assert!(message.contains("exchanged amount"), "{message}");
    // After settle the replay reports the decided status.
    s.ok(&["settle"]);
    let later = exchange(&s, &["--id", "swap-1"]);
    assert_eq!(
        (later.tx_id, later.pair_tx_id, later.status.as_str()),
        (first.tx_id, first.pair_tx_id, "COMPLETED")
    );
    // By key, get-transfer shows the first leg.
    let by_key: shapes::Transfer = s.json(&["get-transfer", "--id", "swap-1"]);
    assert_eq!(by_key.tx_id, first.tx_id);
}

fn cancelling_either_leg_cancels_both() {
    let s = desk_and_alice();
    for leg in [0, 1] {
        let queued = exchange(&s, &[]);
        let ids = [queued.tx_id, queued.pair_tx_id.unwrap()];
        let cancelled: shapes::Transfer = s.json(&["cancel", &ids[leg].to_string()]);
        assert_eq!(cancelled.tx_id, ids[leg]);
        let gone = ("CANCELLED".to_string(), None);
        assert_eq!(statuses(&s, ids), [gone.clone(), gone]);
        s.fails(&["cancel", &ids[1 - leg].to_string()], "not_pending", 4);
    }
    let alice: shapes::User = s.json(&["get-user", "alice"]);
    assert_eq!(alice.pending_out, "0.00");
    let desk: shapes::User = s.json(&["get-user", "desk"]);
    assert_eq!(desk.balances.unwrap()["BTC"].pending_out, "0.00000000");
    s.ok(&["verify"]);
}

fn a_leg_cannot_be_refunded_alone() {
    let s = desk_and_alice();
    let queued = exchange(&s, &[]);
    s.ok(&["settle"]);
    let (a, b) = (queued.tx_id, queued.pair_tx_id.unwrap());
    let message = s.fails(&["refund", &b.to_string()], "not_refundable", 4);
    assert_eq!(
        message,
        format!("transfer {b} is one leg of exchange {a}/{b}; a leg cannot be refunded alone")
    );
    s.fails(&["refund", &a.to_string()], "not_refundable", 4);
}

fn get_transfer_shows_the_link_both_ways() {
    let s = desk_and_alice();
    let queued = exchange(&s, &["--memo", "swap"]);
    let (a, b) = (queued.tx_id, queued.pair_tx_id.unwrap());
    let first = transfer(&s, a);
    let second = transfer(&s, b);
    assert_eq!(first.pair_tx_id, Some(b));
    assert_eq!(second.pair_tx_id, Some(a));
    assert_eq!(
        (
            first.src.as_deref(),
            first.dst.as_deref(),
            first.amount.as_str()
        ),
        (Some("alice"), Some("desk"), "500.00")
    );
    assert_eq!(
        (
            second.src.as_deref(),
            second.dst.as_deref(),
            second.amount.as_str()
        ),
        (Some("desk"), Some("alice"), "0.00100000")
    );
    assert_eq!(
        (first.currency.as_str(), second.currency.as_str()),
        ("PHP", "BTC")
    );
    assert_eq!(first.key, None);
    assert_eq!(second.key, None);
    // Any other transfer has no pair.
    let deposit = transfer(&s, 1);
    assert_eq!(deposit.pair_tx_id, None);
}

fn a_batch_line_can_be_an_exchange() {
    let s = desk_and_alice();
    let input = concat!(
        r#"{"src":"alice","dst":"desk","amount":"1.00"}"#,
        "\n",
        r#"{"exchange":true,"src":"alice","via":"desk","amount":"100.00","currency":"PHP","for_amount":"0.0002","for_currency":"BTC","id":"b-1"}"#,
        "\n",
        r#"{"exchange":true,"src":"alice","via":"desk","dst":"bob","amount":"1","for_amount":"1","for_currency":"BTC"}"#,
        "\n",
        r#"{"src":"alice","via":"desk","amount":"1"}"#,
        "\n",
        r#"{"exchange":true,"src":"alice","via":"desk","amount":"1","for_amount":"1","for_currency":"PHP"}"#,
        "\n",
        r#"{"src":"alice","dst":"desk","amount":"2.00"}"#,
        "\n",
    );
    let out = s
        .cmd(&["--json", "transfer", "--batch", "-"])
        .write_stdin(input)
        .output()
        .unwrap();
    let (lines, code, _) = batch_results(&out);
    assert_eq!(code, Some(5));
    assert_eq!(lines[0]["tx_id"], 3);
    assert_eq!(lines[0].get("pair_tx_id"), None);
    assert_eq!(
        (&lines[1]["tx_id"], &lines[1]["pair_tx_id"]),
        (&4.into(), &5.into())
    );
    assert_eq!(lines[2]["error"]["code"], "invalid_line");
    assert_eq!(lines[3]["error"]["code"], "invalid_line");
    assert_eq!(lines[4]["error"]["code"], "invalid_currency");
    assert_eq!(lines[5]["tx_id"], 6, "the next transfer follows the pair");
    assert_eq!(transfer(&s, 5).pair_tx_id, Some(4));
    s.ok(&["settle"]);
    assert_eq!(balance(&s, "alice", "BTC"), "0.00020000");
    assert_eq!(balance(&s, "alice", "PHP"), "897.00");
    // The same line again replays both ids.
    let again = s
        .cmd(&["--json", "transfer", "--batch", "-"])
        .write_stdin(
            r#"{"exchange":true,"src":"alice","via":"desk","amount":"100.00","for_amount":"0.0002","for_currency":"BTC","id":"b-1"}"#,
        )
        .output()
        .unwrap();
    let (lines, code, _) = batch_results(&again);
    assert_eq!(code, Some(0));
    assert_eq!(
        (
            &lines[0]["tx_id"],
            &lines[0]["pair_tx_id"],
            &lines[0]["replayed"]
        ),
        (&4.into(), &5.into(), &Value::Bool(true))
    );
}

/// In an all-or-nothing batch a conflict with an exchange's key names the
/// line that queued it (its two legs took two ids), and a dry run answers
/// both ids and writes nothing.
fn an_atomic_or_dry_batch_counts_an_exchange_as_one_line() {
    let s = desk_and_alice();
    let input = concat!(
        r#"{"exchange":true,"src":"alice","via":"desk","amount":"1.00","for_amount":"0.00001","for_currency":"BTC","id":"x"}"#,
        "\n",
        r#"{"src":"alice","dst":"desk","amount":"1.00","id":"y"}"#,
        "\n",
        r#"{"src":"alice","dst":"desk","amount":"2.00","id":"y"}"#,
        "\n",
    );
    let before = s.ok(&["export"]);
    let out = s
        .cmd(&["--json", "transfer", "--batch", "-", "--atomic"])
        .write_stdin(input)
        .output()
        .unwrap();
    let (lines, code, stderr) = batch_results(&out);
    assert_eq!(code, Some(5), "{stderr}");
    let conflict = lines
        .iter()
        .find(|l| l["line"] == 3)
        .expect("line 3 answered");
    assert_eq!(conflict["error"]["code"], "idempotency_conflict");
    let message = conflict["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 2"), "{message}");
    assert_eq!(s.ok(&["export"]), before);

    let out = s
        .cmd(&["--json", "transfer", "--batch", "-", "--dry-run"])
        .write_stdin(input.lines().next().unwrap().to_string())
        .output()
        .unwrap();
    let (lines, code, _) = batch_results(&out);
    assert_eq!(code, Some(0));
    // The next ids; on PostgreSQL the rolled-back batch used some up.
    let first = lines[0]["tx_id"].as_i64().unwrap();
    assert!(first >= 3, "{lines:?}");
    assert_eq!(
        (&lines[0]["pair_tx_id"], &lines[0]["dry_run"]),
        (&(first + 1).into(), &Value::Bool(true))
    );
    assert_eq!(s.ok(&["export"]), before);
}

fn quiet_prints_both_ids_on_one_line() {
    let s = desk_and_alice();
    let out = s.ok(&[
        "-q", "exchange", "alice", "5", "PHP", "--for", "0.00001", "BTC", "--via", "desk",
    ]);
    assert_eq!(out, "3 4\n");
    let human = s.ok(&[
        "exchange", "alice", "5", "PHP", "--for", "0.00001", "BTC", "--via", "desk",
    ]);
    assert_eq!(human, "queued exchange 5/6 (PENDING)\n");
}

fn an_unknown_code_or_one_currency_is_refused_and_writes_nothing() {
    let s = desk_and_alice();
    let before = s.ok(&["export"]);
    s.fails(
        &[
            "exchange", "alice", "5", "PHP", "--for", "1", "XYZ", "--via", "desk",
        ],
        "invalid_currency",
        5,
    );
    s.fails(
        &[
            "exchange", "alice", "5", "ABC", "--for", "1", "BTC", "--via", "desk",
        ],
        "invalid_currency",
        5,
    );
    let message = s.fails(
        &[
            "exchange", "alice", "5", "PHP", "--for", "1.00", "php", "--via", "desk",
        ],
        "invalid_currency",
        5,
    );
    assert!(message.contains("two currencies"), "{message}");
    // Refused as one currency before the amount is read at its scale.
    s.fails(
        &[
            "exchange", "alice", "5", "PHP", "--for", "0.002", "PHP", "--via", "desk",
        ],
        "invalid_currency",
        5,
    );
    s.fails(
        &[
            "exchange", "alice", "5", "PHP", "--for", "1", "BTC", "--via", "alice",
        ],
        "same_account",
        5,
    );
    s.fails(
        &[
            "exchange",
            "alice",
            "5",
            "PHP",
            "--for",
            "0.000000001",
            "BTC",
            "--via",
            "desk",
        ],
        "invalid_amount",
        5,
    );
    s.fails(
        &[
            "exchange", "alice", "5", "PHP", "--for", "1", "BTC", "--via", "nobody",
        ],
        "user_not_found",
        3,
    );
    assert_eq!(s.ok(&["export"]), before);
    // --via is required, and --for takes two values.
    s.cmd(&["exchange", "alice", "5", "PHP", "--for", "1", "BTC"])
        .assert()
        .code(2);
    s.cmd(&[
        "exchange", "alice", "5", "PHP", "--for", "1", "--via", "desk",
    ])
    .assert()
    .code(2);
}

fn settle_limit_one_takes_the_whole_pair() {
    let s = desk_and_alice();
    let queued = exchange(&s, &[]);
    s.ok(&["deposit", "alice", "1.00"]);
    let settled: shapes::Settled = s.json(&["settle", "--limit", "1"]);
    assert_eq!((settled.processed, settled.remaining), (2, 1));
    assert_eq!(
        statuses(&s, [queued.tx_id, queued.pair_tx_id.unwrap()]),
        [("COMPLETED".into(), None), ("COMPLETED".into(), None)]
    );
    let settled: shapes::Settled = s.json(&["settle", "--limit", "1"]);
    assert_eq!((settled.processed, settled.remaining), (1, 0));
}

/// A pair is decided when both legs are next in their sources' order: a
/// transfer queued before it counts, one queued after it does not.
fn a_pair_is_decided_at_its_place_among_other_transfers() {
    let s = desk_and_alice();
    // The desk pays its BTC away before the pair: the pair fails.
    s.ok(&["create-user", "carol", "carol@example.com"]);
    s.ok(&["transfer", "desk", "carol", "0.9995", "--currency", "BTC"]);
    let failing = exchange(&s, &[]);
    // Money the desk gets after the pair does not save it.
    s.ok(&["deposit", "desk", "5", "--currency", "BTC"]);
    let passing = exchange(&s, &[]);
    s.ok(&["settle", "--batch-size", "1"]);
    let failed = ("FAILED".to_string(), Some("insufficient_funds".to_string()));
    assert_eq!(
        statuses(&s, [failing.tx_id, failing.pair_tx_id.unwrap()]),
        [failed.clone(), failed]
    );
    assert_eq!(
        statuses(&s, [passing.tx_id, passing.pair_tx_id.unwrap()]),
        [("COMPLETED".into(), None), ("COMPLETED".into(), None)]
    );
    assert_eq!(balance(&s, "desk", "BTC"), "4.99950000");
    assert_eq!(balance(&s, "alice", "PHP"), "500.00");
    s.ok(&["verify"]);
}

/// A leg left PENDING without its pair (the other decided by hand) is a
/// damaged ledger: settle stops rather than decide it alone.
fn settle_refuses_a_leg_waiting_without_its_pair() {
    let s = desk_and_alice();
    let queued = exchange(&s, &[]);
    s.tamper(&format!(
        "UPDATE transfers SET status = 'CANCELLED' WHERE tx_id = {}",
        queued.pair_tx_id.unwrap()
    ));
    let message = s.fails(&["settle"], "integrity", 7);
    assert!(message.contains(&queued.tx_id.to_string()), "{message}");
    assert_eq!(transfer(&s, queued.tx_id).status, "PENDING");
}

engine_tests! {
    both: [
        both_legs_complete_and_every_balance_moves,
        a_short_payer_fails_both_legs,
        a_short_desk_fails_both_legs_with_its_reason,
        a_frozen_desk_fails_both_legs,
        a_key_replays_both_ids_and_another_counter_is_a_conflict,
        cancelling_either_leg_cancels_both,
        a_leg_cannot_be_refunded_alone,
        get_transfer_shows_the_link_both_ways,
        a_batch_line_can_be_an_exchange,
        quiet_prints_both_ids_on_one_line,
        an_atomic_or_dry_batch_counts_an_exchange_as_one_line,
        an_unknown_code_or_one_currency_is_refused_and_writes_nothing,
        settle_limit_one_takes_the_whole_pair,
        a_pair_is_decided_at_its_place_among_other_transfers,
    ],
    sqlite: [settle_refuses_a_leg_waiting_without_its_pair],
}
