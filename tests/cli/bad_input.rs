//! The bad-input matrix: every malformed argument and damaged ledger gets its exact error, and the file stays as it was.

use std::io::Write;
use std::process::{Child, ChildStdin, Output, Stdio};
use std::time::{Duration, Instant};

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command as StdCommand;

use crate::common::{Sandbox, assert_error, shapes};

/// Linux refuses a single argument longer than 128 KiB (`MAX_ARG_STRLEN`)
/// before any program runs, so this is the largest that reaches `wallet`.
const HUGE: usize = 100_000;

/// alice and bob funded, and transfer 3 PENDING with key `k1`.
fn ledger() -> Sandbox {
    let s = Sandbox::new();
    s.funded(&[("alice", "100"), ("bob", "5")]);
    s.ok(&["transfer", "alice", "bob", "1", "--id", "k1"]);
    s
}

/// No panic, whatever the input: no exit 101 and no panic message.
fn assert_no_panic(out: &Output, args: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

/// Runs `args` once with `--json` (exact code and exit, stdout empty) and
/// once for a person (same exit, one `error:` line on stderr).
fn refused(s: &Sandbox, args: &[&str], code: &str, exit: i32) {
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    let out = s.cmd(&with_json).output().unwrap();
    assert_no_panic(&out, args);
    assert_error(&out, code, exit, args);

    let out = s.cmd(args).output().unwrap();
    assert_no_panic(&out, args);
    assert_eq!(out.status.code(), Some(exit), "{args:?}");
    assert!(out.stdout.is_empty(), "{args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if code != "usage" {
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(stderr.len() < 1_000, "{args:?}: a short error");
    }
}

fn bad_amounts() -> Vec<String> {
    let mut amounts: Vec<String> = [
        "92233720368547758.08",
        "9223372036854775807",
        "99999999999999999999999999",
        "-1",
        "-0.01",
        "1.001",
        "0.000",
        "0",
        "+5",
        "1e2",
        "0x10",
        "NaN",
        "1,000",
        "1_000",
        "1.5.5",
        ".5",
        "١٢٣",
        "１２",
        "²",
        "1\n",
        "1\t",
        "\u{1b}[31m1",
        "1\u{7f}",
        "1; DROP TABLE accounts",
        "1' OR '1'='1",
        "",
        " ",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    amounts.push("9".repeat(HUGE));
    amounts
}

fn every_malformed_amount_is_refused_as_invalid_amount() {
    let s = ledger();
    let before = s.ledger_bytes();
    for amount in bad_amounts() {
        refused(&s, &["deposit", "alice", &amount], "invalid_amount", 5);
        refused(&s, &["withdraw", "alice", &amount], "invalid_amount", 5);
        refused(
            &s,
            &["transfer", "alice", "bob", &amount],
            "invalid_amount",
            5,
        );
    }
    assert_eq!(
        before,
        s.ledger_bytes(),
        "no refused amount changed the ledger"
    );
}

fn every_malformed_name_is_refused_as_invalid_name() {
    let s = ledger();
    let before = s.ledger_bytes();
    let long = "a".repeat(33);
    let huge = "a".repeat(HUGE);
    for name in [
        "",
        "a b",
        "a\nb",
        "bob\u{7}",
        "'; DROP TABLE accounts; --",
        "bob' OR '1'='1",
        "bob;",
        "bob%",
        "bob\u{200b}",
        "élise",
        "١٢٣",
        ".bob",
        "_bob",
        long.as_str(),
        huge.as_str(),
    ] {
        refused(
            &s,
            &["create-user", name, "x@example.com"],
            "invalid_name",
            5,
        );
        refused(&s, &["get-user", name], "invalid_name", 5);
        refused(&s, &["history", name], "invalid_name", 5);
        refused(&s, &["deposit", name, "1"], "invalid_name", 5);
        refused(&s, &["transfer", "alice", name, "1"], "invalid_name", 5);
    }
    // A leading dash is a bad name like any other, not an unknown flag.
    refused(
        &s,
        &["create-user", "-bob", "x@example.com"],
        "invalid_name",
        5,
    );
    assert_eq!(before, s.ledger_bytes());
}

fn every_malformed_email_is_refused_as_invalid_email() {
    let s = ledger();
    let before = s.ledger_bytes();
    let long = format!("{}@example.com", "a".repeat(243));
    let huge = format!("{}@example.com", "a".repeat(HUGE));
    for email in [
        "",
        "carol",
        "carol@",
        "@example.com",
        "carol@example",
        "carol@.com",
        "carol@example..com",
        "c@d@example.com",
        "carol @example.com",
        "carol@example.com\n",
        "carol@exa\u{1b}mple.com",
        "carol@example.com; DROP TABLE accounts",
        long.as_str(),
        huge.as_str(),
    ] {
        refused(&s, &["create-user", "carol", email], "invalid_email", 5);
    }
    assert_eq!(before, s.ledger_bytes());
}

fn every_malformed_key_memo_and_flag_is_refused_with_its_code() {
    let s = ledger();
    let before = s.ledger_bytes();
    let long_key = "k".repeat(129);
    let huge = "k".repeat(HUGE);
    for key in [
        "",
        "a\tb",
        "a\nb",
        "\u{7f}",
        "\u{85}x",
        "k\u{1b}[2J",
        long_key.as_str(),
        huge.as_str(),
    ] {
        refused(
            &s,
            &["deposit", "alice", "1", "--id", key],
            "invalid_key",
            5,
        );
        refused(&s, &["get-transfer", "--id", key], "invalid_key", 5);
    }
    let long_memo = "m".repeat(257);
    for memo in [
        "a\u{7}",
        "line\nbreak",
        "\u{1b}[31mred",
        "nul\u{1}",
        long_memo.as_str(),
        huge.as_str(),
    ] {
        refused(
            &s,
            &["deposit", "alice", "1", "--memo", memo],
            "invalid_memo",
            5,
        );
    }
    for args in [
        &["get-transfer", "abc"][..],
        &["get-transfer", "1.5"],
        &["get-transfer", "99999999999999999999"],
        &["cancel", "abc"],
        &["history", "alice", "--limit", "0"],
        &["history", "alice", "--limit", "-1"],
        &["history", "alice", "--status", "DONE"],
        &["settle", "--batch-size", "0"],
        &["settle", "--limit", "-3"],
        &["--lock-timeout", "-5", "get-user", "alice"],
        // SQLite waits at most i32::MAX ms; a longer wait once panicked.
        &["--lock-timeout", "2147483648", "get-user", "alice"],
        &["--lock-timeout", "9223372036854775807", "get-user", "alice"],
        &["init", "--scale", "300"],
        &["deposit", "alice"],
        &["transfer", "alice", "bob", "1", "extra"],
    ] {
        refused(&s, args, "usage", 2);
    }
    refused(&s, &["init", "--currency", "U$"], "invalid_currency", 5);
    refused(&s, &["transfer", "alice", "ALICE", "1"], "same_account", 5);
    refused(
        &s,
        &["deposit", "alice", "2", "--id", "k1"],
        "idempotency_conflict",
        4,
    );
    assert_eq!(before, s.ledger_bytes());
}

fn a_megabyte_argument_cannot_reach_the_binary_and_is_refused_in_process() {
    let s = ledger();
    let before = s.ledger_bytes();
    let megabyte = "9".repeat(1 << 20);
    let spawned = s.process(&["deposit", "alice", &megabyte]).output();
    let err = spawned.expect_err("the kernel refuses a 1 MiB argument");
    assert_eq!(err.raw_os_error(), Some(7), "E2BIG: {err}");

    // The library takes it as it is: refused, no panic, nothing written.
    let db = s.db();
    let exit = wallet::run(
        [
            "wallet",
            "--json",
            "--db",
            db.to_str().unwrap(),
            "deposit",
            "alice",
            &megabyte,
        ]
        .map(std::ffi::OsString::from),
    );
    assert_eq!(exit, 5);
    assert_eq!(before, s.ledger_bytes());
}

fn sql_fragments_and_unicode_are_stored_verbatim_as_bound_parameters() {
    let s = ledger();
    let texts = [
        "'); DROP TABLE transfers; --",
        "Robert'); DROP TABLE Students;--",
        "\" OR \"1\"=\"1",
        "' OR 1=1 --",
        "%",
        "_",
        "\\",
        "NULL",
        "rent — 11月 ✓ ünïcödé",
        "$(rm -rf /) `id` ${HOME}",
    ];
    for (i, text) in texts.iter().enumerate() {
        let key = format!("{text} #{i}");
        let queued: shapes::Queued =
            s.json(&["deposit", "alice", "0.01", "--memo", text, "--id", &key]);
        let by_id: shapes::Transfer = s.json(&["get-transfer", &queued.tx_id.to_string()]);
        assert_eq!(by_id.memo.as_deref(), Some(*text));
        let by_key: shapes::Transfer = s.json(&["get-transfer", "--id", &key]);
        assert_eq!(by_key, by_id);
        let stored = s.query_text(&format!(
            "SELECT memo, idem_key FROM transfers WHERE tx_id = {}",
            queued.tx_id
        ));
        assert_eq!(stored, [Some(text.to_string()), Some(key.clone())]);
    }
    for (i, email) in [
        "o'hara@example.com",
        "x'--@example.com",
        "\"quoted\"@example.com",
        "a@b.co');DROP--",
        "back\\slash$(id)@example.com",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("user{i}");
        s.ok(&["create-user", &name, email]);
        let user: shapes::User = s.json(&["get-user", &name]);
        assert_eq!(user.email, *email);
    }
    // `_` and `%` in a name are literal characters, never LIKE wildcards.
    s.ok(&["create-user", "a_b", "ab@example.com"]);
    s.fails(&["get-user", "axb"], "user_not_found", 3);
    s.fails(&["get-user", "a%"], "invalid_name", 5);

    s.ok(&["settle"]);
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok, "{report:?}");
    let tables = s.query_text(match crate::common::engine().name() {
        "sqlite" => "SELECT count(*) || '' FROM sqlite_schema WHERE type = 'table'",
        "postgres" => "SELECT count(*)::text FROM pg_tables WHERE schemaname = current_schema()",
        other => crate::common::no_case(other),
    });
    let expected = match crate::common::engine().name() {
        "sqlite" => "12",
        "postgres" => "10",
        other => crate::common::no_case(other),
    };
    assert_eq!(
        tables,
        [Some(expected.to_string())],
        "every table is still there"
    );
}

/// Every command, as the damaged-file matrix runs it; `init` separately.
const ALL_COMMANDS: &[&[&str]] = &[
    &["get-user", "alice"],
    &["history", "alice"],
    &["get-transfer", "1"],
    &["get-transfer", "--id", "k1"],
    &["verify"],
    &["deposit", "alice", "1"],
    &["withdraw", "alice", "1"],
    &["transfer", "alice", "bob", "1"],
    &["settle"],
    &["cancel", "1"],
    &["create-user", "carol", "carol@example.com"],
];

/// Every command fails with `code`; `init` says a file is there; the bytes stay.
fn damaged(s: &Sandbox, code: &str, what: &str) {
    let before = s.ledger_bytes();
    for args in ALL_COMMANDS {
        refused(s, args, code, 7);
    }
    // `init` may fill an empty file (as `mktemp` leaves); nothing else.
    if !before.is_empty() {
        refused(s, &["init"], "ledger_exists", 4);
    }
    assert_eq!(before, s.ledger_bytes(), "{what} was modified");
}

fn damaged_and_foreign_files_are_refused_by_every_command() {
    let real = ledger();
    let ledger_bytes = real.ledger_bytes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a text file", b"not a database\n".to_vec(), "not_a_ledger"),
        ("an empty file", Vec::new(), "not_a_ledger"),
        ("a file of zeros", vec![0; 4096], "not_a_ledger"),
        (
            "random bytes",
            (0..9000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            "not_a_ledger",
        ),
        (
            "a ledger cut to its header",
            ledger_bytes[..100].to_vec(),
            "integrity",
        ),
        (
            "a ledger cut short",
            ledger_bytes[..ledger_bytes.len() / 2].to_vec(),
            "integrity",
        ),
    ];
    for (what, bytes, code) in cases {
        let s = Sandbox::new();
        fs::write(s.db(), &bytes).unwrap();
        damaged(&s, code, what);
    }

    // Another program's database, even one with an `accounts` table.
    let s = Sandbox::new();
    s.sqlite()
        .execute_batch(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT, balance INTEGER);
                 INSERT INTO accounts VALUES (1, 'alice', 100);",
        )
        .unwrap();
    damaged(&s, "not_a_ledger", "another program's database");
}

