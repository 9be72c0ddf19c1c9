//! The PostgreSQL benchmark: `cargo bench --bench postgres [-- --users N --transfers N --batch N --runs N --repeat N]`.
//!
//! With `--against OTHER` (another build of `wallet`, of any schema
//! version: each build runs on users its own commands made), it measures
//! only this tree's binary beside OTHER,
//! interleaved run by run on one server: batch ingest and settle with one
//! worker (best of `--repeat`), and one `transfer` process (median of
//! `--runs`).
//!
//! Starts its own durable PostgreSQL server (`fsync` on, unix socket, as
//! the tests do) and measures, each beside a floor doing the same row work
//! through the same crate in the same run:
//! - ingest (`transfer --batch`) against a bare binary `COPY` into a
//!   staging table and the same `INSERT … SELECT` into the same schema;
//! - settle with 1, 2 and 4 workers against a set-based settle of the same
//!   rows (every transfer completed, balances moved by one update a batch);
//! - settle where every transfer names the external account (deposits and
//!   withdrawals only), with 1 and 4 workers;
//! - one `transfer` and one `get-user` process against a process that
//!   connects and runs one statement, each held to 1.5× it (the run ends
//!   with that table of goals).
//!
//! Then the same ingest, settle and single processes on a ledger file, so
//! the two engines are compared on one machine at one moment. Each
//! throughput figure is the best of `--repeat` runs, each on a fresh copy
//! of the same database (`CREATE DATABASE … TEMPLATE`).

mod support;
#[path = "support/targets.rs"]
#[allow(dead_code)]
mod targets;

#[path = "../tests/engines/pgserver.rs"]
#[allow(dead_code)]
mod pgserver;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use wallet::domain::{Email, UserName};
use wallet::ledger::{Ledger, Location, OpenOptions};
use wallet::money::Currency;

use pgserver::PgServer;
use targets::{Bound, Targets};

