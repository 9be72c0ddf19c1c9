//! The formats `wallet export` writes: JSON Lines, CSV and an hledger
//! journal, one transfer at a time.

use std::io::{self, Write};

use serde::Serialize;

use crate::ledger::TxId;
use crate::ledger::{PolicyChangeRecord, Status, TransferRecord};
use crate::money::{Currencies, Currency};
use crate::output::views::TransferView;

/// One output format, fed transfers in `tx_id` order.
pub(crate) trait ExportWriter {
    fn begin(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn write(&mut self, record: &TransferRecord) -> io::Result<()>;
    /// A policy change, fed before every transfer, by time; only the
    /// journal writes them.
    fn change(&mut self, _change: &PolicyChangeRecord) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()>;
}

/// One transfer object per line, exactly as `get-transfer --json` prints it.
pub(crate) struct JsonLines<W: Write> {
    pub out: W,
    pub currencies: Currencies,
}

impl<W: Write> ExportWriter for JsonLines<W> {
    fn write(&mut self, record: &TransferRecord) -> io::Result<()> {
        serde_json::to_writer(
            &mut self.out,
            &TransferView::in_ledger(record, &self.currencies),
        )?;
        self.out.write_all(b"\n")
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The transfer object's fields as CSV columns: the outside world (a null
/// `src` or `dst`) and every other absent value as an empty field, refund
/// ids separated by spaces. Columns added later come last, so a reader of
/// the older columns by position still reads them.
#[derive(Serialize)]
struct CsvRow<'a> {
    tx_id: TxId,
    src: &'a str,
    dst: &'a str,
    amount: &'a str,
    memo: &'a str,
    key: &'a str,
    status: &'a str,
    reason: &'a str,
    created_at: &'a str,
    settled_at: &'a str,
    hold_amount: &'a str,
    expires_at: &'a str,
    refund_of: String,
    refunded: &'a str,
    refunds: String,
    currency: &'a str,
    pair_tx_id: String,
}

/// CSV with a header row, quoted as RFC 4180 says (by the `csv` crate).
pub(crate) struct Csv<W: Write> {
    pub out: csv::Writer<W>,
    pub currencies: Currencies,
}

impl<W: Write> ExportWriter for Csv<W> {
    fn write(&mut self, record: &TransferRecord) -> io::Result<()> {
        let view = TransferView::in_ledger(record, &self.currencies);
        let text = |v: &Option<String>| v.as_deref().unwrap_or("").to_string();
        let (src, dst, memo, key, reason, settled_at, hold_amount, expires_at) = (
            text(&view.src),
            text(&view.dst),
            text(&view.memo),
            text(&view.key),
            text(&view.reason),
            text(&view.settled_at),
            text(&view.hold_amount),
            text(&view.expires_at),
        );
        let row = CsvRow {
            tx_id: view.tx_id,
            src: &src,
            dst: &dst,
            amount: &view.amount,
            memo: &memo,
            key: &key,
            status: view.status,
            reason: &reason,
            created_at: &view.created_at,
            settled_at: &settled_at,
            hold_amount: &hold_amount,
            expires_at: &expires_at,
            refund_of: view.refund_of.map(|id| id.to_string()).unwrap_or_default(),
            refunded: &view.refunded,
            refunds: view
                .refunds
                .iter()
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            currency: &view.currency,
            pair_tx_id: view.pair_tx_id.map(|id| id.to_string()).unwrap_or_default(),
        };
        self.out.serialize(row).map_err(csv_to_io)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The writer's own I/O error, kind and all: a reader gone away
/// (`BrokenPipe`) must stay that, so the export ends quietly.
fn csv_to_io(err: csv::Error) -> io::Error {
    if !err.is_io_error() {
        return io::Error::other(err);
    }
    match err.into_kind() {
        csv::ErrorKind::Io(err) => err,
        _ => unreachable!("is_io_error said so"),
    }
}

/// The account a user's money is kept in, in the journal.
pub(crate) fn hledger_account(user: Option<&str>) -> String {
    match user {
        Some(name) => format!("assets:wallet:{name}"),
        None => "equity:external".to_string(),
    }
}

/// An hledger journal: a transaction per PENDING (`!`) or COMPLETED (`*`)
/// transfer, dated the day it was queued (PENDING) or applied (COMPLETED),
/// its `tx_id` as the transaction's code and as a tag; every other transfer
/// (FAILED, CANCELLED, a hold) moved no money and is written as a comment
/// line, so the journal still accounts for every `tx_id`. An exchange is
/// one transaction of four postings, coded and dated by its first leg:
/// the desk gains what the user gives in one commodity, the user gains
/// what the desk gives in the other, so it balances within each commodity
/// with no price between them.
///
/// Memos and keys come back from hledger exactly: the description is the
/// memo when hledger keeps a description as written, and the key is a tag
/// when hledger keeps a tag value as written; otherwise each is a tag
/// holding a JSON string (see [`tag_value`]).
pub(crate) struct Hledger<W: Write> {
    pub out: W,
    /// Each a commodity, declared with its own scale; every posting is in
    /// its transfer's.
    pub currencies: Currencies,
    /// The user accounts the journal used, declared at its end so that
    /// `hledger check --strict` passes: one entry per user, not per transfer.
    pub accounts: std::collections::BTreeSet<String>,
    /// Policy changes not written yet, by time: each is a comment line
    /// before the first transfer created after it.
    pub changes: std::collections::VecDeque<PolicyChangeRecord>,
    /// Exchange legs whose other leg has not come yet, by their own
    /// `tx_id`: one at a time, as a pair's legs come together.
    pub waiting: std::collections::BTreeMap<TxId, TransferRecord>,
}

/// An exchange named by its legs, the smaller id first: `11/12`.
fn legs(one: TxId, other: TxId) -> String {
    format!("{}/{}", one.min(other), one.max(other))
}

/// An amount in its commodity, at the currency's scale.
fn amount(minor: i64, currency: &Currency) -> String {
    format!("{} {}", currency.format(minor), symbol(currency))
}

/// hledger reads a commodity symbol with a digit only in double quotes.
fn symbol(currency: &Currency) -> String {
    let code = &currency.code;
    if code.chars().all(|c| c.is_ascii_alphabetic()) {
        code.clone()
    } else {
        format!("\"{code}\"")
    }
}

/// The `commodity` directive's sample amount: hledger takes the decimal
/// places from it, and refuses one without a decimal mark (`0` for a
/// currency without decimals must be `0.`).
fn commodity_format(currency: &Currency) -> String {
    let zero = currency.format(0);
    if currency.scale == 0 {
        format!("{zero}. {}", symbol(currency))
    } else {
        format!("{zero} {}", symbol(currency))
    }
}

/// The currency a record moves; the default for an id the list does not
/// hold, which only a currency added since it was read can be.
fn currency_of<'c>(currencies: &'c Currencies, record: &TransferRecord) -> &'c Currency {
    currencies
        .get(record.currency)
        .unwrap_or_else(|| currencies.default_currency())
}

impl<W: Write> Hledger<W> {
    /// A transfer's two postings: its destination gains the amount in its
    /// currency, its source gives it.
    fn postings(&mut self, record: &TransferRecord) -> Vec<(String, String)> {
        let currency = currency_of(&self.currencies, record);
        let (to, from) = (
            hledger_account(record.dst.as_deref()),
            hledger_account(record.src.as_deref()),
        );
        for account in [&to, &from] {
            if !self.accounts.contains(account.as_str()) {
                self.accounts.insert(account.clone());
            }
        }
        vec![
            (to, amount(record.amount, currency)),
            (from, amount(-record.amount, currency)),
        ]
    }

