//! Verification: every invariant of a ledger, checked from one consistent snapshot with set-based SQL.
//!
//! Balances are maintained on every write; these checks recompute them from
//! the transfers that settled, so a transfer applied twice (or not at all, or
//! one that never should have moved money) shows up as a balance that
//! disagrees with the log.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, params};

use super::settle::{BALANCE_OVERFLOW, INSUFFICIENT_FUNDS};
use super::{EXTERNAL_ACCOUNT, Ledger, schema};
use crate::error::{Result, WalletError, echo};
use crate::money::Currency;

/// At most this many problems are listed per check; the count covers all.
pub const MAX_LISTED_PROBLEMS: usize = 100;

/// How thoroughly to check.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Use SQLite's `quick_check` instead of the slower `integrity_check`.
    pub quick: bool,
}

/// The outcome of every check, in the order they ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub checks: Vec<Check>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|check| check.ok)
    }
}

/// One named invariant and whether it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// One line: what was checked and what was found.
    pub detail: String,
    /// What broke and where, at most [`MAX_LISTED_PROBLEMS`] of them.
    pub problems: Vec<Problem>,
    /// How many problems were found in all, listed or not.
    pub problem_count: u64,
}

/// One broken invariant, naming the user or transfer it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The user concerned; `None` for the external account or the file as a whole.
    pub user: Option<String>,
    pub tx_id: Option<i64>,
    pub message: String,
}

impl Problem {
    fn about_file(message: impl Into<String>) -> Self {
        Self {
            user: None,
            tx_id: None,
            message: message.into(),
        }
    }
}

/// Collects the problems of one check, listing only the first few.
struct Findings {
    problems: Vec<Problem>,
    count: u64,
}

impl Findings {
    fn new() -> Self {
        Self {
            problems: Vec::new(),
            count: 0,
        }
    }

    fn push(&mut self, problem: Problem) {
        self.count += 1;
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(problem);
        }
    }

    fn into_check(self, name: &'static str, detail: String) -> Check {
        Check {
            name,
            ok: self.count == 0,
            detail,
            problems: self.problems,
            problem_count: self.count,
        }
    }
}

/// An account as stored, with the maintained figures the checks recompute.
struct Account {
    id: i64,
    name: Option<String>,
    balance: i64,
    pending_in: i64,
    pending_out: i64,
}

impl Account {
    fn label(&self) -> String {
        match &self.name {
            // A tampered file may hold any name; quote it safely.
            Some(name) => format!("user '{}'", echo(name)),
            None if self.id == EXTERNAL_ACCOUNT => "the external account".to_string(),
            None => format!("account {}", self.id),
        }
    }
}

/// Sums of one account's transfers by status, as exact 128-bit integers.
#[derive(Debug, Default, Clone, Copy)]
struct Flows {
    completed_in: i128,
    completed_out: i128,
    pending_in: i128,
    pending_out: i128,
}

/// Per-status transfer counts, for the report's details.
#[derive(Debug, Default)]
struct StatusCounts(BTreeMap<String, u64>);

impl StatusCounts {
    fn add(&mut self, status: &str) {
        match self.0.get_mut(status) {
            Some(count) => *count += 1,
            None => {
                self.0.insert(status.to_string(), 1);
            }
        }
    }
}

impl Ledger {
    /// Runs every check inside one read transaction, so a settle committing
    /// meanwhile cannot make balances and transfers look out of step.
    /// Only a lock time-out is an error; anything else SQLite reports while
    /// checking fails the check that ran into it.
    pub fn verify(&mut self, options: &VerifyOptions) -> Result<VerifyReport> {
        let currency = self.currency().clone();
        let tx = self.conn_mut().transaction()?;
        let conn: &Connection = &tx;
        let mut checks = vec![
            if options.quick {
                guard("quick_check", file_check(conn, "quick_check"))?
            } else {
                guard("integrity_check", file_check(conn, "integrity_check"))?
            },
            guard("schema", schema_check(conn))?,
            guard("foreign_keys", foreign_keys(conn))?,
            guard("transfer_fields", transfer_fields(conn))?,
        ];
        match accounts_and_flows(conn) {
            Ok((accounts, flows, counts)) => {
                checks.push(balances(&accounts, &flows, &counts, &currency));
                checks.push(pending_totals(&accounts, &flows, &currency));
                checks.push(zero_sum(&accounts, &currency));
                checks.push(no_negative_balances(&accounts, &currency));
            }
            Err(err @ WalletError::Busy(_)) => return Err(err),
            Err(err) => {
                for name in [
                    "balances",
                    "pending_totals",
                    "zero_sum",
                    "no_negative_balances",
                ] {
                    checks.push(failed_to_run(name, &err));
                }
            }
        }
        drop(tx);
        Ok(VerifyReport { checks })
    }
}

