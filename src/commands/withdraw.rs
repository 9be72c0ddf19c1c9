//! `wallet withdraw`: queue money going out to outside the ledger.

use super::Context;
use super::queue::queue;
use crate::cli::ExternalArgs;
use crate::error::Result;
use crate::output::Report;

pub(super) fn run(context: &Context, args: ExternalArgs) -> Result<Report> {
    queue(
        context,
        Some(&args.name),
        None,
        &args.amount,
        args.currency.as_deref(),
        &args.queue,
        "withdrawal",
        crate::ledger::Kind::Transfer,
    )
}
