//! Scripting: idempotency keys, get-transfer, history paging, cancel, memos,
//! completions and manual pages, output into pipes, and the examples and links of the docs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};

use clap::CommandFactory;

use crate::common::{Sandbox, file_bytes, shapes};

/// `bash -c SCRIPT` in the sandbox with `$WALLET` naming the binary and
/// `$WALLET_DB` the sandbox ledger.
fn bash(s: &Sandbox, script: &str) -> Output {
    StdCommand::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(s.dir.path())
        .env("WALLET", env!("CARGO_BIN_EXE_wallet"))
        .env("WALLET_DB", s.db())
        .env_remove("WALLET_LOCK_TIMEOUT")
        .env("NO_COLOR", "1")
        .output()
        .expect("run bash")
}

/// Runs SQL on the sandbox ledger with the engine's own shell (`sqlite3`
/// or `psql`); returns its output.
fn sqlite(s: &Sandbox, sql: &str) -> String {
    s.sql_shell_running(sql)
}

/// `cents` minor units as the amount a user would type.
fn amount(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn user(s: &Sandbox, name: &str) -> shapes::User {
    s.json(&["get-user", name])
}

fn history(s: &Sandbox, args: &[&str]) -> Vec<shapes::Transfer> {
    let mut all = vec!["history"];
    all.extend_from_slice(args);
    s.json(&all)
}

fn ids(transfers: &[shapes::Transfer]) -> Vec<i64> {
    transfers.iter().map(|t| t.tx_id).collect()
}

// ---------------------------------------------------------------- keys

fn a_retried_transfer_with_a_key_queues_once_and_answers_the_same_tx_id() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100")]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let args = [
        "transfer", "alice", "bob", "12.34", "--id", "order-42", "--memo", "dinner",
    ];
    // The first reply is lost on its way to the caller, who runs the command again.
    let first: shapes::Queued = s.json(&args);
    let retried: shapes::Queued = s.json(&args);
    assert_eq!(
        (first.tx_id, &first.status),
        (retried.tx_id, &retried.status)
    );
    assert!(
        !first.replayed && retried.replayed,
        "the answer says which it was"
    );
    assert_eq!(first.status, "PENDING");
    // User names are matched regardless of case, so this is the same request.
    let shouted: shapes::Queued = s.json(&[
        "transfer", "ALICE", "Bob", "12.34", "--id", "order-42", "--memo", "dinner",
    ]);
    assert_eq!(shouted, retried);
    assert_eq!(
        s.ok(&args),
        format!(
            "transfer {} was already queued with this key; it is PENDING\n",
            first.tx_id
        )
    );

    let alice = user(&s, "alice");
    assert_eq!(alice.pending_out, "12.34", "queued once");
    assert_eq!(history(&s, &["alice", "--status", "PENDING"]).len(), 1);
    let settled: shapes::Settled = s.json(&["settle"]);
    assert_eq!(settled.processed, 1);
    assert_eq!(user(&s, "alice").balance, "87.66");
    assert_eq!(user(&s, "bob").balance, "12.34");
}

fn concurrent_runs_with_one_key_queue_one_transfer() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100")]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let args = ["--json", "transfer", "alice", "bob", "7", "--id", "burst"];
    let children: Vec<_> = (0..6)
        .map(|_| {
            s.process(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn wallet")
        })
        .collect();
    let answers: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    // Every run names the same transfer; exactly one of them queued it.
    let ids: BTreeSet<i64> = answers
        .iter()
        .map(|a| serde_json::from_str::<shapes::Queued>(a).unwrap().tx_id)
        .collect();
    assert_eq!(ids.len(), 1, "every run answers the same: {answers:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.contains("\"replayed\":false"))
            .count(),
        1,
        "{answers:?}"
    );
    assert_eq!(user(&s, "alice").pending_out, "7.00");
    assert_eq!(history(&s, &["bob"]).len(), 1);
}

fn deposits_and_withdrawals_take_keys_too() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    let deposit = ["deposit", "alice", "50", "--id", "salary-2026-11"];
    let first: shapes::Queued = s.json(&deposit);
    assert_eq!(s.json::<shapes::Queued>(&deposit).tx_id, first.tx_id);
    let withdraw = ["withdraw", "alice", "20", "--id", "atm-1"];
    let out: shapes::Queued = s.json(&withdraw);
    assert_eq!(s.json::<shapes::Queued>(&withdraw).tx_id, out.tx_id);
    assert_ne!(first.tx_id, out.tx_id);
    let settled: shapes::Settled = s.json(&["settle"]);
    assert_eq!((settled.processed, settled.completed), (2, 2));
    assert_eq!(user(&s, "alice").balance, "30.00");
    assert_eq!(history(&s, &["alice"]).len(), 2);
}

fn a_reused_key_with_any_field_changed_fails_naming_it_and_changes_nothing() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100"), ("carol", "100")]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let original: shapes::Queued = s.json(&[
        "transfer", "alice", "bob", "10", "--id", "k-1", "--memo", "rent",
    ]);
    let wal = PathBuf::from(format!("{}-wal", s.db().display()));
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "every change is in the ledger file itself"
    );
    let before = s.ledger_bytes();
    let changed: [(&[&str], &str); 8] = [
        (
            &[
                "transfer", "alice", "bob", "11", "--id", "k-1", "--memo", "rent",
            ],
            "amount",
        ),
        (
            &[
                "transfer", "alice", "bob", "10.01", "--id", "k-1", "--memo", "rent",
            ],
            "amount",
        ),
        (
            &[
                "transfer", "carol", "bob", "10", "--id", "k-1", "--memo", "rent",
            ],
            "source",
        ),
        (
            &[
                "transfer", "alice", "carol", "10", "--id", "k-1", "--memo", "rent",
            ],
            "destination",
        ),
        (
            &[
                "transfer", "alice", "bob", "10", "--id", "k-1", "--memo", "food",
            ],
            "memo",
        ),
        (&["transfer", "alice", "bob", "10", "--id", "k-1"], "memo"),
        (
            &["deposit", "bob", "10", "--id", "k-1", "--memo", "rent"],
            "source",
        ),
        (
            &["withdraw", "alice", "10", "--id", "k-1", "--memo", "rent"],
            "destination",
        ),
    ];
    for (args, field) in changed {
        let message = s.fails(args, "idempotency_conflict", 4);
        assert!(
            message.contains(&format!("different {field}")) && message.contains("'k-1'"),
            "{args:?}: {message}"
        );
        assert!(
            message.contains(&format!("transfer {}", original.tx_id)),
            "{message}"
        );
        assert_eq!(before, s.ledger_bytes(), "{args:?} changed the ledger");
    }
    let stored: shapes::Transfer = s.json(&["get-transfer", "--id", "k-1"]);
    assert_eq!(
        (stored.amount.as_str(), stored.memo.as_deref()),
        ("10.00", Some("rent"))
    );
    assert_eq!(user(&s, "bob").pending_in, "10.00");
}

