//! The bank across a failover: writers queue keyed transfers and `settle
//! --watch --workers 2` processes decide them, all through a URL naming a
//! primary and its streaming standby. After the k-th acknowledged request
//! the primary is killed (SIGKILL, every process of it) and left dead, and
//! the standby is promoted. Then the audit, on the new primary.
//!
//! With synchronous replication nothing acknowledged may be lost. The
//! opposite run shows that the audit would see a loss: with asynchronous
//! replication and the standby's WAL receiver frozen before the kill,
//! acknowledged commits exist only on the dead primary, and the audit must
//! name them.
//!
//! The seed fixes the workload and k (for the opposite run, the request
//! after which the WAL receiver freezes); `WALLET_BANK_SEED=<seed>` replays
//! them (the interleaving of processes is up to the machine).

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{Rng, seed, shapes};
use crate::engine::{audit_decisions, start};
use crate::engines::pgcluster::{PgCluster, Replication};

const USERS: usize = 6;
const WRITERS: usize = 4;
const PER_WRITER: usize = 60;
const WATCHERS: usize = 2;
/// A process that has not answered by then is taken as lost with its
/// connection: it is killed and its request sent again.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one request may go unanswered, retries included.
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);

fn name(user: usize) -> String {
    format!("user{user}")
}

fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// What a writer asked for: `None` on a side is the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    src: Option<usize>,
    dst: Option<usize>,
    amount: i64,
}

/// One request and the answer it got.
struct Acked {
    key: String,
    tx_id: i64,
    request: Request,
    /// Answered before the kill began: it was committed on the primary
    /// that died, and acknowledged.
    before_kill: bool,
}

#[derive(Default)]
struct Tally {
    processes: AtomicU64,
    retries: AtomicU64,
    /// Requests under way as the kill began and answered after it, whether
    /// they were sent again or the process itself waited for the new
    /// primary.
    spanned: AtomicU64,
    timeouts: AtomicU64,
    /// The error codes that were retried, and how often.
    codes: Mutex<BTreeMap<String, u64>>,
}

struct Bank {
    dir: tempfile::TempDir,
    url: String,
    acks: AtomicUsize,
    killing: AtomicBool,
    acked: Mutex<Vec<Acked>>,
    tally: Tally,
}

