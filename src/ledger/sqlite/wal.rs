//! The write-ahead log beside a ledger, read as SQLite reads it when it
//! recovers (its file format's "WAL file format"), to refuse a log that
//! cannot be the ledger's own before SQLite would replay it into the file.
//!
//! SQLite replays only the frames up to the last commit frame whose
//! checksum chain, from the log's header on, is intact; a frame past it
//! (a header written without its page, or a page without its header, as a
//! power cut before the commit's sync leaves them) is dropped. So only
//! those frames are judged here: a log that SQLite would not replay is no
//! danger, whatever its tail holds.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use super::error::io_error;
use super::schema;
use crate::error::{Result, WalletError};

const LOG_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

/// Refuses a write-ahead log beside the ledger that cannot be the ledger's
/// own: one whose replayed frames were written for pages of another size,
/// or hold an image of the first page that is not a wallet ledger's
/// (another program's database). A log of another wallet ledger with the
/// same page size cannot be told apart this way.
///
/// A log that a live writer is appending to, or starting again, may look
/// foreign for a moment; so one that does is looked at again a moment
/// later, and refused only if it still does and has not changed.
pub(super) fn check_log(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let log_path = super::files::with_suffix(path, "-wal");
    let stamp = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
    };
    let before = stamp(&log_path);
    let Err(refused) = scan_log(path, &log_path) else {
        return Ok(());
    };
    std::thread::sleep(Duration::from_millis(50));
    match scan_log(path, &log_path) {
        Err(_) if stamp(&log_path) == before => Err(refused),
        _ => Ok(()),
    }
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// What the log's header says, if SQLite would read the log at all: a
/// header with another magic, an impossible page size or a checksum that
/// does not match makes SQLite ignore every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LogHeader {
    /// The checksums read the log as big-endian words (magic `0x377f0683`),
    /// else as little-endian ones (`0x377f0682`).
    big_endian: bool,
    page_size: usize,
    salts: [u8; 8],
    checksum: (u32, u32),
}

impl LogHeader {
    fn parse(bytes: &[u8; LOG_HEADER]) -> Option<Self> {
        let magic = be32(bytes, 0);
        if magic & !1 != 0x377f_0682 {
            return None;
        }
        let big_endian = magic & 1 == 1;
        let page_size = be32(bytes, 8);
        if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
            return None;
        }
        let checksum = (be32(bytes, 24), be32(bytes, 28));
        if checksum != chain(big_endian, &bytes[..24], (0, 0)) {
            return None;
        }
        let mut salts = [0u8; 8];
        salts.copy_from_slice(&bytes[16..24]);
        Some(Self {
            big_endian,
            page_size: page_size as usize,
            salts,
            checksum,
        })
    }

    fn frame_size(&self) -> u64 {
        (FRAME_HEADER + self.page_size) as u64
    }

    /// Where frame `index` (from 0) starts.
    fn frame_offset(&self, index: u64) -> u64 {
        LOG_HEADER as u64 + index * self.frame_size()
    }

    /// Whether a frame header is of this log's current generation and names
    /// a page: SQLite's first tests of a frame, before its checksum.
    fn names_a_page(&self, frame_header: &[u8]) -> bool {
        frame_header[8..16] == self.salts && be32(frame_header, 0) != 0
    }
}

/// SQLite's log checksum: `bytes` as pairs of 32-bit words in the log's
/// byte order, folded into the running sums `s`.
fn chain(big_endian: bool, bytes: &[u8], s: (u32, u32)) -> (u32, u32) {
    if big_endian {
        fold(bytes, s, u32::from_be_bytes)
    } else {
        fold(bytes, s, u32::from_le_bytes)
    }
}

#[inline(always)]
fn fold(bytes: &[u8], (mut s0, mut s1): (u32, u32), word: fn([u8; 4]) -> u32) -> (u32, u32) {
    for pair in bytes.chunks_exact(8) {
        let first = word([pair[0], pair[1], pair[2], pair[3]]);
        let second = word([pair[4], pair[5], pair[6], pair[7]]);
        s0 = s0.wrapping_add(first).wrapping_add(s1);
        s1 = s1.wrapping_add(second).wrapping_add(s0);
    }
    (s0, s1)
}

/// A frame that would make the log foreign if SQLite replays it, and why.
struct Suspect {
    frame: u64,
    why: String,
}

