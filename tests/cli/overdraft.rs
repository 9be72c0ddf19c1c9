//! How account policies decide money, through the real binary, on each
//! engine: overdraft limits in settle, holds and `available`; frozen
//! sources at settle, for holds and captures; closed users when queueing;
//! and `verify`'s check of each debit against the limit in force then.

use serde_json::Value;

use crate::common::{Sandbox, batch_results};

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

fn set_overdraft(sb: &Sandbox, name: &str, minor_units: i64) {
    let amount = format!("{}.{:02}", minor_units / 100, minor_units % 100);
    sb.ok(&["overdraft", name, &amount]);
}

fn freeze(sb: &Sandbox, name: &str) {
    sb.ok(&["freeze", name]);
}

fn unfreeze(sb: &Sandbox, name: &str) {
    sb.ok(&["unfreeze", name]);
}

fn close(sb: &Sandbox, name: &str) {
    sb.ok(&["close", name]);
}

fn user(s: &Sandbox, name: &str) -> Value {
    s.json(&["get-user", name])
}

fn money(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .to_string()
}

/// Queues `args` (a transfer, deposit, …) and returns its id.
fn queue(s: &Sandbox, args: &[&str]) -> String {
    let queued: Value = s.json(args);
    queued["tx_id"].as_i64().unwrap().to_string()
}

fn transfer(s: &Sandbox, id: &str) -> Value {
    s.json(&["get-transfer", id])
}

/// Settles everything queued, and returns the transfer's status and reason.
fn settled(s: &Sandbox, id: &str) -> (String, Option<String>) {
    s.ok(&["settle"]);
    let t = transfer(s, id);
    (
        t["status"].as_str().unwrap().to_string(),
        t["reason"].as_str().map(str::to_string),
    )
}

fn completed() -> (String, Option<String>) {
    ("COMPLETED".into(), None)
}

fn failed(reason: &str) -> (String, Option<String>) {
    ("FAILED".into(), Some(reason.into()))
}

fn a_debit_into_the_overdraft_completes_and_one_beyond_it_fails() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["settle"]);
    set_overdraft(&s, "alice", 5_000);
    let alice = user(&s, "alice");
    assert_eq!(
        (money(&alice, "balance"), money(&alice, "available")),
        ("100.00".into(), "150.00".into())
    );
    let into = queue(&s, &["transfer", "alice", "bob", "130"]);
    assert_eq!(user(&s, "alice")["available"], "20.00");
    assert_eq!(settled(&s, &into), completed());
    let alice = user(&s, "alice");
    assert_eq!(
        (money(&alice, "balance"), money(&alice, "available")),
        ("-30.00".into(), "20.00".into())
    );
    let beyond = queue(&s, &["transfer", "alice", "bob", "20.01"]);
    assert_eq!(settled(&s, &beyond), failed("insufficient_funds"));
    let exact = queue(&s, &["withdraw", "alice", "20"]);
    assert_eq!(settled(&s, &exact), completed());
    assert_eq!(user(&s, "alice")["balance"], "-50.00");
    // A hold counts the limit too, and nothing is left of it now.
    let message = s.fails(&["hold", "alice", "bob", "0.01"], "insufficient_funds", 4);
    assert!(message.contains("0.00 available"), "{message}");
    s.ok(&["verify"]);
}

fn a_hold_may_reserve_the_overdraft_and_its_capture_settles() {
    let s = Sandbox::new();
    s.alice_and_bob();
    set_overdraft(&s, "alice", 4_000);
    let hold = queue(&s, &["hold", "alice", "bob", "40"]);
    assert_eq!(user(&s, "alice")["available"], "0.00");
    s.fails(&["hold", "alice", "bob", "0.01"], "insufficient_funds", 4);
    s.ok(&["capture", &hold]);
    assert_eq!(settled(&s, &hold), completed());
    assert_eq!(user(&s, "alice")["balance"], "-40.00");
    s.ok(&["verify"]);
}

