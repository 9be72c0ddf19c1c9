//! The files a ledger is made of, and who may use them: reads of a ledger
//! its user cannot write, another user's reads, and `-wal`/`-shm` files or
//! a ledger path that another user planted.
//!
//! Root ignores permission bits, so these tests run the binary as other
//! users with `setpriv` and are skipped (with a note) when not run as root.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output};

use crate::common::{Sandbox, assert_error, file_bytes};

/// The ledger's owner in these tests, and another user.
const OWNER: u32 = 65534;
const OTHER: u32 = 65533;

/// Whether this process can give files away, which the tests need.
/// Under `CI=true` (where `.ci/run` runs as root) they never skip.
fn root() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    fs::write(&probe, b"").unwrap();
    let able = std::os::unix::fs::chown(&probe, Some(OWNER), Some(OWNER)).is_ok()
        && StdCommand::new("setpriv").arg("--version").output().is_ok();
    assert!(
        able || std::env::var_os("CI").is_none(),
        "the file-ownership tests need root and setpriv under CI"
    );
    able
}

/// `wallet --json --db DB ARGS…` run as `uid`, from `dir`.
fn wallet_as(uid: u32, dir: &Path, db: &Path, args: &[&str]) -> Output {
    let mut cmd = StdCommand::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_wallet"))
        .arg("--json")
        .arg("--db")
        .arg(db)
        .args(args)
        .current_dir(dir)
        .env_remove("WALLET_DB")
        .env_remove("WALLET_LOCK_TIMEOUT");
    cmd.output().unwrap()
}

fn succeeded(out: &Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn side(s: &Sandbox, suffix: &str) -> PathBuf {
    s.dir.path().join(format!("wallet.db{suffix}"))
}

/// Each of the ledger's files, with its mode, owner and group if it exists.
type Modes = Vec<(String, Option<(u32, u32, u32)>)>;

fn modes(s: &Sandbox) -> Modes {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let found = fs::symlink_metadata(side(s, suffix))
                .ok()
                .map(|m| (m.mode() & 0o7777, m.uid(), m.gid()));
            (format!("wallet.db{suffix}"), found)
        })
        .collect()
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A ledger with alice (100.00, settled) and bob, every file of it
/// (and its directory) handed to `OWNER`.
fn owned_ledger() -> Sandbox {
    let s = Sandbox::new();
    s.funded(&[("alice", "100"), ("bob", "5")]);
    s.ok(&["transfer", "alice", "bob", "1", "--id", "k1"]);
    give(&s, OWNER);
    s
}

fn give(s: &Sandbox, uid: u32) {
    for entry in fs::read_dir(s.dir.path()).unwrap() {
        std::os::unix::fs::lchown(entry.unwrap().path(), Some(uid), Some(uid)).unwrap();
    }
    std::os::unix::fs::chown(s.dir.path(), Some(uid), Some(uid)).unwrap();
    chmod(s.dir.path(), 0o755);
}

/// A ledger whose last commit is still in its `-wal` (alice's email
/// changed, as a writer stopped before its checkpoint leaves it), with
/// no `-shm`: a read must use the log, and so needs a `-shm`.
fn commit_left_in_log(s: &Sandbox) {
    let conn = s.sqlite();
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .unwrap();
    conn.execute(
        "UPDATE accounts SET email = 'alice@new.example.com' WHERE name = 'alice'",
        [],
    )
    .unwrap();
    drop(conn);
    assert!(fs::metadata(side(s, "-wal")).unwrap().len() > 0);
    let _ = fs::remove_file(side(s, "-shm"));
}

