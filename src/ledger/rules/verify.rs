//! `verify`'s checks over figures an engine has read: each balance against
//! the transfers that completed, the pending sums, zero sum, no balance below
//! its overdraft limit,
//! and each transfer's fields against its status.
//!
//! Balances are maintained on every write; these checks recompute them from
//! the log, so a transfer applied twice (or not at all, or one that never
//! should have moved money) shows up as a balance that disagrees with it.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::{Result, WalletError};
use crate::ledger::model::{
    BalanceKey, Check, EXTERNAL_ACCOUNT, FailReason, Findings, Problem, Status, VerifyReport,
};
use crate::money::{Currencies, CurrencyId};
use crate::text::echo;

/// The name of the check `replay::Replay::finish` returns, which
/// [`figure_checks`] places after the balances.
pub(crate) const HISTORY_CHECK: &str = "history";

/// The names of the checks [`figure_checks`] returns, in order.
pub(crate) const FIGURE_CHECKS: [&str; 5] = [
    "balances",
    HISTORY_CHECK,
    "pending_totals",
    "zero_sum",
    "no_negative_balances",
];

/// The transfers [`transfer_field_problem`] may find fault with, in SQL both
/// engines run: a cheap superset of the rule, so that a sound ledger of a
/// million transfers hands it no row at all. Columns in the order
/// [`StoredFields`] takes them.
pub(crate) fn transfer_field_suspects() -> String {
    fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
        names
            .map(|name| format!("'{name}'"))
            .collect::<Vec<_>>()
            .join(", ")
    }
    format!(
        "SELECT tx_id, status, reason, settled_at IS NOT NULL, amount, src, dst
     FROM transfers
     WHERE status NOT IN ({known})
        OR (status IN ({changing})) = (settled_at IS NOT NULL)
        OR (status = '{failed}') <> (reason IS NOT NULL)
        OR (reason IS NOT NULL AND reason NOT IN ({reasons}))
        OR amount <= 0
        OR src = dst
     ORDER BY tx_id",
        known = quoted(Status::ALL.iter().map(|s| s.as_str())),
        changing = super::changing_statuses_sql(),
        failed = Status::Failed.as_str(),
        reasons = quoted(FailReason::ALL.iter().map(|r| r.as_str())),
    )
}

/// An account's balance in one currency as stored, with the maintained
/// figures the checks recompute.
#[derive(Debug, Clone)]
pub(crate) struct AccountFigures {
    pub id: i64,
    pub currency: CurrencyId,
    pub name: Option<String>,
    pub balance: i64,
    pub pending_in: i64,
    pub pending_out: i64,
    /// The largest overdraft limit the account ever had (in force now or
    /// recorded as a change); an engine may leave it 0 where the balance
    /// is not below zero, the only place it is looked at.
    pub largest_limit: i64,
}

impl AccountFigures {
    pub(crate) fn key(&self) -> BalanceKey {
        BalanceKey::new(self.id, self.currency)
    }

    pub(crate) fn label(&self) -> String {
        match &self.name {
            // A tampered ledger may hold any name; quote it safely.
            Some(name) => format!("user '{}'", echo(name)),
            None if self.id == EXTERNAL_ACCOUNT => "the external account".to_string(),
            None => format!("account {}", self.id),
        }
    }
}

/// Sums of one balance's transfers by status, as exact 128-bit integers so
/// that no sum overflows however much money has flowed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Flows {
    completed_in: i128,
    completed_out: i128,
    pending_in: i128,
    pending_out: i128,
}

/// What the transfers add up to, per balance (an account in the
/// transfer's currency) and per status; fed one transfer at a time, so an
/// engine can stream the log through it.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    flows: HashMap<BalanceKey, Flows>,
    counts: BTreeMap<String, u64>,
}

impl Tally {
    pub(crate) fn with_capacity(accounts: usize) -> Self {
        Self {
            flows: HashMap::with_capacity(accounts),
            counts: BTreeMap::new(),
        }
    }

    /// Counts one transfer as stored (a damaged ledger may hold any status text).
    pub(crate) fn add(&mut self, src: BalanceKey, dst: BalanceKey, status: &str, amount: i64) {
        let amount = i128::from(amount);
        match Status::parse(status) {
            Some(Status::Completed) => {
                self.flows.entry(src).or_default().completed_out += amount;
                self.flows.entry(dst).or_default().completed_in += amount;
            }
            Some(Status::Pending) => {
                self.flows.entry(src).or_default().pending_out += amount;
                self.flows.entry(dst).or_default().pending_in += amount;
            }
            _ => {
                self.flows.entry(src).or_default();
                self.flows.entry(dst).or_default();
            }
        }
        match self.counts.get_mut(status) {
            Some(count) => *count += 1,
            None => {
                self.counts.insert(status.to_string(), 1);
            }
        }
    }

    /// Counts, from an engine that sums on its side, what `count`
    /// transfers of one status took out of `src` in all (`sum`): the
    /// transfers are counted here, once.
    pub(crate) fn add_out(&mut self, src: BalanceKey, status: &str, sum: i128, count: u64) {
        let flow = self.flows.entry(src).or_default();
        match Status::parse(status) {
            Some(Status::Completed) => flow.completed_out += sum,
            Some(Status::Pending) => flow.pending_out += sum,
            _ => {}
        }
        *self.counts.entry(status.to_string()).or_default() += count;
    }

    /// What transfers of one status brought into `dst` in all; the
    /// counterpart of [`Tally::add_out`], counting no transfer.
    pub(crate) fn add_in(&mut self, dst: BalanceKey, status: &str, sum: i128) {
        let flow = self.flows.entry(dst).or_default();
        match Status::parse(status) {
            Some(Status::Completed) => flow.completed_in += sum,
            Some(Status::Pending) => flow.pending_in += sum,
            _ => {}
        }
    }

