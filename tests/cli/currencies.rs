//! Currencies in one ledger: `currency add` and `currencies`, replays and
//! refusals, the in-place upgrade of a ledger of one currency, and what
//! `verify` finds when the currencies are tampered with.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::common::{POSTGRES_TO_VERSION_6, SQLITE_TO_VERSION_7, Sandbox, engine, no_case, shapes};
use crate::old_links::rehash_links_before_currencies;

/// What `currency add --json` prints.
#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Added {
    status: String,
    code: String,
    scale: u8,
    replayed: bool,
}

/// One entry of `currencies --json`.
#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Listed {
    code: String,
    scale: u8,
    default: bool,
}

fn listed(code: &str, scale: u8, default: bool) -> Listed {
    Listed {
        code: code.into(),
        scale,
        default,
    }
}

fn added(code: &str, scale: u8, replayed: bool) -> Added {
    Added {
        status: "created".into(),
        code: code.into(),
        scale,
        replayed,
    }
}

/// The SQL that takes a ledger of the current schema back to the one
/// before currencies, the version that leaves, and the current one.
fn before_currencies() -> (&'static str, i64, i64) {
    match engine().name() {
        "sqlite" => (SQLITE_TO_VERSION_7, 7, 10),
        "postgres" => (POSTGRES_TO_VERSION_6, 6, 9),
        other => no_case(other),
    }
}

/// The schema version the ledger records.
fn schema_version(s: &Sandbox) -> i64 {
    let sql = match engine().name() {
        "sqlite" => "SELECT CAST(user_version AS TEXT) FROM pragma_user_version",
        "postgres" => "SELECT max(version)::text FROM schema_version",
        other => no_case(other),
    };
    s.query_text(sql)[0].as_deref().unwrap().parse().unwrap()
}

fn currency_add_lists_the_currency_after_the_default() {
    let s = Sandbox::new();
    s.ok(&["init", "--currency", "usd", "--scale", "2"]);
    let list: Vec<Listed> = s.json(&["currencies"]);
    assert_eq!(list, [listed("USD", 2, true)]);

    let btc: Added = s.json(&["currency", "add", "btc", "--scale", "8"]);
    assert_eq!(btc, added("BTC", 8, false));
    let jpy: Added = s.json(&["currency", "add", "JPY", "--scale", "0"]);
    assert_eq!(jpy, added("JPY", 0, false));
    let list: Vec<Listed> = s.json(&["currencies"]);
    assert_eq!(
        list,
        [
            listed("USD", 2, true),
            listed("BTC", 8, false),
            listed("JPY", 0, false)
        ]
    );
    // Ids in the order added, and the external account's balance in each
    // new currency at zero; none for the default, kept in `accounts`.
    let ids = s.query_text(
        "SELECT CAST(count(*) AS TEXT) || ' ' || CAST(sum(id) AS TEXT) FROM currencies",
    );
    assert_eq!(ids[0].as_deref(), Some("3 3"));
    let external = s.query_text(
        "SELECT CAST(count(*) AS TEXT) || ' ' || CAST(sum(currency) AS TEXT) || ' '
                || CAST(sum(abs(balance) + pending_in + pending_out + held + overdraft) AS TEXT)
           FROM balances WHERE account = 0",
    );
    assert_eq!(external[0].as_deref(), Some("2 3 0"));
    let users = s.query_text("SELECT CAST(count(*) AS TEXT) FROM balances WHERE account <> 0");
    assert_eq!(users[0].as_deref(), Some("0"));
    s.ok(&["verify"]);
}

fn currency_add_with_the_same_scale_replays_and_another_scale_is_currency_exists() {
    let s = Sandbox::new();
    s.ok(&["init"]);
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    let again: Added = s.json(&["currency", "add", "btc", "--scale", "8"]);
    assert_eq!(again, added("BTC", 8, true));
    // The default currency answers the same way.
    let php: Added = s.json(&["currency", "add", "PHP", "--scale", "2"]);
    assert_eq!(php, added("PHP", 2, true));

    let before = s.ledger_bytes();
    let message = s.fails(
        &["currency", "add", "BTC", "--scale", "2"],
        "currency_exists",
        4,
    );
    assert!(
        message.contains("'BTC'") && message.contains("scale 8") && message.contains("never"),
        "{message}"
    );
    s.fails(
        &["currency", "add", "php", "--scale", "0"],
        "currency_exists",
        4,
    );
    assert!(before == s.ledger_bytes(), "a refused add changes nothing");
    let list: Vec<Listed> = s.json(&["currencies"]);
    assert_eq!(list, [listed("PHP", 2, true), listed("BTC", 8, false)]);
}

