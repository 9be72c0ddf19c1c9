//! The check each writing transaction makes of the schema it writes, under
//! its locks, so that code planted in the schema after a process opened the
//! ledger (a trigger, a rule, a policy, a function) never runs in a
//! transaction of ours, or, if planted while one runs, never commits.
//!
//! A transaction begins by locking every table it writes in `ROW EXCLUSIVE`
//! mode and every table it only reads in `ACCESS SHARE` mode. Whatever is
//! attached to a table needs a lock that conflicts with those (`CREATE
//! TRIGGER` and `ALTER TABLE … ENABLE TRIGGER` and `ADD FOREIGN KEY` take
//! `SHARE ROW EXCLUSIVE`; `CREATE INDEX`, `SHARE`; `CREATE RULE`, `CREATE
//! POLICY`, `ALTER TABLE … SET DEFAULT`, `ADD CONSTRAINT … CHECK`, `ALTER
//! COLUMN … TYPE`, `DROP` and `RENAME`, `ACCESS EXCLUSIVE`), so once the
//! locks are held it stays as the check found it until the commit. In the
//! same round trip a fingerprint of the schema is read: each catalog row of
//! its relations, their columns, defaults, constraints, indexes, triggers,
//! rules, policies and inheritance, each with the id of the transaction
//! that last wrote it (`xmin`), and every object other than a relation that
//! lives in the schema (functions, operators, types: a ledger has none).
//! Any change to any of them writes a new row, so a fingerprint equal to
//! the one last seen with the whole catalog matching (`schema::catalog`,
//! plus [`FOREIGN_LINKS`]) means nothing changed; a different one has the
//! whole catalog compared again, in the transaction, before it writes.
//!
//! What takes no lock on our tables (a function, an operator or a type
//! created in the schema, which a later statement could resolve to; a
//! table made to inherit from ours, which `CREATE TABLE … INHERITS` does
//! with `SHARE UPDATE EXCLUSIVE`; the schema renamed and another put in
//! its place) changes the fingerprint too: the commit reads it again, in
//! the commit's own round trip, and a transaction that sees it changed is
//! rolled back as a serialization failure, so it is run again and its new
//! start compares the whole catalog. Objects outside the schema that
//! nothing of ours names (event triggers, casts) need a superuser, who is
//! not the insider this guards against.

use postgres::{Client, SimpleQueryMessage};

use super::connect::Target;
use super::error::{PgFault, PgResult};
use super::schema;
use crate::error::WalletError;
use crate::location::Location;

/// The schema's fingerprint, with `{S}` for the schema's oid (its name is
/// read again each time: a schema renamed and replaced is another oid).
const FINGERPRINT: &str = r#"
SELECT md5(string_agg(f, ',' ORDER BY f COLLATE "C")) FROM (
    SELECT 's' || n.oid || ':' || n.xmin FROM pg_namespace n WHERE n.oid = {S}
    UNION ALL
    SELECT 'c' || c.oid || ':' || c.xmin FROM pg_class c WHERE c.relnamespace = {S}
    UNION ALL
    SELECT 'a' || a.attrelid || '.' || a.attnum || ':' || a.xmin
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
     WHERE c.relnamespace = {S} AND a.attnum > 0
    UNION ALL
    SELECT 'd' || d.oid || ':' || d.xmin
      FROM pg_class c JOIN pg_attrdef d ON d.adrelid = c.oid WHERE c.relnamespace = {S}
    UNION ALL
    SELECT 'k' || k.oid || ':' || k.xmin
      FROM pg_class c JOIN pg_constraint k ON k.conrelid = c.oid OR k.confrelid = c.oid
     WHERE c.relnamespace = {S}
    UNION ALL
    SELECT 'i' || i.indexrelid || ':' || i.xmin
      FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid WHERE c.relnamespace = {S}
    UNION ALL
    SELECT 't' || t.oid || ':' || t.xmin
      FROM pg_class c JOIN pg_trigger t ON t.tgrelid = c.oid WHERE c.relnamespace = {S}
    UNION ALL
    SELECT 'r' || r.oid || ':' || r.xmin
      FROM pg_class c JOIN pg_rewrite r ON r.ev_class = c.oid WHERE c.relnamespace = {S}
    UNION ALL
    SELECT 'p' || p.oid || ':' || p.xmin
      FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relnamespace = {S}
    UNION ALL
    SELECT 'h' || h.inhrelid || '.' || h.inhparent || ':' || h.xmin
      FROM pg_class c JOIN pg_inherits h ON h.inhparent = c.oid OR h.inhrelid = c.oid
     WHERE c.relnamespace = {S}
    UNION ALL
    SELECT 'o' || d.classid || '.' || d.objid FROM pg_depend d
     WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = {S}
       AND d.classid <> 'pg_class'::regclass
) parts(f)
"#;

