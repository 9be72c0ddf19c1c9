//! The PostgreSQL engine: a ledger shared by every process that can reach
//! the server, settled by any number of workers at once.
//!
//! Correctness rests on row locks, `ON CONFLICT`, `RETURNING` and
//! transactions (no advisory lock): a settle worker locks the lanes it
//! settles, the transfers it claims and the user accounts they name, in
//! that order, as every writer does; the external account, which nearly
//! every deposit and withdrawal names, is updated last, once per
//! transaction, by a relative update, so it is locked only for the moment
//! before the commit. A serialization failure or deadlock is retried
//! inside the command.

mod balances;
mod chain;
mod connect;
mod currencies;
mod error;
mod events;
mod guard;
mod holds;
mod inspect;
mod policies;
mod prepared;
mod queue;
mod reports;
mod schema;
mod settle;
mod sql_types;
mod transfers;
mod users;
mod verify;

use std::time::Duration;

use postgres::Client;

use crate::domain::{Email, UserName};
use crate::error::{Result, WalletError};
use crate::ledger::model::Instant;
use crate::ledger::model::TxId;
use crate::ledger::model::{
    BalanceAt, BatchCounts, BatchLine, BatchSink, BatchSummary, ExportFilter, Exported,
    HistoryQuery, PointInTime, PolicyChange, PolicyChangeRecord, TransferRecord, TransferRef,
    TrialBalance, UserRecord, VerifyOptions, VerifyReport,
};
use crate::ledger::store::{Access, Engine, OpenOptions, Profile, Store};
use crate::money::{Currencies, Currency, CurrencyId};

pub(super) use connect::Target;
use error::{ErrorContext, PgFault, PgResult};
use guard::Guard;
use inspect::inspect;

/// The server's clock in Unix milliseconds, the one clock every machine
/// sharing the ledger stamps with: SQL text, written where a statement
/// needs "now" (a debug build with the test clock set writes its instant).
pub(super) const NOW_MS: NowMs = NowMs;

pub(super) struct NowMs;

impl std::fmt::Display for NowMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match crate::ledger::clock::test_now() {
            Some(ms) => write!(f, "({ms})::bigint"),
            None => f.write_str("(extract(epoch FROM clock_timestamp()) * 1000)::bigint"),
        }
    }
}

/// A batch input that queued this many transfers has the table's
/// statistics refreshed after it (a fraction of a second).
const BULK_ANALYZE_ROWS: u64 = 20_000;

/// How often a transaction the server rolled back for a serialization
/// failure or a deadlock is run again before the command gives up as `busy`.
const RETRIES: u32 = 50;

pub(super) struct PgStore {
    client: Client,
    target: Target,
    currency: Currency,
    /// Read when the ledger was opened, and again after this store adds one.
    currencies: Currencies,
    lanes: i32,
    errors: ErrorContext,
    /// What this connection last found of the schema; every writing
    /// transaction begins and commits through it.
    guard: Guard,
    /// The statements this connection runs batch after batch.
    prepared: prepared::Prepared,
    /// Whether this process has summed the accounts since it began settling.
    books_checked: bool,
    /// Whether this connection has its COPY staging table.
    staging: bool,
}

/// How far `open` may go with the schema it finds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Bring an older schema up to date; anything changed is refused by
    /// each writing transaction, under its locks (`guard`).
    Write,
    /// Refuse an older schema (`upgrade_needed`) and anything changed.
    Read,
    /// Leave differences for `verify` to report.
    Report,
}

impl PgStore {
    fn open(location: &str, options: &OpenOptions) -> Result<Self> {
        Self::open_with(location, options, Gate::Write)
    }

    fn open_to_read(location: &str, options: &OpenOptions) -> Result<Self> {
        Self::open_with(location, options, Gate::Read)
    }

    fn open_to_verify(location: &str, options: &OpenOptions) -> Result<Self> {
        Self::open_with(location, options, Gate::Report)
    }