fn scan_log(path: &Path, log_path: &Path) -> Result<()> {
    let Ok(log) = File::open(log_path) else {
        return Ok(());
    };
    let mut header = [0u8; LOG_HEADER];
    if log.read_exact_at(&mut header, 0).is_err() {
        return Ok(()); // empty or shorter than a header: nothing to replay
    }
    let Some(header) = LogHeader::parse(&header) else {
        return Ok(()); // SQLite ignores the whole log
    };
    let Some(suspect) = first_suspect(path, &log, &header)? else {
        return Ok(());
    };
    if suspect.frame < replayed_frames(&log, &header, suspect.frame + 1) {
        return Err(WalletError::Integrity(format!(
            "the write-ahead log '{}' beside the ledger is not its own ({}); move it away if the ledger is not in use, then run `wallet verify`",
            crate::text::shown_path(log_path),
            suspect.why
        )));
    }
    Ok(())
}

/// The first frame of the log's current generation that cannot be the
/// ledger's, found as cheaply as possible: a frame header and, for page 1,
/// the few bytes that say whose database it is. Most logs have none, and
/// then no checksum is computed at all.
fn first_suspect(path: &Path, log: &File, header: &LogHeader) -> Result<Option<Suspect>> {
    let mut db_header = [0u8; 18];
    match super::kept_files::read_at(path, &mut db_header, 0) {
        Ok(n) if n == db_header.len() => {}
        Ok(_) => {
            let short = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
            return Err(io_error(short, "cannot read", path));
        }
        Err(e) => return Err(io_error(e, "cannot read", path)),
    }
    let db_page_size = match u16::from_be_bytes([db_header[16], db_header[17]]) {
        1 => 65_536,
        size => usize::from(size),
    };
    if header.page_size != db_page_size {
        return Ok(Some(Suspect {
            frame: 0,
            why: format!(
                "its pages are {} bytes, the ledger's {db_page_size}",
                header.page_size
            ),
        }));
    }
    let mut frame_header = [0u8; FRAME_HEADER];
    let mut page_start = [0u8; 72];
    let mut frame = 0;
    while log
        .read_exact_at(&mut frame_header, header.frame_offset(frame))
        .is_ok()
        && header.names_a_page(&frame_header)
    {
        if be32(&frame_header, 0) == 1 {
            let at = header.frame_offset(frame) + FRAME_HEADER as u64;
            if log.read_exact_at(&mut page_start, at).is_err() {
                break;
            }
            if !schema::header_marks(&page_start).1 {
                return Ok(Some(Suspect {
                    frame,
                    why: "its first page is another program's database".into(),
                }));
            }
        }
        frame += 1;
    }
    Ok(None)
}

