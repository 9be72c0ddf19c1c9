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
//! read does when it opens the ledger) and with [`FOREIGN_LINKS`]. Later
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
use super::error::{PgFault, PgResult};
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

/// [`NARROW`], and a fingerprint of everything it reads and each catalog
/// row of the schema's relations that only a lock conflicting with ours
/// can change: columns, defaults, constraints (and foreign keys elsewhere
/// that reference ours), indexes, triggers, rules and policies. Read as a
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
) parts(f)
"#;

/// Links between the schema's tables and tables elsewhere, which the
/// catalog of the schema alone does not list: a table that inherits from
/// ours (our updates would reach its rows and fire its triggers), one ours
/// inherits from, and a foreign key of another schema's table that
/// references ours. A ledger has none. One line, empty when there are none.
const FOREIGN_LINKS: &str = r#"
SELECT coalesce(string_agg(line, E'\n'), '') FROM (
    SELECT 'inheritance ' || h.inhrelid::regclass::text || ' of ' || h.inhparent::regclass::text
      FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhparent OR c.oid = h.inhrelid
     WHERE c.relnamespace = {S}
    UNION ALL
    SELECT 'constraint ' || k.conname || ' of ' || k.conrelid::regclass::text
      FROM pg_constraint k JOIN pg_class c ON c.oid = k.confrelid
     WHERE c.relnamespace = {S} AND k.connamespace <> c.relnamespace
) links(line)
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
    links: String,
    /// The catalog's lines as one text ([`schema::catalog_text_sql`]).
    catalog: String,
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
            links: FOREIGN_LINKS.replace("{S}", &oid),
            catalog: schema::catalog_text_sql(&target.schema),
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
            sql.push_str(&format!(
                "SELECT ({}), ({}), ({})",
                self.narrow, self.links, self.catalog
            ));
        } else {
            self.prepare(client)?;
            sql.push_str(" EXECUTE wallet_guard_full");
        }
        let row = first_row(&client.simple_query(&sql)?);
        let column = |i: usize| row.get(i).cloned().flatten();
        self.began = column(0);
        match &self.seen {
            Seen::Nothing => {
                let found = column(2).unwrap_or_default();
                let found: Vec<String> = found.lines().map(str::to_string).collect();
                self.compare(found, column(1).unwrap_or_default())?;
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
            None => "COMMIT".to_string(),
        }
    }

    /// The check of [`Guard::commit_sql`] without its `COMMIT`, for a
    /// transaction begun with [`Guard::enter`], to run just before its
    /// commit: nothing of the transaction runs after it.
    pub(super) fn commit_check_sql(&self) -> Option<String> {
        self.began
            .as_ref()
            .map(|began| self.commit_check(&format!("'{began}'")))
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
    /// transaction, with the links to tables elsewhere.
    fn compare_catalog(&self, client: &mut impl GenericClient) -> PgResult<()> {
        let found = schema::catalog(client, &self.schema)?;
        let links = first_row(&client.simple_query(&self.links)?)
            .first()
            .cloned()
            .flatten()
            .unwrap_or_default();
        self.compare(found, links)
    }

    /// Catalog lines and links to tables elsewhere, as read, against what
    /// the migrations build: `not_a_ledger` naming the first difference.
    fn compare(&self, found: Vec<String>, links: String) -> PgResult<()> {
        let mut differences = schema::differences(&found);
        for line in links.lines().filter(|l| !l.is_empty()) {
            differences.push(format!(
                "{} is not part of the wallet schema",
                crate::text::echo(line)
            ));
        }
        match differences.into_iter().next() {
            None => Ok(()),
            Some(first) => Err(PgFault::Wallet(WalletError::NotALedger {
                ledger: self.shown.clone(),
                why: format!("its schema differs from what wallet builds: {first}"),
            })),
        }
    }
}

/// What a commit refused because the schema changed while the transaction
/// ran says; the transaction is run again, and its start compares the
/// whole catalog.
const CHANGED: &str = "the schema of the ledger changed while this transaction ran:";

/// Whether a commit failed because the schema changed meanwhile.
pub(super) fn changed(err: &postgres::Error) -> bool {
    err.code() == Some(&postgres::error::SqlState::INVALID_TEXT_REPRESENTATION)
        && err
            .as_db_error()
            .is_some_and(|db| db.message().contains(CHANGED))
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
