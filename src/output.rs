//! Printing reports and errors: JSON for scripts, tables and single lines for people.

use std::env;
use std::io::{self, IsTerminal, Write};

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use serde_json::json;

use crate::error::WalletError;
use crate::report::{Human, Report};

/// How this process was asked to print.
#[derive(Debug, Clone, Copy)]
pub struct OutputMode {
    pub json: bool,
    pub quiet: bool,
}

/// Prints a report on stdout as one newline-terminated JSON document or as
/// human text.
pub fn print_report(report: &Report, mode: OutputMode) -> io::Result<()> {
    if matches!(report.human, Human::Streamed) {
        return Ok(());
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if mode.json {
        serde_json::to_writer(&mut out, &report.json)?;
        writeln!(out)?;
        return out.flush();
    }
    let decorated = out.is_terminal();
    match &report.human {
        Human::Line(line) if !mode.quiet => writeln!(out, "{line}")?,
        Human::Line(_) | Human::Streamed => {}
        Human::Record(fields) => {
            let mut table = new_table(decorated);
            for (field, value) in fields {
                table.add_row(vec![Cell::new(field), status_cell(value, decorated)]);
            }
            writeln!(out, "{table}")?;
        }
        Human::Rows { empty, rows, .. } if rows.is_empty() => {
            if !mode.quiet {
                writeln!(out, "{empty}")?;
            }
        }
        Human::Rows { header, rows, .. } => {
            let mut table = new_table(decorated);
            table.set_header(header.clone());
            let status_column = header.iter().position(|h| *h == "status");
            for row in rows {
                table.add_row(row.iter().enumerate().map(|(i, value)| {
                    if Some(i) == status_column {
                        status_cell(value, decorated)
                    } else {
                        Cell::new(value)
                    }
                }));
            }
            writeln!(out, "{table}")?;
        }
    }
    out.flush()
}

/// Prints an error once on stderr: one `error: …` line, or a JSON document.
pub fn print_error(err: &WalletError, json: bool) {
    let mut stderr = io::stderr().lock();
    let _ = if json {
        writeln!(
            stderr,
            "{}",
            json!({"error": {"code": err.code(), "message": err.to_string()}})
        )
    } else {
        writeln!(stderr, "error: {err}")
    };
}

/// Tables are boxed and fitted to the terminal only when a person is
/// looking; piped, they are plain aligned columns that never wrap, for
/// `grep` and `awk`.
fn new_table(decorated: bool) -> Table {
    let mut table = Table::new();
    if decorated {
        table
            .load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        table
            .load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .force_no_tty();
    }
    table
}

fn status_cell(value: &str, decorated: bool) -> Cell {
    let cell = Cell::new(value);
    if !decorated || !colour_allowed() {
        return cell;
    }
    match value {
        "COMPLETED" => cell.fg(Color::Green),
        "FAILED" => cell.fg(Color::Red),
        "PENDING" => cell.fg(Color::Yellow),
        "CANCELLED" => cell.fg(Color::DarkGrey),
        _ => cell,
    }
}

fn colour_allowed() -> bool {
    env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && env::var("TERM").map_or(true, |term| term != "dumb")
}