struct Settings {
    users: usize,
    transfers: usize,
    batch: usize,
    runs: usize,
    repeat: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--floor-process") {
        floor_process(&args[1], &args[2]);
        return;
    }
    let (settings, other) = parse(&args);
    let wallet = support::release_binary();
    if let Some(other) = other {
        against(&wallet, Path::new(&other), &settings);
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("wallet-pg-bench")
        .tempdir()
        .expect("temp dir");
    let server = PgServer::start_durable();
    println!("# wallet PostgreSQL benchmark");
    println!();
    machine(&server);
    println!(
        "users {}, transfers {}, settle batch {} on PostgreSQL, process runs {}, best of {} for throughput",
        settings.users, settings.transfers, settings.batch, settings.runs, settings.repeat
    );
    println!();
    let n = settings.transfers as f64;
    let plain = dir.path().join("plain.jsonl");
    let hot = dir.path().join("hot.jsonl");
    write_workload(&plain, &settings, false);
    write_workload(&hot, &settings, true);
    build_users(&server, "users", settings.users);
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut targets = Targets::default();

    // Ingest, and the floor.
    let (mut ingest, mut floor) = (Duration::MAX, Duration::MAX);
    for round in 0..settings.repeat {
        let db = if round == 0 { "ingested" } else { "scratch" };
        copy_database(&server, "users", db);
        let url = server.url(db, "wallet");
        ingest = ingest.min(time_wallet(
            &wallet,
            &url,
            &["transfer", "--batch"],
            Some(&plain),
        ));
        copy_database(&server, "users", "scratch");
        floor = floor.min(bare_ingest(&server, "scratch", &settings, false));
    }
    rows.push(row("batch ingest", n, ingest, floor));
    // The ratios the ledger stood at when these goals were set (10,000
    // users, 200,000 transfers): each phase's speed over its floor's.
    targets.add(
        "batch ingest / its plain-SQL floor (PostgreSQL)",
        floor.as_secs_f64() / ingest.as_secs_f64(),
        Bound::AtLeast(0.85),
        "",
        format!("speeds, best of {}", settings.repeat),
    );
    copy_database(&server, "users", "hot_ingested");
    time_wallet(
        &wallet,
        &server.url("hot_ingested", "wallet"),
        &["transfer", "--batch"],
        Some(&hot),
    );

    // Settle with 1, 2 and 4 workers, and the set-based floor.
    let mut settle_floor = Duration::MAX;
    for _ in 0..settings.repeat {
        copy_database(&server, "ingested", "scratch");
        settle_floor = settle_floor.min(bare_settle(&server, "scratch", settings.batch));
    }
    let mut one_worker = Duration::MAX;
    let best_settle = |from: &str, workers: usize| {
        let mut best = Duration::MAX;
        for _ in 0..settings.repeat {
            copy_database(&server, from, "scratch");
            let url = server.url("scratch", "wallet");
            let (w, b) = (workers.to_string(), settings.batch.to_string());
            let args = ["settle", "--workers", &w, "--batch-size", &b];
            best = best.min(time_wallet(&wallet, &url, &args, None));
        }
        best
    };
    for workers in [1, 2, 4] {
        let best = best_settle("ingested", workers);
        if workers == 1 {
            one_worker = best;
            targets.add(
                "settle, 1 worker / its set-based floor (PostgreSQL)",
                settle_floor.as_secs_f64() / best.as_secs_f64(),
                Bound::AtLeast(1.0),
                "",
                format!("speeds, best of {}", settings.repeat),
            );
        }
        let mut r = row(
            &format!(
                "settle, {workers} worker{}",
                if workers == 1 { "" } else { "s" }
            ),
            n,
            best,
            settle_floor,
        );
        r[3] = format!(
            "{} (×{:.2} one worker)",
            r[3],
            one_worker.as_secs_f64() / best.as_secs_f64()
        );
        rows.push(r);
    }
    for workers in [1, 4] {
        let best = best_settle("hot_ingested", workers);
        rows.push(row(
            &format!(
                "settle, every transfer names the external account, {workers} worker{}",
                if workers == 1 { "" } else { "s" }
            ),
            n,
            best,
            settle_floor,
        ));
    }

    // Single processes on the settled ledger.
    copy_database(&server, "ingested", "settled");
    let settled = server.url("settled", "wallet");
    time_wallet(&wallet, &settled, &["settle"], None);
    let me = std::env::current_exe().expect("own path");
    let floor_one = median(
        settings.runs,
        &me,
        &["--floor-process".to_string(), "pg".into(), settled.clone()],
    );
    for (name, args) in [
        (
            "transfer, one process",
            vec!["transfer", "u1", "u2", "0.01"],
        ),
        ("get-user, one process", vec!["get-user", "u1"]),
    ] {
        let mut full = vec!["--db".to_string(), settled.clone(), "--json".into()];
        full.extend(args.iter().map(|a| a.to_string()));
        let took = median(settings.runs, &wallet, &full);
        rows.push([
            format!("{name} (PostgreSQL)"),
            millis(took),
            millis(floor_one),
            format!("{:.2}", floor_one.as_secs_f64() / took.as_secs_f64()),
        ]);
        targets.add(
            format!("{name} / connect and one SELECT (PostgreSQL)"),
            took.as_secs_f64() / floor_one.as_secs_f64(),
            Bound::AtMost(1.5),
            "",
            format!("medians of {} processes", settings.runs),
        );
    }

    // The same on a ledger file.
    let file = dir.path().join("wallet.db");
    build_file(&file, settings.users);
    let file_db = file.display().to_string();
    let file_ingest = time_wallet(&wallet, &file_db, &["transfer", "--batch"], Some(&plain));
    let file_settle = time_wallet(&wallet, &file_db, &["settle"], None);
    rows.push(row("batch ingest (SQLite file)", n, file_ingest, ingest));
    rows.push(row("settle (SQLite file)", n, file_settle, one_worker));
    for (name, args) in [
        (
            "transfer, one process (SQLite file)",
            vec!["transfer", "u1", "u2", "0.01"],
        ),
        (
            "get-user, one process (SQLite file)",
            vec!["get-user", "u1"],
        ),
    ] {
        let mut full = vec!["--db".to_string(), file_db.clone(), "--json".into()];
        full.extend(args.iter().map(|a| a.to_string()));
        let took = median(settings.runs, &wallet, &full);
        rows.push([name.into(), millis(took), "".into(), "".into()]);
    }

    println!("| phase | wallet | floor (same row work, plain SQL) | wallet / floor |");
    println!("| --- | ---: | ---: | ---: |");
    for [a, b, c, d] in &rows {
        println!("| {a} | {b} | {c} | {d} |");
    }
    println!();
    println!(
        "The SQLite rows' floor column holds the PostgreSQL figure of the same phase (1 worker for settle)."
    );
    println!();
    targets.print();
}

