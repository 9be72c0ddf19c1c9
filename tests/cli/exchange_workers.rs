//! Exchanges among concurrent PostgreSQL processes.
//!
//! Settled by several workers at once: many pairs
//! through a few desks, queued by concurrent batches, a few cancelled by
//! either leg, then settled by two processes of four workers each. The
//! stored rows are held to a model: every pair's legs decided alike (status,
//! reason, instant and settle batch), each outcome and each balance per
//! currency what deciding in `tx_id` order gives, and nothing left waiting.
//!
//! The workload is made so that the order in which credits land cannot
//! change an outcome: users pay PHP and are paid USD, desks pay USD and are
//! paid PHP, and JPY moves from payers to payees only. Each figure that can
//! refuse a transfer therefore moves only by its own source's transfers,
//! which every worker decides in `tx_id` order.
//!
//! Cancelled, by either leg, while workers settle: each pair is cancelled
//! whole or decided whole, and a pair decided after a cancel of an older
//! one of its parties never saw that one's money move.
//!
//! Queued under a key another process takes meanwhile: the line is
//! answered from that process's exchange, and no leg of its own is left.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;

use crate::common::{Rng, Sandbox, seed, shapes};

const USERS: usize = 24;
const DESKS: usize = 3;
/// Users below this pay JPY to the others.
const PAYERS: usize = USERS / 2;

/// The default currency's id.
const PHP: i16 = 0;

/// Each account's balance in each currency, by (account, currency id).
type Balances = BTreeMap<(i64, i16), i64>;

/// Each transfer's status and reason, by tx_id.
type Outcomes = BTreeMap<i64, (String, Option<String>)>;

/// A transfer as stored.
#[derive(Debug, Clone)]
struct Row {
    tx_id: i64,
    src: i64,
    dst: i64,
    amount: i64,
    currency: i16,
    pair: Option<i64>,
    status: String,
    reason: Option<String>,
    settled_at: Option<i64>,
    batch: Option<i64>,
}

fn rows(s: &Sandbox) -> Vec<Row> {
    s.postgres()
        .query(
            "SELECT tx_id, src, dst, amount, currency, pair_tx_id, status, reason, settled_at,
                    settle_batch
               FROM transfers ORDER BY tx_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| Row {
            tx_id: r.get(0),
            src: r.get(1),
            dst: r.get(2),
            amount: r.get(3),
            currency: r.get(4),
            pair: r.get(5),
            status: r.get(6),
            reason: r.get(7),
            settled_at: r.get(8),
            batch: r.get(9),
        })
        .collect()
}

/// Every account's balance in every currency, as stored.
fn stored_balances(s: &Sandbox) -> Balances {
    let mut client = s.postgres();
    let mut all: Balances = client
        .query("SELECT id, balance FROM accounts", &[])
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), PHP), r.get(1)))
        .collect();
    for r in client
        .query("SELECT account, currency, balance FROM balances", &[])
        .unwrap()
    {
        all.insert((r.get(0), r.get(1)), r.get(2));
    }
    all.retain(|_, balance| *balance != 0);
    all
}

