//! `wallet hold`: reserve a user's money for a later transfer.

use super::Context;
use super::queue::queue;
use crate::cli::HoldArgs;
use crate::error::Result;
use crate::ledger::{Expiry, Kind};
use crate::output::Report;
use crate::time;

pub(super) fn run(context: &Context, args: HoldArgs) -> Result<Report> {
    let expiry = match (&args.expires_in, &args.expires_at) {
        (Some(duration), _) => Expiry::After(time::parse_duration(duration)?),
        (None, Some(at)) => Expiry::At(time::parse_instant(at)?),
        (None, None) => Expiry::Never,
    };
    queue(
        context,
        Some(&args.src),
        Some(&args.dst),
        &args.amount,
        &args.queue,
        "hold",
        Kind::Hold(expiry),
    )
}
