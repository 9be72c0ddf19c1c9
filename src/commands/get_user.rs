//! `wallet get-user`: a user's balance, what is available and what is pending.

use super::Context;
use crate::cli::GetUserArgs;
use crate::domain::UserName;
use crate::error::Result;
use crate::report::Report;
use crate::views::UserView;

pub fn run(context: &Context, args: GetUserArgs) -> Result<Report> {
    let name = UserName::parse(&args.name)?;
    let mut ledger = context.open_to_read()?;
    let user = ledger.user(&name)?;
    let view = UserView::new(&user, ledger.currency());
    let human = view.human();
    Ok(Report::new(view, human))
}
