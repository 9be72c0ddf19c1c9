//! A server that crashes while a command is part-way through its
//! transactions: what the command reports must be what the restarted server
//! holds, and it must not call earlier commits "nothing was written".

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Sandbox;
use crate::pgserver::PgServer;

/// A server of its own with a ledger of `users` users u0…, each funded with
/// 1,000 and settled; its URL.
fn ledger_with_users(server: &PgServer, users: usize) -> String {
    server.psql("postgres", "CREATE DATABASE books");
    let url = server.url("books", "wallet");
    let s = Sandbox::new();
    let deposits: String = (0..users)
        .map(|i| format!("{{\"dst\":\"u{i}\",\"amount\":\"1000\"}}\n"))
        .collect();
    for i in 0..users {
        let email = format!("u{i}@example.com");
        run(&url, &["create-user", &format!("u{i}"), &email]);
    }
    batch_file_run(&s, &url, &deposits);
    run(&url, &["settle"]);
    url
}

fn wallet(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wallet"));
    cmd.env_remove("WALLET_DB")
        .env("NO_COLOR", "1")
        .args(["--db", url])
        .args(args);
    cmd
}

fn run(url: &str, args: &[&str]) -> Output {
    let out = wallet(url, args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn batch_file_run(s: &Sandbox, url: &str, lines: &str) {
    let path = s.dir.path().join("setup.jsonl");
    std::fs::write(&path, lines).unwrap();
    run(url, &["-q", "transfer", "--batch", path.to_str().unwrap()]);
}

/// `count` transfers between the `users` users, keyed on even lines.
fn transfers(users: usize, count: usize) -> String {
    (0..count)
        .map(|i| {
            let (src, dst) = (i % users, (i + 1) % users);
            let key = if i % 2 == 0 {
                format!(",\"id\":\"k{i}\"")
            } else {
                String::new()
            };
            format!("{{\"src\":\"u{src}\",\"dst\":\"u{dst}\",\"amount\":\"0.01\"{key}}}\n")
        })
        .collect()
}

fn count(server: &PgServer, sql: &str) -> i64 {
    server
        .connect("books")
        .query_one(sql, &[])
        .unwrap()
        .get::<_, i64>(0)
}

/// Waits until `sql` counts more than `than`, the command still running.
fn wait_for(server: &PgServer, sql: &str, than: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(server, sql) <= than {
        assert!(Instant::now() < deadline, "no progress: {sql}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn error_of(out: &Output) -> (String, String) {
    let doc: Value = serde_json::from_slice(&out.stderr).unwrap_or_else(|e| {
        panic!(
            "stderr is not one JSON error ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        doc["error"]["code"].as_str().unwrap().to_string(),
        doc["error"]["message"].as_str().unwrap().to_string(),
    )
}

fn a_settle_whose_server_crashes_part_way_prints_what_it_applied() {
    let mut server = PgServer::start();
    let url = ledger_with_users(&server, 20);
    let s = Sandbox::new();
    batch_file_run(&s, &url, &transfers(20, 4000));
    let pending = "SELECT count(*) FROM wallet.transfers WHERE status = 'PENDING'";
    let queued = count(&server, pending);
    assert_eq!(queued, 4000);
    let decided = "SELECT count(*) FROM wallet.transfers WHERE status <> 'PENDING'";
    let decided_before = count(&server, decided);
    let settle = wallet(&url, &["--json", "settle", "--batch-size", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Two batches in: the first one's answer has surely come back.
    wait_for(&server, decided, decided_before + 5);
    server.crash();
    let out = settle.wait_with_output().unwrap();
    server.run();
    let left = count(&server, pending);
    let (code, message) = error_of(&out);
    let done: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not the settle report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let processed = done["processed"].as_i64().unwrap();
    assert!(processed > 0, "{done}");
    assert!(
        done["remaining"].is_null(),
        "a count that cannot be read is null: {done}"
    );
    assert_eq!(
        done["completed"].as_i64().unwrap() + done["failed"].as_i64().unwrap(),
        processed
    );
    assert!(!message.contains("nothing was written"), "{message}");
    assert!(
        message.contains(&format!("{processed} transfer")),
        "{message}"
    );
    match out.status.code() {
        Some(6) => {
            assert_eq!(code, "server_unavailable", "{message}");
            assert_eq!(queued - left, processed, "{message}");
        }
        // The crash met a batch's COMMIT: that batch may or may not be in.
        Some(8) => {
            assert_eq!(code, "outcome_unknown", "{message}");
            assert!((processed..=processed + 5).contains(&(queued - left)));
        }
        other => panic!("exit {other:?}: {message}"),
    }
    let out = run(&url, &["--json", "settle"]);
    let rest: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rest["processed"].as_i64().unwrap(), left);
    assert_eq!(rest["remaining"], 0);
}

fn a_batch_whose_server_crashes_part_way_reports_what_earlier_chunks_committed() {
    let mut server = PgServer::start();
    let url = ledger_with_users(&server, 10);
    let s = Sandbox::new();
    let before = count(&server, "SELECT count(*) FROM wallet.transfers");
    let path = s.dir.path().join("big.jsonl");
    std::fs::write(&path, transfers(10, 20_000)).unwrap();
    let mut batch = wallet(
        &url,
        &[
            "--json",
            "transfer",
            "--batch",
            path.to_str().unwrap(),
            "--chunk-size",
            "100",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(batch.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("\"tx_id\""), "{first}");
    server.crash();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let out = batch.wait_with_output().unwrap();
    server.run();
    let printed: Vec<Value> = std::iter::once(first.as_str())
        .chain(rest.lines())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let lines = printed.len() as i64;
    assert!((100..20_000).contains(&lines), "{lines} lines printed");
    assert_eq!(lines % 100, 0, "whole chunks are printed");
    let stored = count(&server, "SELECT count(*) FROM wallet.transfers") - before;
    let (code, message) = error_of(&out);
    assert!(!message.contains("nothing was written"), "{message}");
    assert!(!message.contains("safe to retry"), "{message}");
    assert!(
        message.contains(&format!("{lines} lines")),
        "the lines earlier chunks committed: {message}"
    );
    assert!(message.contains("\"id\""), "{message}");
    assert!(message.contains("must not be sent again"), "{message}");
    match out.status.code() {
        Some(6) => {
            assert_eq!(code, "server_unavailable", "{message}");
            assert_eq!(stored, lines, "{message}");
        }
        Some(8) => {
            assert_eq!(code, "outcome_unknown", "{message}");
            assert!((lines..=lines + 100).contains(&stored), "{message}");
        }
        other => panic!("exit {other:?}: {message}"),
    }
    // Every line printed is in the ledger, under the id it was printed with.
    let mut client = server.connect("books");
    for doc in printed.iter().step_by(97) {
        let tx_id = doc["tx_id"].as_i64().unwrap();
        let found: i64 = client
            .query_one(
                "SELECT count(*) FROM wallet.transfers WHERE tx_id = $1",
                &[&tx_id],
            )
            .unwrap()
            .get(0);
        assert_eq!(found, 1, "{doc}");
    }
}

engine_tests! {
    both: [],
    postgres: [
        a_settle_whose_server_crashes_part_way_prints_what_it_applied,
        a_batch_whose_server_crashes_part_way_reports_what_earlier_chunks_committed,
    ],
}