fn a_read_of_a_read_only_ledger_changes_no_mode_and_the_owner_writes_after() {
    if !root() {
        eprintln!("note: not root; the owner and another user cannot be tested here");
        return;
    }
    let s = owned_ledger();
    chmod(&s.db(), 0o444);
    let before = modes(&s);
    assert!(
        before.iter().all(|(_, found)| found.is_some()),
        "{before:?}"
    );
    let bytes = s.ledger_bytes();
    let reads: [&[&str]; 4] = [
        &["get-user", "alice"],
        &["history", "alice"],
        &["get-transfer", "3"],
        &["verify"],
    ];
    for args in reads {
        succeeded(&wallet_as(OWNER, s.dir.path(), &s.db(), args), args);
        assert_eq!(modes(&s), before, "{args:?} as the owner");
        // Root reads the same way and changes no mode or owner either.
        succeeded(&wallet_as(0, s.dir.path(), &s.db(), args), args);
        assert_eq!(modes(&s), before, "{args:?} as root");
    }
    assert_eq!(bytes, s.ledger_bytes(), "a read changed the ledger");
    chmod(&s.db(), 0o644);
    succeeded(
        &wallet_as(OWNER, s.dir.path(), &s.db(), &["deposit", "alice", "1"]),
        &["deposit"],
    );
    succeeded(
        &wallet_as(OWNER, s.dir.path(), &s.db(), &["settle"]),
        &["settle"],
    );
    let alice = succeeded(
        &wallet_as(OWNER, s.dir.path(), &s.db(), &["get-user", "alice"]),
        &["get-user"],
    );
    assert!(alice.contains("\"balance\":\"100.00\""), "{alice}");
}

fn a_side_file_a_read_must_make_is_the_owners_and_is_removed_after() {
    if !root() {
        eprintln!("note: not root; the owner and another user cannot be tested here");
        return;
    }
    // A ledger only others may write (0464) keeps the -shm: it cannot be
    // removed safely without a write lock on the ledger (see
    // docs/operating/ledger-file.md).
    for (reader, mode) in [(OWNER, 0o444), (OWNER, 0o640), (0, 0o444), (OWNER, 0o464)] {
        let s = owned_ledger();
        commit_left_in_log(&s);
        give(&s, OWNER);
        chmod(&s.db(), mode);
        let before = modes(&s);
        let bytes = file_bytes(&s.db());
        let out = wallet_as(reader, s.dir.path(), &s.db(), &["get-user", "alice"]);
        let alice = succeeded(&out, &["get-user"]);
        assert!(
            alice.contains("alice@new.example.com"),
            "read the log: {alice}"
        );
        if mode == 0o464 {
            let shm = fs::metadata(side(&s, "-shm")).unwrap();
            assert_eq!((shm.uid(), shm.mode() & 0o777), (OWNER, 0o664));
            assert_eq!(modes(&s)[..2], before[..2]);
        } else {
            assert_eq!(
                modes(&s),
                before,
                "uid {reader}, mode {mode:o}: the -shm it made is gone"
            );
        }
        assert_eq!(bytes, file_bytes(&s.db()), "the ledger file is untouched");
        chmod(&s.db(), 0o644);
        succeeded(
            &wallet_as(OWNER, s.dir.path(), &s.db(), &["deposit", "alice", "1"]),
            &["deposit"],
        );
    }
}

