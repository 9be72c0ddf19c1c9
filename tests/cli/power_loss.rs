//! Power-loss images: the file writes and syncs of real `wallet` processes,
//! recorded with `strace`, replayed into the states a power cut could leave
//! on disk, and each state opened as the next boot would.
//!
//! A cut after the k-th recorded call keeps every write to a file made
//! before that file's last completed `fsync`, and any subset of its later
//! writes, each whole, missing or torn at 512-byte sectors (the page cache
//! writes back in any order; a sector is the unit a disk keeps whole). An
//! answer counts as printed if its `write` to stdout came before the cut.
//! Every image must open, pass `verify`, hold every transfer whose answer
//! was printed (as far along as printed), and take a new write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{Rng, Sandbox};
use crate::faults::strace;

/// The files a power cut is modelled on: the ledger and its log. The
/// `-shm` is left out: the first process to open the ledger after a boot
/// rebuilds it from the log.
const FILES: [&str; 2] = ["wallet.db", "wallet.db-wal"];

/// One call of a recorded run that changes what a power cut leaves.
#[derive(Debug, Clone)]
enum Event {
    Write {
        file: usize,
        offset: u64,
        data: Vec<u8>,
    },
    Truncate {
        file: usize,
        len: u64,
    },
    Sync {
        file: usize,
    },
    /// Bytes written to stdout by the run of step `step`.
    Print {
        step: usize,
        text: Vec<u8>,
    },
}

/// The ledger's files before the first step, and every event of the steps.
struct Recording {
    before: [Vec<u8>; 2],
    events: Vec<Event>,
    /// What `export` listed after each step, by `tx_id`; index 0 is before
    /// the first step.
    after_step: Vec<BTreeMap<i64, Value>>,
}

/// Bytes from strace's `-xx` form: `\x41\x42…`.
fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(4), "not -xx output: {text:.80}");
    text.as_bytes()
        .chunks(4)
        .map(|chunk| {
            assert_eq!(&chunk[..2], b"\\x", "not -xx output: {text:.80}");
            u8::from_str_radix(std::str::from_utf8(&chunk[2..]).unwrap(), 16).unwrap()
        })
        .collect()
}

/// The first argument of a call on a descriptor, as `-y` prints it:
/// `4<\x2f…>`, and what follows it.
fn descriptor(args: &str) -> (i32, PathBuf, &str) {
    let (fd, rest) = args.split_once('<').expect("-y prints the path");
    let (path, rest) = rest.split_once('>').expect("-y prints the path");
    use std::os::unix::ffi::OsStringExt;
    let path = PathBuf::from(std::ffi::OsString::from_vec(unhex(path)));
    (fd.trim().parse().unwrap(), path, rest)
}

/// The quoted strings of a call's arguments, whole (a `...` after one
/// means strace cut it short).
fn quoted(args: &str) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    let mut rest = args;
    while let Some((_, after)) = rest.split_once('"') {
        let (body, tail) = after.split_once('"').expect("a closed string");
        assert!(!tail.starts_with("..."), "strace cut a string short");
        found.push(unhex(body));
        rest = tail;
    }
    found
}

/// The numbers after the last quoted string: `, 24, 32` gives [24, 32].
fn numbers_after_string(args: &str) -> Vec<u64> {
    let tail = args.rsplit_once('"').map_or(args, |(_, tail)| tail);
    tail.split(',')
        .filter_map(|field| field.trim().parse().ok())
        .collect()
}

