//! The bank test on PostgreSQL: writers on many connections, settle
//! workers in parallel (several `settle --watch --workers 2` processes and
//! short settles killed with SIGKILL, some watchers killed too), and one
//! crash of the server itself mid-run, while an operator freezes and
//! unfreezes users and changes their overdraft limits (half the users
//! start with one), then a full audit: [`audit_decisions`] replays each
//! account's decisions in the order it saw them under the policy in force
//! at each (`policy_changes` against `settled_at`).
//!
//! The seed is printed; `WALLET_BANK_SEED=<seed>` replays the same choices
//! (the interleaving of processes is up to the machine).

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{Rng, Sandbox, seed, shapes};
use crate::engine::{audit_decisions, start};
use crate::pgserver::PgServer;
use crate::policy_model;

const USERS: usize = 8;
const WRITERS: usize = 4;
const OPS_PER_WRITER: usize = 120;
const WATCHERS: usize = 3;
const KILL_ATTEMPTS: usize = 30;

fn name(user: usize) -> String {
    format!("user{user}")
}

fn money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", minor.abs() / 100, minor.abs() % 100)
}

/// What a writer asked for: `None` on a side is the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    src: Option<usize>,
    dst: Option<usize>,
    amount: i64,
}

#[derive(Default)]
struct Told {
    queued: BTreeMap<i64, Request>,
    cancelled: BTreeSet<i64>,
}

