//! The throughput benchmark: `cargo bench --bench throughput [-- --users N[,N…] --transfers N --grown N --runs N --repeat N --tigerbeetle TB]`.
//!
//! For each `--users` count (10,000 and 1,000), builds a ledger of that
//! many users, ingests `--transfers` transfers through `wallet transfer
//! --batch` (without and with idempotency keys), settles them with `wallet
//! settle`, then times single `wallet` processes on the result. Then it
//! builds a ledger that already holds `--grown` settled transfers (10M;
//! 0 skips it) and ingests the same transfers into it and into a fresh
//! ledger, in turn. Throughput phases run `--repeat` times (3) and report
//! the fastest run. Each figure is printed beside a floor measured in the
//! same run: the same row work as a bare rusqlite loop, or a bare process
//! that opens the file and touches one row. With `--tigerbeetle TB` (a
//! `tigerbeetle` binary), TigerBeetle's own benchmark runs once a round
//! beside wallet's, on as many transfers and accounts. The run ends with
//! a table of the performance goals, each met or missed by this run.

mod support;
#[path = "support/targets.rs"]
mod targets;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use wallet::domain::{Email, UserName};
use wallet::ledger::{Ledger, Location, OpenOptions};
use wallet::money::Currency;

use targets::{Bound, Targets};

/// A phase of `--compare`: its label, each binary's ledger, arguments, input.
type ComparePhase<'a> = (&'a str, &'a [PathBuf; 2], &'a [&'a str], Option<&'a Path>);

/// A single-process case: its label, ledger, arguments and floor.
type ProcessCase<'a> = (&'a str, &'a Path, Vec<&'a str>, &'a [String]);

#[derive(Clone)]
struct Settings {
    /// The user count of the run under way, one of `user_counts`.
    users: usize,
    user_counts: Vec<usize>,
    /// Settled transfers already in the ledger of the growth phase.
    grown: usize,
    transfers: usize,
    runs: usize,
    repeat: usize,
    batch: usize,
    /// Another `wallet` binary to hold this one to, run for run.
    compare: Option<PathBuf>,
    /// A `tigerbeetle` binary whose own benchmark runs beside each round.
    tigerbeetle: Option<PathBuf>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--floor-process") {
        floor_process(&args[1..]);
        return;
    }
    let settings = parse(&args);
    let wallet = support::release_binary();
    println!("# wallet throughput benchmark");
    println!();
    machine();
    let mut targets = Targets::default();
    if settings.compare.is_some() {
        run_for_users(&wallet, &settings, &mut targets);
        return;
    }
    for &users in &settings.user_counts {
        let mut one = settings.clone();
        one.users = users;
        run_for_users(&wallet, &one, &mut targets);
    }
    if settings.grown > 0 {
        let mut one = settings.clone();
        one.users = settings.user_counts[0];
        growth(&wallet, &one, &mut targets);
    }
    targets.print();
}

