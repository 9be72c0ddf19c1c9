//! Everything `wallet` prints: a command's report, once, as JSON for scripts
//! or tables and lines for people; an error on stderr; the streams that
//! print as they go (a batch's results, an export).

pub(crate) mod balance_views;
pub(crate) mod batch_stream;
pub(crate) mod completion_script;
pub(crate) mod event_view;
pub(crate) mod export;
pub(crate) mod man_page;
pub(crate) mod policy_views;
mod report;
pub(crate) mod settle_report;
mod table;
pub(crate) mod verify_view;
pub(crate) mod views;

use std::io::{self, IsTerminal, Write};

use serde_json::json;

pub(crate) use self::report::{Human, Report, Titled, WhenQuiet};
use crate::error::WalletError;

/// How this process was asked to print.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputMode {
    pub json: bool,
    pub quiet: bool,
}

/// Prints a report on stdout as one newline-terminated JSON document or as
/// human text.
pub(crate) fn print_report(report: &Report, mode: OutputMode) -> io::Result<()> {
    if matches!(report.human, Human::Streamed) {
        return Ok(());
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if mode.json {
        // One write of the document (stdout's line buffer passes a large
        // one straight through), then its newline.
        out.write_all(report.json.get().as_bytes())?;
        writeln!(out)?;
        return out.flush();
    }
    if mode.quiet {
        match &report.when_quiet {
            WhenQuiet::Id(id) => {
                writeln!(out, "{id}")?;
                return out.flush();
            }
            WhenQuiet::Nothing => return Ok(()),
            WhenQuiet::Unchanged => {}
        }
    }
    let decorated = out.is_terminal();
    match &report.human {
        Human::Line(line) if !mode.quiet => writeln!(out, "{line}")?,
        Human::Line(_) | Human::Streamed => {}
        Human::Text(text) => out.write_all(text.as_bytes())?,
        Human::Record(fields) => table::write_record(&mut out, fields, decorated)?,
        // Nothing on stdout, so `| wc -l` counts rows; the note is for a person.
        Human::Rows { empty, rows, .. } if rows.is_empty() => {
            if !mode.quiet {
                let _ = writeln!(io::stderr(), "{empty}");
            }
        }
        Human::Rows { header, rows, .. } => {
            table::write_rows(&mut out, header, rows, decorated, mode.quiet)?;
        }
        Human::Tables(tables) => {
            for (i, titled) in tables.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                writeln!(out, "{}", titled.title)?;
                table::write_rows(
                    &mut out,
                    &titled.header,
                    &titled.rows,
                    decorated,
                    mode.quiet,
                )?;
            }
        }
    }
    out.flush()
}

/// Prints an error once on stderr: one `error: …` line, or a JSON document
/// (with the report that goes with the error, if any, under `report`).
pub(crate) fn print_error(err: &WalletError, json: bool) {
    // Messages show `--db` redacted already; a URL echoed as some other
    // argument (a misplaced one, a name or email) is hidden here.
    let message = crate::ledger::hide_passwords_in(&err.to_string());
    let mut stderr = io::stderr().lock();
    let _ = if json {
        let mut body = json!({"code": err.code(), "message": message});
        if let Some(report) = report_of(err).filter(|_| !err.done_is_output()) {
            body["report"] = serde_json::from_str(report.json.get())
                .expect("a report's JSON was written by serde_json");
        }
        writeln!(stderr, "{}", json!({ "error": body }))
    } else {
        writeln!(stderr, "error: {message}")
    };
}

/// The report that goes with an error, printed along with it: what a
/// command did before it stopped, or the checks `verify` ran.
pub(crate) fn report_of(err: &WalletError) -> Option<&Report> {
    err.done()?.downcast_ref::<Report>()
}

/// The plural ending for a count in a message: `1 transfer`, `2 transfers`.
pub(crate) fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
