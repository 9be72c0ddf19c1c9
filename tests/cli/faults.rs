//! Failures that tell the truth about what was written: real faults injected
//! with `strace` (an errno or SIGKILL at the k-th call of a syscall), real
//! full file systems (a small tmpfs, as root), and what each leaves behind.
//!
//! The sweep runs each command once per write-type syscall it makes, with
//! each fault at that call, and holds the outcome to a model: a change
//! reported done is there exactly once, one reported not done is absent, and
//! only `outcome_unknown` (exit 8) or a killed process may leave it open.
//! After every faulted run `verify` passes and a plain rerun completes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{SQLITE_TO_VERSION_6, SQLITE_TO_VERSION_8, SQLITE_TO_VERSION_9, Sandbox};

/// `strace`, or why a test that needs it is skipped. Under `CI=true` the
/// tool is installed by `.ci/run`, so a missing one fails instead.
pub(crate) fn strace() -> Option<PathBuf> {
    let found = ["/usr/bin/strace", "/bin/strace"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "strace is missing under CI; .ci/run installs it"
        );
        eprintln!("skipped: strace is not installed");
    }
    found
}

/// How a faulted run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Exit(i32),
    Killed,
}

impl Ended {
    /// Whether the contract lets the change be either there or not.
    fn unknown(self) -> bool {
        matches!(self, Ended::Killed | Ended::Exit(8))
    }
}

struct Faulted {
    ended: Ended,
    stdout: String,
    stderr: String,
}

/// Runs `wallet --db DB ARGS…` under strace with `inject` (e.g.
/// `pwrite64:error=EIO:when=3`), following threads and children.
fn run_faulted(strace: &Path, s: &Sandbox, args: &[&str], inject: Option<&str>) -> Faulted {
    let mut cmd = Command::new(strace);
    cmd.current_dir(s.dir.path())
        .env_remove("WALLET_DB")
        .env_remove("WALLET_LOCK_TIMEOUT")
        .args(["-f", "-qq", "-o", "/dev/null"]);
    if let Some(inject) = inject {
        cmd.arg("-e").arg(format!("inject={inject}"));
    }
    cmd.arg(env!("CARGO_BIN_EXE_wallet"))
        .arg("--db")
        .arg(s.db())
        .args(args)
        .stdin(Stdio::null());
    let out = cmd.output().expect("run strace");
    faulted(out)
}

fn faulted(out: Output) -> Faulted {
    use std::os::unix::process::ExitStatusExt;
    let ended = match (out.status.code(), out.status.signal()) {
        (Some(code), _) => Ended::Exit(code),
        (None, Some(9)) => Ended::Killed,
        other => panic!("ended oddly: {other:?}"),
    };
    // strace reports a tracee killed by a signal by dying of it too.
    let ended = match ended {
        Ended::Exit(137) => Ended::Killed,
        other => other,
    };
    Faulted {
        ended,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// How many times a clean run of the command calls `syscall`.
fn calls(strace: &Path, s: &Sandbox, args: &[&str], syscall: &str) -> usize {
    calls_where(strace, s, args, syscall, |_| true).len()
}

/// The positions (from 1, as strace's `when=` counts) of the calls of
/// `syscall` in a clean run whose traced line passes `keep`.
fn calls_where(
    strace: &Path,
    s: &Sandbox,
    args: &[&str],
    syscall: &str,
    keep: impl Fn(&str) -> bool,
) -> Vec<usize> {
    let log = s.dir.path().join("calls.log");
    let out = Command::new(strace)
        .current_dir(s.dir.path())
        .args(["-f", "-qq", "-e"])
        .arg(format!("trace={syscall}"))
        .arg("-o")
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_wallet"))
        .arg("--db")
        .arg(s.db())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run strace");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    text.lines()
        .filter(|line| line.contains(&format!("{syscall}(")) && !line.contains("resumed>"))
        .enumerate()
        .filter(|(_, line)| keep(line))
        .map(|(i, _)| i + 1)
        .collect()
}

/// The faults tried at each call: an I/O error, a full disk where the call
/// writes data, and death.
fn faults(syscall: &str) -> Vec<&'static str> {
    let mut all = vec!["error=EIO", "signal=KILL"];
    if matches!(syscall, "pwrite64" | "write" | "ftruncate") {
        all.push("error=ENOSPC");
    }
    all
}

/// The write-type syscalls SQLite and `wallet` make on this machine.
const WRITE_CALLS: [&str; 6] = [
    "pwrite64",
    "fsync",
    "ftruncate",
    "unlink",
    "renameat2",
    "write",
];

/// A command to sweep: how to lay out its ledger, and the model check of
/// one faulted run (before the rerun) and of the state after the rerun.
struct Sweep {
    name: &'static str,
    setup: fn(&Sandbox),
    args: &'static [&'static str],
    check: fn(&Sandbox, &Faulted),
    rerun: fn(&Sandbox),
}

fn sweep(case: &Sweep) {
    let Some(strace) = strace() else { return };
    let template = Sandbox::new();
    (case.setup)(&template);
    let fresh = || copy_of(&template);
    let (mut runs, mut killed, mut unknown, mut refused) = (0, 0, 0, 0);
    for syscall in WRITE_CALLS {
        let n = calls(&strace, &fresh(), case.args, syscall);
        for k in 1..=n {
            for fault in faults(syscall) {
                let s = fresh();
                let inject = format!("{syscall}:{fault}:when={k}");
                let run = run_faulted(&strace, &s, case.args, Some(&inject));
                let context = format!(
                    "{}: {inject}: {:?}\nstdout {}\nstderr {}",
                    case.name, run.ended, run.stdout, run.stderr
                );
                if let Ended::Exit(code) = run.ended {
                    assert!(
                        [0, 1, 3, 4, 5, 6, 7, 8].contains(&code),
                        "an exit the contract does not have: {context}"
                    );
                    if code == 7 {
                        panic!("a fault left the ledger refused or damaged: {context}");
                    }
                }
                if s.ledger_exists() {
                    let verify = s.cmd(&["--json", "verify"]).output().unwrap();
                    assert!(
                        verify.status.success(),
                        "verify after {context}: {}",
                        String::from_utf8_lossy(&verify.stderr)
                    );
                }
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.check)(&s, &run)))
                    .unwrap_or_else(|_| panic!("model check failed after {context}"));
                (case.rerun)(&s);
                runs += 1;
                killed += usize::from(run.ended == Ended::Killed);
                unknown += usize::from(run.ended == Ended::Exit(8));
                refused += usize::from(matches!(run.ended, Ended::Exit(c) if c != 0 && c != 8));
            }
        }
    }
    eprintln!(
        "{}: {runs} faulted runs: {killed} killed, {unknown} outcome_unknown, {refused} refused, {} succeeded",
        case.name,
        runs - killed - unknown - refused
    );
    assert!(runs > 20, "{}: the sweep ran only {runs} cases", case.name);
    assert!(unknown > 0, "{}: no fault struck at the commit", case.name);
}

