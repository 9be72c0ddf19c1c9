//! The ledger: one SQLite file holding accounts and transfers, opened and created safely.
//!
//! Nothing in here knows about the command line; callers hand it validated
//! values and get records back.

mod accounts;
mod batch;
pub mod clock;
pub mod schema;
mod settle;
mod transfers;
mod verify;

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::error::{Result, WalletError, shown_path};
use crate::money::Currency;

pub use accounts::UserRecord;
pub use batch::{BatchLine, BatchOptions, BatchSink, BatchSummary, DEFAULT_CHUNK_SIZE};
pub use settle::{DEFAULT_BATCH_SIZE, SettleOptions, SettleSummary};
pub use transfers::{HistoryQuery, NewTransfer, Queued, Status, TransferRecord};
pub use verify::{Check, Problem, VerifyOptions, VerifyReport};

/// The id of the built-in account on the other side of deposits and
/// withdrawals. It has no name, so no user can collide with it.
pub const EXTERNAL_ACCOUNT: i64 = 0;

/// How a process wants the ledger opened.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long to wait for another process's write lock before `busy`.
    pub lock_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(5),
        }
    }
}

/// Whether opening refuses a schema that differs from the one the
/// migrations build, or leaves it to `verify` to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemaGate {
    Refuse,
    Report,
}

/// An open, validated ledger.
pub struct Ledger {
    conn: Connection,
    currency: Currency,
    path: PathBuf,
}

impl Ledger {
    /// Opens a ledger that must already exist; never creates a file.
    pub fn open(path: &Path, options: &OpenOptions) -> Result<Self> {
        Self::open_with(path, options, SchemaGate::Refuse)
    }

    /// Opens an existing ledger for `verify`: a schema that differs from
    /// ours is left for the checks to report instead of refused, and nothing
    /// is migrated or written. A foreign or newer file is still refused.
    pub fn open_to_verify(path: &Path, options: &OpenOptions) -> Result<Self> {
        let ledger = Self::open_with(path, options, SchemaGate::Report)?;
        ledger.conn.pragma_update(None, "query_only", true)?;
        // The checks sort a million transfers and walk every index; in
        // memory, with a page cache that holds a large ledger (64 MiB, taken
        // only as pages are read), that takes a fraction of the time it does
        // through temporary files and re-reads.
        ledger.conn.pragma_update(None, "temp_store", "MEMORY")?;
        ledger.conn.pragma_update(None, "cache_size", -65_536)?;
        Ok(ledger)
    }

    fn open_with(path: &Path, options: &OpenOptions, gate: SchemaGate) -> Result<Self> {
        match fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(path).is_ok() => {
                return Err(io_error(
                    e,
                    "cannot follow the symbolic link (its target is missing)",
                    path,
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(WalletError::LedgerNotFound(path.to_path_buf()));
            }
            Err(e) => return Err(io_error(e, "cannot read", path)),
            Ok(meta) if !meta.is_file() => {
                return Err(not_a_ledger(path, "it is not a regular file"));
            }
            Ok(_) => {}
        }
        check_header(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| io_error(e, "cannot open", path))?;
        Self::validate(conn, path, options, gate)
    }

    /// Opens the ledger at `path`, creating it with `currency` if no file is there.
    pub fn open_or_create(path: &Path, currency: &Currency, options: &OpenOptions) -> Result<Self> {
        create_file(path, currency)?;
        Self::open(path, options)
    }

    /// Creates a new ledger; refuses if any file is already at `path`.
    pub fn create(path: &Path, currency: &Currency, options: &OpenOptions) -> Result<Self> {
        if fs::symlink_metadata(path).is_ok() || !create_file(path, currency)? {
            return Err(WalletError::LedgerExists(path.to_path_buf()));
        }
        Self::open(path, options)
    }

    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the file (whose header [`check_header`] has passed) is a
    /// ledger this binary can use before anything could write to it: a
    /// newer or altered one is refused byte-for-byte untouched.
    fn validate(
        mut conn: Connection,
        path: &Path,
        options: &OpenOptions,
        gate: SchemaGate,
    ) -> Result<Self> {
        // SQLite counts the wait in an `int` of milliseconds (rusqlite panics past it).
        let longest = Duration::from_millis(i32::MAX as u64);
        conn.busy_timeout(options.lock_timeout.min(longest))?;
        // A crafted file must not run SQL of its own (triggers, views, functions in its schema).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;

        // `check_header` has already seen our application id in the file.
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| refine(e.into(), path))?;
        if version > schema::latest_version() {
            return Err(WalletError::SchemaTooNew {
                path: path.to_path_buf(),
                found: version,
                known: schema::latest_version(),
            });
        }
        if version == schema::latest_version() && gate == SchemaGate::Refuse {
            let differences = schema::differences(&conn)?;
            if !differences.is_empty() {
                return Err(not_a_ledger(
                    path,
                    &format!(
                        "its schema is not the wallet schema: {}",
                        differences.join("; ")
                    ),
                ));
            }
        }

        conn.pragma_update(None, "foreign_keys", true)?;
        // A wallet acknowledges only what survives power loss.
        conn.pragma_update(None, "synchronous", "FULL")?;
        if version < schema::latest_version() && gate == SchemaGate::Refuse {
            schema::migrate(&mut conn)?;
        }
        let currency = conn.query_row(
            "SELECT currency, scale FROM ledger_meta WHERE id = 1",
            [],
            |row| {
                Ok(Currency {
                    code: row.get(0)?,
                    scale: row.get(1)?,
                })
            },
        )?;
        Ok(Self {
            conn,
            currency,
            path: path.to_path_buf(),
        })
    }

