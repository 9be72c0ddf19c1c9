//! What an account's policy becomes: a change an operator asks, checked
//! against the account's figures, and the policy in force at an instant,
//! folded from the changes recorded up to it.

use crate::error::{Result, WalletError};
use crate::ledger::model::{Policy, PolicyChange, UserRecord};
use crate::money::{Currencies, Currency};

/// The figures of an account a change is checked against, `held` as of
/// now ([`super::held_as_of`]): a hold past its expiry reserves nothing,
/// whether or not `settle` has marked it yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AccountFigures {
    pub balance: i64,
    pub pending_in: i64,
    pub pending_out: i64,
    pub held: i64,
}

/// The policy after `change` of `user` as read (held as of now), if it
/// takes it: [`apply_change`] over the user's own figures.
pub(crate) fn change_user(
    user: &UserRecord,
    change: PolicyChange,
    currency: &Currency,
) -> Result<Policy> {
    let figures = AccountFigures {
        balance: user.balance,
        pending_in: user.pending_in,
        pending_out: user.pending_out,
        held: user.held,
    };
    apply_change(&user.name, user.policy, figures, change, currency)
}

/// The policy after `change` of `user` as read with its figures in every
/// currency: [`change_user`] over the default currency's, and `close`
/// refused while any other currency holds or awaits money, the refusal
/// naming that currency.
pub(crate) fn change_user_in(
    user: &UserRecord,
    change: PolicyChange,
    currencies: &Currencies,
) -> Result<Policy> {
    let policy = change_user(user, change, currencies.default_currency())?;
    if change == PolicyChange::Close {
        for other in &user.others {
            let figures = AccountFigures {
                balance: other.balance,
                pending_in: other.pending_in,
                pending_out: other.pending_out,
                held: other.held,
            };
            let Some(currency) = currencies.get(other.currency) else {
                continue;
            };
            if let Some(left) = what_is_left(figures, currency) {
                return Err(WalletError::AccountNotEmpty {
                    user: user.name.clone(),
                    left: format!("{left} in {}", currency.code),
                });
            }
        }
    }
    Ok(policy)
}

/// The change `create-user --overdraft` records with a new user: none
/// without a limit.
pub(crate) fn at_creation(overdraft: i64) -> Option<PolicyChange> {
    (overdraft > 0).then_some(PolicyChange::Overdraft(overdraft))
}

/// The policy after `change`, if the account takes it.
///
/// A closed account takes no change: closing is for good. `Close` needs an
/// empty account (no balance, nothing pending either way, nothing held), so
/// that no money is stranded where no transfer can reach it. Every other
/// change is taken, even one that changes nothing: the operator's action is
/// the record.
pub(crate) fn apply_change(
    name: &str,
    current: Policy,
    figures: AccountFigures,
    change: PolicyChange,
    currency: &Currency,
) -> Result<Policy> {
    if current.closed {
        return Err(WalletError::AccountClosed {
            user: name.to_string(),
            what: "policy change",
        });
    }
    if change == PolicyChange::Close
        && let Some(left) = what_is_left(figures, currency)
    {
        return Err(WalletError::AccountNotEmpty {
            user: name.to_string(),
            left,
        });
    }
    Ok(applied(current, change))
}

/// The policy after `change`, unchecked: how a recorded change is read.
pub(crate) fn applied(policy: Policy, change: PolicyChange) -> Policy {
    match change {
        PolicyChange::Overdraft(overdraft) => Policy {
            overdraft,
            ..policy
        },
        PolicyChange::Freeze => Policy {
            frozen: true,
            ..policy
        },
        PolicyChange::Unfreeze => Policy {
            frozen: false,
            ..policy
        },
        PolicyChange::Close => Policy {
            closed: true,
            ..policy
        },
    }
}

/// The policy after `changes`, in the order they were recorded, from the
/// default every account starts with (and every account created before
/// policies were recorded still has).
pub(crate) fn policy_after(changes: impl IntoIterator<Item = PolicyChange>) -> Policy {
    changes.into_iter().fold(Policy::default(), applied)
}