/// Every phase on a ledger of `settings.users` users, printed as a table,
/// its goals added to `targets`.
fn run_for_users(wallet: &Path, settings: &Settings, targets: &mut Targets) {
    let dir = tempfile::Builder::new()
        .prefix("wallet-bench")
        .tempdir()
        .expect("temp dir");
    let wallet = wallet.to_path_buf();
    println!(
        "## users {}, transfers {}, process runs {}, best of {} for throughput, settle batch {}",
        settings.users, settings.transfers, settings.runs, settings.repeat, settings.batch
    );
    println!();
    let base = dir.path().join("users.db");
    build_users(&base, settings.users);
    let plain = dir.path().join("plain.jsonl");
    let keyed = dir.path().join("keyed.jsonl");
    write_workload(&plain, settings, false);
    write_workload(&keyed, settings, true);
    if let Some(old) = &settings.compare {
        compare(old, &wallet, settings, dir.path(), &base, [&plain, &keyed]);
        return;
    }
    let n = settings.transfers as f64;
    let mut rows: Vec<[String; 4]> = Vec::new();

    // Each round runs every throughput phase once, wallet and floor in
    // turn (and TigerBeetle's benchmark, when given), each on a fresh copy;
    // the fastest run of each counts, the usual estimate on a machine whose
    // other load only ever slows a run down. End to end is one round's
    // ingest and the settle of what it queued, as a user would run them.
    let out = dir.path().join("out.jsonl");
    let scratch = dir.path().join("scratch.db");
    let ledger = dir.path().join("ledger.db");
    let pending = dir.path().join("pending.db");
    let (mut ingest, mut ingest_keyed) = (Best::default(), Best::default());
    let (mut settle, mut settle_keyed) = (Best::default(), Best::default());
    let (mut floor_ingest, mut floor_keyed) = (Best::default(), Best::default());
    let mut floor_settle = Best::default();
    let (mut end_to_end, mut end_to_end_keyed) = (Duration::MAX, Duration::MAX);
    let mut tigerbeetle: Option<f64> = None;
    for round in 0..settings.repeat {
        if let Some(tb) = &settings.tigerbeetle {
            let rate = tigerbeetle_round(tb, dir.path(), settings);
            tigerbeetle = Some(tigerbeetle.map_or(rate, |best: f64| best.max(rate)));
        }
        // The first round's ledger is kept, settled: the single processes
        // below run on it.
        let target = if round == 0 { &ledger } else { &scratch };
        copy_ledger(&base, target);
        let queued = run_wallet(
            &wallet,
            target,
            &["transfer", "--batch"],
            Some(&plain),
            &out,
        );
        copy_ledger(target, &pending);
        let settled = run_wallet(&wallet, target, &["settle"], None, &out);
        end_to_end = end_to_end.min(queued.wall + settled.wall);
        ingest.add(queued);
        settle.add(settled);
        copy_ledger(&base, &scratch);
        floor_ingest.add_wall(bare_ingest(&scratch, settings, false));
        copy_ledger(&pending, &scratch);
        floor_settle.add_wall(bare_settle(&scratch, settings.batch));

        copy_ledger(&base, &scratch);
        let queued = run_wallet(
            &wallet,
            &scratch,
            &["transfer", "--batch"],
            Some(&keyed),
            &out,
        );
        let settled = run_wallet(&wallet, &scratch, &["settle"], None, &out);
        end_to_end_keyed = end_to_end_keyed.min(queued.wall + settled.wall);
        ingest_keyed.add(queued);
        settle_keyed.add(settled);
        copy_ledger(&base, &scratch);
        floor_keyed.add_wall(bare_ingest(&scratch, settings, true));
    }
    let _ = fs::remove_file(&pending);
    let _ = fs::remove_file(&scratch);
    rows.push([
        "batch ingest, no keys".into(),
        rate(n, ingest.wall),
        rate(n, floor_ingest.wall),
        rss(ingest.max_rss_kb),
    ]);
    rows.push([
        "batch ingest, with keys".into(),
        rate(n, ingest_keyed.wall),
        rate(n, floor_keyed.wall),
        rss(ingest_keyed.max_rss_kb),
    ]);
    rows.push([
        "settle".into(),
        rate(n, settle.wall),
        rate(n, floor_settle.wall),
        rss(settle.max_rss_kb),
    ]);
    rows.push([
        "settle, keyed transfers".into(),
        rate(n, settle_keyed.wall),
        String::new(),
        rss(settle_keyed.max_rss_kb),
    ]);
    rows.push([
        "ingest + settle, end to end".into(),
        rate(n, end_to_end),
        rate(n, floor_ingest.wall + floor_settle.wall),
        rss(ingest.max_rss_kb.max(settle.max_rss_kb)),
    ]);
    rows.push([
        "ingest + settle, end to end, with keys".into(),
        rate(n, end_to_end_keyed),
        String::new(),
        rss(ingest_keyed.max_rss_kb.max(settle_keyed.max_rss_kb)),
    ]);
    let users = settings.users;
    let e2e_rate = n / end_to_end.as_secs_f64();
    if let Some(tb) = tigerbeetle {
        rows.push([
            "TigerBeetle's own benchmark (same transfers and accounts)".into(),
            format!("{tb:.0} transfers/s"),
            format!("end to end = {:.3} of it", e2e_rate / tb),
            String::new(),
        ]);
    }
    targets.add(
        format!("end to end / TigerBeetle, {users} accounts"),
        tigerbeetle.map_or(f64::NAN, |tb| e2e_rate / tb),
        Bound::AtLeast(1.0),
        "",
        format!("best of {} alternating rounds each", settings.repeat),
    );
    targets.add(
        format!("end to end with keys / without, {users} accounts"),
        end_to_end.as_secs_f64() / end_to_end_keyed.as_secs_f64(),
        Bound::AtLeast(0.8),
        "",
        "speeds, best round of each",
    );
    // What the storage itself can take: the same rows appended to a table
    // with no index at all, durable, in chunks of the same size. Where the
    // end-to-end rate stands against it says how much of the cost is the
    // ledger's own layout and logic.
    let mut unindexed = Duration::MAX;
    for _ in 0..settings.repeat {
        unindexed = unindexed.min(bare_unindexed(&dir.path().join("bare.db"), settings));
    }
    rows.push([
        "unindexed bulk insert (the storage's floor)".into(),
        rate(n, unindexed),
        format!(
            "end to end = {:.3} of it",
            unindexed.as_secs_f64() / end_to_end.as_secs_f64()
        ),
        String::new(),
    ]);
    // What storage alone costs a layout that writes each transfer once
    // where it can, the lead for end to end: against TigerBeetle's rate, what
    // such a redesign could reach at best before any of wallet's own work.
    let once = (0..settings.repeat)
        .map(|_| bare_write_once(&dir.path().join("once.db"), settings))
        .min_by_key(|(append, decide)| *append + *decide)
        .expect("at least one round");
    let once_total = once.0 + once.1;
    rows.push([
        "write-once layout's storage floor: append, then one in-place update a row".into(),
        format!(
            "{}: {:.2} s append + {:.2} s decide",
            rate(n, once_total),
            once.0.as_secs_f64(),
            once.1.as_secs_f64()
        ),
        tigerbeetle.map_or_else(String::new, |tb| {
            format!(
                "TigerBeetle = {:.2} of it",
                tb / (n / once_total.as_secs_f64())
            )
        }),
        String::new(),
    ]);

    // Single processes on the settled ledger and on an empty one.
    let empty = dir.path().join("empty.db");
    build_users(&empty, 2);
    let me = std::env::current_exe().expect("own path");
    // Each case runs in turn with its floor, so that both medians see the
    // same state of the machine: taken minutes apart, a floor and its case
    // moved by up to a third against each other from one run to the next.
    let floor_read = floor_args("read", &ledger);
    let floor_write = floor_args("write", &ledger);
    let cases: [ProcessCase; 4] = [
        (
            "get-user (full ledger)",
            &ledger,
            vec!["get-user", "u1"],
            &floor_read,
        ),
        (
            "get-user (empty ledger)",
            &empty,
            vec!["get-user", "u1"],
            &floor_read,
        ),
        (
            "history --limit 100 (full ledger)",
            &ledger,
            vec!["history", "u1", "--limit", "100"],
            &floor_read,
        ),
        (
            "transfer, one process (full ledger)",
            &ledger,
            vec!["transfer", "u1", "u2", "0.01"],
            &floor_write,
        ),
    ];
    for (name, db, args, floor) in cases {
        let mut full = vec![
            "--db".to_string(),
            db.display().to_string(),
            "--json".into(),
        ];
        full.extend(args.iter().map(|a| a.to_string()));
        let [measured, floor] =
            medians_in_turn(settings.runs, [(&wallet, &full[..]), (&me, floor)]);
        let (ok, peak) = run_measuring_rss(&wallet, &full, Stdio::null());
        assert!(ok, "{name} failed");
        rows.push([name.into(), millis(measured), millis(floor), rss(peak)]);
        let of_floor = measured.as_secs_f64() / floor.as_secs_f64();
        let how = format!("medians of {} processes", settings.runs);
        match args[0] {
            "transfer" => targets.add(
                format!("one `transfer` process / its floor, {users} users"),
                of_floor,
                Bound::AtMost(1.2),
                "",
                how,
            ),
            "get-user" if db == ledger.as_path() => targets.add(
                format!("one `get-user` process / its floor, {users} users"),
                of_floor,
                Bound::AtMost(1.3),
                "",
                how,
            ),
            _ => {}
        }
    }

    println!("| phase | wallet | bare rusqlite floor | peak RSS (wallet) |");
    println!("| --- | ---: | ---: | ---: |");
    for [a, b, c, d] in &rows {
        println!("| {a} | {b} | {c} | {d} |");
    }
    println!();
}

