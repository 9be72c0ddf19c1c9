//! The bank test with holds: processes place holds that expire for real,
//! capture them (whole or in part), release them, refund settled transfers
//! and race each other for the same hold, while settles run and others are
//! killed with SIGKILL. Afterwards every hold and refund must have ended as
//! the processes were told, and the reservations must add up.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Rng, Sandbox, seed};

const USERS: usize = 4;
const WRITERS: usize = 3;
const OPS_PER_WRITER: usize = 60;
const KILL_ATTEMPTS: usize = 20;

fn name(user: usize) -> String {
    format!("user{user}")
}

fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

fn minor(text: &str) -> i64 {
    let (whole, cents) = text.split_once('.').expect("two decimals");
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    sign * (whole.trim_start_matches('-').parse::<i64>().unwrap() * 100
        + cents.parse::<i64>().unwrap())
}

/// What the processes were told about holds and refunds.
#[derive(Default)]
struct Told {
    /// Hold id → (source user, amount reserved, expires).
    holds: BTreeMap<i64, (usize, i64, bool)>,
    /// Hold id → the amount a capture reported, at most one per hold.
    captured: BTreeMap<i64, i64>,
    released: BTreeSet<i64>,
    /// Holds whose capture or release was killed mid-way: either may have won.
    unknown: BTreeSet<i64>,
    /// Completed transfers of a writer, for refunds: id → amount.
    paid: BTreeMap<i64, i64>,
    /// Refund id → (original, amount).
    refunds: BTreeMap<i64, (i64, i64)>,
}

/// `wallet --json ARGS…`, retried while busy; its final output.
fn run(s: &Sandbox, args: &[&str], busy: &AtomicU64) -> Output {
    let mut full = vec!["--json", "--lock-timeout", "20000"];
    full.extend_from_slice(args);
    loop {
        let out = s.process(&full).output().expect("run wallet");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && out.status.code() != Some(101),
            "wallet {args:?} panicked: {stderr}"
        );
        if out.status.code() == Some(6) {
            busy.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        return out;
    }
}

fn code(out: &Output) -> String {
    let doc: Value = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    doc["error"]["code"].as_str().unwrap().to_string()
}