    /// Opens the ledger, creating it first if the schema does not exist.
    fn open_or_create(location: &str, currency: &Currency, options: &OpenOptions) -> Result<Self> {
        match Self::open(location, options) {
            Err(WalletError::LedgerNotFound(_)) => {
                match Self::create(location, currency, options) {
                    Ok(()) | Err(WalletError::LedgerExists { .. }) => Self::open(location, options),
                    Err(err) => Err(err),
                }
            }
            other => other,
        }
    }

    /// Creates the ledger's schema with every migration, in one
    /// transaction. Two `init`s at once make one ledger: the second waits
    /// on the first's new schema name and then finds it taken.
    fn create(location: &str, currency: &Currency, options: &OpenOptions) -> Result<()> {
        let target = Target::parse(location)?;
        let errors = context(&target, options);
        let mut client = target
            .connect(options.lock_timeout)
            .map_err(|f| errors.lift(f))?;
        let outcome = create_in(&mut client, &target, currency);
        match outcome {
            Ok(()) => Ok(()),
            Err(fault) => {
                let _ = client.batch_execute("ROLLBACK");
                Err(errors.lift(fault))
            }
        }
    }

    /// Brings the schema up to the version this binary writes.
    fn migrate(location: &str, options: &OpenOptions) -> Result<(i64, i64)> {
        let target = Target::parse(location)?;
        let errors = context(&target, options);
        let mut client = target
            .connect(options.lock_timeout)
            .map_err(|f| errors.lift(f))?;
        let mut guard = Guard::new(&target);
        let before = inspect(&mut client, &target, Gate::Report).map_err(|f| errors.lift(f))?;
        if before.version < schema::latest_version() {
            upgrade(&mut client, &target, &mut guard).map_err(|f| errors.lift(f))?;
        }
        Ok((before.version, schema::latest_version()))
    }

    fn open_with(location: &str, options: &OpenOptions, gate: Gate) -> Result<Self> {
        let target = Target::parse(location)?;
        let errors = context(&target, options);
        let mut client = target
            .connect(options.lock_timeout)
            .map_err(|f| errors.lift(f))?;
        let mut guard = Guard::new(&target);
        let found = inspect(&mut client, &target, gate).map_err(|f| errors.lift(f))?;
        if found.version < schema::latest_version() && gate == Gate::Write {
            upgrade(&mut client, &target, &mut guard).map_err(|f| errors.lift(f))?;
        }
        let (currency, lanes) = match found.meta {
            Some(meta) => meta,
            None if gate == Gate::Report => (Currency::default(), schema::LANES),
            None => {
                return Err(WalletError::Integrity(
                    "the ledger_meta row (the ledger's currency and scale) is missing; run `wallet verify`".into(),
                ));
            }
        };
        let version = if gate == Gate::Write {
            schema::latest_version()
        } else {
            found.version
        };
        #[cfg(debug_assertions)]
        let read_at_once = found.currencies.is_some();
        let loaded = match found.currencies {
            Some(rows) => crate::ledger::rules::currencies::listed(rows).map_err(PgFault::Wallet),
            None => currencies::load(&mut client, version, &currency),
        };
        let currencies = match loaded {
            Ok(currencies) => currencies,
            // `verify` reports what is wrong with the table; a lost server
            // is an error for every command.
            Err(PgFault::Pg(err)) if gate == Gate::Report && err.as_db_error().is_some() => {
                Currencies::new(currency.clone())
            }
            Err(PgFault::Wallet(_)) if gate == Gate::Report => Currencies::new(currency.clone()),
            Err(fault) => return Err(errors.lift(fault)),
        };
        // A ledger that reads as a current one statement by statement must
        // read so in one round trip too: a test build checks, so that a
        // catalog text or a parse gone wrong cannot hide behind the slower path.
        #[cfg(debug_assertions)]
        if !read_at_once && gate != Gate::Report && found.version == schema::latest_version() {
            let again = inspect::at_once(&mut client, &target, gate).map_err(|f| errors.lift(f))?;
            assert!(
                again.is_some(),
                "a current ledger was read only statement by statement"
            );
        }
        Ok(Self {
            client,
            target,
            currency,
            currencies,
            lanes,
            errors,
            guard,
            prepared: prepared::Prepared::default(),
            books_checked: false,
            staging: false,
        })
    }

