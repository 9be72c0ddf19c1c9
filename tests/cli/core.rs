//! The core commands: init, create-user, get-user, deposit, withdraw, transfer, settle.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command as StdCommand, Stdio};

use crate::common::{Sandbox, shapes};

fn init_creates_a_ledger_with_the_default_currency() {
    let s = Sandbox::new();
    let init: shapes::Init = s.json(&["init"]);
    assert_eq!(init.status, "created");
    assert_eq!(init.currency, "PHP");
    assert_eq!(init.scale, 2);
    if crate::common::engine().name() == "sqlite" {
        let mode = std::fs::metadata(s.db()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "ledger readable by its owner only");
    }
    assert!(s.ledger_exists());
}

fn init_takes_a_currency_and_scale_and_amounts_follow_it() {
    let s = Sandbox::new();
    let init: shapes::Init = s.json(&["init", "--currency", "jpy", "--scale", "0"]);
    assert_eq!((init.currency.as_str(), init.scale), ("JPY", 0));
    s.ok(&["create-user", "kenji", "kenji@example.jp"]);
    s.ok(&["deposit", "kenji", "500"]);
    s.fails(&["deposit", "kenji", "5.5"], "invalid_amount", 5);
    s.ok(&["settle"]);
    let user: shapes::User = s.json(&["get-user", "kenji"]);
    assert_eq!(
        (user.balance.as_str(), user.currency.as_str()),
        ("500", "JPY")
    );
}

fn init_refuses_an_existing_ledger_and_bad_currencies() {
    let s = Sandbox::new();
    s.ok(&["init"]);
    let before = s.ledger_bytes();
    s.fails(&["init"], "ledger_exists", 4);
    s.fails(&["init", "--currency", "USD"], "ledger_exists", 4);
    assert_eq!(before, s.ledger_bytes());

    let other = Sandbox::new();
    other.fails(&["init", "--currency", "U$"], "invalid_currency", 5);
    other.fails(&["init", "--scale", "19"], "invalid_currency", 5);
    assert!(!other.ledger_exists(), "a refused init creates no file");
}

fn create_user_then_get_user_shows_a_zero_balance() {
    let s = Sandbox::new();
    let created: shapes::UserCreated = s.json(&["create-user", "Alice", "alice@example.com"]);
    assert_eq!(created.status, "created");
    assert_eq!(created.name, "Alice");
    assert_eq!(created.email, "alice@example.com");
    let user: shapes::User = s.json(&["get-user", "alice"]);
    assert_eq!(
        user,
        shapes::User {
            name: "Alice".into(),
            email: "alice@example.com".into(),
            balance: "0.00".into(),
            available: "0.00".into(),
            pending_in: "0.00".into(),
            pending_out: "0.00".into(),
            held: "0.00".into(),
            currency: "PHP".into(),
            overdraft: "0.00".into(),
            frozen: false,
            closed: false,
            balances: Some(
                [(
                    "PHP".to_string(),
                    shapes::Balance {
                        balance: "0.00".into(),
                        available: "0.00".into(),
                        pending_in: "0.00".into(),
                        pending_out: "0.00".into(),
                        held: "0.00".into(),
                        overdraft: "0.00".into(),
                    }
                )]
                .into()
            ),
        }
    );
}

fn user_names_are_unique_regardless_of_case() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "a@example.com"]);
    let message = s.fails(&["create-user", "ALICE", "b@example.com"], "user_exists", 4);
    assert!(message.contains("alice"), "{message}");
}

fn invalid_names_and_emails_are_refused_without_creating_a_ledger() {
    let s = Sandbox::new();
    s.fails(&["create-user", "-bob", "b@example.com"], "invalid_name", 5);
    s.fails(
        &["create-user", "bob smith", "b@example.com"],
        "invalid_name",
        5,
    );
    s.fails(
        &["create-user", &"b".repeat(33), "b@example.com"],
        "invalid_name",
        5,
    );
    s.fails(
        &["create-user", "bob", "bob-at-example.com"],
        "invalid_email",
        5,
    );
    s.fails(&["create-user", "bob", "bob@localhost"], "invalid_email", 5);
    assert!(!s.ledger_exists());
}

