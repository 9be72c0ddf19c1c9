//! `wallet capture`: turn a live hold into a PENDING transfer.

use super::Context;
use crate::cli::CaptureArgs;
use crate::error::Result;
use crate::ledger::TxId;
use crate::output::views::TransferView;
use crate::output::{Report, WhenQuiet};

pub(super) fn run(context: &Context, args: CaptureArgs) -> Result<Report> {
    let mut ledger = context.open()?;
    let record = ledger.capture(TxId::new(args.tx_id), args.amount.as_deref())?;
    let view = TransferView::in_ledger(&record, ledger.currencies());
    let human = view.human();
    Ok(Report::new(view, human)
        .when_quiet(WhenQuiet::Nothing)
        .committed(
            format!("the capture of hold {}", record.tx_id),
            "`wallet get-transfer` shows whether it is PENDING",
        ))
}