fn a_replay_after_settlement_reports_the_current_status() {
    let s = Sandbox::new();
    s.funded(&[("alice", "5")]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let paid = ["transfer", "alice", "bob", "3", "--id", "paid"];
    let too_much = ["transfer", "alice", "bob", "50", "--id", "too-much"];
    let dropped = ["deposit", "bob", "1", "--id", "dropped"];
    let paid_first: shapes::Queued = s.json(&paid);
    let too_much_first: shapes::Queued = s.json(&too_much);
    let dropped_first: shapes::Queued = s.json(&dropped);
    s.ok(&["cancel", &dropped_first.tx_id.to_string()]);
    s.ok(&["settle"]);

    for (args, first, status) in [
        (&paid[..], &paid_first, "COMPLETED"),
        (&too_much[..], &too_much_first, "FAILED"),
        (&dropped[..], &dropped_first, "CANCELLED"),
    ] {
        let replay: shapes::Queued = s.json(args);
        assert_eq!(replay.tx_id, first.tx_id);
        assert_eq!(replay.status, status, "{args:?}");
    }
    let settled: shapes::Settled = s.json(&["settle"]);
    assert_eq!(settled.processed, 0, "replays queued nothing");
    assert_eq!(user(&s, "bob").balance, "3.00");
}

fn keys_must_be_printable_and_at_most_128_characters() {
    let s = Sandbox::new();
    s.funded(&[("alice", "5")]);
    let long = "k".repeat(129);
    for key in ["", long.as_str(), "tab\there"] {
        s.fails(&["deposit", "alice", "1", "--id", key], "invalid_key", 5);
        s.fails(&["get-transfer", "--id", key], "invalid_key", 5);
    }
    let longest = "k".repeat(128);
    s.ok(&["deposit", "alice", "1", "--id", &longest]);
}

// ---------------------------------------------------------- get-transfer

fn get_transfer_shows_the_full_object_by_id_or_by_key() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let deposit: shapes::Queued = s.json(&[
        "deposit", "alice", "100.5", "--memo", "salary", "--id", "pay-1",
    ]);
    let transfer: shapes::Queued = s.json(&["transfer", "alice", "bob", "30", "--id", "order-42"]);
    let pending: shapes::Transfer = s.json(&["get-transfer", &transfer.tx_id.to_string()]);
    assert_eq!(
        (pending.status.as_str(), &pending.settled_at),
        ("PENDING", &None)
    );
    let overdraw: shapes::Queued = s.json(&["transfer", "bob", "alice", "999"]);
    let withdraw: shapes::Queued = s.json(&["withdraw", "alice", "0.5"]);
    s.ok(&["settle"]);

    let by_id: shapes::Transfer = s.json(&["get-transfer", &transfer.tx_id.to_string()]);
    let by_key: shapes::Transfer = s.json(&["get-transfer", "--id", "order-42"]);
    assert_eq!(by_id, by_key);
    assert_eq!(by_id.tx_id, transfer.tx_id);
    assert_eq!(by_id.src.as_deref(), Some("alice"));
    assert_eq!(by_id.dst.as_deref(), Some("bob"));
    assert_eq!(by_id.amount, "30.00");
    assert_eq!(by_id.memo, None);
    assert_eq!((by_id.status.as_str(), &by_id.reason), ("COMPLETED", &None));
    assert_eq!(by_id.created_at, pending.created_at);
    for stamp in [Some(&by_id.created_at), by_id.settled_at.as_ref()] {
        let stamp = stamp.expect("settled transfers have settled_at");
        assert!(is_timestamp(stamp), "{stamp}");
    }
    assert!(by_id.settled_at.as_deref() >= Some(by_id.created_at.as_str()));

    let dep: shapes::Transfer = s.json(&["get-transfer", &deposit.tx_id.to_string()]);
    assert_eq!((dep.src, dep.dst.as_deref()), (None, Some("alice")));
    assert_eq!(
        (dep.amount.as_str(), dep.memo.as_deref()),
        ("100.50", Some("salary"))
    );
    let out: shapes::Transfer = s.json(&["get-transfer", &withdraw.tx_id.to_string()]);
    assert_eq!((out.src.as_deref(), out.dst), (Some("alice"), None));
    let failed: shapes::Transfer = s.json(&["get-transfer", &overdraw.tx_id.to_string()]);
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_deref()),
        ("FAILED", Some("insufficient_funds"))
    );

    let table = s.ok(&["get-transfer", "--id", "pay-1"]);
    for expected in [
        "tx_id",
        "(external)",
        "alice",
        "100.50",
        "salary",
        "COMPLETED",
    ] {
        assert!(table.contains(expected), "{expected} missing from\n{table}");
    }

    s.fails(&["get-transfer", "99"], "transfer_not_found", 3);
    let message = s.fails(&["get-transfer", "--id", "nope"], "transfer_not_found", 3);
    assert!(message.contains("'nope'"), "{message}");
    s.fails(&["get-transfer"], "usage", 2);
    s.fails(&["get-transfer", "2", "--id", "order-42"], "usage", 2);
}