/// Whether ingest holds its rate as the ledger grows: the same transfers
/// queued into a ledger that already holds `settings.grown` settled ones
/// and into a fresh one, in turn, `--repeat` times each; and what settling
/// that many costs in memory, and `history` on it beside `history` on a
/// ledger of `--transfers` settled ones.
fn growth(wallet: &Path, settings: &Settings, targets: &mut Targets) {
    let dir = tempfile::Builder::new()
        .prefix("wallet-bench-grown")
        .tempdir()
        .expect("temp dir");
    println!(
        "## growth: users {}, {} transfers into a fresh ledger and into one of {} settled transfers",
        settings.users, settings.transfers, settings.grown
    );
    println!();
    let base = dir.path().join("users.db");
    build_users(&base, settings.users);
    let grown = dir.path().join("grown.db");
    copy_ledger(&base, &grown);
    let out = dir.path().join("out.jsonl");
    {
        // Built in slices of the history, each queued then settled, so the
        // file's pages interleave as a ledger's do after months of use.
        let history = dir.path().join("history.jsonl");
        let mut before = settings.clone();
        before.transfers = settings.grown;
        write_workload(&history, &before, false);
        let started = Instant::now();
        run_wallet(
            wallet,
            &grown,
            &["transfer", "--batch"],
            Some(&history),
            &out,
        );
        let settled = run_wallet(wallet, &grown, &["settle"], None, &out);
        let _ = fs::remove_file(&history);
        println!(
            "built the grown ledger in {:.1} s; its settle peaked at {}",
            started.elapsed().as_secs_f64(),
            rss(settled.max_rss_kb)
        );
        targets.add(
            format!("settle's peak RSS, {} transfers", settings.grown),
            settled.max_rss_kb as f64 / 1024.0,
            Bound::Below(64.0),
            " MB",
            "/usr/bin/time, one settle of all of them",
        );
    }
    checkpoint(&grown);
    // The page is measured on a ledger of `--transfers` settled ones, built
    // the same way, in turn with the grown one, once the disks have taken
    // the grown ledger's gigabyte: two medians taken minutes apart, one of
    // them while that write-back was under way, differed by more than the
    // goal's 10 %.
    let small = dir.path().join("small.db");
    copy_ledger(&base, &small);
    {
        let history = dir.path().join("history.jsonl");
        write_workload(&history, settings, false);
        run_wallet(
            wallet,
            &small,
            &["transfer", "--batch"],
            Some(&history),
            &out,
        );
        run_wallet(wallet, &small, &["settle"], None, &out);
        let _ = fs::remove_file(&history);
    }
    checkpoint(&small);
    let _ = Command::new("sync").status();
    let history_args = |db: &Path| -> Vec<String> {
        ["--db", &db.display().to_string(), "--json"]
            .iter()
            .map(|a| a.to_string())
            .chain(["history", "u1", "--limit", "100"].map(String::from))
            .collect()
    };
    let (grown_args, small_args) = (history_args(&grown), history_args(&small));
    let [history_grown, history_small] = medians_in_turn(
        settings.runs,
        [(wallet, &grown_args), (wallet, &small_args)],
    );
    println!(
        "history u1 --limit 100, medians of {} in turn: {} on it, {} on a ledger of {} settled transfers",
        settings.runs,
        millis(history_grown),
        millis(history_small),
        settings.transfers
    );
    println!();
    targets.add(
        format!(
            "history --limit 100 at {} / at {} transfers",
            settings.grown, settings.transfers
        ),
        history_grown.as_secs_f64() / history_small.as_secs_f64(),
        Bound::AtMost(1.1),
        "",
        format!("medians of {} processes", settings.runs),
    );
    let size = fs::metadata(&grown).map_or(0, |m| m.len());
    let plain = dir.path().join("plain.jsonl");
    write_workload(&plain, settings, false);
    let scratch = dir.path().join("scratch.db");
    let (mut fresh, mut aged) = (Best::default(), Best::default());
    for _ in 0..settings.repeat {
        copy_ledger(&base, &scratch);
        fresh.add(run_wallet(
            wallet,
            &scratch,
            &["transfer", "--batch"],
            Some(&plain),
            &out,
        ));
        copy_ledger(&grown, &scratch);
        aged.add(run_wallet(
            wallet,
            &scratch,
            &["transfer", "--batch"],
            Some(&plain),
            &out,
        ));
    }
    let n = settings.transfers as f64;
    println!("| ledger | batch ingest, no keys | file size |");
    println!("| --- | ---: | ---: |");
    println!(
        "| fresh ({} users) | {} | {:.1} MB |",
        settings.users,
        rate(n, fresh.wall),
        fs::metadata(&base).map_or(0, |m| m.len()) as f64 / 1e6
    );
    println!(
        "| holding {} settled transfers | {} | {:.1} MB |",
        settings.grown,
        rate(n, aged.wall),
        size as f64 / 1e6
    );
    println!(
        "| grown / fresh | {:.3} | |",
        fresh.wall.as_secs_f64() / aged.wall.as_secs_f64()
    );
    println!();
    targets.add(
        format!(
            "ingest into {} transfers / into a fresh ledger",
            settings.grown
        ),
        fresh.wall.as_secs_f64() / aged.wall.as_secs_f64(),
        Bound::AtLeast(0.9),
        "",
        format!("speeds, best of {} each, in turn", settings.repeat),
    );
}