fn row(name: &str, n: f64, took: Duration, floor: Duration) -> [String; 4] {
    [
        name.into(),
        rate(n, took),
        rate(n, floor),
        format!("{:.2}", floor.as_secs_f64() / took.as_secs_f64()),
    ]
}

fn parse(args: &[String]) -> (Settings, Option<String>) {
    let mut settings = Settings {
        users: 10_000,
        transfers: 200_000,
        batch: 1_000,
        runs: 31,
        repeat: 2,
    };
    let mut other = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || -> usize {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--users" => settings.users = value().max(2),
            "--transfers" => settings.transfers = value().max(1),
            "--batch" => settings.batch = value().max(1),
            "--runs" => settings.runs = value().max(1),
            "--repeat" => settings.repeat = value().max(1),
            "--against" => other = Some(it.next().expect("--against needs a binary").clone()),
            "--bench" => {}
            other => panic!(
                "unknown argument {other}; use --users N --transfers N --batch N --runs N --repeat N [--against BINARY]"
            ),
        }
    }
    (settings, other)
}

/// This tree's binary beside `other` on the same workload, each phase run
/// by one and then the other in turn, so a machine that slows down or
/// speeds up weighs on both alike.
fn against(wallet: &Path, other: &Path, settings: &Settings) {
    let dir = tempfile::Builder::new()
        .prefix("wallet-pg-against")
        .tempdir()
        .expect("temp dir");
    let server = PgServer::start_durable();
    println!("# wallet PostgreSQL: this tree against {}", other.display());
    println!();
    machine(&server);
    println!(
        "users {}, transfers {}, settle batch {}, process runs {}, best of {} for throughput",
        settings.users, settings.transfers, settings.batch, settings.runs, settings.repeat
    );
    println!();
    let plain = dir.path().join("plain.jsonl");
    write_workload(&plain, settings, false);
    build_users(&server, "users", settings.users);
    // Each build starts from users its own schema holds: the other may
    // write an older one, which this build would upgrade on its first write.
    build_users_with(other, &server, "users_other", settings.users);
    let binaries = [wallet, other];
    let batch = settings.batch.to_string();
    let (mut ingest, mut settle) = ([Duration::MAX; 2], [Duration::MAX; 2]);
    for _ in 0..settings.repeat {
        for (i, binary) in binaries.iter().enumerate() {
            copy_database(&server, ["users", "users_other"][i], "scratch");
            let url = server.url("scratch", "wallet");
            let args = ["transfer", "--batch"];
            ingest[i] = ingest[i].min(time_wallet(binary, &url, &args, Some(&plain)));
            let args = ["settle", "--workers", "1", "--batch-size", &batch];
            settle[i] = settle[i].min(time_wallet(binary, &url, &args, None));
        }
    }
    let settled = [("users", "settled"), ("users_other", "settled_other")].map(|(from, to)| {
        copy_database(&server, from, to);
        server.url(to, "wallet")
    });
    for (binary, settled) in binaries.iter().zip(&settled) {
        time_wallet(binary, settled, &["transfer", "--batch"], Some(&plain));
        time_wallet(binary, settled, &["settle"], None);
    }
    let mut single: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..settings.runs {
        for (i, binary) in binaries.iter().enumerate() {
            let args = ["transfer", "u1", "u2", "0.01"];
            single[i].push(time_wallet(binary, &settled[i], &args, None));
        }
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let single = single.map(|mut times| median(&mut times));
    println!("| phase | this tree | other | this / other |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, [mine, theirs]) in [
        ("batch ingest", ingest),
        ("settle, 1 worker", settle),
        ("transfer, one process (median)", single),
    ] {
        println!(
            "| {name} | {} | {} | {:.3} |",
            millis(mine),
            millis(theirs),
            mine.as_secs_f64() / theirs.as_secs_f64()
        );
    }
}

fn machine(server: &PgServer) {
    let (model, cores) = support::cpu();
    let version: String = server
        .connect("postgres")
        .query_one("SHOW server_version", &[])
        .unwrap()
        .get(0);
    println!(
        "machine: {model}, {cores} cores; PostgreSQL {version} on the same machine, unix socket, fsync on"
    );
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn users(n: usize) -> Vec<(UserName, Email)> {
    (0..n)
        .map(|i| {
            (
                UserName::parse(&format!("u{i}")).unwrap(),
                Email::parse(&format!("u{i}@example.com")).unwrap(),
            )
        })
        .collect()
}

fn build_users(server: &PgServer, db: &str, n: usize) {
    server.psql("postgres", &format!("CREATE DATABASE {db}"));
    let location = Location::parse(Path::new(&server.url(db, "wallet"))).expect("a URL");
    Ledger::create(&location, &Currency::default(), &OpenOptions::default()).expect("create");
    let mut ledger = Ledger::open(&location, &OpenOptions::default()).expect("open");
    ledger.create_users(&users(n)).expect("users");
}

/// The users of [`build_users`], made by another build's own commands, a
/// `create-user` process each: slow, but once per run.
fn build_users_with(wallet: &Path, server: &PgServer, db: &str, n: usize) {
    server.psql("postgres", &format!("CREATE DATABASE {db}"));
    let url = server.url(db, "wallet");
    let run = |args: &[&str]| {
        let status = Command::new(wallet)
            .arg("--db")
            .arg(&url)
            .arg("-q")
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("run wallet");
        assert!(status.success(), "wallet {args:?} failed");
    };
    run(&["init"]);
    for i in 0..n {
        run(&[
            "create-user",
            &format!("u{i}"),
            &format!("u{i}@example.com"),
        ]);
    }
}

fn build_file(path: &Path, n: usize) {
    let location = Location::File(path.to_path_buf());
    Ledger::create(&location, &Currency::default(), &OpenOptions::default()).expect("create");
    let mut ledger = Ledger::open(&location, &OpenOptions::default()).expect("open");
    ledger.create_users(&users(n)).expect("users");
}

/// A fresh copy of a database, made by the server from its files.
fn copy_database(server: &PgServer, from: &str, to: &str) {
    let mut client = server.connect("postgres");
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {to}"))
        .unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {to} TEMPLATE {from}"))
        .unwrap();
    client.batch_execute("CHECKPOINT").unwrap();
}

/// SplitMix64, so every run sees the same workload.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// (src, dst, minor units), `None` the outside world: a funding deposit per
/// user, then random transfers between users, or (`hot`) deposits and
/// withdrawals only, every one naming the external account.
fn workload(settings: &Settings, hot: bool) -> Vec<(Option<usize>, Option<usize>, i64)> {
    let users = settings.users;
    let mut rng = Rng(7);
    (0..settings.transfers)
        .map(|i| {
            if i < users {
                return (None, Some(i), 100_000);
            }
            let a = rng.below(users);
            let amount = 1 + rng.below(5_000) as i64;
            if hot {
                return if rng.below(2) == 0 {
                    (None, Some(a), amount)
                } else {
                    (Some(a), None, amount)
                };
            }
            let mut b = rng.below(users - 1);
            if b >= a {
                b += 1;
            }
            (Some(a), Some(b), amount)
        })
        .collect()
}

fn write_workload(path: &Path, settings: &Settings, hot: bool) {
    let mut out = BufWriter::new(File::create(path).expect("workload file"));
    let side = |s: Option<usize>| s.map_or("null".to_string(), |u| format!("\"u{u}\""));
    for (src, dst, amount) in workload(settings, hot) {
        writeln!(
            out,
            "{{\"src\":{},\"dst\":{},\"amount\":\"{}.{:02}\"}}",
            side(src),
            side(dst),
            amount / 100,
            amount % 100
        )
        .unwrap();
    }
    out.flush().unwrap();
}

/// One `wallet` run, stdout discarded, wall time.
fn time_wallet(wallet: &Path, db: &str, args: &[&str], input: Option<&Path>) -> Duration {
    let mut cmd = Command::new(wallet);
    cmd.arg("--db")
        .arg(db)
        .arg("-q")
        .args(args)
        .stdout(Stdio::null());
    if let Some(input) = input {
        cmd.arg(input);
    }
    let started = Instant::now();
    let status = cmd.status().expect("run wallet");
    let took = started.elapsed();
    assert!(status.success(), "wallet {args:?} failed");
    took
}

fn median(runs: usize, program: &Path, args: &[String]) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .status()
                .expect("run");
            assert!(status.success(), "{args:?}");
            started.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// The floor of a one-shot process: connect as `wallet` does (same crate,
/// same TLS setup unused on a socket) and run one statement.
fn floor_process(_what: &str, url: &str) {
    let stripped = url.split("&schema=").next().unwrap();
    let mut client = stripped
        .parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap();
    let row = client
        .query_one(
            "SELECT balance FROM wallet.accounts WHERE lower(name) = lower($1)",
            &[&"u1"],
        )
        .unwrap();
    let _: i64 = row.get(0);
}

/// The same rows `transfer --batch` writes, by plain SQL: a binary COPY of
/// each chunk into a staging table and one INSERT … SELECT into the
/// ledger's table, ids and names already known.
fn bare_ingest(server: &PgServer, db: &str, settings: &Settings, hot: bool) -> Duration {
    let mut client = server.connect(db);
    client.batch_execute("SET search_path = wallet").unwrap();
    let rows = workload(settings, hot);
    let started = Instant::now();
    client
        .batch_execute(
            "CREATE TEMPORARY TABLE staging (
                 tx_id bigint, lane integer, src bigint, dst bigint, amount bigint,
                 memo text, idem_key text, created_at bigint
             ) ON COMMIT DELETE ROWS",
        )
        .unwrap();
    let mut next_id = 1i64;
    for chunk in rows.chunks(wallet::ledger::DEFAULT_CHUNK_SIZE) {
        let mut tx = client.transaction().unwrap();
        let sink = tx.copy_in("COPY staging FROM STDIN BINARY").unwrap();
        let mut writer = BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT8,
                Type::INT4,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
            ],
        );
        for &(src, dst, amount) in chunk {
            let id = |side: Option<usize>| side.map_or(0i64, |u| u as i64 + 1);
            let (src, dst) = (id(src), id(dst));
            let lane = ((if src == 0 { dst } else { src }) % 1024) as i32;
            writer
                .write(&[
                    &next_id,
                    &lane,
                    &src,
                    &dst,
                    &amount,
                    &None::<&str>,
                    &None::<&str>,
                    &0i64,
                ])
                .unwrap();
            next_id += 1;
        }
        writer.finish().unwrap();
        tx.execute(
            "INSERT INTO transfers (tx_id, lane, src, dst, amount, status, memo, idem_key, created_at)
             SELECT tx_id, lane, src, dst, amount, 'PENDING', memo, idem_key, created_at
               FROM staging ORDER BY tx_id",
            &[],
        )
        .unwrap();
        // The pending sums, one update per account the chunk touches.
        tx.execute(
            "UPDATE accounts a SET pending_out = a.pending_out + s.out_, pending_in = a.pending_in + s.in_
               FROM (SELECT id, sum(out_) AS out_, sum(in_) AS in_ FROM (
                         SELECT src AS id, amount AS out_, 0 AS in_ FROM staging
                         UNION ALL SELECT dst, 0, amount FROM staging) d GROUP BY id) s
              WHERE a.id = s.id",
            &[],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    started.elapsed()
}

/// A set-based settle of the same rows: each batch of `batch` transfers,
/// oldest first, completed by one update, and every balance it moves by
/// one more, with no decision made per transfer.
fn bare_settle(server: &PgServer, db: &str, batch: usize) -> Duration {
    let mut client = server.connect(db);
    client.batch_execute("SET search_path = wallet").unwrap();
    let started = Instant::now();
    loop {
        let mut tx = client.transaction().unwrap();
        let done = tx
            .execute(
                "WITH due AS (
                     UPDATE transfers SET status = 'COMPLETED', settled_at = 0
                      WHERE tx_id IN (SELECT tx_id FROM transfers WHERE status = 'PENDING'
                                       ORDER BY tx_id LIMIT $1 FOR UPDATE)
                  RETURNING src, dst, amount),
                 moved AS (
                     SELECT id, sum(delta) AS delta, sum(out_) AS out_, sum(in_) AS in_ FROM (
                         SELECT src AS id, -amount AS delta, amount AS out_, 0 AS in_ FROM due
                         UNION ALL SELECT dst, amount, 0, amount FROM due) d
                      GROUP BY id)
                 UPDATE accounts a SET balance = a.balance + moved.delta,
                        pending_out = a.pending_out - moved.out_, pending_in = a.pending_in - moved.in_
                   FROM moved WHERE a.id = moved.id",
                &[&(batch as i64)],
            )
            .unwrap();
        tx.commit().unwrap();
        if done == 0 {
            break;
        }
    }
    started.elapsed()
}

fn rate(n: f64, took: Duration) -> String {
    format!("{:.0}/s", n / took.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
