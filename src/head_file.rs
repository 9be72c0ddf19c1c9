//! A file of the hash chain's heads kept outside the ledger: `verify
//! --record-head` appends today's head as one JSON line, and `verify
//! --heads` checks that the chain still extends every head recorded there.
//!
//! The ledger alone cannot prove that its newest links were not deleted and
//! sealed again over edited books: whoever can write the ledger can write
//! its chain. A head kept elsewhere can.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::error::{Result, WalletError};
use crate::ledger::chain::{self, ChainState, Head};
use crate::ledger::{Check, Findings, Problem};
use crate::output::plural;
use crate::text::shown_path;

/// Why a heads file is read: named by `--heads` to check the chain
/// against, which an empty file cannot do; or the file `--record-head`
/// appends to, whose heads the chain must still extend before another is
/// added, and which may be empty yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Check,
    Record,
}

/// The name of `verify`'s check of the recorded heads.
pub(crate) const HEADS_CHECK: &str = "heads";

/// One line as `--record-head` writes it: readable, `grep`-able, and one
/// `jq` document.
#[derive(Serialize)]
struct HeadLine {
    hash: String,
    link: i64,
    last_tx: i64,
    recorded_at: String,
}

/// What `--heads` needs of a line; the other fields, and any a later
/// version adds, are for people.
#[derive(Deserialize)]
struct HeadRead {
    hash: String,
    link: i64,
}

/// A head read back from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordedHead {
    /// Its line in the file, from 1.
    pub line: u64,
    /// 64 lower-case hex digits.
    pub hash: String,
    /// The link it is the hash of; unknown for a line that is only a hash.
    pub link: Option<i64>,
}

/// The heads files a `verify` reads, each with why and what it holds:
/// the one `--heads` names, and the one `--record-head` appends to when
/// it is another and exists. The latter is checked as `--heads` checks: a
/// chain that no longer extends a head recorded there is an alarm, not a
/// reason to add another. Read before the ledger is opened: a file that
/// cannot be read, or a malformed line, is the caller's to fix.
pub(crate) fn read_to_check(
    heads: Option<&Path>,
    record: Option<&Path>,
) -> Result<Vec<(PathBuf, Purpose, Vec<RecordedHead>)>> {
    let mut files = Vec::new();
    if let Some(path) = heads {
        files.push((path, Purpose::Check));
    }
    if let Some(path) = record.filter(|path| Some(*path) != heads && path.exists()) {
        files.push((path, Purpose::Record));
    }
    files
        .into_iter()
        .map(|(path, purpose)| Ok((path.to_path_buf(), purpose, read(path)?)))
        .collect()
}

/// Reads every head recorded in `path`; blank lines are skipped. A missing
/// or unreadable file is an I/O error, a malformed line `invalid_head`.
pub(crate) fn read(path: &Path) -> Result<Vec<RecordedHead>> {
    let bytes = fs::read(path)
        .with_context(|| format!("cannot read the heads file '{}'", shown_path(path)))
        .map_err(WalletError::Io)?;
    parse(path, &String::from_utf8_lossy(&bytes))
}

fn parse(path: &Path, text: &str) -> Result<Vec<RecordedHead>> {
    let mut heads = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index as u64 + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let invalid = |why: String| WalletError::InvalidHead {
            file: shown_path(path),
            line: line_no,
            why,
        };
        let (hash, link) = if line.starts_with('{') {
            let head: HeadRead = serde_json::from_str(line).map_err(|e| {
                invalid(format!(
                    "not a head `verify --record-head` writes ({e}): {}",
                    crate::text::echo(line)
                ))
            })?;
            if head.link < 1 {
                return Err(invalid(format!(
                    "link {} is not a link number (they start at 1)",
                    head.link
                )));
            }
            (head.hash, Some(head.link))
        } else {
            (line.to_string(), None)
        };
        let hash = chain::from_hex(&hash)
            .map(|h| chain::hex(&h))
            .ok_or_else(|| {
                invalid(format!(
                    "'{}' is not a head: a head is 64 hex digits, or a JSON line `verify --record-head` writes",
                    crate::text::echo(&hash)
                ))
            })?;
        heads.push(RecordedHead {
            line: line_no,
            hash,
            link,
        });
    }
    Ok(heads)
}

