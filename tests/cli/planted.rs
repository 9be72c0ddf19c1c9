//! Code planted in a PostgreSQL ledger's schema after a process opened it:
//! a trigger that doubles every credit and records each time it runs. A
//! process that writes checks the schema in every transaction, under the
//! locks of the tables it writes, so the trigger never runs as its role,
//! it stops with `not_a_ledger`, and no money moves.
//!
//! Each race is made certain by a lock a session of the test holds: the
//! process waits on it, past its open-time check, while the trigger is
//! planted. A ledger file's writer checks under its write lock too, for
//! the triggers a file can hold.

use std::io::Write as _;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use crate::common::Sandbox;

/// The ledger's schema, as the sandbox's connections have it.
fn schema(s: &Sandbox) -> String {
    s.query_text("SELECT current_schema()::text")[0]
        .clone()
        .unwrap()
}

/// A trigger on `accounts` and `transfers`, its function and its record in
/// a schema of their own, so the trigger is all the ledger's schema gains.
fn plant_sql(s: &Sandbox) -> String {
    let schema = schema(s);
    format!(
        "CREATE SCHEMA {schema}_side;
         CREATE TABLE {schema}_side.fired (n integer);
         CREATE FUNCTION {schema}_side.doubled() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO {schema}_side.fired VALUES (1);
             IF TG_TABLE_NAME = 'accounts' THEN
                 IF TG_OP = 'UPDATE' THEN
                     IF NEW.balance > OLD.balance THEN
                         NEW.balance := 2 * NEW.balance - OLD.balance;
                     END IF;
                 END IF;
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER planted BEFORE INSERT OR UPDATE ON {schema}.accounts
             FOR EACH ROW EXECUTE FUNCTION {schema}_side.doubled();
         CREATE TRIGGER planted BEFORE INSERT OR UPDATE ON {schema}.transfers
             FOR EACH ROW EXECUTE FUNCTION {schema}_side.doubled();"
    )
}

/// How often the planted trigger ran.
fn fired(s: &Sandbox) -> String {
    let schema = schema(s);
    s.query_text(&format!("SELECT count(*)::text FROM {schema}_side.fired"))[0]
        .clone()
        .unwrap()
}

/// A figure read straight from the ledger (a command would refuse it).
fn stored(s: &Sandbox, sql: &str) -> String {
    s.query_text(sql)[0].clone().unwrap_or_default()
}

fn balance(s: &Sandbox, name: &str) -> String {
    stored(
        s,
        &format!("SELECT balance::text FROM accounts WHERE name = '{name}'"),
    )
}

/// Waits until a session waits for a lock on `table` of this ledger.
fn waits_for(s: &Sandbox, table: &str) -> bool {
    let sql = format!(
        "SELECT count(*)::text FROM pg_locks WHERE NOT granted AND relation = '{table}'::regclass"
    );
    (0..800).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        stored(s, &sql) != "0"
    })
}

fn until(mut ready: impl FnMut() -> bool) -> bool {
    (0..800).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        ready()
    })
}

