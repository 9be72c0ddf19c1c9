//! What `overdraft`, `freeze`, `unfreeze` and `close` share: validate at
//! the edge, change the policy in one transaction, print the change.

use super::Context;
use crate::domain::{Memo, UserName};
use crate::error::Result;
use crate::ledger::PolicyChange;
use crate::money::{Currency, CurrencyId};
use crate::output::policy_views::PolicyChangeView;
use crate::output::{Report, WhenQuiet};

/// Changes `name`'s policy to what `change` makes of the currency named by
/// `code` (the ledger's default if none; a limit is read in it) and
/// reports the recorded change.
pub(super) fn run(
    context: &Context,
    name: &str,
    code: Option<&str>,
    memo: Option<&str>,
    change: impl FnOnce(&Currency) -> Result<PolicyChange>,
) -> Result<Report> {
    let name = UserName::parse(name)?;
    let memo = Memo::parse_optional(memo)?;
    let mut ledger = context.open()?;
    let (id, currency) = match code {
        Some(code) => ledger.currencies().by_code(code)?,
        None => (CurrencyId::DEFAULT, ledger.currency()),
    };
    let currency = currency.clone();
    let change = change(&currency)?;
    let record = ledger.change_policy(&name, change, id, memo.as_ref())?;
    let currency = &currency;
    let human = PolicyChangeView::human(&record, currency);
    Ok(Report::new(PolicyChangeView::new(&record, currency), human)
        .when_quiet(WhenQuiet::Id(record.change_id.to_string()))
        .committed(
            format!("the {} change of user '{}'", change.kind(), record.user),
            "`wallet get-user` shows the policy in force",
        ))
}