fn a_ledger_from_a_newer_version_is_refused_by_every_command() {
    let s = ledger();
    s.set_schema_version(2_000_000);
    damaged(&s, "schema_too_new", "a newer ledger");
}

fn a_directory_at_the_ledger_path_is_refused() {
    let s = Sandbox::new();
    fs::create_dir(s.db()).unwrap();
    for args in ALL_COMMANDS {
        let message = s.fails(args, "not_a_ledger", 7);
        assert!(message.contains("not a regular file"), "{message}");
    }
    s.fails(&["init"], "ledger_exists", 4);
    assert_eq!(
        fs::read_dir(s.db()).unwrap().count(),
        0,
        "nothing created inside"
    );
}

/// The engine's own SQL shell (`sqlite3`, `psql`) holding a lock on the
/// ledger until dropped.
struct LockHolder {
    child: Child,
    stdin: ChildStdin,
}

/// What the shell locks.
enum Lock {
    /// Every writer waits; readers carry on.
    Write,
    /// Readers wait too.
    Exclusive,
}

impl Lock {
    fn sql(&self) -> &'static str {
        match (self, crate::common::engine().name()) {
            (Lock::Write, "sqlite") => "BEGIN IMMEDIATE;",
            (Lock::Exclusive, "sqlite") => {
                "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;
                 UPDATE ledger_meta SET created_at = created_at;"
            }
            (Lock::Write, "postgres") => {
                "BEGIN; LOCK TABLE accounts, transfers, lanes IN EXCLUSIVE MODE;"
            }
            (Lock::Exclusive, "postgres") => {
                "BEGIN; LOCK TABLE ledger_meta, schema_version, accounts, transfers, lanes
                 IN ACCESS EXCLUSIVE MODE;"
            }
            (_, other) => crate::common::no_case(other),
        }
    }
}

