//! `transfer --batch` in JSON Lines: one transfer object a line, numbered
//! by physical line, blank lines skipped.

use std::io::{BufRead, Read};

use serde::Deserialize;

use super::read_error;
use crate::domain::{IdempotencyKey, Memo, UserName};
use crate::error::{Result, WalletError};
use crate::ledger::{BatchLine, Counter, Expiry, Kind, NewTransfer, rules};
use crate::money::Currencies;

/// Longer lines are refused (and skipped) rather than read into memory whole.
const MAX_LINE_BYTES: u64 = 64 * 1024;

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
    /// A code of the ledger's currencies; its default when absent.
    #[serde(default)]
    currency: Option<String>,
    /// An exchange instead of a transfer (see `wallet exchange`): `src`
    /// pays `amount` to the desk `via`, which pays `for_amount` back in
    /// `for_currency`.
    #[serde(default)]
    exchange: bool,
    #[serde(default)]
    via: Option<String>,
    #[serde(default)]
    for_amount: Option<String>,
    #[serde(default)]
    for_currency: Option<String>,
}

/// Reads numbered lines and parses each into a transfer, skipping blank ones.
pub(crate) struct JsonLines<R> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
    currencies: Currencies,
    /// The input ended: a terminal or a FIFO may offer more after an
    /// end-of-file, but a batch is what came before the first one.
    ended: bool,
    /// The input as errors name it: `'payroll.jsonl'` or `standard input`.
    source: String,
}

impl<R: BufRead> JsonLines<R> {
    pub(crate) fn new(reader: R, currencies: Currencies, source: String) -> Self {
        Self {
            reader,
            buf: Vec::with_capacity(256),
            line: 0,
            currencies,
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
                    "{}; src, dst, id, memo and currency are strings or null, and amount is a string such as \"5.00\", never a JSON number",
                    e.to_string().replace("struct LineDoc", "a transfer object")
                ),
                _ => format!("it is not valid JSON ({e})"),
            })
        })?;
        if doc.exchange {
            return self.exchange(doc);
        }
        if doc.via.is_some() || doc.for_amount.is_some() || doc.for_currency.is_some() {
            return Err(WalletError::InvalidLine(
                "via, for_amount and for_currency belong to an exchange (\"exchange\": true)"
                    .into(),
            ));
        }
        let src = doc.src.as_deref().map(UserName::parse).transpose()?;
        let dst = doc.dst.as_deref().map(UserName::parse).transpose()?;
        // Both sides are checked before the amount, so a line that names no
        // user or one user twice says so whatever its amount.
        rules::check_parties(src.as_ref(), dst.as_ref())?;
        let (currency, amount) =
            super::amount_in(&self.currencies, doc.currency.as_deref(), &doc.amount)?;
        let key = IdempotencyKey::parse_optional(doc.id.as_deref())?;
        let memo = Memo::parse_optional(doc.memo.as_deref())?;
        let transfer = NewTransfer::new(src, dst, amount, memo, key)?.with_currency(currency);
        if !doc.hold {
            if doc.expires_in.is_some() || doc.expires_at.is_some() {
                return Err(WalletError::InvalidLine(
                    "expires_in and expires_at belong to a hold (\"hold\": true)".into(),
                ));
            }
            return Ok(transfer);
        }
        let expiry = Expiry::asked(doc.expires_in.as_deref(), doc.expires_at.as_deref())?;
        transfer.with_kind(Kind::Hold(expiry))
    }

    /// An exchange line: `src` and `via` name users, each amount is read at
    /// its own currency's scale, and nothing of a transfer's other kinds
    /// comes with it.
    fn exchange(&self, doc: LineDoc) -> Result<NewTransfer> {
        if doc.dst.is_some() || doc.hold || doc.expires_in.is_some() || doc.expires_at.is_some() {
            return Err(WalletError::InvalidLine(
                "an exchange names its desk with via, and takes no dst, hold or expiry".into(),
            ));
        }
        let (Some(src), Some(via), Some(for_amount), Some(for_currency)) = (
            doc.src.as_deref(),
            doc.via.as_deref(),
            doc.for_amount.as_deref(),
            doc.for_currency.as_deref(),
        ) else {
            return Err(WalletError::InvalidLine(
                "an exchange needs src, via, amount, for_amount and for_currency".into(),
            ));
        };
        let src = UserName::parse(src)?;
        let desk = UserName::parse(via)?;
        rules::check_parties(Some(&src), Some(&desk))?;
        let (currency, amount) =
            super::amount_in(&self.currencies, doc.currency.as_deref(), &doc.amount)?;
        let (back, back_amount) =
            super::amount_in(&self.currencies, Some(for_currency), for_amount)?;
        let key = IdempotencyKey::parse_optional(doc.id.as_deref())?;
        let memo = Memo::parse_optional(doc.memo.as_deref())?;
        NewTransfer::new(Some(src), Some(desk), amount, memo, key)?
            .with_currency(currency)
            .with_kind(Kind::Exchange(Counter {
                amount: back_amount,
                currency: back,
            }))
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

#[cfg(test)]
mod tests {
    use std::io::{self, BufReader, Read};

    use super::JsonLines;
    use crate::money::{Currencies, Currency};

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
        let mut lines = JsonLines::new(
            BufReader::new(input),
            Currencies::new(Currency::default()),
            "a test".into(),
        );
        assert!(lines.next().is_some());
        for _ in 0..3 {
            assert!(
                lines.next().is_none(),
                "nothing after the first end of input"
            );
        }
    }
}