/// Turns an SQLite failure inside a check into that check failing, except
/// `busy`, which the caller should retry.
fn guard(name: &'static str, outcome: Result<Check>) -> Result<Check> {
    match outcome {
        Ok(check) => Ok(check),
        Err(err @ WalletError::Busy(_)) => Err(err),
        Err(err) => Ok(failed_to_run(name, &err)),
    }
}

fn failed_to_run(name: &'static str, err: &WalletError) -> Check {
    let mut findings = Findings::new();
    findings.push(Problem::about_file(format!(
        "the check could not run: {err}"
    )));
    findings.into_check(name, "the ledger could not be read for this check".into())
}

/// SQLite's own check of the file: `integrity_check` walks every page and
/// confirms each index matches its table; `quick_check` skips the index
/// comparison and runs in about a third of the time.
fn file_check(conn: &Connection, pragma: &'static str) -> Result<Check> {
    let mut stmt = conn.prepare(&format!("PRAGMA {pragma}({MAX_LISTED_PROBLEMS})"))?;
    let lines: Vec<String> = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut findings = Findings::new();
    if lines != ["ok"] {
        for line in lines {
            findings.push(Problem::about_file(line));
        }
    }
    let detail = if findings.count == 0 {
        format!("SQLite's {pragma} found the file sound")
    } else {
        format!("SQLite's {pragma} found the file damaged")
    };
    Ok(findings.into_check(pragma, detail))
}

fn schema_check(conn: &Connection) -> Result<Check> {
    let version = schema::version_of(conn)?;
    let latest = schema::latest_version();
    let mut findings = Findings::new();
    if !(1..=latest).contains(&version) {
        findings.push(Problem::about_file(format!(
            "schema version {version} is not one this binary knows (1 to {latest})"
        )));
    }
    for difference in schema::differences(conn)? {
        findings.push(Problem::about_file(difference));
    }
    let objects = schema::expected_definitions_at(version)?.len();
    let upgrade = if version < latest {
        format!(" (the next write upgrades it to version {latest})")
    } else {
        String::new()
    };
    let detail = format!(
        "schema version {version}{upgrade}; {objects} objects expected, each exactly as the migrations build it"
    );
    Ok(findings.into_check("schema", detail))
}

fn foreign_keys(conn: &Connection) -> Result<Check> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut findings = Findings::new();
    while let Some(row) = rows.next()? {
        let table: String = row.get(0)?;
        let rowid: Option<i64> = row.get(1)?;
        let parent: String = row.get(2)?;
        findings.push(Problem {
            user: None,
            tx_id: (table == "transfers").then_some(rowid).flatten(),
            message: format!(
                "row {} of {table} refers to a missing row of {parent}",
                rowid.map_or_else(|| "?".to_string(), |id| id.to_string())
            ),
        });
    }
    Ok(findings.into_check(
        "foreign_keys",
        "every transfer names accounts that exist".into(),
    ))
}

