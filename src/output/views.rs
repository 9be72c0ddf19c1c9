//! The JSON shapes of ledger records and their table rows, as the contract fixes them.

use serde::Serialize;

use crate::ledger::TxId;
use crate::ledger::{CurrencyFigures, TransferRecord, UserRecord};
use crate::money::{Currencies, Currency, CurrencyId};
use crate::output::Human;
use crate::time;

/// A user as `get-user` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct UserView {
    pub name: String,
    pub email: String,
    pub balance: String,
    pub available: String,
    pub pending_in: String,
    pub pending_out: String,
    /// Reserved by live holds.
    pub held: String,
    pub currency: String,
    /// How far below zero the balance may go ("0.00": not at all).
    pub overdraft: String,
    /// No money leaves the account while it is frozen.
    pub frozen: bool,
    /// Closed for good: no new transfer or change.
    pub closed: bool,
    /// `get-user` only: the figures in the default currency and in every
    /// currency the user has touched, by code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balances: Option<std::collections::BTreeMap<String, CurrencyBalanceView>>,
}

/// A user's figures in one currency, in the `balances` object.
#[derive(Debug, Serialize)]
pub(crate) struct CurrencyBalanceView {
    pub balance: String,
    pub available: String,
    pub pending_in: String,
    pub pending_out: String,
    pub held: String,
    pub overdraft: String,
}

impl CurrencyBalanceView {
    fn new(figures: &CurrencyFigures, currency: &Currency) -> Self {
        Self {
            balance: currency.format(figures.balance),
            available: currency.format(figures.available()),
            pending_in: currency.format(figures.pending_in),
            pending_out: currency.format(figures.pending_out),
            held: currency.format(figures.held),
            overdraft: currency.format(figures.overdraft),
        }
    }
}

impl UserView {
    /// A user as `get-user` shows it: the top level in `shown` (the
    /// default currency unless asked otherwise), and the `balances` object.
    pub(crate) fn with_balances(
        user: &UserRecord,
        currencies: &Currencies,
        shown: CurrencyId,
    ) -> Self {
        let default = currencies.default_currency();
        let mut view = Self::new(user, default);
        let mut balances = std::collections::BTreeMap::new();
        let touched = std::iter::once(CurrencyId::DEFAULT)
            .chain(user.others.iter().map(|figures| figures.currency));
        for id in touched {
            if let Some(currency) = currencies.get(id) {
                let figures = user.in_currency(id);
                balances.insert(
                    currency.code.clone(),
                    CurrencyBalanceView::new(&figures, currency),
                );
            }
        }
        if shown != CurrencyId::DEFAULT
            && let Some(currency) = currencies.get(shown)
        {
            let top = CurrencyBalanceView::new(&user.in_currency(shown), currency);
            view.balance = top.balance;
            view.available = top.available;
            view.pending_in = top.pending_in;
            view.pending_out = top.pending_out;
            view.held = top.held;
            view.overdraft = top.overdraft;
            view.currency = currency.code.clone();
        }
        view.balances = Some(balances);
        view
    }

    pub(crate) fn new(user: &UserRecord, currency: &Currency) -> Self {
        Self {
            name: user.name.clone(),
            email: user.email.clone(),
            balance: currency.format(user.balance),
            available: currency.format(user.available()),
            pending_in: currency.format(user.pending_in),
            pending_out: currency.format(user.pending_out),
            held: currency.format(user.held),
            currency: currency.code.clone(),
            overdraft: currency.format(user.policy.overdraft),
            frozen: user.policy.frozen,
            closed: user.policy.closed,
            balances: None,
        }
    }

    pub(crate) fn human(&self) -> Human {
        let mut fields = vec![
            ("name", self.name.clone()),
            ("email", self.email.clone()),
            ("balance", self.with_code(&self.balance)),
            ("available", self.with_code(&self.available)),
            ("pending_in", self.with_code(&self.pending_in)),
            ("pending_out", self.with_code(&self.pending_out)),
            ("held", self.with_code(&self.held)),
            ("overdraft", self.with_code(&self.overdraft)),
            ("frozen", yes_no(self.frozen)),
            ("closed", yes_no(self.closed)),
        ];
        // Every other currency the user holds, one line each.
        for (code, figures) in self.balances.iter().flatten() {
            if *code != self.currency {
                fields.push((
                    "also",
                    format!(
                        "{} {code} (available {}, pending in {}, out {}, held {}, overdraft {})",
                        figures.balance,
                        figures.available,
                        figures.pending_in,
                        figures.pending_out,
                        figures.held,
                        figures.overdraft
                    ),
                ));
            }
        }
        Human::Record(fields)
    }

