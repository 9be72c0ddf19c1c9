//! `verify`: every check by name on a sound ledger, and each broken invariant caught and located.

use std::process::Command as StdCommand;

use crate::common::{Sandbox, shapes};

/// Every check in report order; the first is the engine's own check of
/// its storage (SQLite's page check, or the server's amcheck), and a ledger
/// file also checks the users' histories it keeps apart (`postings`).
fn checks() -> Vec<&'static str> {
    let mut names = vec![
        "integrity_check",
        "schema",
        "ledger_meta",
        "foreign_keys",
        "postings",
        "transfer_fields",
        "holds",
        "pairs",
        "balances",
        "history",
        "pending_totals",
        "zero_sum",
        "no_negative_balances",
        "chain",
    ];
    if crate::common::engine().name() == "postgres" {
        names[0] = "amcheck";
        names.retain(|name| *name != "postings");
    }
    names
}

/// A ledger with every status: completed, failed, cancelled and pending
/// transfers, deposits and a withdrawal.
fn busy_ledger() -> Sandbox {
    let s = Sandbox::new();
    s.funded(&[("alice", "100"), ("bob", "20.50")]);
    s.ok(&["transfer", "alice", "bob", "30", "--memo", "rent"]);
    s.ok(&["transfer", "bob", "alice", "500"]);
    s.ok(&["withdraw", "bob", "10.25"]);
    s.ok(&["settle"]);
    let cancelled: shapes::Queued = s.json(&["transfer", "alice", "bob", "1"]);
    s.ok(&["cancel", &cancelled.tx_id.to_string()]);
    s.ok(&["transfer", "alice", "bob", "2.50"]);
    s.ok(&["deposit", "bob", "7"]);
    s
}

fn check<'a>(report: &'a shapes::VerifyReport, name: &str) -> &'a shapes::Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:?}"))
}

fn verify_passes_on_a_sound_ledger_and_reports_every_check_by_name() {
    let s = busy_ledger();
    let before = s.ledger_bytes();
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok);
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, checks());
    for check in &report.checks {
        assert!(check.ok, "{check:?}");
        assert_eq!((check.problem_count, check.problems.len()), (0, 0));
        assert!(!check.detail.is_empty());
    }
    let balances = check(&report, "balances");
    assert!(
        balances
            .detail
            .contains("8 transfers (1 CANCELLED, 4 COMPLETED, 1 FAILED, 2 PENDING)"),
        "{balances:?}"
    );
    assert_eq!(before, s.ledger_bytes(), "verify writes nothing");

    let table = s.ok(&["verify"]);
    for name in checks() {
        let row = table.lines().find(|l| l.contains(name)).unwrap();
        assert!(row.contains(" ok "), "{row}");
    }

    let quick: shapes::VerifyReport = s.json(&["verify", "--quick"]);
    let quick_check = match crate::common::engine().name() {
        "sqlite" => "quick_check",
        "postgres" => "amcheck",
        other => crate::common::no_case(other),
    };
    assert_eq!(quick.checks[0].name, quick_check);
    assert!(quick.ok);
}

fn verify_ok_pipes_into_jq() {
    let s = busy_ledger();
    let out = StdCommand::new("sh")
        .arg("-c")
        .arg("\"$WALLET\" --json verify | jq -e -r '.ok, (.checks | length)'")
        .env("WALLET", env!("CARGO_BIN_EXE_wallet"))
        .env("WALLET_DB", s.db())
        .output()
        .expect("sh and jq");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("true\n{}\n", checks().len())
    );
}

fn verify_never_creates_a_ledger() {
    let s = Sandbox::new();
    s.fails(&["verify"], "ledger_not_found", 3);
    assert!(!s.ledger_exists());
}

