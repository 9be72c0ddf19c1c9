//! `wallet transfer --batch`: queue transfers read as JSON Lines, reporting each line.
//!
//! A line's result is printed only once the transaction holding it has
//! committed: a chunk's lines are kept in memory until its commit, and with
//! `--atomic` the good lines wait in an unlinked temporary file until the
//! single commit at the end, so memory stays flat for any input length.
//! A bad line's error is true whatever happens later, so under `--atomic`
//! it is printed at once; if any line is bad, nothing is committed and the
//! bad lines are all that is printed.

mod csv_lines;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use serde_json::json;

use self::csv_lines::CsvLines;
use super::{Context, plural};
use crate::cli::{BatchFormat, TransferArgs};
use crate::domain::{IdempotencyKey, Memo, UserName};
use crate::error::{Result, WalletError};
use crate::ledger::{
    BatchLine, BatchOptions, BatchSink, BatchStopped, DEFAULT_CHUNK_SIZE, Expiry, Kind,
    NewTransfer, Queued, Span, clock, rules,
};
use crate::money::Currency;
use crate::report::Report;

/// Longer lines are refused (and skipped) rather than read into memory whole.
const MAX_LINE_BYTES: u64 = 64 * 1024;

pub fn run(context: &Context, file: &Path, args: &TransferArgs) -> Result<Report> {
    let input: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let opened = File::open(file).map_err(|e| {
            WalletError::Io(
                anyhow::Error::new(e).context(format!("cannot read '{}'", file.display())),
            )
        })?;
        Box::new(BufReader::with_capacity(256 * 1024, opened))
    };
    let mut ledger = context.open()?;
    let source = if file.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        format!("'{}'", crate::error::shown_path(file))
    };
    let lines: Box<dyn Iterator<Item = Result<BatchLine>>> = match args.format {
        BatchFormat::Jsonl => Box::new(JsonLines::new(input, ledger.currency().clone(), source)),
        BatchFormat::Csv => Box::new(CsvLines::new(input, ledger.currency().clone(), source)?),
    };
    // A dry run decides every line in one transaction, so that each sees
    // the lines before it, and rolls it back.
    let options = BatchOptions {
        chunk_size: args.chunk_size.map_or(DEFAULT_CHUNK_SIZE, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        }),
        atomic: args.atomic || args.dry_run,
    };
    let progress = if context.show_progress {
        spinner()
    } else {
        ProgressBar::hidden()
    };
    let mut sink = LineStream::new(options.atomic, progress)?;
    sink.dry_run = args.dry_run;
    let queued = ledger.queue_batch(lines, &options, &mut sink);
    sink.finish();
    let summary = queued.map_err(|stopped| stopped_part_way(*stopped))?;
    if args.dry_run {
        // Nothing was written, so nothing is unknown: what would have been
        // queued is printed as it stands.
        if summary.failed == 0 {
            match sink.print_committed() {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                    return Err(WalletError::Io(e.into()));
                }
                _ => {}
            }
        }
        if summary.failed > 0 {
            return Err(WalletError::BatchFailed {
                failed: summary.failed,
                lines: summary.lines,
                queued: 0,
                replayed: 0,
            });
        }
        if !context.quiet_summary {
            eprintln!(
                "dry run: {} line{} would queue {} transfer{}; nothing was written",
                HumanCount(summary.lines),
                plural(summary.lines),
                HumanCount(summary.queued),
                plural(summary.queued),
            );
        }
        return Ok(Report::streamed());
    }
    if summary.failed > 0 {
        return Err(WalletError::BatchFailed {
            failed: summary.failed,
            lines: summary.lines,
            queued: if summary.committed { summary.queued } else { 0 },
            replayed: if summary.committed {
                summary.replayed
            } else {
                0
            },
        });
    }
    if !context.quiet_summary {
        // Counts for people, written as the progress line writes them.
        eprintln!(
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
        );
    }
    Ok(Report::streamed())
}

