//! `verify` on SQLite: the engine's own checks of the file (SQLite's page
//! check, the schema, foreign keys), then the figures every engine hands to
//! [`rules::verify`], all read from one snapshot.

use rusqlite::{Connection, OptionalExtension};

use super::error::{ErrorContext, Fault, SqlResult};
use super::queue_mark;
use super::schema;
use crate::ledger::model::{
    BalanceKey, Check, Findings, MAX_LISTED_PROBLEMS, Problem, Status, VerifyOptions, VerifyReport,
    failed_to_run,
};
use crate::ledger::rules::replay::{HISTORY_CHECK, LateSide, Placement, Recorded, Replay, Side};
use crate::ledger::rules::verify::{
    AccountFigures, Debit, DefaultCurrency, Drawn, FIGURE_CHECKS, HELD_MISMATCHES, HOLDS_CHECK,
    HoldFindings, LIMIT_CHANGE_SQL, Leg, LimitChange, OVER_CAPTURED, PAIRS_CHECK, StoredFields,
    TRANSFER_FIELDS, Tally, UNKNOWN_CURRENCY_TRANSFERS, default_currency_problem, figure_checks,
    holds_check, leg_rows, older_schema, over_refunded, pair_problems, transfer_field_problem,
    transfer_field_suspects, unknown_currency_problem, unlinked_partners, with_partners,
};
use crate::money::{Currencies, CurrencyId};

/// Runs every check inside one read transaction, so a settle committing
/// meanwhile cannot make balances and transfers look out of step. Only a
/// lock time-out is an error; anything else SQLite reports while checking
/// fails the check that ran into it.
pub(super) fn verify(
    conn: &mut Connection,
    options: &VerifyOptions,
    currencies: &Currencies,
    errors: &ErrorContext,
) -> SqlResult<VerifyReport> {
    let tx = conn.transaction()?;
    let conn: &Connection = &tx;
    let guard = |name: &'static str, outcome: SqlResult<Check>| -> SqlResult<Check> {
        match outcome {
            Ok(check) => Ok(check),
            Err(fault) if fault.is_busy() => Err(fault),
            Err(fault) => Ok(failed_to_run(name, &errors.lift(fault))),
        }
    };
    let file_pragma = if options.quick {
        "quick_check"
    } else {
        "integrity_check"
    };
    let version = schema::version_of(conn).unwrap_or(0);
    if (1..schema::latest_version()).contains(&version) {
        let storage = guard(file_pragma, file_check(conn, file_pragma))?;
        let older = older_schema(storage, &errors.ledger(), version, schema::latest_version());
        return older.map_err(Fault::from);
    }
    let mut checks = vec![
        guard(file_pragma, file_check(conn, file_pragma))?,
        guard("schema", schema_check(conn))?,
        guard("ledger_meta", ledger_meta(conn))?,
        guard("foreign_keys", foreign_keys(conn))?,
        guard("postings", postings(conn))?,
        guard(TRANSFER_FIELDS.0, transfer_fields(conn))?,
        guard(HOLDS_CHECK, holds(conn, currencies))?,
        guard(PAIRS_CHECK.0, pairs(conn, currencies))?,
    ];
    match accounts_and_tally(conn).and_then(|(a, t)| Ok((a, t, drawn(conn)?))) {
        Ok((accounts, tally, drawn)) => {
            let history = guard(HISTORY_CHECK, history(conn, &accounts, currencies))?;
            checks.extend(figure_checks(
                &accounts, &tally, &drawn, history, currencies,
            ));
        }
        Err(fault) if fault.is_busy() => return Err(fault),
        Err(fault) => {
            let err = errors.lift(fault);
            checks.extend(FIGURE_CHECKS.iter().map(|name| failed_to_run(name, &err)));
        }
    }
    drop(tx);
    Ok(VerifyReport { checks })
}

/// SQLite's own check of the file: `integrity_check` walks every page and
/// confirms each index matches its table; `quick_check` skips the index
/// comparison and runs in about a third of the time.
fn file_check(conn: &Connection, pragma: &'static str) -> SqlResult<Check> {
    let mut stmt = conn.prepare(&format!("PRAGMA {pragma}({MAX_LISTED_PROBLEMS})"))?;
    let lines: Vec<String> = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut findings = Findings::default();
    if lines != ["ok"] {
        for line in lines {
            findings.push(Problem::about_file(line));
        }
    }
    let detail = if findings.is_empty() {
        format!("SQLite's {pragma} found the file sound")
    } else {
        format!("SQLite's {pragma} found the file damaged")
    };
    Ok(findings.into_check(pragma, detail))
}