#[derive(Default)]
struct Counters {
    processes: AtomicU64,
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
    let mut mine: Vec<i64> = Vec::new();
    for op in 0..OPS_PER_WRITER {
        let roll = rng.below(100);
        if roll < 10 && !mine.is_empty() {
            let tx_id = *mine.last().unwrap();
            let out = bank.run(&["cancel", &tx_id.to_string()], counters);
            if out.status.success() {
                told.lock().unwrap().cancelled.insert(tx_id);
            } else {
                assert_eq!(
                    out.status.code(),
                    Some(4),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                // A cancel whose answer was lost and then retried finds its
                // own work done.
                let got: shapes::Transfer = serde_json::from_slice(
                    &bank
                        .run(&["get-transfer", &tx_id.to_string()], counters)
                        .stdout,
                )
                .unwrap();
                if got.status == "CANCELLED" {
                    told.lock().unwrap().cancelled.insert(tx_id);
                }
            }
            continue;
        }
        let ceiling = if rng.below(2) == 0 { 5_000 } else { 40_000 };
        let amount = 1 + rng.below(ceiling) as i64;
        let user = |rng: &mut Rng| rng.below(USERS as u64) as usize;
        let request = match roll {
            10..=24 => Request {
                src: None,
                dst: Some(user(&mut rng)),
                amount,
            },
            25..=34 => Request {
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
        args.extend([money(amount), "--id".into(), key]);
        let borrowed: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = bank.run(&borrowed, counters);
        assert!(
            out.status.success(),
            "{borrowed:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let queued: shapes::Queued = serde_json::from_slice(&out.stdout).unwrap();
        let previous = told.lock().unwrap().queued.insert(queued.tx_id, request);
        assert!(
            previous.is_none(),
            "tx_id {} handed out twice",
            queued.tx_id
        );
        mine.push(queued.tx_id);
    }
}

/// The operator: until the writers are done, a policy change at a random
/// instant about every tenth of a second; returns how many it made.
fn operator(bank: &Bank, mut rng: Rng, done: &AtomicBool, counters: &Counters) -> usize {
    let mut frozen = [false; USERS];
    let mut made = 0;
    while !done.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(40 + rng.below(100)));
        let args = policy_model::next_change(&mut rng, &mut frozen);
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
    let counters = Counters::default();
    for user in 0..USERS {
        let amount = 10_000 + rng.below(40_000) as i64;
        let (who, email) = (name(user), format!("{}@example.com", name(user)));
        let limit = money(10_000 + rng.below(20_000) as i64);
        let mut create = vec!["create-user", &who, &email];
        if user % 2 == 0 {
            create.extend(["--overdraft", &limit]);
        }
        let out = bank.run(&create, &counters);
        assert!(out.status.success());
        let out = bank.run(
            &[
                "deposit",
                &name(user),
                &money(amount),
                "--id",
                &format!("fund{user}"),
            ],
            &counters,
        );
        assert!(out.status.success());
    }
    assert!(bank.run(&["settle"], &counters).status.success());
    let db = |server: &PgServer| {
        let mut client = server.connect("bank");
        client.batch_execute("SET search_path = wallet").unwrap();
        client
    };
    let before = start(&mut db(&server));

    let told = Mutex::new(Told::default());
    let watchers = Mutex::new((0..WATCHERS).map(|_| watcher(&bank)).collect::<Vec<_>>());
    let writers_done = AtomicBool::new(false);
    let (crashed, operated) = thread::scope(|scope| {
        let killer_rng = Rng(rng.next());
        let killer = scope.spawn(|| killer(&bank, killer_rng, &watchers, &counters));
        let operator_rng = Rng(rng.next());
        let operator = scope.spawn(|| operator(&bank, operator_rng, &writers_done, &counters));
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
        (queued_before_crash, operator.join().expect("operator"))
    });
    // The watchers drain what is left, then stop cleanly on SIGTERM.
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
    let audited = audit_decisions(&mut db(&server), &before);

    let told = told.into_inner().unwrap();
    let user = |id: i64| (id != 0).then(|| usize::try_from(id - 1).unwrap());
    let stored: BTreeMap<i64, (Request, String)> = db(&server)
        .query(
            "SELECT tx_id, src, dst, amount, status FROM transfers ORDER BY tx_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let request = Request {
                src: user(r.get(1)),
                dst: user(r.get(2)),
                amount: r.get(3),
            };
            (r.get(0), (request, r.get(4)))
        })
        .collect();
    assert_eq!(
        stored.len(),
        told.queued.len() + USERS,
        "every stored transfer was either funding or reported to a writer, once"
    );
    for (tx_id, request) in &told.queued {
        let (row, status) = stored
            .get(tx_id)
            .unwrap_or_else(|| panic!("tx_id {tx_id} reported but missing"));
        assert_eq!(row, request, "transfer {tx_id} is what was asked");
        assert_eq!(
            status == "CANCELLED",
            told.cancelled.contains(tx_id),
            "transfer {tx_id}: {status}"
        );
    }
    let mut balances = [0i64; USERS];
    let mut outside = 0i64;
    for (request, status) in stored.values() {
        if status != "COMPLETED" {
            continue;
        }
        match request.src {
            Some(src) => balances[src] -= request.amount,
            None => outside += request.amount,
        }
        match request.dst {
            Some(dst) => balances[dst] += request.amount,
            None => outside -= request.amount,
        }
    }
    for (i, balance) in balances.iter().enumerate() {
        let shown: shapes::User =
            serde_json::from_slice(&bank.run(&["get-user", &name(i)], &counters).stdout).unwrap();
        assert_eq!(shown.balance, money(*balance), "{}", name(i));
    }
    assert_eq!(
        balances.iter().sum::<i64>(),
        outside,
        "money is neither made nor lost"
    );
    let failed = stored.values().filter(|(_, s)| s == "FAILED").count();
    println!(
        "bank (PostgreSQL): seed {seed}: {} processes, {} transfers ({} queued before the crash), {failed} failed ({} account_frozen), {} into an overdraft, {} cancelled, {operated} policy changes while running, {} kills, {} retries after the crash or a lost answer, {:.1?}",
        counters.processes.load(Ordering::Relaxed),
        stored.len(),
        crashed,
        audited.frozen_failed,
        audited.into_overdraft,
        told.cancelled.len(),
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
    assert!(
        counters.retries.load(Ordering::Relaxed) > 0,
        "the crash was felt"
    );
}

engine_tests! {
    both: [],
    postgres: [
        bank_on_a_server_with_parallel_workers_kills_and_a_crash,
    ],
}
