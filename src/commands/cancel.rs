//! `wallet cancel`: withdraw a transfer that is still PENDING.

use super::Context;
use crate::cli::CancelArgs;
use crate::error::Result;
use crate::ledger::TxId;
use crate::output::views::TransferView;
use crate::output::{Report, WhenQuiet};

pub(super) fn run(context: &Context, args: CancelArgs) -> Result<Report> {
    let mut ledger = context.open()?;
    let record = ledger.cancel(TxId::new(args.tx_id))?;
    let view = TransferView::in_ledger(&record, ledger.currencies());
    let human = view.human();
    Ok(Report::new(view, human)
        .when_quiet(WhenQuiet::Nothing)
        .committed(
            format!("the cancel of transfer {}", record.tx_id),
            "`wallet get-transfer` shows its status",
        ))
}
