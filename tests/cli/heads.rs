//! Heads kept outside the ledger, on either engine: `verify --record-head`
//! appends the chain's head to a file and `verify --heads` checks that the
//! chain still extends every head there. They catch what plain `verify`
//! cannot: links deleted and sealed again over edited books.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::common::{Sandbox, assert_error, engine, no_case};

/// alice paid bob 30.00 of a 100.00 deposit; everything settled and sealed
/// in link 1 (transfers 1 and 2).
fn sealed() -> Sandbox {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["transfer", "alice", "bob", "30", "--memo", "rent"]);
    s.ok(&["settle"]);
    s
}

fn heads_file(s: &Sandbox) -> PathBuf {
    s.dir.path().join("heads.jsonl")
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `verify --record-head FILE --json`, which must pass; what it did.
fn record(s: &Sandbox, file: &Path) -> String {
    let report: Value = s.json(&["verify", "--record-head", text(file)]);
    assert_eq!(report["ok"], true, "{report}");
    report["recorded_head"].as_str().unwrap().to_string()
}

fn lines(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// `verify --heads FILE --json` on `db`.
fn check_heads(s: &Sandbox, db: &str, file: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wallet"))
        .current_dir(s.dir.path())
        .env_remove("WALLET_DB")
        .args(["--db", db, "--json", "verify", "--heads", text(file)])
        .output()
        .unwrap()
}

/// The `heads` check of a `verify --heads` that failed on it alone.
fn heads_fail(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(doc["error"]["code"], "integrity", "{doc}");
    let checks = doc["error"]["report"]["checks"].as_array().unwrap();
    let failed: Vec<&Value> = checks.iter().filter(|c| c["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "{doc}");
    assert_eq!(failed[0]["name"], "heads", "{doc}");
    failed[0].clone()
}

fn db(s: &Sandbox) -> String {
    s.db().to_str().unwrap().to_string()
}

fn heads_recorded_after_each_settle_all_pass_and_a_repeat_appends_nothing() {
    let s = sealed();
    let file = heads_file(&s);
    let out = s
        .cmd(&["verify", "--record-head", text(&file)])
        .output()
        .unwrap();
    assert!(out.status.success());
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains("recorded the head of link 1 (up to tx_id 2)"),
        "{note}"
    );
    let first = lines(&file);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["link"], 1);
    assert_eq!(first[0]["last_tx"], 2);
    let head: Value = s.json(&["verify", "--head"]);
    assert_eq!(first[0]["hash"], head["head"]["hash"]);
    assert!(first[0]["recorded_at"].as_str().unwrap().ends_with('Z'));

    // The same head again: nothing appended, and said so.
    assert_eq!(record(&s, &file), "same_as_last");
    let out = s
        .cmd(&["verify", "--record-head", text(&file)])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing appended"),
        "{out:?}"
    );
    assert_eq!(lines(&file).len(), 1);

    for amount in ["5", "7"] {
        s.ok(&["transfer", "bob", "alice", amount]);
        s.ok(&["settle"]);
        assert_eq!(record(&s, &file), "appended");
    }
    let recorded = lines(&file);
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[2]["link"], 3);
    assert_eq!(recorded[2]["last_tx"], 4);

    // A bare hash, as `jq -r .head.hash` prints it, counts too.
    let mut appended = std::fs::read_to_string(&file).unwrap();
    appended.push_str(&format!("{}\n\n", first[0]["hash"].as_str().unwrap()));
    std::fs::write(&file, appended).unwrap();
    let report: Value = s.json(&["verify", "--heads", text(&file), "--head", "--quick"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["heads_checked"], 4);
    assert_eq!(report["head"]["link"], 3);
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "heads")
        .unwrap();
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("4 heads recorded in "),
        "{check}"
    );
    // Checking and recording compose: the check first, then the record.
    let both: Value = s.json(&[
        "verify",
        "--heads",
        text(&file),
        "--record-head",
        text(&file),
        "--expect-head",
        first[0]["hash"].as_str().unwrap(),
    ]);
    assert_eq!(both["recorded_head"], "appended", "{both}");
}