impl Bank {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wallet"));
        cmd.current_dir(self.dir.path())
            .env_remove("WALLET_DB")
            .env_remove("WALLET_LOCK_TIMEOUT")
            .env("NO_COLOR", "1")
            .args(["--db", &self.url, "--json", "--lock-timeout", "5000"])
            .args(args);
        cmd
    }

    /// One run of the binary, killed if it does not end in time (`None`).
    fn once(&self, args: &[&str]) -> Option<Output> {
        self.tally.processes.fetch_add(1, Ordering::Relaxed);
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run wallet");
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
        Some(child.wait_with_output().unwrap())
    }

    /// Runs a request until it has an answer: a server away or read-only
    /// (exit 6), an outcome unknown (exit 8) or no answer in time is sent
    /// again, the same, with the same key, so that a retry is exact.
    fn answer(&self, args: &[&str]) -> Output {
        let deadline = Instant::now() + REQUEST_DEADLINE;
        let began_before_the_kill = !self.killing.load(Ordering::SeqCst);
        loop {
            let last = match self.once(args) {
                None => {
                    self.tally.timeouts.fetch_add(1, Ordering::Relaxed);
                    "no answer in time".to_string()
                }
                Some(out) => {
                    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                    assert!(
                        !stderr.contains("panicked") && out.status.code() != Some(101),
                        "wallet {args:?} panicked: {stderr}"
                    );
                    if !matches!(out.status.code(), Some(6 | 8)) {
                        if began_before_the_kill && self.killing.load(Ordering::SeqCst) {
                            self.tally.spanned.fetch_add(1, Ordering::Relaxed);
                        }
                        return out;
                    }
                    let code = serde_json::from_slice::<serde_json::Value>(&out.stderr)
                        .ok()
                        .and_then(|e| e["error"]["code"].as_str().map(str::to_string))
                        .unwrap_or_else(|| "not JSON".to_string());
                    *self.tally.codes.lock().unwrap().entry(code).or_default() += 1;
                    stderr
                }
            };
            assert!(
                Instant::now() < deadline,
                "{args:?} had no answer in {REQUEST_DEADLINE:?}; the last: {last}"
            );
            self.tally.retries.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.answer(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn writer(bank: &Bank, id: usize, mut rng: Rng) {
    for op in 0..PER_WRITER {
        let roll = rng.below(100);
        let ceiling = if rng.below(2) == 0 { 5_000 } else { 30_000 };
        let amount = 1 + rng.below(ceiling) as i64;
        let user = |rng: &mut Rng| rng.below(USERS as u64) as usize;
        let request = match roll {
            0..=14 => Request {
                src: None,
                dst: Some(user(&mut rng)),
                amount,
            },
            15..=24 => Request {
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
        let out = bank.ok(&borrowed);
        // Read before the answer is counted: a request answered after the
        // kill began is not taken as acknowledged by the dead primary.
        let before_kill = !bank.killing.load(Ordering::SeqCst);
        let queued: shapes::Queued = serde_json::from_slice(&out.stdout).unwrap();
        bank.acked.lock().unwrap().push(Acked {
            key,
            tx_id: queued.tx_id,
            request,
            before_kill,
        });
        bank.acks.fetch_add(1, Ordering::SeqCst);
    }
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
            .open(bank.dir.path().join("watchers.log"))
            .unwrap(),
    )
    .spawn()
    .map(Reaped)
    .expect("spawn settle --watch")
}

/// Prints the seed and k when the test fails.
struct Replay {
    seed: u64,
    k: usize,
}

impl Drop for Replay {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "failover: FAILED with seed {} and k {} (replay with WALLET_BANK_SEED={})",
                self.seed, self.k, self.seed
            );
        }
    }
}

/// What the audit found on the new primary.
#[derive(Default, Debug)]
struct Audit {
    /// Requests answered before the kill that the new primary does not
    /// hold as they were answered.
    lost: Vec<String>,
    /// Every other broken promise.
    wrong: Vec<String>,
}

/// How the run ended, for the report line.
struct Summary {
    seed: u64,
    k: usize,
    acked_before_kill: usize,
    transfers: usize,
    retries: u64,
    spanned: u64,
    elapsed: Duration,
}

/// Freezes the standby's WAL receiver and waits until commits the primary
/// acknowledged after that can no longer have reached it: the primary has
/// stopped sending (its socket to the standby is full), and at least five
/// requests were answered after the primary had written past what it sent.
fn starve_the_standby(cluster: &PgCluster, bank: &Bank) -> u32 {
    let receiver = cluster.stop_wal_receiver();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut samples: Vec<(i64, usize)> = Vec::new();
    let mut last_sent = None;
    loop {
        let (written, sent) = cluster.primary_wal();
        let acks = bank.acks.load(Ordering::SeqCst);
        let stalled = sent.is_some() && sent == last_sent;
        if let Some(sent) = sent.filter(|_| stalled)
            && samples
                .iter()
                .any(|(at, then)| *at > sent && acks >= then + 5)
        {
            return receiver;
        }
        if Instant::now() > deadline {
            eprintln!("failover: the standby was not starved in time; killing anyway");
            return receiver;
        }
        samples.push((written, acks));
        last_sent = sent;
        thread::sleep(Duration::from_millis(200));
    }
}

/// The ledger on the primary (`true`) or the standby, read directly.
fn ledger(cluster: &PgCluster, primary: bool) -> ::postgres::Client {
    let mut client = cluster.connect_to(primary, "bank");
    client.batch_execute("SET search_path = wallet").unwrap();
    client
}

fn bank_across_failover(replication: Replication) -> (Audit, Summary) {
    let seed = seed();
    let mut rng = Rng(seed);
    let total = WRITERS * PER_WRITER;
    // With an asynchronous standby, k is where its WAL receiver freezes;
    // the kill comes once the primary's socket to it is full, tens of
    // requests later, which must still be to come.
    let k = match replication {
        Replication::Synchronous => total / 4 + rng.below(total as u64 / 2) as usize,
        Replication::Asynchronous => total / 6 + rng.below(total as u64 / 4) as usize,
    };
    let _replay = Replay { seed, k };
    eprintln!(
        "failover ({replication:?}): seed {seed}, kill after acknowledged request {k} of {total} (replay with WALLET_BANK_SEED={seed})"
    );
    let started = Instant::now();
    let mut cluster = PgCluster::start(replication);
    cluster.psql_primary("postgres", "CREATE DATABASE bank");
    let bank = Bank {
        dir: tempfile::tempdir().unwrap(),
        url: cluster.url("bank", "wallet"),
        acks: AtomicUsize::new(0),
        killing: AtomicBool::new(false),
        acked: Mutex::new(Vec::new()),
        tally: Tally::default(),
    };
    for user in 0..USERS {
        bank.ok(&[
            "create-user",
            &name(user),
            &format!("{}@example.com", name(user)),
        ]);
        let amount = 20_000 + rng.below(40_000) as i64;
        bank.ok(&[
            "deposit",
            &name(user),
            &money(amount),
            "--id",
            &format!("fund{user}"),
        ]);
    }
    bank.ok(&["settle"]);
    let before = start(&mut ledger(&cluster, true));

    let watchers: Vec<Reaped> = (0..WATCHERS).map(|_| watcher(&bank)).collect();
    thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                let writer_rng = Rng(rng.next());
                let bank = &bank;
                scope.spawn(move || writer(bank, id, writer_rng))
            })
            .collect();
        while bank.acks.load(Ordering::SeqCst) < k {
            assert!(
                writers.iter().any(|w| !w.is_finished()),
                "the writers stopped before request {k}"
            );
            thread::sleep(Duration::from_millis(2));
        }
        let frozen = match replication {
            Replication::Synchronous => None,
            Replication::Asynchronous => Some(starve_the_standby(&cluster, &bank)),
        };
        bank.killing.store(true, Ordering::SeqCst);
        cluster.kill_primary();
        if let Some(receiver) = frozen {
            // What the receiver never read died with the primary's socket.
            cluster.continue_wal_receiver(receiver);
        }
        // The time an operator or Patroni takes to decide.
        thread::sleep(Duration::from_millis(300));
        cluster.promote_standby();
        for handle in writers {
            handle.join().expect("writer");
        }
    });

    // The watchers, still running, drain the queue on the new primary.
    let mut audit = Audit::default();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let left: i64 = ledger(&cluster, false)
            .query_one(
                "SELECT count(*) FROM transfers WHERE status = 'PENDING'",
                &[],
            )
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            audit
                .wrong
                .push(format!("the watchers left {left} transfers PENDING"));
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let watchers_log = || std::fs::read_to_string(bank.dir.path().join("watchers.log")).unwrap();
    for mut child in watchers {
        if let Some(status) = child.0.try_wait().unwrap() {
            audit.wrong.push(format!(
                "a watcher exited across the failover with {status:?}; the watchers' stderr: {}",
                watchers_log()
            ));
            continue;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status();
        let status = child.0.wait().unwrap();
        if !status.success() {
            audit.wrong.push(format!(
                "a watcher stopped on SIGTERM with {status:?}; the watchers' stderr: {}",
                watchers_log()
            ));
        }
    }

    // What the watchers said on the way: a warning before each retry.
    let watcher_warnings = watchers_log().lines().count();
    let verified = bank.answer(&["verify"]);
    if !verified.status.success() {
        audit.wrong.push(format!(
            "verify failed on the new primary: {}",
            String::from_utf8_lossy(&verified.stderr)
        ));
    }
    audit_decisions(&mut ledger(&cluster, false), &before);

    let user = |id: i64| (id != 0).then(|| usize::try_from(id - 1).unwrap());
    let stored: BTreeMap<i64, (Request, String, Option<String>)> = ledger(&cluster, false)
        .query(
            "SELECT tx_id, src, dst, amount, status, idem_key FROM transfers ORDER BY tx_id",
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
            (r.get(0), (request, r.get(4), r.get(5)))
        })
        .collect();
    let acked = std::mem::take(&mut *bank.acked.lock().unwrap());
    let mut reported: BTreeMap<i64, &str> = BTreeMap::new();
    for a in &acked {
        if let Some(other) = reported.insert(a.tx_id, &a.key) {
            audit.wrong.push(format!(
                "tx_id {} reported for both {other} and {}",
                a.tx_id, a.key
            ));
        }
        let held = stored.get(&a.tx_id);
        let as_answered = held.is_some_and(|(request, _, key)| {
            *request == a.request && key.as_deref() == Some(a.key.as_str())
        });
        if as_answered {
            continue;
        }
        let what = format!(
            "{} answered with tx_id {} ({:?}); the new primary holds {:?}",
            a.key, a.tx_id, a.request, held
        );
        if a.before_kill {
            audit.lost.push(what);
        } else {
            // Answered while the kill was under way: by either server.
            audit
                .wrong
                .push(format!("as the primary was killed, {what}"));
        }
    }
    let unreported = stored
        .iter()
        .filter(|(tx_id, (_, _, key))| {
            !reported.contains_key(tx_id) && !key.as_deref().is_some_and(|k| k.starts_with("fund"))
        })
        .count();
    if unreported > 0 {
        audit.wrong.push(format!(
            "{unreported} transfers stored that no writer was told of"
        ));
    }
    let mut balances = [0i64; USERS];
    for (request, status, _) in stored.values() {
        if status != "COMPLETED" {
            continue;
        }
        if let Some(src) = request.src {
            balances[src] -= request.amount;
        }
        if let Some(dst) = request.dst {
            balances[dst] += request.amount;
        }
    }
    for (i, balance) in balances.iter().enumerate() {
        let shown: shapes::User =
            serde_json::from_slice(&bank.ok(&["get-user", &name(i)]).stdout).unwrap();
        if shown.balance != money(*balance) || *balance < 0 {
            audit.wrong.push(format!(
                "{}: shown {}, the model {}",
                name(i),
                shown.balance,
                money(*balance)
            ));
        }
    }
    let summary = Summary {
        seed,
        k,
        acked_before_kill: acked.iter().filter(|a| a.before_kill).count(),
        transfers: stored.len(),
        retries: bank.tally.retries.load(Ordering::Relaxed),
        spanned: bank.tally.spanned.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    };
    println!(
        "failover ({replication:?}): seed {seed}, k {k}: {} transfers, {} acknowledged before the kill, {} processes, {} retries ({:?}), {} under way across the kill, {} timeouts, {watcher_warnings} watcher warnings, {} lost, {} other findings, {:.1?}",
        summary.transfers,
        summary.acked_before_kill,
        bank.tally.processes.load(Ordering::Relaxed),
        bank.tally.retries.load(Ordering::Relaxed),
        bank.tally.codes.lock().unwrap(),
        summary.spanned,
        bank.tally.timeouts.load(Ordering::Relaxed),
        audit.lost.len(),
        audit.wrong.len(),
        summary.elapsed
    );
    if !audit.lost.is_empty() || !audit.wrong.is_empty() {
        println!("{audit:#?}");
    }
    (audit, summary)
}