    fn of(&self, key: BalanceKey) -> Flows {
        self.flows.get(&key).copied().unwrap_or_default()
    }
}

/// A COMPLETED transfer that left its user source below zero: its id, the
/// source's balance in its currency, that balance right after it and when
/// it was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Debit {
    pub tx_id: i64,
    pub key: BalanceKey,
    pub balance_after: i64,
    /// None only in a damaged ledger (`transfer_fields` reports it).
    pub settled_at: Option<i64>,
}

/// A recorded change of an account's overdraft limit in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitChange {
    pub key: BalanceKey,
    pub at: i64,
    pub overdraft: i64,
}

/// What the check of limits reads besides the accounts: the debits that
/// went below zero, and the limit changes of their accounts, each
/// account's in the order they took effect (`at`, then `change_id`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Drawn {
    pub debits: Vec<Debit>,
    pub limits: Vec<LimitChange>,
}

impl Drawn {
    /// The accounts whose limit changes the check needs, each once.
    pub(crate) fn accounts(&self) -> Vec<i64> {
        let mut accounts: Vec<i64> = self.debits.iter().map(|d| d.key.account).collect();
        accounts.sort_unstable();
        accounts.dedup();
        accounts
    }
}

/// The condition, in SQL both engines run, under which a changed policy
/// row sets a limit: what [`Drawn::limits`] is read with.
pub(crate) const LIMIT_CHANGE_SQL: &str = "kind = 'overdraft'";

/// The checks of [`FIGURE_CHECKS`] over every account and the tally of
/// every transfer, with the replay of the users' histories
/// ([`super::replay::Replay`]) in its place after the balances.
pub(crate) fn figure_checks(
    accounts: &[AccountFigures],
    tally: &Tally,
    drawn: &Drawn,
    history: Check,
    currencies: &Currencies,
) -> Vec<Check> {
    vec![
        balances(accounts, tally, currencies),
        history,
        pending_totals(accounts, tally, currencies),
        zero_sum(accounts, currencies),
        within_limits(accounts, drawn, currencies),
    ]
}

/// A figure as verify's messages show it: the default currency's as
/// always, another's with its code, so a finding names what it is about.
fn shown(currencies: &Currencies, id: CurrencyId, minor: i128) -> String {
    match currencies.get(id) {
        Some(currency) if id == CurrencyId::DEFAULT => currency.format_wide(minor),
        Some(currency) => format!("{} {}", currency.format_wide(minor), currency.code),
        None => format!("{minor} minor units of unknown currency {}", id.0),
    }
}

/// Each balance equals what its COMPLETED transfers brought in minus what
/// they took out. This is the exactly-once check: a completed transfer
/// applied twice or not at all, or a pending, failed or cancelled one that
/// moved money, leaves some balance out of step with the log.
fn balances(accounts: &[AccountFigures], tally: &Tally, currencies: &Currencies) -> Check {
    let mut findings = Findings::default();
    let mut has_external = false;
    for account in accounts {
        has_external |= account.id == EXTERNAL_ACCOUNT && account.name.is_none();
        let flow = tally.of(account.key());
        let expected = flow.completed_in - flow.completed_out;
        if i128::from(account.balance) != expected {
            findings.push(Problem {
                user: account.name.clone(),
                tx_id: None,
                message: format!(
                    "{} has balance {} but its COMPLETED transfers net {}",
                    account.label(),
                    shown(currencies, account.currency, account.balance.into()),
                    shown(currencies, account.currency, expected)
                ),
            });
        }
    }
    if !has_external {
        findings.push(Problem::about_file(
            "the external account (id 0) is missing",
        ));
    }
    let rows: HashSet<BalanceKey> = accounts.iter().map(AccountFigures::key).collect();
    let ids: HashSet<i64> = accounts.iter().map(|account| account.id).collect();
    let mut strangers: Vec<i64> = Vec::new();
    let mut unkept: Vec<(BalanceKey, Flows)> = Vec::new();
    for (key, flow) in &tally.flows {
        if rows.contains(key) {
            continue;
        }
        if !ids.contains(&key.account) {
            strangers.push(key.account);
        } else if *flow != Flows::default() {
            // A balance appears when a line first reserves on it: one a
            // transfer names without moving (a hold's destination, a
            // failed line's party) has no row, and reads as zero.
            unkept.push((*key, *flow));
        }
    }
    strangers.sort_unstable();
    strangers.dedup();
    for id in strangers {
        findings.push(Problem::about_file(format!(
            "transfers name account {id}, which does not exist"
        )));
    }
    unkept.sort_unstable_by_key(|(key, _)| *key);
    for (key, flow) in unkept {
        findings.push(Problem::about_file(format!(
            "account {} has no balance in {} but its transfers move {} in and {} out",
            key.account,
            currencies.get(key.currency).map_or_else(
                || format!("currency {}", key.currency.0),
                |c| c.code.clone()
            ),
            shown(
                currencies,
                key.currency,
                flow.completed_in + flow.pending_in
            ),
            shown(
                currencies,
                key.currency,
                flow.completed_out + flow.pending_out
            ),
        )));
    }
    let total: u64 = tally.counts.values().sum();
    let by_status: Vec<String> = tally
        .counts
        .iter()
        .map(|(status, count)| format!("{count} {}", echo(status)))
        .collect();
    let statuses = if by_status.is_empty() {
        String::new()
    } else {
        format!(" ({})", by_status.join(", "))
    };
    let transfers = format!("{total} transfer{}{statuses}", plural(total));
    let accounts_checked = format!(
        "{} account{}",
        accounts.len(),
        plural(accounts.len() as u64)
    );
    let detail = if findings.is_empty() {
        format!(
            "{accounts_checked}, each balance equal to its COMPLETED transfers in minus out; {transfers}"
        )
    } else {
        format!(
            "{accounts_checked} checked against their COMPLETED transfers, and the figures disagree; {transfers}"
        )
    };
    findings.into_check("balances", detail)
}

