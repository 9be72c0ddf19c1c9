//! `wallet get-user`: a user's balance, what is available, pending and
//! held; or the balance at a point of the past.

use serde::Serialize;

use super::Context;
use crate::cli::GetUserArgs;
use crate::domain::UserName;
use crate::error::Result;
use crate::ledger::PointInTime;
use crate::output::views::UserView;
use crate::output::{Human, Report};
use crate::time;

/// `get-user --at`/`--at-tx`: the balance then, and the transfer that left it.
#[derive(Serialize)]
struct BalanceAtView {
    name: String,
    balance: String,
    currency: String,
    /// The instant asked about (`--at`), RFC 3339.
    at: Option<String>,
    /// The last transfer applied to the user by then, if any.
    tx_id: Option<i64>,
    settled_at: Option<String>,
}

pub fn run(context: &Context, args: GetUserArgs) -> Result<Report> {
    let name = UserName::parse(&args.name)?;
    let point = match (&args.at, args.at_tx) {
        (Some(at), _) => Some(PointInTime::Time(time::parse_instant(at)?)),
        (None, Some(tx_id)) => Some(PointInTime::Transfer(tx_id)),
        (None, None) => None,
    };
    let mut ledger = context.open_to_read()?;
    let Some(point) = point else {
        let user = ledger.user(&name)?;
        let view = UserView::new(&user, ledger.currency());
        let human = view.human();
        return Ok(Report::new(view, human));
    };
    let then = ledger.balance_at(&name, point)?;
    let currency = ledger.currency();
    let view = BalanceAtView {
        name: then.name,
        balance: currency.format(then.balance),
        currency: currency.code.clone(),
        at: match point {
            PointInTime::Time(ms) => Some(time::rfc3339(ms)),
            PointInTime::Transfer(_) => None,
        },
        tx_id: then.tx_id,
        settled_at: then.settled_at.map(time::rfc3339),
    };
    let mut fields = vec![
        ("name", view.name.clone()),
        ("balance", format!("{} {}", view.balance, view.currency)),
    ];
    if let Some(at) = &view.at {
        fields.push(("at", at.clone()));
    }
    fields.push((
        "after tx_id",
        view.tx_id
            .map_or_else(|| "(none yet)".to_string(), |id| id.to_string()),
    ));
    fields.push(("settled_at", view.settled_at.clone().unwrap_or_default()));
    Ok(Report::new(view, Human::Record(fields)))
}
