//! The SQLite engine: one file holding accounts and transfers, opened and
//! created safely, with every statement inside [`SqliteStore`].
//!
//! Locking: every write is one `BEGIN IMMEDIATE` transaction, which takes
//! SQLite's single write lock up front, so a write reads, decides and
//! writes with no other writer in between. Readers are never held up by a
//! writer (WAL). The tricks that make it fast lean on that single writer:
//! - settle and batch ingest keep account figures and name look-ups in
//!   memory across transactions, valid only while no other connection
//!   commits ([`CommitWatch`] asks SQLite's `data_version`) and dropped by
//!   this store's own other writes ([`Caches`]);
//! - settle completes a batch with one range `UPDATE` over `tx_id`, sound
//!   because the write lock keeps new PENDING rows out of that range;
//! - batch ingest turns off foreign-key look-ups, since every id it writes
//!   was read under the same lock.

mod chain;
mod columns;
mod create;
mod currencies;
mod error;
mod events;
mod files;
mod guard;
mod holds;
mod kept_files;
mod policies;
mod queue;
mod queue_mark;
mod reports;
mod schema;
mod settle;
mod slots;
mod sql_types;
mod transfers;
mod users;
mod verify;
mod wal;

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::events::{Cursor, EventRecord, EventRow};
use super::model::{
    BalanceAt, BatchCounts, BatchLine, BatchSink, BatchSummary, ExportFilter, Exported,
    HistoryQuery, PointInTime, PolicyChange, PolicyChangeRecord, TransferRecord, TransferRef,
    TrialBalance, UserRecord, VerifyOptions, VerifyReport,
};
use super::store::{Access, Engine, OpenOptions, Profile, Store};
use crate::domain::{Email, UserName};
use crate::error::{Result, WalletError};
use crate::ledger::model::Instant;
use crate::ledger::model::TxId;
use crate::location::Location;
use crate::money::{Currencies, Currency, CurrencyId};
use error::{ErrorContext, SqlResult, error_context, io_error, not_a_ledger};

/// Whether opening refuses a schema that differs from the one the
/// migrations build, or leaves it to `verify` to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemaGate {
    /// Refuse a differing schema; upgrade an older one (commands that write).
    Refuse,
    /// Refuse a differing schema and an older one (commands that only read).
    Read,
    /// Leave a differing schema for `verify` to report; change nothing.
    Report,
}

/// An open, validated SQLite ledger. The connection is private: every
/// statement the engine runs is in this module.
pub(super) struct SqliteStore {
    conn: Connection,
    /// A `-shm` this store made to read, removed once `conn` has closed
    /// (fields drop in order).
    made_shm: Option<files::MadeShm>,
    currency: Currency,
    /// Read when the ledger was opened, and again after this store adds one.
    currencies: Currencies,
    errors: ErrorContext,
    caches: Caches,
    files: FileIdentity,
    /// Whether this process wrote, so that it checkpoints before it closes.
    wrote: bool,
    /// Set while the ledger is read without side files: the file as it was
    /// when opened, and how to open it the usual way if it changes.
    unshared: Option<files::Unshared>,
    reopen: Option<(OpenOptions, SchemaGate)>,
    /// `data_version` as the last read of the change feed began: a
    /// different value means another connection committed since.
    feed_version: Option<i64>,
}