    /// A page of users as one table, a row each.
    pub(crate) fn rows(views: &[UserView], empty: String) -> Human {
        Human::Rows {
            header: vec![
                "name",
                "balance",
                "available",
                "pending_in",
                "pending_out",
                "held",
                "overdraft",
                "frozen",
                "closed",
                "email",
            ],
            rows: views
                .iter()
                .map(|v| {
                    vec![
                        v.name.clone(),
                        v.balance.clone(),
                        v.available.clone(),
                        v.pending_in.clone(),
                        v.pending_out.clone(),
                        v.held.clone(),
                        v.overdraft.clone(),
                        yes_no(v.frozen),
                        yes_no(v.closed),
                        v.email.clone(),
                    ]
                })
                .collect(),
            empty,
        }
    }

    fn with_code(&self, amount: &str) -> String {
        format!("{amount} {}", self.currency)
    }
}

/// A policy flag in a table or record.
pub(crate) fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_string()
}

/// The transfer object of the contract.
#[derive(Debug, Serialize)]
pub(crate) struct TransferView {
    pub tx_id: TxId,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub amount: String,
    pub memo: Option<String>,
    /// The idempotency key it was queued with, if any.
    pub key: Option<String>,
    pub status: &'static str,
    pub reason: Option<String>,
    pub created_at: String,
    pub settled_at: Option<String>,
    /// For a hold: the amount it reserved (`amount` is what was captured).
    pub hold_amount: Option<String>,
    /// For a hold: when it stops reserving money unless captured first.
    pub expires_at: Option<String>,
    /// For a refund: the transfer it pays back.
    pub refund_of: Option<TxId>,
    /// The sum of this transfer's COMPLETED refunds: what was paid back.
    pub refunded: String,
    /// The ids of its refunds, oldest first, whatever their status.
    pub refunds: Vec<TxId>,
    /// Each refund with its amount and status, in the order of `refunds`.
    pub refund_details: Vec<RefundView>,
    /// In a user's history: that user's balance right after it was applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance_after: Option<Option<String>>,
    /// The code of the currency it moves.
    pub currency: String,
    /// For an exchange leg: the other leg; null for any other transfer.
    pub pair_tx_id: Option<TxId>,
}

/// One refund of a transfer, as its original lists it.
#[derive(Debug, Serialize)]
pub(crate) struct RefundView {
    pub tx_id: TxId,
    pub amount: String,
    pub status: &'static str,
}

/// The currency a record moves; the default for an id the ledger's list
/// does not hold, which only a currency added since it was read can be.
fn currency_of<'c>(record: &TransferRecord, currencies: &'c Currencies) -> &'c Currency {
    currencies
        .get(record.currency)
        .unwrap_or_else(|| currencies.default_currency())
}

/// How the external account appears in tables.
const EXTERNAL: &str = "(external)";

impl TransferView {
    pub(crate) fn new(record: &TransferRecord, currency: &Currency) -> Self {
        Self {
            tx_id: record.tx_id,
            src: record.src.clone(),
            dst: record.dst.clone(),
            amount: currency.format(record.amount),
            memo: record.memo.clone(),
            key: record.idempotency_key.clone(),
            status: record.status.as_str(),
            reason: record.reason.clone(),
            created_at: time::rfc3339(record.created_at.get()),
            settled_at: record.decided_at().map(|at| time::rfc3339(at.get())),
            hold_amount: record.hold_amount.map(|a| currency.format(a)),
            expires_at: record.expires_at.map(|at| time::rfc3339(at.get())),
            refund_of: record.refund_of,
            refunded: currency.format(record.refunded),
            refunds: record.refunds.iter().map(|refund| refund.tx_id).collect(),
            refund_details: record
                .refunds
                .iter()
                .map(|refund| RefundView {
                    tx_id: refund.tx_id,
                    amount: currency.format(refund.amount),
                    status: refund.status.as_str(),
                })
                .collect(),
            balance_after: None,
            currency: currency.code.clone(),
            pair_tx_id: record.pair_tx_id,
        }
    }

