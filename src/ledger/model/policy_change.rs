//! A change of one account's policy, as an operator asks it and as the
//! ledger records it.

use super::Instant;
use crate::error::{Result, WalletError};

/// What an operator changes of an account's policy. Every kind is stored
/// as a row of its own, so the policy in force at any instant is the fold
/// of the rows up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyChange {
    /// The new overdraft limit in minor units; 0 removes it.
    Overdraft(i64),
    Freeze,
    Unfreeze,
    Close,
}

impl PolicyChange {
    /// The kind as stored and as the JSON's `change` names it.
    pub fn kind(self) -> &'static str {
        match self {
            PolicyChange::Overdraft(_) => "overdraft",
            PolicyChange::Freeze => "freeze",
            PolicyChange::Unfreeze => "unfreeze",
            PolicyChange::Close => "close",
        }
    }

    /// The new limit, for an overdraft change only (the stored column).
    pub fn overdraft(self) -> Option<i64> {
        match self {
            PolicyChange::Overdraft(limit) => Some(limit),
            _ => None,
        }
    }

    /// A change as a row stores it; a kind or limit no binary writes is
    /// damage, not a change.
    pub(crate) fn stored(kind: &str, overdraft: Option<i64>) -> Result<Self> {
        match (kind, overdraft) {
            ("overdraft", Some(limit)) if limit >= 0 => Ok(PolicyChange::Overdraft(limit)),
            ("freeze", None) => Ok(PolicyChange::Freeze),
            ("unfreeze", None) => Ok(PolicyChange::Unfreeze),
            ("close", None) => Ok(PolicyChange::Close),
            _ => Err(WalletError::Integrity(format!(
                "a policy change has the unknown kind '{}'{}",
                crate::text::echo(kind),
                overdraft.map_or_else(String::new, |limit| format!(" with limit {limit}"))
            ))),
        }
    }
}

/// A policy change as recorded: its own id (never a `tx_id`), the user it
/// applies to, when it took effect and the operator's memo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyChangeRecord {
    pub change_id: i64,
    pub user: String,
    pub change: PolicyChange,
    pub memo: Option<String>,
    pub at: Instant,
    /// The currency of an overdraft limit; the default for the changes
    /// that cover every currency.
    pub currency: crate::money::CurrencyId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_read_back_as_it_was_stored_and_nothing_else_is() {
        for change in [
            PolicyChange::Overdraft(0),
            PolicyChange::Overdraft(5_000),
            PolicyChange::Freeze,
            PolicyChange::Unfreeze,
            PolicyChange::Close,
        ] {
            assert_eq!(
                PolicyChange::stored(change.kind(), change.overdraft()).unwrap(),
                change
            );
        }
        for (kind, overdraft) in [
            ("overdraft", None),
            ("overdraft", Some(-1)),
            ("freeze", Some(5)),
            ("reopen", None),
        ] {
            let err = PolicyChange::stored(kind, overdraft).unwrap_err();
            assert_eq!(err.code(), "integrity", "{kind} {overdraft:?}");
        }
    }
}
