//! The change feed, `wallet events`: every kind of event in commit order
//! with its fields, cursors that resume exactly, `--follow` and its
//! signals, readers that go away, a consumer killed and restarted at
//! random, and on PostgreSQL a follower beside four settle workers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Rng, Sandbox, engine, no_case, seed};
use crate::pipes::piped_to_head;

const T0: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-01-01T02:00:00Z";

/// Runs `wallet ARGS…` with the test clock at `now`; asserts success.
fn ok_at(s: &Sandbox, now: &str, args: &[&str]) -> String {
    let out = s.cmd(args).env("WALLET_TEST_NOW", now).output().unwrap();
    assert!(
        out.status.success(),
        "wallet {args:?} at {now} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// JSON Lines as values; every line a whole object.
fn lines(text: &str) -> Vec<Value> {
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

/// `wallet events ARGS…`, with and without `--json` (the same lines).
///
/// On PostgreSQL an event shows once no transaction older than it is
/// still running, and the test server is shared with other tests'
/// transactions: a read can stop short of events a read a moment later
/// shows. So the two are read again until they agree, for up to 10 s.
fn events(s: &Sandbox, args: &[&str]) -> Vec<Value> {
    let mut plain = vec!["events"];
    plain.extend_from_slice(args);
    let mut json = vec!["--json"];
    json.extend_from_slice(&plain);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let printed = s.ok(&plain);
        let as_json = s.ok(&json);
        if as_json == printed || Instant::now() > until {
            assert_eq!(as_json, printed, "--json prints the same lines");
            return lines(&printed);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cursor(event: &Value) -> &str {
    event["cursor"].as_str().unwrap()
}

/// Every kind of event, in the order the commands commit them: (kind,
/// tx_id, status, from, to, amount, reason, memo) of each transfer event.
fn every_kind(s: &Sandbox) -> Vec<Value> {
    s.alice_and_bob();
    ok_at(s, T0, &["deposit", "alice", "100"]);
    ok_at(s, T0, &["settle"]);
    ok_at(
        s,
        T0,
        &["transfer", "alice", "bob", "500", "--memo", "too much"],
    );
    ok_at(s, T0, &["settle"]);
    ok_at(s, T0, &["hold", "alice", "bob", "30", "--expires-in", "1h"]);
    ok_at(s, T0, &["capture", "3", "25"]);
    ok_at(s, T0, &["hold", "alice", "bob", "10", "--expires-in", "1h"]);
    ok_at(s, T0, &["release", "4"]);
    ok_at(
        s,
        T0,
        &[
            "hold",
            "alice",
            "bob",
            "5",
            "--expires-in",
            "1h",
            "--memo",
            "gone",
        ],
    );
    ok_at(s, T0, &["transfer", "bob", "alice", "1"]);
    ok_at(s, T0, &["cancel", "6"]);
    // Past hold 5's expiry: the expiry pass, then the captured hold.
    ok_at(s, T2, &["settle"]);
    ok_at(
        s,
        "2026-01-01T01:00:00Z",
        &["overdraft", "alice", "50", "--memo", "credit line"],
    );
    events(s, &[])
}

fn each_kind_appears_in_commit_order_with_its_fields() {
    let s = Sandbox::new();
    let feed = every_kind(&s);
    let t0 = "2026-01-01T00:00:00.000Z";
    let t2 = "2026-01-01T02:00:00.000Z";
    let transfer = |kind, tx_id, status, from: Option<&str>, to: Option<&str>, amount, at| {
        json!({"kind": kind, "at": at, "tx_id": tx_id, "change_id": null, "status": status,
               "reason": null, "from": from, "to": to, "amount": amount, "currency": "PHP",
               "memo": null, "pair_tx_id": null})
    };
    let alice_to_bob = |kind, tx_id, status, amount, at| {
        transfer(kind, tx_id, status, Some("alice"), Some("bob"), amount, at)
    };
    let mut expected = vec![
        transfer(
            "transfer_decided",
            1,
            "COMPLETED",
            None,
            Some("alice"),
            "100.00",
            t0,
        ),
        alice_to_bob("transfer_decided", 2, "FAILED", "500.00", t0),
        alice_to_bob("hold_placed", 3, "HELD", "30.00", t0),
        alice_to_bob("hold_captured", 3, "PENDING", "25.00", t0),
        alice_to_bob("hold_placed", 4, "HELD", "10.00", t0),
        alice_to_bob("hold_released", 4, "RELEASED", "10.00", t0),
        alice_to_bob("hold_placed", 5, "HELD", "5.00", t0),
        transfer(
            "transfer_decided",
            6,
            "CANCELLED",
            Some("bob"),
            Some("alice"),
            "1.00",
            t0,
        ),
        alice_to_bob("hold_expired", 5, "EXPIRED", "5.00", t2),
        alice_to_bob("transfer_decided", 3, "COMPLETED", "25.00", t2),
        json!({"kind": "policy_changed", "at": "2026-01-01T01:00:00.000Z", "tx_id": null,
               "change_id": 1, "user": "alice", "change": "overdraft",
               "overdraft": "50.00", "currency": "PHP", "memo": "credit line"}),
    ];
    expected[1]["reason"] = json!("insufficient_funds");
    expected[1]["memo"] = json!("too much");
    expected[6]["memo"] = json!("gone");
    expected[8]["memo"] = json!("gone");
    assert_eq!(feed.len(), expected.len(), "{feed:#?}");
    let mut last_id = 0;
    for (event, mut want) in feed.iter().zip(expected) {
        let id = event["event_id"].as_i64().unwrap();
        assert!(id > last_id, "event ids grow in commit order: {feed:#?}");
        last_id = id;
        let shown = cursor(event);
        match engine().name() {
            "sqlite" => assert_eq!(shown, id.to_string()),
            "postgres" => assert!(shown.ends_with(&format!(".{id}")), "{shown}"),
            other => no_case(other),
        }
        want["event_id"] = json!(id);
        want["cursor"] = json!(shown);
        assert_eq!(event, &want);
        let keys: Vec<&String> = event.as_object().unwrap().keys().collect();
        let want_keys: Vec<&String> = want.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), want_keys.len(), "no other field: {event}");
    }
    // The fields come in the documented order.
    let first: Vec<&str> = feed[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        first,
        [
            "event_id",
            "cursor",
            "kind",
            "at",
            "tx_id",
            "change_id",
            "status",
            "reason",
            "from",
            "to",
            "amount",
            "currency",
            "memo",
            "pair_tx_id"
        ]
    );
}

/// A transfer in a currency other than the default shows its code, and its
/// amount at that currency's scale; a leg of an exchange names the other
/// leg; a limit shows its currency, and a change with no limit none.
fn an_event_names_its_currency_and_shows_the_amount_at_its_scale() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    ok_at(&s, T0, &["deposit", "alice", "100"]);
    ok_at(&s, T0, &["deposit", "bob", "0.000003", "--currency", "BTC"]);
    ok_at(&s, T0, &["settle"]);
    // Linked both ways, as the legs of an exchange are.
    s.tamper(
        "UPDATE transfers SET pair_tx_id = 2 WHERE tx_id = 1;
         UPDATE transfers SET pair_tx_id = 1 WHERE tx_id = 2;",
    );
    ok_at(
        &s,
        T0,
        &["overdraft", "alice", "0.00005", "--currency", "BTC"],
    );
    ok_at(&s, T0, &["freeze", "bob"]);
    let feed = events(&s, &[]);
    let shown: Vec<(Value, Value, Value, Value)> = feed
        .iter()
        .map(|e| {
            (
                e["kind"].clone(),
                if e["kind"] == "policy_changed" {
                    e["overdraft"].clone()
                } else {
                    e["amount"].clone()
                },
                e["currency"].clone(),
                e["pair_tx_id"].clone(),
            )
        })
        .collect();
    let row = |kind: &str, amount: Value, currency: Value, pair: Value| {
        (json!(kind), amount, currency, pair)
    };
    assert_eq!(
        shown,
        [
            row("transfer_decided", json!("100.00"), json!("PHP"), json!(2)),
            row(
                "transfer_decided",
                json!("0.00000300"),
                json!("BTC"),
                json!(1)
            ),
            row(
                "policy_changed",
                json!("0.00005000"),
                json!("BTC"),
                Value::Null
            ),
            row("policy_changed", Value::Null, Value::Null, Value::Null),
        ],
        "{feed:#?}"
    );
}

fn after_each_cursor_comes_exactly_the_rest_and_limit_stops() {
    let s = Sandbox::new();
    let feed = every_kind(&s);
    for (i, event) in feed.iter().enumerate() {
        assert_eq!(
            events(&s, &["--after", cursor(event)]),
            feed[i + 1..],
            "after {}",
            cursor(event)
        );
    }
    assert_eq!(events(&s, &["--limit", "3"]), feed[..3]);
    assert_eq!(
        events(&s, &["--after", cursor(&feed[1]), "--limit", "2"]),
        feed[2..4]
    );
    assert_eq!(
        events(&s, &["--after", cursor(&feed[10]), "--limit", "2"]),
        Vec::<Value>::new()
    );
    // What is not a cursor, and a cursor of the other engine's form.
    let foreign = match engine().name() {
        "sqlite" => "1234.5",
        "postgres" => "5",
        other => no_case(other),
    };
    for bad in ["x", "-1", "1.", "1.2.3", foreign] {
        let message = s.fails(&["events", "--after", bad], "usage", 2);
        assert!(message.contains("--after"), "{bad}: {message}");
    }
    s.fails(&["events", "--limit", "0"], "usage", 2);
}

/// A hold past its expiry marked EXPIRED when its user places another is
/// an event too, before the new hold's.
fn a_hold_expired_by_a_new_hold_of_its_user_is_an_event() {
    let s = Sandbox::new();
    s.alice_and_bob();
    ok_at(&s, T0, &["deposit", "alice", "100"]);
    ok_at(&s, T0, &["settle"]);
    ok_at(
        &s,
        T0,
        &["hold", "alice", "bob", "60", "--expires-in", "1h"],
    );
    ok_at(
        &s,
        T2,
        &["hold", "alice", "bob", "70", "--expires-in", "1h"],
    );
    let feed = events(&s, &[]);
    let shown: Vec<(&str, i64, &str)> = feed
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["tx_id"].as_i64().unwrap(),
                e["at"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("transfer_decided", 1, "2026-01-01T00:00:00.000Z"),
            ("hold_placed", 2, "2026-01-01T00:00:00.000Z"),
            ("hold_expired", 2, "2026-01-01T02:00:00.000Z"),
            ("hold_placed", 3, "2026-01-01T02:00:00.000Z"),
        ]
    );
    assert_eq!(feed[2]["amount"], "60.00");
    // settle finds nothing left to expire: no second event for it.
    ok_at(&s, T2, &["settle"]);
    assert_eq!(events(&s, &[]).len(), 4);
}

/// `wallet events ARGS…` running, its lines sent on a channel as printed.
fn spawn_events(s: &Sandbox, args: &[&str]) -> (Child, mpsc::Receiver<Value>) {
    let mut full = vec!["events"];
    full.extend_from_slice(args);
    let mut child = s
        .process(&full)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    (child, receive)
}

fn next_line(lines: &mpsc::Receiver<Value>) -> Value {
    lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a line within 10 s")
}

fn terminate(child: &Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

fn wait_for(child: &mut Child) -> std::process::ExitStatus {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < until, "still running after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn follow_prints_new_events_as_they_commit_until_sigterm() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "5"]);
    s.ok(&["settle"]);
    let (mut child, lines) = spawn_events(&s, &["--follow"]);
    assert_eq!(next_line(&lines)["tx_id"], 1);
    // Committed after the follower read the feed and began to wait.
    std::thread::sleep(Duration::from_millis(300));
    s.ok(&["transfer", "alice", "bob", "2"]);
    s.ok(&["settle"]);
    let event = next_line(&lines);
    assert_eq!(
        (&event["kind"], &event["tx_id"], &event["status"]),
        (&json!("transfer_decided"), &json!(2), &json!("COMPLETED"))
    );
    s.ok(&["hold", "bob", "alice", "1"]);
    assert_eq!(next_line(&lines)["kind"], "hold_placed");
    terminate(&child);
    let status = wait_for(&mut child);
    assert!(
        status.success(),
        "SIGTERM ends --follow with exit 0: {status:?}"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(stderr, "");
    // --limit ends a follower once it has printed that many.
    let (mut child, lines) = spawn_events(&s, &["--follow", "--limit", "4"]);
    for _ in 0..3 {
        next_line(&lines);
    }
    s.ok(&["release", "3"]);
    assert_eq!(next_line(&lines)["kind"], "hold_released");
    assert!(wait_for(&mut child).success());
}

fn a_reader_that_goes_away_ends_the_feed_quietly() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "5"]);
    s.ok(&["settle"]);
    // One event: a follower has nothing more to print, and must still
    // notice that its reader is gone.
    for args in ["events --follow", "--json events --follow"] {
        let (status, stderr, first) = piped_to_head(&s, args);
        assert_eq!(status, "0", "{args}: exit {status}, stderr {stderr:?}");
        assert_eq!(stderr, "", "{args}");
        assert_eq!(lines(&first)[0]["tx_id"], 1, "{args}");
    }
    // Far more than a pipe's buffer holds.
    let batch: String = (0..3_000)
        .map(|_| "{\"src\":null,\"dst\":\"bob\",\"amount\":\"0.01\"}\n")
        .collect();
    std::fs::write(s.dir.path().join("lines.jsonl"), batch).unwrap();
    s.ok(&["--quiet", "transfer", "--batch", "lines.jsonl"]);
    s.ok(&["settle"]);
    let first = events(&s, &["--limit", "1"]);
    let after_first = format!("events --after {} --limit 2000", cursor(&first[0]));
    for args in ["events", "events --follow", &after_first] {
        let (status, stderr, first) = piped_to_head(&s, args);
        assert_eq!(status, "0", "{args}: exit {status}, stderr {stderr:?}");
        assert_eq!(stderr, "", "{args}");
        assert!(!first.is_empty(), "{args}: head printed a line");
    }
}