impl Drop for SqliteStore {
    /// A writer moves what it wrote from the log into the file and empties
    /// the log, so the next process to open the ledger has nothing to
    /// replay. It does so with a checkpoint that never waits: if a reader
    /// still needs the log, or another process is checkpointing, the log is
    /// left for a later writer. SQLite's own checkpoint on close is off
    /// (see `open_with`): it takes an exclusive lock on the ledger, and a
    /// process stopped while holding it would hold up every new reader.
    fn drop(&mut self) {
        if self.wrote {
            let _ = self.conn.busy_timeout(Duration::ZERO);
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

/// The device and inode of the ledger and its `-wal` and `-shm` as this
/// process opened them. A long-running process checks them before each
/// write: if any was deleted or replaced under it (a `-shm` removed by
/// hand, a backup restored over the ledger), its view of the ledger and
/// every other process's have parted, and writing on would lose their work.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity(Vec<Option<(u64, u64)>>);

impl FileIdentity {
    fn of(path: &Path) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self(
            ["", "-wal", "-shm"]
                .iter()
                .map(|suffix| {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    fs::metadata(name).ok().map(|meta| (meta.dev(), meta.ino()))
                })
                .collect(),
        )
    }

    /// Fails with `integrity` unless the files at `path` are still the ones
    /// this process holds. A side file that did not exist when the ledger
    /// was opened may have appeared since; one that existed must remain.
    fn check(&mut self, path: &Path) -> Result<()> {
        let now = Self::of(path);
        for (i, (then, found)) in self.0.iter().zip(&now.0).enumerate() {
            if then.is_some() && then != found {
                let file = ["the ledger file", "its -wal file", "its -shm file"][i];
                return Err(WalletError::Integrity(format!(
                    "{file} was removed or replaced while this process had it open; stop every wallet process on '{}' and run `wallet verify`",
                    crate::text::shown_path(path)
                )));
            }
        }
        *self = now;
        Ok(())
    }
}

/// What this store keeps in memory between transactions.
#[derive(Default)]
struct Caches {
    ingest: queue::IngestCache,
    settle: settle::SettleCache,
}

impl Caches {
    /// Drops everything: this connection wrote in a way the caches did not
    /// follow, and `data_version` only reports other connections' commits.
    fn clear(&mut self) {
        self.ingest = queue::IngestCache::default();
        self.settle = settle::SettleCache::default();
    }
}

impl SqliteStore {
    /// Opens a ledger that must already exist; never creates a file.
    fn open(path: &Path, options: &OpenOptions) -> Result<Self> {
        Self::open_with(path, options, SchemaGate::Refuse)
    }

    /// Opens a ledger that must exist, for reading only; an older schema is
    /// refused with `upgrade_needed`, never upgraded.
    fn open_to_read(path: &Path, options: &OpenOptions) -> Result<Self> {
        Self::open_with(path, options, SchemaGate::Read)
    }

    /// Upgrades the ledger at `path`; returns its versions before and after.
    fn migrate(path: &Path, options: &OpenOptions) -> Result<(i64, i64)> {
        let before = Self::open_with(path, options, SchemaGate::Report)?;
        let found = before.run_read(schema::version_of)?;
        drop(before);
        let mut store = Self::open(path, options)?;
        let now = store.run_read(schema::version_of)?;
        store.caches.clear();
        Ok((found, now))
    }

    /// Opens an existing ledger for `verify`: a schema that differs from
    /// ours is left for the checks to report instead of refused, and nothing
    /// is migrated or written. A foreign or newer file is still refused.
    fn open_to_verify(path: &Path, options: &OpenOptions) -> Result<Self> {
        let store = Self::open_with(path, options, SchemaGate::Report)?;
        let tune = |conn: &Connection| -> rusqlite::Result<()> {
            conn.pragma_update(None, "query_only", true)?;
            // The checks sort a million transfers and walk every index; in
            // memory, with a page cache that holds a large ledger (64 MiB,
            // taken only as pages are read), that takes a fraction of the
            // time it does through temporary files and re-reads.
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.pragma_update(None, "cache_size", -65_536)
        };
        tune(&store.conn).map_err(|e| store.errors.lift(e.into()))?;
        Ok(store)
    }

    /// Opens the ledger at `path`, creating it with `currency` if no file is there.
    fn open_or_create(path: &Path, currency: &Currency, options: &OpenOptions) -> Result<Self> {
        let created = create::create_file(path, currency, options, false)?;
        Self::open(path, options).map_err(|err| match err {
            // The new ledger is in place; the caller's own change is not.
            err if created => WalletError::at_commit(
                &format!("a new, empty ledger '{}'", crate::text::shown_path(path)),
                format_args!("it was created, then could not be opened: {err}"),
                "running the command again is safe",
            ),
            err => err,
        })
    }

    /// Creates a new ledger; refuses if anything is already at `path`, but
    /// for an empty file (as `mktemp` or `touch` leave), which it fills.
    fn create(path: &Path, currency: &Currency, options: &OpenOptions) -> Result<()> {
        let exists = |what| WalletError::LedgerExists {
            ledger: Location::File(path.to_path_buf()),
            what,
        };
        let replace_empty = match fs::symlink_metadata(path) {
            Err(_) => false,
            Ok(meta) if meta.is_file() && meta.len() == 0 => true,
            Ok(meta) if meta.is_file() => return Err(exists("a file")),
            Ok(meta) if meta.is_dir() => return Err(exists("a directory")),
            Ok(meta) if meta.is_symlink() => return Err(exists("a symbolic link")),
            Ok(_) => return Err(exists("something that is not a regular file")),
        };
        if !create::create_file(path, currency, options, replace_empty)? {
            return Err(exists("a file"));
        }
        Ok(())
    }

    fn open_with(path: &Path, options: &OpenOptions, gate: SchemaGate) -> Result<Self> {
        let path = &files::ledger_path(path)?;
        let ledger = match fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(path).is_ok() => {
                return Err(io_error(
                    e,
                    "cannot follow the symbolic link (its target is missing)",
                    path,
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(WalletError::LedgerNotFound(Location::File(
                    path.to_path_buf(),
                )));
            }
            Err(e) => return Err(io_error(e, "cannot read", path)),
            Ok(meta) if !meta.is_file() => {
                return Err(not_a_ledger(path, "it is not a regular file"));
            }
            Ok(meta) => meta,
        };
        files::check_side_files(path, &ledger)?;
        check_header(path)?;
        wal::check_log(path)?;
        if gate != SchemaGate::Refuse
            && let Some(store) = Self::open_unshared(path, options, gate)?
        {
            return Ok(store);
        }
        Self::open_shared(path, options, gate)
    }

    /// Opens the ledger read-only without its side files (`-wal`, `-shm`),
    /// if its file holds every commit (no `-wal`, or an empty one): a
    /// command that only reads must not leave files it did not find, and
    /// SQLite gives side files it makes or opens empty the ledger's owner
    /// and mode, which could stop the owner's next write. The file is read
    /// as it stands (SQLite's `immutable`), and each read is checked
    /// afterwards against a writer that may have started meanwhile (see
    /// [`files::Unshared`]).
    ///
    /// Opening reads the schema and the ledger's currency from the file, so
    /// it is checked like a read: a writer that checkpoints into the file
    /// meanwhile can hand it pages of two versions, which look damaged (a
    /// "malformed" image, a foreign schema, a missing row). A failure is
    /// believed only if the file is still as it was; otherwise the open is
    /// made again, and after a few tries the way writers open the ledger.
    fn open_unshared(path: &Path, options: &OpenOptions, gate: SchemaGate) -> Result<Option<Self>> {
        let errors = error_context(path, options);
        let mut uri = std::ffi::OsString::from("file:");
        uri.push(path.as_os_str());
        let uri = uri
            .to_string_lossy()
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23");
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        for _ in 0..3 {
            let Some(stamp) = files::Unshared::of(path) else {
                return Ok(None);
            };
            let conn = Connection::open_with_flags(format!("{uri}?immutable=1"), flags)
                .map_err(|e| io_error(e, "cannot open", path))?;
            match validate(conn, path, options, gate) {
                Ok(mut store) => {
                    store.unshared = Some(stamp);
                    store.reopen = Some((options.clone(), gate));
                    return Ok(Some(store));
                }
                Err(fault) if files::Unshared::of(path).as_ref() == Some(&stamp) => {
                    return Err(errors.lift(fault));
                }
                Err(_) => {}
            }
        }
        Self::reopen_shared(path, options, gate).map(Some)
    }

    /// Opens the ledger with SQLite's locks and side files, as every
    /// process that writes does.
    fn open_shared(path: &Path, options: &OpenOptions, gate: SchemaGate) -> Result<Self> {
        let made_shm = if gate == SchemaGate::Refuse {
            None
        } else {
            files::made_shm(path)?
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| io_error(e, "cannot open", path))?;
        // Batch ingest and settle prepare an insert for each group size
        // they write (up to 64 rows each), beside their other statements.
        conn.set_prepared_statement_cache_capacity(256);
        let errors = error_context(path, options);
        // Closing never checkpoints: a ledger that is refused, or read by
        // `verify`, keeps every byte of its file and of a write-ahead log
        // left beside it, and a writer checkpoints on its own terms (see
        // `Drop for SqliteStore`).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(|e| errors.lift(e.into()))?;
        let mut store = validate(conn, path, options, gate).map_err(|fault| match fault {
            error::Fault::Sql(e)
                if gate != SchemaGate::Refuse
                    && e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) =>
            {
                files::side_files_unusable(path)
            }
            fault => errors.lift(fault),
        })?;
        store.made_shm = made_shm;
        Ok(store)
    }

    fn run_read<T>(&self, work: impl FnOnce(&Connection) -> SqlResult<T>) -> Result<T> {
        work(&self.conn).map_err(|fault| self.errors.lift(fault))
    }

    /// Runs a read. One made without side files is kept only if the file
    /// is still as it was when opened; otherwise it is made again from a
    /// new view: again without side files while the file holds every
    /// commit (opening them while the log is empty could change their
    /// mode, see `files`), and after a few such tries, or once the log
    /// holds commits, as writers open the ledger.
    fn read<T>(&mut self, work: impl FnMut(&mut Self) -> SqlResult<T>) -> Result<T> {
        self.read_believed(work, |_| false)
    }

    /// [`Self::read`], for a read whose answer can say the ledger is
    /// damaged (`looks_damaged`), as SQLite's own corruption errors do. A
    /// view without side files has no lock to keep a writer's checkpoint
    /// out of the file it reads, and only the file's stamp tells one
    /// happened; so such an answer from it is not believed until the read
    /// made again the shared way, under SQLite's locks, gives it too. A
    /// ledger that cannot be opened that way (side files this user may not
    /// make) keeps the first answer.
    fn read_believed<T>(
        &mut self,
        mut work: impl FnMut(&mut Self) -> SqlResult<T>,
        looks_damaged: impl Fn(&T) -> bool,
    ) -> Result<T> {
        let mut outcome = work(self);
        let mut tries = 0;
        while let Some(ref stamp) = self.unshared
            && files::Unshared::of(&self.errors.path).as_ref() != Some(stamp)
        {
            let Some((options, gate)) = self.reopen.clone() else {
                break;
            };
            if tries == 3 {
                self.share()?;
                return self.run(work);
            }
            tries += 1;
            let path = self.errors.path.clone();
            *self = match Self::open_unshared(&path, &options, gate)? {
                Some(store) => store,
                None => Self::reopen_shared(&path, &options, gate)?,
            };
            outcome = work(self);
        }
        let damaged = match &outcome {
            Ok(answer) => looks_damaged(answer),
            Err(fault) => fault.is_damage(),
        };
        if damaged && self.unshared.is_some() && self.share().is_ok() {
            return self.run(work);
        }
        outcome.map_err(|fault| self.errors.lift(fault))
    }

    /// Leaves an unshared, read-only view for the shared one writers use.
    fn share(&mut self) -> Result<()> {
        if let Some((options, gate)) = self.reopen.take() {
            *self = Self::reopen_shared(&self.errors.path.clone(), &options, gate)?;
        }
        Ok(())
    }

    /// Opens the shared view after a view without side files: the side
    /// files and the log a writer made meanwhile have not been judged yet,
    /// and SQLite would use them and replay the log.
    fn reopen_shared(path: &Path, options: &OpenOptions, gate: SchemaGate) -> Result<Self> {
        let meta = fs::metadata(path).map_err(|e| io_error(e, "cannot read", path))?;
        files::check_side_files(path, &meta)?;
        wal::check_log(path)?;
        Self::open_shared(path, options, gate)
    }

    /// Runs `work` and turns whatever it raised into the contract's error.
    fn run<T>(&mut self, work: impl FnOnce(&mut Self) -> SqlResult<T>) -> Result<T> {
        work(self).map_err(|fault| self.errors.lift(fault))
    }
}

/// Checks the file (whose header [`check_header`] has passed) is a ledger
/// this binary can use before anything could write to it: a newer or
/// altered one is refused byte-for-byte untouched.
fn validate(
    mut conn: Connection,
    path: &Path,
    options: &OpenOptions,
    gate: SchemaGate,
) -> SqlResult<SqliteStore> {
    // SQLite counts the wait in an `int` of milliseconds (rusqlite panics past it).
    let longest = Duration::from_millis(i32::MAX as u64);
    conn.busy_timeout(options.lock_timeout.min(longest))?;
    // A crafted file must not run SQL of its own (triggers, views, functions in its schema).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;

    // `check_header` has already seen our application id in the file.
    let version = schema::version_of(&conn)?;
    if version > schema::latest_version() {
        return Err(WalletError::SchemaTooNew {
            ledger: Location::File(path.to_path_buf()),
            found: version,
            known: schema::latest_version(),
        }
        .into());
    }
    if version < schema::latest_version() && gate == SchemaGate::Read {
        return Err(WalletError::UpgradeNeeded {
            ledger: Location::File(path.to_path_buf()),
            found: version,
            latest: schema::latest_version(),
        }
        .into());
    }
    if version == schema::latest_version() && gate != SchemaGate::Report {
        let differences = schema::differences(&conn, version)?;
        if !differences.is_empty() {
            return Err(not_a_ledger(
                path,
                &format!(
                    "its schema is not the wallet schema: {}",
                    differences.join("; ")
                ),
            )
            .into());
        }
    }

    conn.pragma_update(None, "foreign_keys", true)?;
    // A wallet acknowledges only what survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Statement journals and sorts stay in memory: a full `$TMPDIR` must
    // not fail a settle on a disk with room. They are bounded by a batch.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    let migrated = version < schema::latest_version() && gate == SchemaGate::Refuse;
    if migrated {
        schema::migrate(&mut conn)?;
    }
    let currency = conn
        .query_row(
            "SELECT currency, scale FROM ledger_meta WHERE id = 1",
            [],
            |row| {
                Ok(Currency {
                    code: row.get(0)?,
                    scale: row.get(1)?,
                })
            },
        )
        .optional()?;
    let currency = match currency {
        Some(currency) => currency,
        // `verify` reports the missing row by name (check `ledger_meta`).
        None if gate == SchemaGate::Report => Currency::default(),
        None => {
            return Err(WalletError::Integrity(
                "the ledger has no ledger_meta row, so its currency is unknown; run `wallet verify`"
                    .into(),
            )
            .into());
        }
    };
    let version = if migrated {
        schema::latest_version()
    } else {
        version
    };
    let currencies = match currencies::load(&conn, version, &currency) {
        Ok(currencies) => currencies,
        // `verify` reports what is wrong with the table.
        Err(_) if gate == SchemaGate::Report => Currencies::new(currency.clone()),
        Err(fault) => return Err(fault),
    };
    Ok(SqliteStore {
        conn,
        made_shm: None,
        currency,
        currencies,
        errors: error_context(path, options),
        caches: Caches::default(),
        files: FileIdentity::of(path),
        wrote: migrated,
        unshared: None,
        reopen: None,
        feed_version: None,
    })
}

/// The ledger files at a path.
pub(super) struct SqliteEngine<'a>(pub &'a Path);

impl Engine for SqliteEngine<'_> {
    fn open(&self, access: Access, options: &OpenOptions) -> Result<Box<dyn Store>> {
        Ok(Box::new(match access {
            Access::Write => SqliteStore::open(self.0, options)?,
            Access::Read => SqliteStore::open_to_read(self.0, options)?,
            Access::Verify => SqliteStore::open_to_verify(self.0, options)?,
        }))
    }