/// Holds this build to another `wallet` binary: each throughput phase runs
/// old, new, old, new, … (`--repeat` each) on fresh copies of the same
/// ledger, so that both see the same machine at nearly the same moment;
/// then single processes, median of `--runs` each, also in turn.
fn compare(
    old: &Path,
    new: &Path,
    settings: &Settings,
    dir: &Path,
    base: &Path,
    inputs: [&Path; 2],
) {
    println!(
        "comparing {} (old) with {} (new)",
        old.display(),
        new.display()
    );
    println!();
    // Both run from fresh copies in the run's directory: a binary the
    // build has just written (and hard-linked) starts measurably slower
    // than a copy of the same bytes, which would be charged to the code.
    let copy = |from: &Path, name: &str| -> PathBuf {
        let to = dir.join(name);
        fs::copy(from, &to).expect("copy a binary");
        to
    };
    let (old, new) = (&copy(old, "wallet-old"), &copy(new, "wallet-new"));
    let n = settings.transfers as f64;
    let out = dir.join("out.jsonl");
    let scratch = dir.join("scratch.db");
    // Each binary works on ledgers of its own schema version: made by its
    // own `init`, with the same users, and queued by itself, so that no
    // timed run pays for an upgrade.
    let own_base = |binary: &Path, name: &str| -> PathBuf {
        let path = dir.join(name);
        let status = Command::new(binary)
            .args(["--db", &path.display().to_string(), "-q", "init"])
            .status()
            .expect("init");
        assert!(status.success());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "ATTACH '{}' AS other;
             INSERT INTO main.accounts (name, email, created_at)
                 SELECT name, email, created_at FROM other.accounts WHERE id <> 0 ORDER BY id;
             DETACH other;",
            base.display()
        ))
        .unwrap();
        path
    };
    let bases = [own_base(old, "old-base.db"), own_base(new, "new-base.db")];
    let pendings = [dir.join("old-pending.db"), dir.join("new-pending.db")];
    for ((binary, base), pending) in [old, new].iter().zip(&bases).zip(&pendings) {
        copy_ledger(base, pending);
        run_wallet(
            binary,
            pending,
            &["transfer", "--batch"],
            Some(inputs[0]),
            &out,
        );
    }
    let mut rows: Vec<[String; 4]> = Vec::new();
    let phases: [ComparePhase; 3] = [
        (
            "batch ingest, no keys",
            &bases,
            &["transfer", "--batch"],
            Some(inputs[0]),
        ),
        (
            "batch ingest, with keys",
            &bases,
            &["transfer", "--batch"],
            Some(inputs[1]),
        ),
        ("settle", &pendings, &["settle"], None),
    ];
    for (name, from, args, input) in phases {
        let (mut old_best, mut new_best) = (Best::default(), Best::default());
        for _ in 0..settings.repeat {
            for ((binary, best), from) in [(old, &mut old_best), (new, &mut new_best)]
                .into_iter()
                .zip(from)
            {
                copy_ledger(from, &scratch);
                best.add(run_wallet(binary, &scratch, args, input, &out));
            }
        }
        rows.push([
            name.into(),
            rate(n, old_best.wall),
            rate(n, new_best.wall),
            format!(
                "{:.3}",
                old_best.wall.as_secs_f64() / new_best.wall.as_secs_f64()
            ),
        ]);
    }
    let settled = [dir.join("old-settled.db"), dir.join("new-settled.db")];
    for ((binary, pending), settled) in [old, new].iter().zip(&pendings).zip(&settled) {
        copy_ledger(pending, settled);
        run_wallet(binary, settled, &["settle"], None, &out);
    }
    let dbs = settled.map(|path| path.display().to_string());
    for (name, args) in [
        ("get-user", vec!["get-user", "u1"]),
        (
            "transfer, one process",
            vec!["transfer", "u1", "u2", "0.01"],
        ),
    ] {
        let command = |db: &str| -> Vec<String> {
            let mut full = vec!["--db".to_string(), db.to_string(), "--json".into()];
            full.extend(args.iter().map(|a| a.to_string()));
            full
        };
        let (old_args, new_args) = (command(&dbs[0]), command(&dbs[1]));
        let (mut old_times, mut new_times) = (Vec::new(), Vec::new());
        // The first runs warm the page cache; leave them out.
        for round in 0..settings.runs + 5 {
            let (old_took, new_took) = (time_once(old, &old_args), time_once(new, &new_args));
            if round >= 5 {
                old_times.push(old_took);
                new_times.push(new_took);
            }
        }
        old_times.sort();
        new_times.sort();
        let (old_median, new_median) = (
            old_times[old_times.len() / 2],
            new_times[new_times.len() / 2],
        );
        rows.push([
            name.into(),
            millis(old_median),
            millis(new_median),
            format!("{:.3}", old_median.as_secs_f64() / new_median.as_secs_f64()),
        ]);
    }
    println!("| phase | old | new | new speed / old |");
    println!("| --- | ---: | ---: | ---: |");
    for [a, b, c, d] in &rows {
        println!("| {a} | {b} | {c} | {d} |");
    }
}

