//! The bank test: many `wallet` processes at once, settles killed with SIGKILL, then a full audit.
//!
//! Writers queue random transfers, deposits and withdrawals (many more than
//! the funds allow) and cancel some, while settles run beside them and
//! others are killed at random instants, and an operator freezes and
//! unfreezes users and changes their overdraft limits (half the users start
//! with one). Afterwards the ledger must agree with an independent model
//! rebuilt from what each process was told and the policy changes
//! recorded: replayed in the order the file decided (tx_id order), each
//! transfer from a user frozen at its decision FAILED `account_frozen`,
//! each other one COMPLETED exactly when it left its source at or above
//! minus the limit then in force, and FAILED `insufficient_funds` when not.
//! The seed is printed; `WALLET_BANK_SEED=<seed>` replays the same choices
//! (the interleaving of processes is up to the machine).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::common::{Rng, Sandbox, seed, shapes};
use crate::policy_model::{self, Change, Policies};

const USERS: usize = 6;
const WRITERS: usize = 4;
const OPS_PER_WRITER: usize = 150;
const SETTLERS: usize = 2;
const KILL_ATTEMPTS: usize = 40;

/// A user picked at random.
fn user(rng: &mut Rng) -> usize {
    rng.below(USERS as u64) as usize
}

fn name(user: usize) -> String {
    format!("user{user}")
}

fn money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", minor.abs() / 100, minor.abs() % 100)
}

fn parse_money(text: &str) -> i64 {
    let (whole, cents) = text.split_once('.').expect("two decimals");
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap();
    sign * (whole * 100 + cents.parse::<i64>().unwrap())
}

/// What a writer asked for and was told: `None` on a side is the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    src: Option<usize>,
    dst: Option<usize>,
    amount: i64,
}

/// Everything the processes reported, shared by the threads.
#[derive(Default)]
struct Told {
    /// Every tx_id a queueing process printed, with what it asked for.
    queued: BTreeMap<i64, Request>,
    /// Transfers a `cancel` reported as cancelled.
    cancelled: BTreeSet<i64>,
    /// Transfers a `cancel` found no longer PENDING.
    not_cancelled: BTreeSet<i64>,
}

struct Counters {
    processes: AtomicU64,
    kills: AtomicU64,
    settle_runs: AtomicU64,
    verify_runs: AtomicU64,
    busy_retries: AtomicU64,
}

/// Runs one `wallet --json` process, retrying while the ledger is busy
/// (the contract says that is safe), and returns its final output.
fn run(s: &Sandbox, args: &[&str], counters: &Counters) -> Output {
    let mut full = vec!["--json", "--lock-timeout", "20000"];
    full.extend_from_slice(args);
    loop {
        counters.processes.fetch_add(1, Ordering::Relaxed);
        let out = s.process(&full).output().expect("run wallet");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && out.status.code() != Some(101),
            "wallet {args:?} panicked: {stderr}"
        );
        if out.status.code() == Some(6) {
            counters.busy_retries.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        return out;
    }
}

fn error_code(out: &Output) -> String {
    let doc: crate::common::ErrorDoc = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    doc.error.code
}

