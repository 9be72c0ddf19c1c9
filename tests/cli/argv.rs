//! Arbitrary command lines: parsed and run against a real ledger, they never panic and always exit with a contract code.

use std::ffi::OsString;

use clap::Parser;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use wallet::cli::Cli;

use crate::common::{Sandbox, shapes};

const WORDS: &[&str] = &[
    "init",
    "create-user",
    "get-user",
    "deposit",
    "withdraw",
    "transfer",
    "settle",
    "get-transfer",
    "history",
    "cancel",
    "verify",
    "help",
    "--help",
    "--version",
    "--json",
    "-q",
    "--quiet",
    "--lock-timeout",
    "--currency",
    "--scale",
    "--limit",
    "--batch-size",
    "--status",
    "--before",
    "--id",
    "--memo",
    "--quick",
    "--",
    "-",
    "alice",
    "bob",
    "ALICE",
    "carol",
    "a@b.co",
    "carol@example.com",
    "",
    "0",
    "1",
    "2",
    "-1",
    "1.5",
    "0.001",
    "100",
    "92233720368547758.07",
    "92233720368547758.08",
    "9223372036854775807",
    "1e3",
    "PENDING",
    "failed",
    "USD",
    "12",
    "'; DROP TABLE accounts;--",
    "١٢",
    "\u{1b}[2J",
    "a\nb",
];

/// Each subcommand with how many arguments it takes and its own options.
const SUBCOMMANDS: &[(&str, usize, &[&str])] = &[
    ("init", 0, &["--currency", "--scale"]),
    ("create-user", 2, &[]),
    ("get-user", 1, &[]),
    ("deposit", 2, &["--id", "--memo"]),
    ("withdraw", 2, &["--id", "--memo"]),
    ("transfer", 3, &["--id", "--memo"]),
    ("settle", 0, &["--limit", "--batch-size"]),
    ("get-transfer", 1, &["--id"]),
    ("history", 1, &["--limit", "--status", "--before"]),
    ("cancel", 1, &[]),
    ("verify", 0, &["--quick"]),
];

const VALUES: &[&str] = &[
    "alice",
    "bob",
    "ALICE",
    "carol",
    "a@b.co",
    "carol@example.com",
    "",
    "0",
    "1",
    "2",
    "3",
    "-1",
    "1.5",
    "0.001",
    "100",
    "5000",
    "92233720368547758.07",
    "92233720368547758.08",
    "9223372036854775807",
    "1e3",
    "PENDING",
    "failed",
    "USD",
    "12",
    "'; DROP TABLE accounts;--",
    "١٢",
    "\u{1b}[2J",
    "a\nb",
];

const FLAGS: &[&str] = &[
    "--limit",
    "--batch-size",
    "--status",
    "--before",
    "--id",
    "--memo",
    "--currency",
    "--scale",
    "--quick",
    "--lock-timeout",
];

/// A value: mostly one a command would take, sometimes arbitrary text.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(VALUES).prop_map(str::to_string),
        1 => "\\PC{0,12}",
    ]
}

/// A command line, never with `--db`, so every run stays on the sandbox
/// ledger: mostly shaped like a real call (global flags, a subcommand, its
/// arguments, options), sometimes a soup of words and arbitrary text.
fn argv() -> impl Strategy<Value = Vec<String>> {
    let shaped = (
        proptest::sample::subsequence(vec!["--json", "-q"], 0..=2),
        proptest::sample::select(SUBCOMMANDS),
        proptest::collection::vec(value(), 0..4),
        any::<bool>(),
        proptest::collection::vec((0..10usize, value()), 0..3),
    )
        .prop_map(
            |(globals, (command, arity, flags), values, exact, options)| {
                let mut args: Vec<String> = globals.into_iter().map(str::to_string).collect();
                args.push(command.to_string());
                // Usually the right number of arguments, sometimes not.
                let count = if exact { arity } else { values.len() };
                args.extend(values.into_iter().cycle().take(count));
                for (pick, value) in options {
                    let flag = if flags.is_empty() || pick == 0 {
                        FLAGS[pick % FLAGS.len()]
                    } else {
                        flags[pick % flags.len()]
                    };
                    args.push(flag.to_string());
                    if flag != "--quick" {
                        args.push(value);
                    }
                }
                args
            },
        );
    let soup = proptest::collection::vec(
        prop_oneof![
            proptest::sample::select(WORDS).prop_map(str::to_string),
            "\\PC{0,12}",
        ],
        0..8,
    );
    prop_oneof![3 => shaped, 1 => soup].prop_filter("stays on the sandbox ledger", |args| {
        args.iter().all(|a| !a.starts_with("--db"))
    })
}

