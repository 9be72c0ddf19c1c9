//! What only a shared server has: many processes and workers on one
//! ledger, ledgers side by side in one database, a server that goes away,
//! roles without write rights.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::thread;

use crate::common::{Sandbox, shapes};
use crate::pgserver::PgServer;
use crate::policy_model::{self, Change, Policies};

/// Users u0…u{n-1}, each funded with `funds` (in whole units), settled.
fn funded_users(s: &Sandbox, n: usize, funds: u32) {
    let users: Vec<(String, String)> = (0..n)
        .map(|i| (format!("u{i}"), funds.to_string()))
        .collect();
    let borrowed: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, f)| (u.as_str(), f.as_str()))
        .collect();
    s.funded(&borrowed);
}

/// A JSON Lines batch of `count` transfers between random distinct users,
/// amounts up to `max` whole units: more than the funds allow, so some fail.
fn random_batch(n: usize, count: usize, max: u64, seed: u64) -> String {
    let mut rng = crate::common::Rng(seed);
    let mut lines = String::new();
    for _ in 0..count {
        let src = rng.below(n as u64) as usize;
        let dst = (src + 1 + rng.below(n as u64 - 1) as usize) % n;
        let amount = 1 + rng.below(max);
        lines.push_str(&format!(
            "{{\"src\":\"u{src}\",\"dst\":\"u{dst}\",\"amount\":\"{amount}\"}}\n"
        ));
    }
    lines
}

fn queue_batch(s: &Sandbox, lines: &str) {
    let path = s.dir.path().join("batch.jsonl");
    std::fs::write(&path, lines).unwrap();
    s.ok(&["-q", "transfer", "--batch", path.to_str().unwrap()]);
}

/// Each transfer's decision as the ledger recorded it.
#[derive(Debug, Clone, PartialEq)]
struct Decided {
    src: i64,
    dst: i64,
    amount: i64,
    status: String,
    reason: Option<String>,
    settled_at: Option<i64>,
    batch: Option<i64>,
    src_balance: Option<i64>,
    dst_balance: Option<i64>,
}

fn decisions(client: &mut ::postgres::Client) -> BTreeMap<i64, Decided> {
    client
        .query(
            "SELECT tx_id, src, dst, amount, status, settle_batch, src_balance, dst_balance,
                    reason, settled_at
               FROM transfers ORDER BY tx_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get(0),
                Decided {
                    src: r.get(1),
                    dst: r.get(2),
                    amount: r.get(3),
                    status: r.get(4),
                    reason: r.get(8),
                    settled_at: r.get(9),
                    batch: r.get(5),
                    src_balance: r.get(6),
                    dst_balance: r.get(7),
                },
            )
        })
        .collect()
}

/// Every user's balance, and the last settle batch, before the work a
/// test audits.
pub(crate) struct Start {
    balances: BTreeMap<i64, i64>,
    after_batch: i64,
}

pub(crate) fn start(client: &mut ::postgres::Client) -> Start {
    let balances = client
        .query("SELECT id, balance FROM accounts WHERE id <> 0", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let after_batch: Option<i64> = client
        .query_one("SELECT max(settle_batch) FROM transfers", &[])
        .unwrap()
        .get(0);
    Start {
        balances,
        after_batch: after_batch.unwrap_or(0),
    }
}

/// Every policy change the ledger recorded.
fn policies(client: &mut ::postgres::Client) -> Policies {
    Policies::new(
        client
            .query(
                "SELECT account, kind, overdraft, at FROM policy_changes ORDER BY change_id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| Change {
                account: r.get(0),
                kind: r.get(1),
                overdraft: r.get(2),
                at: r.get(3),
            }),
    )
}

/// What an audit saw of the policies: transfers that left their source
/// below zero, within its limit, and transfers that failed from a frozen
/// source.
#[derive(Debug, Default)]
pub(crate) struct Audited {
    pub into_overdraft: usize,
    pub frozen_failed: usize,
}