fn no_acknowledged_transfer_is_lost_across_a_failover_to_a_synchronous_standby() {
    let (audit, summary) = bank_across_failover(Replication::Synchronous);
    assert!(
        audit.lost.is_empty() && audit.wrong.is_empty(),
        "seed {}, k {}: {audit:#?}",
        summary.seed,
        summary.k
    );
    assert!(summary.acked_before_kill >= summary.k);
    // A request sent again, or one that waited through the failover in its
    // own process: either way the failover fell among the writers' requests.
    assert!(
        summary.retries + summary.spanned > 0,
        "no request was under way across the failover"
    );
}

fn the_audit_sees_acknowledged_transfers_lost_with_an_asynchronous_standby_left_behind() {
    let (audit, summary) = bank_across_failover(Replication::Asynchronous);
    assert!(
        !audit.lost.is_empty(),
        "seed {}, k {}: the standby held everything acknowledged: the harness cannot see a loss",
        summary.seed,
        summary.k
    );
}

/// `wallet --db URL --json ARGS…`, its output whatever its status.
fn on(url: &str, lock_timeout: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wallet"));
    cmd.env_remove("WALLET_DB")
        .env_remove("WALLET_LOCK_TIMEOUT")
        .args(["--db", url, "--json", "--lock-timeout", lock_timeout])
        .args(args);
    cmd
}