/// `verify`'s check that the chain today extends every recorded head: a
/// head with a link number must be that link's recomputed hash; one given
/// as a bare hash, any good link's. Each head that is not is a problem
/// naming its line, link and hash, and why.
pub(crate) fn check(
    heads: &[RecordedHead],
    state: &ChainState,
    path: &Path,
    kept_for: Purpose,
) -> Check {
    let file = shown_path(path);
    let mut findings = Findings::default();
    if heads.is_empty() && kept_for == Purpose::Check {
        // A file emptied, or the wrong one named, must not pass as proof.
        findings.push(Problem::about_file(format!(
            "no head is recorded in {file}: it holds nothing to check the chain against (emptied, or not the heads file?)"
        )));
    }
    for head in heads {
        if let Some(why) = not_extended(head, state) {
            let link = head
                .link
                .map_or_else(String::new, |link| format!(" of link {link}"));
            findings.push(Problem::about_file(format!(
                "line {} of {file}: head{link} {} is not in the chain: {why}",
                head.line, head.hash
            )));
        }
    }
    let n = heads.len() as u64;
    let detail = match (n, findings.is_empty()) {
        (0, _) => format!("no heads recorded in {file}"),
        (n, true) => format!(
            "{n} head{} recorded in {file}, each still a link of the chain",
            plural(n)
        ),
        (n, false) => format!("{n} head{} recorded in {file} checked", plural(n)),
    };
    findings.into_check(HEADS_CHECK, detail)
}

/// Why the chain does not extend `head`, or `None` when it does.
fn not_extended(head: &RecordedHead, state: &ChainState) -> Option<String> {
    let good = &state.good_hashes;
    let Some(link) = head.link else {
        return (!good.contains(&head.hash)).then(|| {
            "no link of the chain has that hash: the chain is shorter, what it sealed was rewritten, or the head is of another ledger".to_string()
        });
    };
    let index = usize::try_from(link - 1).ok()?;
    if let Some(hash) = good.get(index) {
        return (*hash != head.hash).then(|| {
            format!("link {link} hashes to {hash} now: what it sealed was rewritten, or the head is of another ledger")
        });
    }
    if link > state.links {
        return Some(format!(
            "link {link} is missing: the chain is shorter ({} link{})",
            state.links,
            plural(state.links.unsigned_abs())
        ));
    }
    Some(format!(
        "link {link} no longer matches what it seals (the chain check says why)"
    ))
}

/// What `--record-head` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// The head was appended as a new last line.
    Appended,
    /// The file's last head is this one already: nothing appended.
    SameAsLast,
    /// Nothing is sealed yet: no head to record, nothing appended.
    NothingSealed,
}

impl Recorded {
    /// As the JSON report names it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Appended => "appended",
            Self::SameAsLast => "same_as_last",
            Self::NothingSealed => "nothing_sealed",
        }
    }
}

/// Appends `head` to `path` as one line (creating the file), unless it is
/// the file's last head already, and makes the line durable before saying so.
pub(crate) fn record(path: &Path, head: Option<&Head>, now_ms: i64) -> Result<Recorded> {
    let Some(head) = head else {
        return Ok(Recorded::NothingSealed);
    };
    let io_error = |what: &str, e: io::Error| {
        WalletError::Io(anyhow::Error::new(e).context(format!(
            "cannot {what} the heads file '{}'",
            shown_path(path)
        )))
    };
    let existing = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_error("read", e)),
    };
    // Every line is read, so a file that `--heads` would refuse is refused now.
    if parse(path, &existing)?
        .last()
        .is_some_and(|last| last.hash == head.hash)
    {
        return Ok(Recorded::SameAsLast);
    }
    let line = HeadLine {
        hash: head.hash.clone(),
        link: head.seq,
        last_tx: head.last_tx,
        recorded_at: crate::time::rfc3339(now_ms),
    };
    // A last line left without its newline (an edit by hand) keeps its own line.
    let mut text = if existing.is_empty() || existing.ends_with('\n') {
        String::new()
    } else {
        "\n".to_string()
    };
    text.push_str(&serde_json::to_string(&line).map_err(WalletError::internal)?);
    text.push('\n');
    let (mut file, created) = open_to_append(path).map_err(|e| io_error("open", e))?;
    // One write of the whole line: with O_APPEND, two recorders at once
    // each add a whole line, never one inside the other.
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", e))?;
    if created {
        sync_parent(path).map_err(|e| io_error("create", e))?;
    }
    Ok(Recorded::Appended)
}