fn ledger() -> (Sandbox, HashMap<String, i64>) {
    let s = Sandbox::new();
    let mut deposits = String::new();
    for u in 0..USERS {
        s.ok(&[
            "create-user",
            &format!("u{u}"),
            &format!("u{u}@example.com"),
        ]);
        deposits.push_str(&format!(
            "{{\"src\":null,\"dst\":\"u{u}\",\"amount\":\"40\"}}\n"
        ));
        if u < PAYERS {
            deposits.push_str(&format!(
                "{{\"src\":null,\"dst\":\"u{u}\",\"amount\":\"30\",\"currency\":\"JPY\"}}\n"
            ));
        }
    }
    for d in 0..DESKS {
        s.ok(&[
            "create-user",
            &format!("d{d}"),
            &format!("d{d}@example.com"),
        ]);
        deposits.push_str(&format!(
            "{{\"src\":null,\"dst\":\"d{d}\",\"amount\":\"150\",\"currency\":\"USD\"}}\n"
        ));
    }
    // A ledger is made by its first user.
    s.ok(&["currency", "add", "USD", "--scale", "2"]);
    s.ok(&["currency", "add", "JPY", "--scale", "0"]);
    let path = s.dir.path().join("deposits.jsonl");
    std::fs::write(&path, deposits).unwrap();
    s.ok(&["-q", "transfer", "--batch", path.to_str().unwrap()]);
    s.ok(&["settle"]);
    let ids = s
        .postgres()
        .query("SELECT name, id FROM accounts WHERE id <> 0", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    (s, ids)
}

/// A batch of exchanges (two in three lines) and JPY transfers, in small
/// chunks, so that concurrent batches interleave their ids.
fn batch(rng: &mut Rng, lines: usize) -> String {
    let mut text = String::new();
    for _ in 0..lines {
        if rng.below(3) < 2 {
            let user = rng.below(USERS as u64);
            let desk = rng.below(DESKS as u64);
            text.push_str(&format!(
                "{{\"exchange\":true,\"src\":\"u{user}\",\"via\":\"d{desk}\",\"amount\":\"{}\",\"currency\":\"PHP\",\"for_amount\":\"{}\",\"for_currency\":\"USD\"}}\n",
                1 + rng.below(8),
                1 + rng.below(4),
            ));
        } else {
            let payer = rng.below(PAYERS as u64);
            let payee = PAYERS as u64 + rng.below((USERS - PAYERS) as u64);
            text.push_str(&format!(
                "{{\"src\":\"u{payer}\",\"dst\":\"u{payee}\",\"amount\":\"{}\",\"currency\":\"JPY\"}}\n",
                1 + rng.below(6),
            ));
        }
    }
    text
}

/// Decides the stored rows in `tx_id` order, a pair at its first leg, from
/// the balances before them; returns each transfer's status and reason,
/// and the balances after.
fn model(rows: &[Row], mut balances: Balances) -> (Outcomes, Balances) {
    let by_id: HashMap<i64, &Row> = rows.iter().map(|r| (r.tx_id, r)).collect();
    let mut decided = BTreeMap::new();
    let fits = |balances: &Balances, r: &Row| {
        balances.get(&(r.src, r.currency)).copied().unwrap_or(0) >= r.amount
    };
    let apply = |balances: &mut Balances, r: &Row| {
        *balances.entry((r.src, r.currency)).or_default() -= r.amount;
        *balances.entry((r.dst, r.currency)).or_default() += r.amount;
    };
    for r in rows.iter().filter(|r| r.status != "CANCELLED") {
        if decided.contains_key(&r.tx_id) {
            continue;
        }
        let legs: Vec<&Row> = match r.pair {
            None => vec![r],
            Some(pair) => vec![r, by_id[&pair]],
        };
        let outcome = if legs.iter().all(|leg| fits(&balances, leg)) {
            for leg in &legs {
                apply(&mut balances, leg);
            }
            ("COMPLETED".to_string(), None)
        } else {
            ("FAILED".to_string(), Some("insufficient_funds".to_string()))
        };
        for leg in legs {
            decided.insert(leg.tx_id, outcome.clone());
        }
    }
    balances.retain(|_, balance| *balance != 0);
    (decided, balances)
}

fn pairs_settled_by_parallel_workers_are_decided_alike_and_as_the_model_says() {
    let seed = seed();
    let mut rng = Rng(seed);
    let (s, ids) = ledger();
    let start = stored_balances(&s);
    let queued_before = rows(&s).len();

    // Three batches queued at once.
    let files: Vec<_> = (0..3)
        .map(|i| {
            let path = s.dir.path().join(format!("batch{i}.jsonl"));
            std::fs::write(&path, batch(&mut rng, 250)).unwrap();
            path
        })
        .collect();
    let queuing: Vec<_> = files
        .iter()
        .map(|path| {
            s.process(&[
                "-q",
                "transfer",
                "--batch",
                path.to_str().unwrap(),
                "--chunk-size",
                "7",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut child in queuing {
        assert!(child.wait().unwrap().success(), "seed {seed}");
    }
    let queued: Vec<Row> = rows(&s).split_off(queued_before);
    let legs: Vec<&Row> = queued.iter().filter(|r| r.pair.is_some()).collect();
    assert!(legs.len() > 300, "seed {seed}: {} legs queued", legs.len());
    let by_id: HashMap<i64, &Row> = queued.iter().map(|r| (r.tx_id, r)).collect();
    for leg in &legs {
        let other = by_id[&leg.pair.unwrap()];
        assert_eq!(other.pair, Some(leg.tx_id), "seed {seed}: {leg:?}");
        assert_eq!((other.src, other.dst), (leg.dst, leg.src), "seed {seed}");
        // No transfer naming either party took an id between the legs.
        let (first, second) = (leg.tx_id.min(other.tx_id), leg.tx_id.max(other.tx_id));
        let between = queued.iter().find(|r| {
            r.tx_id > first
                && r.tx_id < second
                && [r.src, r.dst]
                    .iter()
                    .any(|party| *party == leg.src || *party == leg.dst)
        });
        assert!(
            between.is_none(),
            "seed {seed}: {between:?} between {first} and {second}"
        );
    }

    // A few exchanges cancelled, by either leg.
    let mut asked = std::collections::HashSet::new();
    for leg in legs.iter().step_by(37) {
        if !asked.insert(leg.tx_id.min(leg.pair.unwrap())) {
            continue;
        }
        let cancelled: shapes::Transfer = s.json(&["cancel", &leg.tx_id.to_string()]);
        assert_eq!(cancelled.status, "CANCELLED", "seed {seed}");
    }
    let queued: Vec<Row> = rows(&s).split_off(queued_before);
    let cancelled = queued.iter().filter(|r| r.status == "CANCELLED").count();
    assert_eq!(
        cancelled,
        2 * asked.len(),
        "seed {seed}: both legs of each cancelled"
    );

    // Two settle processes of four workers each, in small batches.
    let settling: Vec<_> = (0..2)
        .map(|_| {
            s.process(&["--json", "settle", "--workers", "4", "--batch-size", "5"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut processed = 0;
    for child in settling {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "seed {seed}: {out:?}");
        let settled: shapes::Settled = serde_json::from_slice(&out.stdout).unwrap();
        processed += settled.processed;
    }
    let settled: Vec<Row> = rows(&s).split_off(queued_before);
    assert!(
        settled.iter().all(|r| r.status != "PENDING"),
        "seed {seed}: the queue did not drain"
    );
    assert_eq!(
        processed as usize,
        queued.len() - cancelled,
        "seed {seed}: each transfer decided once"
    );

    let by_id: HashMap<i64, &Row> = settled.iter().map(|r| (r.tx_id, r)).collect();
    for leg in settled.iter().filter(|r| r.pair.is_some()) {
        let other = by_id[&leg.pair.unwrap()];
        assert_eq!(
            (&leg.status, &leg.reason, leg.settled_at, leg.batch),
            (&other.status, &other.reason, other.settled_at, other.batch),
            "seed {seed}: legs {} and {} decided apart",
            leg.tx_id,
            other.tx_id
        );
    }
    let (outcomes, balances) = model(&settled, start);
    for r in settled.iter().filter(|r| r.status != "CANCELLED") {
        assert_eq!(
            (&r.status, &r.reason),
            (&outcomes[&r.tx_id].0, &outcomes[&r.tx_id].1),
            "seed {seed}: transfer {} ({r:?})",
            r.tx_id
        );
    }
    let completed_pairs = settled
        .iter()
        .filter(|r| r.pair.is_some_and(|p| p > r.tx_id) && r.status == "COMPLETED")
        .count();
    let failed_pairs = settled
        .iter()
        .filter(|r| r.pair.is_some_and(|p| p > r.tx_id) && r.status == "FAILED")
        .count();
    assert!(
        completed_pairs > 20 && failed_pairs > 20,
        "seed {seed}: {completed_pairs} pairs completed, {failed_pairs} failed"
    );
    assert_eq!(stored_balances(&s), balances, "seed {seed}");
    // Each currency sums to zero and nothing is left pending.
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok, "seed {seed}: {report:?}");
    let desk = ids["d0"];
    assert!(
        balances.contains_key(&(desk, PHP)),
        "seed {seed}: desk d0 was never paid"
    );
}

/// Workers settle while another process cancels every fifth leg, first
/// and second legs alike. A cancel takes both legs' row locks in the order
/// settlement takes them, so each pair is cancelled whole or decided whole,
/// and nothing deadlocks into an error.
fn cancels_racing_parallel_workers_cancel_or_decide_each_pair_whole() {
    let seed = seed();
    let mut rng = Rng(seed);
    let (s, _) = ledger();
    let start = stored_balances(&s);
    let queued_before = rows(&s).len();
    let path = s.dir.path().join("batch.jsonl");
    std::fs::write(&path, batch(&mut rng, 300)).unwrap();
    s.ok(&["-q", "transfer", "--batch", path.to_str().unwrap()]);
    let queued: Vec<Row> = rows(&s).split_off(queued_before);
    let targets: Vec<i64> = queued
        .iter()
        .filter(|r| r.pair.is_some())
        .step_by(5)
        .map(|r| r.tx_id)
        .collect();
    let settling = s
        .process(&["--json", "settle", "--workers", "4", "--batch-size", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cancelled = 0;
    for tx_id in &targets {
        let out = s
            .process(&["--json", "cancel", &tx_id.to_string()])
            .output()
            .unwrap();
        if out.status.success() {
            cancelled += 1;
            continue;
        }
        let error: serde_json::Value = serde_json::from_slice(&out.stderr)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {out:?}"));
        assert_eq!(
            error["error"]["code"], "not_pending",
            "seed {seed}: {error}"
        );
    }
    let out = settling.wait_with_output().unwrap();
    assert!(out.status.success(), "seed {seed}: {out:?}");
    s.ok(&["settle"]);
    let settled: Vec<Row> = rows(&s).split_off(queued_before);
    assert!(settled.iter().all(|r| r.status != "PENDING"), "seed {seed}");
    let by_id: HashMap<i64, &Row> = settled.iter().map(|r| (r.tx_id, r)).collect();
    for leg in settled.iter().filter(|r| r.pair.is_some()) {
        let other = by_id[&leg.pair.unwrap()];
        assert_eq!(
            (&leg.status, &leg.reason, leg.settled_at, leg.batch),
            (&other.status, &other.reason, other.settled_at, other.batch),
            "seed {seed}: legs {} and {} decided apart",
            leg.tx_id,
            other.tx_id
        );
    }
    let whole = settled.iter().filter(|r| r.status == "CANCELLED").count();
    assert_eq!(
        whole,
        2 * cancelled,
        "seed {seed}: each cancel took both legs"
    );
    let (outcomes, balances) = model(&settled, start);
    for r in settled.iter().filter(|r| r.status != "CANCELLED") {
        assert_eq!(
            (&r.status, &r.reason),
            (&outcomes[&r.tx_id].0, &outcomes[&r.tx_id].1),
            "seed {seed}: transfer {}",
            r.tx_id
        );
    }
    assert_eq!(stored_balances(&s), balances, "seed {seed}");
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok, "seed {seed}: {report:?}");
}

/// A leg left PENDING without its pair (the other decided by hand) is a
/// damaged ledger: workers stop on it with `integrity` rather than decide
/// it alone or wait for ever on a lane it holds back.
fn workers_stop_at_a_leg_waiting_without_its_pair() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.ok(&["create-user", "desk", "desk@example.com"]);
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["deposit", "desk", "1", "--currency", "BTC"]);
    s.ok(&["settle"]);
    let queued: serde_json::Value = s.json(&[
        "exchange", "alice", "10", "PHP", "--for", "0.1", "BTC", "--via", "desk",
    ]);
    let (first, second) = (
        queued["tx_id"].as_i64().unwrap(),
        queued["pair_tx_id"].as_i64().unwrap(),
    );
    for (stray, decided) in [(first, second), (second, first)] {
        s.tamper(&format!(
            "UPDATE transfers SET status = 'CANCELLED' WHERE tx_id = {decided};
             UPDATE transfers SET status = 'PENDING' WHERE tx_id = {stray}"
        ));
        let message = s.fails(&["settle", "--workers", "4"], "integrity", 7);
        assert!(message.contains(&format!("leg {stray} ")), "{message}");
        let left: String = s
            .postgres()
            .query_one("SELECT status FROM transfers WHERE tx_id = $1", &[&stray])
            .unwrap()
            .get(0);
        assert_eq!(left, "PENDING");
    }
}

/// Another program holds an uncommitted exchange under key K; `wallet
/// exchange` with the same fields and key waits on the key, loses it when
/// the other commits, and replays the other's pair: its own second leg,
/// which has no key to lose, must not stay behind alone.
fn an_exchange_that_loses_its_key_to_another_process_replays_that_pair_and_leaves_no_leg() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.ok(&["create-user", "desk", "desk@example.com"]);
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    let mut client = s.postgres();
    let id = |client: &mut ::postgres::Client, name: &str| -> i64 {
        client
            .query_one("SELECT id FROM accounts WHERE name = $1", &[&name])
            .unwrap()
            .get(0)
    };
    let (alice, desk) = (id(&mut client, "alice"), id(&mut client, "desk"));
    let mut other = s.postgres();
    let ids: Vec<i64> = other
        .query(
            "SELECT nextval('transfers_tx_id_seq') FROM generate_series(1, 2)",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (a, b) = (ids[0], ids[1]);
    other
        .batch_execute(&format!(
            "BEGIN;
             INSERT INTO transfers (tx_id, lane, src, dst, amount, status, idem_key, created_at,
                                    currency, pair_tx_id)
             VALUES ({a}, {alice} % 1024, {alice}, {desk}, 1000, 'PENDING', 'K', 0, 0, {b}),
                    ({b}, {desk} % 1024, {desk}, {alice}, 100000, 'PENDING', NULL, 0, 1, {a})"
        ))
        .unwrap();
    let asked = s
        .process(&[
            "--json", "exchange", "alice", "10.00", "PHP", "--for", "0.001", "BTC", "--via",
            "desk", "--id", "K",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its insert waits on the other program's key; then that one commits.
    std::thread::sleep(std::time::Duration::from_millis(500));
    other.batch_execute("COMMIT").unwrap();
    let out = asked.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&answer["tx_id"], &answer["pair_tx_id"], &answer["replayed"]),
        (&a.into(), &b.into(), &true.into()),
        "{answer}"
    );
    let left: Vec<i64> = client
        .query("SELECT tx_id FROM transfers ORDER BY tx_id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec![a, b], "only the other program's pair is stored");
}

engine_tests! {
    both: [],
    postgres: [
        an_exchange_that_loses_its_key_to_another_process_replays_that_pair_and_leaves_no_leg,
        cancels_racing_parallel_workers_cancel_or_decide_each_pair_whole,
        pairs_settled_by_parallel_workers_are_decided_alike_and_as_the_model_says,
        workers_stop_at_a_leg_waiting_without_its_pair,
    ],
}
