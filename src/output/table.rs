//! Tables for people: boxed and fitted to a terminal, plain aligned columns when piped.

use std::env;
use std::io::{self, Write};

use comfy_table::{Cell, Color, ColumnConstraint, ContentArrangement, Table, presets};

/// One record as a two-column table of field and value.
pub(super) fn write_record(
    out: &mut impl Write,
    fields: &[(&'static str, String)],
    decorated: bool,
) -> io::Result<()> {
    let mut table = new_table(decorated);
    for (field, value) in fields {
        let value = placeholder(value, decorated);
        table.add_row(vec![Cell::new(field), status_cell(value, decorated)]);
    }
    write_table(out, &table, decorated)
}

/// Several records as a table, a row each; on a terminal, the columns that
/// do not fit are left out and named on stderr unless `quiet`.
pub(super) fn write_rows(
    out: &mut impl Write,
    header: &[&'static str],
    rows: &[Vec<String>],
    decorated: bool,
    quiet: bool,
) -> io::Result<()> {
    let mut table = new_table(decorated);
    let (header, rows) = match table.width().filter(|width| *width > 0) {
        Some(width) if decorated => {
            let fitted = fit_columns(width, header, rows);
            let left_out: Vec<&str> = header
                .iter()
                .filter(|h| !fitted.0.contains(h))
                .copied()
                .collect();
            if !left_out.is_empty() && !quiet {
                let _ = writeln!(
                    io::stderr(),
                    "left out to fit the terminal: {} (--json or get-transfer shows every field)",
                    left_out.join(", ")
                );
            }
            fitted
        }
        _ => (header.to_vec(), rows.to_vec()),
    };
    let (header, rows) = (&header, &rows);
    table.set_header(header.clone());
    let status_column = header.iter().position(|h| *h == "status");
    for row in rows {
        table.add_row(row.iter().enumerate().map(|(i, value)| {
            let value = placeholder(value, decorated);
            if Some(i) == status_column {
                status_cell(value, decorated)
            } else {
                Cell::new(value)
            }
        }));
    }
    if decorated {
        keep_columns_whole(&mut table, header, rows);
    }
    write_table(out, &table, decorated)
}

/// Tables are boxed and fitted to the terminal only when a person is
/// looking; piped, they are plain aligned columns that never wrap, for
/// `grep` and `awk`.
/// An empty cell, piped, is `-`: a blank would let `awk` and `cut` count
/// fields differently from row to row. A terminal shows it blank.
fn placeholder(value: &str, decorated: bool) -> &str {
    if value.is_empty() && !decorated {
        "-"
    } else {
        value
    }
}

/// A table as text: piped, its lines carry no trailing padding, so that
/// they compare and `cut` cleanly.
fn write_table(out: &mut impl Write, table: &Table, decorated: bool) -> io::Result<()> {
    if decorated {
        return writeln!(out, "{table}");
    }
    for line in table.to_string().lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn new_table(decorated: bool) -> Table {
    let mut table = Table::new();
    if decorated {
        // A dumb terminal may not draw box characters.
        let style = if dumb_terminal() {
            presets::ASCII_FULL_CONDENSED
        } else {
            presets::UTF8_FULL_CONDENSED
        };
        table
            .load_style(style)
            .set_content_arrangement(ContentArrangement::Dynamic);
        // `COLUMNS` set by the user (or a shell that exports it) wins over
        // what the terminal reports.
        if let Some(columns) = env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<u16>().ok())
            .filter(|c| *c > 0)
        {
            table.set_width(columns);
        } else if table.width().is_none_or(|width| width == 0) {
            // A terminal that reports no width (as under `script` or some CI
            // runners): draw the table at its natural width, unwrapped.
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    } else {
        table
            .load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .force_no_tty();
    }
    table
}

/// Columns left out, in this order, while a table is wider than the
/// terminal: the order of rows already tells their age, and `get-transfer`
/// or `--json` show every field.
const DROP_WHEN_NARROW: &[&str] = &["created_at", "memo", "reason", "balance_after"];

/// The columns to show on a terminal `width` wide.
fn fit_columns(
    width: u16,
    header: &[&'static str],
    rows: &[Vec<String>],
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let mut header = header.to_vec();
    let mut rows = rows.to_vec();
    for name in DROP_WHEN_NARROW {
        if table_width(&header, &rows) <= usize::from(width) {
            break;
        }
        if let Some(i) = header.iter().position(|h| h == name) {
            header.remove(i);
            for row in &mut rows {
                if i < row.len() {
                    row.remove(i);
                }
            }
        }
    }
    (header, rows)
}

/// How wide a boxed table needs to be for its [`KEEP_WHOLE`] columns to
/// stay whole, the others (a memo) wrapping to a readable width.
fn table_width(header: &[&str], rows: &[Vec<String>]) -> usize {
    const READABLE_WRAP: usize = 16;
    let content: usize = (0..header.len())
        .map(|i| {
            let width = content_width(header, rows, i);
            if KEEP_WHOLE.contains(&header[i]) {
                width
            } else {
                width.min(READABLE_WRAP)
            }
        })
        .sum();
    content + frame_width(header.len())
}

fn content_width(header: &[&str], rows: &[Vec<String>], i: usize) -> usize {
    rows.iter()
        .filter_map(|row| row.get(i))
        .map(|cell| cell.chars().count())
        .chain([header[i].len()])
        .max()
        .unwrap_or(0)
}

/// A border before each column and one at the end; a space either side of each cell.
fn frame_width(columns: usize) -> usize {
    columns + 1 + 2 * columns
}

/// Columns that read badly when broken across lines, most important first.
const KEEP_WHOLE: &[&str] = &[
    "tx_id",
    "status",
    "amount",
    "created_at",
    "src",
    "dst",
    "reason",
    "balance_after",
];

/// The narrowest a wrapping column is squeezed to while deciding what fits.
const MIN_WRAPPED: usize = 6;

/// Keeps as many [`KEEP_WHOLE`] columns unbroken as the terminal allows and
/// lets the rest (a memo) wrap around them; when even that does not fit,
/// comfy-table shares the width out and every column may wrap.
fn keep_columns_whole(table: &mut Table, header: &[&str], rows: &[Vec<String>]) {
    let Some(width) = table.width().filter(|width| *width > 0) else {
        return;
    };
    let content: Vec<usize> = (0..header.len())
        .map(|i| content_width(header, rows, i))
        .collect();
    let frame = frame_width(header.len());
    let budget = usize::from(width).saturating_sub(frame);
    let mut reserved: Vec<usize> = content.iter().map(|&w| w.min(MIN_WRAPPED)).collect();
    let Some(mut slack) = budget.checked_sub(reserved.iter().sum()) else {
        return;
    };
    for name in KEEP_WHOLE {
        let Some(i) = header.iter().position(|h| h == name) else {
            continue;
        };
        let extra = content[i] - reserved[i];
        if extra <= slack {
            slack -= extra;
            reserved[i] = content[i];
            if let Some(column) = table.column_mut(i) {
                column.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
    }
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
    env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && !dumb_terminal()
}

fn dumb_terminal() -> bool {
    env::var("TERM").is_ok_and(|term| term == "dumb")
}