/// A new sandbox holding a copy of `template`'s ledger.
fn copy_of(template: &Sandbox) -> Sandbox {
    let s = Sandbox::new();
    for entry in std::fs::read_dir(template.dir.path()).unwrap().flatten() {
        std::fs::copy(entry.path(), s.dir.path().join(entry.file_name())).unwrap();
    }
    s
}

fn users(s: &Sandbox) {
    s.alice_and_bob();
}

/// How many transfers hold `key` (0 or 1: keys are unique).
fn with_key(s: &Sandbox, key: &str) -> usize {
    let out = s
        .cmd(&["--json", "get-transfer", "--id", key])
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => 1,
        Some(3) => 0,
        other => panic!("get-transfer --id {key}: {other:?}"),
    }
}

fn transfer_count(s: &Sandbox, name: &str) -> usize {
    let out = s.ok(&["--json", "history", name, "--limit", "1000"]);
    serde_json::from_str::<Vec<Value>>(&out).unwrap().len()
}

/// A change reported done is there; one reported refused is not; an
/// unknown outcome may be either.
fn agrees(run: &Faulted, present: bool) {
    match run.ended {
        Ended::Exit(0) => assert!(present, "reported done but absent"),
        ended if ended.unknown() => {}
        Ended::Exit(_) => assert!(!present, "reported failed but present"),
        Ended::Killed => unreachable!(),
    }
}

fn sweep_a_single_deposit() {
    sweep(&Sweep {
        name: "deposit",
        setup: users,
        args: &["--json", "deposit", "alice", "5", "--id", "dep-1"],
        check: |s, run| {
            agrees(run, with_key(s, "dep-1") == 1);
            if run.ended == Ended::Exit(8) {
                assert!(run.stderr.contains("outcome_unknown"), "{}", run.stderr);
            }
        },
        rerun: |s| {
            s.ok(&["deposit", "alice", "5", "--id", "dep-1"]);
            assert_eq!(
                transfer_count(s, "alice"),
                1,
                "exactly once after a retry with --id"
            );
        },
    });
}

const BATCH: &str = "{\"src\":null,\"dst\":\"alice\",\"amount\":\"1\",\"id\":\"b1\"}
{\"src\":null,\"dst\":\"bob\",\"amount\":\"2\",\"id\":\"b2\"}
{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"3\",\"id\":\"b3\"}
";

fn batch_file(s: &Sandbox) {
    users(s);
    std::fs::write(s.dir.path().join("batch.jsonl"), BATCH).unwrap();
}

fn printed_ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|doc| doc.get("tx_id").is_some())
        .map(|doc| format!("b{}", doc["line"]))
        .collect()
}

fn batch_rerun(s: &Sandbox, extra: &[&str]) {
    let mut args = vec!["--json", "transfer", "--batch", "batch.jsonl"];
    args.extend_from_slice(extra);
    s.ok(&args);
    for key in ["b1", "b2", "b3"] {
        assert_eq!(with_key(s, key), 1, "{key}");
    }
    assert_eq!(transfer_count(s, "alice") + transfer_count(s, "bob"), 4);
}

fn sweep_a_chunked_batch() {
    sweep(&Sweep {
        name: "transfer --batch --chunk-size 1",
        setup: batch_file,
        args: &[
            "--json",
            "transfer",
            "--batch",
            "batch.jsonl",
            "--chunk-size",
            "1",
        ],
        check: |s, run| {
            let present: Vec<String> = ["b1", "b2", "b3"]
                .into_iter()
                .filter(|key| with_key(s, key) == 1)
                .map(String::from)
                .collect();
            let printed = printed_ids(&run.stdout);
            // A printed result is durable, whatever happened after it.
            for key in &printed {
                assert!(present.contains(key), "printed {key} but absent");
            }
            if !run.ended.unknown() {
                assert_eq!(present, printed, "queued exactly what was reported");
            }
        },
        rerun: |s| batch_rerun(s, &[]),
    });
}

fn sweep_an_atomic_batch() {
    sweep(&Sweep {
        name: "transfer --batch --atomic",
        setup: batch_file,
        args: &["--json", "transfer", "--batch", "batch.jsonl", "--atomic"],
        check: |s, run| {
            let present = ["b1", "b2", "b3"].map(|key| with_key(s, key));
            assert!(
                present == [0; 3] || present == [1; 3],
                "all or nothing: {present:?}"
            );
            agrees(run, present == [1; 3]);
        },
        rerun: |s| batch_rerun(s, &["--atomic"]),
    });
}

fn pending_transfers(s: &Sandbox) {
    users(s);
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["settle"]);
    for amount in ["1", "2", "3", "4", "5"] {
        s.ok(&["transfer", "alice", "bob", amount]);
    }
}

fn balance(s: &Sandbox, name: &str) -> String {
    s.figure(name, "balance")
}

fn sweep_settle() {
    sweep(&Sweep {
        name: "settle --batch-size 2",
        setup: pending_transfers,
        args: &["--json", "settle", "--batch-size", "2"],
        check: |s, run| {
            if run.ended == Ended::Exit(0) {
                assert_eq!(
                    balance(s, "bob"),
                    "15.00",
                    "a settle that succeeded applied all"
                );
            }
            // A settle stopped part-way prints what it applied.
            if let (Ended::Exit(code), Ok(done)) =
                (run.ended, serde_json::from_str::<Value>(&run.stdout))
            {
                assert!(
                    done["processed"].as_u64().unwrap() <= 5,
                    "exit {code}: {done}"
                );
            }
        },
        rerun: |s| {
            s.ok(&["settle"]);
            assert_eq!(balance(s, "alice"), "85.00");
            assert_eq!(balance(s, "bob"), "15.00");
        },
    });
}

