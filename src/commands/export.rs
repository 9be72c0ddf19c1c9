//! `wallet export`: every transfer, streamed as JSON Lines, CSV or an
//! hledger journal.

use std::io::{self, BufWriter};

use super::Context;
use crate::cli::{ExportArgs, ExportFormat};
use crate::error::{Result, WalletError};
use crate::ledger::Instant;
use crate::ledger::{ExportFilter, Exported};
use crate::output::Report;
use crate::output::export::{Csv, ExportWriter, Hledger, JsonLines};
use crate::time;

pub(super) fn run(context: &Context, args: ExportArgs) -> Result<Report> {
    let filter = ExportFilter {
        since: args
            .since
            .as_deref()
            .map(time::parse_instant_from)
            .transpose()?
            .map(Instant::new),
        until: args
            .until
            .as_deref()
            .map(time::parse_instant)
            .transpose()?
            .map(Instant::new),
        statuses: args.status.iter().map(|s| (*s).into()).collect(),
        // Only the journal has a place for them: comment lines.
        changes: matches!(args.format, ExportFormat::Hledger),
    };
    let mut ledger = context.open_to_read()?;
    let currencies = ledger.currencies().clone();
    let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut writer: Box<dyn ExportWriter> = match args.format {
        ExportFormat::Jsonl => Box::new(JsonLines { out, currencies }),
        ExportFormat::Csv => Box::new(Csv {
            out: csv::Writer::from_writer(out),
            currencies,
        }),
        ExportFormat::Hledger => Box::new(Hledger {
            out,
            currencies,
            accounts: Default::default(),
            waiting: Default::default(),
            changes: Default::default(),
        }),
    };
    // A reader that stops early (`| head`) ends the export quietly: it
    // only read. Any other failure to write is an error.
    let mut stopped: Option<io::Error> = None;
    let keep_going = |result: io::Result<()>, stopped: &mut Option<io::Error>| -> bool {
        match result {
            Ok(()) => true,
            Err(e) => {
                *stopped = Some(e);
                false
            }
        }
    };
    if keep_going(writer.begin(), &mut stopped) {
        ledger.export(&filter, &mut |item| {
            let written = match &item {
                Exported::Change(change) => writer.change(change),
                Exported::Transfer(record) => writer.write(record),
            };
            Ok(keep_going(written, &mut stopped))
        })?;
        if stopped.is_none() {
            let finished = writer.finish();
            keep_going(finished, &mut stopped);
        }
    }
    match stopped {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(WalletError::Io(e.into())),
        _ => Ok(Report::streamed()),
    }
}