fn schema_check(conn: &Connection) -> SqlResult<Check> {
    let version = schema::version_of(conn)?;
    let latest = schema::latest_version();
    let mut findings = Findings::default();
    if !(1..=latest).contains(&version) {
        findings.push(Problem::about_file(format!(
            "schema version {version} is not one this binary knows (1 to {latest})"
        )));
    }
    for difference in schema::differences(conn, version)? {
        findings.push(Problem::about_file(difference));
    }
    let objects = schema::expected_definitions_at(version)?.len();
    let upgrade = if version < latest {
        format!(" (the next write upgrades it to version {latest})")
    } else {
        String::new()
    };
    let detail = if findings.is_empty() {
        format!(
            "schema version {version}{upgrade}; {objects} objects expected, each exactly as the migrations build it"
        )
    } else {
        format!(
            "schema version {version}{upgrade}; {objects} objects expected, and the file's differ from what the migrations build"
        )
    };
    Ok(findings.into_check("schema", detail))
}

/// The one row that says what the ledger counts in.
fn ledger_meta(conn: &Connection) -> SqlResult<Check> {
    let rows: i64 = conn.query_row("SELECT count(*) FROM ledger_meta WHERE id = 1", [], |row| {
        row.get(0)
    })?;
    let mut findings = Findings::default();
    if rows != 1 {
        findings.push(Problem::about_file(
            "the ledger_meta row (the ledger's currency and scale) is missing",
        ));
    }
    let pair = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?));
    let found = DefaultCurrency {
        meta: conn
            .query_row(
                "SELECT currency, scale FROM ledger_meta WHERE id = 1",
                [],
                pair,
            )
            .optional()?,
        listed: conn
            .query_row("SELECT code, scale FROM currencies WHERE id = 0", [], pair)
            .optional()?,
    };
    if let Some(problem) = default_currency_problem(&found) {
        findings.push(problem);
    }
    Ok(findings.into_check(
        "ledger_meta",
        "the ledger records its currency and scale".into(),
    ))
}

fn foreign_keys(conn: &Connection) -> SqlResult<Check> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut findings = Findings::default();
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

/// Every decided transfer is in its users' histories (`postings`), and
/// nothing else is: no entry names a PENDING or missing transfer or an
/// account the transfer does not name, and there are as many entries as
/// decided transfers have user sides. The key rules out a doubled entry,
/// so together these say the histories are exact; the transfers an entry
/// is missing for are looked up only when the counts disagree.
fn postings(conn: &Connection) -> SqlResult<Check> {
    // Holds are posted when placed.
    let expected: i64 = conn.query_row(
        "SELECT coalesce(sum((src <> 0) + (dst <> 0)), 0) FROM transfers
          WHERE status <> 'PENDING' OR hold_amount IS NOT NULL",
        [],
        |row| row.get(0),
    )?;
    let found: i64 = conn.query_row("SELECT count(*) FROM postings", [], |row| row.get(0))?;
    let mut findings = Findings::default();
    let mut strays = 0i64;
    {
        let mut stmt = conn.prepare(
            "SELECT p.account, p.tx_id FROM postings p
               LEFT JOIN transfers t ON t.tx_id = p.tx_id
              WHERE t.tx_id IS NULL OR (t.status = 'PENDING' AND t.hold_amount IS NULL)
                 OR (p.account <> t.src AND p.account <> t.dst)
              ORDER BY p.tx_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (account, tx_id): (i64, i64) = (row.get(0)?, row.get(1)?);
            strays += 1;
            findings.push(Problem {
                user: None,
                tx_id: Some(tx_id),
                message: format!(
                    "account {account} lists transfer {tx_id} in its history, which is not a decided transfer of that account"
                ),
            });
        }
    }
    if found - strays != expected {
        let mut stmt = conn.prepare(
            "SELECT tx_id FROM transfers t WHERE (status <> 'PENDING' OR hold_amount IS NOT NULL)
                AND ((src <> 0 AND NOT EXISTS (SELECT 1 FROM postings p WHERE p.account = t.src AND p.tx_id = t.tx_id))
                  OR (dst <> 0 AND NOT EXISTS (SELECT 1 FROM postings p WHERE p.account = t.dst AND p.tx_id = t.tx_id)))
              ORDER BY tx_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let tx_id: i64 = row.get(0)?;
            findings.push(Problem {
                user: None,
                tx_id: Some(tx_id),
                message: format!("transfer {tx_id} is missing from a user's history"),
            });
        }
    }
    Ok(findings.into_check(
        "postings",
        format!("every decided transfer is in its users' histories ({found} entries), and nothing else is"),
    ))
}