/// The maintained `pending_in` and `pending_out` equal the sums of the
/// account's PENDING transfers, so `available` tells the truth.
fn pending_totals(accounts: &[AccountFigures], tally: &Tally, currencies: &Currencies) -> Check {
    let mut findings = Findings::default();
    for account in accounts {
        let flow = tally.of(account.key());
        for (what, stored, expected) in [
            ("pending_in", account.pending_in, flow.pending_in),
            ("pending_out", account.pending_out, flow.pending_out),
        ] {
            if i128::from(stored) != expected {
                findings.push(Problem {
                    user: account.name.clone(),
                    tx_id: None,
                    message: format!(
                        "{} has {what} {} but its PENDING transfers sum to {}",
                        account.label(),
                        shown(currencies, account.currency, stored.into()),
                        shown(currencies, account.currency, expected)
                    ),
                });
            }
        }
    }
    findings.into_check(
        "pending_totals",
        "each account's pending_in and pending_out equal the sums of its PENDING transfers".into(),
    )
}

/// Money is only moved, never made: in each currency, all balances, the
/// external account's included, sum to zero.
fn zero_sum(accounts: &[AccountFigures], currencies: &Currencies) -> Check {
    // (total, users' part) per currency, the default always present.
    let mut sums: BTreeMap<CurrencyId, (i128, i128)> = BTreeMap::new();
    sums.insert(CurrencyId::DEFAULT, (0, 0));
    for account in accounts {
        let sum = sums.entry(account.currency).or_default();
        sum.0 += i128::from(account.balance);
        if account.id != EXTERNAL_ACCOUNT {
            sum.1 += i128::from(account.balance);
        }
    }
    let mut findings = Findings::default();
    for (&id, &(total, _)) in &sums {
        if total != 0 {
            findings.push(Problem::about_file(format!(
                "the balances sum to {}, not zero",
                shown(currencies, id, total)
            )));
        }
    }
    let per_currency: Vec<String> = sums
        .iter()
        .map(|(&id, &(total, users))| {
            format!(
                "sum to {}; users hold {}",
                shown(currencies, id, total),
                shown(currencies, id, users)
            )
        })
        .collect();
    findings.into_check(
        "zero_sum",
        format!(
            "all balances, the external account's included, {}",
            per_currency.join("; in another currency they ")
        ),
    )
}

/// The limit a debit decided at `settled_at` was allowed to reach: the
/// last change at or before it (none: 0). A change in the same millisecond
/// as the decision may have come before or after it, so any of those, or
/// the one before them, is allowed, whichever is largest. A decision with
/// no time (a damaged row) is held to the largest limit ever recorded.
/// `changes` are one account's, in the order they took effect.
fn limit_in_force(changes: &[LimitChange], settled_at: Option<i64>) -> i64 {
    let Some(at) = settled_at else {
        return changes.iter().map(|c| c.overdraft).max().unwrap_or(0);
    };
    let first_at = changes.partition_point(|c| c.at < at);
    let after_at = changes.partition_point(|c| c.at <= at);
    let before = first_at.checked_sub(1).map_or(0, |i| changes[i].overdraft);
    changes[first_at..after_at]
        .iter()
        .map(|c| c.overdraft)
        .fold(before, i64::max)
}

/// No balance below minus the limit in force when it was decided: each
/// debit that left its user below zero is held to the limit in force at
/// its decision (only a debit can break a limit: a limit lowered below
/// what is drawn is allowed, and credits after it leave the balance below
/// the new limit), and each balance now to the largest limit the account
/// ever had.
fn within_limits(accounts: &[AccountFigures], drawn: &Drawn, currencies: &Currencies) -> Check {
    let mut findings = Findings::default();
    let label = |id: i64| -> (Option<String>, String) {
        match accounts.iter().find(|a| a.id == id) {
            Some(account) => (account.name.clone(), account.label()),
            None => (None, format!("account {id}")),
        }
    };
    // Each balance's changes by time; the sort is stable, so changes of one
    // millisecond keep the order they were recorded in.
    let mut changes: HashMap<BalanceKey, Vec<LimitChange>> = HashMap::new();
    for change in &drawn.limits {
        changes.entry(change.key).or_default().push(*change);
    }
    for list in changes.values_mut() {
        list.sort_by_key(|c| c.at);
    }
    for debit in &drawn.debits {
        let limit = limit_in_force(
            changes.get(&debit.key).map_or(&[], Vec::as_slice),
            debit.settled_at,
        );
        if i128::from(debit.balance_after) < -i128::from(limit) {
            let (user, label) = label(debit.key.account);
            findings.push(Problem {
                user,
                tx_id: Some(debit.tx_id),
                message: format!(
                    "transfer {} left {label} at {}, below its overdraft limit of {} in force then",
                    debit.tx_id,
                    shown(currencies, debit.key.currency, debit.balance_after.into()),
                    shown(currencies, debit.key.currency, limit.into())
                ),
            });
        }
    }
    for account in accounts.iter().filter(|a| a.id != EXTERNAL_ACCOUNT) {
        if i128::from(account.balance) < -i128::from(account.largest_limit.max(0)) {
            let message = if account.largest_limit == 0 {
                format!(
                    "{} has the negative balance {} and never had an overdraft limit",
                    account.label(),
                    shown(currencies, account.currency, account.balance.into())
                )
            } else {
                format!(
                    "{} has the balance {}, below the largest overdraft limit it ever had ({})",
                    account.label(),
                    shown(currencies, account.currency, account.balance.into()),
                    shown(currencies, account.currency, account.largest_limit.into())
                )
            };
            findings.push(Problem {
                user: account.name.clone(),
                tx_id: None,
                message,
            });
        }
    }
    findings.into_check(
        "no_negative_balances",
        "no user balance below minus the overdraft limit in force when it was decided".into(),
    )
}

