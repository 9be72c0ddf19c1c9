//! The books of a ledger of several currencies, through the real binary on
//! either engine: `balances` per currency now and then, `get-user --at`
//! in a currency, and `export` with each record's currency at its own
//! scale, as JSON Lines, CSV and an hledger journal the real `hledger`
//! reads and balances per commodity as `wallet balances` does.

use serde_json::Value;

use crate::common::{Sandbox, hledger};

/// PHP (the default, scale 2), BTC (scale 8) and JPY (scale 0): a first
/// settle batch, then a second; the instant the first was applied.
fn three_books() -> (Sandbox, String) {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    s.ok(&["currency", "add", "JPY", "--scale", "0"]);
    s.ok(&["deposit", "alice", "100", "--memo", "pesos"]);
    s.ok(&["deposit", "alice", "0.5", "--currency", "BTC"]);
    s.ok(&["deposit", "bob", "1000", "--currency", "jpy"]);
    s.ok(&["overdraft", "alice", "0.1", "--currency", "BTC"]);
    s.ok(&["settle"]);
    let first: Value = s.json(&["get-transfer", "3"]);
    let then = first["settled_at"].as_str().unwrap().to_string();
    // The next batch is stamped a later millisecond than the first.
    std::thread::sleep(std::time::Duration::from_millis(20));
    s.ok(&[
        "transfer",
        "alice",
        "bob",
        "0.12345678",
        "--currency",
        "BTC",
        "--id",
        "sats",
    ]);
    s.ok(&["withdraw", "bob", "1", "--currency", "JPY"]);
    s.ok(&["transfer", "alice", "bob", "2.50"]);
    s.ok(&["settle"]);
    // Moved no money: a failure, and a pending transfer.
    s.ok(&["transfer", "bob", "alice", "5000", "--currency", "JPY"]);
    s.ok(&["settle"]);
    s.ok(&[
        "transfer",
        "bob",
        "alice",
        "0.00000001",
        "--currency",
        "BTC",
    ]);
    (s, then)
}

/// A book's users as (name, balance) pairs.
fn users(book: &Value) -> Vec<(String, String)> {
    book["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users in {book}"))
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_string(),
                u["balance"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect()
}

fn balances_show_every_currency_each_summing_to_zero() {
    let (s, _) = three_books();
    let now: Value = s.json(&["balances"]);
    // The top level is the default currency's, as it always was.
    assert_eq!(now["currency"], "PHP");
    assert_eq!(users(&now), pairs(&[("alice", "97.50"), ("bob", "2.50")]));
    assert_eq!(
        (now["external"].as_str(), now["total"].as_str()),
        (Some("-100.00"), Some("0.00"))
    );
    let codes: Vec<&String> = now["currencies"].as_object().unwrap().keys().collect();
    assert_eq!(codes, ["PHP", "BTC", "JPY"], "in the order they were added");
    let php = &now["currencies"]["PHP"];
    assert_eq!(users(php), users(&now));
    assert_eq!(
        (&php["external"], &php["total"]),
        (&now["external"], &now["total"])
    );
    let btc = &now["currencies"]["BTC"];
    assert_eq!(
        users(btc),
        pairs(&[("alice", "0.37654322"), ("bob", "0.12345678")])
    );
    assert_eq!(
        (btc["external"].as_str(), btc["total"].as_str()),
        (Some("-0.50000000"), Some("0.00000000"))
    );
    let jpy = &now["currencies"]["JPY"];
    // alice has a JPY balance since a transfer to her was queued in it.
    assert_eq!(users(jpy), pairs(&[("alice", "0"), ("bob", "999")]));
    assert_eq!(
        (jpy["external"].as_str(), jpy["total"].as_str()),
        (Some("-999"), Some("0"))
    );

    // `--currency` puts one currency at the top level, any case.
    let only: Value = s.json(&["balances", "--currency", "btc"]);
    assert_eq!(only["currency"], "BTC");
    assert_eq!(users(&only), users(btc));
    assert_eq!(
        (&only["external"], &only["total"]),
        (&btc["external"], &btc["total"])
    );
    assert_eq!(only["currencies"], now["currencies"]);
    let message = s.fails(&["balances", "--currency", "XYZ"], "invalid_currency", 5);
    assert!(message.contains("XYZ"), "{message}");

    // People get a table per currency, under its code; one when asked.
    let shown = s.ok(&["balances"]);
    let titles: Vec<&str> = shown
        .lines()
        .filter(|l| ["PHP", "BTC", "JPY"].contains(l))
        .collect();
    assert_eq!(titles, ["PHP", "BTC", "JPY"], "{shown}");
    assert!(
        shown.contains("0.12345678") && shown.contains("999"),
        "{shown}"
    );
    let one = s.ok(&["balances", "--currency", "JPY"]);
    assert!(!one.contains("PHP") && !one.contains("97.50"), "{one}");
    assert!(one.contains("-999"), "{one}");
}