impl LockHolder {
    /// Starts the shell taking `lock` and waits until `probe`, a command
    /// that writes nothing when it succeeds, reports `busy`.
    fn take(s: &Sandbox, lock: Lock, probe: &[&str]) -> Self {
        let sql = lock.sql();
        let mut child = s
            .sql_shell()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sqlite3");
        let mut stdin = child.stdin.take().unwrap();
        // sqlite3 must wait out the probe's own brief read lock, not give up.
        let wait = match crate::common::engine().name() {
            "sqlite" => ".timeout 10000",
            "postgres" => "",
            other => crate::common::no_case(other),
        };
        writeln!(stdin, "{wait}\n{sql}").unwrap();
        stdin.flush().unwrap();
        // Wait until the lock is really held before measuring anything.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut with_timeout = vec!["--lock-timeout", "0"];
        with_timeout.extend_from_slice(probe);
        while s.cmd(&with_timeout).output().unwrap().status.code() != Some(6) {
            assert!(
                Instant::now() < deadline,
                "the SQL shell never took the lock"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, stdin }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let quit = match crate::common::engine().name() {
            "sqlite" => ".quit",
            "postgres" => "\\q",
            other => crate::common::no_case(other),
        };
        let _ = writeln!(self.stdin, "ROLLBACK;\n{quit}");
        let _ = self.child.wait();
    }
}

fn a_write_lock_held_past_the_timeout_makes_writers_busy_and_readers_carry_on() {
    let s = ledger();
    let before = s.ledger_bytes();
    {
        let _lock = LockHolder::take(&s, Lock::Write, &["cancel", "999"]);
        for args in [
            &["deposit", "alice", "1"][..],
            &["withdraw", "alice", "1"],
            &["transfer", "alice", "bob", "1"],
            &["settle"],
            &["cancel", "3"],
            &["create-user", "carol", "carol@example.com"],
        ] {
            let mut with_timeout = vec!["--lock-timeout", "150"];
            with_timeout.extend_from_slice(args);
            let started = Instant::now();
            let message = s.fails(&with_timeout, "busy", 6);
            assert!(message.contains("150 ms"), "{message}");
            assert!(
                started.elapsed() >= Duration::from_millis(150),
                "{args:?} waited"
            );
        }
        // WAL lets readers see the last commit while a writer holds its lock.
        let alice: shapes::User = s.json(&["--lock-timeout", "150", "get-user", "alice"]);
        assert_eq!(alice.balance, "100.00");
        let report: shapes::VerifyReport = s.json(&["--lock-timeout", "150", "verify"]);
        assert!(report.ok);
    }
    assert_eq!(before, s.ledger_bytes(), "busy commands wrote nothing");
    s.ok(&["deposit", "alice", "1"]);
}

fn an_exclusive_lock_makes_writers_busy_and_readers_of_a_file_that_holds_every_commit_carry_on() {
    let s = ledger();
    let before = s.ledger_bytes();
    {
        let probe: &[&str] = match crate::common::engine().name() {
            "sqlite" => &["cancel", "999"],
            "postgres" => &["get-user", "alice"],
            other => crate::common::no_case(other),
        };
        let _lock = LockHolder::take(&s, Lock::Exclusive, probe);
        for args in ALL_COMMANDS {
            let mut with_timeout = vec!["--lock-timeout", "100"];
            with_timeout.extend_from_slice(args);
            let reads = ["get-user", "history", "get-transfer", "verify"];
            if crate::common::engine().name() == "sqlite" && reads.contains(&args[0]) {
                // The log is empty, so the file holds every commit: a read
                // answers from it without SQLite's locks (see
                // docs/operating/ledger-file.md), and the holder's
                // uncommitted change is not in it.
                s.ok(&with_timeout);
            } else {
                refused(&s, &with_timeout, "busy", 6);
            }
        }
    }
    assert_eq!(before, s.ledger_bytes());
    s.ok(&["get-user", "alice"]);
}

/// Runs the binary as an unprivileged user. Root ignores file permission
/// bits, so when the tests run as root `setpriv` drops to `nobody`; `None`
/// when that is impossible here.
fn unprivileged(s: &Sandbox, args: &[&str]) -> Option<Output> {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    if !running_as_root() {
        return Some(s.cmd(&full).output().unwrap());
    }
    let mut cmd = StdCommand::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_wallet"))
        .arg("--db")
        .arg(s.db())
        .args(&full)
        .current_dir(s.dir.path())
        .env_remove("WALLET_DB")
        .env_remove("WALLET_LOCK_TIMEOUT");
    match cmd.output() {
        Ok(out) if out.status.code() == Some(127) || out.status.code() == Some(126) => None,
        Ok(out) => Some(out),
        Err(_) => None,
    }
}

/// Whether permission bits fail to stop this process: it can open a
/// read-only file for writing.
fn running_as_root() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    fs::write(&probe, b"").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o444)).unwrap();
    let writable = fs::OpenOptions::new().write(true).open(&probe).is_ok();
    fs::remove_file(&probe).unwrap();
    writable
}