/// The consumer of docs/operating/events.md, as the page shows it.
fn documented_consumer() -> String {
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operating/events.md"),
    )
    .unwrap();
    let start = page.find("```python\n").expect("a python block") + "```python\n".len();
    let end = start + page[start..].find("```").unwrap();
    page[start..end].to_string()
}

/// The documented consumer, started in a process group of its own (so
/// that killing the group kills the `wallet events` it runs too).
fn start_consumer(s: &Sandbox, work: &std::path::Path, once: bool) -> Child {
    use std::os::unix::process::CommandExt;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_wallet"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("python3");
    cmd.arg(work.join("consumer.py"))
        .current_dir(work)
        .env("WALLET_DB", s.db())
        .env("PATH", path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if once {
        cmd.arg("--once");
    }
    cmd.spawn().unwrap()
}

fn kill_group(child: &mut Child) {
    let group = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = child.wait();
}

fn a_consumer_killed_at_random_and_restarted_processes_each_event_once() {
    let s = Sandbox::new();
    s.funded(&[("alice", "1000"), ("bob", "1000"), ("carol", "1000")]);
    let work = s.dir.path().join("consumer");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("consumer.py"), documented_consumer()).unwrap();
    let seed = seed();
    eprintln!("WALLET_BANK_SEED={seed}");
    let mut rng = Rng(seed);
    let users = ["alice", "bob", "carol"];
    let started = Instant::now();
    let mut kills = 0;
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            // Set however the producer ends, so that the killing stops.
            struct Done<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _done = Done(&done);
            let mut rng = Rng(seed ^ 0x5eed);
            for round in 0..40 {
                let lines: String = (0..1 + rng.below(20))
                    .map(|i| {
                        let src = users[rng.below(3) as usize];
                        let dst = users[(rng.below(2) as usize + 1 + users.iter().position(|u| *u == src).unwrap()) % 3];
                        let hold = if i % 7 == 3 { ",\"hold\":true" } else { "" };
                        format!(
                            "{{\"src\":\"{src}\",\"dst\":\"{dst}\",\"amount\":\"{}.{:02}\"{hold}}}\n",
                            rng.below(30),
                            rng.below(99) + 1
                        )
                    })
                    .collect();
                let file = format!("round-{round}.jsonl");
                std::fs::write(s.dir.path().join(&file), lines).unwrap();
                // A hold beyond what its source has is refused (exit 5).
                let queued = s.cmd(&["--quiet", "transfer", "--batch", &file]).output().unwrap();
                assert!(
                    matches!(queued.status.code(), Some(0 | 5)),
                    "{}",
                    String::from_utf8_lossy(&queued.stderr)
                );
                s.ok(&["settle"]);
            }
        });
        // Killed while the producer runs, and at least ten times in all
        // however fast it ran: the later kills land in the catch-up.
        while !done.load(std::sync::atomic::Ordering::Relaxed) || kills < 10 {
            let mut consumer = start_consumer(&s, &work, false);
            std::thread::sleep(Duration::from_millis(30 + rng.below(300)));
            kill_group(&mut consumer);
            kills += 1;
        }
        producer.join().unwrap();
    });
    // Killed at least once more, after the last commit, then caught up.
    let mut consumer = start_consumer(&s, &work, false);
    std::thread::sleep(Duration::from_millis(rng.below(200)));
    kill_group(&mut consumer);
    let mut last = start_consumer(&s, &work, true);
    assert!(
        wait_for(&mut last).success(),
        "the consumer catches up and exits 0"
    );
    let feed = events(&s, &[]);
    assert!(feed.len() > 100, "{} events", feed.len());
    let mut processed: BTreeMap<i64, Value> = BTreeMap::new();
    for entry in std::fs::read_dir(work.join("processed")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.ends_with(".tmp") {
            continue;
        }
        let event: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.path()).unwrap()).unwrap();
        processed.insert(name.parse().unwrap(), event);
    }
    let ids: BTreeSet<i64> = feed
        .iter()
        .map(|e| e["event_id"].as_i64().unwrap())
        .collect();
    let done: BTreeSet<i64> = processed.keys().copied().collect();
    assert_eq!(
        ids.difference(&done).collect::<Vec<_>>(),
        Vec::<&i64>::new(),
        "missed"
    );
    assert_eq!(
        done.difference(&ids).collect::<Vec<_>>(),
        Vec::<&i64>::new(),
        "not in the feed"
    );
    for event in &feed {
        assert_eq!(&processed[&event["event_id"].as_i64().unwrap()], event);
    }
    assert_eq!(
        std::fs::read_to_string(work.join("feed.cursor")).unwrap(),
        cursor(feed.last().unwrap()),
        "the stored cursor is the last event's"
    );
    eprintln!(
        "{} events, {kills} kills, {:?}",
        feed.len(),
        started.elapsed()
    );
    assert!(kills >= 10, "killed {kills} times");
}