fn balances_and_get_user_at_an_instant_read_each_currency_s_running_balance() {
    let (s, then) = three_books();
    let past: Value = s.json(&["balances", "--at", &then]);
    assert_eq!(past["at"].as_str(), Some(then.as_str()));
    assert_eq!(users(&past), pairs(&[("alice", "100.00"), ("bob", "0.00")]));
    let btc = &past["currencies"]["BTC"];
    assert_eq!(
        users(btc),
        pairs(&[("alice", "0.50000000"), ("bob", "0.00000000")])
    );
    assert_eq!(
        (btc["external"].as_str(), btc["total"].as_str()),
        (Some("-0.50000000"), Some("0.00000000"))
    );
    let jpy = &past["currencies"]["JPY"];
    assert_eq!(users(jpy), pairs(&[("alice", "0"), ("bob", "1000")]));
    assert_eq!(jpy["external"], "-1000");
    let selected: Value = s.json(&["balances", "--at", &then, "--currency", "JPY"]);
    assert_eq!(selected["currency"], "JPY");
    assert_eq!(users(&selected), users(jpy));
    // Long after the last batch, the books are today's.
    let later: Value = s.json(&["balances", "--at", "2999-01-01"]);
    let now: Value = s.json(&["balances"]);
    assert_eq!(later["currencies"], now["currencies"]);
    let before: Value = s.json(&["balances", "--at", "2000-01-01"]);
    for (code, book) in before["currencies"].as_object().unwrap() {
        assert!(
            users(book)
                .iter()
                .all(|(_, b)| b.trim_start_matches(['0', '.']).is_empty()),
            "{code}: {book}"
        );
    }

    // One user in one currency, then and right after a transfer.
    let alice: Value = s.json(&["get-user", "alice", "--at", &then, "--currency", "btc"]);
    assert_eq!(
        (
            alice["balance"].as_str(),
            alice["currency"].as_str(),
            alice["overdraft"].as_str()
        ),
        (Some("0.50000000"), Some("BTC"), Some("0.10000000")),
        "{alice}"
    );
    assert_eq!(alice["tx_id"], 2);
    let pesos: Value = s.json(&["get-user", "alice", "--at", &then]);
    assert_eq!(
        (pesos["balance"].as_str(), pesos["overdraft"].as_str()),
        (Some("100.00"), Some("0.00")),
        "a BTC limit is no PHP limit"
    );
    let sats: Value = s.json(&["get-transfer", "--id", "sats"]);
    let tx = sats["tx_id"].to_string();
    let bob: Value = s.json(&["get-user", "bob", "--at-tx", &tx, "--currency", "BTC"]);
    assert_eq!(bob["balance"], "0.12345678");
    assert_eq!(bob["tx_id"], sats["tx_id"]);
    // Right after a transfer, its own currency unless another is named.
    let after: Value = s.json(&["get-user", "bob", "--at-tx", &tx]);
    assert_eq!(
        (after["balance"].as_str(), after["currency"].as_str()),
        (Some("0.12345678"), Some("BTC"))
    );
    s.fails(
        &["get-user", "bob", "--at-tx", &tx, "--currency", "PHP"],
        "transfer_not_found",
        3,
    );
    let jpy: Value = s.json(&["get-user", "bob", "--at", "2999-01-01", "--currency", "JPY"]);
    assert_eq!(jpy["balance"], "999");
}

