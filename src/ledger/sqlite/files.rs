//! The files a ledger is made of, and which of them this process may use.
//!
//! A ledger is its file plus SQLite's `-wal` and `-shm` beside it. In a
//! directory other users can write to, any of them could plant those names
//! (a link that sends the log elsewhere, a file that blocks every command),
//! or a link at the ledger's own name that sends the owner's writes into
//! another ledger. So, on every open, with a few `lstat` calls:
//! - a ledger path that is a symbolic link is followed only if this user
//!   owns the link ([`ledger_path`]);
//! - a `-wal` or `-shm` that is a link, not a regular file, or owned by
//!   anyone but the ledger's owner or this user, is refused by name
//!   ([`check_side_files`]).
//!
//! A read must change no file: SQLite gives a `-wal` or `-shm` it opens
//! while empty the ledger file's mode (so a read of a `chmod 444` ledger
//! used to leave its log read-only for the owner's next write), and makes
//! any it needs as the user who reads. So a read uses the side files only
//! when the log holds commits the file lacks ([`Unshared`]); then a `-shm`
//! it has to make is made by [`made_shm`] with the ledger's owner and an
//! owner-writable mode, and removed on exit by [`MadeShm`]. SQLite leaves
//! the mode of a log that holds commits alone; only a checkpoint that
//! empties it between that look and SQLite's open could still let SQLite
//! give it the ledger's mode, and a ledger someone is writing is
//! owner-writable anyway.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, FlockOperation, RenameFlags, fcntl_lock, renameat_with};

use super::error::io_error;
use crate::error::{Result, WalletError};
use crate::text::shown_path;

/// `path` with `suffix` added to its file name (`wallet.db-wal`).
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The effective user: whose files this process makes.
fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The ledger's own path: `path`, or where the symbolic link(s) at `path`
/// lead, each link followed only if this user owns it. SQLite names the
/// side files after the file a link leads to, so every later look uses the
/// path returned. A missing `path` is returned as it is, for the caller to
/// report.
pub(super) fn ledger_path(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    // As many links as the kernel follows in one path before giving up.
    for _ in 0..40 {
        let meta = match fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if current != path => {
                return Err(io_error(
                    e,
                    "cannot follow the symbolic link (its target is missing)",
                    path,
                ));
            }
            Err(_) => return Ok(current),
        };
        if !meta.is_symlink() {
            return Ok(current);
        }
        if meta.uid() != me() {
            return Err(WalletError::Io(anyhow::anyhow!(
                "refusing the ledger path '{}': it is a symbolic link owned by another user (uid {}), and a ledger path is followed only through links of the user who runs the command; pass the ledger's own path with --db, or replace the link with one of your own",
                shown_path(&current),
                meta.uid()
            )));
        }
        let target =
            fs::read_link(&current).map_err(|e| io_error(e, "cannot read the link", &current))?;
        current = match current.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
    }
    Err(io_error(
        io::Error::other("too many levels of symbolic links"),
        "cannot follow",
        path,
    ))
}

/// Refuses a `-wal` or `-shm` beside the ledger that it cannot be sure is
/// the ledger's own: a symbolic link (SQLite would follow a `-wal` link and
/// write the log wherever it leads), anything but a regular file, or a file
/// of a user other than the ledger's owner and this user. Such a
/// file is left as it is; the error names it.
///
/// A ledger its group may write (mode `g+w`) is shared by that group, and
/// a writer of it makes side files as itself: a file in the ledger's group
/// is taken as theirs, since only a member could have given it that group.
pub(super) fn check_side_files(path: &Path, ledger: &fs::Metadata) -> Result<()> {
    let group = (ledger.mode() & 0o020 != 0).then_some(ledger.gid());
    refuse_foreign(path, ledger.uid(), group)
}

/// [`check_side_files`] for a ledger about to be made at `path` by this user.
pub(super) fn check_before_creating(path: &Path) -> Result<()> {
    refuse_foreign(path, me(), None)
}

