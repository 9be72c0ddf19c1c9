//! `wallet history`: a user's transfers, newest first, a page at a time.

use super::Context;
use crate::cli::HistoryArgs;
use crate::domain::UserName;
use crate::error::Result;
use crate::ledger::HistoryQuery;
use crate::report::Report;
use crate::views::TransferView;

pub fn run(context: &Context, args: HistoryArgs) -> Result<Report> {
    let name = UserName::parse(&args.name)?;
    let mut ledger = context.open_to_read()?;
    let records = ledger.history(
        &name,
        &HistoryQuery {
            limit: args.limit,
            status: args.status.map(Into::into),
            before: args.before,
        },
    )?;
    let views: Vec<TransferView> = records
        .iter()
        .map(|record| TransferView::new(record, ledger.currency()))
        .collect();
    let filtered = args.status.is_some() || args.before.is_some();
    let empty = if filtered {
        format!("no transfers of {name} match")
    } else {
        format!("no transfers for {name}")
    };
    let human = TransferView::rows(&views, empty);
    Ok(Report::new(views, human))
}