/// Deletes transfer 3 (bob's deposit of 5.00) with the link that sealed it,
/// its balances fixed, as someone with write access to the ledger would.
fn delete_the_newest_link_and_its_transfer(s: &Sandbox) {
    let mut sql = "DELETE FROM chain_links WHERE seq = 2;
         DELETE FROM transfers WHERE tx_id = 3;
         UPDATE accounts SET balance = balance - 500 WHERE name = 'bob';
         UPDATE accounts SET balance = balance + 500 WHERE id = 0;"
        .to_string();
    if engine().name() == "sqlite" {
        sql.push_str(
            "DELETE FROM postings WHERE tx_id = 3;
             DELETE FROM settle_log WHERE max_tx >= 3;",
        );
    }
    s.tamper(&sql);
}

fn deleting_the_newest_link_with_its_transfers_passes_plain_verify_but_not_the_heads() {
    let s = sealed();
    let file = heads_file(&s);
    record(&s, &file);
    s.ok(&["deposit", "bob", "5"]);
    s.ok(&["settle"]);
    assert_eq!(record(&s, &file), "appended");
    let link_2 = lines(&file)[1]["hash"].as_str().unwrap().to_string();

    delete_the_newest_link_and_its_transfer(&s);
    let plain: Value = s.json(&["verify"]);
    assert_eq!(plain["ok"], true, "plain verify cannot see it: {plain}");
    // More work sealed over it: the chain is as long again, with another link 2.
    s.ok(&["transfer", "alice", "bob", "1"]);
    s.ok(&["settle"]);
    let plain: Value = s.json(&["verify", "--head"]);
    assert_eq!(plain["ok"], true, "{plain}");
    assert_eq!(plain["head"]["link"], 2);

    let check = heads_fail(&check_heads(&s, &db(&s), &file));
    assert_eq!(check["problem_count"], 1, "{check}");
    let problem = check["problems"][0]["message"].as_str().unwrap();
    assert!(
        problem.starts_with("line 2 of ")
            && problem.contains(&format!("head of link 2 {link_2}"))
            && problem.contains("rewritten"),
        "{problem}"
    );
    // The human error line names it too.
    let out = s.cmd(&["verify", "--heads", text(&file)]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    let line = String::from_utf8_lossy(&out.stderr);
    assert!(line.contains("heads (line 2 of "), "{line}");
    // Nothing is recorded over books that fail.
    let before = std::fs::read(&file).unwrap();
    let out = s
        .cmd(&[
            "--json",
            "verify",
            "--heads",
            text(&file),
            "--record-head",
            text(&file),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

fn a_shorter_chain_names_the_missing_link() {
    let s = sealed();
    let file = heads_file(&s);
    record(&s, &file);
    s.ok(&["deposit", "bob", "5"]);
    s.ok(&["settle"]);
    record(&s, &file);
    delete_the_newest_link_and_its_transfer(&s);
    let plain: Value = s.json(&["verify"]);
    assert_eq!(plain["ok"], true, "{plain}");
    let check = heads_fail(&check_heads(&s, &db(&s), &file));
    let problem = check["problems"][0]["message"].as_str().unwrap();
    assert!(
        problem.contains("link 2 is missing: the chain is shorter (1 link)"),
        "{problem}"
    );
}

fn deleting_every_link_then_settling_reseals_edited_books_which_only_the_heads_catch() {
    let s = sealed();
    let file = heads_file(&s);
    record(&s, &file);
    // 30.00 becomes 40.00, every figure that shows it fixed, and the chain gone.
    let mut sql = "DELETE FROM chain_links;
         UPDATE transfers SET amount = 4000 WHERE tx_id = 2;
         UPDATE accounts SET balance = 6000 WHERE name = 'alice';
         UPDATE accounts SET balance = 4000 WHERE name = 'bob';"
        .to_string();
    match engine().name() {
        "sqlite" => sql.push_str(
            "UPDATE postings SET balance_after = 6000 WHERE tx_id = 2
                 AND account = (SELECT id FROM accounts WHERE name = 'alice');
             UPDATE postings SET balance_after = 4000 WHERE tx_id = 2
                 AND account = (SELECT id FROM accounts WHERE name = 'bob');",
        ),
        "postgres" => sql.push_str(
            "UPDATE transfers SET src_balance = 6000, dst_balance = 4000 WHERE tx_id = 2;",
        ),
        other => no_case(other),
    }
    s.tamper(&sql);
    // The tool seals the edited books itself.
    s.ok(&["settle"]);
    let plain: Value = s.json(&["verify", "--head"]);
    assert_eq!(plain["ok"], true, "plain verify passes: {plain}");
    assert_eq!(plain["head"]["link"], 1);
    assert_eq!(s.figure("bob", "balance"), "40.00");

    let check = heads_fail(&check_heads(&s, &db(&s), &file));
    let problem = check["problems"][0]["message"].as_str().unwrap();
    assert!(
        problem.starts_with("line 1 of ") && problem.contains("head of link 1 "),
        "{problem}"
    );
}

/// A copy of the ledger as a backup and its restore make it: the file with
/// its `-wal`, or `pg_dump` of the schema restored into a fresh database.
/// Returns the copy's `--db`.
fn backup_and_restore(s: &Sandbox) -> String {
    match engine().name() {
        "sqlite" => {
            let dir = s.dir.path().join("restored");
            std::fs::create_dir(&dir).unwrap();
            let from = s.db();
            let to = dir.join("wallet.db");
            std::fs::copy(&from, &to).unwrap();
            let wal = PathBuf::from(format!("{}-wal", from.display()));
            if wal.exists() {
                std::fs::copy(&wal, format!("{}-wal", to.display())).unwrap();
            }
            text(&to).to_string()
        }
        "postgres" => {
            let server = crate::engines::pgserver::shared();
            let url = db(s);
            let schema = url.rsplit("schema=").next().unwrap().to_string();
            let pg_dump = server.psql_binary().with_file_name("pg_dump");
            let dump = std::process::Command::new(pg_dump)
                .args([
                    "-U",
                    "postgres",
                    "-d",
                    "wallet_tests",
                    "--schema",
                    &schema,
                    "-h",
                ])
                .arg(&server.dir)
                .output()
                .unwrap();
            assert!(dump.status.success(), "{dump:?}");
            let database = format!("restored_{schema}");
            server.psql("postgres", &format!("DROP DATABASE IF EXISTS {database}"));
            server.psql("postgres", &format!("CREATE DATABASE {database}"));
            let mut psql = std::process::Command::new(server.psql_binary());
            psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres"])
                .args(["-d", &database, "-h"])
                .arg(&server.dir)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null());
            let mut child = psql.spawn().unwrap();
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), &dump.stdout).unwrap();
            drop(child.stdin.take());
            assert!(child.wait().unwrap().success());
            server.url(&database, &schema)
        }
        other => no_case(other),
    }
}

fn a_restored_backup_is_checked_against_the_heads_kept_outside() {
    let s = sealed();
    let file = heads_file(&s);
    record(&s, &file);
    s.ok(&["deposit", "bob", "5"]);
    s.ok(&["settle"]);
    record(&s, &file);
    let restored = backup_and_restore(&s);
    // The ledger goes on; the heads recorded by the backup's time still hold.
    s.ok(&["deposit", "bob", "6"]);
    s.ok(&["settle"]);
    let out = check_heads(&s, &restored, &file);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["heads_checked"], 2, "{report}");

    // A head recorded after the backup was taken is missing from it.
    record(&s, &file);
    let check = heads_fail(&check_heads(&s, &restored, &file));
    let problem = check["problems"][0]["message"].as_str().unwrap();
    assert!(
        problem.starts_with("line 3 of ") && problem.contains("the chain is shorter"),
        "{problem}"
    );
}