/// Hands the sandbox to `nobody` when running as root, so it can be opened unprivileged.
fn give_away(s: &Sandbox) {
    if running_as_root() {
        for entry in fs::read_dir(s.dir.path()).unwrap() {
            std::os::unix::fs::chown(entry.unwrap().path(), Some(65534), Some(65534)).unwrap();
        }
        std::os::unix::fs::chown(s.dir.path(), Some(65534), Some(65534)).unwrap();
    }
}

fn a_read_by_another_user_leaves_no_file_behind() {
    let s = ledger();
    for side in ["wallet.db-wal", "wallet.db-shm"] {
        let _ = fs::remove_file(s.dir.path().join(side));
    }
    // Anyone may read the ledger and make files beside it.
    fs::set_permissions(s.db(), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let before = s.ledger_bytes();
    for args in [
        &["get-user", "alice"][..],
        &["history", "alice"],
        &["verify"],
    ] {
        let Some(out) = unprivileged(&s, args) else {
            eprintln!("note: running as root without setpriv; another user cannot be tested here");
            return;
        };
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let names: Vec<String> = fs::read_dir(s.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["wallet.db"], "{args:?} left files of its own");
    }
    assert_eq!(before, s.ledger_bytes());
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    s.ok(&["deposit", "alice", "1"]);
}

fn a_read_only_ledger_still_answers_reads_and_refuses_writes_cleanly() {
    let s = ledger();
    give_away(&s);
    fs::set_permissions(s.db(), fs::Permissions::from_mode(0o444)).unwrap();
    let before = s.ledger_bytes();
    let Some(out) = unprivileged(&s, &["get-user", "alice"]) else {
        eprintln!("note: running as root without setpriv; a read-only file cannot be tested here");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alice: shapes::User = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(alice.balance, "100.00");
    for args in [&["history", "bob"][..], &["get-transfer", "3"], &["verify"]] {
        let out = unprivileged(&s, args).unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for args in [
        &["deposit", "alice", "1"][..],
        &["settle"],
        &["cancel", "3"],
        &["create-user", "carol", "carol@example.com"],
    ] {
        let out = unprivileged(&s, args).unwrap();
        assert_no_panic(&out, args);
        let message = assert_error(&out, "io_error", 1, args);
        assert!(message.contains("read-only for this user"), "{message}");
        assert!(message.contains("wallet.db"), "names the ledger: {message}");
    }
    assert_eq!(before, s.ledger_bytes());
}

fn a_ledger_in_a_read_only_directory_fails_cleanly_and_stays_untouched() {
    let s = ledger();
    // The ledger alone, as a copy into the directory leaves it: its
    // write-ahead log and shared memory file stay beside a ledger once made.
    for side in ["wallet.db-wal", "wallet.db-shm"] {
        let _ = fs::remove_file(s.dir.path().join(side));
    }
    give_away(&s);
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o555)).unwrap();
    let before = s.ledger_bytes();
    let Some(out) = unprivileged(&s, &["deposit", "alice", "1"]) else {
        fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        eprintln!(
            "note: running as root without setpriv; a read-only directory cannot be tested here"
        );
        return;
    };
    // A writer needs `wallet.db-wal` and `-shm` beside the ledger, so without
    // a writable directory every write says so with `io_error`. A read of a
    // ledger with no side files reads the file as it stands.
    assert_no_panic(&out, &["deposit"]);
    assert_error(&out, "io_error", 1, &["deposit"]);
    for args in ALL_COMMANDS {
        let out = unprivileged(&s, args).unwrap();
        assert_no_panic(&out, args);
        let reads = ["get-user", "history", "get-transfer", "verify"];
        if reads.contains(&args[0]) {
            assert!(out.status.success(), "{args:?}: {out:?}");
        } else {
            assert_error(&out, "io_error", 1, args);
        }
    }
    assert_eq!(before, s.ledger_bytes());
    let leftovers: Vec<_> = fs::read_dir(s.dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no -wal or -shm appeared");
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(crate::common::file_bytes(&s.db()), before);
}

engine_tests! {
    both: [
        every_malformed_amount_is_refused_as_invalid_amount,
        every_malformed_name_is_refused_as_invalid_name,
        every_malformed_email_is_refused_as_invalid_email,
        every_malformed_key_memo_and_flag_is_refused_with_its_code,
        a_megabyte_argument_cannot_reach_the_binary_and_is_refused_in_process,
        sql_fragments_and_unicode_are_stored_verbatim_as_bound_parameters,
        a_ledger_from_a_newer_version_is_refused_by_every_command,
        a_write_lock_held_past_the_timeout_makes_writers_busy_and_readers_carry_on,
        an_exclusive_lock_makes_writers_busy_and_readers_of_a_file_that_holds_every_commit_carry_on,
    ],
    sqlite: [
        damaged_and_foreign_files_are_refused_by_every_command,
        a_directory_at_the_ledger_path_is_refused,
        a_read_by_another_user_leaves_no_file_behind,
        a_read_only_ledger_still_answers_reads_and_refuses_writes_cleanly,
        a_ledger_in_a_read_only_directory_fails_cleanly_and_stays_untouched,
    ],
}
