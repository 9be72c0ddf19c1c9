//! `wallet overdraft`: set a user's overdraft limit, or remove it with 0.

use super::{Context, change_policy};
use crate::cli::OverdraftArgs;
use crate::error::Result;
use crate::ledger::PolicyChange;
use crate::output::Report;

pub(super) fn run(context: &Context, args: OverdraftArgs) -> Result<Report> {
    change_policy::run(
        context,
        &args.name,
        args.currency.as_deref(),
        args.memo.as_deref(),
        |currency| Ok(PolicyChange::Overdraft(currency.parse_limit(&args.amount)?)),
    )
}