fn a_limit_lowered_below_the_drawn_balance_refuses_debits_until_credits_bring_it_back() {
    let s = Sandbox::new();
    s.alice_and_bob();
    set_overdraft(&s, "alice", 10_000);
    let drawn = queue(&s, &["transfer", "alice", "bob", "80"]);
    assert_eq!(settled(&s, &drawn), completed());
    set_overdraft(&s, "alice", 5_000);
    assert_eq!(user(&s, "alice")["available"], "-30.00");
    // Lowering it is allowed, and the ledger stays sound below it.
    s.ok(&["verify"]);
    let refused = queue(&s, &["transfer", "alice", "bob", "0.01"]);
    assert_eq!(settled(&s, &refused), failed("insufficient_funds"));
    let credit = queue(&s, &["deposit", "alice", "40"]);
    assert_eq!(settled(&s, &credit), completed());
    let within = queue(&s, &["transfer", "alice", "bob", "10"]);
    assert_eq!(settled(&s, &within), completed());
    assert_eq!(user(&s, "alice")["balance"], "-50.00");
    let beyond = queue(&s, &["transfer", "alice", "bob", "0.01"]);
    assert_eq!(settled(&s, &beyond), failed("insufficient_funds"));
    s.ok(&["verify"]);
}

fn a_frozen_source_fails_at_settle_while_transfers_to_it_complete() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100"), ("bob", "100")]);
    freeze(&s, "alice");
    // Queueing still works both ways, so nothing is lost under review.
    let out = queue(&s, &["transfer", "alice", "bob", "10"]);
    let withdrawal = queue(&s, &["withdraw", "alice", "1"]);
    let incoming = queue(&s, &["transfer", "bob", "alice", "10"]);
    let deposit = queue(&s, &["deposit", "alice", "5"]);
    assert_eq!(settled(&s, &out), failed("account_frozen"));
    assert_eq!(transfer(&s, &withdrawal)["reason"], "account_frozen");
    assert_eq!(transfer(&s, &incoming)["status"], "COMPLETED");
    assert_eq!(transfer(&s, &deposit)["status"], "COMPLETED");
    assert_eq!(user(&s, "alice")["balance"], "115.00");
    // Frozen with money enough or not, the reason is the freeze.
    let big = queue(&s, &["transfer", "alice", "bob", "1000"]);
    assert_eq!(settled(&s, &big), failed("account_frozen"));
    unfreeze(&s, "alice");
    let after = queue(&s, &["transfer", "alice", "bob", "10"]);
    assert_eq!(settled(&s, &after), completed());
    assert_eq!(user(&s, "alice")["balance"], "105.00");
    s.ok(&["verify"]);
}

fn a_frozen_user_places_no_hold_and_its_holds_are_not_captured() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100")]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let first = queue(&s, &["hold", "alice", "bob", "30"]);
    let second = queue(&s, &["hold", "alice", "bob", "20"]);
    freeze(&s, "alice");
    let message = s.fails(&["hold", "alice", "bob", "10"], "account_frozen", 4);
    assert!(message.contains("'alice'"), "{message}");
    let batch = s
        .cmd(&["--json", "transfer", "--batch", "-"])
        .write_stdin("{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"1\",\"hold\":true}\n")
        .output()
        .unwrap();
    let (lines, _, _) = batch_results(&batch);
    assert_eq!(lines[0]["error"]["code"], "account_frozen", "{lines:?}");
    let message = s.fails(&["capture", &first], "account_frozen", 4);
    assert!(message.contains("'alice'"), "{message}");
    s.fails(&["capture", &first, "10"], "account_frozen", 4);
    assert_eq!(transfer(&s, &first)["status"], "HELD");
    let alice = user(&s, "alice");
    assert_eq!(
        (money(&alice, "held"), money(&alice, "pending_out")),
        ("50.00".into(), "0.00".into())
    );
    // A release gives the money back, frozen or not.
    s.ok(&["release", &second]);
    assert_eq!(user(&s, "alice")["held"], "30.00");
    unfreeze(&s, "alice");
    s.ok(&["capture", &first]);
    assert_eq!(settled(&s, &first), completed());
    s.ok(&["verify"]);
}

fn a_hold_into_a_closed_user_is_not_captured() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100")]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let hold = queue(&s, &["hold", "alice", "bob", "30"]);
    close(&s, "bob");
    let message = s.fails(&["capture", &hold], "account_closed", 4);
    assert!(message.contains("'bob'"), "{message}");
    assert_eq!(transfer(&s, &hold)["status"], "HELD");
    assert_eq!(user(&s, "alice")["held"], "30.00");
    assert_eq!(user(&s, "bob")["pending_in"], "0.00");
    s.ok(&["release", &hold]);
    s.ok(&["verify"]);
}