/// The audit of parallel settlement, from the ledger's own record of each
/// decision since `start`: replayed account by account in the order each
/// account saw them ((settle_batch, tx_id)), every recorded balance is the
/// running one; each source's transfers were decided in `tx_id` order, and
/// each one's outcome is the one owed under the policy in force at its
/// `settled_at` (read from `policy_changes`): FAILED `account_frozen` from a
/// frozen source, COMPLETED only when it left the source at or above minus
/// its limit, FAILED `insufficient_funds` when it would have gone below.
pub(crate) fn audit_decisions(client: &mut ::postgres::Client, start: &Start) -> Audited {
    let decided = decisions(client);
    let policies = policies(client);
    let mut audited = Audited::default();
    let mut by_account: BTreeMap<i64, Vec<(i64, i64, &Decided)>> = BTreeMap::new();
    for (tx_id, d) in &decided {
        assert_ne!(d.status, "PENDING", "transfer {tx_id} left PENDING");
        let Some(batch) = d.batch.filter(|b| *b > start.after_batch) else {
            continue;
        };
        for account in [d.src, d.dst] {
            if account != 0 {
                by_account
                    .entry(account)
                    .or_default()
                    .push((batch, *tx_id, d));
            }
        }
    }
    for (account, mut seen) in by_account {
        seen.sort_by_key(|(batch, tx_id, _)| (*batch, *tx_id));
        let mut balance = start.balances.get(&account).copied().unwrap_or(0);
        let mut last_out = 0;
        for (_, tx_id, d) in seen {
            if d.src == account {
                assert!(
                    tx_id > last_out,
                    "account {account}: transfer {tx_id} decided after {last_out}"
                );
                last_out = tx_id;
                let at = d
                    .settled_at
                    .unwrap_or_else(|| panic!("transfer {tx_id} has no decision instant"));
                policy_model::check_decision(
                    tx_id,
                    balance,
                    d.amount,
                    (d.status.as_str(), d.reason.as_deref()),
                    &policies.candidates(account, at),
                );
            }
            if d.status == "FAILED" {
                if d.src == account {
                    audited.frozen_failed +=
                        usize::from(d.reason.as_deref() == Some("account_frozen"));
                    assert_eq!(
                        d.src_balance,
                        Some(balance),
                        "transfer {tx_id}: balance seen"
                    );
                }
                continue;
            }
            if d.src == account {
                balance -= d.amount;
                audited.into_overdraft += usize::from(balance < 0);
                assert_eq!(d.src_balance, Some(balance), "transfer {tx_id}: src after");
            } else {
                balance += d.amount;
                assert_eq!(d.dst_balance, Some(balance), "transfer {tx_id}: dst after");
            }
        }
        let stored: i64 = client
            .query_one("SELECT balance FROM accounts WHERE id = $1", &[&account])
            .unwrap()
            .get(0);
        assert_eq!(
            stored, balance,
            "account {account}'s balance is its decisions' sum"
        );
    }
    audited
}

/// The name of the sandbox's ledger schema.
fn schema_of(s: &Sandbox) -> String {
    let db = s.db().to_string_lossy().into_owned();
    db.rsplit("schema=").next().unwrap().to_string()
}

/// A login role that may read the sandbox's ledger and nothing more; its URL.
fn read_only_role(s: &Sandbox, prefix: &str) -> String {
    let schema = schema_of(s);
    let role = format!("{prefix}_{schema}");
    s.tamper(&format!(
        "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA {schema} TO {role};
         GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}"
    ));
    s.db()
        .to_string_lossy()
        .replace("user=postgres", &format!("user={role}"))
}

