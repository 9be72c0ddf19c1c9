//! The check each writing transaction makes of the schema it writes, under
//! its locks, so that code planted in the schema after a process opened the
//! ledger (a trigger, a rule, a policy, a function) never runs in a
//! transaction of ours, or, planted while one runs, never commits with it.
//!
//! A transaction begins by locking every table it writes in `ROW EXCLUSIVE`
//! mode and every table it only reads in `ACCESS SHARE` mode. Whatever is
//! attached to a table needs a lock that conflicts with those (`CREATE
//! TRIGGER`, `ALTER TABLE … ENABLE TRIGGER` and `ADD FOREIGN KEY` take
//! `SHARE ROW EXCLUSIVE`; `CREATE INDEX`, `SHARE`; `CREATE RULE`, `CREATE
//! POLICY`, `ALTER TABLE … SET DEFAULT`, `ADD CONSTRAINT … CHECK`, `ALTER
//! COLUMN … TYPE`, `DROP` and `RENAME`, `ACCESS EXCLUSIVE`), so once the
//! locks are held it stays as the check finds it until the commit.
//!
//! The check: the first writing transaction of a connection compares the
//! whole catalog with what the migrations build (`schema::catalog`, as a
//! read does when it opens the ledger), then commits after [`ALONE`]. Later
//! ones read [`FULL`], a fingerprint of every catalog row that can make
//! code run in a write (each with `xmin`, the transaction that last wrote
//! it, so any change is a new value), and compare the catalog again only
//! when it differs from the one read when the catalog last matched. A
//! process that writes once thus reads the catalog once, as it did when
//! the check ran at open; a worker pays for a prepared fingerprint a batch.
//!
//! What no lock of ours keeps out (a function, an operator or a type made
//! in the schema, to which a later statement of the transaction could
//! resolve; a table made to inherit from ours, which `CREATE TABLE …
//! INHERITS` does under `SHARE UPDATE EXCLUSIVE`; an index built
//! `CONCURRENTLY`; the schema renamed and another put in its place) is in
//! [`NARROW`], read in the `BEGIN`'s round trip and again in the
//! `COMMIT`'s: a commit that finds it changed fails, so the transaction is
//! rolled back and run again, and its new start compares the catalog.
//! Objects outside the schema that nothing of ours names (event triggers,
//! casts between built-in types) need a superuser, who is not the insider
//! this guards against.

use postgres::{Client, GenericClient, SimpleQueryMessage};

use super::connect::Target;
use super::error::{PgFault, PgResult, SCHEMA_CHANGED as CHANGED};
use super::schema;
use crate::error::WalletError;
use crate::location::Location;

/// What can change in the schema while a transaction of ours holds its
/// locks: the schema itself (renamed and replaced), the relations in it
/// (an index built `CONCURRENTLY`, a view added), tables inheriting from
/// ours, and every object other than a relation in it. Read as a
/// transaction begins and again as it commits. `{S}` is the schema's oid.
const NARROW: &str = r#"
SELECT md5(string_agg(f, ',' ORDER BY f COLLATE "C")) FROM (
    SELECT 's' || n.oid || ':' || n.xmin FROM pg_namespace n WHERE n.oid = {S}
    UNION ALL
    SELECT 'c' || c.oid || ':' || c.xmin FROM pg_class c WHERE c.relnamespace = {S}
    UNION ALL
    SELECT 'h' || h.inhrelid || '.' || h.inhparent || ':' || h.xmin FROM pg_inherits h
     WHERE h.inhparent IN (SELECT oid FROM pg_class WHERE relnamespace = {S})
        OR h.inhrelid IN (SELECT oid FROM pg_class WHERE relnamespace = {S})
    UNION ALL
    SELECT 'o' || d.classid || '.' || d.objid FROM pg_depend d
     WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = {S}
       AND d.classid <> 'pg_class'::regclass
) parts(f)
"#;