fn export_writes_each_record_in_its_own_currency() {
    let (s, _) = three_books();
    let exported: Vec<Value> = s
        .ok(&["export"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for object in &exported {
        let shown: Value = s.json(&["get-transfer", &object["tx_id"].to_string()]);
        assert_eq!(object, &shown);
    }
    let moved: Vec<(&str, &str)> = exported
        .iter()
        .map(|t| {
            (
                t["amount"].as_str().unwrap(),
                t["currency"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moved,
        [
            ("100.00", "PHP"),
            ("0.50000000", "BTC"),
            ("1000", "JPY"),
            ("0.12345678", "BTC"),
            ("1", "JPY"),
            ("2.50", "PHP"),
            ("5000", "JPY"),
            ("0.00000001", "BTC"),
        ]
    );
    let csv = s.ok(&["export", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    // Added after `refunds`, so readers of the older columns by position
    // still read them.
    assert_eq!(
        header[14..],
        ["refunds", "currency", "pair_tx_id"].map(String::from),
        "{header:?}"
    );
    let amount = header.iter().position(|h| h == "amount").unwrap();
    let rows: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[amount].to_string(), r[15].to_string())
        })
        .collect();
    let from_jsonl: Vec<(String, String)> = moved
        .iter()
        .map(|(a, c)| ((*a).to_string(), (*c).to_string()))
        .collect();
    assert_eq!(rows, from_jsonl);
}

/// Every non-zero balance `wallet balances` shows, as (account, commodity,
/// amount), the way the journal names them.
fn wallet_books(s: &Sandbox) -> Vec<(String, String, String)> {
    let balances: Value = s.json(&["balances"]);
    let mut found = Vec::new();
    for (code, book) in balances["currencies"].as_object().unwrap() {
        let lines = book["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    format!("assets:wallet:{}", u["name"].as_str().unwrap()),
                    u["balance"].as_str().unwrap().to_string(),
                )
            })
            .chain([(
                "equity:external".to_string(),
                book["external"].as_str().unwrap().to_string(),
            )]);
        for (account, amount) in lines {
            if !amount.trim_start_matches(['-', '0', '.']).is_empty() {
                found.push((account, code.clone(), amount));
            }
        }
    }
    found.sort();
    found
}

/// What `hledger bal` makes of the journal's cleared entries, per commodity.
fn hledger_books(journal: &std::path::Path) -> Vec<(String, String, String)> {
    let table = hledger(
        journal,
        &["bal", "-C", "--flat", "-N", "--layout", "bare", "-O", "csv"],
    );
    let mut found: Vec<(String, String, String)> = csv::Reader::from_reader(table.as_slice())
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].to_string(), r[2].to_string())
        })
        .collect();
    found.sort();
    found
}

fn hledger_declares_every_commodity_and_balances_each_as_the_wallet_does() {
    let (s, _) = three_books();
    let text = s.ok(&["export", "--format", "hledger"]);
    let commodities: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("commodity "))
        .collect();
    assert_eq!(
        commodities,
        [
            "commodity 0.00 PHP",
            "commodity 0.00000000 BTC",
            "commodity 0. JPY"
        ]
    );
    assert!(text.contains("0.12345678 BTC"), "{text}");
    // A limit in another currency is shown at its scale, naming it.
    assert!(
        text.contains(": alice overdraft limit 0.10000000 in BTC\n"),
        "{text}"
    );
    assert!(
        text.contains("FAILED (insufficient_funds): bob -> alice 5000 JPY"),
        "{text}"
    );
    let journal = s.dir.path().join("wallet.journal");
    std::fs::write(&journal, &text).unwrap();
    hledger(&journal, &["check", "--strict"]);
    assert_eq!(hledger_books(&journal), wallet_books(&s));
}

/// alice trades with a desk: PHP for BTC (settled), too many PHP (failed
/// together), BTC for JPY (settled), and one still pending.
fn exchanges() -> Sandbox {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.ok(&["create-user", "desk", "desk@example.com"]);
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    s.ok(&["currency", "add", "JPY", "--scale", "0"]);
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["deposit", "desk", "1", "--currency", "BTC"]);
    s.ok(&["deposit", "desk", "10000", "--currency", "JPY"]);
    s.ok(&["settle"]);
    s.ok(&[
        "exchange", "alice", "50", "PHP", "--for", "0.001", "BTC", "--via", "desk", "--id", "ex-1",
        "--memo", "buy sats",
    ]);
    s.ok(&[
        "exchange", "alice", "5000", "PHP", "--for", "0.1", "BTC", "--via", "desk",
    ]);
    s.ok(&["settle"]);
    s.ok(&[
        "exchange", "alice", "0.0005", "BTC", "--for", "7", "JPY", "--via", "desk",
    ]);
    s.ok(&["settle"]);
    s.ok(&[
        "exchange", "alice", "1", "PHP", "--for", "2", "JPY", "--via", "desk",
    ]);
    s
}

