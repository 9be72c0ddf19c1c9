//! Creating a ledger file: built whole and synced under a private name,
//! then given its real name in one step, so that no process ever sees half
//! a ledger and a crash or a full disk leaves either no ledger or a whole one.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::Connection;
use rustix::fs::{CWD, RenameFlags, renameat_with};

use super::error::{error_context, io_error, not_a_ledger};
use super::files::with_suffix;
use super::schema;
use crate::error::{Result, WalletError};
use crate::ledger::clock;
use crate::ledger::store::OpenOptions;
use crate::money::Currency;

/// Builds a complete ledger in a private temporary file beside `path` and
/// moves it into place only if nothing is there yet; returns whether this
/// call created it.
///
/// - The file is built with a rollback journal, so every commit lands in
///   the file itself (a write-ahead log left behind could strand the
///   contents, since SQLite's close ignores a failed checkpoint); only the
///   last step switches it to WAL, which writes just the header.
/// - It is synced before it gets its name, and the directory after, so the
///   name never points at a file whose contents a power loss could take.
/// - The name is given by `renameat2(RENAME_NOREPLACE)`: one step, refused
///   if a ledger appeared meanwhile, and no second name is left linked to
///   the live ledger at any moment. Where the file system lacks that call,
///   a hard link and an unlink do the same with a window in between, which
///   the next creation's clean-up closes.
///
/// Written by hand rather than with `tempfile`'s `persist_noclobber`: that
/// ignores a failed unlink of the temporary name and syncs no directory.
///
/// With `replace_empty`, an empty regular file at `path` (as `mktemp` or
/// `touch` leave) is replaced, if it is still empty when the ledger is ready.
pub(super) fn create_file(
    path: &Path,
    currency: &Currency,
    options: &OpenOptions,
    replace_empty: bool,
) -> Result<bool> {
    let empty = |path: &Path| {
        fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file() && meta.len() == 0)
    };
    let replace = replace_empty && empty(path);
    if !replace && fs::symlink_metadata(path).is_ok() {
        return Ok(false);
    }
    // The new ledger would take up a `-wal` or `-shm` already there.
    super::files::check_before_creating(path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| not_a_ledger(path, "it names no file"))?
        .to_string_lossy()
        .into_owned();
    remove_abandoned_builds(dir, &file_name);
    let temp = dir.join(format!(
        ".{file_name}.{}.{}.creating",
        std::process::id(),
        clock::now_ms()
    ));
    let cleanup = RemoveOnDrop(&temp);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| io_error(e, "cannot create", path))?;
    build(&temp, currency).map_err(|fault| error_context(path, options).lift(fault))?;
    for side in ["-journal", "-wal"] {
        if fs::metadata(with_suffix(&temp, side)).is_ok_and(|meta| meta.len() > 0) {
            return Err(io_error(
                io::Error::other(format!("its {side} file was left behind")),
                "cannot finish creating",
                path,
            ));
        }
    }
    fs::File::open(&temp)
        .and_then(|file| file.sync_all())
        .map_err(|e| io_error(e, "cannot sync", path))?;
    let flags = if replace {
        if !empty(path) {
            return Ok(false);
        }
        RenameFlags::empty()
    } else {
        RenameFlags::NOREPLACE
    };
    match renameat_with(CWD, &temp, CWD, path, flags) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => return Ok(false),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            match fs::hard_link(&temp, path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(io_error(e, "cannot create", path)),
            }
        }
        Err(e) => return Err(io_error(io::Error::from(e), "cannot create", path)),
    }
    drop(cleanup);
    // The new name must survive power loss like the data behind it. The
    // ledger is in place by now, so a failure here is past the commit point.
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| {
            WalletError::at_commit(
                &format!("the new ledger '{}'", crate::text::shown_path(path)),
                format_args!("cannot sync its directory: {e}"),
                "`wallet verify` shows whether it is there",
            )
        })?;
    Ok(true)
}

/// The schema and the ledger's currency, committed into `temp` itself.
fn build(temp: &Path, currency: &Currency) -> super::error::SqlResult<()> {
    let mut conn = Connection::open(temp)?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "application_id", schema::APPLICATION_ID)?;
    schema::migrate(&mut conn)?;
    let now = clock::now_ms();
    conn.execute(
        "INSERT INTO ledger_meta (id, currency, scale, created_at) VALUES (1, ?1, ?2, ?3)",
        rusqlite::params![currency.code, currency.scale, now],
    )?;
    // The default currency is row 0; its figures live in `accounts`, so it
    // has no `balances` rows.
    conn.execute(
        "INSERT INTO currencies (id, code, scale, created_at) VALUES (0, ?1, ?2, ?3)",
        rusqlite::params![currency.code, currency.scale, now],
    )?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(WalletError::Io(anyhow::anyhow!(
            "the file system refused write-ahead logging (journal mode {mode})"
        ))
        .into());
    }
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// Removes what creations killed part-way left beside the ledger: their
/// private files, named after a process that no longer runs.
fn remove_abandoned_builds(dir: &Path, file_name: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{file_name}.");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = abandoned_by(&name, &prefix) else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let _ = fs::remove_file(entry.path());
    }
}

/// The process id in the name of a creation's private file
/// (`.NAME.PID.MS.creating`, or one of its `-journal`/`-wal`/`-shm`).
fn abandoned_by(name: &OsStr, prefix: &str) -> Option<u32> {
    let rest = name.to_str()?.strip_prefix(prefix)?;
    let mut parts = rest.splitn(3, '.');
    let pid = parts.next()?.parse().ok()?;
    let _ms: u64 = parts.next()?.parse().ok()?;
    let tail = parts.next()?;
    let known = [
        "creating",
        "creating-journal",
        "creating-wal",
        "creating-shm",
    ];
    known.contains(&tail).then_some(pid)
}

/// Removes the private file and its side files unless it was given its name.
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let _ = fs::remove_file(with_suffix(self.0, suffix));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_creation_s_own_files_are_recognised() {
        let prefix = ".wallet.db.";
        let pid = |name: &str| abandoned_by(OsStr::new(name), prefix);
        assert_eq!(pid(".wallet.db.123.1700000000000.creating"), Some(123));
        assert_eq!(pid(".wallet.db.123.1700000000000.creating-wal"), Some(123));
        assert_eq!(pid(".wallet.db.123.17.creating.bak"), None);
        assert_eq!(pid(".wallet.db.x.17.creating"), None);
        assert_eq!(pid(".other.db.123.17.creating"), None);
        assert_eq!(pid("wallet.db"), None);
    }
}
