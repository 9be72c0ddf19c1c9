//! The JSON shapes of ledger records and their table rows, as the contract fixes them.

use serde::Serialize;

use crate::ledger::{TransferRecord, UserRecord, clock};
use crate::money::Currency;
use crate::report::Human;

/// A user as `get-user` shows it.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub name: String,
    pub email: String,
    pub balance: String,
    pub available: String,
    pub pending_in: String,
    pub pending_out: String,
    pub currency: String,
}

impl UserView {
    pub fn new(user: &UserRecord, currency: &Currency) -> Self {
        Self {
            name: user.name.clone(),
            email: user.email.clone(),
            balance: currency.format(user.balance),
            available: currency.format(user.available()),
            pending_in: currency.format(user.pending_in),
            pending_out: currency.format(user.pending_out),
            currency: currency.code.clone(),
        }
    }

    pub fn human(&self) -> Human {
        Human::Record(vec![
            ("name", self.name.clone()),
            ("email", self.email.clone()),
            ("balance", self.with_code(&self.balance)),
            ("available", self.with_code(&self.available)),
            ("pending_in", self.with_code(&self.pending_in)),
            ("pending_out", self.with_code(&self.pending_out)),
        ])
    }

    fn with_code(&self, amount: &str) -> String {
        format!("{amount} {}", self.currency)
    }
}

/// The transfer object of the contract.
#[derive(Debug, Serialize)]
pub struct TransferView {
    pub tx_id: i64,
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
}

/// How the external account appears in tables.
const EXTERNAL: &str = "(external)";

impl TransferView {
    pub fn new(record: &TransferRecord, currency: &Currency) -> Self {
        Self {
            tx_id: record.tx_id,
            src: record.src.clone(),
            dst: record.dst.clone(),
            amount: currency.format(record.amount),
            memo: record.memo.clone(),
            key: record.idempotency_key.clone(),
            status: record.status.as_str(),
            reason: record.reason.clone(),
            created_at: clock::rfc3339(record.created_at),
            settled_at: record.settled_at.map(clock::rfc3339),
        }
    }

    pub fn human(&self) -> Human {
        Human::Record(vec![
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
        ])
    }

    /// A list of transfers as one table, a row each.
    pub fn rows(views: &[TransferView], empty: String) -> Human {
        Human::Rows {
            header: vec![
                "tx_id",
                "src",
                "dst",
                "amount",
                "status",
                "reason",
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
                        v.memo.clone().unwrap_or_default(),
                        v.created_at.clone(),
                    ]
                })
                .collect(),
            empty,
        }
    }
}
