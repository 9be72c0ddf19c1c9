//! Throughput features: `transfer --batch` (JSON Lines in, one result per line out) and `settle --watch`.

use std::io::Write;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::common::{ErrorBody, ErrorDoc, Sandbox, shapes};

/// One line of `transfer --batch` output.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum Outcome {
    Queued(QueuedLine),
    Refused(RefusedLine),
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct QueuedLine {
    line: u64,
    tx_id: i64,
    status: String,
    /// Present, and true, only on a line whose key named an earlier transfer.
    #[serde(default)]
    replayed: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RefusedLine {
    line: u64,
    error: ErrorBody,
}

impl Outcome {
    fn line(&self) -> u64 {
        match self {
            Outcome::Queued(q) => q.line,
            Outcome::Refused(r) => r.line,
        }
    }

    fn tx_id(&self) -> i64 {
        match self {
            Outcome::Queued(q) => q.tx_id,
            Outcome::Refused(r) => panic!("line {} was refused: {:?}", r.line, r.error),
        }
    }

    fn code(&self) -> &str {
        match self {
            Outcome::Queued(q) => panic!("line {} was queued as {}", q.line, q.tx_id),
            Outcome::Refused(r) => &r.error.code,
        }
    }
}

/// Runs `wallet ARGS…` with `input` on stdin.
fn run_with_input(s: &Sandbox, args: &[&str], input: &str) -> Output {
    let mut child = s
        .process(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wallet");
    // A process that fails before reading (no ledger) closes the pipe early.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

fn outcomes(out: &Output) -> Vec<Outcome> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("output line {line:?}: {e}"))
        })
        .collect()
}

/// `transfer --batch - ARGS…` fed `input`; returns the outcomes and the process output.
fn batch(s: &Sandbox, extra: &[&str], input: &str) -> (Vec<Outcome>, Output) {
    let mut args = vec!["--json", "transfer", "--batch", "-"];
    args.extend_from_slice(extra);
    let out = run_with_input(s, &args, input);
    (outcomes(&out), out)
}

fn pending_count(s: &Sandbox, user: &str) -> usize {
    let list: Vec<shapes::Transfer> =
        s.json(&["history", user, "--status", "PENDING", "--limit", "100000"]);
    list.len()
}

