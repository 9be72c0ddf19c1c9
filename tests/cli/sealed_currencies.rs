//! Currencies sealed in the hash chain, on either engine: after a seal, a
//! transfer's currency or exchange partner, a limit's currency, or a
//! currency's own row edited, deleted or forged fails `verify`'s chain
//! check, naming the link; a currency added since is counted, and the next
//! `settle` seals it with nothing else new; a chain sealed before links
//! sealed currencies keeps verifying after the upgrade.

use serde_json::Value;

use crate::common::{POSTGRES_TO_VERSION_6, SQLITE_TO_VERSION_7, Sandbox, engine, no_case};
use crate::old_links::{Sealed, first_link_hash};

/// The chain check's detail in a passing `verify`.
fn chain_detail(s: &Sandbox) -> String {
    let report: Value = s.json(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "chain")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The chain's head hash as `verify --head` prints it.
fn head(s: &Sandbox) -> String {
    let doc: Value = s.json(&["verify", "--head"]);
    assert_eq!(doc["ok"], true, "{doc}");
    doc["head"]["hash"].as_str().unwrap().to_string()
}

/// A number the ledger holds, read as text on every engine.
fn number(s: &Sandbox, sql: &str) -> i64 {
    s.query_text(sql)[0].as_deref().unwrap().parse().unwrap()
}

/// A ledger in PHP and BTC: alice paid bob 30.00 of a 100.00 deposit and
/// was given a 50.00 credit line; all settled and sealed in link 1, both
/// currencies with it.
fn sealed() -> Sandbox {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["currency", "add", "BTC", "--scale", "8"]);
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["transfer", "alice", "bob", "30", "--memo", "rent"]);
    s.ok(&["overdraft", "alice", "50"]);
    s.ok(&["settle"]);
    let detail = chain_detail(&s);
    assert!(detail.starts_with("1 link seals 2 transfers"), "{detail}");
    assert!(!detail.contains("currenc"), "{detail}");
    s
}

/// Runs verify, which must fail on the chain (other checks may fail too),
/// with the first problem naming link `seq`; then `verify --expect-head`
/// with the head recorded before the edit fails too.
fn the_chain_fails_at(s: &Sandbox, seq: i64, recorded: &str) {
    let failure = s.verify_fails();
    let chain = failure
        .report
        .checks
        .iter()
        .find(|c| c.name == "chain")
        .unwrap_or_else(|| panic!("{:?}", failure.report));
    assert!(!chain.ok, "{:?}", failure.report);
    let first = &chain.problems[0].message;
    assert!(
        first.starts_with(&format!("link {seq} of the hash chain")),
        "{first}"
    );
    let out = s
        .cmd(&["--json", "verify", "--expect-head", recorded])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
}

fn sealed_currencies_untouched_verify() {
    let s = sealed();
    assert_eq!(
        number(
            &s,
            "SELECT CAST(currencies_to AS TEXT) FROM chain_links WHERE seq = 1"
        ),
        1,
        "link 1 seals every currency"
    );
    // Nothing new: settle adds no link.
    s.ok(&["settle"]);
    let detail = chain_detail(&s);
    assert!(detail.starts_with("1 link seals"), "{detail}");
}

fn a_currency_added_after_a_seal_is_counted_and_sealed_by_the_next_settle() {
    let s = sealed();
    s.ok(&["currency", "add", "JPY", "--scale", "0"]);
    let detail = chain_detail(&s);
    assert!(detail.ends_with("; 1 currency not sealed yet"), "{detail}");
    // Nothing but the currency waits: settle seals it all the same.
    s.ok(&["settle"]);
    let detail = chain_detail(&s);
    assert!(detail.starts_with("2 links seal"), "{detail}");
    assert!(!detail.contains("currenc"), "{detail}");
    let recorded = head(&s);
    s.tamper("UPDATE currencies SET scale = 2 WHERE code = 'JPY'");
    the_chain_fails_at(&s, 2, &recorded);
}

fn a_sealed_transfer_s_currency_edited_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper("UPDATE transfers SET currency = 1 WHERE tx_id = 2");
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_pair_forged_between_sealed_transfers_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper("UPDATE transfers SET pair_tx_id = 1 WHERE tx_id = 2");
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_sealed_limit_s_currency_edited_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper("UPDATE policy_changes SET currency = 1 WHERE kind = 'overdraft'");
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_sealed_currency_s_code_edited_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper("UPDATE currencies SET code = 'ETH' WHERE code = 'BTC'");
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_sealed_currency_s_scale_edited_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper("UPDATE currencies SET scale = 2 WHERE code = 'BTC'");
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_sealed_currency_deleted_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    s.tamper(
        "DELETE FROM balances WHERE currency = 1;
         DELETE FROM currencies WHERE id = 1;",
    );
    the_chain_fails_at(&s, 1, &recorded);
}

