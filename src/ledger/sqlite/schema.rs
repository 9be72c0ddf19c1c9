//! The ledger's schema: an append-only list of migrations and the objects a valid ledger holds.

use rusqlite::{Connection, TransactionBehavior};

use super::error::SqlResult as Result;
use crate::text::echo;

/// Marks a file as a wallet ledger in the SQLite header ("WLET"), so a
/// database of another program is told apart without reading its tables.
pub(super) const APPLICATION_ID: i32 = 0x574C_4554;

/// The first bytes of every SQLite database.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Whether a database's first 72 bytes (its header, up to the application
/// id) are an SQLite database's, and whether they mark a wallet ledger.
pub(super) fn header_marks(header: &[u8; 72]) -> (bool, bool) {
    let sqlite = &header[..16] == MAGIC;
    let application_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    (sqlite, sqlite && application_id == APPLICATION_ID)
}

/// Each step moves the schema one version up. Shipped steps are never edited
/// or reordered: ledgers in the field were built by them.
const MIGRATIONS: &[&str] = &[
    // 1: accounts with maintained balances, transfers as a queue and a log.
    r#"
CREATE TABLE ledger_meta (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    currency    TEXT    NOT NULL,
    scale       INTEGER NOT NULL CHECK (scale BETWEEN 0 AND 18),
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    name        TEXT,
    email       TEXT,
    balance     INTEGER NOT NULL DEFAULT 0,
    pending_in  INTEGER NOT NULL DEFAULT 0 CHECK (pending_in >= 0),
    pending_out INTEGER NOT NULL DEFAULT 0 CHECK (pending_out >= 0),
    created_at  INTEGER NOT NULL,
    CHECK ((id = 0) = (name IS NULL)),
    CHECK (id = 0 OR balance >= 0)
) STRICT;

CREATE UNIQUE INDEX accounts_by_name ON accounts (name COLLATE NOCASE);

CREATE TABLE transfers (
    tx_id       INTEGER PRIMARY KEY,
    src         INTEGER NOT NULL REFERENCES accounts (id),
    dst         INTEGER NOT NULL REFERENCES accounts (id),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    -- Written as equalities, not `IN (…)`: SQLite evaluates an IN list by
    -- building a temporary index for every row written, a third of the cost
    -- of settling one transfer.
    status      TEXT    NOT NULL CHECK (status = 'PENDING' OR status = 'COMPLETED' OR status = 'FAILED' OR status = 'CANCELLED'),
    reason      TEXT,
    memo        TEXT,
    idem_key    TEXT,
    created_at  INTEGER NOT NULL,
    settled_at  INTEGER,
    CHECK (src <> dst),
    CHECK ((status = 'FAILED') = (reason IS NOT NULL))
) STRICT;

CREATE UNIQUE INDEX transfers_by_key ON transfers (idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX transfers_pending ON transfers (status) WHERE status = 'PENDING';
CREATE INDEX transfers_by_src ON transfers (src, tx_id);
CREATE INDEX transfers_by_dst ON transfers (dst, tx_id);

INSERT INTO accounts (id, name, email, balance, created_at) VALUES (0, NULL, NULL, 0, 0);
"#,
    // 2: `history --status FAILED|CANCELLED` reads a user's transfers that
    // ended without being applied straight from an index, however long the
    // history around them. Partial, so that settling a transfer as COMPLETED
    // (the common case) costs no extra index write.
    r#"
CREATE INDEX transfers_unapplied_by_src ON transfers (src, status, tx_id)
    WHERE status IN ('FAILED', 'CANCELLED');
CREATE INDEX transfers_unapplied_by_dst ON transfers (dst, status, tx_id)
    WHERE status IN ('FAILED', 'CANCELLED');
"#,
    // 3: the per-account history moves off the queueing path. Queueing a
    // transfer wrote it into two indexes keyed by account, at a random
    // place each, which was most of the cost of ingest; now a transfer is
    // posted to each user's history when it is decided (settled, failed or
    // cancelled), a settle batch's postings sorted by account first, and a
    // user's PENDING transfers are read from the queue itself.
    r#"
CREATE TABLE postings (
    account     INTEGER NOT NULL,
    tx_id       INTEGER NOT NULL,
    PRIMARY KEY (account, tx_id)
) STRICT, WITHOUT ROWID;

INSERT INTO postings (account, tx_id)
    SELECT src, tx_id FROM transfers WHERE status <> 'PENDING' AND src <> 0
    UNION ALL
    SELECT dst, tx_id FROM transfers WHERE status <> 'PENDING' AND dst <> 0
    ORDER BY 1, 2;

DROP INDEX transfers_by_src;
DROP INDEX transfers_by_dst;
"#,
    // 4: holds, refunds and balances in time. A hold is a transfer row
    // (HELD, then PENDING when captured, or RELEASED or EXPIRED) whose
    // reservation is summed in `accounts.held`; a refund names the transfer
    // it pays back. Each posting records the user's balance right after the
    // transfer was applied (none for one that was not). `settle_log` has a
    // row per settle batch: when, and the largest `tx_id` decided so far;
    // `late_applied` names the rare postings decided after a larger `tx_id`
    // (a hold captured late), with their batch. Together they place any
    // instant in a user's postings without an index by time on every
    // posting, which would double settle's cost of writing them. The
    // transfers table is rebuilt because its status CHECK cannot be altered
    // in place; the balances of earlier postings are rebuilt by summing each
    // user's applied transfers in `tx_id` order, and the log from their
    // settlement times: an older ledger applied them in that order.
    r#"
ALTER TABLE accounts ADD COLUMN held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0);

ALTER TABLE transfers RENAME TO transfers_v3;

CREATE TABLE transfers (
    tx_id       INTEGER PRIMARY KEY,
    src         INTEGER NOT NULL REFERENCES accounts (id),
    dst         INTEGER NOT NULL REFERENCES accounts (id),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    status      TEXT    NOT NULL CHECK (status = 'PENDING' OR status = 'COMPLETED' OR status = 'FAILED' OR status = 'CANCELLED' OR (hold_amount IS NOT NULL AND (status = 'HELD' OR status = 'RELEASED' OR status = 'EXPIRED'))),
    reason      TEXT,
    memo        TEXT,
    idem_key    TEXT,
    created_at  INTEGER NOT NULL,
    settled_at  INTEGER,
    hold_amount INTEGER CHECK (hold_amount >= amount),
    expires_at  INTEGER,
    refund_of   INTEGER REFERENCES transfers (tx_id),
    CHECK (src <> dst),
    CHECK ((status = 'FAILED') = (reason IS NOT NULL))
) STRICT;

INSERT INTO transfers (tx_id, src, dst, amount, status, reason, memo, idem_key, created_at, settled_at)
    SELECT tx_id, src, dst, amount, status, reason, memo, idem_key, created_at, settled_at FROM transfers_v3;

DROP TABLE transfers_v3;

CREATE UNIQUE INDEX transfers_by_key ON transfers (idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX transfers_pending ON transfers (status) WHERE status = 'PENDING';
CREATE INDEX transfers_unapplied_by_src ON transfers (src, status, tx_id)
    WHERE status IN ('FAILED', 'CANCELLED');
CREATE INDEX transfers_unapplied_by_dst ON transfers (dst, status, tx_id)
    WHERE status IN ('FAILED', 'CANCELLED');
CREATE INDEX transfers_held_by_expiry ON transfers (expires_at, src) WHERE status = 'HELD';
CREATE INDEX transfers_by_refund_of ON transfers (refund_of) WHERE refund_of IS NOT NULL;

ALTER TABLE postings RENAME TO postings_v3;

CREATE TABLE postings (
    account       INTEGER NOT NULL,
    tx_id         INTEGER NOT NULL,
    balance_after INTEGER,
    PRIMARY KEY (account, tx_id)
) STRICT, WITHOUT ROWID;

INSERT INTO postings (account, tx_id, balance_after)
    SELECT p.account, p.tx_id,
           CASE WHEN t.status = 'COMPLETED' THEN sum(CASE WHEN t.status <> 'COMPLETED' THEN 0 WHEN t.dst = p.account THEN t.amount ELSE -t.amount END) OVER (PARTITION BY p.account ORDER BY p.tx_id) END
    FROM postings_v3 p JOIN transfers t ON t.tx_id = p.tx_id
    ORDER BY p.account, p.tx_id;

DROP TABLE postings_v3;

CREATE TABLE settle_log (
    batch       INTEGER PRIMARY KEY,
    settled_at  INTEGER NOT NULL,
    max_tx      INTEGER NOT NULL
) STRICT;

CREATE INDEX settle_log_by_time ON settle_log (settled_at);
CREATE INDEX settle_log_by_tx ON settle_log (max_tx);

INSERT INTO settle_log (settled_at, max_tx)
    SELECT settled_at, max(max(tx_id)) OVER (ORDER BY settled_at)
    FROM transfers WHERE status = 'COMPLETED' OR status = 'FAILED'
    GROUP BY settled_at ORDER BY settled_at;

CREATE TABLE late_applied (
    account     INTEGER NOT NULL,
    tx_id       INTEGER NOT NULL,
    batch       INTEGER NOT NULL,
    PRIMARY KEY (account, tx_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX late_applied_by_batch ON late_applied (account, batch);
"#,
    // 5: the tamper-evident log: links of a hash chain sealed over decided
    // transfers (see `ledger::chain`), and the transfers a link left for a
    // later one because they could still change.
    r#"
CREATE TABLE chain_links (
    seq         INTEGER PRIMARY KEY,
    first_tx    INTEGER NOT NULL,
    last_tx     INTEGER NOT NULL,
    excluded    TEXT    NOT NULL,
    late        TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    hash        TEXT    NOT NULL,
    sealed_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE chain_open (
    tx_id       INTEGER PRIMARY KEY
) STRICT;
"#,
    // 6: the chain reads what it still owes from its links' own lists, which
    // their hashes cover, so the side table an insider could empty goes;
    // and a link seals who each account is, up to `accounts_to` (empty in
    // the links before, which hash as they did).
    r#"
ALTER TABLE chain_links ADD COLUMN accounts_to INTEGER;

DROP TABLE chain_open;
"#,
    // 7: account policies. A balance may go below zero down to the
    // account's overdraft limit, so the check that it never does goes (the
    // table is built again, the only way to drop a check); every change of
    // a policy is a row of `policy_changes`, sealed by the links up to
    // `changes_to`; and `events` is the change feed, one row per event in
    // the order the events committed (one writer at a time on a file). A
    // settle batch writes a row per decision, so the row is kept small: the
    // kind is a code (`EventKind::code`; a decision's is 0, stored in no
    // byte) and a decision's instant is its transfer's `settled_at`.
    // `migrate` turns foreign keys off around the steps, so renaming the
    // old table leaves the references to `accounts` as they are.
    r#"
PRAGMA legacy_alter_table = ON;

ALTER TABLE accounts RENAME TO accounts_v6;

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    name        TEXT,
    email       TEXT,
    balance     INTEGER NOT NULL DEFAULT 0,
    pending_in  INTEGER NOT NULL DEFAULT 0 CHECK (pending_in >= 0),
    pending_out INTEGER NOT NULL DEFAULT 0 CHECK (pending_out >= 0),
    created_at  INTEGER NOT NULL,
    held        INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    overdraft   INTEGER NOT NULL DEFAULT 0 CHECK (overdraft >= 0),
    frozen      INTEGER NOT NULL DEFAULT 0 CHECK (frozen = 0 OR frozen = 1),
    closed      INTEGER NOT NULL DEFAULT 0 CHECK (closed = 0 OR closed = 1),
    CHECK ((id = 0) = (name IS NULL)),
    CHECK (id <> 0 OR (overdraft = 0 AND frozen = 0 AND closed = 0))
) STRICT;

INSERT INTO accounts (id, name, email, balance, pending_in, pending_out, created_at, held)
    SELECT id, name, email, balance, pending_in, pending_out, created_at, held FROM accounts_v6;

DROP TABLE accounts_v6;

PRAGMA legacy_alter_table = OFF;

CREATE UNIQUE INDEX accounts_by_name ON accounts (name COLLATE NOCASE);

CREATE TABLE policy_changes (
    change_id   INTEGER PRIMARY KEY,
    account     INTEGER NOT NULL REFERENCES accounts (id),
    kind        TEXT    NOT NULL CHECK (kind = 'overdraft' OR kind = 'freeze' OR kind = 'unfreeze' OR kind = 'close'),
    overdraft   INTEGER CHECK (overdraft >= 0),
    memo        TEXT,
    at          INTEGER NOT NULL,
    CHECK (account <> 0),
    CHECK ((kind = 'overdraft') = (overdraft IS NOT NULL))
) STRICT;

CREATE INDEX policy_changes_by_account ON policy_changes (account, change_id);

CREATE TABLE events (
    event_id    INTEGER PRIMARY KEY,
    kind        INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 5),
    tx_id       INTEGER,
    change_id   INTEGER,
    at          INTEGER,
    CHECK ((tx_id IS NULL) <> (change_id IS NULL)),
    CHECK (at IS NOT NULL OR kind = 0)
) STRICT;

ALTER TABLE chain_links ADD COLUMN changes_to INTEGER;
"#,
    // 8: many currencies in one ledger. The default currency, the one
    // `init` named, is row 0 of `currencies` and keeps its figures in
    // `accounts` as before, so a ledger of one currency reads and writes
    // the tables it did. A `balances` row holds a user's figures (or, for
    // account 0, the external account's) in any other currency. The new
    // columns take a constant default, which rewrites no row: a transfer
    // or a policy change of an older ledger is in currency 0. No column
    // here references `currencies`, as SQLite refuses to add one with a
    // default other than NULL, and `verify` checks them instead. A file
    // created at this version has no `ledger_meta` row yet, so the copy
    // into `currencies` copies nothing there (creation inserts row 0).
    r#"
CREATE TABLE currencies (
    id          INTEGER PRIMARY KEY CHECK (id >= 0),
    code        TEXT    NOT NULL,
    scale       INTEGER NOT NULL CHECK (scale BETWEEN 0 AND 18),
    created_at  INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX currencies_by_code ON currencies (code);

INSERT INTO currencies (id, code, scale, created_at)
    SELECT 0, currency, scale, created_at FROM ledger_meta;

CREATE TABLE balances (
    account     INTEGER NOT NULL REFERENCES accounts (id),
    currency    INTEGER NOT NULL REFERENCES currencies (id),
    balance     INTEGER NOT NULL DEFAULT 0,
    pending_in  INTEGER NOT NULL DEFAULT 0 CHECK (pending_in >= 0),
    pending_out INTEGER NOT NULL DEFAULT 0 CHECK (pending_out >= 0),
    held        INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    overdraft   INTEGER NOT NULL DEFAULT 0 CHECK (overdraft >= 0),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account, currency),
    CHECK (currency <> 0),
    CHECK (account <> 0 OR (overdraft = 0 AND held = 0))
) STRICT, WITHOUT ROWID;

ALTER TABLE transfers ADD COLUMN currency INTEGER NOT NULL DEFAULT 0 CHECK (currency >= 0);

ALTER TABLE transfers ADD COLUMN pair_tx_id INTEGER CHECK (pair_tx_id <> tx_id);

ALTER TABLE policy_changes ADD COLUMN currency INTEGER NOT NULL DEFAULT 0 CHECK (currency >= 0);

ALTER TABLE chain_links ADD COLUMN currencies_to INTEGER;
"#,
    // 9: the queue's index keys its PENDING rows by `tx_id`, an integer,
    // where it keyed them by `status`, the same text in every entry: each
    // transfer queued and settled finds its entry by comparing integers,
    // not the text and then the rowid, which was a seventh of settling one.
    // It is read in the same order, by the same queries.
    r#"
DROP INDEX transfers_pending;

CREATE INDEX transfers_pending ON transfers (tx_id) WHERE status = 'PENDING';
"#,
    // 10: the queue is read by `tx_id` from a mark instead of through an
    // index of its PENDING rows, which every transfer entered as it was
    // queued and left as it was settled: a sixth of queueing and settling
    // one. Settle decides the oldest PENDING rows first, so none but a
    // captured hold (PENDING again under its old `tx_id`) lies below the
    // first `tx_id` a batch has not reached, `next_tx`; captured holds keep
    // a small index of their own. The mark starts at the oldest PENDING
    // row that is not a captured hold, found through the old index before
    // it goes.
    r#"
CREATE TABLE queue_mark (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    next_tx     INTEGER NOT NULL
) STRICT;

INSERT INTO queue_mark (id, next_tx)
    SELECT 1, coalesce((SELECT min(tx_id) FROM transfers WHERE status = 'PENDING' AND hold_amount IS NULL),
                       (SELECT min(max(tx_id), 9223372036854775806) + 1 FROM transfers), 1);

DROP INDEX transfers_pending;

CREATE INDEX transfers_captured ON transfers (tx_id) WHERE status = 'PENDING' AND hold_amount IS NOT NULL;
"#,
];

/// The schema version this binary writes and fully understands.
pub(super) fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The `(type, name)` of every object a ledger at [`latest_version`] holds,
/// sorted by name; anything else in the file (a trigger, a view) is foreign.
#[cfg(test)]
pub(super) const EXPECTED_OBJECTS: &[(&str, &str)] = &[
    ("table", "accounts"),
    ("index", "accounts_by_name"),
    ("table", "balances"),
    ("table", "chain_links"),
    ("table", "currencies"),
    ("index", "currencies_by_code"),
    ("table", "events"),
    ("table", "late_applied"),
    ("index", "late_applied_by_batch"),
    ("table", "ledger_meta"),
    ("table", "policy_changes"),
    ("index", "policy_changes_by_account"),
    ("table", "postings"),
    ("table", "queue_mark"),
    ("table", "settle_log"),
    ("index", "settle_log_by_time"),
    ("index", "settle_log_by_tx"),
    ("table", "transfers"),
    ("index", "transfers_by_key"),
    ("index", "transfers_by_refund_of"),
    ("index", "transfers_captured"),
    ("index", "transfers_held_by_expiry"),
    ("index", "transfers_unapplied_by_dst"),
    ("index", "transfers_unapplied_by_src"),
];

/// Brings a ledger up to [`latest_version`] in one transaction. The version
/// is read again under the write lock, so two processes upgrading the same
/// file at once apply each step once.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    // A step that builds a table again renames the old one away; with
    // foreign keys on, SQLite would point the references to it at the
    // old name. The pragma cannot change inside a transaction.
    let enforced: bool = conn.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let migrated = migrate_steps(conn);
    let restored = conn.pragma_update(None, "foreign_keys", enforced);
    migrated?;
    Ok(restored?)
}

fn migrate_steps(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for step in MIGRATIONS.iter().skip(current.max(0) as usize) {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", latest_version())?;
    super::error::commit(
        tx,
        &format!("the upgrade to schema version {}", latest_version()),
        "`wallet migrate` finishes it if it did not",
    )?;
    Ok(())
}

/// The objects (type, name) found in a ledger file, sorted by name, leaving
/// out SQLite's own bookkeeping tables such as `sqlite_stat1`.
#[cfg(test)]
pub(super) fn objects_in(conn: &Connection) -> Result<Vec<(String, String)>> {
    let rows = catalog_rows(conn)?.into_iter();
    Ok(rows.map(|(kind, name, _)| (kind, name)).collect())
}

/// The full `CREATE` text of every object, for comparing a ledger against a
/// freshly built one.
#[cfg(test)]
pub(super) fn definitions_in(conn: &Connection) -> Result<Vec<(String, Option<String>)>> {
    let rows = catalog_rows(conn)?.into_iter();
    Ok(rows.map(|(_, name, sql)| (name, sql)).collect())
}

/// The definitions a ledger at [`latest_version`] must have, built in memory.
#[cfg(test)]
pub(super) fn expected_definitions() -> Result<Vec<(String, Option<String>)>> {
    let mut conn = Connection::open_in_memory()?;
    migrate(&mut conn)?;
    definitions_in(&conn)
}

/// The definitions a ledger at `version` must have. An older ledger is
/// checked against what it should be at its own version, not against steps
/// it has yet to take.
///
/// Read from the migrations' text rather than built in a scratch database:
/// every command checks the schema on open, and SQLite keeps a `CREATE`
/// statement's text as written (ours are written in its normal form), so
/// the text is the definition. A test holds this to what SQLite builds.
pub(super) fn expected_definitions_at(version: i64) -> Result<Vec<(String, Option<String>)>> {
    let steps = usize::try_from(version.clamp(0, latest_version())).unwrap_or(0);
    let mut definitions: Vec<(String, Option<String>)> = Vec::new();
    for statement in MIGRATIONS[..steps].iter().flat_map(|step| step.split(';')) {
        let sql = statement.trim();
        let mut words = sql.split_whitespace();
        match words.next() {
            Some("CREATE") => {
                if let Some(name) =
                    words.find(|word| !matches!(*word, "UNIQUE" | "TABLE" | "INDEX"))
                {
                    // A later step may build an object again under its name.
                    definitions.retain(|(n, _)| n != name);
                    definitions.push((name.to_string(), Some(sql.to_string())));
                }
            }
            Some("ALTER") => {
                // `ALTER TABLE t ADD COLUMN …` rewrites the table's stored
                // text; `RENAME TO` moves it (and its indexes) to a name
                // the same step drops.
                let (Some(_), Some(name), Some(action)) =
                    (words.next(), words.next(), words.next())
                else {
                    continue;
                };
                if action == "RENAME" {
                    let gone: Vec<String> = definitions
                        .iter()
                        .map(|(n, _)| n.clone())
                        .filter(|n| n == name || indexes_of(n, name, &definitions))
                        .collect();
                    definitions.retain(|(n, _)| !gone.contains(n));
                } else if action == "ADD" {
                    let column = sql.split_once(" ADD COLUMN ").map(|(_, c)| c.to_string());
                    if let (Some(column), Some((_, Some(text)))) =
                        (column, definitions.iter_mut().find(|(n, _)| n == name))
                    {
                        add_column(text, &column);
                    }
                }
            }
            Some("DROP") => {
                if let Some(name) = words.find(|word| !matches!(*word, "TABLE" | "INDEX")) {
                    definitions.retain(|(n, _)| n != name);
                }
            }
            _ => {}
        }
    }
    definitions.sort();
    Ok(definitions)
}

/// Whether `index` is an index on `table`, as its definition says.
fn indexes_of(index: &str, table: &str, definitions: &[(String, Option<String>)]) -> bool {
    definitions.iter().any(|(n, sql)| {
        n == index
            && sql.as_deref().is_some_and(|sql| {
                sql.starts_with("CREATE")
                    && sql.contains(" INDEX ")
                    && sql.contains(&format!(" ON {table} ("))
            })
    })
}

/// The text SQLite stores for a table after `ADD COLUMN`: the new column
/// right after the last column definition, before any table constraint,
/// or else right before the closing parenthesis (after the line break).
fn add_column(table_sql: &mut String, column: &str) {
    let end = ["CHECK", "PRIMARY KEY", "UNIQUE", "FOREIGN KEY"]
        .iter()
        .filter_map(|constraint| table_sql.find(&format!(",\n    {constraint}")))
        .min()
        // The definition's closing parenthesis: table options after it
        // (`STRICT`, `WITHOUT ROWID`) hold none.
        .or_else(|| table_sql.rfind(')'))
        .unwrap_or(table_sql.len());
    table_sql.insert_str(end, &format!(", {column}"));
}

/// The definitions SQLite itself records for the first `version` migrations,
/// built in memory: the reference [`expected_definitions_at`] is held to.
#[cfg(test)]
fn built_definitions_at(version: i64) -> Result<Vec<(String, Option<String>)>> {
    let steps = usize::try_from(version.clamp(0, latest_version())).unwrap_or(0);
    let conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", false)?;
    for step in &MIGRATIONS[..steps] {
        conn.execute_batch(step)?;
    }
    definitions_in(&conn)
}

/// The schema version recorded in a ledger.
pub(super) fn version_of(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

/// The objects of a ledger at [`latest_version`] as [`catalog_text`] writes
/// them (a test holds it to what the migrations build, and writes it again
/// under `WALLET_REGENERATE=1`). Every command compares the file's schema
/// with it on open: one comparison of text, where building the expected
/// definitions from the migrations' text would cost each command more than
/// reading the catalog.
const LATEST_CATALOG: &str = include_str!("schema.catalog");

/// One object of the catalog: its type, name and `CREATE` text.
type CatalogRow = (String, String, Option<String>);

fn catalog_rows(conn: &Connection) -> Result<Vec<CatalogRow>> {
    let mut stmt = conn.prepare(
        "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// The catalog as one text, each field led by its length in bytes, so that
/// no two lists of objects write the same text (a name or a definition may
/// hold any character, a newline included).
fn catalog_text(rows: &[CatalogRow]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(LATEST_CATALOG.len());
    for (kind, name, sql) in rows {
        let _ = write!(text, "{}:{kind} {}:{name} ", kind.len(), name.len());
        match sql {
            Some(sql) => {
                let _ = writeln!(text, "{}:{sql}", sql.len());
            }
            None => text.push_str("-\n"),
        }
    }
    text
}

/// How a ledger's schema differs from the one the migrations build up to
/// `version`, its own (names from the file quoted through [`echo`], as the
/// file may be hostile): objects it holds that ours does not (a planted
/// trigger or view), objects it lacks, and objects whose `CREATE` text was
/// changed (a column added, a `CHECK` edited out through
/// `writable_schema`). Empty when the schema is ours.
pub(super) fn differences(conn: &Connection, version: i64) -> Result<Vec<String>> {
    let found = catalog_rows(conn)?;
    if version == latest_version() && catalog_text(&found) == LATEST_CATALOG {
        return Ok(Vec::new());
    }
    let expected = expected_definitions_at(version)?;
    let mut differences = Vec::new();
    for (kind, name, sql) in &found {
        match expected.iter().find(|(n, _)| n == name) {
            None => differences.push(format!(
                "{} '{}' is not part of the wallet schema",
                echo(kind),
                echo(name)
            )),
            Some((_, expected_sql)) if expected_sql != sql => differences.push(format!(
                "the definition of {} '{}' differs from the wallet schema",
                echo(kind),
                echo(name)
            )),
            Some(_) => {}
        }
    }
    for (name, _) in &expected {
        if !found.iter().any(|(_, n, _)| n == name) {
            differences.push(format!("'{name}' of the wallet schema is missing"));
        }
    }
    Ok(differences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrations_text_is_what_sqlite_records_at_every_version() {
        for version in 0..=latest_version() {
            assert_eq!(
                expected_definitions_at(version).unwrap(),
                built_definitions_at(version).unwrap(),
                "version {version}"
            );
        }
    }

    #[test]
    fn the_catalog_file_is_what_the_migrations_build() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let built = catalog_text(&catalog_rows(&conn).unwrap());
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/ledger/sqlite/schema.catalog"
        );
        if std::env::var_os("WALLET_REGENERATE").is_some_and(|v| v == "1") {
            std::fs::write(path, &built).unwrap();
            return;
        }
        assert!(
            built == LATEST_CATALOG,
            "{path} is out of date; rewrite it with `WALLET_REGENERATE=1 cargo test --lib catalog`"
        );
    }

    #[test]
    fn a_catalog_text_tells_every_list_of_objects_apart() {
        let row = |kind: &str, name: &str, sql: Option<&str>| {
            (kind.to_string(), name.to_string(), sql.map(str::to_string))
        };
        // A definition that holds the next object's text, and that object
        // missing, is not the two objects.
        let two = [
            row("table", "a", Some("CREATE TABLE a (x)")),
            row("table", "b", Some("CREATE TABLE b (y)")),
        ];
        let text = catalog_text(&two);
        let first = catalog_text(&two[..1]);
        let forged = [row(
            "table",
            "a",
            Some(&format!("CREATE TABLE a (x)\n{}", &text[first.len()..])),
        )];
        assert_ne!(catalog_text(&forged), text);
        assert_ne!(
            catalog_text(&[row("table", "a b", None)]),
            catalog_text(&[row("table a", "b", None)])
        );
        assert_ne!(
            catalog_text(&[row("table", "a", None)]),
            catalog_text(&[row("table", "a", Some("-"))])
        );
    }

    #[test]
    fn migrations_build_exactly_the_expected_objects() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let found = objects_in(&conn).unwrap();
        let expected: Vec<(String, String)> = EXPECTED_OBJECTS
            .iter()
            .map(|(t, n)| (t.to_string(), n.to_string()))
            .collect();
        assert_eq!(found, expected);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, latest_version());
    }

    #[test]
    fn a_ledger_differs_from_its_own_version_only_when_changed() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(
            differences(&conn, latest_version()).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            expected_definitions_at(latest_version()).unwrap(),
            expected_definitions().unwrap()
        );
        assert!(expected_definitions_at(0).unwrap().is_empty());
        conn.execute_batch("CREATE VIEW v AS SELECT 1").unwrap();
        assert_eq!(
            differences(&conn, latest_version()).unwrap(),
            ["view 'v' is not part of the wallet schema"]
        );
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let accounts: i64 = conn
            .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(accounts, 1, "only the external account");
    }

    #[test]
    fn a_ledger_of_an_older_version_is_brought_up_to_date() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        migrate(&mut conn).unwrap();
        let found = objects_in(&conn).unwrap();
        assert_eq!(found.len(), EXPECTED_OBJECTS.len());
        assert_eq!(
            definitions_in(&conn).unwrap(),
            expected_definitions().unwrap()
        );
    }
}
