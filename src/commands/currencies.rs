//! `wallet currencies`: the ledger's currencies, the default first.

use super::Context;
use crate::error::Result;
use crate::output::Report;
use crate::output::views::CurrencyView;

pub(super) fn run(context: &Context) -> Result<Report> {
    let ledger = context.open_to_read()?;
    let views = CurrencyView::list(ledger.currencies());
    let human = CurrencyView::rows(&views);
    Ok(Report::new(views, human))
}
