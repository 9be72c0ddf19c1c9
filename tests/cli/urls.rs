//! `--db` URLs that are malformed or ambiguous are usage errors, said once
//! and never retried, and no form of a password in one ever shows.

use std::process::Command;

use crate::common::{Sandbox, assert_error};

fn run(s: &Sandbox, db: &str, args: &[&str]) -> std::process::Output {
    s.process(&[])
        .args(["--db", db, "--json"])
        .args(args)
        .output()
        .unwrap()
}

fn a_parameter_given_twice_is_refused_not_the_last_one_taken() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    let url = s.db().to_string_lossy().into_owned();
    for extra in [
        "&schema=other",
        "&schema=other&schema=wallet",
        "&sslmode=disable&sslmode=prefer",
    ] {
        let out = run(&s, &format!("{url}{extra}"), &["get-user", "alice"]);
        let message = assert_error(&out, "usage", 2, &["get-user", extra]);
        assert!(message.contains("twice"), "{message}");
    }
    // Hosts (and their ports) are a list of servers to try in turn: a
    // down one first, then the test server, reach the ledger.
    let socket = url
        .split(['?', '&'])
        .find_map(|param| param.strip_prefix("host="))
        .unwrap()
        .to_string();
    let listed = format!("{url}&host=/nonexistent-socket-dir&host={socket}");
    let out = run(&s, &listed, &["get-user", "alice"]);
    assert!(out.status.success(), "{out:?}");
}

/// libpq's list form, `host=a,b` (sockets percent-encoded or not), with a
/// port each or one for all: each host is a server to try in turn.
fn a_comma_list_of_hosts_is_tried_in_turn_as_libpq_reads_it() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    let url = s.db().to_string_lossy().into_owned();
    let socket = url
        .split(['?', '&'])
        .find_map(|param| param.strip_prefix("host="))
        .unwrap()
        .to_string();
    let (base, params) = url.split_once('?').unwrap();
    let rest: String = params
        .split('&')
        .filter(|param| !param.starts_with("host="))
        .collect::<Vec<_>>()
        .join("&");
    let encoded = socket.replace('/', "%2F");
    for hosts in [
        format!("host=/nonexistent-socket-dir,{socket}"),
        format!("host=%2Fnonexistent-socket-dir,{encoded}"),
        format!("host=/nonexistent-socket-dir,{socket}&port=5432,5432"),
    ] {
        let listed = format!("{base}?{hosts}&{rest}");
        let out = run(&s, &listed, &["get-user", "alice"]);
        assert!(out.status.success(), "{listed}: {out:?}");
        let deposit = run(&s, &listed, &["deposit", "alice", "1"]);
        assert!(deposit.status.success(), "{listed}: {deposit:?}");
    }
    // A port for each host, or one for all: three for two is a usage error.
    let listed = format!("{base}?host=/nonexistent-socket-dir,{socket}&port=1,2,3&{rest}");
    let out = run(&s, &listed, &["get-user", "alice"]);
    let message = assert_error(&out, "usage", 2, &["get-user"]);
    assert!(message.contains("3 ports for 2 hosts"), "{message}");
}

fn a_nul_in_a_parameter_is_a_usage_error_not_a_server_away() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    let url = s.db().to_string_lossy().into_owned();
    for extra in [
        "&application_name=a%00b",
        "&options=-c%20x%00",
        "&connect_timeout=5%00",
    ] {
        let out = run(&s, &format!("{url}{extra}"), &["get-user", "alice"]);
        let message = assert_error(&out, "usage", 2, &["get-user", extra]);
        assert!(message.contains("NUL"), "{message}");
    }
    // A watch worker gives up on it at once instead of retrying for ever.
    let out = s
        .process(&[])
        .args([
            "--db",
            &format!("{url}&application_name=%00"),
            "--json",
            "settle",
            "--watch",
        ])
        .output()
        .unwrap();
    assert_error(&out, "usage", 2, &["settle", "--watch"]);
}