    fn open_or_create(&self, currency: &Currency, options: &OpenOptions) -> Result<Box<dyn Store>> {
        Ok(Box::new(SqliteStore::open_or_create(
            self.0, currency, options,
        )?))
    }

    fn create(&self, currency: &Currency, options: &OpenOptions) -> Result<()> {
        SqliteStore::create(self.0, currency, options)
    }

    fn migrate(&self, options: &OpenOptions) -> Result<(i64, i64)> {
        SqliteStore::migrate(self.0, options)
    }
}

impl Store for SqliteStore {
    fn currency(&self) -> &Currency {
        &self.currency
    }

    fn currencies(&self) -> &Currencies {
        &self.currencies
    }

    fn add_currency(&mut self, currency: &Currency) -> Result<(CurrencyId, bool)> {
        self.share()?;
        self.files.check(&self.errors.path)?;
        self.wrote = true;
        let added = self.run(|store| currencies::add(&mut store.conn, currency))?;
        let default = self.currency.clone();
        self.currencies = self.run(|store| {
            let version = schema::version_of(&store.conn)?;
            currencies::load(&store.conn, version, &default)
        })?;
        Ok(added)
    }

    fn profile(&self) -> Profile {
        Profile {
            // A file takes one writer at a time: a second would only queue
            // for its lock.
            max_writers: 1,
            settle_batch: super::model::DEFAULT_BATCH_SIZE,
        }
    }