/// What the commit of a connection's first transaction checks, which began
/// by comparing the whole catalog (under its locks) and so knows that the
/// schema then held nothing but the ledger's relations: still nothing a
/// later statement could resolve to or reach besides them (a function, an
/// operator or a type made in the schema, a table inheriting from ours)
/// and the schema still the one of that name. Cheaper than reading
/// [`NARROW`] at both ends. `{S}` is the schema's oid, `{NAME}` its name.
const ALONE: &str = r#"
SELECT CASE WHEN (SELECT nspname FROM pg_namespace WHERE oid = {S}) = '{NAME}'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d
                     WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = {S}
                       AND d.classid <> 'pg_class'::regclass)
    AND NOT EXISTS (SELECT 1 FROM pg_inherits h JOIN pg_class c
                        ON c.oid = h.inhparent OR c.oid = h.inhrelid
                     WHERE c.relnamespace = {S})
  THEN 0
  -- The message takes a row's value, so that the planner cannot fold the
  -- failing cast before the condition is known.
  ELSE ('{CHANGED} objects added to schema '
        || coalesce((SELECT nspname FROM pg_namespace WHERE oid = {S}), 'gone'))::integer END
"#;

/// [`NARROW`], and a fingerprint of everything it reads and each catalog
/// row of the schema's relations that only a lock conflicting with ours
/// can change: columns, defaults, constraints (and foreign keys elsewhere
/// that reference ours), indexes, triggers, rules and policies; and how each
/// sequence steps, which `ALTER SEQUENCE` changes under no lock of a table,
/// so a changed step is refused from the next transaction on. Read as a
/// transaction begins, in its `BEGIN`'s round trip, it tells whether the
/// whole catalog must be compared again.
const FULL: &str = r#"
WITH narrow(f) AS ({NARROW}),
     rels AS (SELECT array_agg(oid) AS oids FROM pg_class WHERE relnamespace = {S})
SELECT (SELECT f FROM narrow), md5(string_agg(f, ',' ORDER BY f COLLATE "C")) FROM (
    SELECT 'n' || (SELECT f FROM narrow)
    UNION ALL
    SELECT 'a' || a.attrelid || '.' || a.attnum || ':' || a.xmin FROM pg_attribute a
     WHERE a.attrelid = ANY ((SELECT oids FROM rels)::oid[]) AND a.attnum > 0
    UNION ALL
    SELECT 'd' || d.oid || ':' || d.xmin FROM pg_attrdef d
     WHERE d.adrelid = ANY ((SELECT oids FROM rels)::oid[])
    UNION ALL
    SELECT 'k' || k.oid || ':' || k.xmin FROM pg_constraint k
     WHERE k.conrelid = ANY ((SELECT oids FROM rels)::oid[]) OR k.confrelid = ANY ((SELECT oids FROM rels)::oid[])
    UNION ALL
    SELECT 'i' || i.indexrelid || ':' || i.xmin FROM pg_index i
     WHERE i.indrelid = ANY ((SELECT oids FROM rels)::oid[])
    UNION ALL
    SELECT 't' || t.oid || ':' || t.xmin FROM pg_trigger t
     WHERE t.tgrelid = ANY ((SELECT oids FROM rels)::oid[])
    UNION ALL
    SELECT 'r' || r.oid || ':' || r.xmin FROM pg_rewrite r
     WHERE r.ev_class = ANY ((SELECT oids FROM rels)::oid[])
    UNION ALL
    SELECT 'p' || p.oid || ':' || p.xmin FROM pg_policy p
     WHERE p.polrelid = ANY ((SELECT oids FROM rels)::oid[])
    UNION ALL
    SELECT 'q' || q.seqrelid || ':' || q.xmin FROM pg_sequence q
     WHERE q.seqrelid = ANY ((SELECT oids FROM rels)::oid[])
) parts(f)
"#;