/// `2026-11-25T19:56:05.123Z`: the fixed-width RFC 3339 form every timestamp takes.
fn is_timestamp(text: &str) -> bool {
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    text.len() == shape.len()
        && text.chars().zip(shape.chars()).all(|(c, want)| match want {
            'd' => c.is_ascii_digit(),
            other => c == other,
        })
}

// ----------------------------------------------------------------- history

/// Builds a ledger where alice takes part in 121 transfers of every status,
/// interleaved with transfers she has no part in.
fn busy_ledger() -> Sandbox {
    let s = Sandbox::new();
    s.funded(&[("alice", "500"), ("bob", "3")]);
    s.ok(&["create-user", "carol", "carol@example.com"]);
    for i in 0..144 {
        let cents = amount((i % 40 + 1) * 10);
        let args: Vec<&str> = match i % 6 {
            0 => vec!["transfer", "alice", "bob", &cents],
            1 => vec!["transfer", "bob", "alice", &cents, "--memo", "refund"],
            2 => vec!["deposit", "alice", &cents],
            3 => vec!["withdraw", "alice", &cents],
            4 => vec!["transfer", "carol", "bob", &cents],
            _ => vec!["transfer", "carol", "alice", &cents],
        };
        s.ok(&args);
        if i == 89 {
            s.ok(&["settle"]);
        }
    }
    // Later ones stay PENDING, some are CANCELLED.
    for tx_id in sqlite(
        &s,
        "SELECT tx_id FROM transfers WHERE status = 'PENDING' AND tx_id % 4 = 0",
    )
    .lines()
    {
        s.ok(&["cancel", tx_id]);
    }
    s
}

fn history_pages_newest_first_by_cursor_and_by_status() {
    // One ledger serves both checks: building it is most of the cost.
    let s = busy_ledger();
    history_pages_with_before_visit_every_transfer_exactly_once(&s);
    history_filters_by_status_and_pages_within_it(&s);
}

fn history_pages_with_before_visit_every_transfer_exactly_once(s: &Sandbox) {
    // An oracle that does not go through `wallet`: every transfer alice took part in.
    let expected: Vec<i64> = sqlite(
        s,
        "SELECT t.tx_id FROM transfers t JOIN accounts a ON a.id IN (t.src, t.dst)
         WHERE a.name = 'alice' ORDER BY t.tx_id DESC",
    )
    .lines()
    .map(|line| line.parse().unwrap())
    .collect();
    assert_eq!(expected.len(), 121);
    let statuses: BTreeSet<String> = sqlite(s, "SELECT DISTINCT status FROM transfers")
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(statuses.len(), 4, "every status occurs: {statuses:?}");

    let all = history(s, &["alice", "--limit", "1000"]);
    assert_eq!(ids(&all), expected, "newest first, all of them");
    assert_eq!(history(s, &["Alice"]), all[..50], "50 by default");

    let mut paged = Vec::new();
    let mut before: Option<i64> = None;
    for _ in 0..expected.len() {
        let cursor = before.map(|id| id.to_string());
        let mut args = vec!["alice", "--limit", "7"];
        if let Some(cursor) = &cursor {
            args.extend(["--before", cursor]);
        }
        let page = history(s, &args);
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        before = Some(last.tx_id);
        let full = page.len() == 7;
        paged.extend(page);
        if !full {
            assert!(history(s, &["alice", "--before", &before.unwrap().to_string()]).is_empty());
            break;
        }
    }
    assert_eq!(paged, all, "pages put together are the whole history");
    let unique: BTreeSet<i64> = ids(&paged).into_iter().collect();
    assert_eq!(unique.len(), paged.len(), "no transfer twice");

    let empty = s
        .cmd(&["history", "alice", "--before", "1"])
        .output()
        .unwrap();
    assert!(empty.status.success());
    assert!(empty.stdout.is_empty(), "no rows, nothing on stdout");
    assert_eq!(
        String::from_utf8_lossy(&empty.stderr),
        "no transfers of alice match\n"
    );
    assert_eq!(
        s.ok(&["--json", "history", "alice", "--before", "1"]),
        "[]\n"
    );
}

fn history_filters_by_status_and_pages_within_it(s: &Sandbox) {
    let all = history(s, &["alice", "--limit", "1000"]);
    for status in ["PENDING", "COMPLETED", "FAILED", "CANCELLED"] {
        let wanted: Vec<shapes::Transfer> =
            all.iter().filter(|t| t.status == status).cloned().collect();
        assert!(!wanted.is_empty(), "alice has {status} transfers");
        let lower = status.to_lowercase();
        assert_eq!(
            history(s, &["alice", "--status", &lower, "--limit", "1000"]),
            wanted
        );
        let mut paged: Vec<shapes::Transfer> = Vec::new();
        loop {
            let cursor = paged.last().map(|t| t.tx_id.to_string());
            let mut args = vec!["alice", "--status", status, "--limit", "3"];
            if let Some(cursor) = &cursor {
                args.extend(["--before", cursor]);
            }
            let page = history(s, &args);
            if page.is_empty() {
                break;
            }
            paged.extend(page);
            assert!(paged.len() <= wanted.len(), "paging never repeats");
        }
        assert_eq!(paged, wanted, "{status} in pages of 3");
    }
    let failed = history(s, &["alice", "--status", "FAILED"]);
    assert!(
        failed
            .iter()
            .all(|t| t.reason.as_deref() == Some("insufficient_funds"))
    );
    s.fails(&["history", "nobody"], "user_not_found", 3);
    s.fails(&["history", "alice", "--status", "LOST"], "usage", 2);
    s.fails(&["history", "alice", "--limit", "0"], "usage", 2);
}

// ------------------------------------------------------------------ cancel