fn one_pending(s: &Sandbox) {
    users(s);
    s.ok(&["deposit", "alice", "10"]);
}

fn status_of(s: &Sandbox, tx_id: &str) -> String {
    let doc: Value = serde_json::from_str(&s.ok(&["--json", "get-transfer", tx_id])).unwrap();
    doc["status"].as_str().unwrap().to_string()
}

fn sweep_cancel() {
    sweep(&Sweep {
        name: "cancel",
        setup: one_pending,
        args: &["--json", "cancel", "1"],
        check: |s, run| agrees(run, status_of(s, "1") == "CANCELLED"),
        rerun: |s| {
            if status_of(s, "1") == "PENDING" {
                s.ok(&["cancel", "1"]);
            }
            assert_eq!(status_of(s, "1"), "CANCELLED");
            s.ok(&["settle"]);
            assert_eq!(balance(s, "alice"), "0.00");
        },
    });
}

/// Files a creation might leave beside the ledger.
fn leftovers(s: &Sandbox) -> Vec<String> {
    std::fs::read_dir(s.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".creating"))
        .collect()
}

fn sweep_ledger_creation() {
    sweep(&Sweep {
        name: "init",
        setup: |_| {},
        args: &["--json", "init"],
        check: |s, run| {
            // A ledger is there whole (verify passed above) or not at all.
            agrees(run, s.ledger_exists());
            if run.ended != Ended::Killed {
                assert_eq!(leftovers(s), Vec::<String>::new());
            }
        },
        rerun: |s| {
            let out = s.cmd(&["--json", "init"]).output().unwrap();
            assert!(matches!(out.status.code(), Some(0 | 4)), "{out:?}");
            s.ok(&["create-user", "alice", "alice@example.com"]);
            assert_eq!(
                leftovers(s),
                Vec::<String>::new(),
                "abandoned builds removed"
            );
        },
    });
}

/// A small tmpfs, mounted for one test (root only), filled to the brim.
struct FullDisk {
    dir: tempfile::TempDir,
}

impl FullDisk {
    fn new() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|out| out.status.success());
        if !mounted {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and can mount a tmpfs"
            );
            eprintln!("skipped: cannot mount a tmpfs (not root)");
            return None;
        }
        // Fill it: a write that meets the end fails with ENOSPC and stops.
        let _ = std::fs::write(dir.path().join("fill"), vec![0u8; 1 << 20]);
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

fn pending_in(s: &Sandbox, name: &str) -> String {
    s.figure(name, "pending_in")
}

fn an_atomic_batch_whose_results_cannot_be_kept_queues_nothing() {
    let Some(full) = FullDisk::new() else { return };
    let s = Sandbox::new();
    users(&s);
    let out = s
        .cmd(&["--json", "transfer", "--batch", "-", "--atomic"])
        .env("TMPDIR", full.path())
        .write_stdin(BATCH)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert_ne!(
        out.status.code(),
        Some(8),
        "the failure came before the commit"
    );
    assert_eq!(pending_in(&s, "bob"), "0.00", "nothing was queued");
    assert_eq!(with_key(&s, "b1"), 0);
}

fn settle_does_not_need_the_temporary_directory() {
    let Some(full) = FullDisk::new() else { return };
    let s = Sandbox::new();
    users(&s);
    s.ok(&["deposit", "alice", "100000"]);
    s.ok(&["settle"]);
    let lines: String = (0..3000)
        .map(|_| "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"0.01\"}\n")
        .collect();
    s.cmd(&["transfer", "--batch", "-"])
        .write_stdin(lines)
        .assert()
        .success();
    s.cmd(&["settle"])
        .env("TMPDIR", full.path())
        .assert()
        .success();
    assert_eq!(balance(&s, "bob"), "30.00");
}

fn a_commit_whose_sync_fails_is_an_unknown_outcome_naming_the_transfer() {
    let Some(strace) = strace() else { return };
    let template = Sandbox::new();
    users(&template);
    let n = calls(
        &strace,
        &copy_of(&template),
        &["deposit", "alice", "5"],
        "fsync",
    );
    let mut named = 0;
    for k in 1..=n {
        let s = copy_of(&template);
        let inject = format!("fsync:error=EIO:when={k}");
        let run = run_faulted(
            &strace,
            &s,
            &["--json", "deposit", "alice", "5"],
            Some(&inject),
        );
        if run.ended == Ended::Exit(8) {
            let doc: Value = serde_json::from_str(&run.stderr).unwrap();
            assert_eq!(doc["error"]["code"], "outcome_unknown");
            let message = doc["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("transfer 1 may have been written"),
                "{message}"
            );
            assert!(run.stdout.is_empty());
            named += 1;
        }
    }
    assert!(named > 0, "no fsync of {n} was the commit's");
}