fn wait_or_kill(mut child: Child) -> Output {
    for _ in 0..800 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// The process stopped with `not_a_ledger`, naming the trigger.
fn stopped_at_the_trigger(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{stderr}{stdout}");
    let said = format!("{stderr}{stdout}");
    assert!(
        said.contains("not a wallet ledger") && said.contains("trigger planted"),
        "{said}"
    );
}

fn watcher(s: &Sandbox) -> Child {
    s.process(&[
        "--lock-timeout",
        "200",
        "settle",
        "--watch",
        "--interval",
        "50",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

/// Once `process` waits for a lock the session `holder` holds on `table`,
/// plants `sql`, lets the process go and waits for it: it must stop at
/// the trigger, which never ran.
fn planted_while_it_waits(
    s: &Sandbox,
    mut holder: ::postgres::Client,
    table: &str,
    sql: &str,
    process: Child,
) -> Output {
    assert!(waits_for(s, table), "it waits for {table}");
    s.tamper(sql);
    holder.batch_execute("ROLLBACK").unwrap();
    let out = wait_or_kill(process);
    assert_eq!(fired(s), "0", "the trigger never ran");
    stopped_at_the_trigger(&out);
    out
}

fn a_watch_worker_stops_at_a_trigger_planted_between_its_batches() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    let worker = watcher(&s);
    assert!(until(|| balance(&s, "alice") == "10000"), "it settled");
    // Its next batches wait for the lanes while a transfer is queued and
    // the trigger planted.
    let mut holder = s.postgres();
    holder
        .batch_execute("BEGIN; LOCK TABLE lanes IN EXCLUSIVE MODE")
        .unwrap();
    s.ok(&["transfer", "alice", "bob", "30"]);
    planted_while_it_waits(&s, holder, "lanes", &plant_sql(&s), worker);
    assert_eq!(balance(&s, "alice"), "10000");
    assert_eq!(balance(&s, "bob"), "0");
    assert_eq!(
        stored(&s, "SELECT status FROM transfers WHERE tx_id = 2"),
        "PENDING"
    );
}

fn a_watch_worker_stops_at_a_trigger_planted_after_it_opened() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    let mut holder = s.postgres();
    holder
        .batch_execute("BEGIN; LOCK TABLE lanes IN EXCLUSIVE MODE")
        .unwrap();
    // It opens the ledger (the trigger is not there) and waits to settle.
    let worker = watcher(&s);
    planted_while_it_waits(&s, holder, "lanes", &plant_sql(&s), worker);
    assert_eq!(balance(&s, "alice"), "0");
    assert_eq!(
        stored(&s, "SELECT status FROM transfers WHERE tx_id = 1"),
        "PENDING"
    );
}

fn a_transfer_stops_at_a_trigger_planted_after_it_opened() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["settle"]);
    let mut holder = s.postgres();
    holder
        .batch_execute("BEGIN; LOCK TABLE transfers IN SHARE ROW EXCLUSIVE MODE")
        .unwrap();
    let transfer = s
        .process(&[
            "--json",
            "--lock-timeout",
            "20000",
            "transfer",
            "alice",
            "bob",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(waits_for(&s, "transfers"), "the transfer waits to write");
    holder.batch_execute(&plant_sql(&s)).unwrap();
    holder.batch_execute("COMMIT").unwrap();
    let out = wait_or_kill(transfer);
    assert_eq!(fired(&s), "0", "the trigger never ran");
    stopped_at_the_trigger(&out);
    assert_eq!(stored(&s, "SELECT count(*)::text FROM transfers"), "1");
    assert_eq!(
        stored(
            &s,
            "SELECT pending_out::text FROM accounts WHERE name = 'alice'"
        ),
        "0"
    );
}

fn a_batch_stops_at_a_trigger_planted_between_its_chunks() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["settle"]);
    let mut batch = s
        .process(&["--json", "transfer", "--batch", "-", "--chunk-size", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = batch.stdin.take().unwrap();
    writeln!(input, r#"{{"src":"alice","dst":"bob","amount":"1"}}"#).unwrap();
    input.flush().unwrap();
    let count = "SELECT count(*)::text FROM transfers";
    assert!(
        until(|| stored(&s, count) == "2"),
        "its first chunk committed"
    );
    s.tamper(&plant_sql(&s));
    writeln!(input, r#"{{"src":"alice","dst":"bob","amount":"2"}}"#).unwrap();
    drop(input);
    let out = wait_or_kill(batch);
    assert_eq!(fired(&s), "0", "the trigger never ran");
    stopped_at_the_trigger(&out);
    assert_eq!(stored(&s, count), "2", "the second line was not queued");
}

fn a_function_planted_while_a_transfer_runs_leaves_nothing_written() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["settle"]);
    // alice's row is locked: the transfer checks the schema, then waits
    // for her account in the middle of its transaction.
    let mut holder = s.postgres();
    holder
        .batch_execute("BEGIN; SELECT 1 FROM accounts WHERE name = 'alice' FOR UPDATE")
        .unwrap();
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let transfer = s
        .process(&[
            "--json",
            "--lock-timeout",
            "20000",
            "transfer",
            "alice",
            "bob",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let blocked = format!(
        "SELECT count(*)::text FROM pg_stat_activity WHERE {pid} = ANY(pg_blocking_pids(pid))"
    );
    assert!(until(|| stored(&s, &blocked) != "0"), "the transfer waits");
    // No lock of the transfer's keeps a function out of the schema.
    let schema = schema(&s);
    s.tamper(&format!(
        "CREATE FUNCTION {schema}.planted() RETURNS integer LANGUAGE sql AS 'SELECT 1'"
    ));
    holder.batch_execute("ROLLBACK").unwrap();
    let out = wait_or_kill(transfer);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{said}");
    assert!(said.contains("not_a_ledger"), "{said}");
    assert_eq!(stored(&s, "SELECT count(*)::text FROM transfers"), "1");
    assert_eq!(
        stored(
            &s,
            "SELECT pending_out::text FROM accounts WHERE name = 'alice'"
        ),
        "0"
    );
}

/// A trigger on the chain's links and its record, planted in a schema of
/// its own beside the ledger's.
fn plant_on_the_chain_sql(s: &Sandbox) -> String {
    let schema = schema(s);
    format!(
        "CREATE SCHEMA {schema}_side;
         CREATE TABLE {schema}_side.fired (n integer);
         CREATE FUNCTION {schema}_side.noted() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO {schema}_side.fired VALUES (1);
             RETURN NEW;
         END $$;
         CREATE TRIGGER planted BEFORE INSERT OR UPDATE ON {schema}.chain_links
             FOR EACH ROW EXECUTE FUNCTION {schema}_side.noted();"
    )
}

fn a_seal_stops_at_a_trigger_planted_on_the_chain_after_the_batches() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    // Writers of transfers pass; the seal, which reads the queue's bounds
    // under a SHARE lock, waits, past every check the settle made so far.
    let mut holder = s.postgres();
    holder
        .batch_execute("BEGIN; LOCK TABLE transfers IN ROW EXCLUSIVE MODE")
        .unwrap();
    let settle = s
        .process(&["--json", "--lock-timeout", "20000", "settle"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let plant = plant_on_the_chain_sql(&s);
    planted_while_it_waits(&s, holder, "transfers", &plant, settle);
    assert_eq!(balance(&s, "alice"), "10000", "the batch was settled");
    assert_eq!(stored(&s, "SELECT count(*)::text FROM chain_links"), "0");
}

/// Waits until `child` sleeps in a busy wait: a ledger file's writer that
/// has opened (and checked) the ledger and waits for the write lock.
fn sleeps(child: &Child) -> bool {
    let wchan = format!("/proc/{}/wchan", child.id());
    until(|| std::fs::read_to_string(&wchan).is_ok_and(|w| w.contains("nanosleep")))
}

fn a_transfer_on_a_file_stops_at_a_trigger_planted_while_it_waited_for_the_lock() {
    let s = Sandbox::new();
    s.alice_and_bob();
    s.ok(&["deposit", "alice", "100"]);
    s.ok(&["settle"]);
    let holder = rusqlite::Connection::open(s.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let transfer = s
        .process(&[
            "--json",
            "--lock-timeout",
            "20000",
            "transfer",
            "alice",
            "bob",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(sleeps(&transfer), "the transfer waits for the write lock");
    holder
        .execute_batch(
            "CREATE TABLE fired (n INTEGER);
             CREATE TRIGGER planted AFTER INSERT ON transfers
                 BEGIN INSERT INTO fired VALUES (1); END;
             COMMIT;",
        )
        .unwrap();
    let out = wait_or_kill(transfer);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{said}");
    assert!(
        said.contains("not a wallet ledger") && said.contains("trigger 'planted'"),
        "{said}"
    );
    assert_eq!(
        stored(&s, "SELECT CAST(count(*) AS TEXT) FROM fired"),
        "0",
        "it never ran"
    );
    assert_eq!(
        stored(&s, "SELECT CAST(count(*) AS TEXT) FROM transfers"),
        "1"
    );
}

engine_tests! {
    both: [],
    sqlite: [a_transfer_on_a_file_stops_at_a_trigger_planted_while_it_waited_for_the_lock],
    postgres: [
        a_watch_worker_stops_at_a_trigger_planted_between_its_batches,
        a_watch_worker_stops_at_a_trigger_planted_after_it_opened,
        a_transfer_stops_at_a_trigger_planted_after_it_opened,
        a_batch_stops_at_a_trigger_planted_between_its_chunks,
        a_function_planted_while_a_transfer_runs_leaves_nothing_written,
        a_seal_stops_at_a_trigger_planted_on_the_chain_after_the_batches,
    ],
}