fn reads_never_create_a_ledger() {
    let s = Sandbox::new();
    s.fails(&["get-user", "alice"], "ledger_not_found", 3);
    s.fails(&["history", "alice"], "ledger_not_found", 3);
    s.fails(&["get-transfer", "1"], "ledger_not_found", 3);
    s.fails(&["transfer", "alice", "bob", "5"], "ledger_not_found", 3);
    assert!(!s.ledger_exists());
    assert_eq!(
        std::fs::read_dir(s.dir.path()).unwrap().count(),
        0,
        "no stray files"
    );
}

fn deposit_transfer_withdraw_and_settle_move_money_exactly() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let deposit: shapes::Queued = s.json(&["deposit", "alice", "100.50"]);
    assert_eq!(deposit.status, "PENDING");
    let transfer: shapes::Queued = s.json(&["transfer", "alice", "bob", "30"]);
    assert_eq!(transfer.tx_id, deposit.tx_id + 1);
    let withdraw: shapes::Queued = s.json(&["withdraw", "bob", "10.25"]);
    assert_eq!(withdraw.status, "PENDING");

    let alice: shapes::User = s.json(&["get-user", "alice"]);
    assert_eq!(alice.balance, "0.00", "nothing moves before settle");
    assert_eq!(alice.pending_in, "100.50");
    assert_eq!(alice.pending_out, "30.00");
    assert_eq!(alice.available, "-30.00");

    let settled: shapes::Settled = s.json(&["settle"]);
    assert_eq!(
        settled,
        shapes::Settled {
            processed: 3,
            completed: 3,
            failed: 0,
            remaining: 0,
            expired: 0
        }
    );
    let alice: shapes::User = s.json(&["get-user", "alice"]);
    let bob: shapes::User = s.json(&["get-user", "bob"]);
    assert_eq!(
        (alice.balance.as_str(), alice.available.as_str()),
        ("70.50", "70.50")
    );
    assert_eq!(
        (alice.pending_in.as_str(), alice.pending_out.as_str()),
        ("0.00", "0.00")
    );
    assert_eq!(bob.balance, "19.75");
}

fn settle_fails_a_transfer_that_would_overdraw_and_keeps_order() {
    let s = Sandbox::new();
    s.funded(&[("alice", "50"), ("bob", "0.01")]);
    let first: shapes::Queued = s.json(&["transfer", "alice", "bob", "40"]);
    let overdraw: shapes::Queued = s.json(&["transfer", "alice", "bob", "20"]);
    // Settled oldest first: the refill from bob comes after the overdraw, so it cannot save it.
    s.ok(&["transfer", "bob", "alice", "40"]);
    let settled: shapes::Settled = s.json(&["settle"]);
    assert_eq!((settled.completed, settled.failed), (2, 1));
    let failed: shapes::Transfer = s.json(&["get-transfer", &overdraw.tx_id.to_string()]);
    assert_eq!(failed.status, "FAILED");
    assert_eq!(failed.reason.as_deref(), Some("insufficient_funds"));
    let done: shapes::Transfer = s.json(&["get-transfer", &first.tx_id.to_string()]);
    assert_eq!((done.status.as_str(), done.reason), ("COMPLETED", None));
    let alice: shapes::User = s.json(&["get-user", "alice"]);
    assert_eq!(alice.balance, "50.00");
    let bob: shapes::User = s.json(&["get-user", "bob"]);
    assert_eq!(bob.balance, "0.01");
}

fn settle_limit_leaves_the_rest_pending() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    for _ in 0..5 {
        s.ok(&["deposit", "alice", "1"]);
    }
    let first: shapes::Settled = s.json(&["settle", "--limit", "2"]);
    assert_eq!((first.processed, first.remaining), (2, 3));
    let rest: shapes::Settled = s.json(&["settle", "--batch-size", "2"]);
    assert_eq!((rest.processed, rest.completed, rest.remaining), (3, 3, 0));
    let again: shapes::Settled = s.json(&["settle"]);
    assert_eq!(again.processed, 0, "nothing is applied twice");
    let alice: shapes::User = s.json(&["get-user", "alice"]);
    assert_eq!(alice.balance, "5.00");
}