/// Links between the schema's tables and tables elsewhere, which the
/// catalog of the schema alone does not list: a table that inherits from
/// ours (our updates would reach its rows and fire its triggers), one ours
/// inherits from, and a foreign key of another schema's table that
/// references ours. A ledger has none. `$1` is the schema's name.
const FOREIGN_LINKS: &str = r#"
SELECT 'inheritance ' || h.inhrelid::regclass::text || ' of ' || h.inhparent::regclass::text
  FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhparent OR c.oid = h.inhrelid
 WHERE c.relnamespace = $1::text::regnamespace
UNION ALL
SELECT 'constraint ' || k.conname || ' of ' || k.conrelid::regclass::text
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.confrelid
 WHERE c.relnamespace = $1::text::regnamespace AND k.connamespace <> c.relnamespace
"#;

/// What a connection knows of its ledger's schema: which fingerprint it
/// last saw with the whole catalog matching.
pub(super) struct Guard {
    schema: String,
    shown: Location,
    /// The fingerprint's SQL for this schema, made once.
    fingerprint: String,
    verified: Option<String>,
}

impl Guard {
    pub(super) fn new(target: &Target) -> Self {
        // The schema's name is checked to be lower-case letters, digits and
        // `_` (`connect::check_schema_name`), so it is written as a literal.
        let oid = format!("'{}'::regnamespace", target.schema);
        Self {
            schema: target.schema.clone(),
            shown: target.shown.clone(),
            fingerprint: FINGERPRINT.replace("{S}", &oid),
            verified: None,
        }
    }

    /// Compares the whole catalog with what the migrations build, and
    /// remembers the fingerprint read just before it: a change after the
    /// fingerprint is read only makes the next one differ.
    pub(super) fn check_all(&mut self, client: &mut Client) -> PgResult<()> {
        let seen = self.read_fingerprint(client)?;
        self.compare_catalog(client)?;
        self.verified = seen;
        Ok(())
    }

    /// Begins a writing transaction: locks `writes` in `ROW EXCLUSIVE` mode
    /// and `reads` in `ACCESS SHARE` mode, and reads the fingerprint, in the
    /// round trip that `BEGIN` takes anyway; compares the whole catalog only
    /// when the fingerprint changed. Fails with `not_a_ledger` before the
    /// transaction writes anything; the caller rolls it back.
    pub(super) fn begin(
        &mut self,
        client: &mut Client,
        writes: &[&str],
        reads: &[&str],
    ) -> PgResult<()> {
        let mut sql = String::from("BEGIN;");
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
        sql.push_str(&self.fingerprint);
        let seen = first_value(&client.simple_query(&sql)?);
        if seen.is_some() && seen == self.verified {
            return Ok(());
        }
        self.compare_catalog(client)?;
        self.verified = seen;
        Ok(())
    }

    /// The statement that commits a transaction begun by [`Guard::begin`]:
    /// it fails, and the server rolls the transaction back, when the
    /// fingerprint changed while the transaction ran.
    pub(super) fn commit_sql(&self) -> String {
        match &self.verified {
            // Only hex digits: safe as a literal.
            Some(seen) => format!(
                "DO $guard$ BEGIN
                    IF ({fingerprint}) IS DISTINCT FROM '{seen}' THEN
                        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = '{CHANGED}';
                    END IF;
                 END $guard$; COMMIT",
                fingerprint = self.fingerprint
            ),
            None => "COMMIT".to_string(),
        }
    }

    fn read_fingerprint(&self, client: &mut Client) -> PgResult<Option<String>> {
        Ok(first_value(&client.simple_query(&self.fingerprint)?))
    }

    fn compare_catalog(&self, client: &mut Client) -> PgResult<()> {
        let found = schema::catalog(client, &self.schema)?;
        let mut differences = schema::differences(&found);
        for row in client.query(FOREIGN_LINKS, &[&self.schema])? {
            let line: String = row.get(0);
            differences.push(format!(
                "{} is not part of the wallet schema",
                crate::text::echo(&line)
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

/// The message of a commit refused because the schema changed meanwhile;
/// the transaction is run again, and its start names what changed.
const CHANGED: &str = "the schema of the ledger changed while this transaction ran";

fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|message| match message {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}
