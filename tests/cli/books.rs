//! Reports and export through the real binary, on either engine: `users`,
//! `balances`, and `export` as JSON Lines, CSV and an hledger journal that
//! the real `hledger` reads.

use std::process::Command;

use serde_json::Value;

use crate::common::{Sandbox, hledger};

/// alice, bob and carol with settled, failed, pending and held transfers.
fn books() -> Sandbox {
    let s = Sandbox::new();
    for name in ["alice", "bob", "Carol"] {
        s.ok(&[
            "create-user",
            name,
            &format!("{}@example.com", name.to_lowercase()),
        ]);
    }
    s.ok(&["deposit", "alice", "100", "--memo", "salary, \"November\""]);
    s.ok(&["transfer", "alice", "bob", "30", "--id", "order,42"]);
    s.ok(&["transfer", "bob", "Carol", "500"]);
    s.ok(&["withdraw", "alice", "10"]);
    s.ok(&["settle"]);
    s.ok(&["transfer", "Carol", "alice", "1"]);
    s.ok(&["hold", "alice", "bob", "5"]);
    s
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn users_lists_every_user_by_name_a_page_at_a_time() {
    let s = books();
    let all: Vec<Value> = s.json(&["users"]);
    let names: Vec<&str> = all.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["alice", "bob", "Carol"],
        "by name, regardless of case"
    );
    let alice: Value = s.json(&["get-user", "alice"]);
    assert_eq!(all[0], alice, "each user as get-user shows it");
    let first: Vec<Value> = s.json(&["users", "--limit", "2"]);
    assert_eq!(first.len(), 2);
    let rest: Vec<Value> = s.json(&["users", "--after", first[1]["name"].as_str().unwrap()]);
    assert_eq!(rest, all[2..].to_vec());
    let none: Vec<Value> = s.json(&["users", "--after", "carol"]);
    assert!(none.is_empty());
}

fn balances_sum_to_zero_now_and_at_an_instant() {
    let s = books();
    let now: Value = s.json(&["balances"]);
    assert_eq!(now["total"], "0.00");
    assert_eq!(now["external"], "-90.00", "100 came in, 10 went out");
    let users: Vec<(String, String)> = now["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().into(),
                u["balance"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            ("alice".into(), "60.00".into()),
            ("bob".into(), "30.00".into()),
            ("Carol".into(), "0.00".into())
        ]
    );
    let before: Value = s.json(&["balances", "--at", "2000-01-01"]);
    assert_eq!(
        (before["external"].as_str(), before["total"].as_str()),
        (Some("0.00"), Some("0.00"))
    );
    assert!(
        before["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["balance"] == "0.00")
    );
}

fn export_as_json_lines_is_get_transfer_object_for_object() {
    let s = books();
    let exported = lines(&s.ok(&["export"]));
    assert_eq!(exported.len(), 6);
    for object in &exported {
        let shown: Value = s.json(&["get-transfer", &object["tx_id"].to_string()]);
        assert_eq!(object, &shown);
    }
    let pending = lines(&s.ok(&["export", "--status", "PENDING", "--status", "held"]));
    let statuses: Vec<&str> = pending
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["PENDING", "HELD"]);
    assert!(s.ok(&["export", "--since", "2999-01-01"]).is_empty());
    assert_eq!(lines(&s.ok(&["export", "--until", "2999-01-01"])).len(), 6);
}