/// How many frames from the start SQLite would replay: those up to the
/// last commit frame whose checksum chain is intact. It stops counting
/// once it has found `enough`.
fn replayed_frames(log: &File, header: &LogHeader, enough: u64) -> u64 {
    let mut frame = vec![0u8; FRAME_HEADER + header.page_size];
    let mut sums = header.checksum;
    let mut replayed = 0;
    let mut index = 0;
    while replayed < enough
        && log
            .read_exact_at(&mut frame, header.frame_offset(index))
            .is_ok()
        && header.names_a_page(&frame)
    {
        sums = chain(header.big_endian, &frame[..8], sums);
        sums = chain(header.big_endian, &frame[FRAME_HEADER..], sums);
        if sums != (be32(&frame, 16), be32(&frame, 20)) {
            break;
        }
        index += 1;
        // A commit frame records the database's size in pages after it.
        if be32(&frame, 4) != 0 {
            replayed = index;
        }
    }
    replayed
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A log SQLite wrote (and kept: no checkpoint), and its database.
    fn sqlite_log(statements: &str) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        sqlite_log_of(4096, statements)
    }

    fn sqlite_log_of(page_size: u32, statements: &str) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "page_size", page_size).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch(statements).unwrap();
        let log = std::fs::read(dir.path().join("other.db-wal")).unwrap();
        drop(conn);
        (dir, path, log)
    }

    fn header_of(log: &[u8]) -> LogHeader {
        LogHeader::parse(log[..LOG_HEADER].try_into().unwrap()).expect("a header SQLite reads")
    }

    fn replayed(log: &[u8]) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, log).unwrap();
        let header = header_of(log);
        replayed_frames(&File::open(&path).unwrap(), &header, u64::MAX)
    }

    const TWO_COMMITS: &str = "CREATE TABLE t (x TEXT);
         INSERT INTO t VALUES (zeroblob(100));
         INSERT INTO t VALUES (zeroblob(5000));";

    #[test]
    fn every_frame_of_a_log_sqlite_committed_is_replayed() {
        let (_dir, _, log) = sqlite_log(TWO_COMMITS);
        let header = header_of(&log);
        let frames = (log.len() - LOG_HEADER) as u64 / header.frame_size();
        assert!(frames >= 3, "{frames}");
        assert_eq!(replayed(&log), frames);
    }

    #[test]
    fn a_frame_whose_page_was_not_written_ends_the_replay_at_the_commit_before() {
        let (_dir, _, mut log) = sqlite_log(TWO_COMMITS);
        let header = header_of(&log);
        let frames = (log.len() - LOG_HEADER) as u64 / header.frame_size();
        let commits: Vec<u64> = (0..frames)
            .filter(|&i| be32(&log, header.frame_offset(i) as usize + 4) != 0)
            .map(|i| i + 1)
            .collect();
        assert!(commits.len() >= 3, "{commits:?}");
        let last = commits[commits.len() - 1];
        let before = commits[commits.len() - 2];
        // Zero the page of the last transaction's first frame.
        let page = header.frame_offset(before) as usize + FRAME_HEADER;
        log[page..page + header.page_size].fill(0);
        assert_eq!(replayed(&log), before);
        // A torn page (one sector of it) ends it just the same.
        let (_dir, _, mut log) = sqlite_log(TWO_COMMITS);
        let page = header.frame_offset(last - 1) as usize + FRAME_HEADER;
        log[page + 512..page + 1024].fill(0xA5);
        assert_eq!(replayed(&log), before);
    }

    #[test]
    fn a_header_whose_checksum_fails_is_ignored_whole() {
        let (_dir, _, mut log) = sqlite_log(TWO_COMMITS);
        log[12] ^= 1; // the checkpoint sequence, under the header checksum
        assert_eq!(
            LogHeader::parse(log[..LOG_HEADER].try_into().unwrap()),
            None
        );
    }

    /// The same log rewritten with big-endian checksums (magic
    /// `0x377f0683`), as SQLite on a big-endian machine writes it.
    #[test]
    fn big_endian_checksums_are_read_as_such() {
        let (_dir, _, mut log) = sqlite_log(TWO_COMMITS);
        let little = header_of(&log);
        assert!(!little.big_endian, "this machine writes little-endian sums");
        log[3] = 0x83;
        let sums = chain(true, &log[..24], (0, 0));
        log[24..28].copy_from_slice(&sums.0.to_be_bytes());
        log[28..32].copy_from_slice(&sums.1.to_be_bytes());
        let header = header_of(&log);
        assert!(header.big_endian);
        let frames = (log.len() - LOG_HEADER) as u64 / header.frame_size();
        let mut sums = header.checksum;
        for i in 0..frames {
            let at = header.frame_offset(i) as usize;
            sums = chain(true, &log[at..at + 8], sums);
            sums = chain(
                true,
                &log[at + FRAME_HEADER..at + FRAME_HEADER + header.page_size],
                sums,
            );
            log[at + 16..at + 20].copy_from_slice(&sums.0.to_be_bytes());
            log[at + 20..at + 24].copy_from_slice(&sums.1.to_be_bytes());
        }
        assert_eq!(replayed(&log), frames);
        // Read with the wrong byte order, no frame would be.
        let mut wrong = log.clone();
        wrong[3] = 0x82;
        let sums = chain(false, &wrong[..24], (0, 0));
        wrong[24..28].copy_from_slice(&sums.0.to_be_bytes());
        wrong[28..32].copy_from_slice(&sums.1.to_be_bytes());
        assert_eq!(replayed(&wrong), 0);
    }

    #[test]
    fn a_foreign_first_page_is_refused_only_if_sqlite_would_replay_it() {
        let (dir, db, mut log) = sqlite_log(TWO_COMMITS);
        let log_path = dir.path().join("copy-wal");
        // Judged against its own database the page sizes agree: the image
        // of a first page that is not a wallet ledger's makes it foreign.
        assert_eq!(header_of(&log).page_size, 4096);
        std::fs::write(&log_path, &log).unwrap();
        let refused = scan_log(&db, &log_path).unwrap_err();
        assert!(refused.to_string().contains("another program"), "{refused}");
        // With the chain broken in the first frame, nothing is replayed.
        log[LOG_HEADER + FRAME_HEADER + 100] ^= 0xFF;
        std::fs::write(&log_path, &log).unwrap();
        scan_log(&db, &log_path).unwrap();
    }

    #[test]
    fn pages_of_another_size_are_refused_only_if_sqlite_would_replay_them() {
        let (dir, _, mut log) = sqlite_log_of(8192, TWO_COMMITS);
        let (_ledger_dir, ledger, _) = sqlite_log(TWO_COMMITS);
        let log_path = dir.path().join("copy-wal");
        std::fs::write(&log_path, &log).unwrap();
        let refused = scan_log(&ledger, &log_path).unwrap_err();
        assert!(refused.to_string().contains("8192 bytes"), "{refused}");
        log[LOG_HEADER + FRAME_HEADER + 100] ^= 0xFF;
        std::fs::write(&log_path, &log).unwrap();
        scan_log(&ledger, &log_path).unwrap();
    }
}
