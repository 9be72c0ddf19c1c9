//! Account policies: changing one under the write lock, recording the
//! change and its event, and reading the changes back (the policy in force
//! at an instant, the changes an export interleaves).

use rusqlite::{Connection, Transaction, params};

use super::error::{SqlResult, commit};
use super::users;
use crate::domain::UserName;
use crate::error::WalletError;
use crate::ledger::clock;
use crate::ledger::events::EventKind;
use crate::ledger::model::BalanceKey;
use crate::ledger::model::{Instant, Policy, PolicyChange, PolicyChangeRecord};
use crate::ledger::rules;
use crate::money::{Currencies, CurrencyId};

/// Changes `name`'s policy as [`rules::policy::apply_change`] decides, in
/// one transaction under the write lock, which settle and capture take too.
pub(super) fn change_policy(
    conn: &mut Connection,
    currencies: &Currencies,
    name: &UserName,
    change: PolicyChange,
    currency: CurrencyId,
    memo: Option<&str>,
) -> SqlResult<PolicyChangeRecord> {
    let tx = super::guard::begin_write(conn)?;
    let now = clock::now_ms();
    let user = users::user(&tx, name)?;
    let policy = rules::policy::change_user_in(&user, change, currencies)?;
    let change_id = if currency == CurrencyId::DEFAULT {
        record_change(&tx, user.id, policy, change, memo, now)?
    } else {
        record_limit_in(&tx, user.id, currency, change, memo, now)?
    };
    commit(
        tx,
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
/// the change's event; returns the change's id.
pub(super) fn record_change(
    tx: &Transaction<'_>,
    account: i64,
    policy: Policy,
    change: PolicyChange,
    memo: Option<&str>,
    at: i64,
) -> SqlResult<i64> {
    tx.prepare_cached(
        "UPDATE accounts SET overdraft = ?2, frozen = ?3, closed = ?4 WHERE id = ?1",
    )?
    .execute(params![
        account,
        policy.overdraft,
        policy.frozen,
        policy.closed
    ])?;
    tx.prepare_cached(
        "INSERT INTO policy_changes (account, kind, overdraft, memo, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![account, change.kind(), change.overdraft(), memo, at])?;
    let change_id = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO events (kind, change_id, at) VALUES (?1, ?2, ?3)")?
        .execute(params![EventKind::PolicyChanged.code(), change_id, at])?;
    Ok(change_id)
}

/// Writes an overdraft limit in a currency other than the default to the
/// account's `balances` row (made at zero if missing), the change that set
/// it as of `at`, and the change's event; returns the change's id.
fn record_limit_in(
    tx: &Transaction<'_>,
    account: i64,
    currency: CurrencyId,
    change: PolicyChange,
    memo: Option<&str>,
    at: i64,
) -> SqlResult<i64> {
    let key = BalanceKey::new(account, currency);
    super::slots::ensure(tx, key, at)?;
    tx.prepare_cached("UPDATE balances SET overdraft = ?3 WHERE account = ?1 AND currency = ?2")?
        .execute(params![account, currency, change.overdraft()])?;
    tx.prepare_cached(
        "INSERT INTO policy_changes (account, kind, overdraft, memo, at, currency)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        account,
        change.kind(),
        change.overdraft(),
        memo,
        at,
        currency
    ])?;
    let change_id = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO events (kind, change_id, at) VALUES (?1, ?2, ?3)")?
        .execute(params![EventKind::PolicyChanged.code(), change_id, at])?;
    Ok(change_id)
}

/// The policy of account `id` in force at `at` for its balance in
/// `currency`: its changes made by then, folded in the order they were
/// recorded; limits in other currencies play no part in it.
pub(super) fn policy_at(
    conn: &Connection,
    account: i64,
    at: i64,
    currency: CurrencyId,
) -> SqlResult<Policy> {
    // Freeze, unfreeze and close are recorded in the default currency and
    // cover every currency; an overdraft limit is its own currency's.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT kind, overdraft FROM policy_changes INDEXED BY policy_changes_by_account
         WHERE account = ?1 AND at <= ?2
           AND (currency = ?3 OR (currency = 0 AND kind <> '{overdraft}'))
         ORDER BY change_id",
        overdraft = PolicyChange::Overdraft(0).kind()
    ))?;
    let mut rows = stmt.query(params![account, at, currency])?;
    let mut changes = Vec::new();
    while let Some(row) = rows.next()? {
        let kind: String = row.get(0)?;
        changes.push(PolicyChange::stored(&kind, row.get(1)?)?);
    }
    Ok(rules::policy::policy_after(changes))
}

/// Every policy change made within `[since, until]`, by time.
pub(super) fn changes_between(
    conn: &Connection,
    since: i64,
    until: i64,
) -> SqlResult<Vec<PolicyChangeRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.change_id, a.name, c.kind, c.overdraft, c.memo, c.at, c.currency
         FROM policy_changes c JOIN accounts a ON a.id = c.account
         WHERE c.at >= ?1 AND c.at <= ?2 ORDER BY c.at, c.change_id",
    )?;
    let mut rows = stmt.query(params![since, until])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        let kind: String = row.get(2)?;
        let user: Option<String> = row.get(1)?;
        found.push(PolicyChangeRecord {
            change_id: row.get(0)?,
            user: user.ok_or_else(|| {
                WalletError::Integrity("a policy change names the external account".into())
            })?,
            change: PolicyChange::stored(&kind, row.get(3)?)?,
            memo: row.get(4)?,
            at: Instant::new(row.get(5)?),
            currency: CurrencyId(row.get(6)?),
        });
    }
    Ok(found)
}
