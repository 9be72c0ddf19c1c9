//! The account policies as the bank tests' models replay them: each
//! account's recorded changes, the policies a decision at an instant may
//! have seen, the outcome settle owes a transfer under each, and the
//! operator's random changes made while the writers run.

use std::collections::BTreeMap;

use crate::common::Rng;

/// What settle decides with: the limit a balance may go down to the
/// negative of, and whether the account is frozen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    pub overdraft: i64,
    pub frozen: bool,
}

/// One row of `policy_changes`.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub account: i64,
    pub kind: String,
    pub overdraft: Option<i64>,
    pub at: i64,
}

impl Policy {
    fn after(mut self, change: &Change) -> Self {
        match change.kind.as_str() {
            "overdraft" => self.overdraft = change.overdraft.expect("an overdraft change's limit"),
            "freeze" => self.frozen = true,
            "unfreeze" => self.frozen = false,
            // A closed account has nothing left to decide.
            "close" => {}
            other => panic!("unknown policy change {other}"),
        }
        self
    }
}

/// Every account's changes, each account's in the order they were made.
pub(crate) struct Policies {
    by_account: BTreeMap<i64, Vec<Change>>,
}

impl Policies {
    /// From the changes in `change_id` order: under the account's lock (on
    /// a file the write lock), which is their order on each account.
    pub(crate) fn new(changes: impl IntoIterator<Item = Change>) -> Self {
        let mut by_account: BTreeMap<i64, Vec<Change>> = BTreeMap::new();
        for change in changes {
            by_account.entry(change.account).or_default().push(change);
        }
        Self { by_account }
    }

    /// The policies a decision stamped `at` may have been made under: the
    /// one the changes made before `at` leave, and one more after each
    /// change made in that same millisecond, since a change and a decision
    /// in one millisecond are recorded in no order against each other.
    pub(crate) fn candidates(&self, account: i64, at: i64) -> Vec<Policy> {
        let changes = self.by_account.get(&account).map_or(&[][..], Vec::as_slice);
        let mut policy = Policy::default();
        let mut found = Vec::new();
        for change in changes {
            if change.at > at {
                break;
            }
            if change.at == at {
                found.push(policy);
            }
            policy = policy.after(change);
        }
        found.push(policy);
        found
    }

    /// How many changes of each kind were recorded.
    pub(crate) fn count(&self, kind: &str) -> usize {
        self.by_account
            .values()
            .flatten()
            .filter(|c| c.kind == kind)
            .count()
    }
}

/// The outcome settle owes a transfer of `amount` from a user holding
/// `balance` under `policy`: FAILED `account_frozen` from a frozen user,
/// FAILED `insufficient_funds` if the balance would go below minus the
/// limit, COMPLETED otherwise.
pub(crate) fn owed(
    balance: i64,
    amount: i64,
    policy: Policy,
) -> (&'static str, Option<&'static str>) {
    if policy.frozen {
        ("FAILED", Some("account_frozen"))
    } else if balance - amount < -policy.overdraft {
        ("FAILED", Some("insufficient_funds"))
    } else {
        ("COMPLETED", None)
    }
}

/// Asserts that the recorded outcome of transfer `tx_id` is the one settle
/// owed it under one of the policies it may have been decided under.
pub(crate) fn check_decision(
    tx_id: i64,
    balance: i64,
    amount: i64,
    outcome: (&str, Option<&str>),
    candidates: &[Policy],
) {
    assert!(
        candidates
            .iter()
            .any(|policy| owed(balance, amount, *policy) == outcome),
        "transfer {tx_id} of {amount} from a balance of {balance} ended {outcome:?}, \
         which none of the policies then allows: {:?}",
        candidates
            .iter()
            .map(|p| (p, owed(balance, amount, *p)))
            .collect::<Vec<_>>()
    );
}

/// The operator's next change, as the arguments of its command: a frozen
/// user is unfrozen, an unfrozen one now and then frozen (about a quarter
/// of the users stay frozen at a time), or its limit set anew (0 now and
/// then, which removes it). `frozen` follows the change.
pub(crate) fn next_change(rng: &mut Rng, frozen: &mut [bool]) -> Vec<String> {
    let user = rng.below(frozen.len() as u64) as usize;
    let name = format!("user{user}");
    let mut args = if frozen[user] {
        frozen[user] = false;
        vec!["unfreeze".to_string(), name]
    } else if rng.below(3) == 0 {
        frozen[user] = true;
        vec!["freeze".to_string(), name]
    } else {
        let limit = rng.below(5) * 100;
        vec!["overdraft".to_string(), name, format!("{limit}.00")]
    };
    if rng.below(4) == 0 {
        args.extend(["--memo".to_string(), "under review".to_string()]);
    }
    args
}
