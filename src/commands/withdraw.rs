//! `wallet withdraw`: queue money going out to outside the ledger.

use super::Context;
use super::queue::{Asked, queue};
use crate::cli::ExternalArgs;
use crate::error::Result;
use crate::output::Report;

pub(super) fn run(context: &Context, args: ExternalArgs) -> Result<Report> {
    queue(
        context,
        Some(&args.name),
        None,
        Asked {
            amount: &args.amount,
            currency: args.currency.as_deref(),
        },
        &args.queue,
        "withdrawal",
        crate::ledger::Kind::Transfer,
    )
}