fn parse(args: &[String]) -> Settings {
    let mut settings = Settings {
        users: 10_000,
        user_counts: vec![10_000, 1_000],
        grown: 10_000_000,
        transfers: 1_000_000,
        runs: 101,
        repeat: 3,
        batch: wallet::ledger::DEFAULT_BATCH_SIZE,
        compare: None,
        tigerbeetle: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || -> usize {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--users" => {
                let list = it.next().expect("--users needs N[,N…]");
                settings.user_counts = list
                    .split(',')
                    .map(|n| {
                        n.replace('_', "")
                            .parse::<usize>()
                            .unwrap_or_else(|_| panic!("--users: {n} is not a number"))
                            .max(2)
                    })
                    .collect();
                settings.users = settings.user_counts[0];
            }
            "--grown" => settings.grown = value(),
            "--transfers" => settings.transfers = value().max(1),
            "--runs" => settings.runs = value().max(1),
            "--repeat" => settings.repeat = value().max(1),
            "--compare" => {
                let path = it
                    .next()
                    .expect("--compare needs the path of a wallet binary");
                settings.compare = Some(PathBuf::from(path));
            }
            "--tigerbeetle" => {
                let path = it
                    .next()
                    .expect("--tigerbeetle needs the path of a tigerbeetle binary");
                settings.tigerbeetle = Some(PathBuf::from(path));
            }
            "--bench" => {}
            other => panic!(
                "unknown argument {other}; use --users N[,N…] --transfers N --grown N --runs N --repeat N --compare OLD --tigerbeetle TB"
            ),
        }
    }
    settings
}

fn machine() {
    let (model, cores) = support::cpu();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {model}, {cores} cores, SQLite {}",
        rusqlite::version()
    );
    println!(
        "load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn build_users(path: &Path, users: usize) {
    Ledger::create(
        &Location::File(path.to_path_buf()),
        &Currency::default(),
        &OpenOptions::default(),
    )
    .expect("create");
    let mut ledger =
        Ledger::open(&Location::File(path.to_path_buf()), &OpenOptions::default()).expect("open");
    let all: Vec<(UserName, Email)> = (0..users)
        .map(|i| {
            (
                UserName::parse(&format!("u{i}")).unwrap(),
                Email::parse(&format!("u{i}@example.com")).unwrap(),
            )
        })
        .collect();
    ledger.create_users(&all).expect("users");
}

/// Copies a closed ledger, first moving its write-ahead log into the file
/// (a plain connection checkpoints when it closes).
fn copy_ledger(from: &Path, to: &Path) -> PathBuf {
    checkpoint(from);
    for suffix in ["-wal", "-shm"] {
        let mut side = to.as_os_str().to_owned();
        side.push(suffix);
        let _ = fs::remove_file(side);
    }
    fs::copy(from, to).expect("copy ledger");
    to.to_path_buf()
}

