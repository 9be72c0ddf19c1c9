//! `wallet balances`: a trial balance of every account, now or then.

use serde::Serialize;

use super::Context;
use crate::cli::BalancesArgs;
use crate::error::Result;
use crate::output::{Human, Report};
use crate::time;

#[derive(Serialize)]
struct UserBalance {
    name: String,
    balance: String,
}

#[derive(Serialize)]
struct TrialBalanceView {
    currency: String,
    /// The instant asked about (`--at`), RFC 3339; null for now.
    at: Option<String>,
    users: Vec<UserBalance>,
    /// The outside world's account: the negative of the money that came
    /// in net of what went out.
    external: String,
    /// Every balance summed: zero in a sound ledger.
    total: String,
}

pub fn run(context: &Context, args: BalancesArgs) -> Result<Report> {
    let at = args.at.as_deref().map(time::parse_instant).transpose()?;
    let mut ledger = context.open_to_read()?;
    let balances = ledger.trial_balance(at)?;
    let currency = ledger.currency().clone();
    let total: i128 = balances
        .users
        .iter()
        .map(|(_, b)| i128::from(*b))
        .sum::<i128>()
        + i128::from(balances.external);
    let total = i64::try_from(total)
        .map_or_else(|_| format!("{total} minor units"), |t| currency.format(t));
    let view = TrialBalanceView {
        currency: currency.code.clone(),
        at: at.map(time::rfc3339),
        users: balances
            .users
            .iter()
            .map(|(name, balance)| UserBalance {
                name: name.clone(),
                balance: currency.format(*balance),
            })
            .collect(),
        external: currency.format(balances.external),
        total,
    };
    let mut rows: Vec<Vec<String>> = view
        .users
        .iter()
        .map(|u| vec![u.name.clone(), u.balance.clone()])
        .collect();
    rows.push(vec!["(external)".into(), view.external.clone()]);
    rows.push(vec!["total".into(), view.total.clone()]);
    let human = Human::Rows {
        header: vec!["account", "balance"],
        rows,
        empty: String::new(),
    };
    Ok(Report::new(view, human))
}
