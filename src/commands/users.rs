//! `wallet users`: every user with their figures, a page at a time.

use super::Context;
use crate::cli::UsersArgs;
use crate::domain::UserName;
use crate::error::Result;
use crate::money::CurrencyId;
use crate::output::Report;
use crate::output::views::UserView;

pub(super) fn run(context: &Context, args: UsersArgs) -> Result<Report> {
    let after = args.after.as_deref().map(UserName::parse).transpose()?;
    let mut ledger = context.open_to_read()?;
    let limit = u32::try_from(args.limit).unwrap_or(u32::MAX);
    let users = ledger.users(after.as_ref(), limit)?;
    let views: Vec<UserView> = users
        .iter()
        .map(|user| UserView::with_balances(user, ledger.currencies(), CurrencyId::DEFAULT))
        .collect();
    if context.show_progress
        && !context.json_errors
        && views.len() as u64 == args.limit
        && let Some(last) = views.last()
    {
        eprintln!(
            "showing {} users; the next page: wallet users --after {}",
            views.len(),
            last.name
        );
    }
    let empty = match &after {
        Some(name) => format!("no users after {name}"),
        None => "no users yet".to_string(),
    };
    let human = UserView::rows(&views, empty);
    Ok(Report::new(views, human))
}
