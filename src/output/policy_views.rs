//! The JSON shape and words of a policy change: what `overdraft`,
//! `freeze`, `unfreeze` and `close` print, the change feed's object, and
//! the journal's comment line.

use serde::Serialize;

use crate::ledger::{PolicyChange, PolicyChangeRecord};
use crate::money::Currency;
use crate::output::Human;
use crate::time;

/// A recorded policy change.
#[derive(Debug, Serialize)]
pub(crate) struct PolicyChangeView {
    pub change_id: i64,
    pub user: String,
    /// The kind: overdraft, freeze, unfreeze or close.
    pub change: &'static str,
    /// The new limit, for an overdraft change only ("0.00" removes it).
    pub overdraft: Option<String>,
    pub memo: Option<String>,
    /// When it took effect, RFC 3339.
    pub at: String,
}

impl PolicyChangeView {
    pub(crate) fn new(record: &PolicyChangeRecord, currency: &Currency) -> Self {
        Self {
            change_id: record.change_id,
            user: record.user.clone(),
            change: record.change.kind(),
            overdraft: record
                .change
                .overdraft()
                .map(|limit| currency.format(limit)),
            memo: record.memo.clone(),
            at: time::rfc3339(record.at.get()),
        }
    }

    /// "alice: overdraft limit 50.00 (change 3)".
    pub(crate) fn human(record: &PolicyChangeRecord, currency: &Currency) -> Human {
        Human::Line(format!(
            "{}: {} (change {})",
            record.user,
            describe(record.change, currency),
            record.change_id
        ))
    }
}

/// What a change made of the account, in words.
pub(crate) fn describe(change: PolicyChange, currency: &Currency) -> String {
    match change {
        PolicyChange::Overdraft(0) => "no overdraft limit".to_string(),
        PolicyChange::Overdraft(limit) => format!("overdraft limit {}", currency.format(limit)),
        PolicyChange::Freeze => "frozen".to_string(),
        PolicyChange::Unfreeze => "unfrozen".to_string(),
        PolicyChange::Close => "closed".to_string(),
    }
}
