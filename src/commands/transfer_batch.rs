//! `wallet transfer --batch`: queue transfers read as JSON Lines or CSV,
//! reporting each line once the transaction holding it has committed.

use std::io;
use std::path::Path;

use super::Context;
use crate::cli::{BatchFormat, TransferArgs};
use crate::error::{Result, WalletError};
use crate::input::BatchInput;
use crate::input::csv::CsvLines;
use crate::input::jsonl::JsonLines;
use crate::ledger::{BatchLine, BatchOptions, DEFAULT_CHUNK_SIZE};
use crate::output::Report;
use crate::output::batch_stream::{LineStream, closing_line, stopped_part_way};

pub(super) fn run(context: &Context, file: &Path, args: &TransferArgs) -> Result<Report> {
    let BatchInput { reader, source } = BatchInput::open(file)?;
    let mut ledger = context.open()?;
    let currencies = ledger.currencies().clone();
    let lines: Box<dyn Iterator<Item = Result<BatchLine>>> = match args.format {
        BatchFormat::Jsonl => Box::new(JsonLines::new(reader, currencies, source)),
        BatchFormat::Csv => Box::new(CsvLines::new(reader, currencies, source)?),
    };
    // A dry run decides every line in one transaction, so that each sees
    // the lines before it, and rolls it back.
    let options = BatchOptions {
        chunk_size: args.chunk_size.map_or(DEFAULT_CHUNK_SIZE, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        }),
        atomic: args.atomic || args.dry_run,
    };
    let mut sink = LineStream::new(options.atomic, args.dry_run, context.show_progress)?;
    let queued = ledger.queue_batch(lines, &options, &mut sink);
    sink.finish();
    let summary = queued.map_err(|stopped| stopped_part_way(*stopped))?;
    // Nothing a dry run decided was written, so nothing is unknown: what
    // would have been queued is printed as it stands.
    if args.dry_run && summary.failed == 0 {
        match sink.print_committed() {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                return Err(WalletError::Io(e.into()));
            }
            _ => {}
        }
    }
    if summary.failed > 0 {
        let kept = summary.committed && !args.dry_run;
        return Err(WalletError::BatchFailed {
            failed: summary.failed,
            lines: summary.lines,
            queued: if kept { summary.queued } else { 0 },
            replayed: if kept { summary.replayed } else { 0 },
        });
    }
    if !context.quiet_summary {
        eprintln!("{}", closing_line(&summary, args.dry_run));
    }
    Ok(Report::streamed())
}