fn transfer_checks_users_and_amounts_but_not_funds() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    let before = s.ledger_bytes();
    s.fails(&["transfer", "alice", "carol", "5"], "user_not_found", 3);
    s.fails(&["transfer", "carol", "alice", "5"], "user_not_found", 3);
    s.fails(&["transfer", "alice", "ALICE", "5"], "same_account", 5);
    s.fails(&["deposit", "carol", "5"], "user_not_found", 3);
    s.fails(&["withdraw", "carol", "5"], "user_not_found", 3);
    for bad in [
        "0",
        "-5",
        "+5",
        "1.001",
        "1e3",
        "1,000",
        " 5",
        "",
        "abc",
        "92233720368547758.08",
    ] {
        s.fails(&["transfer", "alice", "bob", bad], "invalid_amount", 5);
    }
    assert_eq!(before, s.ledger_bytes(), "failed commands change nothing");
    let queued: shapes::Queued = s.json(&["transfer", "alice", "bob", "1000000"]);
    assert_eq!(queued.status, "PENDING");
}

fn human_output_is_one_line_for_actions_and_a_table_for_records() {
    let s = Sandbox::new();
    let line = s.ok(&["create-user", "alice", "alice@example.com"]);
    assert_eq!(line, "created user alice <alice@example.com>\n");
    let line = s.ok(&["deposit", "alice", "12.3"]);
    assert_eq!(line, "queued deposit 1 (PENDING)\n");
    // Quiet: a command that creates something prints only its id; one whose
    // effect is its answer prints nothing; data asked for is still printed.
    assert_eq!(s.ok(&["-q", "deposit", "alice", "1"]), "2\n");
    assert_eq!(
        s.ok(&["-q", "create-user", "bob", "bob@example.com"]),
        "bob\n"
    );
    let id = s.ok(&["-q", "transfer", "alice", "bob", "1"]);
    assert_eq!(id, "3\n");
    assert_eq!(s.ok(&["-q", "cancel", id.trim()]), "");
    assert!(s.ok(&["-q", "get-user", "bob"]).contains("bob@example.com"));
    s.ok(&["settle"]);
    let table = s.ok(&["get-user", "alice"]);
    let balance_row = table.lines().find(|l| l.contains("balance")).unwrap();
    assert!(balance_row.contains("13.30 PHP"), "{table}");
    assert!(!table.contains('\u{1b}'), "no colour when not a terminal");

    let err = s.cmd(&["get-user", "nobody"]).output().unwrap();
    assert_eq!(err.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&err.stderr),
        "error: user 'nobody' not found\n"
    );
    assert!(err.stdout.is_empty());
}

fn json_output_pipes_into_jq() {
    let s = Sandbox::new();
    s.funded(&[("alice", "100.50")]);
    let out = StdCommand::new("sh")
        .arg("-c")
        .arg("\"$WALLET\" --json get-user alice | jq -r .balance")
        .env("WALLET", env!("CARGO_BIN_EXE_wallet"))
        .env("WALLET_DB", s.db())
        .output()
        .expect("sh and jq");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "100.50\n");
}

fn the_ledger_comes_from_flag_then_env_then_current_directory() {
    let s = Sandbox::new();
    let bin = env!("CARGO_BIN_EXE_wallet");
    let run = |envdb: Option<&std::path::Path>, args: &[&str]| {
        let mut cmd = StdCommand::new(bin);
        cmd.current_dir(s.dir.path())
            .env_remove("WALLET_DB")
            .args(args);
        if let Some(path) = envdb {
            cmd.env("WALLET_DB", path);
        }
        assert!(cmd.status().unwrap().success());
    };
    run(None, &["create-user", "cwd", "c@example.com"]);
    assert!(s.dir.path().join("wallet.db").exists());
    let from_env = s.dir.path().join("env.db");
    run(Some(&from_env), &["create-user", "env", "e@example.com"]);
    assert!(from_env.exists());
    let from_flag = s.dir.path().join("flag.db");
    run(
        Some(&from_env),
        &[
            "--db",
            from_flag.to_str().unwrap(),
            "create-user",
            "flag",
            "f@example.com",
        ],
    );
    assert!(from_flag.exists());
}

