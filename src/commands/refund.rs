//! `wallet refund`: queue a transfer back, linked to the one it refunds.

use super::Context;
use super::queue::queued_report;
use crate::cli::RefundArgs;
use crate::domain::{IdempotencyKey, Memo};
use crate::error::Result;
use crate::ledger::TxId;
use crate::output::Report;

pub(super) fn run(context: &Context, args: RefundArgs) -> Result<Report> {
    let key = IdempotencyKey::parse_optional(args.queue.key.as_deref())?;
    let memo = Memo::parse_optional(args.queue.memo.as_deref())?;
    let mut ledger = context.open()?;
    let queued = ledger.refund(TxId::new(args.tx_id), args.amount.as_deref(), memo, key)?;
    Ok(queued_report(queued, "refund", &args.queue))
}
