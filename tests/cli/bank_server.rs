//! The bank test on PostgreSQL: writers on many connections queue
//! transfers in two currencies and exchanges through two desk users
//! (commands and batch lines), settle workers run in parallel (several
//! `settle --watch --workers 2` processes and short settles killed with
//! SIGKILL, some watchers killed too), and the server itself crashes once
//! mid-run, while a reader checks snapshot after snapshot that no exchange
//! is half decided and an operator freezes and unfreezes users and changes
//! their overdraft limits in both currencies (half the users start with
//! one). Then a full audit: [`audit`] replays each account's balance in
//! each currency through its decisions in the order it saw them, every
//! recorded balance the running one, each source's transfers decided in
//! tx_id order, each outcome the one owed under the policy in force at it
//! (`policy_changes` against `settled_at`), an exchange's both legs owed
//! together; every pair's legs are linked, mirrored and decided alike in
//! one settle batch; each currency sums to zero; the queue drains.
//!
//! The seed is printed; `WALLET_BANK_SEED=<seed>` replays the same choices
//! (the interleaving of processes is up to the machine).

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bank_model::{
    self, DEFAULT, OTHER, OTHER_PER_DEFAULT, Op, Population, Row, code, money_in,
};
use crate::common::{Rng, Sandbox, seed};
use crate::pgserver::PgServer;
use crate::policy_model::{self, Change, Policies};

const USERS: usize = 8;
/// The desk users exchanges go through, after the users.
const DESKS: usize = 2;
const BANK: Population = Population {
    users: USERS,
    desks: DESKS,
};
const WRITERS: usize = 4;
const OPS_PER_WRITER: usize = 120;
const WATCHERS: usize = 3;
const KILL_ATTEMPTS: usize = 30;

fn name(user: usize) -> String {
    BANK.name(user)
}

fn money(minor: i64) -> String {
    money_in(minor, DEFAULT)
}

#[derive(Default)]
struct Told {
    queued: BTreeMap<i64, bank_model::Request>,
    cancelled: BTreeSet<i64>,
}

#[derive(Default)]
struct Counters {
    processes: AtomicU64,
    /// Snapshots of the exchange legs read while the run went on.
    snapshots: AtomicU64,
    kills: AtomicU64,
    retries: AtomicU64,
}

struct Bank {
    s: Sandbox,
    url: String,
}

impl Bank {
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = self.s.process(&[]);
        cmd.args(["--db", &self.url, "--json", "--lock-timeout", "20000"])
            .args(args);
        cmd
    }

    /// Runs one process, again while the server is away (exit 6) or the
    /// outcome is unknown (exit 8): every write here carries a key or is
    /// safe to repeat, so a retry is exact.
    fn run(&self, args: &[&str], counters: &Counters) -> Output {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            counters.processes.fetch_add(1, Ordering::Relaxed);
            let out = self.command(args).output().expect("run wallet");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("panicked") && out.status.code() != Some(101),
                "wallet {args:?} panicked: {stderr}"
            );
            if matches!(out.status.code(), Some(6 | 8)) {
                assert!(Instant::now() < deadline, "{args:?} kept failing: {stderr}");
                counters.retries.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            return out;
        }
    }
}