fn pending(s: &Sandbox) -> u64 {
    s.query_text("SELECT count(*)::text FROM transfers WHERE status = 'PENDING'")[0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// `wallet --db DB --json ARGS…` from the sandbox's directory.
fn json_on(s: &Sandbox, db: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    run_on(s, db, &full)
}

/// `wallet --db DB ARGS…` from the sandbox's directory.
fn run_on(s: &Sandbox, db: &str, args: &[&str]) -> std::process::Output {
    s.process(&[])
        .args(["--db", db])
        .args(args)
        .output()
        .unwrap()
}

fn several_settle_processes_with_workers_each_apply_every_transfer_once() {
    let s = Sandbox::new();
    funded_users(&s, 12, 50);
    let start = start(&mut s.postgres());
    queue_batch(&s, &random_batch(12, 3000, 40, 7));
    let pending = pending(&s);
    let children: Vec<_> = (0..3)
        .map(|_| {
            s.process(&["--json", "settle", "--workers", "2", "--batch-size", "25"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut processed = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let settled: shapes::Settled = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(settled.completed + settled.failed, settled.processed);
        processed += settled.processed;
    }
    assert_eq!(
        processed, pending,
        "every transfer settled by exactly one worker"
    );
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok, "{report:?}");
    audit_decisions(&mut s.postgres(), &start);
    let statuses = decisions(&mut s.postgres());
    assert!(
        statuses
            .values()
            .filter_map(|d| d.batch)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 20,
        "many batches"
    );
    assert!(statuses.values().any(|d| d.status == "FAILED"));
    assert!(statuses.values().all(|d| d.status != "PENDING"));
}

fn one_worker_decides_exactly_as_a_ledger_file_does() {
    let batch = random_batch(8, 1500, 30, 11);
    let s = Sandbox::new();
    let file = s.dir.path().join("wallet.db");
    let file = file.to_str().unwrap();
    let server = s.db().to_string_lossy().into_owned();
    let mut outcomes = Vec::new();
    for db in [server.as_str(), file] {
        let run = |args: &[&str]| {
            let out = run_on(&s, db, args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        for user in 0..8 {
            run(&[
                "create-user",
                &format!("u{user}"),
                &format!("u{user}@example.com"),
            ]);
            run(&["deposit", &format!("u{user}"), "40"]);
        }
        run(&["settle"]);
        let path = s.dir.path().join("batch.jsonl");
        std::fs::write(&path, &batch).unwrap();
        run(&["-q", "transfer", "--batch", path.to_str().unwrap()]);
        run(&["settle", "--batch-size", "17"]);
        let mut seen = Vec::new();
        for user in 0..8 {
            let name = format!("u{user}");
            let history: Vec<shapes::Transfer> =
                serde_json::from_slice(&run(&["--json", "history", &name, "--limit", "100000"]))
                    .unwrap();
            for t in history {
                seen.push((t.tx_id, t.src, t.dst, t.amount, t.status, t.reason));
            }
            let u: shapes::User =
                serde_json::from_slice(&run(&["--json", "get-user", &name])).unwrap();
            seen.push((
                0,
                Some(name),
                None,
                u.balance,
                u.available,
                Some(u.pending_in),
            ));
        }
        outcomes.push(seen);
    }
    assert!(outcomes[0].iter().any(|t| t.4 == "FAILED"));
    assert_eq!(outcomes[0], outcomes[1]);
}

fn concurrent_inits_make_exactly_one_ledger() {
    let s = Sandbox::new();
    let children: Vec<_> = (0..8)
        .map(|_| {
            s.process(&["--json", "init"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<Option<i32>> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == Some(0)).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == Some(4)).count(),
        7,
        "{codes:?}"
    );
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok);
}

fn concurrent_requests_with_one_key_queue_one_transfer() {
    let s = Sandbox::new();
    funded_users(&s, 2, 100);
    let outs: Vec<_> = thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    s.json::<shapes::Queued>(&["transfer", "u0", "u1", "1", "--id", "pay-once"])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = outs[0].tx_id;
    assert!(outs.iter().all(|q| q.tx_id == first), "{outs:?}");
    assert_eq!(outs.iter().filter(|q| !q.replayed).count(), 1, "{outs:?}");
    let alice: shapes::User = s.json(&["get-user", "u0"]);
    assert_eq!(alice.pending_out, "1.00");
}

fn ledgers_in_other_schemas_of_one_database_are_apart() {
    let s = Sandbox::new();
    funded_users(&s, 1, 10);
    let db = s.db().to_string_lossy().into_owned();
    let other = format!("{}_b", db);
    let out = run_on(&s, &other, &["--json", "get-user", "u0"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a schema of its own: no ledger there yet"
    );
    let out = run_on(&s, &other, &["create-user", "u0", "b@example.com"]);
    assert!(out.status.success());
    let mine: shapes::User = s.json(&["get-user", "u0"]);
    assert_eq!(mine.balance, "10.00");
}

fn a_schema_with_foreign_or_changed_objects_is_not_a_ledger() {
    // Another program's schema of the same name.
    let s = Sandbox::new();
    s.ok(&["init"]);
    s.tamper("DROP TABLE schema_version CASCADE");
    let message = s.fails(&["get-user", "alice"], "not_a_ledger", 7);
    assert!(message.contains("holds no wallet ledger"), "{message}");
    s.fails(&["init"], "ledger_exists", 4);

    // A ledger with a trigger planted in it, or a CHECK edited out.
    for tamper in [
        "CREATE FUNCTION steal() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
         CREATE TRIGGER skim BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION steal()",
        "ALTER TABLE accounts DROP CONSTRAINT accounts_overdraft_check",
        "ALTER TABLE transfers ADD COLUMN note text",
    ] {
        let s = Sandbox::new();
        s.ok(&["create-user", "alice", "alice@example.com"]);
        s.tamper(tamper);
        let before = s.ledger_bytes();
        for args in [
            &["get-user", "alice"][..],
            &["deposit", "alice", "1"],
            &["settle"],
        ] {
            let message = s.fails(args, "not_a_ledger", 7);
            assert!(message.contains("schema differs"), "{tamper}: {message}");
        }
        let error = s.verify_fails();
        assert_eq!(error.report.failed(), ["schema"], "{tamper}");
        assert_eq!(before, s.ledger_bytes(), "{tamper}: nothing written");
    }
}

fn a_ledger_from_a_newer_version_is_refused() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.set_schema_version(99);
    let message = s.fails(&["deposit", "alice", "1"], "schema_too_new", 7);
    assert!(message.contains("99"), "{message}");
}

fn a_server_that_goes_away_is_transient_and_comes_back() {
    let mut server = PgServer::start();
    server.psql("postgres", "CREATE DATABASE books");
    let url = server.url("books", "wallet");
    let s = Sandbox::new();
    let run = |args: &[&str]| json_on(&s, &url, args);
    assert!(
        run(&["create-user", "alice", "alice@example.com"])
            .status
            .success()
    );
    assert!(run(&["deposit", "alice", "5"]).status.success());
    server.crash();
    // A write waits for a server that takes writes at most --lock-timeout.
    for args in [
        &["get-user", "alice"][..],
        &["--lock-timeout", "300", "deposit", "alice", "1"],
        &["--lock-timeout", "300", "settle"],
    ] {
        let out = run(args);
        crate::common::assert_error(&out, "server_unavailable", 6, args);
    }
    // One that comes back within it: the write waits, then succeeds.
    let waiting = s
        .process(&[])
        .args(["--db", &url, "--json", "--lock-timeout", "30000"])
        .args(["deposit", "alice", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    server.run();
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = run(&["settle"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alice: shapes::User = serde_json::from_slice(&run(&["get-user", "alice"]).stdout).unwrap();
    assert_eq!(
        alice.balance, "7.00",
        "the deposit queued before the crash survived it, and the one that waited was made"
    );
}

fn a_role_that_may_only_read_reads_and_is_refused_writes_cleanly() {
    let s = Sandbox::new();
    funded_users(&s, 1, 10);
    let url = read_only_role(&s, "reader");
    let run = |args: &[&str]| json_on(&s, &url, args);
    let out = run(&["get-user", "u0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = s.ledger_bytes();
    for args in [
        &["deposit", "u0", "1"][..],
        &["create-user", "x", "x@example.com"],
    ] {
        let out = run(args);
        let message = crate::common::assert_error(&out, "io_error", 1, args);
        assert!(message.contains("refused this role access"), "{message}");
    }
    assert_eq!(before, s.ledger_bytes());
}

fn watch_workers_drain_what_is_queued_while_they_run() {
    let s = Sandbox::new();
    funded_users(&s, 6, 100);
    let start = start(&mut s.postgres());
    let mut watch = s
        .process(&[
            "--json",
            "settle",
            "--watch",
            "--workers",
            "3",
            "--batch-size",
            "10",
            "--interval",
            "20",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for seed in 0..4 {
        queue_batch(&s, &random_batch(6, 200, 60, seed));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if pending(&s) == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the workers never drained the queue"
        );
        thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status();
    let out = watch.wait().unwrap();
    assert!(out.success());
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok, "{report:?}");
    audit_decisions(&mut s.postgres(), &start);
}

fn verify_runs_amcheck_where_the_extension_is_installed() {
    let server = crate::pgserver::shared();
    let s = Sandbox::new();
    let schema = schema_of(&s);
    let database = format!("amchecked_{schema}");
    server.psql("postgres", &format!("CREATE DATABASE {database}"));
    server.psql(&database, "CREATE EXTENSION amcheck");
    let url = server.url(&database, "wallet");
    let run = |args: &[&str]| json_on(&s, &url, args);
    assert!(
        run(&["create-user", "alice", "alice@example.com"])
            .status
            .success()
    );
    assert!(run(&["deposit", "alice", "5"]).status.success());
    let report: shapes::VerifyReport = serde_json::from_slice(&run(&["verify"]).stdout).unwrap();
    let amcheck = &report.checks[0];
    assert_eq!(amcheck.name, "amcheck");
    assert!(amcheck.ok, "{amcheck:?}");
    assert!(
        amcheck.detail.contains("B-tree indexes sound"),
        "{}",
        amcheck.detail
    );
    // Without the extension the check is reported by name as not run.
    s.ok(&["init"]);
    let plain: shapes::VerifyReport = s.json(&["verify"]);
    assert_eq!(plain.checks[0].name, "amcheck");
    assert!(
        plain.checks[0].detail.contains("not installed"),
        "{}",
        plain.checks[0].detail
    );
}

fn init_fills_an_empty_schema_made_beforehand_and_nothing_else_does() {
    let s = Sandbox::new();
    let schema = schema_of(&s);
    crate::pgserver::shared().psql("wallet_tests", &format!("CREATE SCHEMA {schema}"));
    s.fails(
        &["create-user", "alice", "alice@example.com"],
        "not_a_ledger",
        7,
    );
    s.fails(&["get-user", "alice"], "not_a_ledger", 7);
    let init: shapes::Init = s.json(&["init"]);
    assert_eq!(init.status, "created");
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.fails(&["init"], "ledger_exists", 4);
}

fn settings_that_cannot_work_are_not_called_transient() {
    let s = Sandbox::new();
    let url = s.db().to_string_lossy().into_owned();
    // TLS demanded of a server without it: a setting to fix, not a retry.
    let out = run_on(&s, &format!("{url}&sslmode=require"), &["--json", "init"]);
    crate::common::assert_error(&out, "io_error", 1, &["init"]);
    // Unknown and malformed parameters are named.
    let out = run_on(&s, &format!("{url}&bogus=1"), &["--json", "get-user", "a"]);
    let message = crate::common::assert_error(&out, "usage", 2, &["get-user"]);
    assert!(message.contains("bogus"), "{message}");
}

fn a_worker_that_may_not_write_stops_instead_of_retrying_for_ever() {
    let s = Sandbox::new();
    funded_users(&s, 1, 10);
    s.ok(&["deposit", "u0", "1"]);
    let url = read_only_role(&s, "watcher");
    let out = s
        .process(&[])
        .args(["--db", &url, "--json", "settle", "--watch"])
        .output()
        .unwrap();
    let message = crate::common::assert_error(&out, "io_error", 1, &["settle", "--watch"]);
    assert!(message.contains("refused this role access"), "{message}");
}

fn many_workers_with_small_batches_drain_the_whole_queue() {
    // Half the work in one lane, the rest spread: workers often find only
    // a few rows in the lanes the others leave them, and a short batch must
    // not be taken for an empty queue.
    for round in 0..4 {
        let s = Sandbox::new();
        funded_users(&s, 40, 1);
        let mut lines = String::new();
        for i in 0..3000 {
            let user = if i % 2 == 0 { 0 } else { (i * 7919) % 40 };
            lines.push_str(&format!(
                "{{\"src\":null,\"dst\":\"u{user}\",\"amount\":\"1\"}}\n"
            ));
        }
        queue_batch(&s, &lines);
        let settled: shapes::Settled = s.json(&["settle", "--workers", "8", "--batch-size", "20"]);
        assert_eq!(
            (settled.processed, settled.remaining),
            (3000, 0),
            "round {round}: the workers stopped early"
        );
    }
}

fn lines_that_lose_their_key_to_another_process_are_each_answered_by_their_own_fields() {
    let s = Sandbox::new();
    s.alice_and_bob();
    let ids: Vec<i64> = s
        .postgres()
        .query(
            "SELECT id FROM accounts WHERE name IN ('alice', 'bob') ORDER BY name",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Another program holds an uncommitted transfer under key K2.
    let mut other = s.postgres();
    other
        .batch_execute(&format!(
            "BEGIN; INSERT INTO transfers (lane, src, dst, amount, status, idem_key, created_at)
             VALUES ({lane}, {alice}, {bob}, 1000, 'PENDING', 'K2', 0)",
            lane = ids[0] % 1024,
            alice = ids[0],
            bob = ids[1]
        ))
        .unwrap();
    let path = s.dir.path().join("race.jsonl");
    std::fs::write(
        &path,
        "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"10\",\"id\":\"K2\"}\n\
         {\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"20\",\"id\":\"K2\"}\n",
    )
    .unwrap();
    let batch = s
        .process(&["--json", "transfer", "--batch", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The batch's insert waits on the other program's key; then it commits.
    thread::sleep(std::time::Duration::from_millis(500));
    other.batch_execute("COMMIT").unwrap();
    let out = batch.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["replayed"], true, "{lines:?}");
    assert_eq!(
        lines[1]["error"]["code"], "idempotency_conflict",
        "{lines:?}"
    );
    assert_eq!(out.status.code(), Some(5));
}

/// A deadlock the server breaks by rolling `wallet`'s transaction back is
/// retried inside the command and never shown: another program holds bob
/// and then asks for alice while `wallet` holds alice and waits for bob.
fn a_deadlock_is_retried_inside_the_command_and_never_shown() {
    let s = Sandbox::new();
    s.alice_and_bob();
    let mut other = s.postgres();
    other
        .batch_execute("BEGIN; SELECT 1 FROM accounts WHERE name = 'bob' FOR UPDATE")
        .unwrap();
    let transfer = s
        .process(&[
            "--json",
            "--lock-timeout",
            "30000",
            "transfer",
            "alice",
            "bob",
            "1",
            "--id",
            "dead-1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `wallet` locks alice, then waits for bob; asking for alice closes the
    // cycle, and the server's detector, which looks first at the one that
    // has waited longest, rolls `wallet` back.
    thread::sleep(std::time::Duration::from_millis(500));
    other
        .batch_execute("SELECT 1 FROM accounts WHERE name = 'alice' FOR UPDATE")
        .expect("the other program is not the one rolled back");
    other.batch_execute("COMMIT").unwrap();
    let out = transfer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let queued: shapes::Queued = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!queued.replayed);
    let count = s.query_text("SELECT count(*)::text FROM transfers WHERE idem_key = 'dead-1'");
    assert_eq!(count, [Some("1".to_string())], "queued once");
    let bob: shapes::User = s.json(&["get-user", "bob"]);
    assert_eq!(bob.pending_in, "1.00");
}

/// What schema version 1 built, from a ledger of the current version:
/// the steps of version 2 taken back.
const TO_VERSION_1: &str = "
    DROP TABLE chain_links;
    DELETE FROM schema_version WHERE version IN (3, 4);
    DROP INDEX transfers_held_by_src, transfers_held_by_expiry, transfers_by_refund_of,
               transfers_applied_by_src, transfers_applied_by_dst;
    ALTER TABLE transfers DROP COLUMN hold_amount, DROP COLUMN expires_at, DROP COLUMN refund_of;
    ALTER TABLE transfers DROP CONSTRAINT transfers_status_check;
    ALTER TABLE transfers ADD CONSTRAINT transfers_status_check
        CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED', 'CANCELLED'));
    ALTER TABLE accounts DROP COLUMN held;
    DELETE FROM schema_version WHERE version = 2;";

fn a_version_1_ledger_moves_to_holds_in_one_transaction() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "10"]);
    s.ok(&["transfer", "alice", "bob", "4"]);
    s.ok(&["settle"]);
    let before = s.ok(&["--json", "history", "alice"]);
    s.tamper(crate::common::POSTGRES_TO_VERSION_4);
    s.tamper(TO_VERSION_1);
    s.fails(&["get-user", "alice"], "upgrade_needed", 7);
    // A sound older ledger is never `integrity`: verify, a read, asks
    // for the upgrade as every read does.
    let message = s.fails(&["verify"], "upgrade_needed", 7);
    assert!(message.contains("wallet migrate"), "{message}");
    let migrated: serde_json::Value = s.json(&["migrate"]);
    assert_eq!(
        migrated,
        serde_json::json!({"status": "migrated", "from": 1, "to": 9})
    );
    // The balances after each transfer were recorded all along.
    assert_eq!(s.ok(&["--json", "history", "alice"]), before);
    let hold: serde_json::Value = s.json(&["hold", "alice", "bob", "6"]);
    assert_eq!(hold["status"], "HELD");
    let report: serde_json::Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
}

/// What the settle worker told its caller.
#[derive(Default)]
struct Told {
    started: std::sync::Mutex<Option<(u64, u64)>>,
    settled: std::sync::atomic::AtomicU64,
    retries: std::sync::Mutex<Vec<&'static str>>,
}

impl Told {
    fn settled(&self) -> u64 {
        self.settled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits, for at most `seconds`, until `n` transfers were reported settled.
    fn until_settled(&self, n: u64, seconds: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while self.settled() < n {
            assert!(
                std::time::Instant::now() < until,
                "settled {} of {n}",
                self.settled()
            );
            thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl wallet::ledger::worker::Events for Told {
    fn wants_total(&self) -> bool {
        true
    }

    fn started(&self, total: u64, batch_size: u64) {
        *self.started.lock().unwrap() = Some((total, batch_size));
    }

    fn settled(&self, more: u64) {
        self.settled
            .fetch_add(more, std::sync::atomic::Ordering::Relaxed);
    }

    fn retrying(&self, error: &wallet::error::WalletError, _pause: std::time::Duration) {
        self.retries.lock().unwrap().push(error.code());
    }
}

fn the_settle_worker_shares_a_limit_among_its_workers_and_reports_every_batch() {
    use wallet::ledger::worker::{self, Plan};
    use wallet::ledger::{Ledger, Location, OpenOptions};

    let s = Sandbox::new();
    funded_users(&s, 20, 1);
    let lines: String = (0..500)
        .map(|i| {
            format!(
                "{{\"src\":null,\"dst\":\"u{}\",\"amount\":\"1\"}}\n",
                i % 20
            )
        })
        .collect();
    queue_batch(&s, &lines);
    let location = Location::parse(&s.db()).unwrap();
    let options = OpenOptions::default();
    let profile = Ledger::open(&location, &options).unwrap().profile();
    assert!(profile.max_writers > 1, "a server takes parallel workers");

    let told = Told::default();
    let plan = Plan {
        limit: Some(301),
        batch_size: Some(10),
        workers: 4,
        ..Plan::default()
    };
    let done = worker::settle(&location, &options, &plan, &told).unwrap();
    assert_eq!((done.processed, done.remaining), (301, Some(199)));
    assert_eq!(*told.started.lock().unwrap(), Some((301, 10)));
    assert_eq!(told.settled.load(std::sync::atomic::Ordering::Relaxed), 301);

    let rest = worker::settle(&location, &options, &Plan::default(), &worker::Silent).unwrap();
    assert_eq!(
        (rest.processed, rest.completed, rest.remaining),
        (199, 199, Some(0))
    );
}

fn a_watching_worker_rides_out_a_server_restart_and_says_so() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use wallet::ledger::worker::{self, Plan};
    use wallet::ledger::{Location, OpenOptions};

    let mut server = PgServer::start();
    server.psql("postgres", "CREATE DATABASE books");
    let url = server.url("books", "wallet");
    let s = Sandbox::new();
    let run = |args: &[&str]| {
        let out = json_on(&s, &url, args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["create-user", "alice", "alice@example.com"]);
    run(&["deposit", "alice", "5"]);
    let location = Location::parse(std::path::Path::new(&url)).unwrap();
    let told = Told::default();
    let stop = Arc::new(AtomicBool::new(false));
    let plan = Plan {
        workers: 2,
        watch: Some(std::time::Duration::from_millis(20)),
        stop: Some(Arc::clone(&stop)),
        ..Plan::default()
    };
    let done = thread::scope(|scope| {
        let watch =
            scope.spawn(|| worker::settle(&location, &OpenOptions::default(), &plan, &told));
        told.until_settled(1, 20);
        server.crash();
        thread::sleep(std::time::Duration::from_millis(300));
        server.run();
        run(&["deposit", "alice", "3"]);
        told.until_settled(2, 30);
        stop.store(true, Ordering::Relaxed);
        watch.join().unwrap()
    })
    .unwrap();
    assert_eq!((done.processed, done.remaining), (2, Some(0)));
    let retries = told.retries.lock().unwrap();
    assert!(
        !retries.is_empty() && retries.iter().all(|code| *code == "server_unavailable"),
        "{retries:?}"
    );
}

/// A batch reads only the oldest waiting transfers while their lanes are
/// free; when another worker holds the lane of every one of them, it looks
/// further along the queue and settles the work of a lane no one holds.
fn a_batch_whose_oldest_lanes_are_held_settles_a_free_lane_further_on() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100"), ("bob", "1"), ("carol", "100")]);
    let queued = |from: &str| -> String {
        s.json::<serde_json::Value>(&["transfer", from, "bob", "10"])["tx_id"].to_string()
    };
    let oldest = [queued("alice"), queued("alice")];
    let further = queued("carol");
    let mut other = s.postgres();
    other
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM lanes
              WHERE lane = (SELECT lane FROM transfers WHERE tx_id = {}) FOR UPDATE",
            oldest[0]
        ))
        .unwrap();
    // One transfer a batch: the oldest two (a batch's own and the one past
    // it) both wait in the held lane.
    let out = s
        .cmd(&["--json", "settle", "--batch-size", "1", "--limit", "1"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = |id: &str| s.json::<serde_json::Value>(&["get-transfer", id])["status"].clone();
    assert_eq!(status(&further), "COMPLETED");
    assert_eq!(oldest.clone().map(|id| status(&id)), ["PENDING", "PENDING"]);
    other.batch_execute("COMMIT").unwrap();
    s.ok(&["settle"]);
    assert_eq!(oldest.map(|id| status(&id)), ["COMPLETED", "COMPLETED"]);
    assert_eq!(s.json::<serde_json::Value>(&["verify"])["ok"], true);
}

/// A read compares the catalog before it reads anything of the ledger:
/// a table swapped for a view that runs code (here, drawing from a
/// sequence, which no rollback undoes) is refused before the view is read.
fn a_read_refuses_a_changed_schema_before_reading_any_of_it() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    let schema = s.query_text("SELECT current_schema()::text")[0]
        .clone()
        .unwrap();
    s.tamper(&format!(
        "CREATE SCHEMA {schema}_side;
         CREATE SEQUENCE {schema}_side.ran;
         CREATE FUNCTION {schema}_side.probe() RETURNS bigint LANGUAGE sql VOLATILE
             AS 'SELECT nextval(''{schema}_side.ran'')';
         ALTER TABLE ledger_meta RENAME TO ledger_meta_kept;
         CREATE VIEW ledger_meta AS
             SELECT id, currency, scale, lanes, {schema}_side.probe() AS probe
               FROM ledger_meta_kept;"
    ));
    for args in [
        &["get-user", "alice"][..],
        &["history", "alice"],
        &["users"],
    ] {
        let message = s.fails(args, "not_a_ledger", 7);
        assert!(message.contains("schema differs"), "{args:?}: {message}");
    }
    let ran = s.query_text(&format!("SELECT is_called::text FROM {schema}_side.ran"));
    assert_eq!(ran, [Some("false".to_string())], "the view was read");
}

engine_tests! {
    both: [],
    postgres: [
        several_settle_processes_with_workers_each_apply_every_transfer_once,
        one_worker_decides_exactly_as_a_ledger_file_does,
        concurrent_inits_make_exactly_one_ledger,
        concurrent_requests_with_one_key_queue_one_transfer,
        ledgers_in_other_schemas_of_one_database_are_apart,
        a_schema_with_foreign_or_changed_objects_is_not_a_ledger,
        a_ledger_from_a_newer_version_is_refused,
        a_server_that_goes_away_is_transient_and_comes_back,
        a_role_that_may_only_read_reads_and_is_refused_writes_cleanly,
        watch_workers_drain_what_is_queued_while_they_run,
        verify_runs_amcheck_where_the_extension_is_installed,
        init_fills_an_empty_schema_made_beforehand_and_nothing_else_does,
        settings_that_cannot_work_are_not_called_transient,
        a_worker_that_may_not_write_stops_instead_of_retrying_for_ever,
        many_workers_with_small_batches_drain_the_whole_queue,
        lines_that_lose_their_key_to_another_process_are_each_answered_by_their_own_fields,
        a_deadlock_is_retried_inside_the_command_and_never_shown,
        a_version_1_ledger_moves_to_holds_in_one_transaction,
        the_settle_worker_shares_a_limit_among_its_workers_and_reports_every_batch,
        a_watching_worker_rides_out_a_server_restart_and_says_so,
        a_batch_whose_oldest_lanes_are_held_settles_a_free_lane_further_on,
        a_read_refuses_a_changed_schema_before_reading_any_of_it,
    ],
}