/// The name and one-line description of the per-transfer field check.
pub(crate) const TRANSFER_FIELDS: (&str, &str) = (
    "transfer_fields",
    "settled_at is set exactly when a transfer left PENDING, reason exactly when it FAILED, amounts are positive, source and destination differ",
);

/// One transfer's fields as stored, for [`transfer_field_problem`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredFields<'a> {
    pub tx_id: i64,
    pub status: &'a str,
    pub reason: Option<&'a str>,
    pub settled: bool,
    pub amount: i64,
    pub src: i64,
    pub dst: i64,
}

/// What is wrong with one transfer's fields, if anything: only a settled
/// transfer has `settled_at`, only a FAILED one a `reason`, and that reason
/// is one settlement gives; amounts are positive and the sides distinct.
pub(crate) fn transfer_field_problem(t: StoredFields<'_>) -> Option<Problem> {
    let mut wrong = Vec::new();
    // Quoted safely: a tampered ledger may hold any text here.
    let status = echo(t.status);
    match Status::parse(t.status) {
        None => wrong.push(format!("has the unknown status '{status}'")),
        Some(known) if t.settled == super::can_change(known) => wrong.push(if t.settled {
            format!("is {status} but has settled_at set")
        } else {
            format!("is {status} but has no settled_at")
        }),
        Some(_) => {}
    }
    let failed = t.status == Status::Failed.as_str();
    match t.reason {
        None if failed => wrong.push("is FAILED without a reason".into()),
        Some(reason) if !failed => {
            wrong.push(format!("is {status} but has the reason '{}'", echo(reason)));
        }
        Some(reason) if FailReason::parse(reason).is_none() => {
            wrong.push(format!("has the unknown reason '{}'", echo(reason)));
        }
        _ => {}
    }
    if t.amount <= 0 {
        wrong.push("has an amount that is not positive".into());
    }
    if t.src == t.dst {
        wrong.push("has the same source and destination".into());
    }
    (!wrong.is_empty()).then(|| Problem {
        user: None,
        tx_id: Some(t.tx_id),
        message: format!("transfer {} {}", t.tx_id, wrong.join(", ")),
    })
}

/// `verify` of a ledger whose schema is older than this binary's: the
/// checks judge a ledger against the schema the migrations build, so an
/// older one would fail them for its age alone, not for damage. A read
/// never upgrades, so it is `upgrade_needed`, as for every other read; but
/// a file the engine's own storage check (`storage`) finds damaged is
/// reported as damaged first, since an upgrade would write into it.
pub(crate) fn older_schema(
    storage: Check,
    ledger: &crate::ledger::Location,
    found: i64,
    latest: i64,
) -> Result<VerifyReport> {
    if storage.ok {
        return Err(WalletError::UpgradeNeeded {
            ledger: ledger.clone(),
            found,
            latest,
        });
    }
    Ok(VerifyReport {
        checks: vec![storage],
    })
}

/// The name of the check of holds and refunds.
pub(crate) const HOLDS_CHECK: &str = "holds";

/// Accounts whose `held` is not the sum of their HELD holds: (id, name,
/// held, the sum, the currency). SQL both engines run.
pub(crate) const HELD_MISMATCHES: &str = "SELECT a.id, a.name, a.held,
        CAST(coalesce((SELECT sum(h.hold_amount) FROM transfers h
                       WHERE h.src = a.id AND h.currency = 0 AND h.status = 'HELD'), 0) AS BIGINT),
        CAST(0 AS BIGINT)
     FROM accounts a
    WHERE a.held <> coalesce((SELECT sum(h.hold_amount) FROM transfers h
                              WHERE h.src = a.id AND h.currency = 0 AND h.status = 'HELD'), 0)
    UNION ALL
    SELECT b.account, a.name, b.held,
        CAST(coalesce((SELECT sum(h.hold_amount) FROM transfers h
                       WHERE h.src = b.account AND h.currency = b.currency
                         AND h.status = 'HELD'), 0) AS BIGINT),
        CAST(b.currency AS BIGINT)
     FROM balances b JOIN accounts a ON a.id = b.account
    WHERE b.held <> coalesce((SELECT sum(h.hold_amount) FROM transfers h
                              WHERE h.src = b.account AND h.currency = b.currency
                                AND h.status = 'HELD'), 0)
    ORDER BY 1, 5";

/// Holds captured for more than they reserved: (tx_id, amount,
/// hold_amount, currency).
pub(crate) const OVER_CAPTURED: &str =
    "SELECT tx_id, amount, hold_amount, CAST(currency AS BIGINT) FROM transfers
    WHERE hold_amount IS NOT NULL AND amount > hold_amount ORDER BY tx_id";

/// Transfers whose paid refunds ([`super::refund_paid`]) add up to more
/// than they moved: (tx_id, amount, refunded, currency).
pub(crate) fn over_refunded() -> String {
    format!(
        "SELECT o.tx_id, o.amount, CAST(sum(r.amount) AS BIGINT), CAST(o.currency AS BIGINT)
     FROM transfers r JOIN transfers o ON o.tx_id = r.refund_of
    WHERE r.refund_of IS NOT NULL AND r.status IN ({})
    GROUP BY o.tx_id, o.amount, o.currency HAVING sum(r.amount) > o.amount
    ORDER BY o.tx_id",
        super::refund_paid_statuses_sql()
    )
}

