//! What `transfer`, `deposit` and `withdraw` share: validating and queueing one transfer.

use serde::Serialize;

use super::Context;
use crate::cli::QueueArgs;
use crate::domain::{IdempotencyKey, Memo, UserName};
use crate::error::Result;
use crate::ledger::TxId;
use crate::ledger::{Kind, NewTransfer, rules};
use crate::money::CurrencyId;
use crate::output::{Human, Report, WhenQuiet};

#[derive(Serialize)]
struct Queued {
    tx_id: TxId,
    status: &'static str,
    /// True when an earlier request with the same key had queued it.
    replayed: bool,
    /// For an exchange: its second leg (`tx_id` is the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pair_tx_id: Option<TxId>,
}

/// An amount as asked: its text, and the code of its currency if one was
/// named (the ledger's default if not).
pub(super) struct Asked<'a> {
    pub amount: &'a str,
    pub currency: Option<&'a str>,
}

/// Validates the parts of a transfer request and queues it. `None` on a
/// side is the ledger's external account.
pub(super) fn queue(
    context: &Context,
    src: Option<&str>,
    dst: Option<&str>,
    asked: Asked<'_>,
    options: &QueueArgs,
    what: &str,
    kind: Kind,
) -> Result<Report> {
    let src = src.map(UserName::parse).transpose()?;
    let dst = dst.map(UserName::parse).transpose()?;
    // Checked before the ledger is opened, so a request that names one
    // user twice says so whether or not there is a ledger.
    rules::check_parties(src.as_ref(), dst.as_ref())?;
    let key = IdempotencyKey::parse_optional(options.key.as_deref())?;
    let memo = Memo::parse_optional(options.memo.as_deref())?;
    let mut ledger = context.open()?;
    // An unknown code is refused before anything is written, and the
    // amount is read at the scale of the currency it names.
    let (currency, amount) = match asked.currency {
        Some(code) => {
            let (id, currency) = ledger.currencies().by_code(code)?;
            (id, currency.parse_amount(asked.amount)?)
        }
        None => (
            CurrencyId::DEFAULT,
            ledger.currency().parse_amount(asked.amount)?,
        ),
    };
    let queued = ledger.queue_transfer(
        NewTransfer::new(src, dst, amount, memo, key)?
            .with_kind(kind)?
            .with_currency(currency),
    )?;
    Ok(queued_report(queued, what, options))
}

/// What a queued request prints: its id and status, or that its key
/// named an earlier one.
pub(super) fn queued_report(
    queued: crate::ledger::Queued,
    what: &str,
    options: &QueueArgs,
) -> Report {
    // An exchange is named by both legs' ids: `exchange 11/12`.
    let ids = match queued.pair_tx_id {
        Some(pair) => format!("{}/{pair}", queued.tx_id),
        None => queued.tx_id.to_string(),
    };
    let line = if queued.replayed {
        format!(
            "{what} {ids} was already queued with this key; it is {}",
            queued.status
        )
    } else {
        let verb = if what == "hold" { "placed" } else { "queued" };
        format!("{verb} {what} {ids} ({})", queued.status)
    };
    let quiet = match queued.pair_tx_id {
        Some(pair) => format!("{} {pair}", queued.tx_id),
        None => queued.tx_id.to_string(),
    };
    let report = Report::new(
        Queued {
            tx_id: queued.tx_id,
            status: queued.status.as_str(),
            replayed: queued.replayed,
            pair_tx_id: queued.pair_tx_id,
        },
        Human::Line(line),
    )
    .when_quiet(WhenQuiet::Id(quiet));
    let advice = if options.key.is_some() {
        "`wallet get-transfer` shows it; a retry with the same --id is exact"
    } else {
        "look it up with `wallet get-transfer` before retrying: without --id a retry queues it again"
    };
    report.committed(format!("{what} {ids}"), advice)
}