/// Each transfer's fields judged by [`transfer_field_problem`]. The query
/// is a cheap superset of the rule, so that a sound ledger of a million
/// transfers hands it no row at all.
fn holds(conn: &Connection, currencies: &Currencies) -> SqlResult<Check> {
    let mut found = HoldFindings::default();
    let mut stmt = conn.prepare(HELD_MISMATCHES)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        found.held.push((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
        ));
    }
    let over_refunded = over_refunded();
    for (sql, into) in [
        (OVER_CAPTURED, &mut found.over_captured),
        (over_refunded.as_str(), &mut found.over_refunded),
    ] {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            into.push((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?));
        }
    }
    Ok(holds_check(found, currencies))
}

/// Every exchange leg, and every transfer a leg names, for
/// [`pair_problems`]; a ledger file keeps no settle batch per transfer,
/// so its legs are matched by `settled_at`.
fn pairs(conn: &Connection, currencies: &Currencies) -> SqlResult<Check> {
    let leg = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Leg> {
        Ok(Leg {
            tx_id: row.get(0)?,
            pair: row.get(1)?,
            src: row.get(2)?,
            dst: row.get(3)?,
            currency: row.get(4)?,
            status: row.get(5)?,
            reason: row.get(6)?,
            settled_at: row.get(7)?,
            settle_batch: row.get(8)?,
            keyed: row.get(9)?,
            hold_or_refund: row.get(10)?,
        })
    };
    let legs: Vec<Leg> = conn
        .prepare(&leg_rows("NULL", "pair_tx_id IS NOT NULL"))?
        .query_map([], leg)?
        .collect::<rusqlite::Result<_>>()?;
    let mut partners = Vec::new();
    let mut by_id = conn.prepare(&leg_rows("NULL", "tx_id = ?1"))?;
    for tx_id in unlinked_partners(&legs) {
        partners.extend(by_id.query_row([tx_id], leg).optional()?);
    }
    let legs = with_partners(legs, partners);
    let mut findings = Findings::default();
    for problem in pair_problems(&legs, currencies) {
        findings.push(problem);
    }
    Ok(findings.into_check(PAIRS_CHECK.0, PAIRS_CHECK.1.into()))
}

fn transfer_fields(conn: &Connection) -> SqlResult<Check> {
    let mut stmt = conn.prepare(&transfer_field_suspects())?;
    let mut rows = stmt.query([])?;
    let mut findings = Findings::default();
    while let Some(row) = rows.next()? {
        let status: String = row.get(1)?;
        let reason: Option<String> = row.get(2)?;
        let stored = StoredFields {
            tx_id: row.get(0)?,
            status: &status,
            reason: reason.as_deref(),
            settled: row.get(3)?,
            amount: row.get(4)?,
            src: row.get(5)?,
            dst: row.get(6)?,
        };
        if let Some(problem) = transfer_field_problem(stored) {
            findings.push(problem);
        }
    }
    let mut stmt = conn.prepare(UNKNOWN_CURRENCY_TRANSFERS)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        findings.push(unknown_currency_problem(row.get(0)?, row.get(1)?));
    }
    queue_problems(conn, &mut findings)?;
    Ok(findings.into_check(TRANSFER_FIELDS.0, TRANSFER_FIELDS.1.into()))
}

