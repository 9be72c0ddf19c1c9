//! Users: creating them and reading their maintained balances.

use postgres::{Client, Row};

use super::NOW_MS;
use super::commit;
use super::error::PgResult;
use crate::domain::{Email, UserName};
use crate::error::WalletError;
use crate::ledger::model::UserRecord;

const SELECT_USER: &str = "SELECT id, name, email, balance, pending_in, pending_out
     FROM accounts WHERE lower(name) = lower($1)";

/// Adds a user with a zero balance. Names are unique regardless of case:
/// the unique index on `lower(name)` decides between two processes adding
/// the same name at once.
pub fn create_user(client: &mut Client, name: &UserName, email: &Email) -> PgResult<UserRecord> {
    client.batch_execute("BEGIN")?;
    let inserted = client.query_opt(
        &format!(
            "INSERT INTO accounts (name, email, created_at) VALUES ($1, $2, {NOW_MS})
             ON CONFLICT ((lower(name))) DO NOTHING
             RETURNING id, name, email, balance, pending_in, pending_out"
        ),
        &[&name.as_str(), &email.as_str()],
    )?;
    let Some(row) = inserted else {
        let existing =
            find_user(client, name.as_str())?.map_or_else(|| name.to_string(), |user| user.name);
        return Err(WalletError::UserExists(existing).into());
    };
    let user = user_from_row(&row);
    commit(
        client,
        &format!("user '{}'", user.name),
        "`wallet get-user` shows whether it exists",
    )?;
    Ok(user)
}

/// Adds many users with zero balances in one transaction: all or none.
pub fn create_users(client: &mut Client, users: &[(UserName, Email)]) -> PgResult<()> {
    client.batch_execute("BEGIN")?;
    let names: Vec<&str> = users.iter().map(|(name, _)| name.as_str()).collect();
    let emails: Vec<&str> = users.iter().map(|(_, email)| email.as_str()).collect();
    let inserted = client.query(
        &format!(
            "INSERT INTO accounts (name, email, created_at)
             SELECT n, e, {NOW_MS} FROM unnest($1::text[], $2::text[]) AS u(n, e)
             ON CONFLICT ((lower(name))) DO NOTHING
             RETURNING lower(name)"
        ),
        &[&names, &emails],
    )?;
    if inserted.len() != users.len() {
        let added: Vec<String> = inserted.iter().map(|row| row.get(0)).collect();
        let taken = users
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| !added.contains(&name.to_ascii_lowercase()))
            .unwrap_or_default();
        return Err(WalletError::UserExists(taken.to_string()).into());
    }
    commit(
        client,
        &format!("{} new users", users.len()),
        "`wallet get-user` shows whether they exist",
    )
}

/// Looks a user up by name, regardless of case.
pub fn user(client: &mut Client, name: &UserName) -> PgResult<UserRecord> {
    Ok(find_user(client, name.as_str())?
        .ok_or_else(|| WalletError::UserNotFound(name.to_string()))?)
}

pub fn find_user(client: &mut Client, name: &str) -> PgResult<Option<UserRecord>> {
    let row = client.query_opt(SELECT_USER, &[&name])?;
    Ok(row.as_ref().map(user_from_row))
}

fn user_from_row(row: &Row) -> UserRecord {
    UserRecord {
        id: row.get(0),
        name: row.get(1),
        email: row.get(2),
        balance: row.get(3),
        pending_in: row.get(4),
        pending_out: row.get(5),
    }
}