fn cancel_turns_pending_into_cancelled_and_refuses_anything_else() {
    let s = Sandbox::new();
    s.funded(&[("alice", "10")]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let queued: shapes::Queued = s.json(&["transfer", "alice", "bob", "4", "--memo", "oops"]);
    assert_eq!(user(&s, "alice").available, "6.00");
    let id = queued.tx_id.to_string();
    let cancelled: shapes::Transfer = s.json(&["cancel", &id]);
    assert_eq!(cancelled.tx_id, queued.tx_id);
    assert_eq!(cancelled.status, "CANCELLED");
    assert_eq!(cancelled.memo.as_deref(), Some("oops"));
    assert_eq!(cancelled.reason, None);
    assert!(cancelled.settled_at.as_deref().is_some_and(is_timestamp));
    let alice = user(&s, "alice");
    assert_eq!(
        (alice.pending_out.as_str(), alice.available.as_str()),
        ("0.00", "10.00")
    );
    assert_eq!(user(&s, "bob").pending_in, "0.00");

    let before = s.ledger_bytes();
    let message = s.fails(&["cancel", &id], "not_pending", 4);
    assert!(message.contains("CANCELLED"), "{message}");
    assert_eq!(before, s.ledger_bytes());
    let settled: shapes::Settled = s.json(&["settle"]);
    assert_eq!(settled.processed, 0);
    assert_eq!(
        user(&s, "bob").balance,
        "0.00",
        "a cancelled transfer is never applied"
    );

    let paid: shapes::Queued = s.json(&["transfer", "alice", "bob", "1"]);
    s.ok(&["settle"]);
    let message = s.fails(&["cancel", &paid.tx_id.to_string()], "not_pending", 4);
    assert!(message.contains("COMPLETED"), "{message}");
    s.fails(&["cancel", "999"], "transfer_not_found", 3);
    s.fails(&["cancel", "many"], "usage", 2);
}

fn cancel_racing_settle_never_applies_a_cancelled_transfer() {
    const ROUNDS: i64 = 6;
    const PER_ROUND: i64 = 12;
    let s = Sandbox::new();
    s.funded(&[("alice", "1000")]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let (mut cancelled_seen, mut refused_seen) = (0, 0);
    for round in 0..ROUNDS {
        let mut round_ids = Vec::new();
        for i in 0..PER_ROUND {
            // Distinct amounts, so the balances tell which transfers were applied.
            let cents = round * PER_ROUND + i + 1;
            let queued: shapes::Queued = s.json(&["transfer", "alice", "bob", &amount(cents)]);
            round_ids.push(queued.tx_id);
        }
        let settle = s
            .process(&["--json", "settle", "--batch-size", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn settle");
        let cancels: Vec<(i64, std::process::Child)> = round_ids
            .iter()
            .rev()
            .step_by(2)
            .map(|&tx_id| {
                let child = s
                    .process(&["--json", "cancel", &tx_id.to_string()])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn cancel");
                (tx_id, child)
            })
            .collect();
        let settle = settle.wait_with_output().unwrap();
        assert!(
            settle.status.success(),
            "{}",
            String::from_utf8_lossy(&settle.stderr)
        );
        let mut reported_cancelled = BTreeSet::new();
        for (tx_id, child) in cancels {
            let out = child.wait_with_output().unwrap();
            if out.status.success() {
                let shown: shapes::Transfer = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!((shown.tx_id, shown.status.as_str()), (tx_id, "CANCELLED"));
                reported_cancelled.insert(tx_id);
                cancelled_seen += 1;
            } else {
                let message = crate::common::assert_error(&out, "not_pending", 4, &["cancel"]);
                assert!(message.contains("COMPLETED"), "{message}");
                refused_seen += 1;
            }
        }
        s.ok(&["settle"]);
        for tx_id in round_ids {
            let final_state: shapes::Transfer = s.json(&["get-transfer", &tx_id.to_string()]);
            let expected = if reported_cancelled.contains(&tx_id) {
                "CANCELLED"
            } else {
                "COMPLETED"
            };
            assert_eq!(final_state.status, expected, "transfer {tx_id}");
        }
        // Balances must follow what the statuses say, and nothing else.
        let completed: i64 = history(&s, &["bob", "--status", "COMPLETED", "--limit", "1000"])
            .iter()
            .map(|t| parse_cents(&t.amount))
            .sum();
        let bob = user(&s, "bob");
        let alice = user(&s, "alice");
        assert_eq!(bob.balance, amount(completed));
        assert_eq!(alice.balance, amount(100_000 - completed));
        assert_eq!(
            (bob.pending_in.as_str(), alice.pending_out.as_str()),
            ("0.00", "0.00")
        );
    }
    eprintln!("cancel race: {cancelled_seen} cancelled, {refused_seen} refused as not_pending");
    assert_eq!(cancelled_seen + refused_seen, ROUNDS * PER_ROUND / 2);
}

fn parse_cents(amount: &str) -> i64 {
    let (units, cents) = amount.split_once('.').expect("two decimals");
    units.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
}

// -------------------------------------------------------------------- memo

fn memos_are_stored_and_shown_wherever_a_transfer_is_shown() {
    let s = Sandbox::new();
    s.funded(&[("alice", "50")]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let memo = "dinner at Tito's, 2 pax \u{1F35C}";
    let queued: shapes::Queued = s.json(&["transfer", "alice", "bob", "5", "--memo", memo]);
    let id = queued.tx_id.to_string();

    let shown: shapes::Transfer = s.json(&["get-transfer", &id]);
    assert_eq!(shown.memo.as_deref(), Some(memo));
    let listed = history(&s, &["bob"]);
    assert_eq!(listed[0].memo.as_deref(), Some(memo));
    for table in [s.ok(&["get-transfer", &id]), s.ok(&["history", "bob"])] {
        assert!(table.contains(memo), "memo missing from\n{table}");
    }
    let table = s.ok(&["cancel", &id]);
    assert!(
        table.contains(memo) && table.contains("CANCELLED"),
        "{table}"
    );

    let queued: shapes::Queued = s.json(&["deposit", "bob", "1", "--memo", "tip"]);
    let cancelled: shapes::Transfer = s.json(&["cancel", &queued.tx_id.to_string()]);
    assert_eq!(cancelled.memo.as_deref(), Some("tip"));
    let no_memo: shapes::Queued = s.json(&["withdraw", "alice", "1"]);
    let shown: shapes::Transfer = s.json(&["get-transfer", &no_memo.tx_id.to_string()]);
    assert_eq!(shown.memo, None);

    s.ok(&["deposit", "bob", "1", "--memo", &"m".repeat(256)]);
    s.fails(
        &["deposit", "bob", "1", "--memo", &"m".repeat(257)],
        "invalid_memo",
        5,
    );
    s.fails(
        &["deposit", "bob", "1", "--memo", "two\nlines"],
        "invalid_memo",
        5,
    );
}

// ------------------------------------------------ completions and man pages

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Compares a committed file with what the binary prints now; with
/// `WALLET_REGENERATE=1` in the environment it rewrites the file instead.
fn check_generated(path: &Path, generated: &[u8], stale: &mut Vec<String>) {
    if std::env::var_os("WALLET_REGENERATE").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, generated).unwrap();
        return;
    }
    if file_bytes(path) != generated {
        stale.push(path.display().to_string());
    }
}

fn fail_if_stale(stale: &[String]) {
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; rewrite them with `WALLET_REGENERATE=1 cargo test --test cli generated`"
    );
}

const SHELLS: [(&str, &str); 5] = [
    ("bash", "wallet.bash"),
    ("zsh", "_wallet"),
    ("fish", "wallet.fish"),
    ("powershell", "_wallet.ps1"),
    ("elvish", "wallet.elv"),
];

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletionsDoc {
    shell: String,
    file_name: String,
    script: String,
}

fn generated_completions_are_committed_and_up_to_date() {
    let s = Sandbox::new();
    let mut stale = Vec::new();
    for (shell, file_name) in SHELLS {
        let script = s.ok(&["completions", shell]);
        assert!(script.contains("wallet"), "{shell}");
        let doc: CompletionsDoc = s.json(&["completions", shell]);
        assert_eq!(
            (doc.shell.as_str(), doc.file_name.as_str()),
            (shell, file_name)
        );
        assert_eq!(doc.script, script);
        check_generated(
            &repo_file(&format!("completions/{file_name}")),
            script.as_bytes(),
            &mut stale,
        );
    }
    let committed: BTreeSet<String> = std::fs::read_dir(repo_file("completions"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let known: BTreeSet<String> = SHELLS.iter().map(|(_, f)| f.to_string()).collect();
    assert_eq!(committed, known, "no stray files under completions/");
    fail_if_stale(&stale);
    s.fails(&["completions", "tcsh"], "usage", 2);
    assert!(!s.ledger_exists(), "completions never touch a ledger");
}

fn generated_man_pages_are_committed_and_up_to_date() {
    let s = Sandbox::new();
    let mut stale = Vec::new();
    // Every visible command at any depth has its page: `wallet man
    // currency add` writes wallet-currency-add.1.
    fn visit(cmd: &clap::Command, path: &[String], pages: &mut Vec<(Vec<String>, String)>) {
        let listed = |sub: &&clap::Command| !sub.is_hide_set() && sub.get_name() != "help";
        for sub in cmd.get_subcommands().filter(listed) {
            let mut path = path.to_vec();
            path.push(sub.get_name().to_string());
            pages.push((path.clone(), format!("wallet-{}.1", path.join("-"))));
            visit(sub, &path, pages);
        }
    }
    let mut pages = vec![(Vec::new(), "wallet.1".to_string())];
    // Built, as a subcommand's own subcommands are deferred until then;
    // building adds help subcommands, which have no page.
    let mut cli = wallet::cli::Cli::command();
    cli.build();
    visit(&cli, &[], &mut pages);
    for (command, file_name) in &pages {
        let mut args = vec!["man"];
        args.extend(command.iter().map(String::as_str));
        let roff = s.ok(&args);
        assert!(
            roff.starts_with(".ie") && roff.contains(".SH EXAMPLES"),
            "{file_name}"
        );
        check_generated(
            &repo_file(&format!("man/{file_name}")),
            roff.as_bytes(),
            &mut stale,
        );
    }
    let committed: BTreeSet<String> = std::fs::read_dir(repo_file("man"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let known: BTreeSet<String> = pages.into_iter().map(|(_, f)| f).collect();
    assert_eq!(
        committed, known,
        "one page per visible command, nothing else"
    );
    fail_if_stale(&stale);
    s.fails(&["man", "nosuch"], "usage", 2);
    s.fails(&["man", "currency", "nosuch"], "usage", 2);
}

fn the_bash_completion_script_parses_and_completes_commands_and_flags() {
    let s = Sandbox::new();
    let out = bash(
        &s,
        r#"set -e
"$WALLET" completions bash > wallet.bash
bash -n wallet.bash
source wallet.bash
compopt() { :; }  # only meaningful inside a real completion
COMP_WORDS=(wallet hist); COMP_CWORD=1; _wallet wallet hist wallet
echo "${COMPREPLY[*]}"
COMP_WORDS=(wallet history alice --st); COMP_CWORD=3; _wallet wallet --st alice
echo "${COMPREPLY[*]}"
COMP_WORDS=(wallet completions p); COMP_CWORD=2; _wallet wallet p completions
echo "${COMPREPLY[*]}"
touch lots-of-files.txt
COMP_WORDS=(wallet m); COMP_CWORD=1; _wallet wallet m wallet
echo "${COMPREPLY[*]}"
COMP_WORDS=(wallet history alice --status C); COMP_CWORD=4; _wallet wallet C --status
echo "${COMPREPLY[*]}"
COMP_WORDS=(wallet history alice --limit l); COMP_CWORD=4; _wallet wallet l --limit
echo "${COMPREPLY[*]}"
COMP_WORDS=(wallet deposit alice 5 --memo l); COMP_CWORD=5; _wallet wallet l --memo
echo "${COMPREPLY[*]}"
COMP_WORDS=(wallet --db l); COMP_CWORD=2; _wallet wallet l --db
echo "${COMPREPLY[*]}""#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The hidden `man` is not offered; statuses come from their list; a
    // count or a memo offers no file names; `--db` does.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "history\n--status\npowershell\nmigrate\nCOMPLETED CANCELLED\nl\nl\nlots-of-files.txt\n"
    );
}

// ------------------------------------------------------------------ output

/// A ledger where alice received `count` deposits. They are inserted as
/// PENDING (with the pending sums they reserve) in one SQL transaction, far
/// faster than `count` processes, and then applied by the real `settle`.
fn ledger_with_deposits(count: u32) -> Sandbox {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    // A PostgreSQL ledger files each transfer in a settle lane: its
    // destination's for a deposit.
    let (begin, lane_column, lane) = match crate::common::engine().name() {
        "sqlite" => ("BEGIN IMMEDIATE", "", ""),
        "postgres" => (
            "BEGIN",
            ", lane",
            ", (SELECT id % 1024 FROM accounts WHERE name = 'alice')",
        ),
        other => crate::common::no_case(other),
    };
    sqlite(
        &s,
        &format!(
            "{begin};
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
             INSERT INTO transfers (src, dst, amount, status, memo, created_at{lane_column})
                 SELECT 0, (SELECT id FROM accounts WHERE name = 'alice'), i, 'PENDING',
                        'deposit number ' || i, 1795636565123 + i{lane}
                 FROM n;
             UPDATE accounts SET pending_in = (SELECT sum(amount) FROM transfers)
                 WHERE name = 'alice';
             UPDATE accounts SET pending_out = (SELECT sum(amount) FROM transfers) WHERE id = 0;
             COMMIT;"
        ),
    );
    let settled: shapes::Settled = s.json(&["settle"]);
    assert_eq!(settled.completed, u64::from(count));
    s
}

fn a_reader_that_stops_early_is_not_an_error() {
    let s = ledger_with_deposits(3000);
    for format in ["", "--json"] {
        // The whole output is several times what a pipe holds, so `wallet`
        // is still writing when `head` exits and its next write gets EPIPE.
        let full = bash(
            &s,
            &format!(r#""$WALLET" {format} history alice --limit 3000 | wc -c"#),
        );
        let size: usize = String::from_utf8_lossy(&full.stdout)
            .trim()
            .parse()
            .unwrap();
        assert!(size > 4 * 65536, "{size} bytes do not fill a pipe");

        let out = bash(
            &s,
            &format!(
                r#"set -o pipefail
"$WALLET" {format} history alice --limit 3000 2>wallet.err | head -1
echo "exit ${{PIPESTATUS[0]}}" >&2
cat wallet.err >&2"#
            ),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "exit 0\n",
            "wallet {format} exits 0 and says nothing"
        );
        assert!(out.status.success(), "the pipeline succeeds");
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        let first = if format.is_empty() {
            "tx_id"
        } else {
            "[{\"tx_id\":3000,"
        };
        assert!(stdout.trim_start().starts_with(first), "{stdout}");
    }
}

/// Runs `wallet ARGS` on a pseudo-terminal `columns` wide (via `script`)
/// and returns what it printed, with `\r\n` turned back into `\n`.
fn on_terminal(s: &Sandbox, columns: u16, env: &[(&str, &str)], args: &str) -> String {
    let mut cmd = StdCommand::new("script");
    cmd.args(["-q", "-e", "-c"])
        .arg(format!(r#"stty cols {columns} rows 50; "$WALLET" {args}"#))
        .arg("/dev/null")
        .current_dir(s.dir.path())
        .env("SHELL", "/bin/sh")
        .env("WALLET", env!("CARGO_BIN_EXE_wallet"))
        .env("WALLET_DB", s.db())
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.output().expect("run script (util-linux)");
    assert!(
        out.status.success(),
        "{args}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n")
}

/// The text as a terminal shows it: ANSI escape sequences removed.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn small_mixed_ledger() -> Sandbox {
    let s = Sandbox::new();
    s.funded(&[("alice", "20")]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    s.ok(&[
        "transfer",
        "alice",
        "bob",
        "500",
        "--memo",
        "a long memo that has to wrap when the terminal is narrow, word by word",
    ]);
    s.ok(&["transfer", "alice", "bob", "2.50"]);
    s.ok(&["settle"]);
    s.ok(&["transfer", "alice", "bob", "1"]);
    s
}

fn colour_only_on_a_terminal_without_no_color_or_a_dumb_term() {
    let s = small_mixed_ledger();
    let coloured = on_terminal(&s, 120, &[], "history alice");
    assert!(
        coloured.contains("\u{1b}["),
        "a terminal gets colour:\n{coloured}"
    );
    assert!(strip_ansi(&coloured).contains("FAILED"));
    for (env, border) in [([("NO_COLOR", "1")], '┆'), ([("TERM", "dumb")], '|')] {
        let plain = on_terminal(&s, 120, &env, "history alice");
        assert!(!plain.contains('\u{1b}'), "{env:?}:\n{plain}");
        assert!(
            plain.contains("FAILED") && plain.contains(border),
            "still a table, in characters the terminal can draw:\n{plain}"
        );
    }
    let dumb = on_terminal(&s, 120, &[("TERM", "dumb")], "history alice");
    assert!(
        dumb.is_ascii(),
        "a dumb terminal gets ASCII borders:\n{dumb}"
    );
    let piped = bash(
        &s,
        r#"unset NO_COLOR; TERM=xterm-256color "$WALLET" history alice | cat"#,
    );
    let piped = String::from_utf8(piped.stdout).unwrap();
    assert!(
        piped.contains("FAILED") && !piped.contains('\u{1b}'),
        "{piped}"
    );
    assert!(!piped.contains('┆'), "plain columns when piped:\n{piped}");
}

fn tables_fit_the_terminal_and_keep_key_columns_whole_when_there_is_room() {
    let s = small_mixed_ledger();
    for columns in [40, 60, 80, 120, 200] {
        for args in ["history alice", "get-transfer 3", "get-user alice"] {
            let shown = strip_ansi(&on_terminal(&s, columns, &[("NO_COLOR", "1")], args));
            // The table fits; the note on stderr about left-out columns is text.
            for line in shown.lines().filter(|l| !l.starts_with("left out")) {
                assert!(
                    line.chars().count() <= usize::from(columns),
                    "{args} at {columns} columns:\n{shown}"
                );
            }
        }
    }
    // At 80 columns the key columns stay whole; created_at gives way rather than break.
    let narrow = strip_ansi(&on_terminal(&s, 80, &[("NO_COLOR", "1")], "history alice"));
    for whole in ["500.00", "COMPLETED", "PENDING", "tx_id", "amount"] {
        assert!(
            narrow.contains(whole),
            "{whole} broken at 80 columns:\n{narrow}"
        );
    }
    let table: Vec<&str> = narrow
        .lines()
        .filter(|l| !l.starts_with("left out"))
        .collect();
    assert!(table.iter().all(|l| !l.contains("created_at")), "{narrow}");
    // Narrower still, other columns give way (and say so) before a key column breaks.
    for columns in [64, 50] {
        let shown = strip_ansi(&on_terminal(
            &s,
            columns,
            &[("NO_COLOR", "1")],
            "history alice",
        ));
        for whole in [
            "500.00",
            "COMPLETED",
            "PENDING",
            "tx_id",
            "amount",
            "status",
        ] {
            assert!(
                shown.contains(whole),
                "{whole} broken at {columns} columns:\n{shown}"
            );
        }
        assert!(shown.contains("left out to fit the terminal"), "{shown}");
    }
    // `COLUMNS` is the width, even on a wider terminal.
    let by_variable = strip_ansi(&on_terminal(
        &s,
        200,
        &[("NO_COLOR", "1"), ("COLUMNS", "64")],
        "history alice",
    ));
    assert!(
        by_variable
            .lines()
            .filter(|line| !line.starts_with("left out"))
            .all(|line| line.chars().count() <= 64),
        "{by_variable}"
    );
    // Piped, no line ends in blanks.
    let piped = s.ok(&["history", "alice"]);
    assert!(piped.lines().all(|line| !line.ends_with(' ')), "{piped:?}");
    let wide = strip_ansi(&on_terminal(&s, 140, &[("NO_COLOR", "1")], "history alice"));
    let created: shapes::Transfer = s.json(&["get-transfer", "3"]);
    assert!(wide.contains(&created.created_at), "{wide}");
    assert!(wide.contains("insufficient_funds"), "{wide}");
    assert!(wide.contains("a long memo"), "{wide}");
}

// ------------------------------------------------------------------ README

/// One `$ command` of a ```` ```console ```` block and the lines shown after it.
struct Example {
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// The Markdown files whose examples and links are checked: README.md and
/// every `.md` under docs/, by path relative to the repository.
fn doc_files() -> Vec<String> {
    fn walk(dir: &Path, root: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, found);
            } else if path.extension().is_some_and(|e| e == "md") {
                let relative = path.strip_prefix(root).unwrap();
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let root = repo_file("");
    let mut found = vec!["README.md".to_string()];
    walk(&repo_file("docs"), &root, &mut found);
    found[1..].sort();
    found
}

/// A document's console examples in order. `> ` lines continue a command,
/// as a shell's second prompt does; other lines are its expected output.
fn console_examples(name: &str, text: &str) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    let mut in_console = false;
    for (index, line) in text.lines().enumerate() {
        if !in_console {
            in_console = line.trim_end() == "```console";
            continue;
        }
        if line.trim_end() == "```" {
            in_console = false;
        } else if let Some(command) = line.strip_prefix("$ ") {
            examples.push(Example {
                line: index + 1,
                command: command.to_string(),
                expected: Vec::new(),
            });
        } else {
            let example = examples
                .last_mut()
                .unwrap_or_else(|| panic!("{name}:{}: output before any `$ `", index + 1));
            match line.strip_prefix("> ") {
                Some(more) if example.expected.is_empty() => {
                    example.command.push('\n');
                    example.command.push_str(more);
                }
                _ => example.expected.push(line.to_string()),
            }
        }
    }
    assert!(!in_console, "{name} ends inside a console block");
    examples
}

/// Output as compared: timestamps (which differ on every run) replaced by
/// a placeholder; every other byte as printed (piped tables carry no
/// trailing blanks), but for the final newline.
fn normalized(text: &str) -> String {
    let width = "2026-11-25T19:56:05.123Z".len();
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.len() >= width && rest.is_char_boundary(width) && is_timestamp(&rest[..width]) {
            out.push_str("<timestamp>");
            rest = &rest[width..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out.trim_end_matches('\n').to_string()
}

/// Runs one document's examples top to bottom as one session in a fresh
/// directory; returns a description of each that printed something else.
fn run_console_examples(name: &str, examples: &[Example]) -> Vec<String> {
    let s = Sandbox::new();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_wallet")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut mismatches = Vec::new();
    for example in examples {
        // Bounded, so an example that leaves a process holding stdout open
        // (a worker sent to the background) fails instead of hanging the suite.
        let out = StdCommand::new("timeout")
            .args(["--kill-after=5", "30", "bash", "-c"])
            .arg(format!("exec 2>&1\n{}", example.command))
            .current_dir(s.dir.path())
            .env("PATH", &path)
            .env("HOME", s.dir.path())
            .env_remove("WALLET_DB")
            .env_remove("WALLET_LOCK_TIMEOUT")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .stdin(Stdio::null())
            .output()
            .expect("run bash");
        let got = normalized(&String::from_utf8_lossy(&out.stdout));
        let expected = normalized(&example.expected.join("\n"));
        if got != expected {
            mismatches.push(format!(
                "{name}:{}: $ {}\n--- shown\n{expected}\n--- printed\n{got}\n",
                example.line, example.command
            ));
        }
    }
    mismatches
}

fn console_examples_in_readme_and_docs_print_what_they_show() {
    let mut mismatches = Vec::new();
    let (mut run, mut piped_to_jq) = (0, 0);
    for name in doc_files() {
        let text = std::fs::read_to_string(repo_file(&name)).unwrap();
        let examples = console_examples(&name, &text);
        run += examples.len();
        piped_to_jq += examples
            .iter()
            .filter(|e| e.command.contains("| jq"))
            .count();
        mismatches.extend(run_console_examples(&name, &examples));
    }
    assert!(piped_to_jq >= 5, "the docs show jq pipelines");
    assert!(
        mismatches.is_empty(),
        "{} of {run} examples differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

fn readme_opens_with_the_commands_that_work_on_a_fresh_machine() {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let first_block: Vec<&str> = readme
        .lines()
        .skip_while(|line| !line.starts_with("```"))
        .skip(1)
        .take_while(|line| !line.starts_with("```"))
        .collect();
    assert!(
        first_block[0].starts_with("cargo run --release -- "),
        "{first_block:?}"
    );
    assert!(
        first_block[1].starts_with("cargo test --locked "),
        "{first_block:?}"
    );
    let ci = std::fs::read_to_string(repo_file(".ci/run")).unwrap();
    assert!(ci.lines().any(|line| line == "cargo test --locked"), "{ci}");
}

/// A line that opens or closes a fenced block: a run of backticks and an
/// info string without one (a line that starts with a code span is prose).
fn is_fence(line: &str) -> bool {
    let line = line.trim_start();
    let info = line.trim_start_matches('`');
    line.len() - info.len() >= 3 && !info.contains('`')
}

/// The anchors GitHub gives a document's headings: lower case, spaces as
/// `-`, punctuation but `-` and `_` dropped, a repeated one numbered.
fn heading_anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if is_fence(line) {
            in_fence = !in_fence;
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        if in_fence {
            continue;
        }
        let title = heading.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let mut anchor = slug.clone();
        let mut n = 0;
        while anchors.contains(&anchor) {
            n += 1;
            anchor = format!("{slug}-{n}");
        }
        anchors.insert(anchor);
    }
    anchors
}

/// The targets of a document's inline links `[text](target)`, with the
/// line each is on, outside fenced blocks and code spans.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    let mut in_fence = false;
    for (index, line) in text.lines().enumerate() {
        if is_fence(line) {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join("");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            targets.push((index + 1, rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    targets
}

fn relative_links_in_readme_and_docs_resolve() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for name in doc_files() {
        let text = std::fs::read_to_string(repo_file(&name)).unwrap();
        let dir = repo_file(&name).parent().unwrap().to_path_buf();
        for (line, target) in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                repo_file(&name)
            } else {
                dir.join(file)
            };
            if !path.exists() {
                broken.push(format!("{name}:{line}: {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor {
                let heading_text = std::fs::read_to_string(&path).unwrap_or_default();
                if !heading_anchors(&heading_text).contains(anchor) {
                    broken.push(format!("{name}:{line}: {target}: no such heading"));
                }
            }
        }
    }
    assert!(checked > 0, "no relative links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

fn links_and_anchors_are_read_as_github_renders_them() {
    let text = "# A `b` (c)\n## A b c\n```\n# not a heading [x](y)\n```\n[one](a.md#x) `[no](z)` [two](#a-b-c)\n```` ```sh ```` is prose\n# After\n";
    let anchors: Vec<String> = heading_anchors(text).into_iter().collect();
    assert_eq!(anchors, ["a-b-c", "a-b-c-1", "after"]);
    assert_eq!(
        link_targets(text),
        [(6, "a.md#x".to_string()), (6, "#a-b-c".to_string())]
    );
}

fn console_examples_are_read_with_continuations_and_outputs() {
    let text = "intro\n```console\n$ a | b\nout 1\nout 2\n$ c\n> d\n```\n```sh\n$ not run\n```\n";
    let examples = console_examples("text", text);
    assert_eq!(examples.len(), 2);
    assert_eq!(
        (examples[0].line, examples[0].command.as_str()),
        (3, "a | b")
    );
    assert_eq!(examples[0].expected, ["out 1", "out 2"]);
    assert_eq!(examples[1].command, "c\nd");
    assert!(examples[1].expected.is_empty());
    assert_eq!(
        normalized("x 2026-11-25T19:56:05.123Z  \ny\n\n"),
        "x <timestamp>  \ny"
    );
}

engine_tests! {
    both: [
        a_retried_transfer_with_a_key_queues_once_and_answers_the_same_tx_id,
        concurrent_runs_with_one_key_queue_one_transfer,
        deposits_and_withdrawals_take_keys_too,
        a_reused_key_with_any_field_changed_fails_naming_it_and_changes_nothing,
        a_replay_after_settlement_reports_the_current_status,
        keys_must_be_printable_and_at_most_128_characters,
        get_transfer_shows_the_full_object_by_id_or_by_key,
        history_pages_newest_first_by_cursor_and_by_status,
        cancel_turns_pending_into_cancelled_and_refuses_anything_else,
        cancel_racing_settle_never_applies_a_cancelled_transfer,
        memos_are_stored_and_shown_wherever_a_transfer_is_shown,
        generated_completions_are_committed_and_up_to_date,
        generated_man_pages_are_committed_and_up_to_date,
        the_bash_completion_script_parses_and_completes_commands_and_flags,
        a_reader_that_stops_early_is_not_an_error,
        colour_only_on_a_terminal_without_no_color_or_a_dumb_term,
        tables_fit_the_terminal_and_keep_key_columns_whole_when_there_is_room,
        console_examples_in_readme_and_docs_print_what_they_show,
        readme_opens_with_the_commands_that_work_on_a_fresh_machine,
        relative_links_in_readme_and_docs_resolve,
        links_and_anchors_are_read_as_github_renders_them,
        console_examples_are_read_with_continuations_and_outputs,
    ],
}