    fn create_user(
        &mut self,
        name: &UserName,
        email: &Email,
        overdraft: i64,
    ) -> Result<UserRecord> {
        self.share()?;
        self.wrote = true;
        self.caches.clear();
        let currency = self.currency.clone();
        self.run(|store| users::create_user(&mut store.conn, &currency, name, email, overdraft))
    }

    fn change_policy(
        &mut self,
        name: &UserName,
        change: PolicyChange,
        currency: CurrencyId,
        memo: Option<&str>,
    ) -> Result<PolicyChangeRecord> {
        self.share()?;
        self.files.check(&self.errors.path)?;
        self.wrote = true;
        // Settle's and ingest's caches hold account figures a change may
        // make stale.
        self.caches.clear();
        let currencies = self.currencies.clone();
        self.run(|store| {
            policies::change_policy(&mut store.conn, &currencies, name, change, currency, memo)
        })
    }

    fn create_users(&mut self, users: &[(UserName, Email)]) -> Result<()> {
        self.share()?;
        self.wrote = true;
        self.caches.clear();
        self.run(|store| users::create_users(&mut store.conn, users))
    }

    fn user(&mut self, name: &UserName) -> Result<UserRecord> {
        self.read(|store| users::user(&store.conn, name))
    }

    fn expect_bulk_ingest(&mut self) -> Result<()> {
        // The two per-account indexes take inserts all over; past the
        // default 2 MiB cache each insert re-reads its leaf from the OS.
        self.run(|store| Ok(store.conn.pragma_update(None, "cache_size", -32 * 1024)?))
    }

