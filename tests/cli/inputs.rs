//! Strict inputs and exact messages: what is refused, what it is called,
//! and the small frictions a script meets.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::Sandbox;

fn users(s: &Sandbox) {
    s.alice_and_bob();
}

/// `transfer --batch -` fed `input` with `--json`: each output line parsed.
fn batch(s: &Sandbox, input: &str) -> (Vec<Value>, Option<i32>) {
    let out = s
        .cmd(&["--json", "transfer", "--batch", "-"])
        .write_stdin(input.to_string())
        .output()
        .unwrap();
    let (lines, code, _) = crate::common::batch_results(&out);
    (lines, code)
}

fn pending_in(s: &Sandbox, name: &str) -> String {
    s.figure(name, "pending_in")
}

fn only_a_json_object_is_a_batch_line() {
    let s = Sandbox::new();
    users(&s);
    let refused = [
        r#"["alice","bob","5"]"#,
        r#"["alice","bob","6","k-arr","memo-arr"]"#,
        "5",
        r#""alice""#,
        "null",
        "true",
        r#"{"src":{"name":"alice"},"dst":"bob","amount":"1"}"#,
        r#"{"src":"alice","dst":"bob","amount":5}"#,
        r#"{"src":"alice","dst":"bob","amount":5.5}"#,
        "{not json",
    ];
    for line in refused {
        let (out, code) = batch(&s, &format!("{line}\n"));
        assert_eq!(code, Some(5), "{line}");
        assert_eq!(out[0]["error"]["code"], "invalid_line", "{line}: {out:?}");
        let message = out[0]["error"]["message"].as_str().unwrap();
        assert!(!message.contains("LineDoc"), "{line}: {message}");
    }
    let (_, code) = batch(
        &s,
        "\u{feff}{\"src\":null,\"dst\":\"bob\",\"amount\":\"2\"}\n",
    );
    assert_eq!(code, Some(0), "a byte-order mark on line 1 is skipped");
    assert_eq!(pending_in(&s, "bob"), "2.00", "only the object line queued");
    let (out, _) = batch(&s, r#"{"src":"alice","dst":"bob","amount":5}"#);
    let message = out[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("never a JSON number"), "{message}");
}

fn a_batch_whose_every_line_failed_says_nothing_was_queued() {
    let s = Sandbox::new();
    users(&s);
    let out = s
        .cmd(&["transfer", "--batch", "-"])
        .write_stdin("[1]\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 of 1 batch line failed; nothing was queued"),
        "{stderr}"
    );
}

