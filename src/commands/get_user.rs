//! `wallet get-user`: a user's balance, what is available, pending and
//! held; or the balance at a point of the past.

use super::Context;
use crate::cli::GetUserArgs;
use crate::domain::UserName;
use crate::error::Result;
use crate::ledger::{Instant, TxId};
use crate::ledger::{PointInTime, TransferRef};
use crate::money::CurrencyId;
use crate::output::views::UserView;
use crate::output::{Report, balance_views};
use crate::time;

pub(super) fn run(context: &Context, args: GetUserArgs) -> Result<Report> {
    let name = UserName::parse(&args.name)?;
    let point = match (&args.at, args.at_tx) {
        (Some(at), _) => Some(PointInTime::Time(Instant::new(time::parse_instant(at)?))),
        (None, Some(tx_id)) => Some(PointInTime::Transfer(TxId::new(tx_id))),
        (None, None) => None,
    };
    let mut ledger = context.open_to_read()?;
    let shown = match args.currency.as_deref() {
        Some(code) => ledger.currencies().by_code(code)?.0,
        None => CurrencyId::DEFAULT,
    };
    let Some(point) = point else {
        let user = ledger.user(&name)?;
        let view = UserView::with_balances(&user, ledger.currencies(), shown);
        let human = view.human();
        return Ok(Report::new(view, human));
    };
    // Right after a transfer, the balance it moved is the one asked about,
    // unless a currency is named.
    let shown = match (point, args.currency.is_some()) {
        (PointInTime::Transfer(tx_id), false) => ledger
            .transfer(TransferRef::Id(tx_id))
            .map_or(shown, |record| record.currency),
        _ => shown,
    };
    let then = ledger.balance_at(&name, point, shown)?;
    let currency = ledger
        .currencies()
        .get(shown)
        .unwrap_or_else(|| ledger.currency());
    Ok(balance_views::balance_at(then, point, currency))
}