/// What the three queries of the holds check found.
#[derive(Debug, Default)]
pub(crate) struct HoldFindings {
    /// (account id, name, held, sum of its HELD holds, currency).
    pub held: Vec<(i64, Option<String>, i64, i64, i64)>,
    /// (tx_id, amount, hold_amount, currency).
    pub over_captured: Vec<(i64, i64, i64, i64)>,
    /// (tx_id, amount, refunded, currency).
    pub over_refunded: Vec<(i64, i64, i64, i64)>,
}

/// An amount as [`shown`] writes it: the default currency's as it always
/// was, another's with its code, each at its own scale.
fn with_code(currencies: &Currencies, currency: i64, minor: i64) -> String {
    let id = i16::try_from(currency).map_or(CurrencyId(-1), CurrencyId);
    shown(currencies, id, i128::from(minor))
}

/// Reservations equal the sum of live holds, no hold is captured beyond
/// its amount, and no transfer is refunded beyond what it moved.
pub(crate) fn holds_check(found: HoldFindings, currencies: &Currencies) -> Check {
    let mut findings = Findings::default();
    for (id, name, held, sum, currency) in found.held {
        let label = AccountFigures {
            id,
            currency: i16::try_from(currency).map_or(CurrencyId::DEFAULT, CurrencyId),
            name: name.clone(),
            balance: 0,
            pending_in: 0,
            pending_out: 0,
            largest_limit: 0,
        }
        .label();
        findings.push(Problem {
            user: name,
            tx_id: None,
            message: format!(
                "{label} has {} held but its HELD holds sum to {}",
                with_code(currencies, currency, held),
                with_code(currencies, currency, sum)
            ),
        });
    }
    for (tx_id, amount, hold_amount, currency) in found.over_captured {
        findings.push(Problem {
            user: None,
            tx_id: Some(tx_id),
            message: format!(
                "hold {tx_id} was captured for {}, more than the {} it reserved",
                with_code(currencies, currency, amount),
                with_code(currencies, currency, hold_amount)
            ),
        });
    }
    for (tx_id, amount, refunded, currency) in found.over_refunded {
        findings.push(Problem {
            user: None,
            tx_id: Some(tx_id),
            message: format!(
                "transfer {tx_id} moved {} but its completed refunds return {}",
                with_code(currencies, currency, amount),
                with_code(currencies, currency, refunded)
            ),
        });
    }
    findings.into_check(
        HOLDS_CHECK,
        "each account's held money is the sum of its live holds, no hold is captured beyond its amount, no transfer refunded beyond it".into(),
    )
}

/// Transfers that name a currency the ledger does not list: (tx_id,
/// currency). SQL both engines run; the column has no reference a ledger
/// file could enforce, so this is its check.
pub(crate) const UNKNOWN_CURRENCY_TRANSFERS: &str =
    "SELECT tx_id, CAST(currency AS BIGINT) FROM transfers
      WHERE currency NOT IN (SELECT id FROM currencies) ORDER BY tx_id";

/// The default currency as `ledger_meta` records it and as row 0 of
/// `currencies` does (code, scale), for [`default_currency_problem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DefaultCurrency {
    pub meta: Option<(String, i64)>,
    pub listed: Option<(String, i64)>,
}

/// What is wrong with the default currency's two records, if anything:
/// row 0 of `currencies` is the currency `ledger_meta` names, with its
/// scale. A missing `ledger_meta` row is the `ledger_meta` check's own
/// finding, so it is not reported again here.
pub(crate) fn default_currency_problem(found: &DefaultCurrency) -> Option<Problem> {
    let (code, scale) = found.meta.as_ref()?;
    let message = match &found.listed {
        None => format!(
            "the currencies table has no row 0 for the default currency ({}, {scale} decimal places)",
            echo(code)
        ),
        Some((listed, listed_scale)) if listed != code || listed_scale != scale => format!(
            "currency 0 is {} with {listed_scale} decimal places, but ledger_meta names {} with {scale}",
            echo(listed),
            echo(code)
        ),
        Some(_) => return None,
    };
    Some(Problem::about_file(message))
}

/// A transfer that names a currency the ledger does not list.
pub(crate) fn unknown_currency_problem(tx_id: i64, currency: i64) -> Problem {
    Problem {
        user: None,
        tx_id: Some(tx_id),
        message: format!(
            "transfer {tx_id} names currency {currency}, which is not one of the ledger's currencies"
        ),
    }
}

/// The check of exchange legs: its name and what it asserts.
pub(crate) const PAIRS_CHECK: (&str, &str) = (
    "pairs",
    "each exchange leg's pair links back to it and mirrors it in another currency, both decided alike; the key on the first leg only, no hold or refund a leg",
);

/// The transfers `which` selects, as [`pair_problems`] reads them, in SQL
/// both engines run: every leg (`pair_tx_id IS NOT NULL`, one pass over
/// the table), then any transfer a leg names that names no pair itself
/// ([`unlinked_partners`], by id). Columns in the order [`Leg`] takes
/// them; the settle batch is the engine's to add (`NULL` on a ledger file,
/// which keeps none per transfer).
pub(crate) fn leg_rows(settle_batch: &str, which: &str) -> String {
    format!(
        "SELECT tx_id, pair_tx_id, src, dst, CAST(currency AS BIGINT), status, reason,
            settled_at, {settle_batch}, idem_key IS NOT NULL,
            hold_amount IS NOT NULL OR refund_of IS NOT NULL
     FROM transfers WHERE {which} ORDER BY tx_id"
    )
}

/// The ids legs name that are not legs themselves, to be read one by one
/// and added with [`with_partners`]; none in a sound ledger. `legs` is in
/// `tx_id` order.
pub(crate) fn unlinked_partners(legs: &[Leg]) -> Vec<i64> {
    let mut missing: Vec<i64> = legs
        .iter()
        .filter_map(|leg| leg.pair)
        .filter(|pair| legs.binary_search_by_key(pair, |leg| leg.tx_id).is_err())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    missing
}

