//! The account policies as the bank tests' models replay them: each
//! account's recorded changes, the policies a decision at an instant may
//! have seen in a currency (a limit is per currency, a freeze covers them
//! all), the outcome settle owes a transfer under each, and an exchange's
//! (both legs owed together), and the operator's random changes made while
//! the writers run.

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

/// Every account's changes, each account's in the order they were made,
/// each with the currency id of its row (an overdraft's; 0 for the others).
pub(crate) struct Policies {
    by_account: BTreeMap<i64, Vec<(Change, i16)>>,
}

impl Policies {
    /// From the changes in `change_id` order: under the account's lock (on
    /// a file the write lock), which is their order on each account. Every
    /// limit is the default currency's.
    pub(crate) fn new(changes: impl IntoIterator<Item = Change>) -> Self {
        Self::in_currencies(changes.into_iter().map(|change| (change, 0)))
    }

    /// From the changes in `change_id` order, each with its currency id.
    pub(crate) fn in_currencies(changes: impl IntoIterator<Item = (Change, i16)>) -> Self {
        let mut by_account: BTreeMap<i64, Vec<(Change, i16)>> = BTreeMap::new();
        for (change, currency) in changes {
            by_account
                .entry(change.account)
                .or_default()
                .push((change, currency));
        }
        Self { by_account }
    }

    /// The policies a decision stamped `at` may have been made under: the
    /// one the changes made before `at` leave, and one more after each
    /// change made in that same millisecond, since a change and a decision
    /// in one millisecond are recorded in no order against each other.
    pub(crate) fn candidates(&self, account: i64, at: i64) -> Vec<Policy> {
        self.candidates_in(account, 0, at)
    }

    /// [`Self::candidates`] for a decision in currency `currency`: only its
    /// limits count, and every freeze and unfreeze.
    pub(crate) fn candidates_in(&self, account: i64, currency: i16, at: i64) -> Vec<Policy> {
        let changes = self.by_account.get(&account).map_or(&[][..], Vec::as_slice);
        let mut policy = Policy::default();
        let mut found = Vec::new();
        for (change, in_currency) in changes {
            if change.kind == "overdraft" && *in_currency != currency {
                continue;
            }
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
            .filter(|(c, _)| c.kind == kind)
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

/// The outcome settle owes an exchange: its first leg of `first.1` from a
/// user holding `first.0`, its second of `second.1` from the desk holding
/// `second.0`, each under its own source's policy in its own currency.
/// Both COMPLETED when both legs may be, or both FAILED with the reason of
/// the first leg that may not, the first leg before the second.
pub(crate) fn owed_pair(
    first: (i64, i64, Policy),
    second: (i64, i64, Policy),
) -> (&'static str, Option<&'static str>) {
    match owed(first.0, first.1, first.2) {
        ("COMPLETED", _) => owed(second.0, second.1, second.2),
        failed => failed,
    }
}

/// Asserts that the outcome recorded for both legs of the exchange whose
/// first leg is `tx_id` is the one settle owed it under one of the policies
/// each leg's source may have been decided under.
pub(crate) fn check_pair_decision(
    tx_id: i64,
    first: (i64, i64, &[Policy]),
    second: (i64, i64, &[Policy]),
    outcome: (&str, Option<&str>),
) {
    let owed: Vec<_> = first
        .2
        .iter()
        .flat_map(|a| {
            second
                .2
                .iter()
                .map(move |b| owed_pair((first.0, first.1, *a), (second.0, second.1, *b)))
        })
        .collect();
    assert!(
        owed.contains(&outcome),
        "exchange {tx_id}: {} from a balance of {} and {} from the desk's {} ended {outcome:?}, \
         which none of the policies then allows: {owed:?} under {:?} and {:?}",
        first.1,
        first.0,
        second.1,
        second.0,
        first.2,
        second.2
    );
}

/// The operator's next change, as the arguments of its command: a frozen
/// user is unfrozen, an unfrozen one now and then frozen (about a quarter
/// of the users stay frozen at a time), or its limit set anew (0 now and
/// then, which removes it), a third of the limits in `other` when it names
/// a currency (`--currency CODE`). `frozen` follows the change.
pub(crate) fn next_change(rng: &mut Rng, frozen: &mut [bool], other: Option<&str>) -> Vec<String> {
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
        let mut args = vec!["overdraft".to_string(), name, format!("{limit}.00")];
        if let Some(code) = other.filter(|_| rng.below(3) == 0) {
            args.extend(["--currency".to_string(), code.to_string()]);
        }
        args
    };
    if rng.below(4) == 0 {
        args.extend(["--memo".to_string(), "under review".to_string()]);
    }
    args
}