fn an_exchange_is_one_journal_entry_balanced_in_each_commodity() {
    let s = exchanges();
    let text = s.ok(&["export", "--format", "hledger"]);
    let entry = |code: &str| -> Vec<&str> {
        let at = text
            .lines()
            .position(|l| l.contains(code))
            .unwrap_or_else(|| panic!("no {code} in {text}"));
        text.lines()
            .skip(at)
            .take_while(|l| !l.is_empty())
            .collect()
    };
    assert_eq!(
        entry("(4)")[1..],
        [
            "    assets:wallet:desk  50.00 PHP",
            "    assets:wallet:alice  -50.00 PHP",
            "    assets:wallet:alice  0.00100000 BTC",
            "    assets:wallet:desk  -0.00100000 BTC",
        ],
        "{text}"
    );
    assert!(
        entry("(4)")[0].ends_with("* (4) buy sats  ; tx_id:4, pair_tx_id:5, key:ex-1"),
        "{text}"
    );
    assert!(
        !text.contains("(5)"),
        "the second leg is in the first's entry: {text}"
    );
    for leg in [6, 7] {
        assert!(
            text.contains(&format!("; tx_id {leg} FAILED (insufficient_funds): ")),
            "{text}"
        );
    }
    assert!(text.contains("(one leg of exchange 6/7)"), "{text}");
    assert_eq!(entry("(8)").len(), 5, "{text}");
    assert!(entry("(10)")[0].contains(" ! (10)"), "pending: {text}");

    let journal = s.dir.path().join("wallet.journal");
    std::fs::write(&journal, &text).unwrap();
    hledger(&journal, &["check", "--strict"]);
    assert_eq!(hledger_books(&journal), wallet_books(&s));
    // hledger reads each exchange as one transaction tagged with both legs.
    let read: Vec<Value> =
        serde_json::from_slice(&hledger(&journal, &["print", "-O", "json"])).unwrap();
    let exchanges: Vec<(String, usize)> = read
        .iter()
        .filter(|t| {
            t["ttags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|tag| tag[0] == "pair_tx_id")
        })
        .map(|t| {
            (
                t["tcode"].as_str().unwrap().to_string(),
                t["tpostings"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        exchanges,
        [("4".into(), 4), ("8".into(), 4), ("10".into(), 4)]
    );

    // JSON Lines and CSV carry the link on both legs.
    let exported: Vec<Value> = s
        .ok(&["export"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let links: Vec<(i64, Option<i64>)> = exported
        .iter()
        .map(|t| (t["tx_id"].as_i64().unwrap(), t["pair_tx_id"].as_i64()))
        .collect();
    assert_eq!(
        &links[3..7],
        [(4, Some(5)), (5, Some(4)), (6, Some(7)), (7, Some(6))]
    );
    let csv = s.ok(&["export", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header[header.len() - 2..],
        ["currency".to_string(), "pair_tx_id".to_string()]
    );
    let pairs: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[header.len() - 1].to_string())
        .collect();
    assert_eq!(&pairs[..6], ["", "", "", "5", "4", "7"]);
}

fn a_leg_without_its_other_leg_is_a_comment() {
    let s = exchanges();
    s.tamper("UPDATE transfers SET pair_tx_id = NULL WHERE tx_id = 5");
    let text = s.ok(&["export", "--format", "hledger"]);
    assert!(
        text.contains(
            "; tx_id 4 COMPLETED: alice -> desk 50.00 PHP, one leg of exchange 4/5 without its other leg"
        ),
        "{text}"
    );
    assert!(
        text.contains("* (5)"),
        "an unlinked row is a transfer: {text}"
    );
    let journal = s.dir.path().join("wallet.journal");
    std::fs::write(&journal, &text).unwrap();
    hledger(&journal, &["check", "--strict"]);
    assert!(s.verify_fails().report.failed().contains(&"pairs"));
}

engine_tests! {
    both: [
        balances_show_every_currency_each_summing_to_zero,
        balances_and_get_user_at_an_instant_read_each_currency_s_running_balance,
        export_writes_each_record_in_its_own_currency,
        hledger_declares_every_commodity_and_balances_each_as_the_wallet_does,
        an_exchange_is_one_journal_entry_balanced_in_each_commodity,
        a_leg_without_its_other_leg_is_a_comment,
    ],
}