/// Moves a closed ledger's write-ahead log into its file.
fn checkpoint(db: &Path) {
    let conn = Connection::open(db).expect("open ledger");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
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

/// Yields (src, dst, minor units): a funding deposit per user, then random
/// transfers; `None` is the outside world.
fn workload(settings: &Settings) -> impl Iterator<Item = (Option<usize>, Option<usize>, i64)> {
    let users = settings.users;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    (0..settings.transfers).map(move |i| {
        if i < users {
            return (None, Some(i), 100_000);
        }
        let src = rng.below(users);
        let mut dst = rng.below(users - 1);
        if dst >= src {
            dst += 1;
        }
        (Some(src), Some(dst), 1 + rng.below(5_000) as i64)
    })
}

fn write_workload(path: &Path, settings: &Settings, keyed: bool) {
    let mut out = BufWriter::new(File::create(path).expect("workload file"));
    let side = |s: Option<usize>| s.map_or("null".to_string(), |u| format!("\"u{u}\""));
    for (i, (src, dst, amount)) in workload(settings).enumerate() {
        let key = if keyed {
            format!(",\"id\":\"bench-{i}\"")
        } else {
            String::new()
        };
        writeln!(
            out,
            "{{\"src\":{},\"dst\":{},\"amount\":\"{}.{:02}\"{key}}}",
            side(src),
            side(dst),
            amount / 100,
            amount % 100
        )
        .unwrap();
    }
    out.flush().unwrap();
}

struct Measured {
    wall: Duration,
    max_rss_kb: u64,
}

/// The fastest of several runs, and the largest peak RSS among them.
struct Best {
    wall: Duration,
    max_rss_kb: u64,
}

impl Default for Best {
    fn default() -> Self {
        Self {
            wall: Duration::MAX,
            max_rss_kb: 0,
        }
    }
}

impl Best {
    fn add(&mut self, run: Measured) {
        self.add_wall(run.wall);
        self.max_rss_kb = self.max_rss_kb.max(run.max_rss_kb);
    }

    fn add_wall(&mut self, wall: Duration) {
        self.wall = self.wall.min(wall);
    }
}

/// Runs `wallet --db DB ARGS… [FILE]` once, output to `out`.
fn run_wallet(
    wallet: &Path,
    db: &Path,
    args: &[&str],
    file: Option<&Path>,
    out: &Path,
) -> Measured {
    let mut full: Vec<&OsStr> = vec![OsStr::new("--db"), db.as_os_str(), OsStr::new("-q")];
    full.extend(args.iter().map(OsStr::new));
    if let Some(file) = file {
        full.push(file.as_os_str());
    }
    let start = Instant::now();
    let (ok, max_rss_kb) = run_measuring_rss(wallet, &full, File::create(out).unwrap().into());
    let wall = start.elapsed();
    assert!(ok, "wallet {args:?} failed");
    Measured { wall, max_rss_kb }
}

/// Runs a program to completion under `/usr/bin/time`, for the peak RSS of
/// that program alone. (A child's own `ru_maxrss` starts from its parent's
/// size when it is spawned, and this benchmark's is large.) Without
/// `/usr/bin/time` the RSS is reported as 0.
fn run_measuring_rss(program: &Path, args: &[impl AsRef<OsStr>], stdout: Stdio) -> (bool, u64) {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        let ok = Command::new(program)
            .args(args)
            .stdout(stdout)
            .status()
            .expect("spawn")
            .success();
        return (ok, 0);
    }
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let ok = Command::new(time)
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(report.path())
        .arg(program)
        .args(args)
        .stdout(stdout)
        .status()
        .expect("spawn /usr/bin/time")
        .success();
    let text = fs::read_to_string(report.path()).unwrap_or_default();
    let kb = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    (ok, kb)
}

/// The median times of two commands run in turn, `runs` times each after
/// five rounds that warm the page cache, so that both see the same state
/// of the machine.
fn medians_in_turn(runs: usize, commands: [(&Path, &[String]); 2]) -> [Duration; 2] {
    let mut times: [Vec<Duration>; 2] = [Vec::with_capacity(runs), Vec::with_capacity(runs)];
    for round in 0..runs + 5 {
        for (which, (program, args)) in commands.iter().enumerate() {
            let took = time_once(program, args);
            if round >= 5 {
                times[which].push(took);
            }
        }
    }
    times.map(|mut t| {
        t.sort();
        t[t.len() / 2]
    })
}

/// One run of a process to completion, its output dropped.
fn time_once(program: &Path, args: &[impl AsRef<OsStr>]) -> Duration {
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("spawn");
    let took = start.elapsed();
    assert!(status.success(), "{} failed", program.display());
    took
}

/// One run of TigerBeetle's own benchmark on the same machine, with as
/// many transfers and accounts as this run: its `load accepted` rate, or
/// not a number when it failed (its output is shown then). It formats
/// and removes its own data file in `dir`.
fn tigerbeetle_round(tigerbeetle: &Path, dir: &Path, settings: &Settings) -> f64 {
    let run = Command::new(tigerbeetle)
        .arg("benchmark")
        .arg(format!("--transfer-count={}", settings.transfers))
        .arg(format!("--account-count={}", settings.users))
        .current_dir(dir)
        .output()
        .expect("spawn tigerbeetle");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let accepted = text.lines().find_map(|line| {
        let rest = line.split("load accepted = ").nth(1)?;
        rest.split_whitespace()
            .next()?
            .replace(',', "")
            .parse::<f64>()
            .ok()
    });
    accepted.unwrap_or_else(|| {
        eprintln!("tigerbeetle benchmark gave no rate:\n{text}");
        f64::NAN
    })
}

fn floor_args(what: &str, db: &Path) -> Vec<String> {
    vec![
        "--floor-process".into(),
        what.into(),
        db.display().to_string(),
    ]
}