fn foreign_files_are_refused_and_left_untouched() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text", b"hello, I am not a database\n".to_vec()),
        ("empty", Vec::new()),
        ("zeros", vec![0; 8192]),
    ];
    for (name, content) in cases {
        let s = Sandbox::new();
        std::fs::write(s.db(), &content).unwrap();
        s.fails(&["get-user", "alice"], "not_a_ledger", 7);
        s.fails(
            &["create-user", "alice", "a@example.com"],
            "not_a_ledger",
            7,
        );
        if !content.is_empty() {
            s.fails(&["init"], "ledger_exists", 4);
        }
        assert_eq!(s.ledger_bytes(), content, "{name} was modified");
    }

    let s = Sandbox::new();
    {
        let conn = rusqlite::Connection::open(s.db()).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x');")
            .unwrap();
    }
    let before = s.ledger_bytes();
    s.fails(&["deposit", "alice", "5"], "not_a_ledger", 7);
    s.fails(&["settle"], "not_a_ledger", 7);
    assert_eq!(before, s.ledger_bytes());
}

fn a_ledger_from_a_newer_version_is_refused_untouched() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.set_schema_version(999);
    let before = s.ledger_bytes();
    let message = s.fails(&["get-user", "alice"], "schema_too_new", 7);
    assert!(message.contains("999"), "{message}");
    s.fails(&["deposit", "alice", "1"], "schema_too_new", 7);
    assert_eq!(before, s.ledger_bytes());
}

fn a_ledger_locked_past_the_timeout_reports_busy() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    let lock = s.hold_write_lock();
    let message = s.fails(
        &["--lock-timeout", "100", "deposit", "alice", "1"],
        "busy",
        6,
    );
    assert!(message.contains("100 ms"), "{message}");
    drop(lock);
    s.ok(&["deposit", "alice", "1"]);
}