    /// Runs `work` as one transaction, again after a serialization failure
    /// or deadlock, which roll the whole transaction back. `work` begins
    /// and commits it; on any error the transaction is rolled back here.
    fn retrying<T>(&mut self, mut work: impl FnMut(&mut Self) -> PgResult<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            match work(self) {
                Ok(value) => return Ok(value),
                Err(fault) => {
                    let _ = self.client.batch_execute("ROLLBACK");
                    if fault.is_retryable() && attempt < RETRIES {
                        attempt += 1;
                        std::thread::sleep(backoff(attempt));
                        continue;
                    }
                    return Err(self.errors.lift(fault));
                }
            }
        }
    }

    /// A read outside any explicit transaction.
    fn reading<T>(&mut self, work: impl FnOnce(&mut Self) -> PgResult<T>) -> Result<T> {
        work(self).map_err(|fault| self.errors.lift(fault))
    }
}

/// A short pause that grows and varies, so that two transactions that
/// deadlocked do not meet again at once.
fn backoff(attempt: u32) -> Duration {
    let spread = u64::from(std::process::id() ^ attempt.wrapping_mul(2_654_435_761)) % 7;
    Duration::from_millis(u64::from(attempt.min(10)) * 2 + spread)
}

fn context(target: &Target, options: &OpenOptions) -> ErrorContext {
    ErrorContext {
        shown: target.shown.clone(),
        lock_timeout_ms: u64::try_from(options.lock_timeout.as_millis()).unwrap_or(u64::MAX),
    }
}

/// Commits the open transaction, unless the schema changed while it ran
/// ([`Guard::commit_sql`]: the transaction runs again, and its start
/// compares the whole catalog). A commit that fails with the server's own
/// error was rolled back; one whose answer never came (the connection
/// broke), or that the server's shutdown or crash cut short (`57P…`: its
/// commit record may already be written), may have been made durable, so
/// it is `outcome_unknown`.
fn commit(client: &mut Client, guard: &Guard, what: &str, advice: &str) -> PgResult<()> {
    match client.batch_execute(&guard.commit_sql()) {
        Ok(()) => Ok(()),
        Err(err)
            if !error::is_connection_failure(&err)
                && !err
                    .code()
                    .is_some_and(|code| code.code().starts_with("57P")) =>
        {
            Err(PgFault::Pg(err))
        }
        Err(err) => Err(PgFault::Wallet(WalletError::at_commit(
            what,
            error::error_chain(&err),
            advice,
        ))),
    }
}

fn create_in(client: &mut Client, target: &Target, currency: &Currency) -> PgResult<()> {
    let schema = &target.schema;
    let taken = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
                    to_regclass($2) IS NOT NULL",
            &[schema, &format!("{schema}.schema_version")],
        )
        .map(|row| (row.get::<_, bool>(0), row.get::<_, bool>(1)))?;
    // An empty schema, as a DBA may create and grant one beforehand, is
    // filled as an empty file is.
    let empty = taken.0
        && !taken.1
        && client
            .query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = $1::text::regnamespace)
                    AND NOT EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = $1::text::regnamespace)
                    AND NOT EXISTS (SELECT 1 FROM pg_type WHERE typnamespace = $1::text::regnamespace)",
                &[schema],
            )?
            .get::<_, bool>(0);
    if taken.0 && !empty {
        return Err(exists(target, taken.1));
    }
    let duplicate = |err: postgres::Error| {
        let taken = err.code().is_some_and(|code| {
            *code == postgres::error::SqlState::DUPLICATE_SCHEMA
                || *code == postgres::error::SqlState::DUPLICATE_TABLE
                || *code == postgres::error::SqlState::UNIQUE_VIOLATION
        });
        if taken {
            exists(target, true)
        } else {
            PgFault::Pg(err)
        }
    };
    client.batch_execute("BEGIN")?;
    // The new schema's name (or, in an empty one, the first table's) is
    // inserted into a catalog's unique index: a second `init` racing this
    // one waits there, then fails.
    if !empty {
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .map_err(duplicate)?;
    }
    client.batch_execute(&format!("SET LOCAL search_path = {schema}"))?;
    schema::apply_from(client, 0).map_err(|fault| match fault {
        PgFault::Pg(err) => duplicate(err),
        other => other,
    })?;
    client.execute(
        &format!(
            "INSERT INTO ledger_meta (id, currency, scale, lanes, created_at)
             VALUES (1, $1, $2, $3, {})",
            NOW_MS
        ),
        &[&currency.code, &i32::from(currency.scale), &schema::LANES],
    )?;
    // The default currency is row 0; its figures live in `accounts`, so it
    // has no `balances` rows.
    client.execute(
        "INSERT INTO currencies (id, code, scale, created_at)
         SELECT 0, currency, scale, created_at FROM ledger_meta",
        &[],
    )?;
    client.execute(
        "INSERT INTO lanes (lane) SELECT generate_series(0, $1 - 1)",
        &[&schema::LANES],
    )?;
    // What was built, seen from inside this transaction: nothing planted in
    // an empty schema before the first table is committed with it.
    let mut guard = Guard::new(target);
    guard.check_here(client)?;
    commit(
        client,
        &guard,
        &format!("the ledger '{}'", target.shown),
        "`wallet get-user` on any name tells whether it exists",
    )
}