/// The legs with the partners read apart, back in `tx_id` order.
pub(crate) fn with_partners(mut legs: Vec<Leg>, partners: Vec<Leg>) -> Vec<Leg> {
    legs.extend(partners);
    legs.sort_unstable_by_key(|leg| leg.tx_id);
    legs
}

/// One exchange leg as stored, or a transfer another names as its pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leg {
    pub tx_id: i64,
    pub pair: Option<i64>,
    pub src: i64,
    pub dst: i64,
    pub currency: i64,
    pub status: String,
    pub reason: Option<String>,
    pub settled_at: Option<i64>,
    /// PostgreSQL's settle batch; `None` where the engine keeps none.
    pub settle_batch: Option<i64>,
    pub keyed: bool,
    /// A hold or a refund, which an exchange never makes.
    pub hold_or_refund: bool,
}

/// What is wrong with the exchange legs, one problem per pair (or per leg
/// whose pair does not link back): the link is mutual; the first leg (the
/// smaller id) goes from the user to the desk and the second back; the
/// currencies differ; both legs were decided alike (status, reason,
/// settled_at and, where kept, the settle batch), so neither was applied
/// alone; the key is on the first leg only; no hold or refund is a leg.
/// `legs` is in `tx_id` order.
pub(crate) fn pair_problems(legs: &[Leg], currencies: &Currencies) -> Vec<Problem> {
    let find = |tx_id: i64| {
        legs.binary_search_by_key(&tx_id, |leg| leg.tx_id)
            .ok()
            .map(|i| &legs[i])
    };
    let mut problems = Vec::new();
    for leg in legs {
        let Some(pair) = leg.pair else { continue };
        let Some(partner) = find(pair).filter(|p| p.pair == Some(leg.tx_id)) else {
            let links = match find(pair) {
                None => format!("there is no transfer {pair}"),
                Some(Leg { pair: None, .. }) => format!("transfer {pair} names no pair"),
                Some(Leg {
                    pair: Some(other), ..
                }) => format!("transfer {pair} names {other}"),
            };
            problems.push(Problem {
                user: None,
                tx_id: Some(leg.tx_id),
                message: format!(
                    "transfer {} names {pair} as the other leg of its exchange, but {links}",
                    leg.tx_id
                ),
            });
            continue;
        };
        if partner.tx_id < leg.tx_id {
            continue;
        }
        let (first, second) = (leg, partner);
        let mut wrong = Vec::new();
        if (first.src, first.dst) != (second.dst, second.src) {
            wrong.push(
                "do not mirror each other (the second leg must pay the first back)".to_string(),
            );
        }
        if first.currency == second.currency {
            let code = i16::try_from(first.currency)
                .ok()
                .and_then(|id| currencies.get(CurrencyId(id)))
                .map_or_else(|| first.currency.to_string(), |c| c.code.clone());
            wrong.push(format!("are both in {code}"));
        }
        if first.status != second.status || first.reason != second.reason {
            let said = |l: &Leg| match &l.reason {
                Some(reason) => format!("{} ({})", echo(&l.status), echo(reason)),
                None => echo(&l.status),
            };
            wrong.push(format!(
                "were decided apart: {} {} but {} {}",
                first.tx_id,
                said(first),
                second.tx_id,
                said(second)
            ));
        } else if first.settled_at != second.settled_at || first.settle_batch != second.settle_batch
        {
            wrong.push("were settled at different times or in different batches".to_string());
        }
        if second.keyed {
            wrong.push(format!(
                "carry a key on the second leg {}, which only the first may hold",
                second.tx_id
            ));
        }
        if first.hold_or_refund || second.hold_or_refund {
            wrong.push("include a hold or a refund".to_string());
        }
        if !wrong.is_empty() {
            problems.push(Problem {
                user: None,
                tx_id: Some(first.tx_id),
                message: format!(
                    "the legs {} and {} of an exchange {}",
                    first.tx_id,
                    second.tx_id,
                    wrong.join(", ")
                ),
            });
        }
    }
    problems
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn account(id: i64, name: Option<&str>, balance: i64, pending: (i64, i64)) -> AccountFigures {
        AccountFigures {
            id,
            currency: CurrencyId::DEFAULT,
            name: name.map(str::to_string),
            balance,
            pending_in: pending.0,
            pending_out: pending.1,
            largest_limit: 0,
        }
    }

    fn key(account: i64) -> BalanceKey {
        BalanceKey::default_currency(account)
    }

    fn sound_history() -> Check {
        Findings::default().into_check(HISTORY_CHECK, String::new())
    }

    fn failed(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }

    #[test]
    fn the_suspects_query_names_every_status_and_reason_the_rules_know() {
        let sql = transfer_field_suspects();
        assert!(sql.contains(
            "status NOT IN ('PENDING', 'COMPLETED', 'FAILED', 'CANCELLED', 'HELD', 'RELEASED', 'EXPIRED')"
        ));
        assert!(sql.contains("(status IN ('PENDING', 'HELD')) = (settled_at IS NOT NULL)"));
        assert!(sql.contains("(status = 'FAILED') <> (reason IS NOT NULL)"));
        assert!(sql.contains(
            "reason NOT IN ('insufficient_funds', 'balance_overflow', 'refund_exceeds_original', 'account_frozen')"
        ));
    }

    #[test]
    fn figures_that_agree_with_the_log_pass_every_check() {
        let mut tally = Tally::default();
        tally.add(key(0), key(1), "COMPLETED", 500);
        tally.add(key(1), key(2), "COMPLETED", 200);
        tally.add(key(1), key(2), "PENDING", 50);
        tally.add(key(2), key(1), "FAILED", 9_999);
        let accounts = [
            account(0, None, -500, (0, 0)),
            account(1, Some("alice"), 300, (0, 50)),
            account(2, Some("bob"), 200, (50, 0)),
        ];
        let checks = figure_checks(
            &accounts,
            &tally,
            &Drawn::default(),
            sound_history(),
            &Currencies::new(Currency::default()),
        );
        assert_eq!(checks.len(), FIGURE_CHECKS.len());
        assert!(failed(&checks).is_empty(), "{checks:?}");
        assert!(
            checks[0].detail.contains("4 transfers"),
            "{}",
            checks[0].detail
        );
    }

    #[test]
    fn a_transfer_applied_twice_breaks_the_balances_and_names_the_user() {
        let mut tally = Tally::default();
        tally.add(key(0), key(1), "COMPLETED", 500);
        // Money moved twice: both balances show it, the log only once.
        let accounts = [
            account(0, None, -1000, (0, 0)),
            account(1, Some("alice"), 1000, (0, 0)),
        ];
        let checks = figure_checks(
            &accounts,
            &tally,
            &Drawn::default(),
            sound_history(),
            &Currencies::new(Currency::default()),
        );
        assert_eq!(failed(&checks), ["balances"]);
        assert_eq!(checks[0].problem_count, 2);
        assert_eq!(checks[0].problems[1].user.as_deref(), Some("alice"));
        // A failed check says so in its detail, and counts in English.
        assert_eq!(
            checks[0].detail,
            "2 accounts checked against their COMPLETED transfers, and the figures disagree; 1 transfer (1 COMPLETED)"
        );
    }

    #[test]
    fn pending_sums_money_from_nowhere_and_overdrafts_are_each_found() {
        let currency = Currency::default();
        // A pending sum that its PENDING transfers do not add up to.
        let mut tally = Tally::default();
        tally.add(key(1), key(0), "PENDING", 10);
        let accounts = [
            account(0, None, 0, (10, 0)),
            account(1, Some("alice"), 0, (0, 0)),
        ];
        let checks = figure_checks(
            &accounts,
            &tally,
            &Drawn::default(),
            sound_history(),
            &Currencies::new(currency.clone()),
        );
        assert_eq!(failed(&checks), ["pending_totals"]);
        assert_eq!(checks[2].problems[0].user.as_deref(), Some("alice"));
        // Money from nowhere, with no transfer to explain it.
        let rich = [
            account(0, None, 0, (0, 0)),
            account(1, Some("alice"), 5, (0, 0)),
        ];
        let checks = figure_checks(
            &rich,
            &Tally::default(),
            &Drawn::default(),
            sound_history(),
            &Currencies::new(currency.clone()),
        );
        assert_eq!(failed(&checks), ["balances", "zero_sum"]);
        // An overdraft the log does explain: only the overdraft check fails.
        let mut overdrawn = Tally::default();
        overdrawn.add(key(1), key(0), "COMPLETED", 5);
        let accounts = [
            account(0, None, 5, (0, 0)),
            account(1, Some("alice"), -5, (0, 0)),
        ];
        let checks = figure_checks(
            &accounts,
            &overdrawn,
            &Drawn::default(),
            sound_history(),
            &Currencies::new(currency.clone()),
        );
        assert_eq!(failed(&checks), ["no_negative_balances"]);
        // An account the log names but the ledger lacks.
        let mut strangers = Tally::default();
        strangers.add(key(9), key(1), "CANCELLED", 1);
        let checks = figure_checks(
            &rich,
            &strangers,
            &Drawn::default(),
            sound_history(),
            &Currencies::new(currency.clone()),
        );
        let messages: Vec<&str> = checks[0]
            .problems
            .iter()
            .map(|p| p.message.as_str())
            .collect();
        assert!(
            messages.contains(&"transfers name account 9, which does not exist"),
            "{messages:?}"
        );
        // A balance in another currency a hold names without moving has no
        // row and is sound; one a pending transfer moves must have one.
        let btc = CurrencyId(1);
        let currencies = Currencies::from_ordered(vec![
            currency.clone(),
            Currency {
                code: "BTC".into(),
                scale: 8,
            },
        ])
        .unwrap();
        let empty = [
            account(0, None, 0, (0, 0)),
            account(1, Some("alice"), 0, (0, 0)),
        ];
        let balances_check = |tally: &Tally| {
            figure_checks(
                &empty,
                tally,
                &Drawn::default(),
                sound_history(),
                &currencies,
            )
            .swap_remove(0)
        };
        let mut held = Tally::default();
        held.add(key(1), BalanceKey::new(0, btc), "HELD", 3);
        held.add(key(1), BalanceKey::new(1, btc), "RELEASED", 3);
        let check = balances_check(&held);
        assert!(check.ok, "{:?}", check.problems);
        held.add(key(0), BalanceKey::new(1, btc), "PENDING", 3);
        let check = balances_check(&held);
        let messages: Vec<&str> = check.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "account 1 has no balance in BTC but its transfers move 0.00000003 BTC in and 0.00000000 BTC out"
            ]
        );
    }

    #[test]
    fn each_debit_is_held_to_the_limit_in_force_when_it_was_decided() {
        let currency = Currency::default();
        let change = |at, overdraft| LimitChange {
            key: key(1),
            at,
            overdraft,
        };
        let debit = |settled_at| Debit {
            tx_id: 5,
            key: key(1),
            balance_after: -50,
            settled_at: Some(settled_at),
        };
        let mut tally = Tally::default();
        tally.add(key(1), key(0), "COMPLETED", 50);
        let limits_check = |largest_limit, debits, limits| -> Check {
            let accounts = [
                account(0, None, 50, (0, 0)),
                AccountFigures {
                    largest_limit,
                    ..account(1, Some("alice"), -50, (0, 0))
                },
            ];
            let drawn = Drawn { debits, limits };
            figure_checks(
                &accounts,
                &tally,
                &drawn,
                sound_history(),
                &Currencies::new(currency.clone()),
            )
            .into_iter()
            .find(|c| c.name == "no_negative_balances")
            .unwrap()
        };
        // Raised to 1.00 at 10, lowered to 0.20 at 30.
        let history = || vec![change(10, 100), change(30, 20)];
        assert!(limits_check(100, vec![debit(20)], history()).ok);
        let broken = limits_check(100, vec![debit(40)], history());
        assert!(!broken.ok);
        assert_eq!(broken.problems[0].tx_id, Some(5));
        assert_eq!(broken.problems[0].user.as_deref(), Some("alice"));
        assert_eq!(
            broken.problems[0].message,
            "transfer 5 left user 'alice' at -0.50, below its overdraft limit of 0.20 in force then"
        );
        // In the millisecond of a change, the decision may have come
        // before or after it: the larger limit holds.
        assert!(limits_check(100, vec![debit(10)], history()).ok);
        assert!(limits_check(100, vec![debit(30)], history()).ok);
        assert!(!limits_check(100, vec![debit(9)], history()).ok);
        // Recorded out of order, the changes are still taken by time.
        assert!(limits_check(100, vec![debit(20)], vec![change(30, 20), change(10, 100)]).ok);
        assert!(!limits_check(100, vec![debit(20)], Vec::new()).ok);
        // The balance now: within the largest limit ever, not the last.
        assert!(limits_check(100, Vec::new(), Vec::new()).ok);
        let now = limits_check(40, Vec::new(), Vec::new());
        assert_eq!(now.problems[0].tx_id, None);
        assert!(now.problems[0].message.contains("0.40"), "{now:?}");
        assert_eq!(
            limits_check(0, Vec::new(), Vec::new()).problems[0].message,
            "user 'alice' has the negative balance -0.50 and never had an overdraft limit"
        );
    }

    #[test]
    fn each_field_rule_is_judged_and_named() {
        let sound = StoredFields {
            tx_id: 3,
            status: "FAILED",
            reason: Some("insufficient_funds"),
            settled: true,
            amount: 5,
            src: 1,
            dst: 2,
        };
        assert_eq!(transfer_field_problem(sound), None);
        let cases = [
            (
                StoredFields {
                    status: "LOST",
                    reason: None,
                    ..sound
                },
                "unknown status 'LOST'",
            ),
            (
                StoredFields {
                    status: "PENDING",
                    reason: None,
                    ..sound
                },
                "is PENDING but has settled_at set",
            ),
            (
                StoredFields {
                    settled: false,
                    ..sound
                },
                "is FAILED but has no settled_at",
            ),
            (
                StoredFields {
                    reason: None,
                    ..sound
                },
                "is FAILED without a reason",
            ),
            (
                StoredFields {
                    status: "COMPLETED",
                    ..sound
                },
                "is COMPLETED but has the reason",
            ),
            (
                StoredFields {
                    reason: Some("bad luck"),
                    ..sound
                },
                "unknown reason 'bad luck'",
            ),
            (
                StoredFields { amount: 0, ..sound },
                "amount that is not positive",
            ),
            (
                StoredFields { dst: 1, ..sound },
                "same source and destination",
            ),
        ];
        for (fields, wanted) in cases {
            let problem = transfer_field_problem(fields).expect(wanted);
            assert_eq!(problem.tx_id, Some(3));
            assert!(
                problem.message.contains(wanted),
                "{}: {wanted}",
                problem.message
            );
        }
    }

    /// A sound pair: alice (1) pays the desk (2) 500 PHP, the desk pays
    /// her back 100 JPY, both settled in batch 7.
    fn good_pair() -> [Leg; 2] {
        let leg = |tx_id, pair, src, dst, currency| Leg {
            tx_id,
            pair: Some(pair),
            src,
            dst,
            currency,
            status: "COMPLETED".into(),
            reason: None,
            settled_at: Some(1_000),
            settle_batch: Some(7),
            keyed: false,
            hold_or_refund: false,
        };
        let mut first = leg(11, 12, 1, 2, 0);
        first.keyed = true;
        [first, leg(12, 11, 2, 1, 1)]
    }

    fn pair_messages(legs: &[Leg]) -> Vec<String> {
        let currencies =
            Currencies::from_ordered(vec![Currency::default(), Currency::new("JPY", 0).unwrap()])
                .unwrap();
        pair_problems(legs, &currencies)
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    #[test]
    fn a_sound_pair_has_no_problem_and_each_fault_is_named() {
        assert!(pair_messages(&good_pair()).is_empty());
        let broken = |change: fn(&mut [Leg; 2]), needle: &str| {
            let mut legs = good_pair();
            change(&mut legs);
            let found = pair_messages(&legs);
            assert!(
                found.iter().any(|m| m.contains(needle)),
                "{needle}: {found:?}"
            );
        };
        broken(|l| l[1].pair = None, "but transfer 12 names no pair");
        broken(|l| l[1].pair = Some(13), "but transfer 12 names 13");
        broken(|l| l[1].src = 3, "do not mirror");
        broken(|l| l[1].currency = 0, "are both in PHP");
        broken(
            |l| {
                l[1].status = "FAILED".into();
                l[1].reason = Some("insufficient_funds".into());
            },
            "decided apart: 11 COMPLETED but 12 FAILED (insufficient_funds)",
        );
        broken(
            |l| l[1].settled_at = Some(1_001),
            "settled at different times",
        );
        broken(|l| l[1].settle_batch = Some(8), "in different batches");
        broken(|l| l[1].keyed = true, "a key on the second leg 12");
        broken(|l| l[0].hold_or_refund = true, "a hold or a refund");
        let lonely = pair_messages(&good_pair()[..1]);
        assert_eq!(lonely.len(), 1);
        assert!(lonely[0].contains("there is no transfer 12"), "{lonely:?}");
    }
}