fn concurrent_settles_apply_each_transfer_once() {
    let s = Sandbox::new();
    s.funded(&[("alice", "1000"), ("bob", "0.01")]);
    for _ in 0..200 {
        s.ok(&["-q", "transfer", "alice", "bob", "1"]);
    }
    let settles: Vec<_> = (0..4)
        .map(|_| {
            s.process(&["--json", "settle", "--batch-size", "7"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut processed = 0;
    for child in settles {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let summary: shapes::Settled = serde_json::from_slice(&out.stdout).unwrap();
        processed += summary.processed;
    }
    assert_eq!(
        processed, 200,
        "the settles shared the work without overlap"
    );
    let bob: shapes::User = s.json(&["get-user", "bob"]);
    assert_eq!(bob.balance, "200.01");
    let alice: shapes::User = s.json(&["get-user", "alice"]);
    assert_eq!(alice.balance, "800.00");
}

fn usage_errors_exit_2_and_help_has_examples() {
    let s = Sandbox::new();
    s.fails(&["transfer", "alice"], "usage", 2);
    s.fails(&["frobnicate"], "usage", 2);
    let out = s.cmd(&["transfer", "alice"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("--help"),
        "{stderr}"
    );
    let help = s.ok(&["transfer", "--help"]);
    assert!(help.contains("wallet transfer alice bob 25.50"), "{help}");
    let version = s.ok(&["--version"]);
    assert!(version.starts_with("wallet "), "{version}");
}

fn processes_racing_to_create_the_ledger_all_see_one_whole_ledger() {
    let s = Sandbox::new();
    let names: Vec<String> = (0..8).map(|i| format!("user{i}")).collect();
    let children: Vec<_> = names
        .iter()
        .map(|name| {
            s.process(&["create-user", name, &format!("{name}@example.com")])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for name in &names {
        let user: shapes::User = s.json(&["get-user", name]);
        assert_eq!(&user.name, name);
    }
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("creating"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn memos_and_keys_may_start_with_a_dash_but_not_hide_formatting() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    let queued: shapes::Queued =
        s.json(&["deposit", "alice", "1", "--memo", "-5% off", "--id", "-k"]);
    let shown: shapes::Transfer = s.json(&["get-transfer", "--id", "-k"]);
    assert_eq!(
        (shown.tx_id, shown.memo.as_deref()),
        (queued.tx_id, Some("-5% off"))
    );
    let before = s.ledger_bytes();
    s.fails(
        &["deposit", "alice", "1", "--memo", "rtl \u{202e} gnp.exe"],
        "invalid_memo",
        5,
    );
    s.fails(
        &["deposit", "alice", "1", "--id", "\u{202e}key"],
        "invalid_key",
        5,
    );
    assert_eq!(before, s.ledger_bytes());
}

fn an_overflowing_pending_total_names_the_account_and_the_typed_amount_is_not_mangled() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    s.ok(&["deposit", "alice", "92233720368547758.07"]);
    let message = s.fails(&["deposit", "bob", "0.01"], "invalid_amount", 5);
    assert!(message.contains("the external account"), "{message}");
    assert!(!message.contains("'1'"), "{message}");

    // A batch line says exactly what the single command says.
    let out = s
        .cmd(&["--json", "transfer", "--batch", "-"])
        .write_stdin("{\"src\":null,\"dst\":\"bob\",\"amount\":\"0.01\"}\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["error"]["code"], "invalid_amount");
    assert_eq!(line["error"]["message"], message.as_str());
}

fn a_path_with_a_newline_stays_on_one_error_line() {
    let s = Sandbox::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wallet"))
        .current_dir(s.dir.path())
        .env("WALLET_DB", "miss\ning.db")
        .args(["get-user", "alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("miss\\ning.db"), "{stderr}");
}

fn a_foreign_database_with_a_leftover_write_ahead_log_is_not_replayed_into() {
    let s = Sandbox::new();
    let live = s.dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&live).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE notes (body TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
             INSERT INTO notes SELECT hex(randomblob(100)) FROM n;",
    )
    .unwrap();
    // A copy taken while the other program still runs is the state a crash
    // leaves: committed pages sit in the -wal file, not yet in the database.
    std::fs::copy(&live, s.db()).unwrap();
    std::fs::copy(
        live.with_extension("db-wal"),
        s.dir.path().join("wallet.db-wal"),
    )
    .unwrap();
    drop(conn);
    let before = s.ledger_bytes();
    s.fails(&["get-user", "alice"], "not_a_ledger", 7);
    s.fails(&["deposit", "alice", "1"], "not_a_ledger", 7);
    s.fails(&["verify"], "not_a_ledger", 7);
    assert!(
        before == s.ledger_bytes(),
        "the foreign file and its log are untouched"
    );
}

engine_tests! {
    both: [
        init_creates_a_ledger_with_the_default_currency,
        init_takes_a_currency_and_scale_and_amounts_follow_it,
        init_refuses_an_existing_ledger_and_bad_currencies,
        create_user_then_get_user_shows_a_zero_balance,
        user_names_are_unique_regardless_of_case,
        invalid_names_and_emails_are_refused_without_creating_a_ledger,
        reads_never_create_a_ledger,
        deposit_transfer_withdraw_and_settle_move_money_exactly,
        settle_fails_a_transfer_that_would_overdraw_and_keeps_order,
        settle_limit_leaves_the_rest_pending,
        transfer_checks_users_and_amounts_but_not_funds,
        human_output_is_one_line_for_actions_and_a_table_for_records,
        json_output_pipes_into_jq,
        the_ledger_comes_from_flag_then_env_then_current_directory,
        a_ledger_from_a_newer_version_is_refused_untouched,
        a_ledger_locked_past_the_timeout_reports_busy,
        concurrent_settles_apply_each_transfer_once,
        usage_errors_exit_2_and_help_has_examples,
        processes_racing_to_create_the_ledger_all_see_one_whole_ledger,
        memos_and_keys_may_start_with_a_dash_but_not_hide_formatting,
        an_overflowing_pending_total_names_the_account_and_the_typed_amount_is_not_mangled,
        a_path_with_a_newline_stays_on_one_error_line,
    ],
    sqlite: [
        foreign_files_are_refused_and_left_untouched,
        a_foreign_database_with_a_leftover_write_ahead_log_is_not_replayed_into,
    ],
}