fn refuse_foreign(path: &Path, owner: u32, group: Option<u32>) -> Result<()> {
    for suffix in ["-wal", "-shm"] {
        let side = with_suffix(path, suffix);
        let Ok(meta) = fs::symlink_metadata(&side) else {
            continue;
        };
        let why = if meta.is_symlink() {
            "it is a symbolic link".to_string()
        } else if !meta.is_file() {
            "it is not a regular file".to_string()
        } else if meta.uid() != owner && meta.uid() != me() && group != Some(meta.gid()) {
            format!(
                "it belongs to another user (uid {}), not to the ledger's owner (uid {owner}) or to this user",
                meta.uid()
            )
        } else {
            continue;
        };
        return Err(WalletError::Io(anyhow::anyhow!(
            "refusing '{}' beside the ledger '{}': {why}; a {suffix} file must be a regular file of the ledger's owner. If no wallet process is using the ledger, have its owner or root remove it, and keep the ledger in a directory other users cannot write to",
            shown_path(&side),
            shown_path(path)
        )));
    }
    Ok(())
}

/// The error for a read that cannot use the ledger's side files as this
/// user: what they are, and the two ways to read the ledger anyway.
pub(super) fn side_files_unusable(path: &Path) -> WalletError {
    let shown = shown_path(path);
    WalletError::Io(anyhow::anyhow!(
        "cannot read the ledger '{shown}' as this user: unable to open database file: reading it needs '{shown}-wal' and '{shown}-shm' readable by this user; a missing '{shown}-shm' is made only by the ledger's owner or a user who may write the ledger. Either the ledger's owner makes the side files readable (`chmod a+r '{shown}-wal' '{shown}-shm'`), or read a copy: copy '{shown}' (with '{shown}-wal' if it is not empty) into a directory of your own and pass the copy with --db"
    ))
}

/// What a `-wal` or `-shm` was when looked at: none, or its identity.
type Identity = Option<(u64, u64)>;

/// A `-shm` when looked at: its identity and its index header (empty if
/// it could not be read).
type ShmStamp = Option<((u64, u64), Vec<u8>)>;

fn identity(meta: &fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// A ledger whose file holds every commit, as found: no `-wal`, or an
/// empty one (a log is emptied only after a checkpoint has put all of it
/// in the file), with a `-shm`, if any, this user can read (its header is
/// what tells a writer's commits apart within one tick of the file's
/// time). Such a ledger is read as the file stands (SQLite's
/// `immutable`), with no side file opened, and each read is checked
/// afterwards against a writer that may have started meanwhile: a writer
/// fills the log before it touches the file, and a wallet writer leaves the
/// log in place; one that also moved its log into the file and emptied it
/// has changed the file's time and the `-shm`'s header (each commit and
/// each restart of the log writes it), which is part of the stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unshared {
    file: (u64, u64, u64, (i64, i64)),
    wal: Identity,
    shm: ShmStamp,
}

impl Unshared {
    pub(super) fn of(path: &Path) -> Option<Self> {
        let sides = || -> Option<(Identity, ShmStamp)> {
            let wal = match fs::symlink_metadata(with_suffix(path, "-wal")) {
                Ok(meta) if meta.len() > 0 => return None,
                Ok(meta) => Some(identity(&meta)),
                Err(_) => None,
            };
            let shm_path = with_suffix(path, "-shm");
            let shm = match fs::symlink_metadata(&shm_path) {
                Err(_) => None,
                Ok(meta) => {
                    // Both copies of the index header, written on each
                    // commit; readers only touch the bytes after them.
                    let mut header = vec![0u8; 96];
                    let read = super::kept_files::read_at(&shm_path, &mut header, 0);
                    match read {
                        Ok(n) => header.truncate(n),
                        // Without a log, a writer that starts makes one.
                        Err(_) if wal.is_none() => header.clear(),
                        Err(_) => return None,
                    }
                    Some((identity(&meta), header))
                }
            };
            Some((wal, shm))
        };
        let (wal, shm) = sides()?;
        let meta = fs::metadata(path).ok()?;
        let stamp = Self {
            file: (
                meta.dev(),
                meta.ino(),
                meta.size(),
                (meta.mtime(), meta.mtime_nsec()),
            ),
            wal,
            shm,
        };
        // Looked at again: a side file that appeared or changed in between counts.
        (sides()? == (stamp.wal, stamp.shm.clone())).then_some(stamp)
    }
}

/// A `-shm` this process made for a read, removed when the read's
/// connection has closed (it was not there before), unless another
/// process has started to use it meanwhile.
#[derive(Debug)]
pub(super) struct MadeShm {
    ledger: PathBuf,
    shm: PathBuf,
    identity: (u64, u64),
}