/// What this connection has checked of its ledger's schema.
enum Seen {
    /// Nothing yet: its first writing transaction compares the catalog.
    Nothing,
    /// The whole catalog matched under a transaction's locks.
    Matched,
    /// The whole catalog matched when [`FULL`] read this.
    Fingerprint(String),
}

/// The schema check of one connection's writing transactions.
pub(super) struct Guard {
    schema: String,
    shown: Location,
    /// The queries for this schema, written once.
    narrow: String,
    full: String,
    /// The catalog's lines as one text ([`schema::catalog_text_sql`]).
    catalog: String,
    /// [`ALONE`] for this schema.
    alone: String,
    seen: Seen,
    /// What [`NARROW`] read as the open transaction began.
    began: Option<String>,
    /// Whether this connection has [`FULL`] and the commit's check
    /// prepared (`wallet_guard_full`, `wallet_guard_commit`): a process
    /// that writes once never plans them.
    prepared: bool,
}

impl Guard {
    pub(super) fn new(target: &Target) -> Self {
        // The schema's name is lower-case letters, digits and `_`
        // (`connect::check_schema_name`), so it is written as a literal.
        let oid = format!("'{}'::regnamespace", target.schema);
        let narrow = NARROW.replace("{S}", &oid);
        Self {
            schema: target.schema.clone(),
            shown: target.shown.clone(),
            full: FULL.replace("{NARROW}", &narrow).replace("{S}", &oid),
            catalog: schema::catalog_text_sql(&target.schema),
            alone: ALONE
                .replace("{S}", &oid)
                .replace("{NAME}", &target.schema)
                .replace("{CHANGED}", CHANGED),
            narrow,
            seen: Seen::Nothing,
            began: None,
            prepared: false,
        }
    }

    /// Begins a writing transaction: locks `writes` in `ROW EXCLUSIVE` mode
    /// and `reads` in `ACCESS SHARE` mode and reads [`NARROW`], in the round
    /// trip `BEGIN` takes anyway; then compares the whole catalog, or, once
    /// this connection has a fingerprint of it, only [`FULL`] with that
    /// fingerprint. Fails with `not_a_ledger` before the transaction writes
    /// anything; the caller rolls it back.
    pub(super) fn begin(
        &mut self,
        client: &mut Client,
        writes: &[&str],
        reads: &[&str],
    ) -> PgResult<()> {
        self.start(client, "BEGIN;", writes, reads)
    }

    /// [`Guard::begin`] for a transaction the caller has begun (one that
    /// needs a `postgres::Transaction`, as a portal does); its commit then
    /// runs [`Guard::commit_check_sql`] first.
    pub(super) fn enter(
        &mut self,
        tx: &mut postgres::Transaction<'_>,
        writes: &[&str],
        reads: &[&str],
    ) -> PgResult<()> {
        self.start(tx, "", writes, reads)
    }

    fn start(
        &mut self,
        client: &mut impl GenericClient,
        begin: &str,
        writes: &[&str],
        reads: &[&str],
    ) -> PgResult<()> {
        let mut sql = String::from(begin);
        if !writes.is_empty() {
            sql.push_str(&format!(
                " LOCK TABLE {} IN ROW EXCLUSIVE MODE;",
                writes.join(", ")
            ));
        }
        if !reads.is_empty() {
            sql.push_str(&format!(
                " LOCK TABLE {} IN ACCESS SHARE MODE;",
                reads.join(", ")
            ));
        }
        // The first transaction of a connection compares the catalog read
        // in the same round trip; later ones read the fingerprints there.
        if matches!(self.seen, Seen::Nothing) {
            sql.push_str(&format!("SELECT NULL, ({})", self.catalog));
        } else {
            self.prepare(client)?;
            sql.push_str(" EXECUTE wallet_guard_full");
        }
        let row = first_row(&client.simple_query(&sql)?);
        let column = |i: usize| row.get(i).cloned().flatten();
        self.began = column(0);
        match &self.seen {
            Seen::Nothing => {
                let found = column(1).unwrap_or_default();
                self.compare(found.lines().map(str::to_string).collect())?;
                self.seen = Seen::Matched;
            }
            Seen::Matched => {
                self.compare_catalog(client)?;
                self.seen = Seen::Fingerprint(column(1).unwrap_or_default());
            }
            Seen::Fingerprint(before) => {
                let now = column(1).unwrap_or_default();
                if &now != before {
                    self.compare_catalog(client)?;
                    self.seen = Seen::Fingerprint(now);
                }
            }
        }
        Ok(())
    }