fn export_as_csv_quotes_commas_quotes_and_newlines() {
    let s = books();
    // A newline cannot come in through the command line; one put there by
    // another program must still stay inside its field.
    s.tamper(
        "UPDATE transfers SET memo = 'two
lines' WHERE tx_id = 4",
    );
    let text = s.ok(&["export", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "tx_id",
            "src",
            "dst",
            "amount",
            "memo",
            "key",
            "status",
            "reason",
            "created_at",
            "settled_at",
            "hold_amount",
            "expires_at",
            "refund_of",
            "refunded",
            "refunds",
            "currency",
            "pair_tx_id"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(&rows[0][1], "", "the outside world is an empty field");
    assert_eq!(&rows[0][4], "salary, \"November\"");
    assert_eq!(&rows[1][5], "order,42");
    assert_eq!(&rows[3][4], "two\nlines");
    assert_eq!(&rows[3][2], "", "a withdrawal goes to the outside world");
    assert!(
        text.contains("\"salary, \"\"November\"\"\""),
        "RFC 4180 quoting: {text}"
    );
}

fn hledger_reads_the_journal_and_agrees_with_the_balances() {
    let s = books();
    let journal = s.dir.path().join("wallet.journal");
    std::fs::write(&journal, s.ok(&["export", "--format", "hledger"])).unwrap();
    for strict in [false, true] {
        let mut check = Command::new("hledger");
        check.arg("-f").arg(&journal).arg("check");
        if strict {
            check.arg("--strict");
        }
        let out = check
            .output()
            .expect("hledger is installed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "hledger check: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Cleared entries are the COMPLETED transfers: their balances are the ledger's.
    let out = Command::new("hledger")
        .arg("-f")
        .arg(&journal)
        .args(["bal", "-C", "--flat", "-N", "-O", "csv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut from_hledger: Vec<(String, String)> = csv::Reader::from_reader(out.stdout.as_slice())
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].trim_end_matches(" PHP").to_string())
        })
        .collect();
    from_hledger.sort();
    let balances: Value = s.json(&["balances"]);
    let mut from_wallet: Vec<(String, String)> = balances["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["balance"] != "0.00")
        .map(|u| {
            (
                format!("assets:wallet:{}", u["name"].as_str().unwrap()),
                u["balance"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    from_wallet.push((
        "equity:external".into(),
        balances["external"].as_str().unwrap().into(),
    ));
    from_wallet.sort();
    assert_eq!(from_hledger, from_wallet);
    // The pending transfer is there, marked `!`, the failed one a comment.
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(" ! ") && l.contains("tx_id:5")),
        "{text}"
    );
    assert!(
        text.contains("; tx_id 3 FAILED (insufficient_funds)"),
        "{text}"
    );
}

/// `wallet --json transfer --batch FILE ARGS…`: exit code and result lines.
fn batch(s: &Sandbox, file: &str, text: &str, args: &[&str]) -> (i32, Vec<Value>) {
    let path = s.dir.path().join(file);
    std::fs::write(&path, text).unwrap();
    let mut full = vec!["--json", "transfer", "--batch", path.to_str().unwrap()];
    full.extend_from_slice(args);
    let out = s.cmd(&full).output().unwrap();
    (
        out.status.code().unwrap(),
        lines(&String::from_utf8(out.stdout).unwrap()),
    )
}

fn a_csv_batch_queues_with_the_same_results_keys_and_atomicity_as_json_lines() {
    let s = books();
    let text = "src,dst,amount,id,memo\n\
                alice,bob,1.00,csv-1,\"rent, \"\"May\"\"\"\n\
                \n\
                ,alice,2,,\n\
                bob,nobody,1,,\n";
    let (code, results) = batch(&s, "in.csv", text, &["--format", "csv"]);
    assert_eq!(code, 5, "one line is refused");
    assert_eq!(results[0]["line"], 2);
    assert_eq!(results[0]["status"], "PENDING");
    assert_eq!(
        results[1]["line"], 4,
        "lines are the file's, blank ones counted"
    );
    assert_eq!(results[2]["line"], 5);
    assert_eq!(results[2]["error"]["code"], "user_not_found");
    let first: Value = s.json(&["get-transfer", &results[0]["tx_id"].to_string()]);
    assert_eq!(first["memo"], "rent, \"May\"");
    assert_eq!(first["key"], "csv-1");
    let deposit: Value = s.json(&["get-transfer", &results[1]["tx_id"].to_string()]);
    assert_eq!(deposit["src"], Value::Null);
    // The same file again: the keyed line replays, the rest queue anew.
    let (_, again) = batch(&s, "in.csv", text, &["--format", "csv"]);
    assert_eq!(again[0]["replayed"], true);
    assert_eq!(again[0]["tx_id"], results[0]["tx_id"]);
    // Atomic: a bad line queues nothing.
    let before = s.ledger_bytes();
    let (code, _) = batch(&s, "in.csv", text, &["--format", "csv", "--atomic"]);
    assert_eq!(code, 5);
    assert!(
        before == s.ledger_bytes(),
        "an atomic batch with a bad line wrote nothing"
    );
    // A header that is not ours is refused before any line.
    let (code, results) = batch(
        &s,
        "bad.csv",
        "from,to,amount\nalice,bob,1\n",
        &["--format", "csv"],
    );
    assert_eq!((code, results.len()), (5, 0));
}

fn a_dry_run_checks_every_line_and_writes_nothing() {
    let s = books();
    let before = s.ledger_bytes();
    for (file, text, format) in [
        (
            "ok.jsonl",
            "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"1\"}\n{\"src\":null,\"dst\":\"bob\",\"amount\":\"2\",\"id\":\"d-1\"}\n",
            "jsonl",
        ),
        (
            "ok.csv",
            "src,dst,amount,id\nalice,bob,1,\n,bob,2,d-1\n",
            "csv",
        ),
    ] {
        let (code, results) = batch(&s, file, text, &["--format", format, "--dry-run"]);
        assert_eq!(code, 0, "{file}: {results:?}");
        assert_eq!(results.len(), 2);
        assert!(
            results
                .iter()
                .all(|r| r["dry_run"] == true && r["status"] == "PENDING")
        );
        // Lines see the lines before them, as in a real run.
        let (code, results) = batch(
            &s,
            file,
            &format!(
                "{text}{}",
                if format == "csv" {
                    ",bob,3,d-1\n"
                } else {
                    "{\"src\":null,\"dst\":\"bob\",\"amount\":\"3\",\"id\":\"d-1\"}\n"
                }
            ),
            &["--format", format, "--dry-run"],
        );
        assert_eq!(code, 5);
        assert_eq!(
            results.len(),
            1,
            "only the bad line is printed: {results:?}"
        );
        assert_eq!(results[0]["error"]["code"], "idempotency_conflict");
    }
    assert!(before == s.ledger_bytes(), "a dry run writes nothing");
    s.fails(&["get-transfer", "--id", "d-1"], "transfer_not_found", 3);
}

/// A tag value as the journal writes it: the text itself, or a JSON string
/// where the text would not survive as a tag value.
fn tag_text(value: &str) -> String {
    if value.starts_with('"') {
        serde_json::from_str(value).unwrap_or_else(|e| panic!("{value}: {e}"))
    } else {
        value.to_string()
    }
}

fn hledger_reads_every_scale_currency_memo_and_key_exactly() {
    let memos = [
        "(x) a leading code",
        "semi; colon",
        "pipe | note | more",
        "tags? a: b, c:d",
        "say \"hi\", 'there'",
        "ünïcødé ✓ 日本 (paid)",
        "  edge blanks  ",
        "\"quoted\" start",
        "* ! marks",
    ];
    let keys = [
        "plain-1",
        "comma,1",
        "k: v, w:z",
        " lead",
        "\"q\"",
        "semi;colon|pipe",
        "ü (x) 日本",
    ];
    for (code, scale) in [("JPY", "0"), ("A1", "2"), ("KWD", "3"), ("X12", "8")] {
        let s = Sandbox::new();
        s.ok(&["init", "--currency", code, "--scale", scale]);
        s.alice_and_bob();
        let part = if scale == "0" { "3" } else { "0.5" };
        for (i, memo) in memos.iter().enumerate() {
            let amount = (1000 + i).to_string();
            s.ok(&["deposit", "alice", &amount, "--memo", memo]);
        }
        for key in keys {
            s.ok(&["transfer", "alice", "bob", part, "--id", key, "--memo", key]);
        }
        s.ok(&["settle"]);
        s.ok(&["refund", "2", part, "--id", "refund, of: 2"]);
        s.ok(&["transfer", "bob", "alice", "1", "--memo", "still; pending"]);
        let journal = s.dir.path().join("wallet.journal");
        std::fs::write(&journal, s.ok(&["export", "--format", "hledger"])).unwrap();
        hledger(&journal, &["check", "--strict"]);

        // Cleared entries are the COMPLETED transfers: their balances are the ledger's.
        let balances: Value = s.json(&["balances"]);
        let mut from_wallet: Vec<(String, String)> = balances["users"]
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
                balances["external"].as_str().unwrap().to_string(),
            )])
            .collect();
        from_wallet.sort();
        let table = hledger(&journal, &["bal", "-C", "--flat", "-N", "-O", "csv"]);
        let mut from_hledger: Vec<(String, String)> = csv::Reader::from_reader(table.as_slice())
            .records()
            .map(|r| {
                let r = r.unwrap();
                let (number, commodity) = r[1].split_once(' ').unwrap();
                assert_eq!(commodity.trim_matches('"'), code, "{}", &r[1]);
                (r[0].to_string(), number.to_string())
            })
            .collect();
        from_hledger.sort();
        assert_eq!(from_hledger, from_wallet, "{code}, scale {scale}");

        // Every memo and key comes back from hledger's own reading, exactly.
        let exported = lines(&s.ok(&["export"]));
        let read: Vec<Value> =
            serde_json::from_slice(&hledger(&journal, &["print", "-O", "json"])).unwrap();
        let moved: Vec<&Value> = exported
            .iter()
            .filter(|t| t["status"] == "COMPLETED" || t["status"] == "PENDING")
            .collect();
        assert_eq!(read.len(), moved.len());
        for (transfer, entry) in moved.iter().zip(&read) {
            let tags: Vec<(String, String)> = entry["ttags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t[0].as_str().unwrap().into(), t[1].as_str().unwrap().into()))
                .collect();
            let tag = |name: &str| {
                tags.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| tag_text(v))
            };
            for (name, _) in &tags {
                assert!(
                    ["tx_id", "key", "memo", "refund_of"].contains(&name.as_str()),
                    "a stray tag {name}: {tags:?}"
                );
            }
            assert_eq!(tag("tx_id"), Some(transfer["tx_id"].to_string()));
            assert_eq!(entry["tcode"], transfer["tx_id"].to_string());
            let memo = tag("memo").or_else(|| {
                Some(entry["tdescription"].as_str().unwrap().to_string()).filter(|d| !d.is_empty())
            });
            assert_eq!(
                memo.as_deref(),
                transfer["memo"].as_str(),
                "{code}: {entry}"
            );
            assert_eq!(tag("key").as_deref(), transfer["key"].as_str(), "{entry}");
            assert_eq!(
                tag("refund_of"),
                transfer["refund_of"].as_i64().map(|id| id.to_string())
            );
            // A memo hledger can show as its description is shown there.
            if let Some(memo) = transfer["memo"].as_str()
                && !memo.contains(';')
                && memo.trim() == memo
            {
                assert_eq!(entry["tdescription"], memo);
            }
        }
    }
}

engine_tests! {
    both: [
        users_lists_every_user_by_name_a_page_at_a_time,
        balances_sum_to_zero_now_and_at_an_instant,
        export_as_json_lines_is_get_transfer_object_for_object,
        export_as_csv_quotes_commas_quotes_and_newlines,
        hledger_reads_the_journal_and_agrees_with_the_balances,
        a_csv_batch_queues_with_the_same_results_keys_and_atomicity_as_json_lines,
        a_dry_run_checks_every_line_and_writes_nothing,
        hledger_reads_every_scale_currency_memo_and_key_exactly,
    ],
}