fn no_form_of_a_password_shows_in_an_error_or_in_help() {
    let s = Sandbox::new();
    let url = s.db().to_string_lossy().into_owned();
    let (base, query) = url.split_once('?').unwrap();
    let forms = [
        format!("{url}&password=s3cret&bogus=1"),
        format!("{url}&PASSWORD=s3cret&bogus=1"),
        format!("{url}&pass%77ord=s3cret&bogus=1"),
        format!("{url}&password%3Ds3cret"),
        format!("{url}&password%3ds3cret&bogus=1"),
        format!("{url}&password%3Ds3cret=x"),
        format!("{url}&pass%77ord%3Ds3cret"),
        format!("{url}&sslpassword=s3cret"),
        format!("{url}&password"),
        format!("{}?password%3Ds3cret&{query}", base),
        "postgres://ann:s3cret@/books?bogus=1".to_string(),
        "postgres://ann:s3cret@h/books?schema=a&schema=b".to_string(),
        format!("{url}&password=s3cret&application_name=%00"),
        format!("{url}&password=s3cret&schema=a&schema=b"),
    ];
    for db in &forms {
        let out = run(&s, db, &["get-user", "alice"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{db}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{db}: {stderr}");
        let help = Command::new(env!("CARGO_BIN_EXE_wallet"))
            .env("WALLET_DB", db)
            .args(["settle", "--help"])
            .output()
            .unwrap();
        assert!(help.status.success());
        assert!(!String::from_utf8_lossy(&help.stdout).contains("s3cret"));
    }
    // A URL where another argument belongs is echoed by its error, hidden.
    for args in [
        &["get-user", "alice", "postgres://ann:s3cret@h/books"][..],
        &["create-user", "alice", "postgres://ann:s3cret@h/books"],
        &["--json", "balances", "postgresql://ann:s3cret@h/books"],
        &["get-user", "alice", "postgres://ann:s3cret'x@h/books"],
        &["get-user", "alice", "postgres://ann:x\"s3cret@h/books"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_wallet"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(matches!(out.status.code(), Some(2 | 5)), "{stderr}");
        assert!(stderr.contains("***"), "{stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
}

/// A server that takes no writes (as a standby does, here one whose
/// sessions are read-only): a write is `read_only`, exit 6, retry later,
/// and nothing was written; reads still answer.
fn a_server_that_takes_no_writes_is_read_only_and_reads_still_work() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.ok(&["deposit", "alice", "5"]);
    s.ok(&["settle"]);
    // Work for a settle to find.
    s.ok(&["deposit", "alice", "2"]);
    let url = s.db().to_string_lossy().into_owned();
    let read_only = format!("{url}&options=-c%20default_transaction_read_only%3Don");
    for write in [
        vec!["deposit", "alice", "1"],
        vec!["create-user", "bob", "bob@example.com"],
        vec!["settle"],
    ] {
        let out = run(&s, &read_only, &write);
        let message = assert_error(&out, "read_only", 6, &write);
        assert!(message.contains("takes no writes"), "{message}");
    }
    for read in [
        vec!["get-user", "alice"],
        vec!["history", "alice"],
        vec!["balances"],
        vec!["verify"],
    ] {
        let out = run(&s, &read_only, &read);
        assert!(out.status.success(), "{read:?}: {out:?}");
    }
    let shown: serde_json::Value = s.json(&["get-user", "alice"]);
    assert_eq!(shown["balance"], "5.00", "nothing was written: {shown}");
    assert_eq!(shown["pending_in"], "2.00", "{shown}");
}

engine_tests! {
    both: [],
    postgres: [
        a_parameter_given_twice_is_refused_not_the_last_one_taken,
        a_nul_in_a_parameter_is_a_usage_error_not_a_server_away,
        a_comma_list_of_hosts_is_tried_in_turn_as_libpq_reads_it,
        a_server_that_takes_no_writes_is_read_only_and_reads_still_work,
        no_form_of_a_password_shows_in_an_error_or_in_help,
    ],
}