fn exists(target: &Target, is_ledger: bool) -> PgFault {
    PgFault::Wallet(WalletError::LedgerExists {
        ledger: target.shown.clone(),
        what: if is_ledger {
            "a ledger"
        } else {
            "a schema that is not a wallet ledger"
        },
    })
}

/// Applies the missing migrations in one transaction, reading the version
/// again under a lock on the version table so that two upgrades at once
/// apply each step once.
fn upgrade(client: &mut Client, target: &Target, guard: &mut Guard) -> PgResult<()> {
    client.batch_execute("BEGIN; LOCK TABLE schema_version IN EXCLUSIVE MODE")?;
    let version: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_version", &[])?
        .get(0);
    schema::apply_from(client, i64::from(version.unwrap_or(0)))?;
    // An older schema has no catalog to compare with before the steps run;
    // what they built is compared before it commits, so an upgrade never
    // commits what a planted trigger did while it ran.
    guard.check_here(client)?;
    commit(
        client,
        guard,
        &format!(
            "the upgrade of '{}' to schema version {}",
            target.shown,
            schema::latest_version()
        ),
        "`wallet migrate` finishes it if it did not",
    )
}

/// The ledger a connection URL names.
pub(super) struct PgEngine<'a>(pub &'a str);

impl Engine for PgEngine<'_> {
    fn open(&self, access: Access, options: &OpenOptions) -> Result<Box<dyn Store>> {
        Ok(Box::new(match access {
            Access::Write => PgStore::open(self.0, options)?,
            Access::Read => PgStore::open_to_read(self.0, options)?,
            Access::Verify => PgStore::open_to_verify(self.0, options)?,
        }))
    }

    fn open_or_create(&self, currency: &Currency, options: &OpenOptions) -> Result<Box<dyn Store>> {
        Ok(Box::new(PgStore::open_or_create(
            self.0, currency, options,
        )?))
    }

    fn create(&self, currency: &Currency, options: &OpenOptions) -> Result<()> {
        PgStore::create(self.0, currency, options)
    }

    fn migrate(&self, options: &OpenOptions) -> Result<(i64, i64)> {
        PgStore::migrate(self.0, options)
    }
}

impl Store for PgStore {
    fn currency(&self) -> &Currency {
        &self.currency
    }

    fn currencies(&self) -> &Currencies {
        &self.currencies
    }

    fn add_currency(&mut self, currency: &Currency) -> Result<(CurrencyId, bool)> {
        let added =
            self.retrying(|store| currencies::add(&mut store.client, &mut store.guard, currency))?;
        let default = self.currency.clone();
        self.currencies = self.reading(|store| {
            currencies::load(&mut store.client, schema::latest_version(), &default)
        })?;
        Ok(added)
    }