/// What keeps an account from closing, in words and the ledger's currency
/// ("a balance of 5.00 and 2.00 pending out"); `None` when it is empty.
fn what_is_left(figures: AccountFigures, currency: &Currency) -> Option<String> {
    let parts: Vec<String> = [
        (figures.balance, "a balance of ", ""),
        (figures.pending_in, "", " pending in"),
        (figures.pending_out, "", " pending out"),
        (figures.held, "", " held"),
    ]
    .into_iter()
    .filter(|(amount, _, _)| *amount != 0)
    .map(|(amount, before, after)| format!("{before}{}{after}", currency.format(amount)))
    .collect();
    match parts.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [first @ .., last] => Some(format!("{} and {last}", first.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn php() -> Currency {
        Currency::new("PHP", 2).unwrap()
    }

    fn empty() -> AccountFigures {
        AccountFigures::default()
    }

    #[test]
    fn close_needs_an_empty_account_and_names_what_is_left() {
        let figures = AccountFigures {
            balance: 500,
            pending_out: 200,
            ..empty()
        };
        let err = apply_change(
            "alice",
            Policy::default(),
            figures,
            PolicyChange::Close,
            &php(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "account_not_empty");
        assert!(
            err.to_string()
                .contains("a balance of 5.00 and 2.00 pending out"),
            "{err}"
        );
        let all = AccountFigures {
            balance: -100,
            pending_in: 1,
            pending_out: 2,
            held: 3,
        };
        let err = apply_change("a", Policy::default(), all, PolicyChange::Close, &php())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a balance of -1.00, 0.01 pending in, 0.02 pending out and 0.03 held"),
            "{err}"
        );
        let held = AccountFigures { held: 7, ..empty() };
        let err = apply_change("a", Policy::default(), held, PolicyChange::Close, &php())
            .unwrap_err()
            .to_string();
        assert!(err.contains("while it has 0.07 held"), "{err}");
        let closed =
            apply_change("a", Policy::default(), empty(), PolicyChange::Close, &php()).unwrap();
        assert!(closed.closed);
    }

    #[test]
    fn a_closed_account_takes_no_change() {
        let closed = Policy {
            closed: true,
            ..Policy::default()
        };
        for change in [
            PolicyChange::Overdraft(0),
            PolicyChange::Freeze,
            PolicyChange::Unfreeze,
            PolicyChange::Close,
        ] {
            let err = apply_change("bob", closed, empty(), change, &php()).unwrap_err();
            assert_eq!(err.code(), "account_closed", "{change:?}");
            assert_eq!(err.exit_code(), 4);
        }
    }

    #[test]
    fn other_changes_are_taken_whatever_the_figures_even_when_they_change_nothing() {
        let figures = AccountFigures {
            balance: -900,
            pending_in: 5,
            pending_out: 5,
            held: 5,
        };
        let frozen = apply_change(
            "a",
            Policy::default(),
            figures,
            PolicyChange::Freeze,
            &php(),
        )
        .unwrap();
        assert!(frozen.frozen);
        assert_eq!(
            apply_change("a", frozen, figures, PolicyChange::Freeze, &php()).unwrap(),
            frozen
        );
        let limited =
            apply_change("a", frozen, figures, PolicyChange::Overdraft(100), &php()).unwrap();
        assert_eq!(
            limited,
            Policy {
                overdraft: 100,
                frozen: true,
                closed: false
            }
        );
        let thawed = apply_change("a", limited, figures, PolicyChange::Unfreeze, &php()).unwrap();
        assert!(!thawed.frozen);
        assert_eq!(thawed.overdraft, 100);
    }

    #[test]
    fn the_policy_then_is_the_fold_of_the_changes_up_to_it() {
        assert_eq!(policy_after([]), Policy::default());
        assert_eq!(
            policy_after([
                PolicyChange::Overdraft(5000),
                PolicyChange::Freeze,
                PolicyChange::Overdraft(0),
                PolicyChange::Unfreeze,
                PolicyChange::Freeze,
            ]),
            Policy {
                overdraft: 0,
                frozen: true,
                closed: false
            }
        );
    }
}