/// The floor of a single process: open the ledger with the pragmas every
/// `wallet` process sets, then read one user or insert one transfer.
fn floor_process(args: &[String]) {
    let [what, db] = args else {
        panic!("--floor-process read|write DB")
    };
    let conn = connect(Path::new(db));
    if what == "read" {
        let balance: i64 = conn
            .query_row(
                "SELECT balance FROM accounts WHERE name = ?1 COLLATE NOCASE",
                ["u1"],
                |r| r.get(0),
            )
            .unwrap();
        std::hint::black_box(balance);
    } else {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute(
            "INSERT INTO transfers (src, dst, amount, status, created_at) VALUES (2, 3, 1, 'PENDING', 0)",
            [],
        )
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
}

fn connect(db: &Path) -> Connection {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn
}

/// The workload's rows as account ids (the external account is 0, user
/// `uN` is N + 1).
fn workload_rows(settings: &Settings) -> Vec<(i64, i64, i64)> {
    workload(settings)
        .map(|(src, dst, amount)| {
            let id = |s: Option<usize>| s.map_or(0, |u| u as i64 + 1);
            (id(src), id(dst), amount)
        })
        .collect()
}

/// Removes a scratch ledger and its side files, if any.
fn remove_ledger(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let _ = fs::remove_file(path);
    }
}