    fn queue_chunk(
        &mut self,
        lines: &mut dyn Iterator<Item = Result<BatchLine>>,
        max: usize,
        all_or_nothing: bool,
        sink: &mut dyn BatchSink,
    ) -> Result<BatchSummary> {
        self.share()?;
        self.files.check(&self.errors.path)?;
        self.wrote = true;
        // Queueing moves pending sums that settle's cache holds.
        self.caches.settle = settle::SettleCache::default();
        self.run(|store| {
            queue::queue_chunk(
                &mut store.conn,
                &mut store.caches.ingest,
                &store.currencies,
                lines,
                max,
                all_or_nothing,
                sink,
            )
        })
    }

    fn transfer(&mut self, which: TransferRef<'_>) -> Result<TransferRecord> {
        self.read(|store| transfers::transfer(&store.conn, which))
    }

    fn cancel(&mut self, tx_id: TxId) -> Result<TransferRecord> {
        self.share()?;
        self.wrote = true;
        self.caches.clear();
        self.run(|store| transfers::cancel(&mut store.conn, tx_id.get()))
    }

    fn history(&mut self, name: &UserName, query: &HistoryQuery) -> Result<Vec<TransferRecord>> {
        self.read(|store| transfers::history(&store.conn, name, query))
    }

    fn capture(&mut self, tx_id: TxId, amount: Option<i64>) -> Result<TransferRecord> {
        self.share()?;
        self.wrote = true;
        self.caches.clear();
        self.run(|store| holds::capture(&mut store.conn, tx_id.get(), amount))
    }