fn writer(s: &Sandbox, mut rng: Rng, told: &Mutex<Told>, busy: &AtomicU64) {
    let mut holds: Vec<i64> = Vec::new();
    for _ in 0..OPS_PER_WRITER {
        let roll = rng.below(100);
        let src = rng.below(USERS as u64) as usize;
        let dst = (src + 1 + rng.below(USERS as u64 - 1) as usize) % USERS;
        let amount = 1 + rng.below(20_000) as i64;
        match roll {
            0..=34 => {
                let expires = rng.below(3) == 0;
                let mut args = vec!["hold".to_string(), name(src), name(dst), money(amount)];
                if expires {
                    args.extend(["--expires-in".into(), "1s".into()]);
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = run(s, &args, busy);
                if out.status.success() {
                    let held: Value = serde_json::from_slice(&out.stdout).unwrap();
                    assert_eq!(held["status"], "HELD");
                    let id = held["tx_id"].as_i64().unwrap();
                    told.lock()
                        .unwrap()
                        .holds
                        .insert(id, (src, amount, expires));
                    holds.push(id);
                } else {
                    assert_eq!(code(&out), "insufficient_funds", "{args:?}");
                }
            }
            35..=59 if !holds.is_empty() => {
                // Often a hold another writer may be capturing too.
                let id = holds[rng.below(holds.len() as u64) as usize];
                let release = rng.below(4) == 0;
                let part = rng.below(2) == 0;
                let amount_arg;
                let mut args = vec![if release { "release" } else { "capture" }];
                let id_text = id.to_string();
                args.push(&id_text);
                if !release && part {
                    amount_arg = money(1);
                    args.push(&amount_arg);
                }
                let out = run(s, &args, busy);
                let mut told = told.lock().unwrap();
                if out.status.success() {
                    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
                    if release {
                        assert_eq!(doc["status"], "RELEASED");
                        assert!(told.released.insert(id), "hold {id} released twice");
                    } else {
                        assert_eq!(doc["status"], "PENDING");
                        let previous = told
                            .captured
                            .insert(id, minor(doc["amount"].as_str().unwrap()));
                        assert!(previous.is_none(), "hold {id} captured twice");
                    }
                    assert!(
                        !(told.captured.contains_key(&id) && told.released.contains(&id)),
                        "hold {id} both captured and released"
                    );
                } else {
                    assert_eq!(code(&out), "not_held", "{args:?}");
                }
            }
            60..=79 => {
                let out = run(
                    s,
                    &["transfer", &name(src), &name(dst), &money(amount)],
                    busy,
                );
                assert!(out.status.success());
                let queued: Value = serde_json::from_slice(&out.stdout).unwrap();
                told.lock()
                    .unwrap()
                    .paid
                    .insert(queued["tx_id"].as_i64().unwrap(), amount);
            }
            _ => {
                let paid: Vec<(i64, i64)> = told
                    .lock()
                    .unwrap()
                    .paid
                    .iter()
                    .map(|(a, b)| (*a, *b))
                    .collect();
                if paid.is_empty() {
                    continue;
                }
                let (original, amount) = paid[rng.below(paid.len() as u64) as usize];
                let part = 1 + rng.below(amount as u64) as i64;
                let out = run(s, &["refund", &original.to_string(), &money(part)], busy);
                if out.status.success() {
                    let queued: Value = serde_json::from_slice(&out.stdout).unwrap();
                    told.lock()
                        .unwrap()
                        .refunds
                        .insert(queued["tx_id"].as_i64().unwrap(), (original, part));
                } else {
                    let code = code(&out);
                    assert!(
                        code == "not_refundable" || code == "refund_exceeds_original",
                        "refund of {original}: {code}"
                    );
                }
            }
        }
    }
}

/// Starts settles and captures and SIGKILLs each at a random instant.
fn killer(s: &Sandbox, mut rng: Rng, told: &Mutex<Told>, kills: &AtomicU64) {
    for _ in 0..KILL_ATTEMPTS {
        let hold = {
            let told = told.lock().unwrap();
            let ids: Vec<i64> = told.holds.keys().copied().collect();
            (!ids.is_empty() && rng.below(2) == 0)
                .then(|| ids[rng.below(ids.len() as u64) as usize])
        };
        let id_text = hold.map(|id| id.to_string()).unwrap_or_default();
        let args: Vec<&str> = match hold {
            Some(_) => vec!["--lock-timeout", "20000", "capture", &id_text],
            None => vec!["--lock-timeout", "20000", "settle", "--batch-size", "1"],
        };
        let mut child = s
            .process(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(rng.below(30)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills.fetch_add(1, Ordering::Relaxed);
        }
        child.wait().unwrap();
        if let Some(id) = hold {
            // Killed or not, this process told no one: its capture may be in.
            told.lock().unwrap().unknown.insert(id);
        }
    }
}

fn bank_with_holds_refunds_expiries_and_kills_ends_as_told() {
    let seed = seed();
    eprintln!("bank with holds: seed {seed} (replay with WALLET_BANK_SEED={seed})");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let s = Sandbox::new();
    for user in 0..USERS {
        s.ok(&[
            "create-user",
            &name(user),
            &format!("{}@example.com", name(user)),
        ]);
        s.ok(&[
            "-q",
            "deposit",
            &name(user),
            &money(20_000 + rng.below(40_000) as i64),
        ]);
    }
    s.ok(&["settle"]);
    let told = Mutex::new(Told::default());
    let (busy, kills) = (AtomicU64::new(0), AtomicU64::new(0));
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        let settler = scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let out = run(&s, &["settle", "--batch-size", "2"], &busy);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                thread::sleep(Duration::from_millis(10));
            }
        });
        let verifier = scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let out = run(&s, &["verify", "--quick"], &busy);
                assert!(
                    out.status.success(),
                    "verify mid-run: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        });
        let killer_rng = Rng(rng.next());
        let killer = scope.spawn(|| killer(&s, killer_rng, &told, &kills));
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let writer_rng = Rng(rng.next());
                let (s, told, busy) = (&s, &told, &busy);
                scope.spawn(move || writer(s, writer_rng, told, busy))
            })
            .collect();
        for handle in writers {
            handle.join().expect("writer");
        }
        killer.join().expect("killer");
        done.store(true, Ordering::Relaxed);
        settler.join().expect("settler");
        verifier.join().expect("verifier");
    });
    // Past every 1-second expiry; then the last settle marks the rest.
    thread::sleep(Duration::from_millis(1_100));
    let last: Value = s.json(&["settle"]);
    assert_eq!(last["remaining"], 0);
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");

    let told = told.into_inner().unwrap();
    let status_of = |id: i64| -> Value { s.json(&["get-transfer", &id.to_string()]) };
    let mut held_by = [0i64; USERS];
    for (&id, &(src, amount, expires)) in &told.holds {
        let hold = status_of(id);
        let status = hold["status"].as_str().unwrap();
        if let Some(&captured) = told.captured.get(&id) {
            assert_eq!(
                status, "COMPLETED",
                "captured hold {id} is never failed for funds: {hold}"
            );
            assert_eq!(minor(hold["amount"].as_str().unwrap()), captured);
        } else if told.released.contains(&id) {
            assert_eq!(status, "RELEASED", "hold {id}");
        } else if told.unknown.contains(&id) {
            assert!(
                matches!(status, "COMPLETED" | "HELD" | "EXPIRED" | "RELEASED"),
                "hold {id} whose capture was killed is {status}"
            );
        } else if expires {
            assert_eq!(status, "EXPIRED", "hold {id} past its expiry");
        } else {
            assert_eq!(status, "HELD", "hold {id} nobody touched");
        }
        assert_eq!(minor(hold["hold_amount"].as_str().unwrap()), amount);
        if status == "HELD" {
            held_by[src] += amount;
        }
    }
    for (user, held) in held_by.iter().enumerate() {
        let shown: Value = s.json(&["get-user", &name(user)]);
        assert_eq!(
            minor(shown["held"].as_str().unwrap()),
            *held,
            "{}",
            name(user)
        );
        assert!(
            minor(shown["balance"].as_str().unwrap()) >= *held,
            "reserved money is there"
        );
    }
    let mut refunded: BTreeMap<i64, i64> = BTreeMap::new();
    for (&id, &(original, amount)) in &told.refunds {
        let refund = status_of(id);
        assert_eq!(refund["refund_of"], original);
        if refund["status"] == "COMPLETED" {
            *refunded.entry(original).or_default() += amount;
        }
    }
    for (original, sum) in &refunded {
        let shown = status_of(*original);
        assert_eq!(minor(shown["refunded"].as_str().unwrap()), *sum);
        assert!(
            *sum <= told.paid[original],
            "transfer {original} refunded beyond it"
        );
    }
    println!(
        "bank with holds: seed {seed}: {} holds ({} captured, {} released, {} raced by killed captures), {} refunds, {} processes killed, {} busy retries, {:.1?}",
        told.holds.len(),
        told.captured.len(),
        told.released.len(),
        told.unknown.len(),
        told.refunds.len(),
        kills.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(!told.captured.is_empty() && !told.holds.is_empty());
}

engine_tests! {
    both: [
        bank_with_holds_refunds_expiries_and_kills_ends_as_told,
    ],
}