fn queueing_to_or_from_a_closed_user_is_refused() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100")]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    s.ok(&["create-user", "carol", "carol@example.com"]);
    let paid = queue(&s, &["transfer", "alice", "bob", "10"]);
    s.ok(&["settle"]);
    let back = queue(&s, &["transfer", "bob", "alice", "10"]);
    assert_eq!(settled(&s, &back), completed());
    close(&s, "bob");
    for args in [
        &["transfer", "alice", "bob", "1"][..],
        &["transfer", "bob", "alice", "1"],
        &["deposit", "bob", "1"],
        &["withdraw", "bob", "1"],
        &["hold", "alice", "bob", "1"],
        &["refund", back.as_str()],
    ] {
        let message = s.fails(args, "account_closed", 4);
        assert!(message.contains("'bob'"), "{args:?}: {message}");
    }
    // A refund of a transfer into it would pay bob's money back out.
    s.fails(&["refund", &paid], "account_closed", 4);
    let input = concat!(
        "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"1\"}\n",
        "{\"src\":\"alice\",\"dst\":\"carol\",\"amount\":\"1\"}\n",
        "{\"src\":\"BOB\",\"dst\":\"carol\",\"amount\":\"1\"}\n",
        "{\"src\":\"alice\",\"dst\":\"nobody\",\"amount\":\"1\"}\n",
    );
    let out = s
        .cmd(&["--json", "transfer", "--batch", "-"])
        .write_stdin(input)
        .output()
        .unwrap();
    let (lines, code, _) = batch_results(&out);
    assert_eq!(code, Some(5), "{lines:?}");
    let codes: Vec<&str> = lines
        .iter()
        .map(|l| l["error"]["code"].as_str().unwrap_or("queued"))
        .collect();
    assert_eq!(
        codes,
        [
            "account_closed",
            "queued",
            "account_closed",
            "user_not_found"
        ]
    );
    assert_eq!(user(&s, "bob")["pending_in"], "0.00");
    assert_eq!(user(&s, "carol")["pending_in"], "1.00");
    s.ok(&["settle"]);
    s.ok(&["verify"]);
}

fn verify_holds_each_debit_to_the_limit_in_force_when_it_was_decided() {
    let s = Sandbox::new();
    s.alice_and_bob();
    set_overdraft(&s, "alice", 5_000);
    let drawn = queue(&s, &["transfer", "alice", "bob", "30"]);
    assert_eq!(settled(&s, &drawn), completed());
    // Removing the limit later leaves the past decision sound.
    set_overdraft(&s, "alice", 0);
    s.ok(&["verify"]);
    // Without the change that allowed it, the debit broke a limit of 0;
    // the change was sealed by the settle, so the chain names the edit too.
    s.tamper("DELETE FROM policy_changes WHERE overdraft = 5000");
    let report = s.verify_fails().report;
    assert_eq!(report.failed(), ["no_negative_balances", "chain"]);
    let check = report
        .checks
        .iter()
        .find(|c| c.name == "no_negative_balances")
        .unwrap();
    let tx_ids: Vec<Option<i64>> = check.problems.iter().map(|p| p.tx_id).collect();
    assert_eq!(tx_ids[0], Some(drawn.parse().unwrap()), "{check:?}");
    assert_eq!(check.problems[0].user.as_deref(), Some("alice"));
    // Nor is a limit that took effect only after the decision enough.
    s.tamper(&format!(
        "INSERT INTO policy_changes (account, kind, overdraft, at)
              SELECT id, 'overdraft', 5000, {} FROM accounts WHERE name = 'alice'",
        now_ms() + 60_000
    ));
    assert_eq!(
        s.verify_fails().report.failed(),
        ["no_negative_balances", "chain"]
    );
    s.tamper("UPDATE policy_changes SET at = 0 WHERE overdraft = 5000");
    assert_eq!(s.verify_fails().report.failed(), ["chain"]);
    // The balance now is held to the largest limit the account ever had.
    s.tamper(
        "UPDATE accounts SET balance = balance - 2001 WHERE name = 'alice';
         UPDATE accounts SET balance = balance + 2001 WHERE id = 0;",
    );
    let report = s.verify_fails().report;
    assert!(
        report.failed().contains(&"no_negative_balances"),
        "{report:?}"
    );
}

engine_tests! {
    both: [
        a_debit_into_the_overdraft_completes_and_one_beyond_it_fails,
        a_hold_may_reserve_the_overdraft_and_its_capture_settles,
        a_limit_lowered_below_the_drawn_balance_refuses_debits_until_credits_bring_it_back,
        a_frozen_source_fails_at_settle_while_transfers_to_it_complete,
        a_frozen_user_places_no_hold_and_its_holds_are_not_captured,
        a_hold_into_a_closed_user_is_not_captured,
        queueing_to_or_from_a_closed_user_is_refused,
        verify_holds_each_debit_to_the_limit_in_force_when_it_was_decided,
    ],
}
