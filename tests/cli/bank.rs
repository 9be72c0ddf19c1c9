//! The bank test: many `wallet` processes at once, settles killed with SIGKILL, then a full audit.
//!
//! Users hold two currencies (PHP and BTC), and two desk users hold both
//! to exchange between them. Writers queue random transfers, deposits and
//! withdrawals in either currency, and exchanges through a desk (`exchange`
//! commands and batch lines), many more than the funds allow; they cancel
//! some (either leg of an exchange) and replay their keys, while settles
//! run beside them and others are killed at random instants, a reader
//! checks in snapshot after snapshot that no exchange is ever half
//! decided, and an operator freezes and unfreezes users and changes their
//! overdraft limits in both currencies (half the users start with one).
//! Afterwards the ledger must agree with an independent model rebuilt from
//! what each process was told and the policy changes recorded: replayed in
//! the order the file decided (tx_id order, an exchange at its first leg),
//! each transfer from a user frozen at its decision FAILED
//! `account_frozen`, each other one COMPLETED exactly when it left its
//! source at or above minus the limit then in force in its currency, and
//! FAILED `insufficient_funds` when not; an exchange COMPLETED when both
//! legs may be and FAILED alike with the first failing leg's reason when
//! not; the legs of each pair linked, mirrored and decided alike; each
//! currency summing to zero.
//! The seed is printed; `WALLET_BANK_SEED=<seed>` replays the same choices
//! (the interleaving of processes is up to the machine).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use serde_json::{Value, json};

use crate::bank_model::{
    self, DEFAULT, Mine, OTHER, OTHER_PER_DEFAULT, Op, Population, Request, Row, code, money_in,
    queued_ids,
};
use crate::common::{Rng, Sandbox, seed, shapes};
use crate::policy_model::{self, Change, Policies};

const USERS: usize = 6;
/// The desk users exchanges go through, after the users (`desk0`, …).
const DESKS: usize = 2;
const WRITERS: usize = 4;
const OPS_PER_WRITER: usize = 150;
const SETTLERS: usize = 2;
const KILL_ATTEMPTS: usize = 40;

/// The users and desks.
const BANK: Population = Population {
    users: USERS,
    desks: DESKS,
};

fn name(user: usize) -> String {
    BANK.name(user)
}