    fn release(&mut self, tx_id: TxId) -> Result<TransferRecord> {
        self.share()?;
        self.wrote = true;
        self.caches.clear();
        self.run(|store| holds::release(&mut store.conn, tx_id.get()))
    }

    fn balance_at(
        &mut self,
        name: &UserName,
        at: PointInTime,
        currency: CurrencyId,
    ) -> Result<BalanceAt> {
        self.read(|store| users::balance_at(&store.conn, name, at, currency))
    }

    fn users(&mut self, after: Option<&UserName>, limit: u32) -> Result<Vec<UserRecord>> {
        self.read(|store| reports::users(&store.conn, after, limit))
    }

    fn events(&mut self, after: Option<&Cursor>, limit: u32) -> Result<Vec<EventRecord>> {
        let after = events::after(after)?;
        let rows = self.read(|store| {
            // Taken before the read: a commit after it, even one the read
            // already sees, makes the next look read again, never the
            // other way round.
            let version = events::data_version(&store.conn)?;
            let rows = events::read(&store.conn, after, limit)?;
            store.feed_version = Some(version);
            Ok(rows)
        })?;
        rows.into_iter().map(EventRow::into_record).collect()
    }

    fn may_have_new_events(&mut self) -> Result<bool> {
        // Read as the file stands, no connection sees commits: the file's
        // stamp tells, and the next read opens the ledger afresh.
        if let Some(stamp) = &self.unshared {
            return Ok(files::Unshared::of(&self.errors.path).as_ref() != Some(stamp));
        }
        let version = self.run_read(events::data_version)?;
        Ok(self.feed_version != Some(version))
    }