/// One writer: random transfers (often more than the source holds),
/// deposits, withdrawals, cancels of its own transfers, and replays of its
/// own idempotency keys, which must return the transfer first queued.
fn writer(s: &Sandbox, id: usize, mut rng: Rng, told: &Mutex<Told>, counters: &Counters) {
    let mut mine: Vec<(String, Vec<String>, i64)> = Vec::new();
    for op in 0..OPS_PER_WRITER {
        let roll = rng.below(100);
        if roll < 10 && !mine.is_empty() {
            let (_, args, tx_id) = &mine[rng.below(mine.len() as u64) as usize];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run(s, &args, counters);
            assert!(out.status.success(), "replay of {args:?} failed");
            let again: shapes::Queued = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(
                again.tx_id, *tx_id,
                "a replayed key returns the first transfer"
            );
            continue;
        }
        if roll < 20 && !mine.is_empty() {
            // Mostly the newest, which may still be PENDING, to race the settles.
            let pick = if rng.below(4) == 0 {
                rng.below(mine.len() as u64) as usize
            } else {
                mine.len() - 1
            };
            let (_, _, tx_id) = &mine[pick];
            let out = run(s, &["cancel", &tx_id.to_string()], counters);
            let mut told = told.lock().unwrap();
            if out.status.success() {
                let cancelled: shapes::Transfer = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(cancelled.status, "CANCELLED");
                told.cancelled.insert(*tx_id);
            } else {
                assert_eq!(out.status.code(), Some(4));
                assert_eq!(error_code(&out), "not_pending");
                told.not_cancelled.insert(*tx_id);
            }
            continue;
        }
        // Amounts up to 400.00 against balances of a few hundred: many fail.
        let ceiling = if rng.below(2) == 0 { 5_000 } else { 40_000 };
        let amount = 1 + rng.below(ceiling) as i64;
        let request = match roll {
            20..=29 => Request {
                src: None,
                dst: Some(user(&mut rng)),
                amount,
            },
            30..=39 => Request {
                src: Some(user(&mut rng)),
                dst: None,
                amount,
            },
            _ => {
                let src = user(&mut rng);
                let dst = (src + 1 + rng.below(USERS as u64 - 1) as usize) % USERS;
                Request {
                    src: Some(src),
                    dst: Some(dst),
                    amount,
                }
            }
        };
        let key = format!("w{id}-op{op}");
        let mut args = match (request.src, request.dst) {
            (None, Some(dst)) => vec!["deposit".to_string(), name(dst)],
            (Some(src), None) => vec!["withdraw".to_string(), name(src)],
            (Some(src), Some(dst)) => vec!["transfer".to_string(), name(src), name(dst)],
            (None, None) => unreachable!(),
        };
        args.extend([money(amount), "--id".into(), key.clone()]);
        let borrowed: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(s, &borrowed, counters);
        assert!(
            out.status.success(),
            "{borrowed:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let queued: shapes::Queued = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(queued.status, "PENDING");
        let previous = told.lock().unwrap().queued.insert(queued.tx_id, request);
        assert!(
            previous.is_none(),
            "tx_id {} handed out twice",
            queued.tx_id
        );
        mine.push((key, args, queued.tx_id));
    }
}

/// Settles in small batches until the writers are done.
fn settler(s: &Sandbox, done: &AtomicBool, counters: &Counters) {
    while !done.load(Ordering::Relaxed) {
        let out = run(s, &["settle", "--batch-size", "3"], counters);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        counters.settle_runs.fetch_add(1, Ordering::Relaxed);
        // A pause lets transfers wait PENDING long enough for some cancels to win.
        thread::sleep(Duration::from_millis(15));
    }
}

/// The operator: until the writers are done, a policy change at a random
/// instant about every tenth of a second; returns how many it made.
fn operator(s: &Sandbox, mut rng: Rng, done: &AtomicBool, counters: &Counters) -> usize {
    let mut frozen = [false; USERS];
    let mut made = 0;
    while !done.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(40 + rng.below(100)));
        let args = policy_model::next_change(&mut rng, &mut frozen);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(s, &args, counters);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        made += 1;
    }
    made
}

