//! Account policies: changing one under the account's row lock, recording
//! the change and its event, and reading the changes back (the policy in
//! force at an instant, the changes an export interleaves).

use postgres::{Client, GenericClient};

use super::NOW_MS;
use super::commit;
use super::error::PgResult;
use super::guard::Guard;
use super::users;
use crate::domain::UserName;
use crate::error::WalletError;
use crate::ledger::events::EventKind;
use crate::ledger::model::{Instant, Policy, PolicyChange, PolicyChangeRecord};
use crate::ledger::rules;
use crate::money::{Currencies, CurrencyId};

/// The tables a policy change writes, for the guard's locks.
pub(super) const WRITES: [&str; 3] = ["accounts", "policy_changes", "events"];

/// Changes `name`'s policy as [`rules::policy::apply_change`] decides, in
/// one transaction holding the account's row lock, the lock settle and
/// capture take on it, so a change and a decision never interleave.
pub(super) fn change_policy(
    client: &mut Client,
    guard: &mut Guard,
    currencies: &Currencies,
    name: &UserName,
    change: PolicyChange,
    currency: CurrencyId,
    memo: Option<&str>,
) -> PgResult<PolicyChangeRecord> {
    if currency == CurrencyId::DEFAULT {
        guard.begin(client, &WRITES, &["transfers"])?;
    } else {
        guard.begin(
            client,
            &["accounts", "balances", "policy_changes", "events"],
            &["transfers"],
        )?;
    }
    // The clock is read once the row is locked, and the figures after it,
    // by a statement of their own: a writer that held the row first has
    // committed by then, and its figures are the ones decided against.
    let locked = client.query_one(
        &format!(
            "SELECT {NOW_MS}, max(id) FROM (
                 SELECT id FROM accounts WHERE lower(name) = lower($1) FOR UPDATE
             ) AS locked"
        ),
        &[&name.as_str()],
    )?;
    let now: i64 = locked.get(0);
    if locked.get::<_, Option<i64>>(1).is_none() {
        return Err(WalletError::UserNotFound(name.to_string()).into());
    }
    let user = users::user(client, name)?;
    let policy = rules::policy::change_user_in(&user, change, currencies)?;
    let change_id = if currency == CurrencyId::DEFAULT {
        record_change(client, user.id, policy, change, memo, now)?
    } else {
        record_limit_in(client, user.id, currency, change, memo, now)?
    };
    commit(
        client,
        guard,
        &format!("the {} change of user '{}'", change.kind(), user.name),
        &format!(
            "`wallet get-user {}` shows whether it took effect",
            user.name
        ),
    )?;
    Ok(PolicyChangeRecord {
        change_id,
        user: user.name,
        change,
        memo: memo.map(str::to_string),
        at: Instant::new(now),
        currency,
    })
}

/// Writes `policy` to the account, the change that made it as of `at`, and
/// the change's event, in one statement; returns the change's id.
pub(super) fn record_change(
    client: &mut Client,
    account: i64,
    policy: Policy,
    change: PolicyChange,
    memo: Option<&str>,
    at: i64,
) -> PgResult<i64> {
    let row = client.query_one(
        &format!(
            "WITH changed AS (
             UPDATE accounts SET overdraft = $2, frozen = $3, closed = $4 WHERE id = $1
         ), change AS (
             INSERT INTO policy_changes (account, kind, overdraft, memo, at)
             VALUES ($1, $5, $6, $7, $8) RETURNING change_id, at
         )
         INSERT INTO events (kind, change_id, at)
         SELECT {policy_changed}, change_id, at FROM change RETURNING change_id",
            policy_changed = EventKind::PolicyChanged.code()
        ),
        &[
            &account,
            &policy.overdraft,
            &policy.frozen,
            &policy.closed,
            &change.kind(),
            &change.overdraft(),
            &memo,
            &at,
        ],
    )?;
    Ok(row.get(0))
}

/// Writes an overdraft limit in a currency other than the default to the
/// account's `balances` row (made at zero if missing; the account's row
/// lock is held), the change that set it as of `at`, and the change's
/// event, in one statement; returns the change's id.
fn record_limit_in(
    client: &mut Client,
    account: i64,
    currency: CurrencyId,
    change: PolicyChange,
    memo: Option<&str>,
    at: i64,
) -> PgResult<i64> {
    let row = client.query_one(
        &format!(
            "WITH changed AS (
             INSERT INTO balances (account, currency, created_at, overdraft)
             VALUES ($1, $2, $5, $3)
             ON CONFLICT (account, currency) DO UPDATE SET overdraft = excluded.overdraft
         ), change AS (
             INSERT INTO policy_changes (account, kind, overdraft, memo, at, currency)
             VALUES ($1, $6, $3, $4, $5, $2) RETURNING change_id, at
         )
         INSERT INTO events (kind, change_id, at)
         SELECT {policy_changed}, change_id, at FROM change RETURNING change_id",
            policy_changed = EventKind::PolicyChanged.code()
        ),
        &[
            &account,
            &currency.0,
            &change.overdraft(),
            &memo,
            &at,
            &change.kind(),
        ],
    )?;
    Ok(row.get(0))
}

/// The policy of account `id` in force at `at` for its balance in
/// `currency`: its changes made by then, folded in the order they were
/// recorded; limits in other currencies play no part in it.
pub(super) fn policy_at(
    client: &mut impl GenericClient,
    account: i64,
    at: i64,
    currency: CurrencyId,
) -> PgResult<Policy> {
    // Freeze, unfreeze and close are recorded in the default currency and
    // cover every currency; an overdraft limit is its own currency's.
    let rows = client.query(
        &format!(
            "SELECT kind, overdraft FROM policy_changes
              WHERE account = $1 AND at <= $2
                AND (currency = $3 OR (currency = 0 AND kind <> '{overdraft}'))
              ORDER BY change_id",
            overdraft = PolicyChange::Overdraft(0).kind()
        ),
        &[&account, &at, &currency.0],
    )?;
    let changes = rows
        .iter()
        .map(|row| PolicyChange::stored(row.get(0), row.get(1)))
        .collect::<crate::error::Result<Vec<_>>>()?;
    Ok(rules::policy::policy_after(changes))
}

/// Every policy change made within `[since, until]`, by time.
pub(super) fn changes_between(
    client: &mut impl GenericClient,
    since: i64,
    until: i64,
) -> PgResult<Vec<PolicyChangeRecord>> {
    let rows = client.query(
        "SELECT c.change_id, a.name, c.kind, c.overdraft, c.memo, c.at, c.currency
           FROM policy_changes c JOIN accounts a ON a.id = c.account
          WHERE c.at >= $1 AND c.at <= $2 ORDER BY c.at, c.change_id",
        &[&since, &until],
    )?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let user: Option<String> = row.get(1);
        found.push(PolicyChangeRecord {
            change_id: row.get(0),
            user: user.ok_or_else(|| {
                WalletError::Integrity("a policy change names the external account".into())
            })?,
            change: PolicyChange::stored(row.get(2), row.get(3))?,
            memo: row.get(4),
            at: Instant::new(row.get(5)),
            currency: CurrencyId(row.get(6)),
        });
    }
    Ok(found)
}
