//! `wallet exchange`: queue two transfers in two currencies through a desk,
//! decided as one.

use super::Context;
use super::queue::queued_report;
use crate::cli::ExchangeArgs;
use crate::domain::{IdempotencyKey, Memo, UserName};
use crate::error::{Result, WalletError};
use crate::ledger::{Counter, Kind, NewTransfer, rules};
use crate::output::Report;

pub(super) fn run(context: &Context, args: ExchangeArgs) -> Result<Report> {
    let [counter_amount, counter_code] = args.counter.as_slice() else {
        return Err(WalletError::Usage("--for takes AMOUNT CODE".into()));
    };
    let name = UserName::parse(&args.name)?;
    let desk = UserName::parse(&args.via)?;
    // Checked before the ledger is opened, as for a transfer.
    rules::check_parties(Some(&name), Some(&desk))?;
    let key = IdempotencyKey::parse_optional(args.queue.key.as_deref())?;
    let memo = Memo::parse_optional(args.queue.memo.as_deref())?;
    let mut ledger = context.open()?;
    // Both codes are known, and two, before either amount is read at its
    // own currency's scale; nothing is written before all of it.
    let currencies = ledger.currencies();
    let (paid, paid_currency) = currencies.by_code(&args.code)?;
    let (back, back_currency) = currencies.by_code(counter_code)?;
    rules::check_exchange_currencies(paid, back)?;
    let paid_amount = paid_currency.parse_amount(&args.amount)?;
    let back_amount = back_currency.parse_amount(counter_amount)?;
    let request = NewTransfer::new(Some(name), Some(desk), paid_amount, memo, key)?
        .with_currency(paid)
        .with_kind(Kind::Exchange(Counter {
            amount: back_amount,
            currency: back,
        }))?;
    let queued = ledger.queue_transfer(request)?;
    Ok(queued_report(queued, "exchange", &args.queue))
}