    /// Lets SQLite keep up to `mib` MiB of pages in memory. Small commands
    /// never fill the default; bulk work over indexes that grow with the
    /// ledger (batch ingest) re-reads pages from the OS without more.
    pub fn set_page_cache_mib(&self, mib: u32) -> Result<()> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(mib) * 1024)?;
        Ok(())
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// Tells whether any other connection has committed to the ledger since the
/// last look, so that state read from the file and kept in memory across
/// transactions (settle's balances, batch ingest's ids and pending sums) is
/// dropped exactly when it may be stale. This connection's own commits do
/// not count: SQLite's `data_version` changes only for other connections.
#[derive(Debug, Default)]
pub(crate) struct CommitWatch(Option<i64>);

impl CommitWatch {
    /// True on the first look and whenever another connection committed since.
    pub(crate) fn others_committed(&mut self, conn: &Connection) -> Result<bool> {
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
    const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    let mut header = [0u8; 72];
    let mut file = fs::File::open(path).map_err(|e| io_error(e, "cannot read", path))?;
    let mut filled = 0;
    while filled < header.len() {
        match file.read(&mut header[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e, "cannot read", path)),
        }
    }
    if filled < header.len() || &header[..16] != MAGIC {
        return Err(not_a_ledger(
            path,
            if filled == 0 {
                "the file is empty"
            } else {
                "the file is not an SQLite database"
            },
        ));
    }
    let application_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    if application_id != schema::APPLICATION_ID {
        return Err(not_a_ledger(
            path,
            "it is an SQLite database of another program",
        ));
    }
    Ok(())
}

/// Builds a complete ledger in a private temporary file beside `path` and
/// links it into place only if nothing is there yet. Other processes thus
/// see either no file or a whole ledger, never a half-made one; returns
/// whether this call created it.
fn create_file(path: &Path, currency: &Currency) -> Result<bool> {
    if fs::symlink_metadata(path).is_ok() {
        return Ok(false);
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| not_a_ledger(path, "it names no file"))?
        .to_string_lossy();
    let temp = dir.join(format!(
        ".{file_name}.{}.{}.creating",
        std::process::id(),
        clock::now_ms()
    ));
    let _cleanup = RemoveOnDrop(&temp);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| io_error(e, "cannot create", path))?;
    {
        let mut conn = Connection::open(&temp).map_err(|e| io_error(e, "cannot create", path))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "application_id", schema::APPLICATION_ID)?;
        schema::migrate(&mut conn)?;
        conn.execute(
            "INSERT INTO ledger_meta (id, currency, scale, created_at) VALUES (1, ?1, ?2, ?3)",
            rusqlite::params![currency.code, currency.scale, clock::now_ms()],
        )?;
        conn.close().map_err(|(_, e)| e)?;
    }
    match fs::hard_link(&temp, path) {
        Ok(()) => {
            // The new directory entry must survive power loss like the data in it.
            if let Ok(dir) = fs::File::open(dir) {
                let _ = dir.sync_all();
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error(e, "cannot create", path)),
    }
}

struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}

fn not_a_ledger(path: &Path, why: &str) -> WalletError {
    WalletError::NotALedger {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

fn io_error(err: impl Into<anyhow::Error>, what: &str, path: &Path) -> WalletError {
    WalletError::Io(err.into().context(format!("{what} '{}'", shown_path(path))))
}

/// Attaches the ledger's path to errors SQLite raised without one.
fn refine(err: WalletError, path: &Path) -> WalletError {
    match err {
        WalletError::NotALedger { why, .. } => WalletError::NotALedger {
            path: path.to_path_buf(),
            why,
        },
        other => other,
    }
}
