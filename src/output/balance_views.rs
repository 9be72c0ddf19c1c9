//! The JSON shapes and tables of balances at a point of time: one user's
//! (`get-user --at`/`--at-tx`) and every account's (`balances`).

use serde::Serialize;

use super::views::yes_no;
use super::{Human, Report, Titled};
use crate::ledger::{BalanceAt, PointInTime, TrialBalance};
use crate::ledger::{Instant, TxId};
use crate::money::{Currencies, Currency, CurrencyId};
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
    tx_id: Option<TxId>,
    settled_at: Option<String>,
    /// The policy in force then.
    overdraft: String,
    frozen: bool,
    closed: bool,
}

/// A user's balance at `point`, as a record.
pub(crate) fn balance_at(then: BalanceAt, point: PointInTime, currency: &Currency) -> Report {
    let view = BalanceAtView {
        name: then.name,
        balance: currency.format(then.balance),
        currency: currency.code.clone(),
        at: match point {
            PointInTime::Time(ms) => Some(time::rfc3339(ms.get())),
            PointInTime::Transfer(_) => None,
        },
        tx_id: then.tx_id,
        settled_at: then.settled_at.map(|at| time::rfc3339(at.get())),
        overdraft: currency.format(then.policy.overdraft),
        frozen: then.policy.frozen,
        closed: then.policy.closed,
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
    fields.push(("overdraft", format!("{} {}", view.overdraft, view.currency)));
    fields.push(("frozen", yes_no(view.frozen)));
    fields.push(("closed", yes_no(view.closed)));
    Report::new(view, Human::Record(fields))
}

#[derive(Serialize)]
struct UserBalance {
    name: String,
    balance: String,
    /// Whether the user was closed by then.
    closed: bool,
}

/// One currency's trial balance.
#[derive(Serialize)]
struct CurrencyBook {
    users: Vec<UserBalance>,
    /// The outside world's account: the negative of the money that came
    /// in net of what went out.
    external: String,
    /// Every balance summed: zero in a sound ledger.
    total: String,
}

#[derive(Serialize)]
struct TrialBalanceView {
    currency: String,
    /// The instant asked about (`--at`), RFC 3339; null for now.
    at: Option<String>,
    /// The shown currency's book, at the top level.
    #[serde(flatten)]
    shown: CurrencyBook,
    /// Every currency's book by code, the default first, then in the
    /// order they were added.
    currencies: serde_json::Map<String, serde_json::Value>,
}

/// One currency's book from the engine's figures: its users (every user in
/// the default currency, those with a balance in another), the outside
/// world's account and their total.
fn book(balances: Option<&TrialBalance>, currency: &Currency) -> CurrencyBook {
    let empty = TrialBalance::default();
    let balances = balances.unwrap_or(&empty);
    // Summed wider than a balance: a damaged ledger's total may not fit,
    // and it is shown whatever it is.
    let total: i128 = balances
        .users
        .iter()
        .map(|user| i128::from(user.balance))
        .sum::<i128>()
        + i128::from(balances.external);
    let total = i64::try_from(total)
        .map_or_else(|_| format!("{total} minor units"), |t| currency.format(t));
    CurrencyBook {
        users: balances
            .users
            .iter()
            .map(|user| UserBalance {
                name: user.name.clone(),
                balance: currency.format(user.balance),
                closed: user.closed,
            })
            .collect(),
        external: currency.format(balances.external),
        total,
    }
}

/// A book as a table: a row per user, the outside world's, the total.
fn rows(book: &CurrencyBook) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = book
        .users
        .iter()
        .map(|u| {
            let name = if u.closed {
                format!("{} (closed)", u.name)
            } else {
                u.name.clone()
            };
            vec![name, u.balance.clone()]
        })
        .collect();
    rows.push(vec!["(external)".into(), book.external.clone()]);
    rows.push(vec!["total".into(), book.total.clone()]);
    rows
}

/// Every account's balance at `at` (now if `None`) in every currency, with
/// the outside world's and their total: `shown` at the top level and as
/// the only table when asked for (`--currency`), else a table per
/// currency.
pub(crate) fn trial_balance(
    books: &[TrialBalance],
    at: Option<Instant>,
    currencies: &Currencies,
    shown: Option<CurrencyId>,
) -> Report {
    let of = |id: CurrencyId| books.iter().find(|book| book.currency == id);
    let top_id = shown.unwrap_or(CurrencyId::DEFAULT);
    let top_currency = currencies
        .get(top_id)
        .unwrap_or_else(|| currencies.default_currency());
    let mut every = serde_json::Map::new();
    let mut tables = Vec::new();
    for (id, currency) in currencies.iter() {
        let book = book(of(id), currency);
        if shown.is_none_or(|shown| shown == id) {
            tables.push(Titled {
                title: currency.code.clone(),
                header: vec!["account", "balance"],
                rows: rows(&book),
            });
        }
        every.insert(
            currency.code.clone(),
            serde_json::to_value(&book).expect("a book serializes to JSON"),
        );
    }
    let view = TrialBalanceView {
        currency: top_currency.code.clone(),
        at: at.map(|at| time::rfc3339(at.get())),
        shown: book(of(top_id), top_currency),
        currencies: every,
    };
    // A ledger of one currency prints the one table it always did.
    let human = if tables.len() == 1 {
        Human::Rows {
            header: vec!["account", "balance"],
            rows: rows(&view.shown),
            empty: String::new(),
        }
    } else {
        Human::Tables(tables)
    };
    Report::new(view, human)
}
