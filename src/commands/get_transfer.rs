//! `wallet get-transfer`: one transfer, by id or by idempotency key.

use super::Context;
use crate::cli::GetTransferArgs;
use crate::domain::IdempotencyKey;
use crate::error::{Result, WalletError};
use crate::ledger::TransferRef;
use crate::ledger::TxId;
use crate::output::Report;
use crate::output::views::TransferView;

pub(super) fn run(context: &Context, args: GetTransferArgs) -> Result<Report> {
    let key = IdempotencyKey::parse_optional(args.key.as_deref())?;
    let mut ledger = context.open_to_read()?;
    let record = match (args.tx_id, key) {
        (Some(tx_id), _) => ledger.transfer(TransferRef::Id(TxId::new(tx_id)))?,
        (None, Some(key)) => ledger.transfer(TransferRef::Key(&key))?,
        (None, None) => {
            return Err(WalletError::Usage("give a transfer id or --id KEY".into()));
        }
    };
    let view = TransferView::in_ledger(&record, ledger.currencies());
    let human = view.human();
    Ok(Report::new(view, human))
}
