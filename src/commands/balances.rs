//! `wallet balances`: a trial balance of every account, now or then.

use super::Context;
use crate::cli::BalancesArgs;
use crate::error::Result;
use crate::ledger::Instant;
use crate::output::{Report, balance_views};
use crate::time;

pub(super) fn run(context: &Context, args: BalancesArgs) -> Result<Report> {
    let at = args
        .at
        .as_deref()
        .map(time::parse_instant)
        .transpose()?
        .map(Instant::new);
    let mut ledger = context.open_to_read()?;
    let shown = args
        .currency
        .as_deref()
        .map(|code| ledger.currencies().by_code(code).map(|(id, _)| id))
        .transpose()?;
    let books = ledger.trial_balance(at)?;
    Ok(balance_views::trial_balance(
        &books,
        at,
        ledger.currencies(),
        shown,
    ))
}