    fn seal(&mut self) -> Result<u64> {
        self.share()?;
        self.wrote = true;
        let currency = self.currency.clone();
        self.run(|store| chain::seal(&mut store.conn, &currency))
    }

    fn chain(&mut self) -> Result<crate::ledger::chain::ChainState> {
        let currency = self.currency.clone();
        self.read(|store| {
            let tx = store.conn.transaction()?;
            let version = schema::version_of(&tx)?;
            let state = if version < 5 {
                Ok(crate::ledger::chain::ChainState {
                    unavailable: Some(format!(
                        "not part of schema version {version}; the chain starts once a write upgrades the ledger"
                    )),
                    ..Default::default()
                })
            } else {
                chain::state(&tx, &currency)
            };
            drop(tx);
            state
        })
    }

    fn trial_balance(&mut self, at: Option<Instant>) -> Result<Vec<TrialBalance>> {
        let at = at.map(Instant::get);
        self.read(|store| reports::trial_balance(&mut store.conn, at))
    }

    fn export(
        &mut self,
        filter: &ExportFilter,
        each: &mut dyn FnMut(Exported) -> Result<bool>,
    ) -> Result<()> {
        self.read(|store| reports::export(&store.conn, filter, each))
    }

    fn settle_batch(&mut self, max: u64) -> Result<BatchCounts> {
        self.share()?;
        self.files.check(&self.errors.path)?;
        self.wrote = true;
        // Settling moves pending sums that ingest's cache holds.
        self.caches.ingest = queue::IngestCache::default();
        let currencies = self.currencies.clone();
        self.run(|store| {
            settle::settle_batch(&mut store.conn, max, &mut store.caches.settle, &currencies)
        })
    }

    fn pending_count(&mut self) -> Result<u64> {
        self.read(|store| settle::pending_count(&store.conn))
    }

    fn verify(&mut self, options: &VerifyOptions) -> Result<VerifyReport> {
        let errors = self.errors.clone();
        let currencies = self.currencies.clone();
        self.read_believed(
            |store| verify::verify(&mut store.conn, options, &currencies, &errors),
            |report| !report.ok(),
        )
    }
}

/// Tells whether any other connection has committed to the ledger since the
/// last look, so that state read from the file and kept in memory across
/// transactions (settle's balances, batch ingest's ids and pending sums) is
/// dropped exactly when it may be stale. This connection's own commits do
/// not count: SQLite's `data_version` changes only for other connections.
#[derive(Debug, Default)]
struct CommitWatch(Option<i64>);