/// Inserts `rows` by `insert` (`?1` source, `?2` destination, `?3`
/// amount), a transaction per ingest chunk; returns the time it took.
fn append_rows(conn: &mut Connection, rows: &[(i64, i64, i64)], insert: &str) -> Duration {
    let start = Instant::now();
    for chunk in rows.chunks(wallet::ledger::DEFAULT_CHUNK_SIZE) {
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx.prepare_cached(insert).unwrap();
            for &(src, dst, amount) in chunk {
                insert.execute(params![src, dst, amount]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed()
}

/// The same rows appended to a fresh table with no index and no
/// constraint, in WAL mode with full sync, a transaction per chunk.
fn bare_unindexed(db: &Path, settings: &Settings) -> Duration {
    remove_ledger(db);
    let rows = workload_rows(settings);
    let mut conn = connect(db);
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE t (src INTEGER, dst INTEGER, amount INTEGER, status TEXT, created_at INTEGER)",
    )
    .unwrap();
    let took = append_rows(
        &mut conn,
        &rows,
        "INSERT INTO t VALUES (?1, ?2, ?3, 'PENDING', 0)",
    );
    drop(conn);
    remove_ledger(db);
    took
}

/// The storage's floor of a layout that writes each transfer once where
/// it can: the rows appended to a table with no index (a queue read by id
/// from a watermark, not through an index on status), then each decided by
/// one in-place update that keeps its status and, for each side, the
/// balance after it and the side's previous transfer (a per-account
/// history list instead of a second B-tree), with the accounts touched
/// written once a batch. WAL, full sync, a transaction per ingest chunk
/// and per settle batch. No decision rules, names, keys, chain or feed:
/// what any such layout pays SQLite before doing any of them. Returns the
/// two phases' times.
fn bare_write_once(db: &Path, settings: &Settings) -> (Duration, Duration) {
    remove_ledger(db);
    let rows = workload_rows(settings);
    let mut conn = connect(db);
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE t (src INTEGER, dst INTEGER, amount INTEGER, status TEXT,
                         created_at INTEGER, src_after INTEGER, dst_after INTEGER,
                         src_prev INTEGER, dst_prev INTEGER);
         CREATE TABLE a (id INTEGER PRIMARY KEY, balance INTEGER, last_tx INTEGER);",
    )
    .unwrap();
    {
        let tx = conn.transaction().unwrap();
        let mut insert = tx
            .prepare("INSERT INTO a VALUES (?1, 1000000000, NULL)")
            .unwrap();
        for id in 0..=settings.users as i64 + 1 {
            insert.execute([id]).unwrap();
        }
        drop(insert);
        tx.commit().unwrap();
    }
    let append = append_rows(
        &mut conn,
        &rows,
        "INSERT INTO t (src, dst, amount, status, created_at) VALUES (?1, ?2, ?3, 'PENDING', 0)",
    );
    let start = Instant::now();
    // (balance, last tx_id, touched this batch) by account id.
    let mut accounts: Vec<(i64, Option<i64>, bool)> = Vec::new();
    let mut first = 1_i64;
    let batch = settings.batch.max(1) as i64;
    loop {
        let tx = conn.transaction().unwrap();
        if accounts.is_empty() {
            let mut read = tx
                .prepare("SELECT balance, last_tx FROM a ORDER BY id")
                .unwrap();
            accounts = read
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, false)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
        }
        let due: Vec<(i64, i64, i64, i64)> = tx
            .prepare_cached("SELECT rowid, src, dst, amount FROM t WHERE rowid BETWEEN ?1 AND ?2")
            .unwrap()
            .query_map([first, first + batch - 1], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        if due.is_empty() {
            break;
        }
        {
            let mut decide = tx
                .prepare_cached(
                    "UPDATE t SET status = 'COMPLETED', src_after = ?2, dst_after = ?3,
                                  src_prev = ?4, dst_prev = ?5 WHERE rowid = ?1",
                )
                .unwrap();
            for &(tx_id, src, dst, amount) in &due {
                let (s, d) = (src as usize, dst as usize);
                accounts[s].0 -= amount;
                accounts[d].0 += amount;
                let (src_after, src_prev) = (accounts[s].0, accounts[s].1.replace(tx_id));
                let (dst_after, dst_prev) = (accounts[d].0, accounts[d].1.replace(tx_id));
                accounts[s].2 = true;
                accounts[d].2 = true;
                decide
                    .execute(params![tx_id, src_after, dst_after, src_prev, dst_prev])
                    .unwrap();
            }
            let mut write = tx
                .prepare_cached("UPDATE a SET balance = ?2, last_tx = ?3 WHERE id = ?1")
                .unwrap();
            for (id, account) in accounts.iter_mut().enumerate().filter(|(_, a)| a.2) {
                write
                    .execute(params![id as i64, account.0, account.1])
                    .unwrap();
                account.2 = false;
            }
        }
        tx.commit().unwrap();
        first += batch;
    }
    let decide = start.elapsed();
    drop(conn);
    remove_ledger(db);
    (append, decide)
}

/// Bare inserts of the same rows in chunks of the same size, ids known up
/// front, with the connection settings `wallet` uses (CHECKs off).
fn bare_ingest(db: &Path, settings: &Settings, keyed: bool) -> Duration {
    let rows = workload_rows(settings);
    let mut conn = connect(db);
    // The settings `wallet transfer --batch` runs its inserts with.
    conn.pragma_update(None, "cache_size", -32 * 1024).unwrap();
    conn.pragma_update(None, "ignore_check_constraints", true)
        .unwrap();
    let start = Instant::now();
    for (c, chunk) in rows.chunks(wallet::ledger::DEFAULT_CHUNK_SIZE).enumerate() {
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO transfers (src, dst, amount, status, idem_key, created_at)
                     VALUES (?1, ?2, ?3, 'PENDING', ?4, 0)",
                )
                .unwrap();
            for (i, &(src, dst, amount)) in chunk.iter().enumerate() {
                let key =
                    keyed.then(|| format!("bench-{}", c * wallet::ledger::DEFAULT_CHUNK_SIZE + i));
                insert.execute(params![src, dst, amount, key]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed()
}

/// The reference settle loop: per batch, read the oldest PENDING rows
/// along the table from where the last batch stopped (as `wallet` reads
/// its queue from its mark), decide each against balances held in memory,
/// update each row, then each touched account once, with CHECK constraints
/// off as `wallet` has them for its transfer rows. (It leaves the pending
/// sums and the mark alone, so it does slightly less row work than
/// `wallet settle`.)
fn bare_settle(db: &Path, batch: usize) -> Duration {
    let mut conn = connect(db);
    conn.pragma_update(None, "ignore_check_constraints", true)
        .unwrap();
    let start = Instant::now();
    let mut mark = 0i64;
    loop {
        let tx = conn.transaction().unwrap();
        let due: Vec<(i64, i64, i64, i64)> = tx
            .prepare_cached(
                "SELECT tx_id, src, dst, amount FROM transfers
                  WHERE tx_id >= ?1 AND status = 'PENDING' ORDER BY tx_id LIMIT ?2",
            )
            .unwrap()
            .query_map([mark, batch as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let Some(&(last, ..)) = due.last() else {
            break;
        };
        mark = last + 1;
        let mut balances: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
        {
            let mut load = tx
                .prepare_cached("SELECT balance FROM accounts WHERE id = ?1")
                .unwrap();
            let mut balance = |id: i64, balances: &mut std::collections::HashMap<i64, i64>| {
                *balances
                    .entry(id)
                    .or_insert_with(|| load.query_row([id], |r| r.get(0)).unwrap())
            };
            let mut mark = tx
                .prepare_cached(
                    "UPDATE transfers SET status = ?2, reason = ?3, settled_at = 1 WHERE tx_id = ?1",
                )
                .unwrap();
            for &(tx_id, src, dst, amount) in &due {
                let (from, to) = (balance(src, &mut balances), balance(dst, &mut balances));
                if src != 0 && from < amount {
                    mark.execute(params![tx_id, "FAILED", "insufficient_funds"])
                        .unwrap();
                } else {
                    mark.execute(params![tx_id, "COMPLETED", None::<&str>])
                        .unwrap();
                    balances.insert(src, from - amount);
                    balances.insert(dst, to + amount);
                }
            }
            let mut write = tx
                .prepare_cached("UPDATE accounts SET balance = ?2 WHERE id = ?1")
                .unwrap();
            for (id, balance) in balances {
                write.execute([id, balance]).unwrap();
            }
            // Each user side entered in the history, as settle does.
            let mut postings: Vec<(i64, i64)> = due
                .iter()
                .flat_map(|&(tx_id, src, dst, _)| [(src, tx_id), (dst, tx_id)])
                .filter(|&(account, _)| account != 0)
                .collect();
            postings.sort_unstable();
            let mut post = tx
                .prepare_cached("INSERT INTO postings (account, tx_id) VALUES (?1, ?2)")
                .unwrap();
            for (account, tx_id) in postings {
                post.execute([account, tx_id]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed()
}

fn rate(n: f64, took: Duration) -> String {
    let per_sec = n / took.as_secs_f64();
    format!("{:.0} transfers/s ({:.2} s)", per_sec, took.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn rss(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}