fn another_user_is_told_which_side_files_stop_a_read_and_the_remedies_work() {
    if !root() {
        eprintln!("note: not root; another user cannot be tested here");
        return;
    }
    let s = owned_ledger();
    // The owner shares the ledger file, but not the -wal and -shm a
    // writer made beside it (0600, as `init` made the ledger).
    chmod(&s.db(), 0o644);
    assert_eq!(
        fs::metadata(side(&s, "-shm")).unwrap().mode() & 0o777,
        0o600
    );
    let before = modes(&s);
    let bytes = s.ledger_bytes();
    let out = wallet_as(OTHER, s.dir.path(), &s.db(), &["get-user", "alice"]);
    let message = assert_error(&out, "io_error", 1, &["get-user"]);
    for needed in [
        "unable to open database file",
        "wallet.db-wal",
        "wallet.db-shm",
        "copy",
    ] {
        assert!(message.contains(needed), "names {needed:?}: {message}");
    }
    assert_eq!(modes(&s), before);
    assert_eq!(bytes, s.ledger_bytes());

    // Remedy one: a copy of the files this user can read, in a directory of its own.
    let mine = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(mine.path(), Some(OTHER), Some(OTHER)).unwrap();
    chmod(mine.path(), 0o700);
    let cp = StdCommand::new("setpriv")
        .arg(format!("--reuid={OTHER}"))
        .arg(format!("--regid={OTHER}"))
        .args(["--clear-groups", "--", "cp"])
        .arg(s.db())
        .arg(mine.path())
        .status()
        .unwrap();
    assert!(cp.success());
    let copy = mine.path().join("wallet.db");
    let alice = succeeded(
        &wallet_as(OTHER, mine.path(), &copy, &["get-user", "alice"]),
        &["get-user"],
    );
    assert!(alice.contains("\"balance\":\"100.00\""), "{alice}");

    // Remedy two: the owner lets others read the side files too.
    chmod(&side(&s, "-wal"), 0o644);
    chmod(&side(&s, "-shm"), 0o644);
    let before = modes(&s);
    let alice = succeeded(
        &wallet_as(OTHER, s.dir.path(), &s.db(), &["get-user", "alice"]),
        &["get-user"],
    );
    assert!(alice.contains("\"balance\":\"100.00\""), "{alice}");
    assert_eq!(modes(&s), before);
    assert_eq!(bytes, s.ledger_bytes());
    succeeded(
        &wallet_as(OWNER, s.dir.path(), &s.db(), &["deposit", "alice", "1"]),
        &["deposit"],
    );

    // A log that holds commits and no -shm: only the owner may make one.
    commit_left_in_log(&s);
    give(&s, OWNER);
    for file in [s.db(), side(&s, "-wal")] {
        chmod(&file, 0o644);
    }
    let before = modes(&s);
    let out = wallet_as(OTHER, s.dir.path(), &s.db(), &["get-user", "alice"]);
    let message = assert_error(&out, "io_error", 1, &["get-user"]);
    assert!(message.contains("wallet.db-shm"), "{message}");
    assert_eq!(modes(&s), before, "no file made");
    // The copy, with its log, reads the commit the log holds.
    let mine = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(mine.path(), Some(OTHER), Some(OTHER)).unwrap();
    let cp = StdCommand::new("setpriv")
        .arg(format!("--reuid={OTHER}"))
        .arg(format!("--regid={OTHER}"))
        .args(["--clear-groups", "--", "cp"])
        .arg(s.db())
        .arg(side(&s, "-wal"))
        .arg(mine.path())
        .status()
        .unwrap();
    assert!(cp.success());
    let alice = succeeded(
        &wallet_as(
            OTHER,
            mine.path(),
            &mine.path().join("wallet.db"),
            &["get-user", "alice"],
        ),
        &["get-user"],
    );
    assert!(alice.contains("alice@new.example.com"), "{alice}");
}

/// A ledger in a directory anyone may write to (sticky, as `/tmp`).
fn shared_dir_ledger() -> Sandbox {
    let s = Sandbox::new();
    s.funded(&[("alice", "100")]);
    chmod(s.dir.path(), 0o1777);
    s
}

