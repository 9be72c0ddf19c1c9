//! The result stream of `transfer --batch`: a line of JSON per input line,
//! printed only once the transaction holding it has committed.
//!
//! A chunk's lines are kept in memory until its commit, and with `--atomic`
//! the good lines wait in an unlinked temporary file until the single
//! commit at the end, so memory stays flat for any input length. A bad
//! line's error is true whatever happens later, so under `--atomic` it is
//! printed at once; if any line is bad, nothing is committed and the bad
//! lines are all that is printed.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::{Report, plural};
use crate::error::{Result, WalletError};
use crate::ledger::{BatchSink, BatchStopped, BatchSummary, Queued, Span};

/// Prints each line's result on stdout once it is committed.
pub(crate) struct LineStream {
    stdout: io::Stdout,
    /// Results of the open chunk, printed at its commit.
    chunk: Vec<u8>,
    /// Under `--atomic`, the good lines until the single commit.
    spool: Option<BufWriter<File>>,
    /// The lines and new transfers recorded since the last commit, to name
    /// them if their results cannot be printed once committed.
    span: Span,
    /// The reader went away before anything was committed: nothing to report.
    closed: bool,
    progress: ProgressBar,
    recorded: u64,
    /// `--dry-run`: each result line says so, and nothing commits.
    dry_run: bool,
}

impl LineStream {
    /// `progress`: whether a spinner counts the lines on stderr.
    pub(crate) fn new(atomic: bool, dry_run: bool, progress: bool) -> Result<Self> {
        let progress = if progress {
            spinner()
        } else {
            ProgressBar::hidden()
        };
        let spool = if atomic {
            Some(BufWriter::with_capacity(256 * 1024, unlinked_temp_file()?))
        } else {
            None
        };
        Ok(Self {
            stdout: io::stdout(),
            chunk: Vec::with_capacity(64 * 1024),
            spool,
            span: Span::default(),
            closed: false,
            progress,
            recorded: 0,
            dry_run,
        })
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.closed || bytes.is_empty() {
            return Ok(());
        }
        let mut out = self.stdout.lock();
        out.write_all(bytes).and_then(|()| out.flush())
    }

    /// Prints what the commit just made durable: the chunk's lines, and
    /// under `--atomic` the spooled ones.
    pub(crate) fn print_committed(&mut self) -> io::Result<()> {
        let chunk = std::mem::take(&mut self.chunk);
        let printed = self.emit(&chunk);
        self.chunk = chunk;
        self.chunk.clear();
        printed?;
        if let Some(spool) = self.spool.take() {
            let mut file = spool.into_inner().map_err(|e| e.into_error())?;
            file.rewind()?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let read = file.read(&mut buf)?;
                if read == 0 {
                    break;
                }
                self.emit(&buf[..read])?;
            }
        }
        Ok(())
    }

    /// The committed lines whose results were lost, as `outcome_unknown`.
    fn unreported(&self, cause: io::Error) -> WalletError {
        WalletError::unreported(
            &self.span.describe(),
            cause,
            "`wallet get-transfer` shows each; run again, lines with an \"id\" replay exactly",
        )
    }

    pub(crate) fn finish(&mut self) {
        self.progress.finish_and_clear();
    }
}

impl BatchSink for LineStream {
    fn record(&mut self, line: u64, outcome: Result<Queued>) -> Result<()> {
        self.recorded += 1;
        if self.recorded.is_multiple_of(4096) {
            self.progress.set_position(self.recorded);
        }
        self.span.note(line, &outcome);
        match (outcome, &mut self.spool) {
            (Ok(queued), Some(spool)) => {
                write_queued(spool, line, &queued, self.dry_run).map_err(write_error)?;
            }
            (Ok(queued), None) => {
                write_queued(&mut self.chunk, line, &queued, self.dry_run).map_err(write_error)?;
            }
            (Err(err), spool) => {
                let doc = json!({"line": line, "error": {"code": err.code(), "message": err.to_string()}});
                let mut text = doc.to_string();
                text.push('\n');
                if spool.is_some() {
                    // Under --atomic a bad line means nothing will commit:
                    // its error is true at once.
                    match self.emit(text.as_bytes()) {
                        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.closed = true,
                        other => other.map_err(write_error)?,
                    }
                } else {
                    self.chunk.extend_from_slice(text.as_bytes());
                }
            }
        }
        Ok(())
    }