fn a_balance_out_of_step_is_named_in_the_report_and_the_error() {
    let s = busy_ledger();
    s.tamper("UPDATE accounts SET balance = balance + 1 WHERE name = 'bob'");
    let before = s.ledger_bytes();
    let error = s.verify_fails();
    assert_eq!(error.report.failed(), ["balances", "zero_sum"]);
    let problem = &check(&error.report, "balances").problems[0];
    assert_eq!(problem.user.as_deref(), Some("bob"));
    assert_eq!(
        problem.message,
        "user 'bob' has balance 40.26 but its COMPLETED transfers net 40.25"
    );
    let head = format!(
        "ledger check failed: 2 of {} checks failed: balances (user 'bob' has balance 40.26",
        checks().len()
    );
    assert!(error.message.starts_with(&head), "{}", error.message);
    assert!(
        error
            .message
            .contains("zero_sum (the balances sum to 0.01, not zero)")
    );

    // A person gets the table on stdout and one error line on stderr.
    let out = s.cmd(&["verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout.lines().find(|l| l.contains("balances")).unwrap();
    assert!(row.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("user 'bob' has balance 40.26"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let head = format!("error: ledger check failed: 2 of {}", checks().len());
    assert!(stderr.starts_with(&head), "{stderr}");
    assert_eq!(before, s.ledger_bytes(), "a failing verify writes nothing");
}

fn a_transfer_applied_twice_is_caught_even_though_the_sum_stays_zero() {
    let s = busy_ledger();
    // Replay transfer 3 (alice -> bob, 30) on the balances a second time.
    s.tamper(
        "UPDATE accounts SET balance = balance - 3000 WHERE name = 'alice';
             UPDATE accounts SET balance = balance + 3000 WHERE name = 'bob';",
    );
    let error = s.verify_fails();
    assert_eq!(
        error.report.failed(),
        ["balances"],
        "zero_sum cannot see it"
    );
    let users: Vec<Option<&str>> = check(&error.report, "balances")
        .problems
        .iter()
        .map(|p| p.user.as_deref())
        .collect();
    assert_eq!(users, [Some("alice"), Some("bob")]);
}

fn a_transfer_whose_status_lies_about_what_moved_is_caught() {
    // COMPLETED but its money never moved.
    let s = busy_ledger();
    s.tamper(
        "UPDATE transfers SET status = 'FAILED', reason = 'insufficient_funds' WHERE tx_id = 3",
    );
    let error = s.verify_fails();
    assert_eq!(error.report.failed(), ["balances", "history", "chain"]);
    assert_eq!(check(&error.report, "balances").problem_count, 2);

    // FAILED, yet counted as COMPLETED: money that moved without a transfer.
    let s = busy_ledger();
    s.tamper("UPDATE transfers SET status = 'COMPLETED', reason = NULL WHERE tx_id = 4");
    let error = s.verify_fails();
    assert_eq!(error.report.failed(), ["balances", "history", "chain"]);
    let messages: Vec<&str> = check(&error.report, "balances")
        .problems
        .iter()
        .map(|p| p.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "user 'alice' has balance 70.00 but its COMPLETED transfers net 570.00",
            "user 'bob' has balance 40.25 but its COMPLETED transfers net -459.75"
        ]
    );
}

fn pending_totals_out_of_step_are_caught() {
    let s = busy_ledger();
    s.tamper("UPDATE accounts SET pending_out = pending_out + 5 WHERE name = 'alice'");
    let error = s.verify_fails();
    assert_eq!(error.report.failed(), ["pending_totals"]);
    let problem = &check(&error.report, "pending_totals").problems[0];
    assert_eq!(
        (problem.user.as_deref(), problem.message.as_str()),
        (
            Some("alice"),
            "user 'alice' has pending_out 2.55 but its PENDING transfers sum to 2.50"
        )
    );
}

fn settled_at_and_status_that_disagree_name_the_transfer() {
    let s = busy_ledger();
    s.tamper(
        "UPDATE transfers SET settled_at = NULL WHERE tx_id = 3;
             UPDATE transfers SET settled_at = 1 WHERE status = 'PENDING' AND amount = 250;",
    );
    let error = s.verify_fails();
    assert_eq!(
        error.report.failed(),
        ["transfer_fields", "history", "chain"]
    );
    let fields = check(&error.report, "transfer_fields");
    let found: Vec<(Option<i64>, &str)> = fields
        .problems
        .iter()
        .map(|p| (p.tx_id, p.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (Some(3), "transfer 3 is COMPLETED but has no settled_at"),
            (Some(7), "transfer 7 is PENDING but has settled_at set"),
        ]
    );
}

fn a_damaged_index_page_fails_the_integrity_check() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    for i in 0..40 {
        s.ok(&[
            "-q",
            "deposit",
            "alice",
            "1",
            "--memo",
            &format!("{i:0>100}"),
        ]);
    }
    s.ok(&["settle"]);
    // Scribble over the index's cells, as a failing disk might.
    let bytes = s.damage_root_page("postings");

    let error = s.verify_fails();
    let integrity = check(&error.report, "integrity_check");
    assert!(!integrity.ok, "{integrity:?}");
    assert!(
        error.message.contains("integrity_check ("),
        "{}",
        error.message
    );
    assert_eq!(
        bytes,
        s.ledger_bytes(),
        "verify leaves the damaged file as it was"
    );
}

/// A ledger file keeps each user's history of decided transfers apart
/// from the transfers (`postings`); an entry lost or planted is found.
fn a_history_entry_lost_or_planted_is_caught() {
    let s = busy_ledger();
    s.tamper("DELETE FROM postings WHERE tx_id = 3 AND account = (SELECT src FROM transfers WHERE tx_id = 3)");
    let error = s.verify_fails();
    assert_eq!(error.report.failed(), ["postings"]);
    let found = check(&error.report, "postings");
    assert_eq!(found.problems[0].tx_id, Some(3), "{found:?}");

    let s = busy_ledger();
    // A PENDING transfer (the last one queued) listed as if decided.
    s.tamper(
        "INSERT INTO postings (account, tx_id)
             SELECT dst, max(tx_id) FROM transfers WHERE status = 'PENDING'",
    );
    let error = s.verify_fails();
    assert_eq!(error.report.failed(), ["postings"]);
}

engine_tests! {
    both: [
        verify_passes_on_a_sound_ledger_and_reports_every_check_by_name,
        verify_ok_pipes_into_jq,
        verify_never_creates_a_ledger,
        a_balance_out_of_step_is_named_in_the_report_and_the_error,
        a_transfer_applied_twice_is_caught_even_though_the_sum_stays_zero,
        a_transfer_whose_status_lies_about_what_moved_is_caught,
        pending_totals_out_of_step_are_caught,
        settled_at_and_status_that_disagree_name_the_transfer,
    ],
    sqlite: [
        a_damaged_index_page_fails_the_integrity_check,
        a_history_entry_lost_or_planted_is_caught,
    ],
}