/// The fields of each transfer agree with its status: only a settled
/// transfer has `settled_at`, only a FAILED one a `reason`, and that reason
/// is one settlement gives.
fn transfer_fields(conn: &Connection) -> Result<Check> {
    let mut stmt = conn.prepare(
        "SELECT tx_id, status, reason, settled_at IS NOT NULL, amount > 0, src <> dst
         FROM transfers
         WHERE status NOT IN ('PENDING', 'COMPLETED', 'FAILED', 'CANCELLED')
            OR (status = 'PENDING') = (settled_at IS NOT NULL)
            OR (status = 'FAILED') <> (reason IS NOT NULL)
            OR (reason IS NOT NULL AND reason NOT IN (?1, ?2))
            OR amount <= 0
            OR src = dst
         ORDER BY tx_id",
    )?;
    let mut rows = stmt.query(params![INSUFFICIENT_FUNDS, BALANCE_OVERFLOW])?;
    let mut findings = Findings::new();
    while let Some(row) = rows.next()? {
        let tx_id: i64 = row.get(0)?;
        // Quoted safely: a tampered file may hold any text here.
        let status = echo(&row.get::<_, String>(1)?);
        let reason: Option<String> = row.get(2)?;
        let settled: bool = row.get(3)?;
        let positive: bool = row.get(4)?;
        let distinct: bool = row.get(5)?;
        let mut wrong = Vec::new();
        let known = ["PENDING", "COMPLETED", "FAILED", "CANCELLED"].contains(&status.as_str());
        if !known {
            wrong.push(format!("has the unknown status '{status}'"));
        } else if settled == (status == "PENDING") {
            wrong.push(if settled {
                "is PENDING but has settled_at set".to_string()
            } else {
                format!("is {status} but has no settled_at")
            });
        }
        match &reason {
            None if status == "FAILED" => wrong.push("is FAILED without a reason".into()),
            Some(reason) if status != "FAILED" => {
                wrong.push(format!("is {status} but has the reason '{}'", echo(reason)));
            }
            Some(reason) if reason != INSUFFICIENT_FUNDS && reason != BALANCE_OVERFLOW => {
                wrong.push(format!("has the unknown reason '{}'", echo(reason)));
            }
            _ => {}
        }
        if !positive {
            wrong.push("has an amount that is not positive".into());
        }
        if !distinct {
            wrong.push("has the same source and destination".into());
        }
        findings.push(Problem {
            user: None,
            tx_id: Some(tx_id),
            message: format!("transfer {tx_id} {}", wrong.join(", ")),
        });
    }
    Ok(findings.into_check(
        "transfer_fields",
        "settled_at is set exactly when a transfer left PENDING, reason exactly when it FAILED, amounts are positive, source and destination differ".into(),
    ))
}

