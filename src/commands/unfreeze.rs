//! `wallet unfreeze`: unfreeze a user: money may leave the account again.

use super::{Context, change_policy};
use crate::cli::PolicyArgs;
use crate::error::Result;
use crate::ledger::PolicyChange;
use crate::output::Report;

pub(super) fn run(context: &Context, args: PolicyArgs) -> Result<Report> {
    change_policy::run(context, &args.name, None, args.memo.as_deref(), |_| {
        Ok(PolicyChange::Unfreeze)
    })
}
