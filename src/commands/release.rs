//! `wallet release`: void a live hold.

use super::Context;
use crate::cli::ReleaseArgs;
use crate::error::Result;
use crate::ledger::TxId;
use crate::output::views::TransferView;
use crate::output::{Report, WhenQuiet};

pub(super) fn run(context: &Context, args: ReleaseArgs) -> Result<Report> {
    let mut ledger = context.open()?;
    let record = ledger.release(TxId::new(args.tx_id))?;
    let view = TransferView::in_ledger(&record, ledger.currencies());
    let human = view.human();
    Ok(Report::new(view, human)
        .when_quiet(WhenQuiet::Nothing)
        .committed(
            format!("the release of hold {}", record.tx_id),
            "`wallet get-transfer` shows whether it is RELEASED",
        ))
}