impl Drop for MadeShm {
    /// SQLite's own rule for removing a `-shm`: only while holding an
    /// exclusive lock on the ledger file, since every connection holds a
    /// shared one before it opens the `-shm`, and keeps it. That lock needs
    /// the file open for writing. A ledger that no one can write (no write
    /// bit) has only readers, which never write through a `-shm`, so there
    /// a lock on the `-shm` itself, which every attached connection holds
    /// in part, is enough. Otherwise the file is left: it has the ledger's
    /// owner and an owner-writable mode, so it holds up no one.
    ///
    /// Runs after the connection has closed (see the field order in
    /// `SqliteStore`): the lock's file is closed here, and closing a file
    /// drops every lock this process holds on it. These are process-wide
    /// POSIX locks, so this relies on the process holding no other
    /// connection to the ledger (a read makes a `-shm` only in a process
    /// that opened the ledger once); a second one's locks would neither
    /// stop the removal nor survive the close.
    fn drop(&mut self) {
        let unlocked =
            |file: &fs::File| fcntl_lock(file, FlockOperation::NonBlockingLockExclusive).is_ok();
        let ours =
            || fs::symlink_metadata(&self.shm).is_ok_and(|meta| identity(&meta) == self.identity);
        let lock = match fs::OpenOptions::new().write(true).open(&self.ledger) {
            Ok(file) => file,
            Err(_) => {
                let unwritable = fs::metadata(&self.ledger)
                    .is_ok_and(|meta| meta.permissions().mode() & 0o222 == 0);
                match fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&self.shm)
                {
                    Ok(file) if unwritable => file,
                    _ => return,
                }
            }
        };
        if unlocked(&lock) && ours() {
            let _ = fs::remove_file(&self.shm);
        }
    }
}

/// Makes the `-shm` a read needs when the log holds commits and no `-shm`
/// is there: made whole under a private name (with the ledger's owner, the
/// ledger's mode plus owner read and write, and SQLite's 3-byte "not yet
/// set up" size, so SQLite never sees it empty and never changes its mode)
/// and given its name in one step. `None` if a `-shm` is there already.
/// A user who is neither root nor the ledger's owner could only make one
/// that is theirs, which would stop the owner's writes: refused, with the
/// remedies. Private files a killed process leaves are removed by the next
/// creation of a ledger here (`create::remove_abandoned_builds`).
pub(super) fn made_shm(path: &Path) -> Result<Option<MadeShm>> {
    let shm = with_suffix(path, "-shm");
    if fs::symlink_metadata(&shm).is_ok() {
        return Ok(None);
    }
    let ledger = fs::metadata(path).map_err(|e| io_error(e, "cannot read", path))?;
    let me = me();
    if me != 0 && me != ledger.uid() {
        // A user who may write the ledger (a member of a group it is
        // shared with) makes side files as every writer of it does.
        if rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_ok() {
            return Ok(None);
        }
        return Err(side_files_unusable(path));
    }
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(
        ".{name}.{}.{}.creating-shm",
        std::process::id(),
        crate::ledger::clock::now_ms()
    ));
    let made = (|| -> io::Result<MadeShm> {
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&temp)?;
        file.set_len(3)?;
        if me == 0 {
            std::os::unix::fs::fchown(&file, Some(ledger.uid()), Some(ledger.gid()))?;
        }
        // Set after the owner: the umask must not take bits away.
        let mode = (ledger.permissions().mode() & 0o666) | 0o600;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        let identity = identity(&file.metadata()?);
        match renameat_with(CWD, &temp, CWD, &shm, RenameFlags::NOREPLACE) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                fs::hard_link(&temp, &shm)?;
                fs::remove_file(&temp)?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(MadeShm {
            ledger: path.to_path_buf(),
            shm: shm.clone(),
            identity,
        })
    })();
    match made {
        Ok(made) => Ok(Some(made)),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            match e.kind() {
                // Another process made one meanwhile; SQLite uses that.
                io::ErrorKind::AlreadyExists => Ok(None),
                io::ErrorKind::PermissionDenied => Err(side_files_unusable(path)),
                _ => Err(io_error(e, "cannot make the -shm file of", path)),
            }
        }
    }
}