    fn profile(&self) -> Profile {
        Profile {
            // Workers share the queue by lanes, each on its own connection.
            max_writers: usize::MAX,
            settle_batch: crate::ledger::model::DEFAULT_SERVER_BATCH_SIZE,
        }
    }

    fn create_user(
        &mut self,
        name: &UserName,
        email: &Email,
        overdraft: i64,
    ) -> Result<UserRecord> {
        let currency = self.currency.clone();
        self.retrying(|store| {
            users::create_user(
                &mut store.client,
                &mut store.guard,
                &currency,
                name,
                email,
                overdraft,
            )
        })
    }

    fn change_policy(
        &mut self,
        name: &UserName,
        change: PolicyChange,
        currency: CurrencyId,
        memo: Option<&str>,
    ) -> Result<PolicyChangeRecord> {
        let currencies = self.currencies.clone();
        self.retrying(|store| {
            policies::change_policy(
                &mut store.client,
                &mut store.guard,
                &currencies,
                name,
                change,
                currency,
                memo,
            )
        })
    }

    fn create_users(&mut self, list: &[(UserName, Email)]) -> Result<()> {
        self.retrying(|store| users::create_users(&mut store.client, &mut store.guard, list))
    }

    fn user(&mut self, name: &UserName) -> Result<UserRecord> {
        self.reading(|store| users::user(&mut store.client, name))
    }

    fn queue_chunk(
        &mut self,
        lines: &mut dyn Iterator<Item = Result<BatchLine>>,
        max: usize,
        all_or_nothing: bool,
        sink: &mut dyn BatchSink,
    ) -> Result<BatchSummary> {
        // The chunk's lines are held, so that a transaction the server rolls
        // back (a deadlock) can run again, and the sink hears each line
        // once, after the last statement and before the commit.
        let mut chunk = Vec::new();
        for item in &mut *lines {
            chunk.push(item?);
            if chunk.len() >= max {
                break;
            }
        }
        let lanes = self.lanes;
        let mut careful = false;
        let planned = loop {
            let attempt = self.retrying(|store| {
                if chunk.len() >= queue::COPY_THRESHOLD && !store.staging {
                    queue::create_staging(&mut store.client)?;
                    store.staging = true;
                }
                queue::plan_and_write(
                    &mut store.client,
                    &mut store.guard,
                    &store.currencies,
                    &chunk,
                    all_or_nothing,
                    lanes,
                    careful,
                )
            });
            match attempt {
                Ok(queue::Attempt::Done(planned)) => break planned,
                // A pending sum near the limit of 64 bits: decide again
                // with the accounts locked from the start.
                Ok(queue::Attempt::Careful) if !careful => {
                    let _ = self.client.batch_execute("ROLLBACK");
                    careful = true;
                }
                Ok(queue::Attempt::Careful) => {
                    let _ = self.client.batch_execute("ROLLBACK");
                    return Err(WalletError::internal(anyhow::anyhow!(
                        "a pending sum kept changing under its lock"
                    )));
                }
                Err(err) => return Err(err),
            }
        };
        let outcome = queue::finish(
            &mut self.client,
            &self.guard,
            &chunk,
            planned,
            all_or_nothing,
            sink,
        );
        match outcome {
            Ok(summary) => Ok(summary),
            Err(fault) => {
                let _ = self.client.batch_execute("ROLLBACK");
                Err(self.errors.lift(fault))
            }
        }
    }

    fn finish_bulk_ingest(&mut self, summary: &BatchSummary) {
        // Settle's plans walk the queue's index in `tx_id` order; statistics
        // taken before a large ingest would have the server sort the whole
        // queue instead, until autovacuum next looks at the table.
        if summary.queued >= BULK_ANALYZE_ROWS {
            let _ = self.client.batch_execute("ANALYZE transfers");
        }
    }

    fn transfer(&mut self, which: TransferRef<'_>) -> Result<TransferRecord> {
        self.reading(|store| transfers::transfer(&mut store.client, which))
    }