fn full_argv(s: &Sandbox, args: &[String]) -> Vec<OsString> {
    let mut full: Vec<OsString> = vec!["wallet".into(), "--db".into(), s.db().into()];
    full.extend(args.iter().map(OsString::from));
    full
}

fn funded() -> Sandbox {
    let s = Sandbox::new();
    s.funded(&[("alice", "1000"), ("bob", "10")]);
    s
}

const CASES: u32 = 3_000;

fn arbitrary_command_lines_run_in_process_never_panic_and_keep_the_ledger_sound() {
    let s = funded();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let ran = std::cell::Cell::new(0u32);
    let outcomes = std::cell::RefCell::new(std::collections::BTreeMap::<&str, u32>::new());
    runner
        .run(&argv(), |args| {
            let Ok(cli) = Cli::try_parse_from(full_argv(&s, &args)) else {
                return Ok(());
            };
            ran.set(ran.get() + 1);
            // The command itself, without printing: the exit status and
            // code it would end with.
            match wallet::commands::run(cli) {
                Ok(_) => *outcomes.borrow_mut().entry("ok").or_default() += 1,
                Err(err) => {
                    prop_assert!((1..=7).contains(&err.exit_code()), "{args:?}: {err}");
                    prop_assert_ne!(err.code(), "internal", "{:?}: {}", args, err);
                    *outcomes.borrow_mut().entry(err.code()).or_default() += 1;
                }
            }
            Ok(())
        })
        .unwrap();
    let ran = ran.get();
    let outcomes = outcomes.into_inner();
    eprintln!("argv: {ran} of {CASES} generated command lines parsed and ran: {outcomes:?}");
    assert!(ran > 200, "the generator reaches real commands");
    assert!(outcomes.get("ok").is_some_and(|n| *n > 50), "{outcomes:?}");
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok, "{report:?}");
}

fn arbitrary_command_lines_through_the_binary_exit_with_a_contract_code() {
    let s = funded();
    let mut runner = TestRunner::new(Config {
        cases: 120,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&argv(), |args| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wallet"));
            cmd.current_dir(s.dir.path())
                .env_remove("WALLET_DB")
                .env_remove("WALLET_LOCK_TIMEOUT")
                .args(full_argv(&s, &args).into_iter().skip(1));
            let out = cmd.output().expect("run wallet");
            let code = out.status.code();
            let stderr = String::from_utf8_lossy(&out.stderr);
            prop_assert!(
                code.is_some_and(|c| (0..=7).contains(&c)),
                "{:?} exited {:?}: {}",
                args,
                code,
                stderr
            );
            prop_assert!(!stderr.contains("panicked"), "{:?}: {}", args, stderr);
            let json = args
                .iter()
                .take_while(|a| *a != "--")
                .any(|a| a == "--json");
            let help = args
                .iter()
                .any(|a| a == "--help" || a == "--version" || a == "help");
            if json && !help && code != Some(0) {
                prop_assert!(out.stdout.is_empty(), "{:?}", args);
                let doc: Result<crate::common::ErrorDoc, _> = serde_json::from_slice(&out.stderr);
                prop_assert!(doc.is_ok(), "{:?}: {}", args, stderr);
            }
            Ok(())
        })
        .unwrap();
    let report: shapes::VerifyReport = s.json(&["verify"]);
    assert!(report.ok, "{report:?}");
}

engine_tests! {
    both: [
        arbitrary_command_lines_run_in_process_never_panic_and_keep_the_ledger_sound,
        arbitrary_command_lines_through_the_binary_exit_with_a_contract_code,
    ],
}