    /// One entry, headed by `record` (its date, code, memo and tags), with
    /// `postings`, which balance within each commodity.
    fn entry(
        &mut self,
        mark: &str,
        record: &TransferRecord,
        postings: &[(String, String)],
    ) -> io::Result<()> {
        let when = match record.status {
            Status::Completed => record.settled_at.unwrap_or(record.created_at),
            _ => record.created_at,
        };
        let date = &crate::time::rfc3339(when.get())[..10];
        let mut tags = format!("tx_id:{}", record.tx_id);
        if let Some(pair) = record.pair_tx_id {
            tags.push_str(&format!(", pair_tx_id:{pair}"));
        }
        if let Some(key) = record.idempotency_key.as_deref() {
            tags.push_str(&format!(", key:{}", tag_value(key)));
        }
        if let Some(original) = record.refund_of {
            tags.push_str(&format!(", refund_of:{original}"));
        }
        // No memo is an empty description; a memo hledger would not keep
        // as written is a `memo` tag, with a readable likeness described.
        let description = match record.memo.as_deref() {
            None => String::new(),
            Some(memo) if description_safe(memo) => memo.to_string(),
            Some(memo) => {
                tags.push_str(&format!(", memo:{}", tag_value(memo)));
                memo.replace(|c: char| c == ';' || c.is_control(), " ")
                    .trim()
                    .to_string()
            }
        };
        let space = if description.is_empty() { "" } else { " " };
        writeln!(
            self.out,
            "{date} {mark} ({}){space}{description}  ; {tags}",
            record.tx_id
        )?;
        for (account, amount) in postings {
            writeln!(self.out, "    {account}  {amount}")?;
        }
        writeln!(self.out)
    }

