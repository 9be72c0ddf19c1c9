//! `transfer --batch --dry-run` on a server: the output has the shape it has
//! on a ledger file, but the `tx_id`s it prints were drawn from the server's
//! sequence, which no roll-back returns, so a later real run takes others.

use serde_json::Value;

use crate::common::Sandbox;

const BATCH: &str = "{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"1.00\",\"id\":\"k1\"}\n\
{\"src\":\"bob\",\"dst\":\"alice\",\"amount\":\"0.50\"}\n\
\n\
{\"dst\":\"alice\",\"amount\":\"2.00\",\"memo\":\"top-up\"}\n";

/// The batch's stdout as JSON documents, run on `db` with `extra` flags.
fn batch(s: &Sandbox, db: &str, extra: &[&str]) -> Vec<Value> {
    let path = s.dir.path().join("batch.jsonl");
    std::fs::write(&path, BATCH).unwrap();
    let out = s
        .process(&[])
        .args(["--db", db, "transfer", "--batch", path.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn ledger(s: &Sandbox, db: &str) {
    for args in [
        &["create-user", "alice", "alice@example.com"][..],
        &["create-user", "bob", "bob@example.com"],
        &["deposit", "alice", "10"],
        &["deposit", "bob", "10"],
        &["settle"],
    ] {
        let out = s
            .process(&[])
            .args(["--db", db])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
    }
}

/// Each line with its `tx_id` taken out, and the `tx_id`s.
fn split(lines: &[Value]) -> (Vec<Value>, Vec<i64>) {
    let ids = lines.iter().map(|l| l["tx_id"].as_i64().unwrap()).collect();
    let shapes = lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.as_object_mut().unwrap().remove("tx_id");
            l
        })
        .collect();
    (shapes, ids)
}

fn a_dry_run_prints_what_a_file_prints_but_its_ids_are_not_kept() {
    let s = Sandbox::new();
    let server = s.db().to_string_lossy().into_owned();
    let file = s.dir.path().join("books.db").to_string_lossy().into_owned();
    ledger(&s, &server);
    ledger(&s, &file);
    let (server_dry, server_dry_ids) = split(&batch(&s, &server, &["--dry-run"]));
    let (file_dry, file_dry_ids) = split(&batch(&s, &file, &["--dry-run"]));
    assert_eq!(server_dry, file_dry, "the same shape on both engines");
    assert!(server_dry.iter().all(|l| l["dry_run"] == true));
    assert_eq!(
        server_dry
            .iter()
            .map(|l| l["line"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 4]
    );
    let (server_real, server_ids) = split(&batch(&s, &server, &[]));
    let (file_real, file_ids) = split(&batch(&s, &file, &[]));
    assert_eq!(server_real, file_real);
    // On a file nothing else wrote in between, so the ids are the same; a
    // server's sequence moved on past the ids the dry run drew.
    assert_eq!(file_ids, file_dry_ids);
    assert!(
        server_ids.iter().min() > server_dry_ids.iter().max(),
        "{server_ids:?} after {server_dry_ids:?}"
    );
}

engine_tests! {
    both: [],
    postgres: [
        a_dry_run_prints_what_a_file_prints_but_its_ids_are_not_kept,
    ],
}
