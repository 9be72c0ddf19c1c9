//! Descriptors of a ledger's files that this process reads beside SQLite,
//! kept open for the life of the process.
//!
//! POSIX advisory locks belong to a process and a file, not to a
//! descriptor: closing any descriptor of a file drops every lock the
//! process holds on it, SQLite's own included (SQLite keeps its own
//! descriptors open for that reason). A process that opens a ledger while
//! it already has it open (a watching `settle` counts what is left on a
//! first connection while its workers open their own) would otherwise drop
//! the first connection's shared lock when it reads the header, and another
//! program closing the ledger could then checkpoint and delete the log
//! under it. So a file read here is opened once, kept, and read again
//! through the same descriptor: at most one per file this process reads.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The kept descriptors, by device and inode.
static KEPT: OnceLock<Mutex<HashMap<(u64, u64), File>>> = OnceLock::new();

/// Reads up to `buf.len()` bytes of the file at `path` from `offset`
/// through a descriptor kept for the life of the process; returns how many
/// were read (fewer only at the end of the file).
pub(super) fn read_at(path: &Path, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let meta = fs::metadata(path)?;
    let key = (meta.dev(), meta.ino());
    let mut kept = KEPT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !kept.contains_key(&key) {
        let file = File::open(path)?;
        // Kept under the file it opened, which a rename between the two
        // looks may have made another: never closed either way.
        let opened = file.metadata()?;
        kept.insert((opened.dev(), opened.ino()), file);
    }
    let Some(file) = kept.get(&key) else {
        return Err(io::Error::other(
            "the file was replaced while it was being opened",
        ));
    };
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