fn output_lost_after_a_commit_is_an_unknown_outcome_naming_what_was_committed() {
    let s = Sandbox::new();
    users(&s);
    // A full device: the answer cannot be written.
    let out = s
        .process(&["deposit", "alice", "5"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("committed deposit 1, but could not print the result"),
        "{stderr}"
    );
    // Asked without a key, a retry would queue it again: the advice says so.
    assert!(
        stderr.contains("without --id a retry queues it again"),
        "{stderr}"
    );
    assert_eq!(pending_in(&s, "alice"), "5.00");
    // A reader that went away: the same, for a command that wrote.
    let script = format!(
        "set -o pipefail; '{}' --db '{}' deposit alice 6 | (exec 0<&-; true)",
        env!("CARGO_BIN_EXE_wallet"),
        s.db().display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("committed deposit 2,"), "{stderr}");
    // A command that only read still exits quietly.
    let script = format!(
        "set -o pipefail; '{}' --db '{}' get-user alice | (exec 0<&-; true)",
        env!("CARGO_BIN_EXE_wallet"),
        s.db().display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty());
}

fn a_settle_that_loses_the_lock_part_way_prints_what_it_applied() {
    let Some(strace) = strace() else { return };
    let template = Sandbox::new();
    pending_transfers(&template);
    let args = [
        "--json",
        "--lock-timeout",
        "0",
        "settle",
        "--batch-size",
        "1",
    ];
    // SQLite's write lock on a WAL ledger is byte 120 of the `-shm` file:
    // fail exactly the k-th request for it, as a lock another process holds.
    let write_locks = calls_where(&strace, &copy_of(&template), &args, "fcntl", |line| {
        line.contains("F_WRLCK") && line.contains("l_start=120, l_len=1")
    });
    let mut partial = 0;
    for &k in &write_locks {
        let s = copy_of(&template);
        let inject = format!("fcntl:error=EAGAIN:when={k}");
        let run = run_faulted(&strace, &s, &args, Some(&inject));
        if run.ended != Ended::Exit(6) || run.stdout.is_empty() {
            continue;
        }
        let done: Value = serde_json::from_str(&run.stdout).unwrap();
        let err: Value = serde_json::from_str(&run.stderr).unwrap();
        assert_eq!(err["error"]["code"], "busy");
        let processed = done["processed"].as_u64().unwrap();
        assert!(processed > 0);
        let settled = serde_json::from_str::<Vec<Value>>(&s.ok(&[
            "--json",
            "history",
            "bob",
            "--status",
            "COMPLETED",
        ]))
        .unwrap()
        .len() as u64;
        assert_eq!(
            processed, settled,
            "what it printed it had applied is what it applied"
        );
        partial += 1;
    }
    assert!(
        partial > 0,
        "no write lock of {write_locks:?} fell between two batches"
    );
}

fn a_watch_worker_rides_out_io_errors() {
    let Some(strace) = strace() else { return };
    let s = Sandbox::new();
    users(&s);
    s.ok(&["deposit", "alice", "10"]);
    // Its first two syncs fail; it must log, pause and settle all the same.
    let tracer = Command::new(&strace)
        .args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "inject=fsync:error=EIO:when=1..2",
        ])
        .arg(env!("CARGO_BIN_EXE_wallet"))
        .arg("--db")
        .arg(s.db())
        .args(["settle", "--watch", "--interval", "50"])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let settled = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        balance(&s, "alice") == "10.00"
    });
    // The worker is strace's child; the signal goes to it, not to strace.
    let children = format!("/proc/{0}/task/{0}/children", tracer.id());
    let worker = std::fs::read_to_string(children).unwrap();
    Command::new("kill")
        .args(["-TERM", worker.trim()])
        .status()
        .unwrap();
    let out = wait_or_kill(tracer, 100);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(settled, "the worker settled after its I/O errors: {stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: ") && stderr.contains("retrying in"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("settled 1 transfer"));
}

fn a_watch_worker_stops_on_a_signal_while_another_process_holds_the_lock() {
    let s = Sandbox::new();
    users(&s);
    let worker = s
        .process(&[
            "--lock-timeout",
            "60000",
            "settle",
            "--watch",
            "--interval",
            "50",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Another process takes the write lock and keeps it.
    let mut holder = Command::new("sqlite3")
        .arg(s.db())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    let stdin = holder.stdin.as_mut().unwrap();
    // The shell waits for the lock (its own busy time-out is none): the
    // watching worker may hold it for a moment when the shell begins.
    writeln!(
        stdin,
        ".timeout 20000\nBEGIN IMMEDIATE; UPDATE accounts SET email = email WHERE id = 1;"
    )
    .unwrap();
    stdin.flush().unwrap();
    // Until the holder has the lock, a cancel (which takes the write lock
    // first, and here writes nothing) finds no transfer; then it is busy.
    let locked = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(25));
        let out = s
            .cmd(&["--lock-timeout", "0", "cancel", "999999"])
            .output()
            .unwrap();
        out.status.code() == Some(6)
    });
    assert!(locked, "the other process took the lock");
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    // It stops while the lock is still held: it did not wait the lock out.
    let out = wait_or_kill(worker, 100);
    writeln!(stdin, "COMMIT;").unwrap();
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stopped by SIGTERM, not killed: {out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("settled 0 transfers"));
}

fn a_watch_worker_stops_on_sighup_with_its_summary() {
    let s = Sandbox::new();
    users(&s);
    let worker = s
        .process(&["--json", "settle", "--watch", "--interval", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    s.ok(&["deposit", "alice", "3"]);
    let settled = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        balance(&s, "alice") == "3.00"
    });
    assert!(settled);
    Command::new("kill")
        .args(["-HUP", &worker.id().to_string()])
        .status()
        .unwrap();
    let out = wait_or_kill(worker, 100);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["processed"], 1);
}