fn writer(bank: &Bank, id: usize, mut rng: Rng, told: &Mutex<Told>, counters: &Counters) {
    let mut mine: Vec<(i64, Option<i64>)> = Vec::new();
    for op_index in 0..OPS_PER_WRITER {
        let roll = rng.below(100);
        if roll < 10 && !mine.is_empty() {
            // The newest, either leg of an exchange; cancelling one leg
            // cancels both.
            let (tx_id, pair) = *mine.last().unwrap();
            let (tx_id, pair) = match pair {
                Some(pair) if rng.below(2) == 0 => (pair, Some(tx_id)),
                _ => (tx_id, pair),
            };
            let out = bank.run(&["cancel", &tx_id.to_string()], counters);
            let cancelled = if out.status.success() {
                true
            } else {
                assert_eq!(
                    out.status.code(),
                    Some(4),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                // A cancel whose answer was lost and then retried finds its
                // own work done.
                let got: Value = serde_json::from_slice(
                    &bank
                        .run(&["get-transfer", &tx_id.to_string()], counters)
                        .stdout,
                )
                .unwrap();
                got["status"] == "CANCELLED"
            };
            if cancelled {
                told.lock()
                    .unwrap()
                    .cancelled
                    .extend(std::iter::once(tx_id).chain(pair));
            }
            continue;
        }
        let op = match roll {
            10..=24 => Op::Deposit,
            25..=34 => Op::Withdraw,
            70..=87 => Op::Exchange,
            88..=99 => Op::Batch,
            _ => Op::Transfer,
        };
        let queue = BANK.queue(
            &mut rng,
            op,
            &format!("w{id}-op{op_index}"),
            bank.s.dir.path(),
        );
        let out = bank.run(&queue.args(), counters);
        let ids = queue.record(&out, &mut told.lock().unwrap().queued);
        mine.extend(ids);
    }
}

/// Reads the exchange legs over and over until `done`, each read one
/// snapshot, and checks that none shows a leg decided without its
/// partner; connects again while the server (its socket in `host`) is
/// away.
fn pair_watcher(host: &str, done: &AtomicBool, counters: &Counters) {
    let connect = || {
        let mut client = ::postgres::Config::new()
            .host_path(host)
            .user("postgres")
            .dbname("bank")
            .connect(::postgres::NoTls)
            .ok()?;
        client.batch_execute("SET search_path = wallet").ok()?;
        Some(client)
    };
    let mut client = None;
    while !done.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(10));
        let Some(db) = client.as_mut() else {
            client = connect();
            continue;
        };
        let Ok(rows) = db.query(
            "SELECT tx_id, pair_tx_id, status FROM transfers WHERE pair_tx_id IS NOT NULL",
            &[],
        ) else {
            client = None;
            continue;
        };
        let legs: Vec<(i64, i64, String)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        bank_model::check_snapshot(&legs);
        if !legs.is_empty() {
            counters.snapshots.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The operator: until the writers are done, a policy change at a random
/// instant about every tenth of a second; returns how many it made.
fn operator(bank: &Bank, mut rng: Rng, done: &AtomicBool, counters: &Counters) -> usize {
    let mut frozen = [false; USERS];
    let mut made = 0;
    while !done.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(40 + rng.below(100)));
        let args = policy_model::next_change(&mut rng, &mut frozen, Some(bank_model::OTHER_CODE));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // A change retried after a lost answer is made twice, which leaves
        // the same policy.
        let out = bank.run(&args, counters);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        made += 1;
    }
    made
}

/// A child process killed when dropped, so that a failing test leaves no
/// worker behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn watcher(bank: &Bank) -> Reaped {
    bank.command(&[
        "settle",
        "--watch",
        "--workers",
        "2",
        "--batch-size",
        "7",
        "--interval",
        "10",
    ])
    .stdout(Stdio::null())
    .stderr(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(bank.s.dir.path().join("watchers.log"))
            .unwrap(),
    )
    .spawn()
    .map(Reaped)
    .expect("spawn settle --watch")
}