    fn cancel(&mut self, tx_id: TxId) -> Result<TransferRecord> {
        self.retrying(|store| transfers::cancel(&mut store.client, &mut store.guard, tx_id.get()))
    }

    fn history(&mut self, name: &UserName, query: &HistoryQuery) -> Result<Vec<TransferRecord>> {
        self.reading(|store| transfers::history(&mut store.client, name, query))
    }

    fn capture(&mut self, tx_id: TxId, amount: Option<i64>) -> Result<TransferRecord> {
        self.retrying(|store| {
            holds::capture(&mut store.client, &mut store.guard, tx_id.get(), amount)
        })
    }

    fn release(&mut self, tx_id: TxId) -> Result<TransferRecord> {
        self.retrying(|store| holds::release(&mut store.client, &mut store.guard, tx_id.get()))
    }

    fn balance_at(
        &mut self,
        name: &UserName,
        at: PointInTime,
        currency: CurrencyId,
    ) -> Result<BalanceAt> {
        self.reading(|store| users::balance_at(&mut store.client, name, at, currency))
    }

    fn users(&mut self, after: Option<&UserName>, limit: u32) -> Result<Vec<UserRecord>> {
        self.reading(|store| reports::users(&mut store.client, after, limit))
    }

    fn seal(&mut self) -> Result<u64> {
        let currency = self.currency.clone();
        self.retrying(|store| chain::seal(&mut store.client, &mut store.guard, &currency))
    }

    fn chain(&mut self) -> Result<crate::ledger::chain::ChainState> {
        let currency = self.currency.clone();
        self.reading(|store| {
            let version: i32 = store
                .client
                .query_one("SELECT max(version) FROM schema_version", &[])?
                .get(0);
            if version < 3 {
                return Ok(crate::ledger::chain::ChainState {
                    unavailable: Some(format!(
                        "not part of schema version {version}; the chain starts once a write upgrades the ledger"
                    )),
                    ..Default::default()
                });
            }
            chain::state(&mut store.client, &currency)
        })
    }

    fn trial_balance(&mut self, at: Option<Instant>) -> Result<Vec<TrialBalance>> {
        let at = at.map(Instant::get);
        self.reading(|store| reports::trial_balance(&mut store.client, at))
    }

    fn export(
        &mut self,
        filter: &ExportFilter,
        each: &mut dyn FnMut(Exported) -> Result<bool>,
    ) -> Result<()> {
        self.reading(|store| reports::export(&mut store.client, filter, each))
    }

    fn settle_batch(&mut self, max: u64) -> Result<BatchCounts> {
        if !self.books_checked {
            let currencies = self.currencies.clone();
            self.reading(|store| settle::check_books(&mut store.client, &currencies))?;
            self.books_checked = true;
        }
        let expired = self.retrying(|store| {
            settle::expire_holds(&mut store.client, &mut store.guard, &mut store.prepared)
        })?;
        let counts = self.retrying(|store| {
            settle::settle_batch(
                &mut store.client,
                &mut store.guard,
                &mut store.prepared,
                max,
            )
        })?;
        Ok(BatchCounts { expired, ..counts })
    }

    fn pending_count(&mut self) -> Result<u64> {
        self.reading(|store| settle::pending_count(&mut store.client))
    }

    fn events(
        &mut self,
        after: Option<&crate::ledger::events::Cursor>,
        limit: u32,
    ) -> Result<Vec<crate::ledger::events::EventRecord>> {
        let rows = self.reading(|store| events::read(&mut store.client, after, limit))?;
        rows.into_iter()
            .map(crate::ledger::events::EventRow::into_record)
            .collect()
    }

    fn verify(&mut self, options: &VerifyOptions) -> Result<VerifyReport> {
        let currencies = self.currencies.clone();
        let schema = self.target.schema.clone();
        let errors = self.errors.clone();
        let outcome = verify::verify(&mut self.client, &schema, options, &currencies, &errors);
        let _ = self.client.batch_execute("ROLLBACK");
        outcome.map_err(|fault| self.errors.lift(fault))
    }
}
