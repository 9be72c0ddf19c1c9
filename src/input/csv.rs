//! `transfer --batch --format csv`: records read under a header row (which
//! names the columns), each numbered by the physical line it starts on.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::iter::Peekable;
use std::rc::Rc;

use super::read_error;
use crate::domain::{IdempotencyKey, Memo, UserName};
use crate::error::{Result, WalletError};
use crate::ledger::{BatchLine, NewTransfer, rules};
use crate::money::Currencies;
use crate::text::echo;

/// The columns a header may name; the first three it must.
const COLUMNS: [&str; 6] = ["src", "dst", "amount", "id", "memo", "currency"];

/// Reads CSV records with a header row naming the columns: `src`, `dst`
/// and `amount`, and optionally `id`, `memo` and `currency`, in any order,
/// each once.
/// An empty `src` or `dst` is the outside world. A record must have as
/// many fields as the header: an unquoted comma in an amount or a memo
/// would otherwise move money the file never said.
pub(crate) struct CsvLines<R: io::Read> {
    records: Peekable<csv::StringRecordsIntoIter<LineTracker<Restarted<R>>>>,
    tracked: Rc<RefCell<Tracked>>,
    columns: CsvColumns,
    width: usize,
    currencies: Currencies,
    source: String,
}

/// The input with its first bytes, read to look for a byte-order mark, put back.
type Restarted<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

#[derive(Clone, Copy)]
struct CsvColumns {
    src: usize,
    dst: usize,
    amount: usize,
    id: Option<usize>,
    memo: Option<usize>,
    currency: Option<usize>,
}

impl<R: io::Read> CsvLines<R> {
    pub(crate) fn new(mut input: R, currencies: Currencies, source: String) -> Result<Self> {
        // A byte-order mark some spreadsheets write: the reader drops one
        // only if its first read holds all three bytes, so it goes here.
        let mut start = Vec::with_capacity(3);
        (&mut input)
            .take(3)
            .read_to_end(&mut start)
            .map_err(|e| read_error(e, &source))?;
        if start == "\u{feff}".as_bytes() {
            start.clear();
        }
        let tracked = Rc::new(RefCell::new(Tracked::default()));
        let input = LineTracker {
            inner: io::Cursor::new(start).chain(input),
            tracked: Rc::clone(&tracked),
            offset: 0,
            line: 1,
            after_cr: false,
            state: Quoting::StartRecord,
            quote_opened: (0, 0),
        };
        // Field counts are checked here, not by the reader, so that a blank
        // row and an unclosed quote are told apart from a short row.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(input);
        let header = reader
            .headers()
            .map_err(|e| csv_error(&e, &source))?
            .clone();
        let mut records = reader.into_records().peekable();
        // The tracker has seen the end of the input only if the header took
        // all of it, or the input is that short: peeking then waits for nothing.
        let unterminated = tracked.borrow().unterminated;
        if let Some((_, line)) = unterminated
            && records.peek().is_none()
        {
            return Err(WalletError::InvalidLine(format!(
                "the CSV header of {source} opens a quoted field on line {line} that is never closed"
            )));
        }
        let names: Vec<String> = header
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        for (i, (name, column)) in names.iter().zip(&header).enumerate() {
            if !COLUMNS.contains(&name.as_str()) {
                return Err(WalletError::InvalidLine(format!(
                    "the CSV header of {source} names the unknown column '{}'; the columns are src,dst,amount and optionally id,memo,currency (exchanges and holds are JSON Lines only)",
                    echo(column)
                )));
            }
            if names[..i].contains(name) {
                return Err(WalletError::InvalidLine(format!(
                    "the CSV header of {source} names the column '{name}' twice; each column is named once"
                )));
            }
        }
        let find = |name: &str| names.iter().position(|n| n == name);
        let needed = |name: &str| {
            find(name).ok_or_else(|| {
                WalletError::InvalidLine(format!(
                    "the CSV header of {source} has no column '{name}'; it must name src,dst,amount (and may name id,memo,currency)"
                ))
            })
        };
        let columns = CsvColumns {
            src: needed("src")?,
            dst: needed("dst")?,
            amount: needed("amount")?,
            id: find("id"),
            memo: find("memo"),
            currency: find("currency"),
        };
        Ok(Self {
            records,
            tracked,
            columns,
            width: header.len(),
            currencies,
            source,
        })
    }