fn a_good_file_queues_every_line_in_order() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100"), ("bob", "0.01")]);
    let path = s.dir.path().join("batch.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"src":null,"dst":"alice","amount":"50","memo":"salary"}"#,
            "\n",
            r#"{"src":"alice","dst":"BOB","amount":"10.00"}"#,
            "\n",
            r#"{"src":"bob","dst":null,"amount":"5.01","id":"atm-1"}"#,
            "\n",
        ),
    )
    .unwrap();
    let out = s
        .cmd(&["--json", "transfer", "--batch", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "--json keeps stderr for errors");
    let lines = outcomes(&out);
    let expected: Vec<QueuedLine> = (1..=3)
        .map(|n| QueuedLine {
            line: n,
            tx_id: n as i64 + 2,
            status: "PENDING".into(),
            replayed: false,
        })
        .collect();
    let queued: Vec<&QueuedLine> = lines
        .iter()
        .map(|o| match o {
            Outcome::Queued(q) => q,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(queued, expected.iter().collect::<Vec<_>>());
    let withdrawal: shapes::Transfer = s.json(&["get-transfer", "5"]);
    assert_eq!(
        (
            withdrawal.src.as_deref(),
            withdrawal.dst,
            withdrawal.amount.as_str()
        ),
        (Some("bob"), None, "5.01")
    );
    let deposit: shapes::Transfer = s.json(&["get-transfer", "3"]);
    assert_eq!(deposit.memo.as_deref(), Some("salary"));
    s.ok(&["settle"]);
    let alice: shapes::User = s.json(&["get-user", "alice"]);
    let bob: shapes::User = s.json(&["get-user", "bob"]);
    assert_eq!(
        (alice.balance.as_str(), bob.balance.as_str()),
        ("140.00", "5.00")
    );
}

fn a_mixed_file_queues_the_good_lines_and_reports_the_bad_by_line_number() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100"), ("bob", "0.01")]);
    let input = [
        r#"{"src":"alice","dst":"bob","amount":"1"}"#,
        "",
        r#"{"src":"alice","dst":"carol","amount":"1"}"#,
        "this is not json",
        r#"{"src":"alice","dst":"bob","amount":"1.001"}"#,
        "   ",
        r#"{"src":"alice","dst":"Alice","amount":"1"}"#,
        r#"{"src":null,"dst":null,"amount":"1"}"#,
        r#"{"src":"alice","dst":"bob","amount":"2","colour":"red"}"#,
        r#"{"src":"alice","dst":"bob","amount":2}"#,
        r#"{"src":"alice","dst":"bob","amount":"3","id":""}"#,
        r#"{"src":"al ice","dst":"bob","amount":"3"}"#,
        r#"{"src":"alice","dst":"bob","amount":"4"}"#,
    ]
    .join("\n");
    let (lines, out) = batch(&s, &[], &input);
    assert_eq!(out.status.code(), Some(5));
    let doc: ErrorDoc = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(doc.error.code, "batch_failed");
    assert!(
        doc.error.message.contains("9 of 11"),
        "{}",
        doc.error.message
    );
    let numbers: Vec<u64> = lines.iter().map(Outcome::line).collect();
    assert_eq!(
        numbers,
        vec![1, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13],
        "blank lines skipped"
    );
    let codes: Vec<&str> = lines[1..10].iter().map(Outcome::code).collect();
    assert_eq!(
        codes,
        vec![
            "user_not_found",
            "invalid_line",
            "invalid_amount",
            "same_account",
            "invalid_line",
            "invalid_line",
            "invalid_line",
            "invalid_key",
            "invalid_name",
        ]
    );
    let (first, last) = (lines[0].tx_id(), lines[10].tx_id());
    assert_eq!(last, first + 1, "bad lines take no transfer id");
    let alice: shapes::User = s.json(&["get-user", "alice"]);
    assert_eq!(alice.pending_out, "5.00");
}

fn atomic_leaves_the_ledger_byte_identical_when_any_line_is_bad() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100"), ("bob", "0.01")]);
    let before = s.ledger_bytes();
    let input = format!(
        "{}\n{}\n{}\n",
        r#"{"src":"alice","dst":"bob","amount":"1","id":"a-1"}"#,
        r#"{"src":"alice","dst":"bob","amount":"0"}"#,
        r#"{"src":"alice","dst":"bob","amount":"2"}"#,
    );
    let (lines, out) = batch(&s, &["--atomic"], &input);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(lines.len(), 1, "only the bad line is reported: {lines:?}");
    assert_eq!((lines[0].line(), lines[0].code()), (2, "invalid_amount"));
    let doc: ErrorDoc = serde_json::from_slice(&out.stderr).unwrap();
    assert!(doc.error.message.contains("nothing was queued"));
    assert_eq!(
        before,
        s.ledger_bytes(),
        "the ledger file and its log are untouched"
    );
    s.fails(&["get-transfer", "--id", "a-1"], "transfer_not_found", 3);

    let good = input.replace(r#""amount":"0""#, r#""amount":"3""#);
    let (lines, out) = batch(&s, &["--atomic"], &good);
    assert!(out.status.success());
    let ids: Vec<i64> = lines.iter().map(Outcome::tx_id).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    assert_eq!(pending_count(&s, "alice"), 3);
}

fn idempotency_keys_replay_across_chunks_and_across_runs() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100"), ("bob", "0.01")]);
    let input: String = (1..=7)
        .map(|n| {
            let key = n % 3;
            format!(
                "{{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"{key}.00\",\"id\":\"order-{key}\"}}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("")
        .replace("\"0.00\"", "\"9.00\"");
    let (first_run, out) = batch(&s, &["--chunk-size", "2"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<i64> = first_run.iter().map(Outcome::tx_id).collect();
    // Keys 1, 2, 0 first appear on lines 1-3; lines 4-7 repeat them, some in later chunks.
    assert_eq!(ids[3], ids[0]);
    assert_eq!(ids[4], ids[1]);
    assert_eq!(ids[5], ids[2]);
    assert_eq!(ids[6], ids[0]);
    assert_eq!(pending_count(&s, "alice"), 3);

    let (second_run, out) = batch(&s, &["--chunk-size", "3"], &input);
    assert!(out.status.success());
    let again: Vec<i64> = second_run.iter().map(Outcome::tx_id).collect();
    assert_eq!(again, ids, "a re-run replays every line");
    let replayed = |run: &[Outcome]| -> Vec<bool> {
        run.iter()
            .map(|o| matches!(o, Outcome::Queued(q) if q.replayed))
            .collect()
    };
    assert_eq!(
        replayed(&first_run),
        [false, false, false, true, true, true, true],
        "each line says whether it queued or replayed"
    );
    assert!(replayed(&second_run).iter().all(|r| *r));
    assert_eq!(pending_count(&s, "alice"), 3);

    let changed = input.replacen("\"1.00\"", "\"1.50\"", 1);
    let (third_run, out) = batch(&s, &[], &changed);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(third_run[0].code(), "idempotency_conflict");
}

fn stdin_and_human_mode_print_the_same_json_lines_and_a_summary() {
    let s = Sandbox::new();
    s.funded(&[("alice", "10")]);
    let input =
        "{\"src\":null,\"dst\":\"alice\",\"amount\":\"1\"}\n{\"dst\":\"alice\",\"amount\":\"2\"}";
    let out = run_with_input(&s, &["transfer", "--batch", "-"], input);
    assert!(out.status.success());
    let lines = outcomes(&out);
    assert_eq!(lines.len(), 2, "a last line without a newline still counts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim(), "queued 2 transfers from 2 lines");

    let quiet = run_with_input(&s, &["-q", "transfer", "--batch", "-"], input);
    assert!(quiet.status.success() && quiet.stderr.is_empty());
    assert_eq!(outcomes(&quiet).len(), 2);
}

fn batch_output_pipes_into_jq() {
    let s = Sandbox::new();
    s.funded(&[("alice", "10"), ("bob", "0.01")]);
    let path = s.dir.path().join("in.jsonl");
    std::fs::write(
        &path,
        "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"1\"}\n{\"src\":\"alice\",\"dst\":\"zed\",\"amount\":\"1\"}\n",
    )
    .unwrap();
    let script = format!(
        "'{}' --db '{}' transfer --batch '{}' | jq -r 'select(.error) | \"\\(.line) \\(.error.code)\"'",
        env!("CARGO_BIN_EXE_wallet"),
        s.db().display(),
        path.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 user_not_found\n");
}

fn batch_flags_are_checked_by_the_command_line() {
    let s = Sandbox::new();
    s.funded(&[("alice", "10")]);
    s.fails(&["transfer", "--batch", "-", "alice"], "usage", 2);
    s.fails(&["transfer", "alice", "bob", "1", "--atomic"], "usage", 2);
    s.fails(&["transfer", "--batch", "-", "--id", "k"], "usage", 2);
    s.fails(
        &["transfer", "--batch", "no-such-file.jsonl"],
        "io_error",
        1,
    );
    let missing = Sandbox::new();
    let out = run_with_input(
        &missing,
        &["--json", "transfer", "--batch", "-"],
        "{\"dst\":\"a\",\"amount\":\"1\"}\n",
    );
    assert_eq!(out.status.code(), Some(3), "a batch never creates a ledger");
}

/// Sends `signal` (a name such as `TERM`) to a child process with kill(1),
/// as an operator or a service manager would.
fn send_signal(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} failed");
}

/// Waits for `check` to hold, polling for at most ten seconds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn wait_for_exit(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("settle --watch did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn watch_drains_then_stops_on(signal: &str) {
    let s = Sandbox::new();
    s.funded(&[("alice", "0.01"), ("bob", "0.01")]);
    let worker = s
        .process(&["--json", "settle", "--watch", "--interval", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let balance = |user: &str| s.json::<shapes::User>(&["get-user", user]).balance;
    s.ok(&["deposit", "alice", "10"]);
    eventually("the first deposit settles", || balance("alice") == "10.01");
    let input: String = (0..50)
        .map(|_| "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"0.10\"}\n")
        .collect();
    let (lines, out) = batch(&s, &[], &input);
    assert!(out.status.success() && lines.len() == 50);
    s.ok(&["transfer", "alice", "bob", "6"]);
    eventually("the later transfers settle", || {
        s.json::<shapes::Transfer>(&["get-transfer", "54"]).status != "PENDING"
    });
    send_signal(&worker, signal);
    let out = wait_for_exit(worker);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: shapes::Settled = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            summary.processed,
            summary.completed,
            summary.failed,
            summary.remaining
        ),
        (52, 51, 1, 0),
        "the 6.00 transfer found only 5.01 left"
    );
    assert_eq!(
        (balance("alice").as_str(), balance("bob").as_str()),
        ("5.01", "5.01")
    );
}

fn watch_drains_transfers_queued_while_it_runs_and_stops_on_sigterm() {
    watch_drains_then_stops_on("TERM");
}

fn watch_stops_cleanly_on_sigint() {
    watch_drains_then_stops_on("INT");
}

fn a_watch_killed_outright_loses_and_doubles_nothing() {
    let s = Sandbox::new();
    s.funded(&[("alice", "0.01"), ("bob", "0.01")]);
    let input: String = (0..3000)
        .map(|i| {
            if i % 2 == 0 {
                "{\"dst\":\"alice\",\"amount\":\"1\"}\n"
            } else {
                "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"1\"}\n"
            }
        })
        .collect();
    let (lines, out) = batch(&s, &[], &input);
    assert!(out.status.success() && lines.len() == 3000);
    let worker = s
        .process(&["settle", "--watch", "--batch-size", "3"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the worker has settled some", || {
        s.json::<shapes::Transfer>(&["get-transfer", "3"]).status != "PENDING"
    });
    send_signal(&worker, "KILL");
    let out = wait_for_exit(worker);
    assert_eq!(out.status.code(), None, "killed by the signal");
    let rest: shapes::Settled = s.json(&["settle"]);
    assert!(
        rest.processed > 0,
        "the kill landed before the queue was drained"
    );
    assert_eq!(rest.remaining, 0);
    let alice: shapes::User = s.json(&["get-user", "alice"]);
    let bob: shapes::User = s.json(&["get-user", "bob"]);
    assert_eq!(
        (alice.balance.as_str(), bob.balance.as_str()),
        ("0.01", "1500.01")
    );
    assert_eq!(
        (alice.pending_in.as_str(), alice.pending_out.as_str()),
        ("0.00", "0.00")
    );
    let failed: Vec<shapes::Transfer> =
        s.json(&["history", "bob", "--status", "FAILED", "--limit", "10"]);
    assert!(failed.is_empty(), "every payment found its deposit first");
}

engine_tests! {
    both: [],
    sqlite: [
        a_good_file_queues_every_line_in_order,
        a_mixed_file_queues_the_good_lines_and_reports_the_bad_by_line_number,
        atomic_leaves_the_ledger_byte_identical_when_any_line_is_bad,
        idempotency_keys_replay_across_chunks_and_across_runs,
        stdin_and_human_mode_print_the_same_json_lines_and_a_summary,
        batch_output_pipes_into_jq,
        batch_flags_are_checked_by_the_command_line,
        watch_drains_transfers_queued_while_it_runs_and_stops_on_sigterm,
        watch_stops_cleanly_on_sigint,
        a_watch_killed_outright_loses_and_doubles_nothing,
    ],
}