fn a_malformed_code_or_scale_is_refused() {
    let s = Sandbox::new();
    s.ok(&["init"]);
    let before = s.ledger_bytes();
    for code in ["1BTC", "B", "TOOLONGCODE", "BT-C", "BTÇ", ""] {
        s.fails(
            &["currency", "add", code, "--scale", "2"],
            "invalid_currency",
            5,
        );
    }
    let message = s.fails(
        &["currency", "add", "BTC", "--scale", "13"],
        "invalid_currency",
        5,
    );
    assert!(message.contains("scale 13"), "{message}");
    s.fails(&["currency", "add", "BTC", "--scale", "256"], "usage", 2);
    s.fails(&["currency", "add", "BTC", "--scale", "-1"], "usage", 2);
    s.fails(&["currency", "add", "BTC"], "usage", 2);
    s.fails(&["currency"], "usage", 2);
    assert!(before == s.ledger_bytes(), "refusals change nothing");
    let list: Vec<Listed> = s.json(&["currencies"]);
    assert_eq!(list, [listed("PHP", 2, true)]);
}

fn a_missing_ledger_is_not_created_by_currency_commands() {
    let s = Sandbox::new();
    s.fails(
        &["currency", "add", "BTC", "--scale", "8"],
        "ledger_not_found",
        3,
    );
    s.fails(&["currencies"], "ledger_not_found", 3);
    assert!(!s.ledger_exists());
}

fn quiet_prints_the_code_and_people_get_a_line_and_a_table() {
    let s = Sandbox::new();
    s.ok(&["init"]);
    assert_eq!(
        s.ok(&["-q", "currency", "add", "btc", "--scale", "8"]),
        "BTC\n"
    );
    assert_eq!(
        s.ok(&["-q", "currency", "add", "BTC", "--scale", "8"]),
        "BTC\n",
        "a replay prints the code too"
    );
    assert_eq!(
        s.ok(&["currency", "add", "ETH", "--scale", "12"]),
        "added currency ETH (12 decimal places)\n"
    );
    assert_eq!(
        s.ok(&["currency", "add", "ETH", "--scale", "12"]),
        "currency ETH (12 decimal places) was already added\n"
    );
    let table: Vec<Vec<String>> = s
        .ok(&["currencies"])
        .lines()
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(
        table,
        [
            ["code", "scale", "default"],
            ["PHP", "2", "yes"],
            ["BTC", "8", "no"],
            ["ETH", "12", "no"],
        ]
    );
    assert_eq!(s.ok(&["-q", "currencies"]), s.ok(&["currencies"]));
}