/// Runs `verify` over and over while everything else writes: it reads one
/// snapshot, so it must pass at every instant, not only at the end.
fn verifier(s: &Sandbox, done: &AtomicBool, counters: &Counters) {
    while !done.load(Ordering::Relaxed) {
        let out = run(s, &["verify", "--quick"], counters);
        assert!(
            out.status.success(),
            "verify failed mid-run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        counters.verify_runs.fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts settles that commit one transfer at a time and SIGKILLs each at a
/// random instant; a kill counts only if the process was still running.
fn killer(s: &Sandbox, mut rng: Rng, counters: &Counters) {
    for _ in 0..KILL_ATTEMPTS {
        counters.processes.fetch_add(1, Ordering::Relaxed);
        let mut child = s
            .process(&[
                "--json",
                "--lock-timeout",
                "20000",
                "settle",
                "--batch-size",
                "1",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn settle");
        thread::sleep(Duration::from_millis(rng.below(40)));
        if child.try_wait().unwrap().is_none() {
            child.kill().expect("SIGKILL");
            counters.kills.fetch_add(1, Ordering::Relaxed);
        }
        child.wait().unwrap();
    }
}

fn bank_many_processes_and_killed_settles_apply_every_transfer_exactly_once() {
    let seed = seed();
    eprintln!("bank: seed {seed} (replay with WALLET_BANK_SEED={seed})");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let s = Sandbox::new();
    let counters = Counters {
        processes: AtomicU64::new(0),
        kills: AtomicU64::new(0),
        settle_runs: AtomicU64::new(0),
        verify_runs: AtomicU64::new(0),
        busy_retries: AtomicU64::new(0),
    };

    for user in 0..USERS {
        let amount = 10_000 + rng.below(40_000) as i64;
        let (who, email) = (name(user), format!("{}@example.com", name(user)));
        let limit = money(10_000 + rng.below(20_000) as i64);
        let mut create = vec!["create-user", &who, &email];
        if user % 2 == 0 {
            create.extend(["--overdraft", &limit]);
        }
        s.ok(&create);
        s.ok(&["-q", "deposit", &name(user), &money(amount)]);
    }
    s.ok(&["settle"]);
    let funding_transfers = USERS as i64;

    let told = Mutex::new(Told::default());
    let writers_done = AtomicBool::new(false);
    let operated = thread::scope(|scope| {
        let settlers: Vec<_> = (0..SETTLERS)
            .map(|_| scope.spawn(|| settler(&s, &writers_done, &counters)))
            .collect();
        let verifier = scope.spawn(|| verifier(&s, &writers_done, &counters));
        let killer_rng = Rng(rng.next());
        let killer = scope.spawn(|| killer(&s, killer_rng, &counters));
        let operator_rng = Rng(rng.next());
        let operator = scope.spawn(|| operator(&s, operator_rng, &writers_done, &counters));
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                let writer_rng = Rng(rng.next());
                let (s, told, counters) = (&s, &told, &counters);
                scope.spawn(move || writer(s, id, writer_rng, told, counters))
            })
            .collect();
        for handle in writers {
            handle.join().expect("writer");
        }
        writers_done.store(true, Ordering::Relaxed);
        killer.join().expect("killer");
        verifier.join().expect("verifier");
        for handle in settlers {
            handle.join().expect("settler");
        }
        operator.join().expect("operator")
    });

    // The rerun after the kills finishes the queue, and a second finds nothing.
    let last: shapes::Settled = s.json(&["settle"]);
    assert_eq!(last.remaining, 0);
    let again: shapes::Settled = s.json(&["settle"]);
    assert_eq!(again.processed, 0, "nothing is left to apply twice");

    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok, "{report:?}");

    let told = told.into_inner().unwrap();
    let stored = read_transfers(&s);
    assert_eq!(
        stored.len() as i64,
        told.queued.len() as i64 + funding_transfers,
        "every stored transfer was either funding or reported to a writer"
    );
    for (tx_id, request) in &told.queued {
        let row = stored
            .get(tx_id)
            .unwrap_or_else(|| panic!("tx_id {tx_id} was reported but does not exist"));
        assert_eq!(&row.request, request, "transfer {tx_id} is what was asked");
        assert_ne!(row.status, "PENDING", "transfer {tx_id} left pending");
    }

    // Replay every request in tx_id order, the order a file decides in,
    // with the settlement rule and the policy in force at each decision:
    // the statuses, reasons and balances must come out exactly as the
    // ledger has them.
    let policies = read_policies(&s);
    let mut model = [0i64; USERS];
    let (mut completed, mut failed, mut cancelled) = (0, 0, 0);
    let (mut frozen_failed, mut into_overdraft) = (0, 0);
    let mut deposits_minus_withdrawals = 0;
    for (tx_id, row) in &stored {
        if told.not_cancelled.contains(tx_id) && !told.cancelled.contains(tx_id) {
            assert_ne!(
                row.status, "CANCELLED",
                "transfer {tx_id}: a refused cancel took effect"
            );
        }
        if told.cancelled.contains(tx_id) {
            assert_eq!(row.status, "CANCELLED", "transfer {tx_id}: {row:?}");
            cancelled += 1;
            continue;
        }
        let outcome = (row.status.as_str(), row.reason.as_deref());
        match row.request.src {
            Some(src) => {
                let at = row
                    .settled_at
                    .unwrap_or_else(|| panic!("transfer {tx_id} has no decision instant"));
                policy_model::check_decision(
                    *tx_id,
                    model[src],
                    row.request.amount,
                    outcome,
                    &policies.candidates(account_id(src), at),
                );
            }
            None => assert_eq!(outcome, ("COMPLETED", None), "deposit {tx_id}: {row:?}"),
        }
        if row.status == "FAILED" {
            failed += 1;
            frozen_failed += usize::from(row.reason.as_deref() == Some("account_frozen"));
            continue;
        }
        if let Some(src) = row.request.src {
            model[src] -= row.request.amount;
            into_overdraft += usize::from(model[src] < 0);
        } else {
            deposits_minus_withdrawals += row.request.amount;
        }
        if let Some(dst) = row.request.dst {
            model[dst] += row.request.amount;
        } else {
            deposits_minus_withdrawals -= row.request.amount;
        }
        completed += 1;
    }
    // The same balances summed straight from the transfers that ended COMPLETED.
    let mut from_completed = [0i64; USERS];
    for row in stored.values().filter(|row| row.status == "COMPLETED") {
        if let Some(src) = row.request.src {
            from_completed[src] -= row.request.amount;
        }
        if let Some(dst) = row.request.dst {
            from_completed[dst] += row.request.amount;
        }
    }
    assert_eq!(from_completed, model);
    let mut total = 0;
    for (user, balance) in model.iter().enumerate() {
        let shown: shapes::User = s.json(&["get-user", &name(user)]);
        assert_eq!(parse_money(&shown.balance), *balance, "{}", name(user));
        assert_eq!(
            (shown.pending_in.as_str(), shown.pending_out.as_str()),
            ("0.00", "0.00")
        );
        total += balance;
    }
    assert_eq!(
        total, deposits_minus_withdrawals,
        "money is neither made nor lost"
    );

    let history: Vec<shapes::Transfer> = s.json(&["history", &name(0), "--limit", "100000"]);
    let from_history: i64 = history
        .iter()
        .filter(|t| t.status == "COMPLETED")
        .map(|t| {
            let amount = parse_money(&t.amount);
            if t.dst.as_deref() == Some(name(0).as_str()) {
                amount
            } else {
                -amount
            }
        })
        .sum();
    assert_eq!(from_history, model[0], "history agrees with the balance");

    println!(
        "bank: seed {seed}: {} processes ({WRITERS} writers, {SETTLERS} settlers, {} settle runs, {} verify runs), {} transfers queued, {} settles killed with SIGKILL, {completed} completed ({into_overdraft} into an overdraft), {failed} failed ({frozen_failed} account_frozen), {cancelled} cancelled ({} cancels too late), {operated} policy changes while running ({} freezes in all), {} busy retries, {:.1?}",
        counters.processes.load(Ordering::Relaxed),
        counters.settle_runs.load(Ordering::Relaxed),
        counters.verify_runs.load(Ordering::Relaxed),
        stored.len(),
        counters.kills.load(Ordering::Relaxed),
        told.not_cancelled.len(),
        policies.count("freeze"),
        counters.busy_retries.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(failed > 0, "some transfers exceeded their funds");
    assert!(into_overdraft > 0, "some transfers drew into an overdraft");
    assert!(
        frozen_failed > 0,
        "some transfers failed from a frozen user"
    );
}

#[derive(Debug)]
struct StoredTransfer {
    request: Request,
    status: String,
    reason: Option<String>,
    settled_at: Option<i64>,
}

/// The account id of user `user`: users were created in order after the
/// external account (id 0).
fn account_id(user: usize) -> i64 {
    user as i64 + 1
}

/// Every policy change, read by a second, read-only program.
fn read_policies(s: &Sandbox) -> Policies {
    let conn = Connection::open_with_flags(s.db(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn
        .prepare("SELECT account, kind, overdraft, at FROM policy_changes ORDER BY change_id")
        .unwrap();
    let changes: Vec<Change> = stmt
        .query_map([], |row| {
            Ok(Change {
                account: row.get(0)?,
                kind: row.get(1)?,
                overdraft: row.get(2)?,
                at: row.get(3)?,
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    Policies::new(changes)
}

/// Every transfer as the ledger holds it, read by a second, read-only program.
fn read_transfers(s: &Sandbox) -> BTreeMap<i64, StoredTransfer> {
    let conn = Connection::open_with_flags(s.db(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let user = |id: i64| -> Option<usize> {
        // Users were created in order after the external account (id 0).
        (id != 0).then(|| usize::try_from(id - 1).unwrap())
    };
    let mut stmt = conn
        .prepare(
            "SELECT tx_id, src, dst, amount, status, reason, settled_at FROM transfers ORDER BY tx_id",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, Option<String>>(5)?,
                row.get::<_, Option<i64>>(6)?,
            ))
        })
        .unwrap();
    rows.map(|row| {
        let (tx_id, src, dst, amount, status, reason, settled_at) = row.unwrap();
        (
            tx_id,
            StoredTransfer {
                request: Request {
                    src: user(src),
                    dst: user(dst),
                    amount,
                },
                status,
                reason,
                settled_at,
            },
        )
    })
    .collect()
}

engine_tests! {
    both: [],
    sqlite: [
        bank_many_processes_and_killed_settles_apply_every_transfer_exactly_once,
    ],
}