fn a_watch_worker_whose_shared_memory_file_is_deleted_stops() {
    let s = Sandbox::new();
    users(&s);
    let worker = s
        .process(&["--json", "settle", "--watch", "--interval", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::remove_file(s.dir.path().join("wallet.db-shm")).unwrap();
    s.ok(&["deposit", "alice", "10"]);
    let out = wait_or_kill(worker, 100);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"]["code"], "integrity");
    assert!(err["error"]["message"].as_str().unwrap().contains("-shm"));
}

/// Waits up to `tries` × 50 ms for a child, then kills it.
fn wait_or_kill(mut child: std::process::Child, tries: usize) -> Output {
    for _ in 0..tries {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

fn abandoned_creations_are_cleaned_and_a_live_one_is_left() {
    let s = Sandbox::new();
    let dead = s
        .dir
        .path()
        .join(".wallet.db.999999999.1700000000000.creating");
    let dead_log = s
        .dir
        .path()
        .join(".wallet.db.999999999.1700000000000.creating-journal");
    let live = s.dir.path().join(format!(
        ".wallet.db.{}.1700000000000.creating",
        std::process::id()
    ));
    for path in [&dead, &dead_log, &live] {
        std::fs::write(path, b"half a ledger").unwrap();
    }
    s.ok(&["init"]);
    assert!(
        !dead.exists() && !dead_log.exists(),
        "a dead process's build is removed"
    );
    assert!(live.exists(), "a running process's build is left alone");
}

fn reads_never_upgrade_an_older_ledger_and_migrate_does() {
    let s = Sandbox::new();
    users(&s);
    // Back to schema version 1, as an older wallet left it.
    let conn = s.sqlite();
    conn.execute_batch(&format!(
        "{} {TO_VERSION_2} DROP INDEX transfers_unapplied_by_src; DROP INDEX transfers_unapplied_by_dst;
         PRAGMA user_version = 1;",
        to_version_3()
    ))
    .unwrap();
    drop(conn);
    let before = s.ledger_bytes();
    for args in [
        &["get-user", "alice"][..],
        &["history", "alice"],
        &["get-transfer", "1"],
    ] {
        let message = s.fails(args, "upgrade_needed", 7);
        assert!(message.contains("wallet migrate"), "{message}");
    }
    assert!(before == s.ledger_bytes(), "reads left the file as it was");
    let migrated: Value = serde_json::from_str(&s.ok(&["--json", "migrate"])).unwrap();
    assert_eq!(
        migrated,
        serde_json::json!({"status": "migrated", "from": 1, "to": 10})
    );
    s.ok(&["get-user", "alice"]);
    let again: Value = serde_json::from_str(&s.ok(&["--json", "migrate"])).unwrap();
    assert_eq!(again["status"], "up_to_date");
}

/// SQL that takes a ledger of the current schema (version 4) back to what
/// version 3 built, text for text: no holds, refunds or balances in time.
fn to_version_3() -> String {
    format!(
        "{SQLITE_TO_VERSION_6}
         ALTER TABLE accounts DROP COLUMN held;
         ALTER TABLE transfers RENAME TO transfers_v4;
         {TRANSFERS_V1};
         INSERT INTO transfers SELECT tx_id, src, dst, amount, status, reason, memo, idem_key,
             created_at, settled_at FROM transfers_v4;
         DROP TABLE transfers_v4;
         CREATE UNIQUE INDEX transfers_by_key ON transfers (idem_key) WHERE idem_key IS NOT NULL;
         CREATE INDEX transfers_pending ON transfers (status) WHERE status = 'PENDING';
         CREATE INDEX transfers_unapplied_by_src ON transfers (src, status, tx_id)
    WHERE status IN ('FAILED', 'CANCELLED');
         CREATE INDEX transfers_unapplied_by_dst ON transfers (dst, status, tx_id)
    WHERE status IN ('FAILED', 'CANCELLED');
         DROP TABLE chain_links;
         DROP TABLE postings;
         DROP TABLE settle_log;
         DROP TABLE late_applied;
         CREATE TABLE postings (
    account     INTEGER NOT NULL,
    tx_id       INTEGER NOT NULL,
    PRIMARY KEY (account, tx_id)
) STRICT, WITHOUT ROWID;
         INSERT INTO postings SELECT src, tx_id FROM transfers WHERE status <> 'PENDING' AND src <> 0
             UNION ALL SELECT dst, tx_id FROM transfers WHERE status <> 'PENDING' AND dst <> 0;
         PRAGMA user_version = 3;"
    )
}

/// The transfers table as versions 1 to 3 built it.
const TRANSFERS_V1: &str = r#"CREATE TABLE transfers (
    tx_id       INTEGER PRIMARY KEY,
    src         INTEGER NOT NULL REFERENCES accounts (id),
    dst         INTEGER NOT NULL REFERENCES accounts (id),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    -- Written as equalities, not `IN (…)`: SQLite evaluates an IN list by
    -- building a temporary index for every row written, a third of the cost
    -- of settling one transfer.
    status      TEXT    NOT NULL CHECK (status = 'PENDING' OR status = 'COMPLETED' OR status = 'FAILED' OR status = 'CANCELLED'),
    reason      TEXT,
    memo        TEXT,
    idem_key    TEXT,
    created_at  INTEGER NOT NULL,
    settled_at  INTEGER,
    CHECK (src <> dst),
    CHECK ((status = 'FAILED') = (reason IS NOT NULL))
) STRICT"#;

/// SQL that takes a version 3 ledger back to what version 2 built:
/// per-account indexes, no postings.
const TO_VERSION_2: &str = "DROP TABLE postings;
     CREATE INDEX transfers_by_src ON transfers (src, tx_id);
     CREATE INDEX transfers_by_dst ON transfers (dst, tx_id);
     PRAGMA user_version = 2;";

fn a_version_2_ledger_with_history_moves_forward_in_one_write() {
    let s = Sandbox::new();
    users(&s);
    s.ok(&["deposit", "alice", "10"]);
    s.ok(&["transfer", "alice", "bob", "4"]);
    s.ok(&["transfer", "alice", "bob", "400"]);
    s.ok(&["settle"]);
    let cancelled: Value =
        serde_json::from_str(&s.ok(&["--json", "transfer", "bob", "alice", "1"])).unwrap();
    s.ok(&["cancel", &cancelled["tx_id"].to_string()]);
    s.ok(&["transfer", "bob", "alice", "2"]);
    let history_before = s.ok(&["--json", "history", "alice"]);
    s.sqlite()
        .execute_batch(&format!("{} {TO_VERSION_2}", to_version_3()))
        .unwrap();
    s.fails(&["history", "bob"], "upgrade_needed", 7);
    // The first write upgrades it, postings built from the decided transfers.
    s.ok(&["deposit", "bob", "1"]);
    let version: i64 = s
        .sqlite()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 10);
    let posted: i64 = s
        .sqlite()
        .query_row("SELECT count(*) FROM postings", [], |r| r.get(0))
        .unwrap();
    // Deposit (alice), two transfers and one cancel (both sides each).
    assert_eq!(posted, 1 + 2 * 3);
    let history_after = s.ok(&["--json", "history", "alice"]);
    let ids = |text: &str| -> Vec<i64> {
        serde_json::from_str::<Vec<Value>>(text)
            .unwrap()
            .iter()
            .map(|t| t["tx_id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&history_after), ids(&history_before));
    // Each applied transfer's balance_after is rebuilt by the upgrade,
    // exactly as settle had recorded it.
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    assert_eq!(parse(&history_after), parse(&history_before));
    let running: Vec<Value> = parse(&history_after)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["balance_after"].clone())
        .collect();
    assert!(running.contains(&Value::from("6.00")), "{running:?}");
    let report: Value = serde_json::from_str(&s.ok(&["--json", "verify"])).unwrap();
    assert_eq!(report["ok"], true, "{report}");
}

fn settle_does_not_pay_out_of_damaged_figures() {
    let s = Sandbox::new();
    users(&s);
    s.ok(&["deposit", "alice", "10"]);
    s.ok(&["settle"]);
    s.ok(&["transfer", "alice", "bob", "50"]);
    // A balance raised by hand: settle must not pay the transfer out of it.
    s.sqlite()
        .execute(
            "UPDATE accounts SET balance = balance + 10000 WHERE name = 'alice'",
            [],
        )
        .unwrap();
    let message = s.fails(&["settle"], "integrity", 7);
    assert!(message.contains("balances sum to"), "{message}");
    assert_eq!(status_of(&s, "2"), "PENDING");
    // Pending sums that no longer cover a transfer: integrity, not `internal`.
    s.sqlite()
        .execute_batch(
            "UPDATE accounts SET balance = balance - 10000 WHERE name = 'alice';
             UPDATE accounts SET pending_out = 0 WHERE name = 'alice';
             UPDATE accounts SET pending_in = 0 WHERE name = 'bob';",
        )
        .unwrap();
    let message = s.fails(&["settle"], "integrity", 7);
    assert!(message.contains("pending total"), "{message}");
    assert_eq!(status_of(&s, "2"), "PENDING");
}

/// A ledger copied while another process had committed changes only to its
/// write-ahead log: the state a crash leaves, log and all.
fn crashed_copy(build: impl FnOnce(&rusqlite::Connection)) -> Sandbox {
    let live = Sandbox::new();
    users(&live);
    live.ok(&["deposit", "alice", "5"]);
    let conn = live.sqlite();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    build(&conn);
    let copy = Sandbox::new();
    std::fs::copy(live.db(), copy.db()).unwrap();
    std::fs::copy(
        live.dir.path().join("wallet.db-wal"),
        copy.dir.path().join("wallet.db-wal"),
    )
    .unwrap();
    drop(conn);
    copy
}

fn a_refused_ledger_and_one_read_by_verify_keep_their_log_unreplayed() {
    // A planted view, committed only to the log: the ledger is refused.
    let s = crashed_copy(|conn| {
        conn.execute_batch("CREATE VIEW planted AS SELECT 1")
            .unwrap()
    });
    let before = s.ledger_bytes();
    s.fails(&["get-user", "alice"], "not_a_ledger", 7);
    s.fails(&["deposit", "alice", "1"], "not_a_ledger", 7);
    s.verify_fails();
    assert!(
        before == s.ledger_bytes(),
        "the file and its log are as they were"
    );

    // A sound ledger with a leftover log: verify reads it and leaves both.
    let s = crashed_copy(|conn| {
        conn.execute(
            "UPDATE accounts SET email = 'new@example.com' WHERE id = 1",
            [],
        )
        .unwrap();
    });
    let before = s.ledger_bytes();
    s.ok(&["verify"]);
    assert!(before == s.ledger_bytes(), "verify changed nothing");
    let user: Value = serde_json::from_str(&s.ok(&["--json", "get-user", "alice"])).unwrap();
    assert_eq!(user["email"], "new@example.com", "the log's commit is read");
}

fn a_writer_stopped_while_it_checkpoints_holds_up_no_reader() {
    let Some(strace) = strace() else { return };
    let template = Sandbox::new();
    users(&template);
    let args = ["deposit", "alice", "5"];
    let syncs = calls(&strace, &copy_of(&template), &args, "fsync");
    let s = copy_of(&template);
    // The last sync of a write is its checkpoint's, after the commit.
    let tracer = Command::new(&strace)
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "-e"])
        .arg(format!("inject=fsync:signal=STOP:when={syncs}"))
        .arg(env!("CARGO_BIN_EXE_wallet"))
        .arg("--db")
        .arg(s.db())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let children = format!("/proc/{0}/task/{0}/children", tracer.id());
    // Stopped by the injected SIGSTOP: `t (tracing stop)` that lasts, not
    // the blink of a traced syscall.
    let in_stop = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|status| status.contains("State:\tt") || status.contains("State:\tT"))
    };
    let mut stopped = None;
    let mut seen = 0;
    for _ in 0..400 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let pid = std::fs::read_to_string(&children).unwrap_or_default();
        let pid = pid.trim().to_string();
        seen = if !pid.is_empty() && in_stop(&pid) {
            seen + 1
        } else {
            0
        };
        if seen == 10 {
            stopped = Some(pid);
            break;
        }
    }
    let readers = stopped.as_ref().map(|_| {
        (
            s.cmd(&["--json", "--lock-timeout", "500", "get-user", "alice"])
                .output()
                .unwrap(),
            s.cmd(&["--json", "--lock-timeout", "500", "verify", "--quick"])
                .output()
                .unwrap(),
        )
    });
    if let Some(pid) = &stopped {
        Command::new("kill").args(["-CONT", pid]).status().unwrap();
    }
    let writer = wait_or_kill(tracer, 200);
    let pid = stopped.expect("the writer stopped at its last sync");
    let (get_user, verify) = readers.unwrap();
    assert!(
        get_user.status.success(),
        "get-user with writer {pid} stopped: {get_user:?}"
    );
    let user: Value = serde_json::from_slice(&get_user.stdout).unwrap();
    assert_eq!(user["pending_in"], "5.00", "the committed deposit is seen");
    assert!(verify.status.success(), "verify --quick: {verify:?}");
    assert!(writer.status.success(), "{writer:?}");
}