/// Settle reads the queue from its mark on (`queue_mark::queue_sql`): a
/// PENDING transfer below the mark that is not a captured hold would never
/// be settled, its reservation held for good.
fn queue_problems(conn: &Connection, findings: &mut Findings) -> SqlResult<()> {
    // Without its table (which `schema` reports) there is no mark to hold
    // the queue to, and the check's other findings still stand.
    let table: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'queue_mark'",
        [],
        |row| row.get(0),
    )?;
    if table == 0 {
        return Ok(());
    }
    let Some(mark) = queue_mark::find(conn)? else {
        findings.push(Problem::about_file(
            "the queue_mark row (where settle starts reading the queue) is missing",
        ));
        return Ok(());
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT tx_id FROM transfers WHERE tx_id < ?1 AND {} ORDER BY tx_id",
        queue_mark::FROM_MARK
    ))?;
    let mut rows = stmt.query([mark])?;
    while let Some(row) = rows.next()? {
        let tx_id: i64 = row.get(0)?;
        findings.push(Problem {
            user: None,
            tx_id: Some(tx_id),
            message: format!(
                "transfer {tx_id} is PENDING below where settle starts reading the queue (transfer {mark}), so no settle would reach it"
            ),
        });
    }
    Ok(())
}

/// Reads every account and tallies the transfers in one sequential pass.
/// One streamed scan: `GROUP BY src, status` and `GROUP BY dst, status`
/// each sort the whole table, and on a million transfers the two took
/// about 4 s where this pass takes well under one.
fn accounts_and_tally(conn: &Connection) -> SqlResult<(Vec<AccountFigures>, Tally)> {
    let accounts = {
        // The largest limit is looked up only below zero, where the
        // check of limits reads it.
        let mut stmt = conn.prepare(
            "SELECT id, name, balance, pending_in, pending_out,
                    CASE WHEN balance < 0
                         THEN max(overdraft, coalesce((SELECT max(p.overdraft) FROM policy_changes p
                                                        WHERE p.account = accounts.id
                                                          AND p.currency = 0), 0))
                         ELSE 0 END
             FROM accounts ORDER BY id",
        )?;
        stmt.query_map([], |row| {
            Ok(AccountFigures {
                id: row.get(0)?,
                // `accounts` holds each account's default currency.
                currency: CurrencyId::DEFAULT,
                name: row.get(1)?,
                balance: row.get(2)?,
                pending_in: row.get(3)?,
                pending_out: row.get(4)?,
                largest_limit: row.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?
    };
    let mut accounts = accounts;
    {
        // Every other currency's figures, from the rows made on first use.
        let mut stmt = conn.prepare(&format!(
            "SELECT b.account, b.currency, a.name, b.balance, b.pending_in, b.pending_out,
                    CASE WHEN b.balance < 0
                         THEN max(b.overdraft, coalesce((SELECT max(p.overdraft) FROM policy_changes p
                                                          WHERE p.account = b.account
                                                            AND p.currency = b.currency
                                                            AND {LIMIT_CHANGE_SQL}), 0))
                         ELSE 0 END
             FROM balances b LEFT JOIN accounts a ON a.id = b.account
             ORDER BY b.account, b.currency"
        ))?;
        let others = stmt.query_map([], |row| {
            Ok(AccountFigures {
                id: row.get(0)?,
                currency: CurrencyId(row.get(1)?),
                name: row.get(2)?,
                balance: row.get(3)?,
                pending_in: row.get(4)?,
                pending_out: row.get(5)?,
                largest_limit: row.get(6)?,
            })
        })?;
        for figures in others {
            accounts.push(figures?);
        }
    }
    let mut tally = Tally::with_capacity(accounts.len());
    let mut stmt = conn.prepare("SELECT src, dst, status, amount, currency FROM transfers")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let status = row
            .get_ref(2)?
            .as_str()
            .map_err(|e| Fault::Sql(rusqlite::Error::from(e)))?;
        let currency = CurrencyId(row.get(4)?);
        tally.add(
            BalanceKey::new(row.get(0)?, currency),
            BalanceKey::new(row.get(1)?, currency),
            status,
            row.get(3)?,
        );
    }
    Ok((accounts, tally))
}

/// The COMPLETED transfers that left their user source below zero, and the
/// limit changes of those sources: a sound ledger without overdrafts hands
/// the check of limits no row.
fn drawn(conn: &Connection) -> SqlResult<Drawn> {
    let mut drawn = Drawn::default();
    let mut stmt = conn.prepare(&format!(
        "SELECT t.tx_id, t.src, p.balance_after, t.settled_at, t.currency
         FROM postings p JOIN transfers t ON t.tx_id = p.tx_id
         WHERE p.balance_after < 0 AND p.account = t.src AND t.status = '{}'
         ORDER BY t.tx_id",
        Status::Completed.as_str()
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        drawn.debits.push(Debit {
            tx_id: row.get(0)?,
            key: BalanceKey::new(row.get(1)?, CurrencyId(row.get(4)?)),
            balance_after: row.get(2)?,
            settled_at: row.get(3)?,
        });
    }
    let mut limits = conn.prepare(&format!(
        "SELECT account, at, overdraft, currency FROM policy_changes
         WHERE account = ?1 AND {LIMIT_CHANGE_SQL} ORDER BY at, change_id"
    ))?;
    for account in drawn.accounts() {
        let mut rows = limits.query([account])?;
        while let Some(row) = rows.next()? {
            drawn.limits.push(LimitChange {
                key: BalanceKey::new(row.get(0)?, CurrencyId(row.get(3)?)),
                at: row.get(1)?,
                overdraft: row.get(2)?,
            });
        }
    }
    Ok(drawn)
}

/// The users' histories replayed ([`Replay`]): the postings listed as
/// applied late, then every transfer in `tx_id` order with its postings,
/// and the settle log in batch order beside them, each batch read when
/// the replay needs it to place the next transfer. One pass over the
/// transfers and one over the log, with two look-ups into the postings
/// for each transfer.
fn history(
    conn: &Connection,
    accounts: &[AccountFigures],
    currencies: &Currencies,
) -> SqlResult<Check> {
    let mut replay = Replay::new(Recorded::WhenApplied, accounts, currencies);
    {
        let mut stmt = conn.prepare(
            "SELECT l.account, l.tx_id, l.batch, s.settled_at,
                    (SELECT p.max_tx FROM settle_log p WHERE p.batch < l.batch
                      ORDER BY p.batch DESC LIMIT 1)
               FROM late_applied l LEFT JOIN settle_log s ON s.batch = l.batch",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            replay.late(LateSide {
                account: row.get(0)?,
                tx_id: row.get(1)?,
                batch: row.get(2)?,
                at: row.get(3)?,
                decided_before: row.get(4)?,
            });
        }
    }
    let mut log =
        conn.prepare("SELECT batch, settled_at, max_tx FROM settle_log ORDER BY batch")?;
    let mut batches = log.query([])?;
    let mut stmt = conn.prepare(
        "SELECT t.tx_id, t.src, t.dst, t.amount, t.status, t.settled_at,
                ps.account IS NOT NULL, ps.balance_after,
                pd.account IS NOT NULL, pd.balance_after, t.currency
           FROM transfers t
           LEFT JOIN postings ps ON ps.account = t.src AND ps.tx_id = t.tx_id
           LEFT JOIN postings pd ON pd.account = t.dst AND pd.tx_id = t.tx_id
          ORDER BY t.tx_id",
    )?;
    let mut rows = stmt.query([])?;
    // Reads the log's next batch; false once it has given every one.
    let mut next_batch = |replay: &mut Replay<'_>| -> SqlResult<bool> {
        match batches.next()? {
            Some(row) => replay.logged(row.get(0)?, row.get(1)?, row.get(2)?),
            None => {
                replay.log_ended();
                return Ok(false);
            }
        }
        Ok(true)
    };
    while let Some(row) = rows.next()? {
        let tx_id = row.get(0)?;
        while replay.wants_log(tx_id) {
            next_batch(&mut replay)?;
        }
        let status = row
            .get_ref(4)?
            .as_str()
            .map_err(|e| Fault::Sql(rusqlite::Error::from(e)))?;
        let (amount, settled_at) = (row.get(3)?, row.get(5)?);
        let currency = CurrencyId(row.get(10)?);
        for (account, incoming, listed, stored) in [
            (row.get(1)?, false, row.get(6)?, row.get(7)?),
            (row.get(2)?, true, row.get(8)?, row.get(9)?),
        ] {
            replay.side(Side {
                account,
                currency,
                tx_id,
                status,
                amount,
                incoming,
                listed,
                stored,
                placed: Placement::Logged,
                settled_at,
            });
        }
    }
    // The batches past the last transfer are checked for order too.
    while next_batch(&mut replay)? {}
    Ok(replay.finish())
}