fn a_side_file_that_is_a_symbolic_link_is_refused_by_name() {
    for suffix in ["-wal", "-shm"] {
        let s = shared_dir_ledger();
        let elsewhere = s.dir.path().join("elsewhere");
        fs::write(&elsewhere, b"").unwrap();
        let _ = fs::remove_file(side(&s, suffix));
        std::os::unix::fs::symlink(&elsewhere, side(&s, suffix)).unwrap();
        let bytes = file_bytes(&s.db());
        for args in [
            &["get-user", "alice"][..],
            &["deposit", "alice", "1"],
            &["verify"],
        ] {
            let message = s.fails(args, "io_error", 1);
            assert!(message.contains(&format!("wallet.db{suffix}")), "{message}");
            assert!(message.contains("symbolic link"), "{message}");
        }
        assert!(
            file_bytes(&elsewhere).is_empty(),
            "nothing written through the link"
        );
        assert_eq!(bytes, file_bytes(&s.db()));
        fs::remove_file(side(&s, suffix)).unwrap();
        s.ok(&["deposit", "alice", "1"]);
    }
}

fn a_side_file_owned_by_another_user_is_refused_by_name() {
    if !root() {
        eprintln!("note: not root; files of another user cannot be made here");
        return;
    }
    for suffix in ["-wal", "-shm"] {
        let s = shared_dir_ledger();
        assert!(side(&s, suffix).exists());
        std::os::unix::fs::chown(side(&s, suffix), Some(OTHER), Some(OTHER)).unwrap();
        let bytes = file_bytes(&s.db());
        for args in [
            &["get-user", "alice"][..],
            &["deposit", "alice", "1"],
            &["settle"],
        ] {
            let message = s.fails(args, "io_error", 1);
            assert!(message.contains(&format!("wallet.db{suffix}")), "{message}");
            assert!(message.contains(&format!("uid {OTHER}")), "{message}");
        }
        assert_eq!(bytes, file_bytes(&s.db()));
        // A ledger its group may write is shared by that group: a side
        // file a member made, in the ledger's group, is theirs.
        std::os::unix::fs::chown(side(&s, suffix), Some(OTHER), Some(0)).unwrap();
        s.fails(&["get-user", "alice"], "io_error", 1);
        chmod(&s.db(), 0o660);
        s.ok(&["get-user", "alice"]);
        chmod(&s.db(), 0o600);
        // The ledger's owner's own side files are fine for any reader.
        std::os::unix::fs::chown(side(&s, suffix), Some(0), Some(0)).unwrap();
        s.ok(&["deposit", "alice", "1"]);
    }
}

fn a_ledger_path_that_is_a_link_is_followed_only_when_the_user_owns_the_link() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100")]);
    let link = s.dir.path().join("link.db");
    std::os::unix::fs::symlink("wallet.db", &link).unwrap();
    let via_link = |args: &[&str]| {
        let mut full = vec!["--db", link.to_str().unwrap()];
        full.extend_from_slice(args);
        s.cmd(&full).output().unwrap()
    };
    // The user's own link: followed, and the side files are the target's.
    succeeded(&via_link(&["deposit", "alice", "1"]), &["deposit"]);
    succeeded(&via_link(&["settle"]), &["settle"]);
    assert_eq!(s.figure("alice", "balance"), "101.00");
    assert!(!s.dir.path().join("link.db-wal").exists());
    assert!(!s.dir.path().join("link.db-shm").exists());
    if !root() {
        eprintln!("note: not root; a link of another user cannot be made here");
        return;
    }
    std::os::unix::fs::lchown(&link, Some(OTHER), Some(OTHER)).unwrap();
    let bytes = s.ledger_bytes();
    for args in [&["deposit", "alice", "1"][..], &["get-user", "alice"]] {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = via_link(&full);
        let message = assert_error(&out, "io_error", 1, args);
        assert!(message.contains("link.db"), "names the link: {message}");
        assert!(message.contains("symbolic link"), "{message}");
    }
    assert_eq!(bytes, s.ledger_bytes());
}

fn creating_a_ledger_beside_planted_side_files_is_refused() {
    for suffix in ["-wal", "-shm"] {
        for args in [
            &["init"][..],
            &["create-user", "alice", "alice@example.com"],
        ] {
            let s = Sandbox::new();
            let elsewhere = s.dir.path().join("elsewhere");
            fs::write(&elsewhere, b"").unwrap();
            std::os::unix::fs::symlink(&elsewhere, side(&s, suffix)).unwrap();
            let message = s.fails(args, "io_error", 1);
            assert!(message.contains(&format!("wallet.db{suffix}")), "{message}");
            assert!(!s.db().exists(), "{args:?} made no ledger");
            assert!(file_bytes(&elsewhere).is_empty());
        }
    }
}