fn a_malformed_line_is_invalid_input_naming_it_and_a_missing_file_an_io_error() {
    let s = sealed();
    let file = heads_file(&s);
    record(&s, &file);
    let mut contents = std::fs::read_to_string(&file).unwrap();
    contents.push_str("not a head\n");
    std::fs::write(&file, &contents).unwrap();
    let message = s.fails(&["verify", "--heads", text(&file)], "invalid_head", 5);
    assert!(message.contains("line 2 of "), "{message}");
    // Recording to such a file refuses too, and appends nothing.
    let message = s.fails(&["verify", "--record-head", text(&file)], "invalid_head", 5);
    assert!(message.contains("line 2"), "{message}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), contents);
    std::fs::write(&file, "{\"hash\":\"abc\",\"link\":1}\n").unwrap();
    s.fails(&["verify", "--heads", text(&file)], "invalid_head", 5);

    let missing = s.dir.path().join("no-such-file");
    let message = s.fails(&["verify", "--heads", text(&missing)], "io_error", 1);
    assert!(message.contains("no-such-file"), "{message}");
    let args = ["--json", "verify", "--record-head", "/no/such/dir/heads"];
    let out = s.cmd(&args).output().unwrap();
    assert_error(&out, "io_error", 1, &args);
}

fn an_empty_ledger_records_nothing_and_succeeds() {
    let s = Sandbox::new();
    s.alice_and_bob();
    let file = heads_file(&s);
    let out = s
        .cmd(&["verify", "--record-head", text(&file)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing is sealed yet"),
        "{out:?}"
    );
    assert!(!file.exists());
    assert_eq!(record(&s, &file), "nothing_sealed");
    // Queued but not settled: still nothing sealed.
    s.ok(&["deposit", "alice", "1"]);
    assert_eq!(record(&s, &file), "nothing_sealed");
    assert!(!file.exists());
    // An empty heads file named to check against proves nothing: it fails
    // (emptied by someone, or the wrong file named); one to record into
    // takes its first head.
    std::fs::write(&file, "").unwrap();
    let check = heads_fail(&check_heads(&s, &db(&s), &file));
    let problem = check["problems"][0]["message"].as_str().unwrap();
    assert!(problem.contains("no head is recorded"), "{problem}");
    s.ok(&["settle"]);
    assert_eq!(record(&s, &file), "appended");
}

/// `--record-head` checks the heads already in its file first: over books
/// whose chain no longer extends them (the newest link deleted, edits
/// resealed) it fails with `integrity` and appends nothing, so the habit
/// of recording after each settle raises the alarm by itself.
fn recording_over_a_rewritten_chain_fails_and_appends_nothing() {
    let s = sealed();
    let file = heads_file(&s);
    record(&s, &file);
    s.ok(&["deposit", "bob", "5"]);
    s.ok(&["settle"]);
    assert_eq!(record(&s, &file), "appended");
    delete_the_newest_link_and_its_transfer(&s);
    s.ok(&["transfer", "alice", "bob", "1"]);
    s.ok(&["settle"]);
    let before = std::fs::read(&file).unwrap();
    let out = s
        .cmd(&["--json", "verify", "--record-head", text(&file)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("heads (line 2 of "),
        "{out:?}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before, "nothing appended");
}

engine_tests! {
    both: [
        recording_over_a_rewritten_chain_fails_and_appends_nothing,
        heads_recorded_after_each_settle_all_pass_and_a_repeat_appends_nothing,
        deleting_the_newest_link_with_its_transfers_passes_plain_verify_but_not_the_heads,
        a_shorter_chain_names_the_missing_link,
        deleting_every_link_then_settling_reseals_edited_books_which_only_the_heads_catch,
        a_restored_backup_is_checked_against_the_heads_kept_outside,
        a_malformed_line_is_invalid_input_naming_it_and_a_missing_file_an_io_error,
        an_empty_ledger_records_nothing_and_succeeds,
    ],
}