/// An error after earlier chunks committed: their results are on stdout,
/// so the message says how many lines they hold and which lines a retry may
/// send again, rather than the error's own "nothing was written".
fn stopped_part_way(stopped: BatchStopped) -> WalletError {
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

fn spinner() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("queueing {spinner} {human_pos} lines ({elapsed})")
    {
        bar.set_style(style);
    }
    bar
}

/// One transfer as a batch line spells it. A missing `src` or `dst` is the
/// same as `null`: the ledger's outside world.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineDoc {
    #[serde(default)]
    src: Option<String>,
    #[serde(default)]
    dst: Option<String>,
    amount: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    memo: Option<String>,
    /// A hold instead of a transfer (see `wallet hold`).
    #[serde(default)]
    hold: bool,
    /// With `hold`: expire this long after it is placed (`30m`, `7d`).
    #[serde(default)]
    expires_in: Option<String>,
    /// With `hold`: expire at this instant (RFC 3339).
    #[serde(default)]
    expires_at: Option<String>,
}

/// Reads numbered lines and parses each into a transfer, skipping blank ones.
struct JsonLines<R> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
    currency: Currency,
    /// The input ended: a terminal or a FIFO may offer more after an
    /// end-of-file, but a batch is what came before the first one.
    ended: bool,
    /// The input as errors name it: `'payroll.jsonl'` or `standard input`.
    source: String,
}

impl<R: BufRead> JsonLines<R> {
    fn new(reader: R, currency: Currency, source: String) -> Self {
        Self {
            reader,
            buf: Vec::with_capacity(256),
            line: 0,
            currency,
            ended: false,
            source,
        }
    }

    fn parse(&self, text: &[u8]) -> Result<NewTransfer> {
        let text = std::str::from_utf8(text)
            .map_err(|_| WalletError::InvalidLine("it is not valid UTF-8".into()))?;
        // Only an object is a line: serde would also read a struct from an
        // array by position, and `["a","b","5"]` is no transfer.
        if !text.starts_with('{') {
            // Off the hot path: only a line already refused is parsed whole.
            let kind = match serde_json::from_str::<serde_json::Value>(text) {
                Err(e) => {
                    return Err(WalletError::InvalidLine(format!(
                        "it is not valid JSON ({e})"
                    )));
                }
                Ok(serde_json::Value::Array(_)) => "an array",
                Ok(serde_json::Value::String(_)) => "a string",
                Ok(serde_json::Value::Number(_)) => "a number",
                Ok(serde_json::Value::Bool(_)) => "a boolean",
                Ok(serde_json::Value::Null) => "null",
                Ok(serde_json::Value::Object(_)) => "an object",
            };
            return Err(WalletError::InvalidLine(format!(
                "it is {kind}; a line is one JSON object such as {{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"5.00\"}}"
            )));
        }
        let doc: LineDoc = serde_json::from_str(text).map_err(|e| {
            WalletError::InvalidLine(match e.classify() {
                serde_json::error::Category::Data => format!(
                    "{}; src, dst, id and memo are strings or null, and amount is a string such as \"5.00\", never a JSON number",
                    e.to_string().replace("struct LineDoc", "a transfer object")
                ),
                _ => format!("it is not valid JSON ({e})"),
            })
        })?;
        let src = doc.src.as_deref().map(UserName::parse).transpose()?;
        let dst = doc.dst.as_deref().map(UserName::parse).transpose()?;
        // Both sides are checked before the amount, so a line that names no
        // user or one user twice says so whatever its amount.
        rules::check_parties(src.as_ref(), dst.as_ref())?;
        let amount = self.currency.parse_amount(&doc.amount)?;
        let key = IdempotencyKey::parse_optional(doc.id.as_deref())?;
        let memo = Memo::parse_optional(doc.memo.as_deref())?;
        let transfer = NewTransfer::new(src, dst, amount, memo, key)?;
        if !doc.hold {
            if doc.expires_in.is_some() || doc.expires_at.is_some() {
                return Err(WalletError::InvalidLine(
                    "expires_in and expires_at belong to a hold (\"hold\": true)".into(),
                ));
            }
            return Ok(transfer);
        }
        let expiry = match (&doc.expires_in, &doc.expires_at) {
            (Some(_), Some(_)) => {
                return Err(WalletError::InvalidLine(
                    "a hold takes expires_in or expires_at, not both".into(),
                ));
            }
            (Some(duration), None) => Expiry::After(clock::parse_duration(duration)?),
            (None, Some(at)) => Expiry::At(clock::parse_instant(at)?),
            (None, None) => Expiry::Never,
        };
        transfer.with_kind(Kind::Hold(expiry))
    }
}