fn a_batch_whose_reader_went_away_stops_and_names_what_it_committed() {
    let s = Sandbox::new();
    batch_file(&s);
    // The reading end is closed before the batch starts, so its very first
    // result finds no reader: a reader that exits on its own could still be
    // reading when the whole batch has been printed.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = s
        .process(&["transfer", "--batch", "batch.jsonl", "--chunk-size", "1"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert!(
        stderr.contains("committed transfer 1, but could not print the result"),
        "{stderr}"
    );
    // It stopped there: the lines after the lost result were not queued.
    assert_eq!(["b1", "b2", "b3"].map(|key| with_key(&s, key)), [1, 0, 0]);
}

/// Puts beside the ledger the log of another program's live database,
/// built with `page_size` bytes a page.
pub(crate) fn plant_foreign_log(s: &Sandbox, page_size: u32) {
    let other = tempfile::tempdir().unwrap();
    let path = other.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "page_size", page_size).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.execute_batch(
        "CREATE TABLE notes (body TEXT);
         INSERT INTO notes VALUES ('not a ledger');",
    )
    .unwrap();
    std::fs::copy(
        other.path().join("other.db-wal"),
        s.dir.path().join("wallet.db-wal"),
    )
    .unwrap();
    drop(conn);
}

fn a_write_ahead_log_of_another_database_is_refused_not_replayed() {
    for page_size in [4096, 8192] {
        let s = Sandbox::new();
        users(&s);
        s.ok(&["deposit", "alice", "5"]);
        plant_foreign_log(&s, page_size);
        let before = s.ledger_bytes();
        for args in [
            &["get-user", "alice"][..],
            &["deposit", "alice", "1"],
            &["settle"],
        ] {
            let message = s.fails(args, "integrity", 7);
            assert!(message.contains("is not its own"), "{page_size}: {message}");
        }
        let out = s.cmd(&["--json", "verify"]).output().unwrap();
        assert_eq!(out.status.code(), Some(7), "{out:?}");
        assert!(
            before == s.ledger_bytes(),
            "{page_size}: the ledger and the log are untouched"
        );
        // Moved away, the ledger is whole again.
        std::fs::remove_file(s.dir.path().join("wallet.db-wal")).unwrap();
        let _ = std::fs::remove_file(s.dir.path().join("wallet.db-shm"));
        s.ok(&["verify"]);
        assert_eq!(pending_in(&s, "alice"), "5.00");
    }
}

/// A sound ledger of an older schema is `upgrade_needed` for `verify`, as
/// for every other read: never `integrity`, and left as it was.
fn verify_of_an_older_ledger_asks_for_an_upgrade() {
    for (version, sql) in [
        (
            1,
            format!(
                "{} {TO_VERSION_2} DROP INDEX transfers_unapplied_by_src; DROP INDEX transfers_unapplied_by_dst;
                 PRAGMA user_version = 1;",
                to_version_3()
            ),
        ),
        (2, format!("{} {TO_VERSION_2}", to_version_3())),
        (3, to_version_3()),
    ] {
        let s = Sandbox::new();
        users(&s);
        s.ok(&["deposit", "alice", "10"]);
        s.ok(&["settle"]);
        s.sqlite().execute_batch(&sql).unwrap();
        let before = s.ledger_bytes();
        let message = s.fails(&["verify"], "upgrade_needed", 7);
        assert!(message.contains("wallet migrate"), "v{version}: {message}");
        assert!(before == s.ledger_bytes(), "v{version}: verify changed nothing");
        s.ok(&["migrate"]);
        let report: Value = serde_json::from_str(&s.ok(&["--json", "verify"])).unwrap();
        assert_eq!(report["ok"], true, "v{version}: {report}");
    }

    // A damaged older file is `integrity`, not sent to `migrate`, which
    // would write into it.
    let s = Sandbox::new();
    users(&s);
    for i in 0..40 {
        s.ok(&[
            "-q",
            "deposit",
            "alice",
            "1",
            "--memo",
            &format!("{i:0>100}"),
        ]);
    }
    s.ok(&["settle"]);
    s.sqlite().execute_batch(&to_version_3()).unwrap();
    let bytes = s.damage_root_page("transfers");
    let error = s.verify_fails();
    assert_eq!(error.report.checks[0].name, "integrity_check");
    assert!(!error.report.checks[0].ok, "{:?}", error.report);
    assert!(
        bytes == s.ledger_bytes(),
        "verify left the damaged file as it was"
    );
}

fn a_version_3_ledger_gains_balances_in_time_in_one_write() {
    let s = Sandbox::new();
    users(&s);
    s.ok(&["deposit", "alice", "10"]);
    s.ok(&["transfer", "alice", "bob", "4"]);
    s.ok(&["settle"]);
    s.ok(&["transfer", "bob", "alice", "1"]);
    s.ok(&["settle"]);
    let before = s.ok(&["--json", "history", "alice"]);
    s.sqlite().execute_batch(&to_version_3()).unwrap();
    s.fails(&["get-user", "alice", "--at-tx", "2"], "upgrade_needed", 7);
    // A sound older ledger is never `integrity`: verify, a read, asks
    // for the upgrade as every read does.
    s.fails(&["verify"], "upgrade_needed", 7);
    let migrated: Value = serde_json::from_str(&s.ok(&["--json", "migrate"])).unwrap();
    assert_eq!(
        migrated,
        serde_json::json!({"status": "migrated", "from": 3, "to": 10})
    );
    let after = s.ok(&["--json", "history", "alice"]);
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    assert_eq!(parse(&after), parse(&before));
    let at: Value =
        serde_json::from_str(&s.ok(&["--json", "get-user", "alice", "--at-tx", "2"])).unwrap();
    assert_eq!(at["balance"], "6.00");
    let report: Value = serde_json::from_str(&s.ok(&["--json", "verify"])).unwrap();
    assert_eq!(report["ok"], true, "{report}");
}

/// A ledger of version 8, whose queue's index keyed PENDING rows by
/// status, migrates to a queue read from its mark with its queue as it
/// was: the same transfers pending, settled in the same order, and
/// `verify` sound.
fn a_version_8_queue_is_kept_by_the_upgrade() {
    use rusqlite::OptionalExtension;
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "10"]);
    s.ok(&["settle"]);
    for amount in ["3", "4", "5"] {
        s.ok(&["transfer", "alice", "bob", amount]);
    }
    let cancelled: Value =
        serde_json::from_str(&s.ok(&["--json", "transfer", "bob", "alice", "1"])).unwrap();
    s.ok(&["cancel", &cancelled["tx_id"].to_string()]);
    let pending_before = s.ok(&["--json", "history", "alice", "--status", "PENDING"]);
    s.sqlite().execute_batch(SQLITE_TO_VERSION_8).unwrap();
    s.fails(&["verify"], "upgrade_needed", 7);
    let migrated: Value = serde_json::from_str(&s.ok(&["--json", "migrate"])).unwrap();
    assert_eq!(migrated["from"], 8);
    assert_eq!(migrated["to"], 10);
    let index: Option<String> = s
        .sqlite()
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'transfers_pending'",
            [],
            |r| r.get(0),
        )
        .optional()
        .unwrap();
    assert_eq!(index, None);
    assert_eq!(
        s.ok(&["--json", "history", "alice", "--status", "PENDING"]),
        pending_before
    );
    s.ok(&["settle"]);
    // 3 and 4 are paid from 10; 5 finds 3 left and fails.
    let alice: Value = serde_json::from_str(&s.ok(&["--json", "get-user", "alice"])).unwrap();
    assert_eq!(alice["balance"], "3.00");
    assert_eq!(alice["pending_out"], "0.00");
    s.ok(&["verify"]);
}

