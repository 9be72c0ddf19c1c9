//! `wallet freeze`: freeze a user: nothing leaves the account until it is unfrozen.

use super::{Context, change_policy};
use crate::cli::PolicyArgs;
use crate::error::Result;
use crate::ledger::PolicyChange;
use crate::output::Report;

pub(super) fn run(context: &Context, args: PolicyArgs) -> Result<Report> {
    change_policy::run(context, &args.name, None, args.memo.as_deref(), |_| {
        Ok(PolicyChange::Freeze)
    })
}