fn an_empty_environment_variable_is_named_not_the_flag() {
    let s = Sandbox::new();
    users(&s);
    for var in ["WALLET_DB", "WALLET_LOCK_TIMEOUT"] {
        let out = Command::new(env!("CARGO_BIN_EXE_wallet"))
            .current_dir(s.dir.path())
            .env(var, "")
            .args(["--json", "get-user", "alice"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err: Value = serde_json::from_slice(&out.stderr).unwrap();
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(var) && message.contains("empty"),
            "{message}"
        );
    }
    // Given the flag, the empty variable does not count.
    let out = Command::new(env!("CARGO_BIN_EXE_wallet"))
        .current_dir(s.dir.path())
        .env("WALLET_DB", "")
        .arg("--db")
        .arg(s.db())
        .args(["get-user", "alice"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn only_init_and_create_user_create_a_ledger() {
    let s = Sandbox::new();
    s.fails(&["settle"], "ledger_not_found", 3);
    let out = s
        .process(&["settle", "--watch"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(!s.ledger_exists(), "nothing was created");
}

fn init_fills_an_empty_file_as_mktemp_leaves_it() {
    let s = Sandbox::new();
    std::fs::write(s.db(), b"").unwrap();
    s.fails(&["get-user", "alice"], "not_a_ledger", 7);
    s.ok(&["init"]);
    users(&s);
    s.ok(&["verify"]);
    let dir = s.dir.path().join("books");
    std::fs::create_dir(&dir).unwrap();
    let message = s.fails(&["--db", dir.to_str().unwrap(), "init"], "ledger_exists", 4);
    assert!(
        message.starts_with("a directory already exists"),
        "{message}"
    );
    let message = s.fails(&["--db", "/dev/null", "init"], "ledger_exists", 4);
    assert!(message.contains("not a regular file"), "{message}");
}

fn every_limit_refuses_zero_alike() {
    let s = Sandbox::new();
    users(&s);
    let settle = s.fails(&["settle", "--limit", "0"], "usage", 2);
    let history = s.fails(&["history", "alice", "--limit", "0"], "usage", 2);
    let why = |message: &str| message.split(": ").last().unwrap().to_string();
    assert!(settle.contains("must be at least 1"), "{settle}");
    assert_eq!(why(&settle), why(&history));
}

fn global_flags_may_be_repeated_and_the_last_counts() {
    let s = Sandbox::new();
    users(&s);
    let user: Value =
        serde_json::from_str(&s.ok(&["--json", "--json", "get-user", "alice"])).unwrap();
    assert_eq!(user["name"], "alice");
    assert_eq!(s.ok(&["-q", "-q", "deposit", "alice", "1"]), "1\n");
    let other = s.dir.path().join("other.db");
    s.ok(&[
        "--db",
        other.to_str().unwrap(),
        "--db",
        s.db().to_str().unwrap(),
        "get-user",
        "alice",
    ]);
    assert!(!other.exists());
}

fn refused_keys_memos_and_emails_are_quoted_and_explained() {
    let s = Sandbox::new();
    users(&s);
    let long_memo = "m".repeat(300);
    let message = s.fails(
        &["deposit", "alice", "1", "--memo", &long_memo],
        "invalid_memo",
        5,
    );
    assert!(message.contains("'mmmm"), "{message}");
    let message = s.fails(
        &["deposit", "alice", "1", "--id", "k\u{202e}"],
        "invalid_key",
        5,
    );
    assert!(message.contains("'k\\u{202e}'"), "{message}");
    let message = s.fails(&["create-user", "carol", "x@.com"], "invalid_email", 5);
    assert!(message.contains("empty part"), "{message}");
    let message = s.fails(&["create-user", "carol", ""], "invalid_email", 5);
    assert!(message.contains("it is empty"), "{message}");
}

fn amounts_with_leading_zeros_are_refused() {
    let s = Sandbox::new();
    users(&s);
    for typo in ["007", "01", "00.50", "000000000000001"] {
        let message = s.fails(&["deposit", "alice", typo], "invalid_amount", 5);
        assert!(message.contains("leading zeros"), "{message}");
    }
    s.ok(&["deposit", "alice", "0.50"]);
    s.fails(&["transfer", "alice", "bob", "-5"], "invalid_amount", 5);
}

/// Scripts drop an answer with a `/dev/null` stdout, opened however the
/// harness likes: Python's `DEVNULL` and systemd's `StandardOutput=null`
/// open it read-write, like a shell's `<>`. A stdout closed with `>&-` is
/// the same `/dev/null` by the time the program runs. Each runs the command
/// and exits with the command's own status.
fn a_dev_null_stdout_however_opened_runs_the_command() {
    let s = Sandbox::new();
    users(&s);
    let wallet = env!("CARGO_BIN_EXE_wallet");
    let db = s.db().display().to_string();
    let python = "import subprocess, sys\n\
         ok = subprocess.run([sys.argv[1], '--db', sys.argv[2], 'deposit', 'alice', '5'], stdout=subprocess.DEVNULL)\n\
         missing = subprocess.run([sys.argv[1], '--db', sys.argv[2], 'get-user', 'nobody'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
         print(ok.returncode, missing.returncode)\n";
    let out = Command::new("python3")
        .args(["-c", python, wallet, &db])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0 3",
        "{out:?}"
    );
    assert_eq!(pending_in(&s, "alice"), "5.00");

    for redirect in ["1<>/dev/null", ">&-"] {
        let script = format!("'{wallet}' --db '{db}' deposit alice 5 {redirect}");
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{redirect}: {out:?}");
        assert!(out.stderr.is_empty(), "{redirect}: {out:?}");
        let script = format!("'{wallet}' --db '{db}' --json get-user nobody {redirect}");
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{redirect}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("user_not_found"));
    }
    assert_eq!(pending_in(&s, "alice"), "15.00", "every deposit was queued");
}

fn a_ledger_missing_a_row_every_ledger_has_is_damaged_not_internal() {
    let s = Sandbox::new();
    users(&s);
    // No external account: a deposit has nothing to come from.
    s.tamper(match crate::common::engine().name() {
        "sqlite" => "PRAGMA foreign_keys = OFF; DELETE FROM accounts WHERE id = 0;",
        // The references are triggers, which a replica session skips.
        "postgres" => "SET session_replication_role = replica; DELETE FROM accounts WHERE id = 0;",
        other => crate::common::no_case(other),
    });
    s.fails(&["deposit", "alice", "1"], "integrity", 7);
    let report = s.verify_fails();
    assert!(
        report.message.contains("external account"),
        "{}",
        report.message
    );
    // No ledger_meta row: its currency is unknown.
    let s = Sandbox::new();
    users(&s);
    s.tamper("DELETE FROM ledger_meta");
    let message = s.fails(&["get-user", "alice"], "integrity", 7);
    assert!(message.contains("ledger_meta"), "{message}");
    let report = s.verify_fails();
    let failed = report.report.failed();
    assert_eq!(failed, ["ledger_meta"]);
}

fn a_full_history_page_says_how_to_read_on_at_a_terminal() {
    let s = Sandbox::new();
    users(&s);
    for amount in ["1", "2", "3"] {
        s.ok(&["deposit", "alice", amount]);
    }
    let out = Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(r#""$WALLET" history alice --limit 2"#)
        .arg("/dev/null")
        .env("SHELL", "/bin/sh")
        .env("WALLET", env!("CARGO_BIN_EXE_wallet"))
        .env("WALLET_DB", s.db())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("the next page: wallet history alice --before 2"),
        "{screen}"
    );
    // Piped, or as JSON, the output is just the rows.
    let piped = s
        .cmd(&["history", "alice", "--limit", "2"])
        .output()
        .unwrap();
    assert!(piped.stderr.is_empty());
}

fn usage_errors_keep_the_names_and_values_that_matter_on_one_line() {
    let s = Sandbox::new();
    users(&s);
    let cases: [(&[&str], &[&str]); 4] = [
        (&["deposit", "alice"], &["<AMOUNT>"]),
        (
            &["history", "alice", "--status", "bogus"],
            &["bogus", "PENDING", "COMPLETED", "FAILED", "CANCELLED"],
        ),
        (&["settle", "--interval", "10"], &["--watch"]),
        (
            &["transfer", "--batch", "x", "alice", "bob", "1"],
            &["--batch", "[SRC]"],
        ),
    ];
    for (args, names) in cases {
        let message = s.fails(args, "usage", 2);
        for name in names {
            assert!(message.contains(name), "{args:?}: {message}");
        }
        let out = s.cmd(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        for name in names {
            assert!(stderr.contains(name), "{args:?}: {stderr}");
        }
    }
}

fn invisible_characters_are_refused_by_property_in_keys_memos_and_emails() {
    let s = Sandbox::new();
    users(&s);
    let invisible = [
        '\u{00AD}',
        '\u{2028}',
        '\u{2029}',
        '\u{034F}',
        '\u{3164}',
        '\u{1D173}',
        '\u{E0041}',
        '\u{E007F}',
        '\u{202E}',
        '\u{200B}',
        '\u{FE0F}',
        '\u{E000}',
        '\u{0378}',
    ];
    let before = s.ledger_bytes();
    for c in invisible {
        let key = format!("k{c}");
        let memo = format!("rent{c}");
        s.fails(&["deposit", "alice", "1", "--id", &key], "invalid_key", 5);
        s.fails(
            &["deposit", "alice", "1", "--memo", &memo],
            "invalid_memo",
            5,
        );
        let email = format!("carol{c}@example.com");
        s.fails(&["create-user", "carol", &email], "invalid_email", 5);
    }
    let message = s.fails(
        &["create-user", "carol", "ü@exämple.de"],
        "invalid_email",
        5,
    );
    assert!(message.contains("printable ASCII"), "{message}");
    assert!(before == s.ledger_bytes(), "nothing was written");
    // Visible text of any script is fine in memos and keys.
    s.ok(&[
        "deposit",
        "alice",
        "1",
        "--id",
        "заказ-7",
        "--memo",
        "rent — 十一月 ✓",
    ]);
}

fn a_key_conflict_inside_an_atomic_batch_names_the_line_not_a_rolled_back_transfer() {
    let s = Sandbox::new();
    users(&s);
    let input = "{\"src\":null,\"dst\":\"alice\",\"amount\":\"1\",\"id\":\"k\"}\n\
                 {\"src\":null,\"dst\":\"alice\",\"amount\":\"2\",\"id\":\"k\"}\n";
    let out = s
        .cmd(&["--json", "transfer", "--batch", "-", "--atomic"])
        .write_stdin(input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = line["error"]["message"].as_str().unwrap();
    assert!(message.contains("(by line 1 of this batch)"), "{message}");
    s.fails(&["get-transfer", "1"], "transfer_not_found", 3);
    // Without --atomic the earlier line's transfer is kept, and named.
    let (out, _) = batch(&s, input);
    let message = out[1]["error"]["message"].as_str().unwrap();
    let tx_id = out[0]["tx_id"].as_i64().unwrap();
    assert!(
        message.contains(&format!("(transfer {tx_id})")),
        "{message}"
    );
}

fn values_that_begin_with_a_dash_are_refused_as_values() {
    let s = Sandbox::new();
    users(&s);
    s.fails(&["create-user", "-bob", "b@example.com"], "invalid_name", 5);
    s.fails(&["get-user", "-bob"], "invalid_name", 5);
    s.fails(&["deposit", "-bob", "5"], "invalid_name", 5);
    s.fails(&["transfer", "alice", "bob", "-5"], "invalid_amount", 5);
    s.fails(&["deposit", "alice", "-0.5"], "invalid_amount", 5);
    // A real flag is still a flag.
    s.fails(&["get-user", "--bogus"], "usage", 2);
}

fn counts_for_people_are_written_one_way() {
    let s = Sandbox::new();
    users(&s);
    let lines: String = (0..1234)
        .map(|_| "{\"src\":null,\"dst\":\"alice\",\"amount\":\"0.01\"}\n")
        .collect();
    let out = s
        .cmd(&["transfer", "--batch", "-"])
        .write_stdin(lines)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("queued 1,234 transfers from 1,234 lines"),
        "{stderr}"
    );
    assert!(
        s.ok(&["settle"])
            .starts_with("settled 1,234 transfers: 1,234 completed")
    );
    // JSON keeps plain numbers.
    s.ok(&["deposit", "alice", "1"]);
    let settled: Value = serde_json::from_str(&s.ok(&["--json", "settle"])).unwrap();
    assert_eq!(settled["processed"], 1);
}

fn an_unreachable_server_is_transient_and_its_password_never_shows() {
    let s = Sandbox::new();
    let url = "postgresql://ann:s3cret@127.0.0.1:1/books?connect_timeout=5";
    for args in [
        &["get-user", "alice"][..],
        &["init"],
        &["create-user", "a", "a@b.co"],
        &["settle"],
    ] {
        // A writer would wait up to --lock-timeout for a server.
        let mut full = vec!["--db", url, "--lock-timeout", "100"];
        full.extend_from_slice(args);
        let message = s.fails(&full, "server_unavailable", 6);
        assert!(!message.contains("s3cret"), "{message}");
        assert!(message.contains("ann:***@127.0.0.1:1/books"), "{message}");
        assert!(message.contains("nothing was written"), "{message}");
    }
    let message = s.fails(
        &[
            "--db",
            "postgres:///books?password=s3cret&schema=Bad",
            "get-user",
            "a",
        ],
        "usage",
        2,
    );
    assert!(message.contains("password=***"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    assert!(
        !s.dir.path().join("postgresql:").exists(),
        "no file was made"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_wallet"))
        .env("WALLET_DB", url)
        .arg("--help")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("s3cret"));
}

fn a_line_that_is_not_json_is_called_so() {
    let s = Sandbox::new();
    users(&s);
    let (out, _) = batch(&s, "nope\ntru\n[1]\n");
    let messages: Vec<&str> = out
        .iter()
        .map(|line| line["error"]["message"].as_str().unwrap())
        .collect();
    assert!(messages[0].contains("not valid JSON"), "{messages:?}");
    assert!(messages[1].contains("not valid JSON"), "{messages:?}");
    assert!(messages[2].contains("it is an array"), "{messages:?}");
}

fn a_terminal_that_reports_no_width_gets_whole_tables() {
    let s = Sandbox::new();
    users(&s);
    let out = Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(r#"stty cols 0; "$WALLET" get-user alice"#)
        .arg("/dev/null")
        .env("SHELL", "/bin/sh")
        .env("WALLET", env!("CARGO_BIN_EXE_wallet"))
        .env("WALLET_DB", s.db())
        .env_remove("COLUMNS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("alice@example.com") && screen.contains("pending_out"),
        "{screen}"
    );
}

fn negative_and_zero_numbers_are_refused_naming_their_flag() {
    let s = Sandbox::new();
    users(&s);
    let cases: [(&[&str], &str); 6] = [
        (&["history", "alice", "--before", "-5"], "--before"),
        (&["cancel", "-1"], "TX_ID"),
        (&["get-transfer", "--", "-5"], "TX_ID"),
        (
            &["--lock-timeout", "-1", "get-user", "alice"],
            "--lock-timeout",
        ),
        (&["settle", "--limit", "-1"], "--limit"),
        (&["settle", "--batch-size", "0"], "--batch-size"),
    ];
    for (args, flag) in cases {
        let message = s.fails(args, "usage", 2);
        assert!(message.contains(flag), "{args:?}: {message}");
    }
    let out = s
        .process(&["--help"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "help lost to a full disk is an error"
    );
    let whole = Sandbox::new();
    whole.ok(&["init", "--currency", "JPY", "--scale", "0"]);
    whole.ok(&["create-user", "ken", "ken@example.com"]);
    let message = whole.fails(&["deposit", "ken", "1.5"], "invalid_amount", 5);
    assert!(message.contains("JPY has no decimal places"), "{message}");
}

fn piped_tables_keep_one_field_per_column_for_awk() {
    let s = Sandbox::new();
    users(&s);
    s.ok(&["deposit", "alice", "5", "--memo", "salary"]);
    s.ok(&["deposit", "alice", "7"]);
    let out = Command::new("bash")
        .args([
            "-c",
            r#""$WALLET" history alice | awk '{print NF}' | sort -u"#,
        ])
        .env("WALLET", env!("CARGO_BIN_EXE_wallet"))
        .env("WALLET_DB", s.db())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "9\n",
        "every row, the header included, has the same number of fields"
    );
}

/// `transfer --batch - --format csv` fed `input` with `--json`.
fn csv_batch(s: &Sandbox, input: &[u8]) -> (Vec<Value>, Option<i32>, String) {
    let out = s
        .cmd(&["--json", "transfer", "--batch", "-", "--format", "csv"])
        .write_stdin(input.to_vec())
        .output()
        .unwrap();
    crate::common::batch_results(&out)
}

fn a_csv_record_with_more_or_fewer_fields_than_the_header_is_refused() {
    let s = Sandbox::new();
    users(&s);
    let input = "src,dst,amount\n\
                 alice,bob,1,000.50\n\
                 alice,bob\n\
                 alice,bob,7\n\
                 alice,bob,\"2\n";
    let (results, code, _) = csv_batch(&s, input.as_bytes());
    assert_eq!(code, Some(5), "{results:?}");
    assert_eq!(results.len(), 4, "{results:?}");
    let refused = |i: usize, line: u64, says: &str| {
        assert_eq!(results[i]["line"], line, "{results:?}");
        assert_eq!(results[i]["error"]["code"], "invalid_line", "{results:?}");
        let message = results[i]["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "line {line}: {message}");
    };
    refused(0, 2, "4 fields; the header has 3");
    refused(1, 3, "2 fields; the header has 3");
    assert_eq!(results[2]["line"], 4);
    assert_eq!(results[2]["status"], "PENDING");
    // The file ends inside the quote: that, not a short row, is the cause.
    refused(3, 5, "quote");
    let message = results[3]["error"]["message"].as_str().unwrap();
    assert!(!message.contains("fields"), "{message}");
    assert_eq!(
        pending_in(&s, "bob"),
        "7.00",
        "only the whole record queued"
    );

    // An unquoted comma in a memo is a field too many, not a shorter memo.
    let (results, code, _) = csv_batch(&s, b"src,dst,amount,memo\nalice,bob,1,rent, May\n");
    assert_eq!(code, Some(5));
    assert_eq!(results[0]["error"]["code"], "invalid_line", "{results:?}");
    assert!(
        results[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("5 fields; the header has 4"),
        "{results:?}"
    );
    assert_eq!(pending_in(&s, "bob"), "7.00");
}

fn a_csv_header_naming_a_column_twice_or_an_unknown_one_is_refused_before_any_line() {
    let s = Sandbox::new();
    users(&s);
    for (header, says) in [
        ("src,dst,amount,src", "'src' twice"),
        ("src,dst,amount,Amount", "'amount' twice"),
        ("src,dst,amount,note", "unknown column 'note'"),
    ] {
        // The input stays open: the header alone must decide.
        let mut child = s
            .process(&["--json", "transfer", "--batch", "-", "--format", "csv"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        use std::io::Write;
        stdin
            .write_all(format!("{header}\nalice,bob,1,x\n").as_bytes())
            .unwrap();
        stdin.flush().unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{header}: still reading"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let message =
            crate::common::assert_error(&out, "invalid_line", 5, &["transfer", "--batch"]);
        assert!(message.contains(says), "{header}: {message}");
    }
    assert_eq!(pending_in(&s, "bob"), "0.00", "no line was queued");
}

fn csv_records_are_numbered_by_the_physical_line_they_start_on_whatever_the_line_end() {
    let s = Sandbox::new();
    users(&s);
    let lines = [
        "src,dst,amount,memo",
        "alice,bob,1,one",
        "",
        "alice,bob,2,\"two",
        "lines\"",
        "alice,bob,3,\"three, \"\"quoted\"\"\"",
        "   ",
        "",
        "alice,bob,4,four",
    ];
    for (ending, final_end) in [("\n", true), ("\r\n", true), ("\n", false), ("\r\n", false)] {
        let mut text = lines.join(ending);
        if final_end {
            text.push_str(ending);
        }
        let (results, code, _) = csv_batch(&s, text.as_bytes());
        let what = format!("{ending:?}, final line end: {final_end}");
        assert_eq!(code, Some(5), "{what}: {results:?}");
        let numbers: Vec<u64> = results
            .iter()
            .map(|r| r["line"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, [2, 4, 6, 9], "{what}: {results:?}");
        assert_eq!(results[1]["error"]["code"], "invalid_memo", "{what}");
        let last: Value = s.json(&["get-transfer", &results[3]["tx_id"].to_string()]);
        assert_eq!(last["amount"], "4.00", "{what}");
        assert_eq!(last["memo"], "four", "{what}");
        let third: Value = s.json(&["get-transfer", &results[2]["tx_id"].to_string()]);
        assert_eq!(third["memo"], "three, \"quoted\"", "{what}");
    }
}

fn a_quoted_csv_memo_with_a_line_break_is_refused_by_the_memo_rule_on_its_line() {
    let s = Sandbox::new();
    users(&s);
    let (results, code, _) = csv_batch(
        &s,
        b"src,dst,amount,memo\r\nalice,bob,1,ok\r\nalice,bob,2,\"first\r\nsecond\"\r\n",
    );
    assert_eq!(code, Some(5), "{results:?}");
    assert_eq!(results[1]["line"], 3, "{results:?}");
    assert_eq!(results[1]["error"]["code"], "invalid_memo");
    let message = results[1]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("control") && message.contains("first\\r\\nsecond"),
        "{message}"
    );
    assert_eq!(pending_in(&s, "bob"), "1.00");
}

engine_tests! {
    both: [
        only_a_json_object_is_a_batch_line,
        a_batch_whose_every_line_failed_says_nothing_was_queued,
        an_empty_environment_variable_is_named_not_the_flag,
        only_init_and_create_user_create_a_ledger,
        every_limit_refuses_zero_alike,
        global_flags_may_be_repeated_and_the_last_counts,
        refused_keys_memos_and_emails_are_quoted_and_explained,
        amounts_with_leading_zeros_are_refused,
        a_dev_null_stdout_however_opened_runs_the_command,
        a_ledger_missing_a_row_every_ledger_has_is_damaged_not_internal,
        a_full_history_page_says_how_to_read_on_at_a_terminal,
        usage_errors_keep_the_names_and_values_that_matter_on_one_line,
        invisible_characters_are_refused_by_property_in_keys_memos_and_emails,
        a_key_conflict_inside_an_atomic_batch_names_the_line_not_a_rolled_back_transfer,
        values_that_begin_with_a_dash_are_refused_as_values,
        counts_for_people_are_written_one_way,
        an_unreachable_server_is_transient_and_its_password_never_shows,
        a_line_that_is_not_json_is_called_so,
        a_terminal_that_reports_no_width_gets_whole_tables,
        negative_and_zero_numbers_are_refused_naming_their_flag,
        piped_tables_keep_one_field_per_column_for_awk,
        a_csv_record_with_more_or_fewer_fields_than_the_header_is_refused,
        a_csv_header_naming_a_column_twice_or_an_unknown_one_is_refused_before_any_line,
        csv_records_are_numbered_by_the_physical_line_they_start_on_whatever_the_line_end,
        a_quoted_csv_memo_with_a_line_break_is_refused_by_the_memo_rule_on_its_line,
    ],
    sqlite: [
        init_fills_an_empty_file_as_mktemp_leaves_it,
    ],
}