/// A ledger of version 9, whose queue was an index of its PENDING rows,
/// migrates to one read from a mark at its oldest PENDING transfer, with
/// a hold captured below it (PENDING again under its old id) kept in the
/// queue: history shows the same pending transfers, settle decides every
/// one oldest first, and `verify` finds the queue whole. A mark moved past
/// a PENDING transfer by hand is reported.
fn a_version_9_queue_is_kept_by_the_upgrade() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "10"]);
    s.ok(&["settle"]);
    let hold: Value =
        serde_json::from_str(&s.ok(&["--json", "hold", "alice", "bob", "2"])).unwrap();
    s.ok(&["transfer", "alice", "bob", "3"]);
    s.ok(&["settle"]);
    let queued: Value =
        serde_json::from_str(&s.ok(&["--json", "transfer", "alice", "bob", "4"])).unwrap();
    s.ok(&["transfer", "alice", "bob", "5"]);
    s.ok(&["capture", &hold["tx_id"].to_string()]);
    let pending_before = s.ok(&["--json", "history", "alice", "--status", "PENDING"]);
    assert_eq!(
        serde_json::from_str::<Value>(&pending_before)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3,
        "{pending_before}"
    );
    s.sqlite().execute_batch(SQLITE_TO_VERSION_9).unwrap();
    s.fails(&["verify"], "upgrade_needed", 7);
    let migrated: Value = serde_json::from_str(&s.ok(&["--json", "migrate"])).unwrap();
    assert_eq!(migrated["from"], 9);
    assert_eq!(migrated["to"], 10);
    let mark: i64 = s
        .sqlite()
        .query_row("SELECT next_tx FROM queue_mark", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mark, queued["tx_id"].as_i64().unwrap());
    assert_eq!(
        s.ok(&["--json", "history", "alice", "--status", "PENDING"]),
        pending_before
    );
    s.ok(&["verify"]);
    // The mark moved past the oldest queued transfer hides it from settle.
    s.sqlite()
        .execute("UPDATE queue_mark SET next_tx = next_tx + 1", [])
        .unwrap();
    let error = s.verify_fails();
    assert_eq!(error.report.failed(), ["transfer_fields"]);
    let fields = &error.report.checks.iter().find(|c| !c.ok).unwrap().problems;
    let message = format!("transfer {mark} is PENDING below where settle starts reading the queue");
    assert!(
        fields.iter().any(|p| p.message.starts_with(&message)),
        "{fields:?}"
    );
    s.sqlite()
        .execute("UPDATE queue_mark SET next_tx = next_tx - 1", [])
        .unwrap();
    let settled: Value = serde_json::from_str(&s.ok(&["--json", "settle"])).unwrap();
    assert_eq!(settled["completed"], 2, "{settled}");
    assert_eq!(settled["failed"], 1, "{settled}");
    // The capture (2) and 4 are paid from the 7 left; 5 finds 1 and fails.
    let alice: Value = serde_json::from_str(&s.ok(&["--json", "get-user", "alice"])).unwrap();
    assert_eq!(alice["balance"], "1.00");
    assert_eq!(alice["pending_out"], "0.00");
    assert_eq!(alice["held"], "0.00");
    s.ok(&["verify"]);
    // Rows no batch takes (a hold, a cancelled transfer) leave nothing
    // PENDING: the next settle moves the mark past them, once.
    s.ok(&["hold", "alice", "bob", "0.50"]);
    let gone: Value =
        serde_json::from_str(&s.ok(&["--json", "transfer", "alice", "bob", "0.25"])).unwrap();
    s.ok(&["cancel", &gone["tx_id"].to_string()]);
    let mark_and_top = || -> (i64, i64) {
        s.sqlite()
            .query_row(
                "SELECT next_tx, (SELECT max(tx_id) FROM transfers) FROM queue_mark",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    let (mark, top) = mark_and_top();
    assert!(mark <= top, "{mark} {top}");
    s.ok(&["settle"]);
    assert_eq!(mark_and_top(), (top + 1, top));
    let before = s.ledger_bytes();
    s.ok(&["settle"]);
    assert!(before == s.ledger_bytes(), "an idle settle writes nothing");
    s.ok(&["verify"]);
}

engine_tests! {
    both: [],
    sqlite: [
        sweep_a_single_deposit,
        sweep_a_chunked_batch,
        sweep_an_atomic_batch,
        sweep_settle,
        sweep_cancel,
        sweep_ledger_creation,
        an_atomic_batch_whose_results_cannot_be_kept_queues_nothing,
        settle_does_not_need_the_temporary_directory,
        a_commit_whose_sync_fails_is_an_unknown_outcome_naming_the_transfer,
        output_lost_after_a_commit_is_an_unknown_outcome_naming_what_was_committed,
        a_settle_that_loses_the_lock_part_way_prints_what_it_applied,
        a_watch_worker_rides_out_io_errors,
        a_watch_worker_stops_on_a_signal_while_another_process_holds_the_lock,
        a_watch_worker_stops_on_sighup_with_its_summary,
        a_watch_worker_whose_shared_memory_file_is_deleted_stops,
        abandoned_creations_are_cleaned_and_a_live_one_is_left,
        reads_never_upgrade_an_older_ledger_and_migrate_does,
        a_version_8_queue_is_kept_by_the_upgrade,
        a_version_9_queue_is_kept_by_the_upgrade,
        a_version_2_ledger_with_history_moves_forward_in_one_write,
        settle_does_not_pay_out_of_damaged_figures,
        a_refused_ledger_and_one_read_by_verify_keep_their_log_unreplayed,
        a_writer_stopped_while_it_checkpoints_holds_up_no_reader,
        a_batch_whose_reader_went_away_stops_and_names_what_it_committed,
        a_write_ahead_log_of_another_database_is_refused_not_replayed,
        verify_of_an_older_ledger_asks_for_an_upgrade,
        a_version_3_ledger_gains_balances_in_time_in_one_write,
    ],
}