fn ok_on(url: &str, args: &[&str]) -> serde_json::Value {
    let out = on(url, "5000", args).output().unwrap();
    assert!(out.status.success(), "{args:?} on {url}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// A hot standby answers every read and writes nothing; a write there is
/// `read_only` (exit 6); and a write through the two-host URL, sent while
/// the primary is dead and the standby not promoted yet, waits for a
/// server that takes writes within its `--lock-timeout`, then is made.
fn a_standby_serves_reads_refuses_writes_and_a_write_waits_out_its_promotion() {
    let mut cluster = PgCluster::start(Replication::Synchronous);
    cluster.psql_primary("postgres", "CREATE DATABASE books");
    let both = cluster.url("books", "wallet");
    let standby = cluster.standby_url("books", "wallet");
    ok_on(&both, &["create-user", "alice", "alice@example.com"]);
    ok_on(&both, &["create-user", "bob", "bob@example.com"]);
    ok_on(&both, &["deposit", "alice", "10"]);
    ok_on(&both, &["transfer", "alice", "bob", "4"]);
    ok_on(&both, &["settle"]);
    // A synchronous commit is on the standby's disk; it shows once replayed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while on(&standby, "5000", &["get-user", "bob"])
        .output()
        .map(|out| !String::from_utf8_lossy(&out.stdout).contains("\"4.00\""))
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the standby never showed bob's 4.00"
        );
        thread::sleep(Duration::from_millis(50));
    }
    for read in [
        &["get-user", "alice"][..],
        &["history", "alice"],
        &["get-transfer", "2"],
        &["users"],
        &["balances"],
        &["export"],
        &["verify"],
    ] {
        ok_on(&standby, read);
    }
    let out = on(&standby, "5000", &["deposit", "alice", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"read_only\""),
        "{out:?}"
    );
    cluster.kill_primary();
    let waiting = on(
        &both,
        "60000",
        &["deposit", "alice", "1", "--id", "after-the-kill"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    thread::sleep(Duration::from_millis(500));
    cluster.promote_standby();
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    ok_on(&both, &["settle"]);
    let alice = ok_on(&both, &["get-user", "alice"]);
    assert_eq!(alice["balance"], "7.00", "{alice}");
    assert_eq!(ok_on(&both, &["verify"])["ok"], true);
}

engine_tests! {
    both: [],
    postgres: [
        no_acknowledged_transfer_is_lost_across_a_failover_to_a_synchronous_standby,
        the_audit_sees_acknowledged_transfers_lost_with_an_asynchronous_standby_left_behind,
        a_standby_serves_reads_refuses_writes_and_a_write_waits_out_its_promotion,
    ],
}