fn money(minor: i64) -> String {
    money_in(minor, DEFAULT)
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
    /// Snapshots of the exchange legs read while the run went on.
    snapshots: AtomicU64,
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
/// deposits and withdrawals in either currency, exchanges through a desk
/// (commands, and batch lines beside transfers), cancels of its own
/// transfers (either leg of an exchange), and replays of its own
/// idempotency keys, which must return the transfers first queued.
fn writer(s: &Sandbox, id: usize, mut rng: Rng, told: &Mutex<Told>, counters: &Counters) {
    let mut mine: Vec<Mine> = Vec::new();
    for op_index in 0..OPS_PER_WRITER {
        let roll = rng.below(100);
        if roll < 10 && !mine.is_empty() {
            let old = &mine[rng.below(mine.len() as u64) as usize];
            let args: Vec<&str> = old.args.iter().map(String::as_str).collect();
            let out = run(s, &args, counters);
            assert!(out.status.success(), "replay of {args:?} failed");
            let again: Vec<(i64, Option<i64>)> =
                queued_ids(&out).iter().map(|(t, p, _)| (*t, *p)).collect();
            assert_eq!(
                again, old.ids,
                "a replayed key returns the transfers first queued"
            );
            continue;
        }
        if roll < 20 && !mine.is_empty() {
            // Mostly the newest, which may still be PENDING, to race the
            // settles; either leg of an exchange.
            let pick = if rng.below(4) == 0 {
                rng.below(mine.len() as u64) as usize
            } else {
                mine.len() - 1
            };
            let ids = &mine[pick].ids;
            let (tx_id, pair) = ids[rng.below(ids.len() as u64) as usize];
            let (tx_id, pair) = match pair {
                Some(pair) if rng.below(2) == 0 => (pair, Some(tx_id)),
                _ => (tx_id, pair),
            };
            let out = run(s, &["cancel", &tx_id.to_string()], counters);
            let mut told = told.lock().unwrap();
            if out.status.success() {
                let cancelled: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(cancelled["status"], "CANCELLED");
                told.cancelled.extend(std::iter::once(tx_id).chain(pair));
            } else {
                assert_eq!(out.status.code(), Some(4));
                assert_eq!(error_code(&out), "not_pending");
                told.not_cancelled
                    .extend(std::iter::once(tx_id).chain(pair));
            }
            continue;
        }
        let op = match roll {
            20..=29 => Op::Deposit,
            30..=39 => Op::Withdraw,
            70..=87 => Op::Exchange,
            88..=99 => Op::Batch,
            _ => Op::Transfer,
        };
        let queue = BANK.queue(&mut rng, op, &format!("w{id}-op{op_index}"), s.dir.path());
        let out = run(s, &queue.args(), counters);
        let ids = queue.record(&out, &mut told.lock().unwrap().queued);
        mine.push(Mine {
            args: queue.args,
            ids,
        });
    }
}

/// Reads the exchange legs over and over while everything else writes,
/// each read one snapshot of the file, and checks that none shows a leg
/// decided without its partner.
fn pair_watcher(s: &Sandbox, done: &AtomicBool, counters: &Counters) {
    let conn = Connection::open_with_flags(s.db(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.busy_timeout(Duration::from_secs(20)).unwrap();
    let mut stmt = conn
        .prepare("SELECT tx_id, pair_tx_id, status FROM transfers WHERE pair_tx_id IS NOT NULL")
        .unwrap();
    while !done.load(Ordering::Relaxed) {
        let legs: Vec<(i64, i64, String)> = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        bank_model::check_snapshot(&legs);
        if !legs.is_empty() {
            counters.snapshots.fetch_add(1, Ordering::Relaxed);
        }
        thread::sleep(Duration::from_millis(5));
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
        let args = policy_model::next_change(&mut rng, &mut frozen, Some(bank_model::OTHER_CODE));
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
        snapshots: AtomicU64::new(0),
        kills: AtomicU64::new(0),
        settle_runs: AtomicU64::new(0),
        verify_runs: AtomicU64::new(0),
        busy_retries: AtomicU64::new(0),
    };

    // Users and then desks, funded in both currencies; the desks hold more
    // than a user, but not enough to pay every exchange.
    s.ok(&["init"]);
    s.ok(&[
        "currency",
        "add",
        bank_model::OTHER_CODE,
        "--scale",
        &bank_model::OTHER_SCALE.to_string(),
    ]);
    let mut funds = String::new();
    for user in 0..USERS + DESKS {
        let (who, email) = (name(user), format!("{}@example.com", name(user)));
        let limit = money(10_000 + rng.below(20_000) as i64);
        let mut create = vec!["create-user", &who, &email];
        if user % 2 == 0 && user < USERS {
            create.extend(["--overdraft", &limit]);
        }
        s.ok(&create);
        for currency in [DEFAULT, OTHER] {
            let base = if user < USERS { 10_000 } else { 20_000 };
            let amount = (base + rng.below(4 * base as u64) as i64)
                * if currency == OTHER {
                    OTHER_PER_DEFAULT
                } else {
                    1
                };
            let line = json!({"dst": who, "amount": money_in(amount, currency), "currency": code(currency)});
            funds.push_str(&line.to_string());
            funds.push('\n');
        }
    }
    let path = s.dir.path().join("funds.jsonl");
    std::fs::write(&path, funds).unwrap();
    s.ok(&["-q", "transfer", "--batch", path.to_str().unwrap()]);
    s.ok(&["settle"]);
    let funding_transfers = 2 * (USERS + DESKS) as i64;

    let told = Mutex::new(Told::default());
    let writers_done = AtomicBool::new(false);
    let operated = thread::scope(|scope| {
        let settlers: Vec<_> = (0..SETTLERS)
            .map(|_| scope.spawn(|| settler(&s, &writers_done, &counters)))
            .collect();
        let verifier = scope.spawn(|| verifier(&s, &writers_done, &counters));
        let pair_watcher = scope.spawn(|| pair_watcher(&s, &writers_done, &counters));
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
        pair_watcher.join().expect("pair watcher");
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
        assert_eq!(
            &BANK.request_of(row),
            request,
            "transfer {tx_id} is what was asked"
        );
        assert_ne!(row.status, "PENDING", "transfer {tx_id} left pending");
    }
    let pairs = bank_model::check_pairs(&stored);

    // Replay every request in tx_id order, the order a file decides in (an
    // exchange at its first leg, both legs together), with the settlement
    // rule and the policy in force at each decision in its currency: the
    // statuses, reasons and balances must come out exactly as the ledger
    // has them.
    let policies = read_policies(&s);
    let mut model: BTreeMap<(i64, i16), i64> = BTreeMap::new();
    let (mut completed, mut failed, mut cancelled) = (0, 0, 0);
    let (mut frozen_failed, mut into_overdraft, mut desk_short) = (0, 0, 0);
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
        let at = || {
            row.settled_at
                .unwrap_or_else(|| panic!("transfer {tx_id} has no decision instant"))
        };
        let mut legs = vec![row];
        match row.pair {
            // Decided with its first leg.
            Some(pair) if pair < *tx_id => continue,
            Some(pair) => {
                let second = &stored[&pair];
                let first_policies = policies.candidates_in(row.src, row.currency, at());
                let second_policies = policies.candidates_in(second.src, second.currency, at());
                let (user_has, desk_has) = (
                    model.get(&(row.src, row.currency)).copied().unwrap_or(0),
                    model
                        .get(&(second.src, second.currency))
                        .copied()
                        .unwrap_or(0),
                );
                policy_model::check_pair_decision(
                    *tx_id,
                    (user_has, row.amount, &first_policies),
                    (desk_has, second.amount, &second_policies),
                    outcome,
                );
                desk_short += usize::from(
                    outcome == ("FAILED", Some("insufficient_funds"))
                        && first_policies
                            .iter()
                            .all(|p| policy_model::owed(user_has, row.amount, *p).0 == "COMPLETED"),
                );
                legs.push(second);
            }
            None if row.src != 0 => policy_model::check_decision(
                *tx_id,
                model.get(&(row.src, row.currency)).copied().unwrap_or(0),
                row.amount,
                outcome,
                &policies.candidates_in(row.src, row.currency, at()),
            ),
            None => assert_eq!(outcome, ("COMPLETED", None), "deposit {tx_id}: {row:?}"),
        }
        if row.status == "FAILED" {
            failed += legs.len();
            frozen_failed += usize::from(row.reason.as_deref() == Some("account_frozen"));
            continue;
        }
        for leg in legs {
            let src = model.entry((leg.src, leg.currency)).or_default();
            *src -= leg.amount;
            into_overdraft += usize::from(leg.src != 0 && *src < 0);
            *model.entry((leg.dst, leg.currency)).or_default() += leg.amount;
            completed += 1;
        }
    }
    // The same balances summed straight from the transfers that ended
    // COMPLETED, each currency summing to zero with the outside world's.
    model.retain(|_, balance| *balance != 0);
    let mut from_completed = bank_model::completed_sums(&stored);
    from_completed.retain(|_, balance| *balance != 0);
    assert_eq!(from_completed, model);
    for user in 0..USERS + DESKS {
        let shown: Value = s.json(&["get-user", &name(user)]);
        bank_model::assert_settled_user(&shown, &name(user), BANK.account_id(user), &model);
    }

    let history: Vec<shapes::Transfer> = s.json(&["history", &name(0), "--limit", "100000"]);
    let from_history: i64 = history
        .iter()
        .filter(|t| t.status == "COMPLETED" && t.currency == code(DEFAULT))
        .map(|t| {
            let amount = bank_model::parse_in(&t.amount, DEFAULT);
            if t.dst.as_deref() == Some(name(0).as_str()) {
                amount
            } else {
                -amount
            }
        })
        .sum();
    assert_eq!(
        from_history,
        model
            .get(&(BANK.account_id(0), DEFAULT))
            .copied()
            .unwrap_or(0),
        "history agrees with the balance"
    );

    println!(
        "bank: seed {seed}: {} processes ({WRITERS} writers, {SETTLERS} settlers, {} settle runs, {} verify runs, {} snapshots of exchanges read), {} transfers queued, {} settles killed with SIGKILL, {completed} completed ({into_overdraft} into an overdraft), {failed} failed ({frozen_failed} account_frozen), {cancelled} cancelled ({} cancels too late), exchanges: {pairs:?} ({desk_short} short on the desk's side), {operated} policy changes while running ({} freezes in all), {} busy retries, {:.1?}",
        counters.processes.load(Ordering::Relaxed),
        counters.settle_runs.load(Ordering::Relaxed),
        counters.verify_runs.load(Ordering::Relaxed),
        counters.snapshots.load(Ordering::Relaxed),
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
    assert!(pairs.completed > 0, "some exchanges completed");
    assert!(pairs.failed > 0, "some exchanges failed");
    assert!(
        counters.snapshots.load(Ordering::Relaxed) > 0,
        "exchanges were read while the run went on"
    );
}

/// Every policy change, read by a second, read-only program.
fn read_policies(s: &Sandbox) -> Policies {
    let conn = Connection::open_with_flags(s.db(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT account, kind, overdraft, at, currency FROM policy_changes ORDER BY change_id",
        )
        .unwrap();
    let changes: Vec<(Change, i16)> = stmt
        .query_map([], |row| {
            Ok((
                Change {
                    account: row.get(0)?,
                    kind: row.get(1)?,
                    overdraft: row.get(2)?,
                    at: row.get(3)?,
                },
                row.get(4)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    Policies::in_currencies(changes)
}

/// Every transfer as the ledger holds it, read by a second, read-only program.
fn read_transfers(s: &Sandbox) -> BTreeMap<i64, Row> {
    let conn = Connection::open_with_flags(s.db(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT tx_id, src, dst, amount, currency, pair_tx_id, status, reason, settled_at
               FROM transfers ORDER BY tx_id",
        )
        .unwrap();
    stmt.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            Row {
                src: row.get(1)?,
                dst: row.get(2)?,
                amount: row.get(3)?,
                currency: row.get(4)?,
                pair: row.get(5)?,
                status: row.get(6)?,
                reason: row.get(7)?,
                settled_at: row.get(8)?,
                batch: None,
            },
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

engine_tests! {
    both: [],
    sqlite: [
        bank_many_processes_and_killed_settles_apply_every_transfer_exactly_once,
    ],
}