    /// Compares the whole catalog inside the open transaction (one that
    /// built or upgraded the schema), and reads [`NARROW`] for its commit.
    pub(super) fn check_here(&mut self, client: &mut Client) -> PgResult<()> {
        self.began = first_row(&client.simple_query(&self.narrow)?)
            .first()
            .cloned()
            .flatten();
        self.compare_catalog(client)?;
        self.seen = Seen::Matched;
        Ok(())
    }

    /// The statement that commits a transaction begun by [`Guard::begin`].
    /// It fails, and the server rolls the transaction back, when [`NARROW`]
    /// reads otherwise than it did at the start ([`changed`] tells that
    /// failure). The failure is a cast of text to a number, evaluated only
    /// then: it needs no procedural language, and keeps the check in the
    /// commit's round trip.
    pub(super) fn commit_sql(&self) -> String {
        match &self.began {
            // Only hex digits: safe as a literal.
            Some(began) if self.prepared => {
                format!("EXECUTE wallet_guard_commit('{began}'); COMMIT")
            }
            Some(began) => format!("{}; COMMIT", self.commit_check(&format!("'{began}'"))),
            None => format!("{}; COMMIT", self.alone),
        }
    }

    /// The check of [`Guard::commit_sql`] without its `COMMIT`, for a
    /// transaction begun with [`Guard::enter`], to run just before its
    /// commit: nothing of the transaction runs after it.
    pub(super) fn commit_check_sql(&self) -> String {
        match &self.began {
            Some(began) => self.commit_check(&format!("'{began}'")),
            None => self.alone.clone(),
        }
    }

    /// The query that fails unless [`NARROW`] reads `began` (SQL).
    fn commit_check(&self, began: &str) -> String {
        format!(
            "SELECT CASE WHEN coalesce(f, '') = {began} THEN 0
                         ELSE ('{CHANGED} ' || coalesce(f, 'gone'))::integer END
               FROM ({narrow}) now(f)",
            narrow = self.narrow
        )
    }

    /// Prepares [`NARROW`] and the commit's check on this connection, so a
    /// connection that keeps writing (a settle worker) plans them once. In
    /// a round trip of its own: a `PREPARE` is not undone by a rollback.
    fn prepare(&mut self, client: &mut impl GenericClient) -> PgResult<()> {
        if !self.prepared {
            client.batch_execute(&format!(
                "PREPARE wallet_guard_full AS {full};
                 PREPARE wallet_guard_commit(text) AS {check};",
                full = self.full,
                check = self.commit_check("$1")
            ))?;
            self.prepared = true;
        }
        Ok(())
    }

    /// The catalog against what the migrations build, read in the open
    /// transaction.
    fn compare_catalog(&self, client: &mut impl GenericClient) -> PgResult<()> {
        let found = schema::catalog(client, &self.schema)?;
        self.compare(found)
    }

    /// Catalog lines, as read, against what the migrations build:
    /// `not_a_ledger` naming the first difference.
    fn compare(&self, found: Vec<String>) -> PgResult<()> {
        match schema::differences(&found).into_iter().next() {
            None => Ok(()),
            Some(first) => Err(PgFault::Wallet(WalletError::NotALedger {
                ledger: self.shown.clone(),
                why: format!("its schema differs from what wallet builds: {first}"),
            })),
        }
    }
}

/// The first row of a simple query's answer, each column as text.
fn first_row(messages: &[SimpleQueryMessage]) -> Vec<Option<String>> {
    messages
        .iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}