/// Reads of a ledger whose log is empty are made without side files, with
/// no lock to keep out a writer that starts, commits and moves its commit
/// into the file while they read. However the reads and such writers
/// interleave, every read answers for a sound ledger: none reports the
/// file damaged or fails.
fn reads_beside_writers_that_checkpoint_into_the_file_never_report_damage() {
    let s = Sandbox::new();
    for user in ["alice", "bob"] {
        s.ok(&["create-user", user, &format!("{user}@example.com")]);
    }
    s.ok(&["deposit", "alice", "1000"]);
    s.ok(&["settle"]);
    let wallet = |args: &[&str]| {
        let mut full = vec!["--json", "--lock-timeout", "20000"];
        full.extend_from_slice(args);
        s.process(&full).output().unwrap()
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Each process moves what it wrote into the file as it exits.
            for _ in 0..40 {
                for args in [&["transfer", "alice", "bob", "0.01"][..], &["settle"]] {
                    let out = wallet(args);
                    assert!(out.status.success(), "{args:?}: {out:?}");
                }
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let mut reads = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) || reads < 2 {
            for args in [&["verify", "--quick"][..], &["get-user", "bob"]] {
                let out = wallet(args);
                assert!(
                    out.status.success(),
                    "{args:?} beside writers: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                reads += 1;
            }
        }
    });
    let report: serde_json::Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
}

/// A watching `settle` holds the ledger open on two connections (one counts
/// what is left, one settles). Another program that opens and closes the
/// ledger meanwhile (an online backup with the `sqlite3` shell) must find
/// it in use: had the worker's shared lock been dropped, the shell's close
/// would checkpoint and delete the log under the worker, which then stops.
fn a_watching_worker_keeps_its_lock_while_another_program_backs_the_ledger_up() {
    use std::process::Stdio;
    use std::time::Duration;
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "1"]);
    let mut worker = s
        .process(&["--json", "settle", "--watch", "--interval", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let balance_is = |want: &str| {
        (0..400).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            s.figure("alice", "balance") == want
        })
    };
    assert!(balance_is("1.00"), "the worker settled the deposit");
    let backup = s.db().with_file_name("backup.db");
    let shell = std::process::Command::new("sqlite3")
        .arg(s.db())
        .arg(format!(".backup '{}'", backup.display()))
        .status()
        .unwrap();
    assert!(shell.success());
    assert!(
        s.db().with_file_name("wallet.db-wal").exists(),
        "the log is still there: the shell found the ledger in use"
    );
    s.ok(&["deposit", "alice", "2"]);
    assert!(balance_is("3.00"), "the worker settled on");
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker still runs"
    );
    std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    let out = worker.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["processed"], 2, "{summary}");
}

engine_tests! {
    both: [],
    sqlite: [
        a_read_of_a_read_only_ledger_changes_no_mode_and_the_owner_writes_after,
        a_side_file_a_read_must_make_is_the_owners_and_is_removed_after,
        another_user_is_told_which_side_files_stop_a_read_and_the_remedies_work,
        a_side_file_that_is_a_symbolic_link_is_refused_by_name,
        a_side_file_owned_by_another_user_is_refused_by_name,
        a_ledger_path_that_is_a_link_is_followed_only_when_the_user_owns_the_link,
        creating_a_ledger_beside_planted_side_files_is_refused,
        reads_beside_writers_that_checkpoint_into_the_file_never_report_damage,
        a_watching_worker_keeps_its_lock_while_another_program_backs_the_ledger_up,
    ],
}