    fn parse(&self, record: &csv::StringRecord) -> Result<NewTransfer> {
        if record.len() != self.width {
            return Err(WalletError::InvalidLine(format!(
                "it has {} fields; the header has {} (a field holding a comma is written in double quotes)",
                record.len(),
                self.width
            )));
        }
        let field = |i: usize| record.get(i).unwrap_or("");
        let optional = |i: Option<usize>| i.map(field).filter(|v| !v.is_empty());
        let c = self.columns;
        let side = |i: usize| -> Result<Option<UserName>> {
            match field(i).trim() {
                "" => Ok(None),
                name => UserName::parse(name).map(Some),
            }
        };
        let (src, dst) = (side(c.src)?, side(c.dst)?);
        rules::check_parties(src.as_ref(), dst.as_ref())?;
        let code = optional(c.currency).map(str::trim);
        let (currency, amount) = super::amount_in(&self.currencies, code, field(c.amount))?;
        let key = IdempotencyKey::parse_optional(optional(c.id))?;
        let memo = Memo::parse_optional(optional(c.memo))?;
        Ok(NewTransfer::new(src, dst, amount, memo, key)?.with_currency(currency))
    }

    /// Whether the record starting at byte `start` holds the quote the
    /// input ended inside: it is the last record that starts before it.
    fn holds_unclosed_quote(&mut self, start: u64) -> Option<u64> {
        let (at, line) = self.tracked.borrow().unterminated?;
        if start > at {
            return None;
        }
        let next_start = match self.records.peek() {
            Some(Ok(next)) => next.position(),
            Some(Err(e)) => e.position(),
            None => None,
        };
        match next_start {
            Some(next) if next.byte() <= at => None,
            _ => Some(line),
        }
    }
}

impl<R: io::Read> Iterator for CsvLines<R> {
    type Item = Result<BatchLine>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (record, start) = match self.records.next()? {
                Ok(record) => {
                    let start = record.position().map_or(0, csv::Position::byte);
                    (record, start)
                }
                Err(e) => {
                    if let csv::ErrorKind::Io(_) = e.kind() {
                        return Some(Err(csv_error(&e, &self.source)));
                    }
                    let start = e.position().map_or(0, csv::Position::byte);
                    return Some(Ok(BatchLine {
                        line: self.tracked.borrow_mut().line_of(start),
                        transfer: Err(WalletError::InvalidLine(format!(
                            "it is not a valid CSV record ({e})"
                        ))),
                    }));
                }
            };
            let line = self.tracked.borrow_mut().line_of(start);
            if let Some(quote_line) = self.holds_unclosed_quote(start) {
                return Some(Ok(BatchLine {
                    line,
                    transfer: Err(WalletError::InvalidLine(format!(
                        "the quoted field opened on line {quote_line} is never closed: the input ends inside it (a quote inside a quoted field is written twice, \"\")"
                    ))),
                }));
            }
            if record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            return Some(Ok(BatchLine {
                line,
                transfer: self.parse(&record),
            }));
        }
    }
}

fn csv_error(e: &csv::Error, source: &str) -> WalletError {
    WalletError::Io(anyhow::anyhow!("cannot read {source}: {e}"))
}

/// What the tracker learnt of the input that the CSV reader does not say.
#[derive(Default)]
struct Tracked {
    /// Each line-ending byte read but not yet behind a record's start: its
    /// offset, and the line the byte after it is on. The reader reads ahead
    /// by a buffer, so this stays short.
    ends: VecDeque<(u64, u64)>,
    /// The last line a record started on.
    line: u64,
    /// The input ended inside a quoted field: where its quote opened, as a
    /// byte offset and a line.
    unterminated: Option<(u64, u64)>,
}