/// The file opened to append, and whether this call created it (whose new
/// directory entry must be made durable too).
fn open_to_append(path: &Path) -> io::Result<(File, bool)> {
    match OpenOptions::new().append(true).create_new(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Ok((OpenOptions::new().append(true).open(path)?, false))
        }
        Err(e) => Err(e),
    }
}

/// A new file survives a power loss only once its directory does.
fn sync_parent(path: &Path) -> io::Result<()> {
    if cfg!(unix) {
        let parent = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(hashes: &[&str], links: i64) -> ChainState {
        ChainState {
            links,
            good_hashes: hashes.iter().map(|h| h.to_string()).collect(),
            ..ChainState::default()
        }
    }

    fn hash(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn heads(text: &str) -> Result<Vec<RecordedHead>> {
        parse(Path::new("heads"), text)
    }

    #[test]
    fn lines_are_json_heads_or_bare_hashes_and_anything_else_names_its_line() {
        let a = hash('a');
        let text = format!(
            "{{\"hash\":\"{a}\",\"link\":2,\"last_tx\":9,\"recorded_at\":\"x\"}}\n\n{}\n",
            hash('B')
        );
        let read = heads(&text).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].link, Some(2));
        assert_eq!((read[1].line, read[1].hash.clone()), (3, hash('b')));
        for bad in [
            "xyz",
            "{\"hash\":1}",
            "{\"hash\":\"aa\",\"link\":1,\"last_tx\":1,\"recorded_at\":\"\"}",
        ] {
            let err = heads(&format!("{a}\n{bad}\n")).unwrap_err();
            assert_eq!(err.code(), "invalid_head");
            assert!(err.to_string().contains("line 2"), "{err}");
        }
    }

    #[test]
    fn a_head_must_be_its_link_in_the_chain() {
        let (a, b, c) = (hash('a'), hash('b'), hash('c'));
        let chain = state(&[&a, &b], 2);
        let at = |link, hash: &str| RecordedHead {
            line: 1,
            hash: hash.to_string(),
            link,
        };
        assert_eq!(not_extended(&at(Some(2), &b), &chain), None);
        assert_eq!(not_extended(&at(None, &a), &chain), None);
        assert!(
            not_extended(&at(Some(1), &b), &chain)
                .unwrap()
                .contains("rewritten")
        );
        assert!(
            not_extended(&at(Some(3), &c), &chain)
                .unwrap()
                .contains("missing")
        );
        assert!(not_extended(&at(None, &c), &chain).is_some());
        let broken = state(&[&a], 2);
        assert!(
            not_extended(&at(Some(2), &b), &broken)
                .unwrap()
                .contains("no longer matches")
        );
    }

    #[test]
    fn a_recorded_head_is_a_whole_line_of_its_own_and_a_repeat_adds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heads");
        let head = |c| Head {
            hash: hash(c),
            seq: 1,
            last_tx: 2,
        };
        assert_eq!(record(&path, None, 0).unwrap(), Recorded::NothingSealed);
        assert!(!path.exists());
        assert_eq!(
            record(&path, Some(&head('a')), 0).unwrap(),
            Recorded::Appended
        );
        assert_eq!(
            record(&path, Some(&head('a')), 0).unwrap(),
            Recorded::SameAsLast
        );
        // A line added by hand without its newline.
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str(&hash('b'));
        fs::write(&path, text).unwrap();
        assert_eq!(
            record(&path, Some(&head('c')), 0).unwrap(),
            Recorded::Appended
        );
        let read = read(&path).unwrap();
        let hashes: Vec<&str> = read.iter().map(|h| h.hash.as_str()).collect();
        assert_eq!(hashes, [hash('a'), hash('b'), hash('c')]);
        assert_eq!(read[2].link, Some(1));
    }
}
