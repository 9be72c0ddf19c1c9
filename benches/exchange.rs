//! The exchange benchmark: `cargo bench --bench exchange [-- --count N --users N --desks N --repeat N --engine sqlite|postgres|both]`.
//!
//! How fast `settle` decides exchange pairs beside plain transfers, on the
//! same machine in the same run: for each engine, a fresh ledger of
//! `--users` users (funded in PHP) and `--desks` desks (funded in BTC) gets
//! `--count` plain PHP transfers between users, or `--count` exchanges
//! (a user pays PHP to a desk, the desk pays BTC back), queued by one
//! `transfer --batch`; then one `settle --workers 1` is timed. The two runs
//! alternate, `--repeat` times each, every run on a ledger of its own; the
//! best of each is reported, with pairs per second over transfers per
//! second (a pair is two transfer rows decided together).

mod support;

#[path = "../tests/engines/pgserver.rs"]
#[allow(dead_code)]
mod pgserver;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgserver::PgServer;

struct Settings {
    count: usize,
    users: usize,
    desks: usize,
    repeat: usize,
    sqlite: bool,
    postgres: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Work {
    Transfers,
    Exchanges,
}

fn main() {
    let settings = parse(&std::env::args().skip(1).collect::<Vec<_>>());
    let wallet = support::release_binary();
    let dir = tempfile::Builder::new()
        .prefix("wallet-exchange-bench")
        .tempdir()
        .expect("temp dir");
    let (model, cores) = support::cpu();
    println!("# wallet exchange benchmark");
    println!();
    println!("machine: {model}, {cores} cores");
    println!(
        "{} transfers or pairs a run, {} users, {} desks, best of {}, one settle worker",
        settings.count, settings.users, settings.desks, settings.repeat
    );
    println!();
    println!("| engine | transfers/s | pairs/s | pairs/s ÷ transfers/s |");
    println!("| --- | ---: | ---: | ---: |");
    let mut run = 0;
    let mut next_ledger = |engine: &dyn Fn(usize) -> String| {
        run += 1;
        engine(run)
    };
    if settings.sqlite {
        let files = |n: usize| dir.path().join(format!("run{n}.db")).display().to_string();
        report(
            "SQLite",
            measure(&wallet, dir.path(), &settings, || next_ledger(&files)),
            &settings,
        );
    }
    if settings.postgres {
        let server = PgServer::start_durable();
        server.psql("postgres", "CREATE DATABASE wallet_bench");
        let schemas = |n: usize| server.url("wallet_bench", &format!("bench{n}"));
        report(
            "PostgreSQL",
            measure(&wallet, dir.path(), &settings, || next_ledger(&schemas)),
            &settings,
        );
    }
}

/// The best settle time of each kind of work, run in turn.
fn measure(
    wallet: &Path,
    dir: &Path,
    settings: &Settings,
    mut ledger: impl FnMut() -> String,
) -> (Duration, Duration) {
    let mut best = (Duration::MAX, Duration::MAX);
    for _ in 0..settings.repeat {
        for work in [Work::Transfers, Work::Exchanges] {
            let db = ledger();
            prepare(wallet, dir, &db, settings, work);
            let start = Instant::now();
            wallet_ok(wallet, &db, &["settle", "--workers", "1"]);
            let took = start.elapsed();
            let slot = match work {
                Work::Transfers => &mut best.0,
                Work::Exchanges => &mut best.1,
            };
            *slot = (*slot).min(took);
        }
    }
    best
}

fn report(engine: &str, (transfers, pairs): (Duration, Duration), settings: &Settings) {
    let n = settings.count as f64;
    let per_second = |took: Duration| n / took.as_secs_f64();
    println!(
        "| {engine} | {:.0} ({} ms) | {:.0} ({} ms) | {:.2} |",
        per_second(transfers),
        transfers.as_millis(),
        per_second(pairs),
        pairs.as_millis(),
        per_second(pairs) / per_second(transfers)
    );
}

/// A funded ledger with `settings.count` of `work` queued.
fn prepare(wallet: &Path, dir: &Path, db: &str, settings: &Settings, work: Work) {
    wallet_ok(wallet, db, &["init", "--currency", "PHP", "--scale", "2"]);
    wallet_ok(wallet, db, &["currency", "add", "BTC", "--scale", "8"]);
    let user = |i: usize| format!("u{i}");
    let desk = |i: usize| format!("desk{i}");
    let names: Vec<String> = (0..settings.users)
        .map(user)
        .chain((0..settings.desks).map(desk))
        .collect();
    for name in &names {
        wallet_ok(
            wallet,
            db,
            &["create-user", name, &format!("{name}@example.com")],
        );
    }
    let mut funds = String::new();
    for i in 0..settings.users {
        let _ = writeln!(
            funds,
            r#"{{"src":null,"dst":"{}","amount":"1000000.00"}}"#,
            user(i)
        );
    }
    for i in 0..settings.desks {
        let _ = writeln!(
            funds,
            r#"{{"src":null,"dst":"{}","amount":"1000000","currency":"BTC"}}"#,
            desk(i)
        );
    }
    batch(wallet, dir, db, &funds);
    wallet_ok(wallet, db, &["settle"]);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut lines = String::new();
    for _ in 0..settings.count {
        let src = rng.below(settings.users);
        let amount = 1 + rng.below(500);
        match work {
            Work::Transfers => {
                let dst = (src + 1 + rng.below(settings.users - 1)) % settings.users;
                let _ = writeln!(
                    lines,
                    r#"{{"src":"{}","dst":"{}","amount":"{}.{:02}"}}"#,
                    user(src),
                    user(dst),
                    amount / 100,
                    amount % 100
                );
            }
            Work::Exchanges => {
                let _ = writeln!(
                    lines,
                    r#"{{"exchange":true,"src":"{}","via":"{}","amount":"{}.{:02}","currency":"PHP","for_amount":"0.{:08}","for_currency":"BTC"}}"#,
                    user(src),
                    desk(rng.below(settings.desks)),
                    amount / 100,
                    amount % 100,
                    amount * 37
                );
            }
        }
    }
    batch(wallet, dir, db, &lines);
}

fn batch(wallet: &Path, dir: &Path, db: &str, lines: &str) {
    let file: PathBuf = dir.join("batch.jsonl");
    std::fs::write(&file, lines).expect("write batch");
    wallet_ok(
        wallet,
        db,
        &["transfer", "--batch", &file.display().to_string()],
    );
}

fn wallet_ok(wallet: &Path, db: &str, args: &[&str]) {
    let out = Command::new(wallet)
        .args(["--db", db, "-q"])
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("run wallet");
    assert!(
        out.status.success(),
        "wallet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small deterministic generator, so every run sees the same workload.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn parse(args: &[String]) -> Settings {
    let mut settings = Settings {
        count: 20_000,
        users: 1_000,
        desks: 8,
        repeat: 5,
        sqlite: true,
        postgres: true,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--count" => settings.count = value().max(1),
            "--users" => settings.users = value().max(2),
            "--desks" => settings.desks = value().max(1),
            "--repeat" => settings.repeat = value().max(1),
            "--engine" => {
                let engine = it.next().map(String::as_str);
                settings.sqlite = matches!(engine, Some("sqlite" | "both"));
                settings.postgres = matches!(engine, Some("postgres" | "both"));
                assert!(
                    settings.sqlite || settings.postgres,
                    "--engine takes sqlite, postgres or both"
                );
            }
            "--bench" => {}
            other => panic!(
                "unknown argument {other}; use --count N --users N --desks N --repeat N --engine sqlite|postgres|both"
            ),
        }
    }
    settings
}