/// Starts short settles and SIGKILLs each at a random instant, and now and
/// then kills a watcher outright and starts another in its place.
fn killer(bank: &Bank, mut rng: Rng, watchers: &Mutex<Vec<Reaped>>, counters: &Counters) {
    for attempt in 0..KILL_ATTEMPTS {
        let mut child = bank
            .command(&["settle", "--batch-size", "1", "--workers", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn settle");
        thread::sleep(Duration::from_millis(rng.below(60)));
        if child.try_wait().unwrap().is_none() {
            child.kill().expect("SIGKILL");
            counters.kills.fetch_add(1, Ordering::Relaxed);
        }
        child.wait().unwrap();
        if attempt % 6 == 5 {
            let mut watchers = watchers.lock().unwrap();
            let victim = rng.below(watchers.len() as u64) as usize;
            // Dropping the old one kills it (SIGKILL).
            watchers[victim] = watcher(bank);
            counters.kills.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn bank_on_a_server_with_parallel_workers_kills_and_a_crash() {
    let seed = seed();
    eprintln!("bank (PostgreSQL): seed {seed} (replay with WALLET_BANK_SEED={seed})");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut server = PgServer::start();
    server.psql("postgres", "CREATE DATABASE bank");
    let bank = Bank {
        s: Sandbox::new(),
        url: server.url("bank", "wallet"),
    };
    let host = bank
        .url
        .split("host=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("the server's socket directory in its URL")
        .to_string();
    let counters = Counters::default();
    let ok = |args: &[&str]| {
        let out = bank.run(args, &counters);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&["init"]);
    ok(&[
        "currency",
        "add",
        bank_model::OTHER_CODE,
        "--scale",
        &bank_model::OTHER_SCALE.to_string(),
    ]);
    // Users and then desks, funded in both currencies; the desks hold more
    // than a user, but not enough to pay every exchange.
    let mut funds = String::new();
    for user in 0..USERS + DESKS {
        let (who, email) = (name(user), format!("{}@example.com", name(user)));
        let limit = money(10_000 + rng.below(20_000) as i64);
        let mut create = vec!["create-user", &who, &email];
        if user % 2 == 0 && user < USERS {
            create.extend(["--overdraft", &limit]);
        }
        ok(&create);
        for currency in [DEFAULT, OTHER] {
            let base = if user < USERS { 10_000 } else { 20_000 };
            let amount = (base + rng.below(4 * base as u64) as i64)
                * if currency == OTHER {
                    OTHER_PER_DEFAULT
                } else {
                    1
                };
            let line = json!({
                "dst": who,
                "amount": money_in(amount, currency),
                "currency": code(currency),
                "id": format!("fund{user}-{currency}"),
            });
            funds.push_str(&line.to_string());
            funds.push('\n');
        }
    }
    let path = bank.s.dir.path().join("funds.jsonl");
    std::fs::write(&path, funds).unwrap();
    ok(&["transfer", "--batch", path.to_str().unwrap()]);
    ok(&["settle"]);
    let funding_transfers = 2 * (USERS + DESKS);
    let db = |server: &PgServer| {
        let mut client = server.connect("bank");
        client.batch_execute("SET search_path = wallet").unwrap();
        client
    };
    let before = Before::read(&mut db(&server));

    let told = Mutex::new(Told::default());
    let watchers = Mutex::new((0..WATCHERS).map(|_| watcher(&bank)).collect::<Vec<_>>());
    let writers_done = AtomicBool::new(false);
    let (crashed, operated) = thread::scope(|scope| {
        let killer_rng = Rng(rng.next());
        let killer = scope.spawn(|| killer(&bank, killer_rng, &watchers, &counters));
        let operator_rng = Rng(rng.next());
        let operator = scope.spawn(|| operator(&bank, operator_rng, &writers_done, &counters));
        let pair_watcher = scope.spawn(|| pair_watcher(&host, &writers_done, &counters));
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                let writer_rng = Rng(rng.next());
                let (bank, told, counters) = (&bank, &told, &counters);
                scope.spawn(move || writer(bank, id, writer_rng, told, counters))
            })
            .collect();
        // Mid-run, once there is work in flight: the server goes down at
        // once, as on a crash, and comes back.
        let crash_at = Instant::now() + Duration::from_millis(800 + rng.below(800));
        while Instant::now() < crash_at {
            thread::sleep(Duration::from_millis(10));
        }
        let queued_before_crash = told.lock().unwrap().queued.len();
        server.crash();
        thread::sleep(Duration::from_millis(300));
        server.run();
        for handle in writers {
            handle.join().expect("writer");
        }
        writers_done.store(true, Ordering::Relaxed);
        killer.join().expect("killer");
        pair_watcher.join().expect("pair watcher");
        (queued_before_crash, operator.join().expect("operator"))
    });
    // The watchers drain what is left, pairs included, then stop cleanly
    // on SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: i64 = db(&server)
            .query_one(
                "SELECT count(*) FROM transfers WHERE status = 'PENDING'",
                &[],
            )
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watchers left {left} transfers PENDING"
        );
        thread::sleep(Duration::from_millis(50));
    }
    for mut child in watchers.into_inner().unwrap() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status();
        let status = child.0.wait().unwrap();
        assert!(
            status.success(),
            "a watcher stopped on SIGTERM with {status:?}; their stderr: {}",
            std::fs::read_to_string(bank.s.dir.path().join("watchers.log")).unwrap_or_default()
        );
    }

    let out = bank.run(&["verify"], &counters);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = read_transfers(&mut db(&server));
    let pairs = bank_model::check_pairs(&stored.rows);
    let audited = audit(&mut db(&server), &before, &stored);

    let told = told.into_inner().unwrap();
    assert_eq!(
        stored.rows.len(),
        told.queued.len() + funding_transfers,
        "every stored transfer was either funding or reported to a writer, once"
    );
    for (tx_id, request) in &told.queued {
        let row = stored
            .rows
            .get(tx_id)
            .unwrap_or_else(|| panic!("tx_id {tx_id} reported but missing"));
        assert_eq!(
            &BANK.request_of(row),
            request,
            "transfer {tx_id} is what was asked"
        );
        assert_eq!(
            row.status == "CANCELLED",
            told.cancelled.contains(tx_id),
            "transfer {tx_id}: {}",
            row.status
        );
    }
    let balances = bank_model::completed_sums(&stored.rows);
    for user in 0..USERS + DESKS {
        let shown: Value =
            serde_json::from_slice(&bank.run(&["get-user", &name(user)], &counters).stdout)
                .unwrap();
        bank_model::assert_settled_user(&shown, &name(user), BANK.account_id(user), &balances);
    }
    let failed = stored
        .rows
        .values()
        .filter(|r| r.status == "FAILED")
        .count();
    println!(
        "bank (PostgreSQL): seed {seed}: {} processes, {} transfers ({} queued before the crash), {failed} failed ({} account_frozen), {} into an overdraft, {} cancelled, exchanges: {pairs:?} ({} short on the desk's side), {} snapshots of exchanges read, {operated} policy changes while running, {} kills, {} retries after the crash or a lost answer, {:.1?}",
        counters.processes.load(Ordering::Relaxed),
        stored.rows.len(),
        crashed,
        audited.frozen_failed,
        audited.into_overdraft,
        told.cancelled.len(),
        audited.desk_short,
        counters.snapshots.load(Ordering::Relaxed),
        counters.kills.load(Ordering::Relaxed),
        counters.retries.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(failed > 0, "some transfers exceeded their funds");
    assert!(
        audited.into_overdraft > 0,
        "some transfers drew into an overdraft"
    );
    assert!(
        audited.frozen_failed > 0,
        "some transfers failed from a frozen user"
    );
    assert!(pairs.completed > 0, "some exchanges completed");
    assert!(pairs.failed > 0, "some exchanges failed");
    assert!(
        counters.snapshots.load(Ordering::Relaxed) > 0,
        "exchanges were read while the run went on"
    );
    assert!(
        counters.retries.load(Ordering::Relaxed) > 0,
        "the crash was felt"
    );
}

/// Every transfer as the ledger recorded it, with the balances its source
/// and destination were left with in its currency.
struct Stored {
    rows: BTreeMap<i64, Row>,
    after: BTreeMap<i64, (Option<i64>, Option<i64>)>,
}

fn read_transfers(client: &mut ::postgres::Client) -> Stored {
    let mut stored = Stored {
        rows: BTreeMap::new(),
        after: BTreeMap::new(),
    };
    for r in client
        .query(
            "SELECT tx_id, src, dst, amount, currency, pair_tx_id, status, reason, settled_at,
                    settle_batch, src_balance, dst_balance
               FROM transfers ORDER BY tx_id",
            &[],
        )
        .unwrap()
    {
        let tx_id: i64 = r.get(0);
        stored.rows.insert(
            tx_id,
            Row {
                src: r.get(1),
                dst: r.get(2),
                amount: r.get(3),
                currency: r.get(4),
                pair: r.get(5),
                status: r.get(6),
                reason: r.get(7),
                settled_at: r.get(8),
                batch: r.get(9),
            },
        );
        stored.after.insert(tx_id, (r.get(10), r.get(11)));
    }
    stored
}

/// Every user's balance in each currency, and the last settle batch,
/// before the work the test audits.
struct Before {
    balances: BTreeMap<(i64, i16), i64>,
    after_batch: i64,
}

impl Before {
    fn read(client: &mut ::postgres::Client) -> Self {
        let balances = client
            .query(
                "SELECT id, 0::smallint, balance FROM accounts WHERE id <> 0
                 UNION ALL
                 SELECT account, currency, balance FROM balances WHERE account <> 0",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect();
        let after_batch: Option<i64> = client
            .query_one("SELECT max(settle_batch) FROM transfers", &[])
            .unwrap()
            .get(0);
        Self {
            balances,
            after_batch: after_batch.unwrap_or(0),
        }
    }
}

/// What the audit saw of the policies and the desks.
#[derive(Debug, Default)]
struct Audited {
    into_overdraft: usize,
    frozen_failed: usize,
    /// Exchanges FAILED `insufficient_funds` whose user could pay.
    desk_short: usize,
}

/// The audit of parallel settlement, from the ledger's own record of each
/// decision since `before`: each account's balance in each currency
/// replayed through its decisions in the order it saw them ((settle_batch,
/// tx_id)), every recorded balance the running one and every stored one
/// the last; each source's transfers decided in tx_id order; each
/// outcome the one owed under the policy in force at its `settled_at` in
/// its currency, an exchange's both legs owed together from the balances
/// each source held then.
fn audit(client: &mut ::postgres::Client, before: &Before, stored: &Stored) -> Audited {
    let policies = read_policies(client);
    let mut audited = Audited::default();
    let mut by_slot: BTreeMap<(i64, i16), Vec<(i64, i64)>> = BTreeMap::new();
    let mut by_source: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for (tx_id, row) in &stored.rows {
        assert_ne!(row.status, "PENDING", "transfer {tx_id} left PENDING");
        let Some(batch) = row.batch.filter(|b| *b > before.after_batch) else {
            continue;
        };
        for account in [row.src, row.dst] {
            if account != 0 {
                by_slot
                    .entry((account, row.currency))
                    .or_default()
                    .push((batch, *tx_id));
            }
        }
        if row.src != 0 {
            by_source.entry(row.src).or_default().push((batch, *tx_id));
        }
    }
    for (account, mut decided) in by_source {
        decided.sort_unstable();
        for pair in decided.windows(2) {
            assert!(
                pair[0].1 < pair[1].1,
                "account {account}: transfer {} decided after {}",
                pair[1].1,
                pair[0].1
            );
        }
    }
    // The balance each transfer's source held in its currency just before
    // the transfer was decided.
    let mut source_had: BTreeMap<i64, i64> = BTreeMap::new();
    for (slot, mut decided) in by_slot {
        decided.sort_unstable();
        let mut balance = before.balances.get(&slot).copied().unwrap_or(0);
        for (_, tx_id) in decided {
            let row = &stored.rows[&tx_id];
            let (src_after, dst_after) = stored.after[&tx_id];
            let is_source = row.src == slot.0;
            if is_source {
                source_had.insert(tx_id, balance);
            }
            if row.status == "FAILED" {
                if is_source {
                    assert_eq!(src_after, Some(balance), "transfer {tx_id}: balance seen");
                }
                continue;
            }
            if is_source {
                balance -= row.amount;
                audited.into_overdraft += usize::from(balance < 0);
                assert_eq!(src_after, Some(balance), "transfer {tx_id}: src after");
            } else {
                balance += row.amount;
                assert_eq!(dst_after, Some(balance), "transfer {tx_id}: dst after");
            }
        }
        let (account, currency) = slot;
        let kept: i64 = if currency == DEFAULT {
            client
                .query_one("SELECT balance FROM accounts WHERE id = $1", &[&account])
                .unwrap()
                .get(0)
        } else {
            client
                .query_one(
                    "SELECT balance FROM balances WHERE account = $1 AND currency = $2",
                    &[&account, &currency],
                )
                .unwrap()
                .get(0)
        };
        assert_eq!(
            kept, balance,
            "account {account}'s balance in currency {currency} is its decisions' sum"
        );
    }
    for (tx_id, row) in &stored.rows {
        let Some(&had) = source_had.get(tx_id) else {
            continue;
        };
        let outcome = (row.status.as_str(), row.reason.as_deref());
        let at = row
            .settled_at
            .unwrap_or_else(|| panic!("transfer {tx_id} has no decision instant"));
        let candidates = policies.candidates_in(row.src, row.currency, at);
        match row.pair {
            Some(pair) if pair < *tx_id => {}
            Some(pair) => {
                let second = &stored.rows[&pair];
                let desk_had = source_had[&pair];
                policy_model::check_pair_decision(
                    *tx_id,
                    (had, row.amount, &candidates),
                    (
                        desk_had,
                        second.amount,
                        &policies.candidates_in(second.src, second.currency, at),
                    ),
                    outcome,
                );
                audited.desk_short += usize::from(
                    outcome == ("FAILED", Some("insufficient_funds"))
                        && candidates
                            .iter()
                            .all(|p| policy_model::owed(had, row.amount, *p).0 == "COMPLETED"),
                );
            }
            None => policy_model::check_decision(*tx_id, had, row.amount, outcome, &candidates),
        }
        audited.frozen_failed += usize::from(row.reason.as_deref() == Some("account_frozen"));
    }
    audited
}

/// Every policy change the ledger recorded, with its currency.
fn read_policies(client: &mut ::postgres::Client) -> Policies {
    Policies::in_currencies(
        client
            .query(
                "SELECT account, kind, overdraft, at, currency FROM policy_changes
                  ORDER BY change_id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| {
                (
                    Change {
                        account: r.get(0),
                        kind: r.get(1),
                        overdraft: r.get(2),
                        at: r.get(3),
                    },
                    r.get(4),
                )
            }),
    )
}

engine_tests! {
    both: [],
    postgres: [
        bank_on_a_server_with_parallel_workers_kills_and_a_crash,
    ],
}