/// Parses a trace written with `-f -y -xx`; `dir` holds the ledger.
fn parse_trace(text: &str, dir: &Path, step: usize, events: &mut Vec<Event>) {
    let file_of = |path: &Path| FILES.iter().position(|name| path == dir.join(name));
    let mut unfinished: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let (pid, call) = line.split_once(' ').unwrap_or(("", line));
        let call = call.trim_start();
        if call.starts_with("+++") || call.starts_with("---") {
            continue;
        }
        if let Some(head) = call.strip_suffix(" <unfinished ...>") {
            unfinished.insert(pid.to_string(), head.to_string());
            continue;
        }
        let whole;
        let call = if call.starts_with("<...") {
            let (_, tail) = call.split_once("resumed>").expect("a resumed call");
            whole = unfinished.remove(pid).expect("its start") + tail;
            whole.as_str()
        } else {
            call
        };
        let (name, rest) = call.split_once('(').expect("a call");
        let (args, result) = rest.rsplit_once(") = ").expect("a finished call");
        let returned: i64 = result.split_whitespace().next().unwrap().parse().unwrap();
        if returned < 0 {
            continue;
        }
        match name {
            "pwrite64" | "write" | "ftruncate" | "fsync" | "fdatasync" => {}
            "writev" | "pwritev" | "pwritev2" | "unlink" | "unlinkat" | "rename" | "renameat"
            | "renameat2" => {
                let names_a_ledger_file = quoted(args)
                    .iter()
                    .chain(std::iter::once(&descriptor_path_bytes(args)))
                    .any(|bytes| {
                        let text = String::from_utf8_lossy(bytes);
                        FILES.iter().any(|file| text.ends_with(file))
                    });
                assert!(!names_a_ledger_file, "a call this model lacks: {line:.300}");
                continue;
            }
            other => panic!("an untraced call: {other}"),
        }
        let (fd, path, rest) = descriptor(args);
        let file = file_of(&path);
        match (name, file) {
            ("write", None) if fd == 1 => {
                let text = quoted(rest).remove(0);
                events.push(Event::Print {
                    step,
                    text: text[..returned as usize].to_vec(),
                });
            }
            ("pwrite64", Some(file)) => {
                let data = quoted(rest).remove(0);
                let offset = numbers_after_string(rest)[1];
                events.push(Event::Write {
                    file,
                    offset,
                    data: data[..returned as usize].to_vec(),
                });
            }
            ("ftruncate", Some(file)) => {
                let len = rest.trim_start_matches(',').trim().parse().unwrap();
                events.push(Event::Truncate { file, len });
            }
            ("fsync" | "fdatasync", Some(file)) => events.push(Event::Sync { file }),
            ("write", Some(_)) => panic!("a write at the file position, not modelled: {line:.300}"),
            _ => {}
        }
    }
}

/// The bytes of a first argument printed as `N<\x…>`, if there is one.
fn descriptor_path_bytes(args: &str) -> Vec<u8> {
    match args.split_once('<') {
        Some((fd, rest)) if fd.trim().parse::<i32>().is_ok() || fd.trim() == "AT_FDCWD" => rest
            .split_once('>')
            .map_or_else(Vec::new, |(path, _)| unhex(path)),
        _ => Vec::new(),
    }
}

