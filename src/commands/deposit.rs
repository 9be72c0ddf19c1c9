//! `wallet deposit`: queue money coming in from outside the ledger.

use super::Context;
use super::queue::{Asked, queue};
use crate::cli::ExternalArgs;
use crate::error::Result;
use crate::output::Report;

pub(super) fn run(context: &Context, args: ExternalArgs) -> Result<Report> {
    queue(
        context,
        None,
        Some(&args.name),
        Asked {
            amount: &args.amount,
            currency: args.currency.as_deref(),
        },
        &args.queue,
        "deposit",
        crate::ledger::Kind::Transfer,
    )
}
