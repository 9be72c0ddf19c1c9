//! `wallet hold`: reserve a user's money for a later transfer.

use super::Context;
use super::queue::{Asked, queue};
use crate::cli::HoldArgs;
use crate::error::Result;
use crate::ledger::{Expiry, Kind};
use crate::output::Report;

pub(super) fn run(context: &Context, args: HoldArgs) -> Result<Report> {
    let expiry = Expiry::asked(args.expires_in.as_deref(), args.expires_at.as_deref())?;
    queue(
        context,
        Some(&args.src),
        Some(&args.dst),
        Asked {
            amount: &args.amount,
            currency: args.currency.as_deref(),
        },
        &args.queue,
        "hold",
        Kind::Hold(expiry),
    )
}
