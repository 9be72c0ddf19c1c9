//! `wallet transfer`: queue a transfer between two users, or a batch of them.

use super::Context;
use super::queue::{Asked, queue};
use super::transfer_batch;
use crate::cli::TransferArgs;
use crate::error::{Result, WalletError};
use crate::output::Report;

pub(super) fn run(context: &Context, args: TransferArgs) -> Result<Report> {
    if let Some(file) = &args.batch {
        return transfer_batch::run(context, file, &args);
    }
    if args.atomic || args.chunk_size.is_some() {
        return Err(WalletError::Usage(
            "--atomic and --chunk-size work only with --batch".into(),
        ));
    }
    let (Some(src), Some(dst), Some(amount)) = (&args.src, &args.dst, &args.amount) else {
        return Err(WalletError::Usage(
            "transfer needs SRC DST AMOUNT, or --batch FILE".into(),
        ));
    };
    queue(
        context,
        Some(src),
        Some(dst),
        Asked {
            amount,
            currency: args.currency.as_deref(),
        },
        &args.queue,
        "transfer",
        crate::ledger::Kind::Transfer,
    )
}