/// Four settle workers decide a few thousand transfers while a follower
/// runs; restarted once with `--after` its last cursor, it sees every
/// decision exactly once.
fn a_follower_beside_four_workers_sees_each_decision_once() {
    let s = Sandbox::new();
    let users: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    let batch: String = users
        .iter()
        .map(|u| format!("{{\"src\":null,\"dst\":\"{u}\",\"amount\":\"100\"}}\n"))
        .collect();
    for u in &users {
        s.ok(&["create-user", u, &format!("{u}@example.com")]);
    }
    std::fs::write(s.dir.path().join("deposits.jsonl"), batch).unwrap();
    s.ok(&["--quiet", "transfer", "--batch", "deposits.jsonl"]);
    let mut rng = Rng(seed());
    let transfers: String = (0..3_000)
        .map(|_| {
            let a = rng.below(40) as usize;
            let b = (a + 1 + rng.below(39) as usize) % 40;
            format!(
                "{{\"src\":\"{}\",\"dst\":\"{}\",\"amount\":\"{}.{:02}\"}}\n",
                users[a],
                users[b],
                rng.below(8),
                rng.below(99) + 1
            )
        })
        .collect();
    std::fs::write(s.dir.path().join("transfers.jsonl"), transfers).unwrap();
    s.ok(&["--quiet", "transfer", "--batch", "transfers.jsonl"]);
    let (mut follower, lines) = spawn_events(&s, &["--follow"]);
    let workers = s
        .process(&["settle", "--workers", "4", "--batch-size", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first follower sees part of it, and is stopped mid-way.
    let mut seen: Vec<Value> = Vec::new();
    while seen.len() < 700 {
        seen.push(next_line(&lines));
    }
    terminate(&follower);
    assert!(wait_for(&mut follower).success());
    while let Ok(line) = lines.try_recv() {
        seen.push(line);
    }
    let out = workers.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decided: usize = s
        .query_text("SELECT count(*)::text FROM transfers WHERE status IN ('COMPLETED', 'FAILED')")
        [0]
    .as_deref()
    .unwrap()
    .parse()
    .unwrap();
    assert_eq!(decided, 3_040);
    let after = cursor(seen.last().unwrap()).to_string();
    let (mut follower, lines) = spawn_events(&s, &["--follow", "--after", &after]);
    while seen.len() < decided {
        seen.push(next_line(&lines));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(lines.try_recv().is_err(), "no event beyond the decisions");
    terminate(&follower);
    assert!(wait_for(&mut follower).success());
    let mut tx_ids: Vec<i64> = seen
        .iter()
        .map(|e| {
            assert_eq!(e["kind"], "transfer_decided");
            e["tx_id"].as_i64().unwrap()
        })
        .collect();
    // The workers committed out of tx_id order: what makes the order of
    // the feed matter.
    let inversions = tx_ids.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(inversions > 0, "the decisions came in tx_id order");
    let cursors: Vec<&str> = seen.iter().map(cursor).collect();
    assert_eq!(
        cursors.iter().collect::<BTreeSet<_>>().len(),
        seen.len(),
        "no event twice"
    );
    tx_ids.sort_unstable();
    assert_eq!(
        tx_ids,
        (1..=3_040).collect::<Vec<i64>>(),
        "every decision once"
    );
    assert_eq!(events(&s, &[]), seen, "the feed from the start");
}

/// A PostgreSQL ledger of version 8 lists the event ids of a settle
/// batch's decisions in its row, drawn one by one; version 9 draws a block
/// at once. A consumer part-way through an old row reads on across the
/// upgrade: the rest of the old events once, then the new ones, every id
/// above the last.
fn a_version_8_feed_reads_on_across_the_upgrade() {
    let s = Sandbox::new();
    s.alice_and_bob();
    for amount in ["10", "20", "30"] {
        ok_at(&s, T0, &["deposit", "alice", amount]);
    }
    ok_at(&s, T0, &["settle"]);
    let as_block = events(&s, &[]);
    s.tamper(crate::common::POSTGRES_TO_VERSION_8);
    let migrated: Value = serde_json::from_str(&ok_at(&s, T0, &["--json", "migrate"])).unwrap();
    assert_eq!((&migrated["from"], &migrated["to"]), (&json!(8), &json!(9)));
    assert_eq!(
        s.query_text("SELECT count(*)::text FROM events WHERE event_ids IS NOT NULL"),
        [Some("1".to_string())],
        "the upgrade leaves the batch's ids listed in its row, as version 8 wrote them"
    );
    let old = events(&s, &[]);
    assert_eq!(old.len(), 3, "{old:#?}");
    assert_eq!(old, as_block, "listed ids read as the block they were");
    for amount in ["40", "50"] {
        ok_at(&s, T0, &["deposit", "bob", amount]);
    }
    ok_at(&s, T0, &["settle"]);
    let rest = events(&s, &["--after", cursor(&old[1])]);
    let amounts: Vec<&str> = rest.iter().map(|e| e["amount"].as_str().unwrap()).collect();
    assert_eq!(amounts, ["30.00", "40.00", "50.00"], "{rest:#?}");
    assert_eq!(rest[0], old[2]);
    let ids: Vec<i64> = events(&s, &[])
        .iter()
        .map(|e| e["event_id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(ids[4], ids[3] + 1, "one batch's decisions take one block");
    assert_eq!(
        s.query_text(
            "SELECT count(*)::text FROM events WHERE tx_ids IS NOT NULL AND event_ids IS NULL"
        ),
        [Some("1".to_string())],
        "the new batch's row holds its ids as a block"
    );
    assert_eq!(s.json::<Value>(&["verify"])["ok"], true);
}

engine_tests! {
    both: [
        each_kind_appears_in_commit_order_with_its_fields,
        an_event_names_its_currency_and_shows_the_amount_at_its_scale,
        after_each_cursor_comes_exactly_the_rest_and_limit_stops,
        a_hold_expired_by_a_new_hold_of_its_user_is_an_event,
        follow_prints_new_events_as_they_commit_until_sigterm,
        a_reader_that_goes_away_ends_the_feed_quietly,
        a_consumer_killed_at_random_and_restarted_processes_each_event_once,
    ],
    postgres: [
        a_follower_beside_four_workers_sees_each_decision_once,
        a_version_8_feed_reads_on_across_the_upgrade,
    ],
}
