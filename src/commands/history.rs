//! `wallet history`: a user's transfers, newest first, a page at a time.

use super::Context;
use crate::cli::HistoryArgs;
use crate::domain::UserName;
use crate::error::Result;
use crate::ledger::HistoryQuery;
use crate::ledger::TxId;
use crate::output::Report;
use crate::output::views::TransferView;

pub(super) fn run(context: &Context, args: HistoryArgs) -> Result<Report> {
    let name = UserName::parse(&args.name)?;
    let mut ledger = context.open_to_read()?;
    let records = ledger.history(
        &name,
        &HistoryQuery {
            limit: u32::try_from(args.limit).unwrap_or(u32::MAX),
            status: args.status.map(Into::into),
            before: args.before.map(TxId::new),
        },
    )?;
    let views: Vec<TransferView> = records
        .iter()
        .map(|record| TransferView::in_history(record, ledger.currencies()))
        .collect();
    let filtered = args.status.is_some() || args.before.is_some();
    let empty = if filtered {
        format!("no transfers of {name} match")
    } else {
        format!("no transfers for {name}")
    };
    // A full page may not be all: say how to read on (JSON scripts page
    // with `.[-1].tx_id`).
    if context.show_progress
        && !context.json_errors
        && views.len() as u64 == args.limit
        && let Some(last) = views.last()
    {
        eprintln!(
            "showing the newest {}; the next page: wallet history {name} --before {}",
            views.len(),
            last.tx_id
        );
    }
    let human = TransferView::rows(&views, empty);
    Ok(Report::new(views, human))
}