fn file_or_empty(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Every transfer `export` lists, by `tx_id`.
fn transfers(s: &Sandbox) -> Result<BTreeMap<i64, Value>, String> {
    let out = s.cmd(&["export"]).output().unwrap();
    if !out.status.success() {
        return Err(format!(
            "export failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let doc: Value = serde_json::from_str(line).unwrap();
            (doc["tx_id"].as_i64().unwrap(), doc)
        })
        .collect())
}

/// Runs each step (a `wallet` command line) under strace on a ledger laid
/// out by `setup`, and records what it wrote.
fn record(strace: &Path, setup: fn(&Sandbox), steps: &[Vec<String>]) -> Recording {
    let s = Sandbox::new();
    setup(&s);
    let dir = s.dir.path().canonicalize().unwrap();
    let before = FILES.map(|name| file_or_empty(&dir.join(name)));
    let log = dir.join("trace.log");
    let mut events = Vec::new();
    let mut after_step = vec![transfers(&s).unwrap()];
    for (step, args) in steps.iter().enumerate() {
        let out: Output = Command::new(strace)
            .current_dir(&dir)
            .env_remove("WALLET_DB")
            .env_remove("WALLET_LOCK_TIMEOUT")
            .args(["-f", "-qq", "-y", "-xx", "-s", "1048576", "-o"])
            .arg(&log)
            .args([
                "-e",
                "trace=pwrite64,write,writev,pwritev,pwritev2,ftruncate,fsync,fdatasync,unlink,unlinkat,rename,renameat,renameat2",
            ])
            .arg(env!("CARGO_BIN_EXE_wallet"))
            .arg("--db")
            .arg(dir.join("wallet.db"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run strace");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_trace(
            &std::fs::read_to_string(&log).unwrap(),
            &dir,
            step,
            &mut events,
        );
        let printed: Vec<u8> = events
            .iter()
            .filter_map(|event| match event {
                Event::Print { step: of, text } if *of == step => Some(text.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            printed, out.stdout,
            "{args:?}: the trace holds what it printed"
        );
        after_step.push(transfers(&s).unwrap());
    }
    Recording {
        before,
        events,
        after_step,
    }
}

/// Applies what survives of a write: all of it, or the 512-byte sectors
/// (counted from the start of the file) that `keep` picks.
fn apply_write(file: &mut Vec<u8>, offset: u64, data: &[u8], mut keep: impl FnMut() -> bool) {
    let mut at = offset as usize;
    let end = at + data.len();
    while at < end {
        let sector_end = ((at / 512) + 1) * 512;
        let piece_end = sector_end.min(end);
        if keep() {
            if file.len() < piece_end {
                file.resize(piece_end, 0);
            }
            file[at..piece_end]
                .copy_from_slice(&data[at - offset as usize..piece_end - offset as usize]);
        }
        at = piece_end;
    }
}

/// The files as a power cut just before event `cut` could leave them.
fn image(recording: &Recording, cut: usize, rng: &mut Rng) -> [Vec<u8>; 2] {
    let events = &recording.events[..cut];
    let synced_until = [0, 1].map(|f| {
        events
            .iter()
            .rposition(|event| matches!(event, Event::Sync { file } if *file == f))
            .unwrap_or(0)
    });
    let mut files = recording.before.clone();
    for (i, event) in events.iter().enumerate() {
        match event {
            Event::Write { file, offset, data } => {
                let target = &mut files[*file];
                if i < synced_until[*file] {
                    apply_write(target, *offset, data, || true);
                } else {
                    match rng.below(3) {
                        0 => {}
                        1 => apply_write(target, *offset, data, || true),
                        _ => apply_write(target, *offset, data, || rng.below(2) == 0),
                    }
                }
            }
            Event::Truncate { file, len } => {
                if i < synced_until[*file] || rng.below(2) == 0 {
                    files[*file].resize(*len as usize, 0);
                }
            }
            Event::Sync { .. } | Event::Print { .. } => {}
        }
    }
    files
}

/// How far along a status is: a transfer only ever moves forward.
fn rank(status: &str) -> u8 {
    match status {
        "HELD" => 0,
        "PENDING" => 1,
        _ => 2,
    }
}

/// Whether `found` is `expected` or a later state of it.
fn at_least(found: &Value, expected: &Value) -> Result<(), String> {
    let (now, then) = (
        found["status"].as_str().unwrap(),
        expected["status"].as_str().unwrap(),
    );
    let terminal = rank(then) == 2;
    if rank(now) < rank(then) || (terminal && now != then) {
        return Err(format!("printed as {then}, found {now}"));
    }
    if terminal && found != expected {
        return Err(format!("printed {expected}, found {found}"));
    }
    Ok(())
}

/// The checks of one image, opened in `s`.
fn check_image(s: &Sandbox, recording: &Recording, cut: usize) -> Result<(), String> {
    let verify = s.cmd(&["--json", "verify"]).output().unwrap();
    if !verify.status.success() {
        return Err(format!(
            "verify exit {:?}: {}",
            verify.status.code(),
            String::from_utf8_lossy(&verify.stderr)
        ));
    }
    let found = transfers(s)?;
    let events = &recording.events[..cut];
    // A step whose every answer came before the cut had completed.
    let steps = recording.after_step.len() - 1;
    let completed = (0..steps)
        .take_while(|&step| {
            let last = recording
                .events
                .iter()
                .rposition(|e| matches!(e, Event::Print { step: of, .. } if *of == step));
            last.is_some_and(|last| last < cut)
        })
        .count();
    for (tx_id, expected) in &recording.after_step[completed] {
        let found = found
            .get(tx_id)
            .ok_or(format!("transfer {tx_id} of a completed step is missing"))?;
        at_least(found, expected).map_err(|e| format!("transfer {tx_id}: {e}"))?;
    }
    let printed: Vec<u8> = events
        .iter()
        .filter_map(|event| match event {
            Event::Print { text, .. } => Some(text.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    for line in String::from_utf8_lossy(&printed).lines() {
        let Ok(answer) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(tx_id) = answer["tx_id"].as_i64() else {
            continue;
        };
        let found = found.get(&tx_id).ok_or(format!(
            "transfer {tx_id} was printed ({line}) but is missing"
        ))?;
        if let Some(status) = answer["status"].as_str() {
            let now = found["status"].as_str().unwrap();
            if rank(now) < rank(status) || (rank(status) == 2 && now != status) {
                return Err(format!("transfer {tx_id}: printed {line}, found {now}"));
            }
        }
    }
    let write = s.cmd(&["--json", "settle"]).output().unwrap();
    if !write.status.success() {
        return Err(format!(
            "a write after the cut: exit {:?}: {}",
            write.status.code(),
            String::from_utf8_lossy(&write.stderr)
        ));
    }
    Ok(())
}

/// Records `steps` on a ledger laid out by `setup`, then opens `images`
/// power-loss images of the run (seeded: the same images every run).
fn power_loss(name: &str, setup: fn(&Sandbox), steps: &[Vec<String>], images: usize, seed: u64) {
    let Some(strace) = strace() else { return };
    let recording = record(&strace, setup, steps);
    let events = recording.events.len();
    // The cuts that leave most unsynced, just before each sync completes,
    // and those that test an answer, just after each is printed. Every
    // other image is cut anywhere.
    let mut chosen: Vec<usize> = recording
        .events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::Sync { .. } => Some(i),
            Event::Print { .. } => Some(i + 1),
            _ => None,
        })
        .collect();
    chosen.push(events);
    chosen.dedup();
    let mut rng = Rng(seed);
    let answers: Vec<usize> = recording
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Print { .. }))
        .map(|(i, _)| i)
        .collect();
    let (first_answer, last_answer) = (answers[0], answers[answers.len() - 1]);
    let mut failures = Vec::new();
    let (mut answered, mut cut_short) = (0, 0);
    for n in 0..images {
        // The first two images are cut just after the last answer and just
        // before the first, so that both kinds are made whatever the seed
        // draws (a settle answers once, at its end).
        let cut = if n == 0 {
            (last_answer + 1).min(events)
        } else if n == 1 {
            first_answer
        } else if n % 2 == 0 {
            chosen[rng.below(chosen.len() as u64) as usize]
        } else {
            rng.below(events as u64 + 1) as usize
        };
        answered += usize::from(cut > first_answer);
        cut_short += usize::from(cut <= last_answer);
        let files = image(&recording, cut, &mut rng);
        let s = Sandbox::new();
        for (name, bytes) in FILES.iter().zip(&files) {
            std::fs::write(s.dir.path().join(name), bytes).unwrap();
        }
        if let Err(why) = check_image(&s, &recording, cut) {
            failures.push(format!(
                "image {n} (cut before event {cut} of {events}): {why}"
            ));
        }
    }
    eprintln!(
        "{name}: {images} power-loss images of {events} recorded calls ({answered} cut after an answer, {cut_short} before the last), {} failed",
        failures.len()
    );
    assert!(
        answered > 0 && cut_short > 0,
        "{name}: images are cut both before and after answers"
    );
    assert!(
        failures.is_empty(),
        "{name}: {} of {images} images failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// Four funded users, the deposits settled.
fn funded(s: &Sandbox) {
    for name in USERS {
        s.ok(&["create-user", name, &format!("{name}@example.com")]);
        s.ok(&["deposit", name, "1000"]);
    }
    s.ok(&["settle"]);
}

/// Transfers between the users, one line each, keyed `{prefix}{n}`.
fn batch_lines(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|n| {
            format!(
                "{{\"src\":\"{}\",\"dst\":\"{}\",\"amount\":\"{}.{:02}\",\"id\":\"{prefix}{n}\",\"memo\":\"power-loss image line {n}\"}}\n",
                USERS[n % 4],
                USERS[(n + 1 + (n / 4) % 3) % 4],
                1 + n % 7,
                n % 100
            )
        })
        .collect()
}

fn power_loss_images_of_settle() {
    power_loss(
        "settle --batch-size 15",
        |s| {
            funded(s);
            s.cmd(&["transfer", "--batch", "-"])
                .write_stdin(batch_lines("t", 120))
                .assert()
                .success();
        },
        &[args("--json settle --batch-size 15")],
        90,
        0x5e77,
    );
}

fn power_loss_images_of_a_batch() {
    power_loss(
        "transfer --batch --chunk-size 8",
        |s| {
            funded(s);
            std::fs::write(s.dir.path().join("batch.jsonl"), batch_lines("b", 60)).unwrap();
        },
        &[args("--json transfer --batch batch.jsonl --chunk-size 8")],
        70,
        0xba7c,
    );
}

fn power_loss_images_of_holds_and_captures() {
    // The deposits are transfers 1 to 4: the holds are 5 and 6.
    power_loss(
        "hold, capture, release, settle",
        funded,
        &[
            args("--json hold alice bob 25.50 --id h1"),
            args("--json hold carol dave 40 --id h2"),
            args("--json capture 5 10"),
            args("--json hold bob carol 5 --id h3"),
            args("--json capture 6"),
            args("--json release 7"),
            args("--json settle"),
        ],
        70,
        0x401d,
    );
}

/// A ledger whose log holds a committed change, as a crash leaves it: the
/// ledger file and its `-wal` copied while a connection had them open.
fn ledger_with_committed_log() -> Sandbox {
    let live = Sandbox::new();
    live.alice_and_bob();
    live.ok(&["deposit", "alice", "5"]);
    let conn = live.sqlite();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.execute(
        "UPDATE accounts SET email = 'new@example.com' WHERE name = 'alice'",
        [],
    )
    .unwrap();
    let copy = Sandbox::new();
    for name in FILES {
        std::fs::copy(live.dir.path().join(name), copy.dir.path().join(name)).unwrap();
    }
    drop(conn);
    copy
}

/// Appends to the ledger's log a frame for page 1 that a power cut left
/// half-written: its header (the log's salts, marked as a commit) over a
/// page that was never written.
fn append_torn_first_page(s: &Sandbox) {
    let log_path = s.dir.path().join("wallet.db-wal");
    let mut log = std::fs::read(&log_path).unwrap();
    let page_size = u32::from_be_bytes(log[8..12].try_into().unwrap()) as usize;
    assert!(log.len() > 32, "the log holds a commit");
    let salts = log[16..24].to_vec();
    let mut header = Vec::with_capacity(24);
    header.extend(1u32.to_be_bytes());
    header.extend(1000u32.to_be_bytes());
    header.extend(salts);
    header.extend([0u8; 8]);
    log.extend(header);
    log.extend(vec![0u8; page_size]);
    std::fs::write(&log_path, log).unwrap();
}

fn a_half_written_frame_for_the_first_page_is_dropped_as_sqlite_drops_it() {
    let s = ledger_with_committed_log();
    append_torn_first_page(&s);
    let report: Value = serde_json::from_str(&s.ok(&["--json", "verify"])).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let user: Value = serde_json::from_str(&s.ok(&["--json", "get-user", "alice"])).unwrap();
    assert_eq!(user["email"], "new@example.com", "the log's commit is read");
    assert_eq!(user["pending_in"], "5.00");
    s.ok(&["deposit", "alice", "1"]);
    s.ok(&["settle"]);
    assert_eq!(s.figure("alice", "balance"), "6.00");
}

/// The log of another program's database, with a valid checksum chain and
/// a committed image of its page 1, and after its commit the torn frame a
/// power cut leaves.
fn a_committed_log_of_another_database_is_still_refused_untouched() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "5"]);
    crate::faults::plant_foreign_log(&s, 4096);
    append_torn_first_page(&s);
    let before = s.ledger_bytes();
    for args in [
        &["get-user", "alice"][..],
        &["deposit", "alice", "1"],
        &["verify"],
    ] {
        let message = s.fails(args, "integrity", 7);
        assert!(message.contains("another program's database"), "{message}");
    }
    assert!(
        before == s.ledger_bytes(),
        "the ledger and the log are untouched"
    );
}

engine_tests! {
    both: [],
    sqlite: [
        power_loss_images_of_settle,
        power_loss_images_of_a_batch,
        power_loss_images_of_holds_and_captures,
        a_half_written_frame_for_the_first_page_is_dropped_as_sqlite_drops_it,
        a_committed_log_of_another_database_is_still_refused_untouched,
    ],
}
