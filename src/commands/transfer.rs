//! `wallet transfer`: queue a transfer between two users.

use super::Context;
use super::queue::queue;
use crate::cli::TransferArgs;
use crate::error::Result;
use crate::report::Report;

pub fn run(context: &Context, args: TransferArgs) -> Result<Report> {
    queue(
        context,
        Some(&args.src),
        Some(&args.dst),
        &args.amount,
        &args.queue,
        "transfer",
    )
}