/// Reads every account and, in one sequential pass over the transfers, the
/// sums each account sent and received per status, added up as exact
/// `i128` so no sum can overflow however much money has flowed. One
/// streamed scan: `GROUP BY src, status` and `GROUP BY dst, status` each
/// sort the whole table, and on a million transfers the two took about 4 s
/// where this pass takes well under one.
fn accounts_and_flows(
    conn: &Connection,
) -> Result<(Vec<Account>, HashMap<i64, Flows>, StatusCounts)> {
    let accounts = {
        let mut stmt = conn.prepare(
            "SELECT id, name, balance, pending_in, pending_out FROM accounts ORDER BY id",
        )?;
        stmt.query_map([], |row| {
            Ok(Account {
                id: row.get(0)?,
                name: row.get(1)?,
                balance: row.get(2)?,
                pending_in: row.get(3)?,
                pending_out: row.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?
    };
    let mut flows: HashMap<i64, Flows> = HashMap::with_capacity(accounts.len());
    let mut counts = StatusCounts::default();
    let mut stmt = conn.prepare("SELECT src, dst, status, amount FROM transfers")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let src: i64 = row.get(0)?;
        let dst: i64 = row.get(1)?;
        let status = row.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
        let amount = i128::from(row.get::<_, i64>(3)?);
        match status {
            "COMPLETED" => {
                flows.entry(src).or_default().completed_out += amount;
                flows.entry(dst).or_default().completed_in += amount;
            }
            "PENDING" => {
                flows.entry(src).or_default().pending_out += amount;
                flows.entry(dst).or_default().pending_in += amount;
            }
            _ => {
                flows.entry(src).or_default();
                flows.entry(dst).or_default();
            }
        }
        counts.add(status);
    }
    Ok((accounts, flows, counts))
}

/// Each balance equals what its COMPLETED transfers brought in minus what
/// they took out. This is the exactly-once check: a completed transfer
/// applied twice or not at all, or a pending, failed or cancelled one that
/// moved money, leaves some balance out of step with the log.
fn balances(
    accounts: &[Account],
    flows: &HashMap<i64, Flows>,
    counts: &StatusCounts,
    currency: &Currency,
) -> Check {
    let mut findings = Findings::new();
    let mut has_external = false;
    for account in accounts {
        has_external |= account.id == EXTERNAL_ACCOUNT && account.name.is_none();
        let flow = flows.get(&account.id).copied().unwrap_or_default();
        let expected = flow.completed_in - flow.completed_out;
        if i128::from(account.balance) != expected {
            findings.push(Problem {
                user: account.name.clone(),
                tx_id: None,
                message: format!(
                    "{} has balance {} but its COMPLETED transfers net {}",
                    account.label(),
                    currency.format(account.balance),
                    format_wide(expected, currency)
                ),
            });
        }
    }
    if !has_external {
        findings.push(Problem::about_file(
            "the external account (id 0) is missing",
        ));
    }
    for id in flows.keys() {
        if !accounts.iter().any(|account| account.id == *id) {
            findings.push(Problem::about_file(format!(
                "transfers name account {id}, which does not exist"
            )));
        }
    }
    let total: u64 = counts.0.values().sum();
    let by_status: Vec<String> = counts
        .0
        .iter()
        .map(|(status, count)| format!("{count} {status}"))
        .collect();
    let detail = format!(
        "{} accounts, each balance equal to its COMPLETED transfers in minus out; {total} transfers{}",
        accounts.len(),
        if by_status.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_status.join(", "))
        }
    );
    findings.into_check("balances", detail)
}

/// The maintained `pending_in` and `pending_out` equal the sums of the
/// account's PENDING transfers, so `available` tells the truth.
fn pending_totals(accounts: &[Account], flows: &HashMap<i64, Flows>, currency: &Currency) -> Check {
    let mut findings = Findings::new();
    for account in accounts {
        let flow = flows.get(&account.id).copied().unwrap_or_default();
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
                        currency.format(stored),
                        format_wide(expected, currency)
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

/// Money is only moved, never made: all balances, the external account's
/// included, sum to zero.
fn zero_sum(accounts: &[Account], currency: &Currency) -> Check {
    let total: i128 = accounts
        .iter()
        .map(|account| i128::from(account.balance))
        .sum();
    let mut findings = Findings::new();
    if total != 0 {
        findings.push(Problem::about_file(format!(
            "the balances sum to {}, not zero",
            format_wide(total, currency)
        )));
    }
    let users: i128 = accounts
        .iter()
        .filter(|account| account.id != EXTERNAL_ACCOUNT)
        .map(|account| i128::from(account.balance))
        .sum();
    findings.into_check(
        "zero_sum",
        format!(
            "all balances, the external account's included, sum to {}; users hold {}",
            format_wide(total, currency),
            format_wide(users, currency)
        ),
    )
}

fn no_negative_balances(accounts: &[Account], currency: &Currency) -> Check {
    let mut findings = Findings::new();
    for account in accounts.iter().filter(|a| a.id != EXTERNAL_ACCOUNT) {
        if account.balance < 0 {
            findings.push(Problem {
                user: account.name.clone(),
                tx_id: None,
                message: format!(
                    "{} has the negative balance {}",
                    account.label(),
                    currency.format(account.balance)
                ),
            });
        }
    }
    findings.into_check(
        "no_negative_balances",
        "no user balance is below zero".into(),
    )
}

/// Formats a recomputed sum, which may lie outside `i64` on a damaged ledger.
fn format_wide(minor: i128, currency: &Currency) -> String {
    match i64::try_from(minor) {
        Ok(minor) => currency.format(minor),
        Err(_) => format!("{minor} minor units"),
    }
}