impl<R: BufRead> Iterator for JsonLines<R> {
    type Item = Result<BatchLine>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.ended {
            self.buf.clear();
            let read = (&mut self.reader)
                .take(MAX_LINE_BYTES + 1)
                .read_until(b'\n', &mut self.buf);
            match read {
                Ok(0) => {
                    self.ended = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => return Some(Err(read_error(e, &self.source))),
            }
            self.line += 1;
            let line = self.line;
            if self.buf.last() != Some(&b'\n') && self.buf.len() as u64 > MAX_LINE_BYTES {
                if let Err(e) = self.reader.skip_until(b'\n') {
                    return Some(Err(read_error(e, &self.source)));
                }
                let refused =
                    WalletError::InvalidLine(format!("it is longer than {MAX_LINE_BYTES} bytes"));
                return Some(Ok(BatchLine {
                    line,
                    transfer: Err(refused),
                }));
            }
            let mut text = self.buf.trim_ascii();
            if line == 1 {
                // A byte-order mark some editors put at the start of a file.
                text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
            }
            if text.is_empty() {
                continue;
            }
            return Some(Ok(BatchLine {
                line,
                transfer: self.parse(text),
            }));
        }
        None
    }
}

fn csv_error(e: &csv::Error, source: &str) -> WalletError {
    WalletError::Io(anyhow::anyhow!("cannot read {source}: {e}"))
}

fn read_error(e: io::Error, source: &str) -> WalletError {
    WalletError::Io(anyhow::Error::new(e).context(format!("cannot read {source}")))
}

/// Prints each line's result on stdout once it is committed.
struct LineStream {
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
    fn new(atomic: bool, progress: ProgressBar) -> Result<Self> {
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
            dry_run: false,
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
    fn print_committed(&mut self) -> io::Result<()> {
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

    fn finish(&mut self) {
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
    writeln!(
        out,
        "{{\"line\":{line},\"tx_id\":{},\"status\":\"{}\"{}{}}}",
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

#[cfg(test)]
mod tests {
    use std::io::{self, BufReader, Read};

    use super::JsonLines;
    use crate::money::Currency;

    /// Reads like a terminal after Ctrl-D: an end of input, then more.
    struct TypedTwice(Vec<&'static [u8]>);

    impl Read for TypedTwice {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let block = self.0.remove(0);
            buf[..block.len()].copy_from_slice(block);
            Ok(block.len())
        }
    }

    #[test]
    fn input_stops_at_the_first_end_of_file() {
        let first = b"{\"src\":null,\"dst\":\"alice\",\"amount\":\"1\"}\n";
        let after = b"{\"src\":null,\"dst\":\"alice\",\"amount\":\"2\"}\n";
        let input = TypedTwice(vec![first, b"", after]);
        let mut lines = JsonLines::new(BufReader::new(input), Currency::default(), "a test".into());
        assert!(lines.next().is_some());
        for _ in 0..3 {
            assert!(
                lines.next().is_none(),
                "nothing after the first end of input"
            );
        }
    }
}