impl CommitWatch {
    /// True on the first look and whenever another connection committed since.
    fn others_committed(&mut self, conn: &Connection) -> SqlResult<bool> {
        let version: i64 = conn.query_row("PRAGMA data_version", [], |row| row.get(0))?;
        Ok(self.0.replace(version) != Some(version))
    }
}

/// Refuses a file whose header does not mark it as a wallet ledger before
/// SQLite opens it at all: opening another program's database read-write
/// would let SQLite replay that program's leftover journal or write-ahead
/// log into it on close, and a refused file must stay byte-for-byte as it
/// was. Our ledgers get their application id at creation, before they are
/// linked into place, so it is always in the main file.
fn check_header(path: &Path) -> Result<()> {
    let mut header = [0u8; 72];
    let filled =
        kept_files::read_at(path, &mut header, 0).map_err(|e| io_error(e, "cannot read", path))?;
    let (sqlite, ledger) = schema::header_marks(&header);
    if filled < header.len() || !sqlite {
        return Err(not_a_ledger(
            path,
            if filled == 0 {
                "the file is empty"
            } else {
                "the file is not an SQLite database"
            },
        ));
    }
    if !ledger {
        return Err(not_a_ledger(
            path,
            "it is an SQLite database of another program",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::domain::UserName;
    use crate::ledger::{Ledger, NewTransfer, OpenOptions};
    use crate::money::Amount;

    /// A deposit of 5.00 to `to`, as a writer that overtakes a read queues it.
    fn deposit_500(to: &UserName) -> NewTransfer {
        NewTransfer::new(
            None,
            Some(to.clone()),
            Amount::from_minor_units(500).unwrap(),
            None,
            None,
        )
        .unwrap()
    }

    /// A read made without side files, during which a writer commits, is
    /// made again the usual way: it never answers from a file that changed
    /// under it.
    #[test]
    fn a_read_without_side_files_that_a_writer_overtakes_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let location = crate::ledger::file_with_alice(&dir.path().join("wallet.db"));
        let options = OpenOptions::default();
        let alice = UserName::parse("alice").unwrap();
        for side in ["wallet.db-wal", "wallet.db-shm"] {
            let _ = std::fs::remove_file(dir.path().join(side));
        }
        let mut reader = Ledger::open_to_read(&location, &options).unwrap();
        assert_eq!(reader.user(&alice).unwrap().pending_in, 0);
        assert!(
            !dir.path().join("wallet.db-shm").exists(),
            "the read made no file"
        );
        let mut writer = Ledger::open(&location, &options).unwrap();
        writer.queue_transfer(deposit_500(&alice)).unwrap();
        // The commit sits in the writer's log, which the first view cannot see.
        assert_eq!(reader.user(&alice).unwrap().pending_in, 500);
    }

    /// A read made without side files that a writer overtook, and whose
    /// log that writer emptied on exit, is made again the same way: the
    /// empty `-wal`, whose mode differs from the ledger's, keeps its mode.
    #[test]
    fn a_read_overtaken_by_a_writer_that_emptied_its_log_changes_no_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.db");
        let location = crate::ledger::file_with_alice(&path);
        let options = OpenOptions::default();
        let alice = UserName::parse("alice").unwrap();
        let wal = super::files::with_suffix(&path, "-wal");
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let wal_mode = mode(&wal);
        assert_ne!(wal_mode, 0o640);

        let mut reader = Ledger::open_to_read(&location, &options).unwrap();
        assert_eq!(reader.user(&alice).unwrap().pending_in, 0);
        assert_eq!(mode(&wal), wal_mode);
        {
            let mut writer = Ledger::open(&location, &options).unwrap();
            writer.queue_transfer(deposit_500(&alice)).unwrap();
        }
        assert_eq!(
            std::fs::metadata(&wal).unwrap().len(),
            0,
            "the writer emptied its log"
        );
        // A writer gives an empty log the ledger's mode; a read must not.
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(wal_mode)).unwrap();
        assert_eq!(reader.user(&alice).unwrap().pending_in, 500);
        assert_eq!(mode(&wal), wal_mode);
    }
}