    /// A leg whose other leg this export does not hold, or holds in another
    /// status: no entry could balance as the books do, so it is a comment,
    /// and `verify`'s `pairs` check names the fault.
    fn unmatched(&mut self, record: &TransferRecord) -> io::Result<()> {
        writeln!(
            self.out,
            "; tx_id {} {}: {} -> {} {}, one leg of exchange {} without its other leg",
            record.tx_id,
            record.status.as_str(),
            record.src.as_deref().unwrap_or("(external)"),
            record.dst.as_deref().unwrap_or("(external)"),
            amount(record.amount, currency_of(&self.currencies, record)),
            legs(record.tx_id, record.pair_tx_id.unwrap_or(record.tx_id))
        )
    }

    /// The currency a policy change's limit is in: an overdraft limit is
    /// one currency's.
    fn change_currency(&self, change: &PolicyChangeRecord) -> &Currency {
        self.currencies
            .get(change.currency)
            .unwrap_or_else(|| self.currencies.default_currency())
    }

    /// Writes, as comment lines, the policy changes made at or before `until`.
    fn changes_until(&mut self, until: i64) -> io::Result<()> {
        while let Some(change) = self.changes.front() {
            if change.at.get() > until {
                break;
            }
            let line = self.change_line(change);
            writeln!(self.out, "{line}")?;
            self.changes.pop_front();
        }
        Ok(())
    }