/// Processes adding currencies at once each get an id of their own: the
/// ids stay 0, 1, 2, … with no gap and no error.
fn currencies_added_at_once_take_distinct_ids() {
    let s = Sandbox::new();
    s.ok(&["init"]);
    let codes = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"];
    let children: Vec<_> = codes
        .iter()
        .map(|code| {
            s.process(&["--json", "currency", "add", code, "--scale", "2"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
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
    let list: Vec<Listed> = s.json(&["currencies"]);
    assert_eq!(list.len(), codes.len() + 1);
    let mut found: Vec<&str> = list[1..].iter().map(|c| c.code.as_str()).collect();
    found.sort_unstable();
    assert_eq!(found, codes);
    let ids = s.query_text("SELECT CAST(max(id) AS TEXT) FROM currencies");
    assert_eq!(ids[0].as_deref(), Some("6"));
    s.ok(&["verify"]);
}

/// A ledger of the schema before currencies, with history, holds, a
/// policy change and sealed links, upgrades in place with its one
/// currency: reads ask for the upgrade, `migrate` makes it, and every
/// figure, the export and the chain's head are what they were.
fn a_current_ledger_upgrades_in_place_with_its_one_currency() {
    let s = Sandbox::new();
    s.ok(&["init", "--currency", "EUR", "--scale", "2"]);
    s.funded(&[("alice", "100"), ("bob", "20")]);
    s.ok(&["transfer", "alice", "bob", "30", "--id", "rent"]);
    s.ok(&["hold", "bob", "alice", "5"]);
    s.ok(&["overdraft", "alice", "10", "--memo", "trusted"]);
    s.ok(&["settle"]);
    s.ok(&["transfer", "bob", "alice", "1"]);
    let reads: [&[&str]; 5] = [
        &["get-user", "alice"],
        &["balances"],
        &["export"],
        &["export", "--format", "hledger"],
        &["history", "bob"],
    ];
    let before: Vec<String> = reads.iter().map(|args| s.ok(args)).collect();
    let head: Value = s.json(&["verify", "--head"]);
    assert!(head["head"]["hash"].is_string(), "{head}");

    let (back, old_version, latest) = before_currencies();
    s.tamper(back);
    assert_eq!(schema_version(&s), old_version);
    // The links as the version before sealed them, without currencies.
    let old_head = rehash_links_before_currencies(&s);
    s.fails(&["currencies"], "upgrade_needed", 7);
    s.fails(&["get-user", "alice"], "upgrade_needed", 7);
    s.fails(&["verify"], "upgrade_needed", 7);

    let migrated: Value = s.json(&["migrate"]);
    assert_eq!(
        migrated,
        json!({"status": "migrated", "from": old_version, "to": latest})
    );
    let list: Vec<Listed> = s.json(&["currencies"]);
    assert_eq!(list, [listed("EUR", 2, true)]);
    let after: Vec<String> = reads.iter().map(|args| s.ok(args)).collect();
    assert_eq!(after, before);
    let same: Value = s.json(&["verify", "--head", "--expect-head", &old_head]);
    let mut expected = head["head"].clone();
    expected["hash"] = json!(old_head);
    assert_eq!(same["head"], expected, "the links hash as they did");
    // Every transfer and policy change of the old ledger is in currency 0.
    let zeros = s.query_text(
        "SELECT CAST((SELECT count(*) FROM transfers WHERE currency <> 0)
                   + (SELECT count(*) FROM policy_changes WHERE currency <> 0) AS TEXT)",
    );
    assert_eq!(zeros[0].as_deref(), Some("0"));
    // Settling and sealing go on from there.
    s.ok(&["settle"]);
    s.ok(&["verify"]);

    // A first write upgrades as `migrate` does.
    s.tamper(back);
    rehash_links_before_currencies(&s);
    s.fails(&["balances"], "upgrade_needed", 7);
    s.ok(&["deposit", "bob", "1"]);
    assert_eq!(schema_version(&s), latest);
    let list: Vec<Listed> = s.json(&["currencies"]);
    assert_eq!(list, [listed("EUR", 2, true)]);
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    s.ok(&["settle"]);
    s.ok(&["verify"]);
}

fn verify_finds_a_default_currency_that_disagrees_with_ledger_meta() {
    let s = Sandbox::new();
    s.funded(&[("alice", "10")]);
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    s.tamper("UPDATE currencies SET scale = 3 WHERE id = 0");
    let report = s.verify_fails();
    // The chain sealed row 0 as it was.
    assert_eq!(report.report.failed(), ["ledger_meta", "chain"]);
    let check = &report
        .report
        .checks
        .iter()
        .find(|c| c.name == "ledger_meta")
        .unwrap();
    assert_eq!(check.problem_count, 1);
    let message = &check.problems[0].message;
    assert!(
        message.contains("currency 0 is PHP with 3") && message.contains("PHP with 2"),
        "{message}"
    );

    let s = Sandbox::new();
    s.funded(&[("alice", "10")]);
    s.tamper("DELETE FROM currencies WHERE id = 0");
    let report = s.verify_fails();
    // The deposit now names a currency the ledger does not list either.
    assert_eq!(
        report.report.failed(),
        ["ledger_meta", "transfer_fields", "chain"]
    );
    assert!(report.message.contains("no row 0"), "{}", report.message);
    s.fails(&["currencies"], "integrity", 7);
}

fn verify_finds_a_transfer_in_a_currency_the_ledger_does_not_list() {
    let s = Sandbox::new();
    s.funded(&[("alice", "10"), ("bob", "5")]);
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    // Naming a listed currency is no finding of this check.
    s.tamper("UPDATE transfers SET currency = 1 WHERE tx_id = 2");
    let report: shapes::VerifyError = {
        s.tamper("UPDATE transfers SET currency = 7 WHERE tx_id = 1");
        s.verify_fails()
    };
    let fields = report
        .report
        .checks
        .iter()
        .find(|c| c.name == "transfer_fields")
        .unwrap();
    assert!(!fields.ok);
    assert_eq!(fields.problem_count, 1);
    assert_eq!(fields.problems[0].tx_id, Some(1));
    assert!(
        fields.problems[0].message.contains("currency 7"),
        "{:?}",
        fields.problems
    );
}

engine_tests! {
    both: [
        currency_add_lists_the_currency_after_the_default,
        currency_add_with_the_same_scale_replays_and_another_scale_is_currency_exists,
        a_malformed_code_or_scale_is_refused,
        a_missing_ledger_is_not_created_by_currency_commands,
        quiet_prints_the_code_and_people_get_a_line_and_a_table,
        currencies_added_at_once_take_distinct_ids,
        a_current_ledger_upgrades_in_place_with_its_one_currency,
        verify_finds_a_default_currency_that_disagrees_with_ledger_meta,
        verify_finds_a_transfer_in_a_currency_the_ledger_does_not_list,
    ],
}