impl Tracked {
    /// The physical line of the record the reader placed at byte `start`.
    /// The reader places a record where the previous one ended, before the
    /// line ends and blank lines it skips (the `\n` of a CRLF among them),
    /// so those are stepped over too. Starts only move forward.
    fn line_of(&mut self, start: u64) -> u64 {
        let mut at = start;
        while let Some(&(offset, line_after)) = self.ends.front() {
            if offset > at {
                break;
            }
            if offset == at {
                at += 1;
            }
            self.line = line_after;
            self.ends.pop_front();
        }
        self.line.max(1)
    }
}

/// Where the CSV reader is in its grammar (RFC 4180 as the `csv` crate
/// reads it), just far enough to know whether the input ends inside a quote.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    StartRecord,
    StartField,
    InField,
    InQuotes,
    /// A quote inside quotes: the field's end, or the first of a doubled one.
    QuoteInQuotes,
}

/// The input passed through unchanged, noting each line end (LF, CRLF or a
/// lone CR: one line each) and whether the input ends inside a quote.
struct LineTracker<R> {
    inner: R,
    tracked: Rc<RefCell<Tracked>>,
    offset: u64,
    /// The line the next byte is on.
    line: u64,
    after_cr: bool,
    state: Quoting,
    quote_opened: (u64, u64),
}

impl<R: io::Read> io::Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let shared = Rc::clone(&self.tracked);
        let mut tracked = shared.borrow_mut();
        if read == 0 {
            if self.state == Quoting::InQuotes {
                tracked.unterminated = Some(self.quote_opened);
            }
            return Ok(0);
        }
        for &byte in &buf[..read] {
            let line_end = byte == b'\r' || byte == b'\n';
            if line_end {
                if !(byte == b'\n' && self.after_cr) {
                    self.line += 1;
                }
                tracked.ends.push_back((self.offset, self.line));
            }
            self.after_cr = byte == b'\r';
            self.state = self.step(byte, line_end);
            self.offset += 1;
        }
        Ok(read)
    }
}

impl<R> LineTracker<R> {
    fn step(&mut self, byte: u8, line_end: bool) -> Quoting {
        use Quoting::*;
        match (self.state, byte) {
            (StartRecord, _) if line_end => StartRecord,
            (StartRecord | StartField, b'"') => {
                self.quote_opened = (self.offset, self.line);
                InQuotes
            }
            (InQuotes, b'"') => QuoteInQuotes,
            (InQuotes, _) => InQuotes,
            (QuoteInQuotes, b'"') => InQuotes,
            (_, b',') => StartField,
            _ if line_end => StartRecord,
            _ => InField,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};

    use super::CsvLines;
    use crate::money::{Currencies, Currency};

    /// Hands out its bytes one at a time, so that a CRLF, a quote and a
    /// byte-order mark are each split across reads.
    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.get(self.1) {
                Some(&byte) if !buf.is_empty() => {
                    buf[0] = byte;
                    self.1 += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn lines(input: &[u8], trickle: bool) -> Vec<(u64, bool)> {
        let reader: Box<dyn Read> = if trickle {
            Box::new(Trickle(input.to_vec(), 0))
        } else {
            Box::new(input)
        };
        CsvLines::new(
            reader,
            Currencies::new(Currency::default()),
            "a test".into(),
        )
        .unwrap()
        .map(|line| {
            let line = line.unwrap();
            (line.line, line.transfer.is_ok())
        })
        .collect()
    }

    #[test]
    fn lines_are_the_same_however_the_input_is_read() {
        let input = b"\xef\xbb\xbf\"src\",dst,amount\r\n\r\n,alice,1\r\r\n,bob,\"2\r\n\"\r,bob,3\n\n\n,bob,\"4";
        let expected = [(3, true), (5, false), (7, true), (10, false)];
        assert_eq!(lines(input, false), expected);
        assert_eq!(lines(input, true), expected);
    }
}