    /// `; 2026-12-03 change 3: alice overdraft limit 50.00 — memo`: hledger
    /// ignores it, and a memo (which holds no line end) cannot leave it.
    fn change_line(&self, change: &PolicyChangeRecord) -> String {
        let date = &crate::time::rfc3339(change.at.get())[..10];
        let memo = change
            .memo
            .as_deref()
            .map(|memo| format!(" — {}", memo.replace(char::is_control, " ")))
            .unwrap_or_default();
        let currency = self.change_currency(change);
        // The default currency's limits read as they always did.
        let code = if change.currency == crate::money::CurrencyId::DEFAULT {
            String::new()
        } else {
            format!(" in {}", currency.code)
        };
        format!(
            "; {date} change {}: {} {}{code}{memo}",
            change.change_id,
            change.user,
            crate::output::policy_views::describe(change.change, currency)
        )
    }
}

/// Whether hledger reads `text` back unchanged as a transaction's
/// description: a `;` would start a comment, a line end the next line, and
/// blanks at either end are trimmed. (A leading `(…)` would be a code, but
/// the code, the `tx_id`, comes first.)
fn description_safe(text: &str) -> bool {
    !text.is_empty()
        && !text.contains(';')
        && !text.chars().any(char::is_control)
        && text.trim() == text
}

/// Whether hledger reads `text` back unchanged as a tag's value, which ends
/// at a comma or the line's end and is trimmed. One that starts with a
/// quote would be taken for the JSON form.
fn tag_safe(text: &str) -> bool {
    !text.is_empty()
        && !text.contains(',')
        && !text.starts_with('"')
        && !text.chars().any(char::is_control)
        && text.trim() == text
}

/// A tag's value: the text as it is where hledger keeps it so, else a JSON
/// string with its commas written `\u002c`, which hledger keeps whole and
/// any JSON reader turns back into the text.
fn tag_value(text: &str) -> String {
    if tag_safe(text) {
        return text.to_string();
    }
    serde_json::to_string(text)
        .unwrap_or_default()
        .replace(',', "\\u002c")
}

impl<W: Write> ExportWriter for Hledger<W> {
    fn begin(&mut self) -> io::Result<()> {
        writeln!(
            self.out,
            "; exported by wallet: every transfer, oldest first"
        )?;
        writeln!(
            self.out,
            "; * COMPLETED, ! PENDING; FAILED, CANCELLED and holds moved no money and appear as comments, as do policy changes"
        )?;
        writeln!(
            self.out,
            "; the code is the tx_id; the memo is the description, or the memo tag if there is one; a tag value in double quotes is a JSON string"
        )?;
        writeln!(
            self.out,
            "; an exchange is one transaction with both legs' postings, coded by its first leg and tagged pair_tx_id with its second"
        )?;
        for (_, currency) in self.currencies.iter() {
            writeln!(self.out, "commodity {}", commodity_format(currency))?;
        }
        writeln!(self.out, "account {}", hledger_account(None))?;
        writeln!(self.out)
    }

    fn change(&mut self, change: &PolicyChangeRecord) -> io::Result<()> {
        self.changes.push_back(change.clone());
        Ok(())
    }

    fn write(&mut self, record: &TransferRecord) -> io::Result<()> {
        self.changes_until(record.created_at.get())?;
        let mark = match record.status {
            Status::Completed => "*",
            Status::Pending => "!",
            other => {
                let pair = record
                    .pair_tx_id
                    .map(|pair| format!(" (one leg of exchange {})", legs(record.tx_id, pair)))
                    .unwrap_or_default();
                return writeln!(
                    self.out,
                    "; tx_id {} {}{}: {} -> {} {}{pair}",
                    record.tx_id,
                    other.as_str(),
                    record
                        .reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default(),
                    record.src.as_deref().unwrap_or("(external)"),
                    record.dst.as_deref().unwrap_or("(external)"),
                    amount(
                        record.hold_amount.unwrap_or(record.amount),
                        currency_of(&self.currencies, record)
                    )
                );
            }
        };
        let Some(pair) = record.pair_tx_id else {
            let postings = self.postings(record);
            return self.entry(mark, record, &postings);
        };
        // An exchange is one entry: its legs share their status and the
        // time they were made, so every filter keeps both or neither, and
        // the second comes soon after the first.
        match self.waiting.remove(&pair) {
            Some(partner) if partner.status == record.status => {
                let (first, second) = if partner.tx_id < record.tx_id {
                    (&partner, record)
                } else {
                    (record, &partner)
                };
                let mut postings = self.postings(first);
                postings.extend(self.postings(second));
                self.entry(mark, first, &postings)
            }
            Some(partner) => {
                self.unmatched(&partner)?;
                self.unmatched(record)
            }
            None => {
                self.waiting.insert(record.tx_id, record.clone());
                Ok(())
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        for leg in std::mem::take(&mut self.waiting).into_values() {
            self.unmatched(&leg)?;
        }
        self.changes_until(i64::MAX)?;
        for account in &self.accounts {
            if account != &hledger_account(None) {
                writeln!(self.out, "account {account}")?;
            }
        }
        self.out.flush()
    }
}