    fn before_commit(&mut self) -> Result<()> {
        match &mut self.spool {
            Some(spool) => spool.flush().map_err(write_error),
            None => Ok(()),
        }
    }

    fn dry_run(&self) -> bool {
        self.dry_run
    }

    fn committed(&mut self) -> Result<()> {
        // From here on the lines are in the ledger: a failure to print them,
        // a closed pipe included, leaves the caller not knowing their ids.
        let printed = self.print_committed();
        let outcome = printed.map_err(|e| self.unreported(e));
        self.span = Span::default();
        outcome
    }
}

/// One result line; a replay says so, as the single commands' answer does,
/// and so does a dry run (its `tx_id` is the one the line took in the
/// rolled-back transaction: on a file the next run takes the same if
/// nothing writes between, but a server's sequence never rolls back).
fn write_queued(out: &mut impl Write, line: u64, queued: &Queued, dry_run: bool) -> io::Result<()> {
    // An exchange line names its second leg too.
    let pair = match queued.pair_tx_id {
        Some(pair) => format!(",\"pair_tx_id\":{pair}"),
        None => String::new(),
    };
    writeln!(
        out,
        "{{\"line\":{line},\"tx_id\":{},\"status\":\"{}\"{pair}{}{}}}",
        queued.tx_id,
        queued.status.as_str(),
        if queued.replayed {
            ",\"replayed\":true"
        } else {
            ""
        },
        if dry_run { ",\"dry_run\":true" } else { "" }
    )
}

fn write_error(e: io::Error) -> WalletError {
    WalletError::Io(anyhow::Error::new(e).context("cannot write the batch results"))
}

/// A private scratch file that disappears with the process, however it
/// ends: `tempfile` makes it unnamed from the start (`O_TMPFILE`) where the
/// file system allows, and unlinks it at once elsewhere.
fn unlinked_temp_file() -> Result<File> {
    tempfile::tempfile()
        .map_err(|e| WalletError::Io(anyhow::Error::new(e).context("cannot create a scratch file")))
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("queueing {spinner} {human_pos} lines ({elapsed})")
    {
        bar.set_style(style);
    }
    bar
}

/// The closing line for a person on stderr, its counts written as the
/// progress line writes them.
pub(crate) fn closing_line(summary: &BatchSummary, dry_run: bool) -> String {
    if dry_run {
        return format!(
            "dry run: {} line{} would queue {} transfer{}; nothing was written",
            HumanCount(summary.lines),
            plural(summary.lines),
            HumanCount(summary.queued),
            plural(summary.queued),
        );
    }
    format!(
        "queued {} transfer{} from {} line{}{}",
        HumanCount(summary.queued),
        plural(summary.queued),
        HumanCount(summary.lines),
        plural(summary.lines),
        if summary.replayed > 0 {
            format!(
                " ({} already queued with the same key)",
                HumanCount(summary.replayed)
            )
        } else {
            String::new()
        }
    )
}

/// An error after earlier chunks committed: their results are on stdout,
/// so the message says how many lines they hold and which lines a retry may
/// send again, rather than the error's own "nothing was written".
pub(crate) fn stopped_part_way(stopped: BatchStopped) -> WalletError {
    let BatchStopped {
        done,
        last_line,
        error,
    } = stopped;
    if done.lines == 0 {
        return error;
    }
    let mut outcomes = vec![format!(
        "{} new transfer{} queued",
        done.queued,
        plural(done.queued)
    )];
    if done.replayed > 0 {
        outcomes.push(format!(
            "{} already queued with the same key",
            done.replayed
        ));
    }
    if done.failed > 0 {
        outcomes.push(format!("{} refused", done.failed));
    }
    let through = last_line.map_or(String::new(), |line| format!(" through line {line}"));
    // Any error but an unknown outcome rolled back the chunk in hand.
    let after = match last_line {
        Some(line) if error.code() != "outcome_unknown" => {
            format!("; no line after line {line} was queued")
        }
        _ => String::new(),
    };
    let committed = format!(
        "before it, earlier chunks committed {} line{}{through}, whose results are on stdout ({}){after}. \
         To finish, a line with an \"id\" may be sent again as it is (it replays), but a line without one \
         whose result was printed must not be sent again, or it is queued twice",
        done.lines,
        plural(done.lines),
        outcomes.join(", ")
    );
    WalletError::StoppedPartWay {
        done: Box::new(Report::streamed()),
        error: Box::new(error),
        committed,
    }
}