fn a_currency_forged_in_place_of_a_sealed_one_breaks_the_chain() {
    let s = sealed();
    let recorded = head(&s);
    // Every column but the code as it was: only the seal tells.
    s.tamper(
        "DELETE FROM balances WHERE currency = 1;
         INSERT INTO currencies (id, code, scale, created_at)
             SELECT 9, 'ETH', scale, created_at FROM currencies WHERE id = 1;
         DELETE FROM currencies WHERE id = 1;
         UPDATE currencies SET id = 1 WHERE id = 9;
         INSERT INTO balances (account, currency, created_at)
             SELECT 0, 1, created_at FROM currencies WHERE id = 1;",
    );
    the_chain_fails_at(&s, 1, &recorded);
}

/// The SQL that takes a ledger of the current schema back to the one
/// before currencies.
fn before_currencies() -> &'static str {
    match engine().name() {
        "sqlite" => SQLITE_TO_VERSION_7,
        "postgres" => POSTGRES_TO_VERSION_6,
        other => no_case(other),
    }
}

fn a_chain_sealed_before_links_sealed_currencies_verifies_after_the_upgrade() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["transfer", "alice", "bob", "30", "--memo", "rent"]);
    s.ok(&["overdraft", "alice", "50", "--memo", "credit line"]);
    s.ok(&["settle"]);
    // Back to the schema before currencies, with link 1 as the version
    // before sealed it: no `currencies_to`, its hash taken without one.
    s.tamper(before_currencies());
    let accounts_to = number(&s, "SELECT CAST(max(id) AS TEXT) FROM accounts");
    let changes_to = number(
        &s,
        "SELECT CAST(max(change_id) AS TEXT) FROM policy_changes",
    );
    let recorded = first_link_hash(
        &s,
        2,
        Sealed::Changes {
            accounts_to,
            changes_to,
        },
    );
    s.tamper(&format!(
        "UPDATE chain_links SET hash = '{recorded}' WHERE seq = 1"
    ));
    s.ok(&["migrate"]);
    let doc: Value = s.json(&["verify", "--head", "--expect-head", &recorded]);
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["head"]["hash"], recorded.as_str(), "{doc}");
    let detail = chain_detail(&s);
    assert!(
        detail.starts_with("1 link seals 2 transfers")
            && detail.ends_with("; 1 currency not sealed yet"),
        "{detail}"
    );
    // The next settle seals the default currency, with nothing else new.
    s.ok(&["settle"]);
    let doc: Value = s.json(&["verify", "--head", "--expect-head", &recorded]);
    assert_eq!(doc["head"]["link"], 2, "{doc}");
    let detail = chain_detail(&s);
    assert!(!detail.contains("currenc"), "{detail}");
    let link2 = head(&s);
    s.tamper("UPDATE currencies SET created_at = created_at + 1 WHERE id = 0");
    the_chain_fails_at(&s, 2, &link2);
}

/// A currency whose transaction has not committed yet holds an id below
/// one that may commit first: the seal waits for it rather than pass over
/// its id, which it could never seal afterwards.
fn a_seal_waits_for_a_currency_still_being_added() {
    let s = sealed();
    let mut writer = s.postgres();
    writer
        .batch_execute(
            "BEGIN;
             INSERT INTO currencies (id, code, scale, created_at) VALUES (2, 'ETH', 12, 1);",
        )
        .unwrap();
    // Something else new, so that settle has a link to seal.
    s.ok(&["create-user", "carol", "carol@example.com"]);
    let mut settle = s
        .process(&["settle"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        settle.try_wait().unwrap().is_none(),
        "settle sealed past a currency still being added"
    );
    writer
        .batch_execute(
            "INSERT INTO balances (account, currency, created_at) VALUES (0, 2, 1);
             COMMIT",
        )
        .unwrap();
    let out = settle.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let detail = chain_detail(&s);
    assert!(detail.starts_with("2 links seal"), "{detail}");
    assert!(!detail.contains("currenc"), "{detail}");
    assert_eq!(
        number(
            &s,
            "SELECT CAST(currencies_to AS TEXT) FROM chain_links WHERE seq = 2"
        ),
        2
    );
}

engine_tests! {
    both: [
        sealed_currencies_untouched_verify,
        a_currency_added_after_a_seal_is_counted_and_sealed_by_the_next_settle,
        a_sealed_transfer_s_currency_edited_breaks_the_chain,
        a_pair_forged_between_sealed_transfers_breaks_the_chain,
        a_sealed_limit_s_currency_edited_breaks_the_chain,
        a_sealed_currency_s_code_edited_breaks_the_chain,
        a_sealed_currency_s_scale_edited_breaks_the_chain,
        a_sealed_currency_deleted_breaks_the_chain,
        a_currency_forged_in_place_of_a_sealed_one_breaks_the_chain,
        a_chain_sealed_before_links_sealed_currencies_verifies_after_the_upgrade,
    ],
    postgres: [a_seal_waits_for_a_currency_still_being_added],
}