    /// The transfer with its amounts at the scale of its own currency.
    pub(crate) fn in_ledger(record: &TransferRecord, currencies: &Currencies) -> Self {
        Self::new(record, currency_of(record, currencies))
    }

    /// As a user's history shows it: with that user's balance right after.
    pub(crate) fn in_history(record: &TransferRecord, currencies: &Currencies) -> Self {
        let currency = currency_of(record, currencies);
        Self {
            balance_after: Some(record.balance_after.map(|b| currency.format(b))),
            ..Self::new(record, currency)
        }
    }

    pub(crate) fn human(&self) -> Human {
        let mut fields = vec![
            ("tx_id", self.tx_id.to_string()),
            ("src", self.src.clone().unwrap_or_else(|| EXTERNAL.into())),
            ("dst", self.dst.clone().unwrap_or_else(|| EXTERNAL.into())),
            ("amount", self.amount.clone()),
            ("memo", self.memo.clone().unwrap_or_default()),
            ("key", self.key.clone().unwrap_or_default()),
            ("status", self.status.into()),
            ("reason", self.reason.clone().unwrap_or_default()),
            ("created_at", self.created_at.clone()),
            ("settled_at", self.settled_at.clone().unwrap_or_default()),
            ("hold_amount", self.hold_amount.clone().unwrap_or_default()),
            ("expires_at", self.expires_at.clone().unwrap_or_default()),
            (
                "refund_of",
                self.refund_of.map(|id| id.to_string()).unwrap_or_default(),
            ),
            ("refunded", self.refunded.clone()),
            (
                "refunds",
                self.refund_details
                    .iter()
                    .map(|r| format!("{} ({} {})", r.tx_id, r.amount, r.status))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ];
        // Only a leg has a pair: other transfers keep the lines they had.
        if let Some(pair) = self.pair_tx_id {
            fields.push(("pair_tx_id", pair.to_string()));
        }
        Human::Record(fields)
    }

    /// A list of transfers as one table, a row each.
    pub(crate) fn rows(views: &[TransferView], empty: String) -> Human {
        Human::Rows {
            header: vec![
                "tx_id",
                "src",
                "dst",
                "amount",
                "status",
                "reason",
                "balance_after",
                "memo",
                "created_at",
            ],
            rows: views
                .iter()
                .map(|v| {
                    vec![
                        v.tx_id.to_string(),
                        v.src.clone().unwrap_or_else(|| EXTERNAL.into()),
                        v.dst.clone().unwrap_or_else(|| EXTERNAL.into()),
                        v.amount.clone(),
                        v.status.into(),
                        v.reason.clone().unwrap_or_default(),
                        v.balance_after.clone().flatten().unwrap_or_default(),
                        v.memo.clone().unwrap_or_default(),
                        v.created_at.clone(),
                    ]
                })
                .collect(),
            empty,
        }
    }
}

/// A currency as `currencies` lists it.
#[derive(Debug, Serialize)]
pub(crate) struct CurrencyView {
    pub code: String,
    /// Decimal places of every amount in it.
    pub scale: u8,
    /// The one `init` named: amounts that name no currency are in it.
    pub default: bool,
}

impl CurrencyView {
    /// Every currency of the ledger, in id order: the default first.
    pub(crate) fn list(currencies: &Currencies) -> Vec<Self> {
        currencies
            .iter()
            .map(|(id, currency)| Self {
                code: currency.code.clone(),
                scale: currency.scale,
                default: id == CurrencyId::DEFAULT,
            })
            .collect()
    }

    /// The currencies as one table, a row each.
    pub(crate) fn rows(views: &[CurrencyView]) -> Human {
        Human::Rows {
            header: vec!["code", "scale", "default"],
            rows: views
                .iter()
                .map(|v| vec![v.code.clone(), v.scale.to_string(), yes_no(v.default)])
                .collect(),
            empty: "no currencies".into(),
        }
    }
}
