//! `verify` on PostgreSQL: the server's own check of the indexes (amcheck,
//! where installed), the schema, then the figures every engine hands to
//! [`crate::ledger::rules::verify`], all read from one snapshot.

use postgres::Client;

use super::error::{ErrorContext, PgFault, PgResult};
use super::schema;
use crate::ledger::model::{
    BalanceKey, Check, Findings, Problem, Status, VerifyOptions, VerifyReport, failed_to_run,
};
use crate::ledger::rules::replay::{HISTORY_CHECK, Placed, Placement, Recorded, Replay, Side};
use crate::ledger::rules::verify::{
    AccountFigures, Debit, DefaultCurrency, Drawn, FIGURE_CHECKS, HELD_MISMATCHES, HOLDS_CHECK,
    HoldFindings, LIMIT_CHANGE_SQL, Leg, LimitChange, OVER_CAPTURED, PAIRS_CHECK, StoredFields,
    TRANSFER_FIELDS, Tally, UNKNOWN_CURRENCY_TRANSFERS, default_currency_problem, figure_checks,
    holds_check, leg_rows, older_schema, over_refunded, pair_problems, transfer_field_problem,
    transfer_field_suspects, unknown_currency_problem, unlinked_partners, with_partners,
};
use crate::money::{Currencies, CurrencyId};

/// Runs every check in one repeatable-read, read-only transaction, so that
/// settle workers committing meanwhile cannot make balances and transfers
/// look out of step. Only a lock time-out or a lost server is an error; any
/// other failure fails the check that ran into it.
pub(super) fn verify(
    client: &mut Client,
    schema_name: &str,
    options: &VerifyOptions,
    currencies: &Currencies,
    errors: &ErrorContext,
) -> PgResult<VerifyReport> {
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    // Behind a savepoint: a schema without the table must not end the
    // snapshot the other checks read.
    client.batch_execute("SAVEPOINT a_version")?;
    let version: i32 =
        match client.query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[]) {
            Ok(row) => {
                client.batch_execute("RELEASE SAVEPOINT a_version")?;
                row.get(0)
            }
            Err(_) => {
                client.batch_execute("ROLLBACK TO SAVEPOINT a_version")?;
                0
            }
        };
    let mut checks = Vec::new();
    // A failed statement ends the transaction's use; each check runs
    // behind a savepoint so that the next can still read the snapshot.
    let guarded = |client: &mut Client,
                   name: &'static str,
                   check: &dyn Fn(&mut Client) -> PgResult<Check>|
     -> PgResult<Check> {
        client.batch_execute("SAVEPOINT a_check")?;
        match check(client) {
            Ok(check) => {
                client.batch_execute("RELEASE SAVEPOINT a_check")?;
                Ok(check)
            }
            Err(fault) if is_fatal(&fault) => Err(fault),
            Err(fault) => {
                client.batch_execute("ROLLBACK TO SAVEPOINT a_check")?;
                Ok(failed_to_run(name, &errors.lift(fault)))
            }
        }
    };
    let storage = guarded(client, "amcheck", &|c| amcheck(c, schema_name, options))?;
    let latest = schema::latest_version();
    if (1..latest).contains(&i64::from(version)) {
        client.batch_execute("ROLLBACK")?;
        return older_schema(storage, &errors.shown, i64::from(version), latest)
            .map_err(PgFault::Wallet);
    }
    checks.push(storage);
    checks.push(guarded(client, "schema", &|c| {
        schema_check(c, schema_name)
    })?);
    checks.push(guarded(client, "ledger_meta", &ledger_meta)?);
    checks.push(guarded(client, "foreign_keys", &foreign_keys)?);
    checks.push(guarded(client, TRANSFER_FIELDS.0, &transfer_fields)?);
    checks.push(guarded(client, HOLDS_CHECK, &|c| holds(c, currencies))?);
    checks.push(guarded(client, PAIRS_CHECK.0, &|c| pairs(c, currencies))?);
    client.batch_execute("SAVEPOINT a_check")?;
    match accounts_and_tally(client).and_then(|(a, t)| Ok((a, t, drawn(client)?))) {
        Ok((accounts, tally, drawn)) => {
            client.batch_execute("RELEASE SAVEPOINT a_check")?;
            let history = guarded(client, HISTORY_CHECK, &|c| {
                history(c, &accounts, currencies)
            })?;
            checks.extend(figure_checks(
                &accounts, &tally, &drawn, history, currencies,
            ));
        }
        Err(fault) if is_fatal(&fault) => return Err(fault),
        Err(fault) => {
            let err = errors.lift(fault);
            checks.extend(FIGURE_CHECKS.iter().map(|name| failed_to_run(name, &err)));
        }
    }
    client.batch_execute("ROLLBACK")?;
    Ok(VerifyReport { checks })
}

/// A fault that ends the whole run: a lock waited out, or the server gone.
fn is_fatal(fault: &PgFault) -> bool {
    match fault {
        PgFault::Pg(err) => fault.is_busy() || err.as_db_error().is_none(),
        PgFault::Wallet(_) => false,
    }
}

/// The server's own structural check of every B-tree index of the ledger,
/// by the amcheck extension (`bt_index_check`; with `--quick` left out).
/// Reported by name either way: a database without the extension says so.
fn amcheck(client: &mut Client, schema_name: &str, options: &VerifyOptions) -> PgResult<Check> {
    let installed = client
        .query_opt(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
              WHERE e.extname = 'amcheck'",
            &[],
        )?
        .map(|row| row.get::<_, String>(0));
    let findings = Findings::default();
    let Some(home) = installed else {
        return Ok(findings.into_check(
            "amcheck",
            "not run: the amcheck extension is not installed in this database (CREATE EXTENSION amcheck)".into(),
        ));
    };
    if options.quick {
        return Ok(findings.into_check("amcheck", "not run: --quick skips the index check".into()));
    }
    let indexes: Vec<String> = client
        .query(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              JOIN pg_am a ON a.oid = c.relam
             WHERE c.relnamespace = $1::text::regnamespace AND a.amname = 'btree' ORDER BY 1",
            &[&schema_name],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut findings = findings;
    for index in &indexes {
        let checked = client.batch_execute(&format!(
            "SAVEPOINT one_index; SELECT {home}.bt_index_check('{schema_name}.{index}'::regclass); RELEASE SAVEPOINT one_index"
        ));
        if let Err(err) = checked {
            client.batch_execute("ROLLBACK TO SAVEPOINT one_index")?;
            findings.push(Problem::about_file(format!(
                "index {index}: {}",
                err.as_db_error()
                    .map_or_else(|| err.to_string(), |db| db.message().to_string())
            )));
        }
    }
    let detail = if findings.is_empty() {
        format!("amcheck found all {} B-tree indexes sound", indexes.len())
    } else {
        "amcheck found damaged indexes".to_string()
    };
    Ok(findings.into_check("amcheck", detail))
}

fn schema_check(client: &mut Client, schema_name: &str) -> PgResult<Check> {
    let version: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_version", &[])?
        .get(0);
    let version = i64::from(version.unwrap_or(0));
    let latest = schema::latest_version();
    let mut findings = Findings::default();
    if !(1..=latest).contains(&version) {
        findings.push(Problem::about_file(format!(
            "schema version {version} is not one this binary knows (1 to {latest})"
        )));
    }
    let found = schema::catalog(client, schema_name)?;
    for difference in schema::differences(&found) {
        findings.push(Problem::about_file(difference));
    }
    let objects = schema::expected_len();
    let detail = if findings.is_empty() {
        format!(
            "schema version {version}; {objects} catalog entries expected, each exactly as the migrations build it"
        )
    } else {
        format!(
            "schema version {version}; {objects} catalog entries expected, and the schema's differ from what the migrations build"
        )
    };
    Ok(findings.into_check("schema", detail))
}

fn ledger_meta(client: &mut Client) -> PgResult<Check> {
    let rows: i64 = client
        .query_one("SELECT count(*) FROM ledger_meta WHERE id = 1", &[])?
        .get(0);
    let mut findings = Findings::default();
    if rows != 1 {
        findings.push(Problem::about_file(
            "the ledger_meta row (the ledger's currency and scale) is missing",
        ));
    }
    let pair = |row: postgres::Row| (row.get(0), i64::from(row.get::<_, i32>(1)));
    let found = DefaultCurrency {
        meta: client
            .query_opt("SELECT currency, scale FROM ledger_meta WHERE id = 1", &[])?
            .map(pair),
        listed: client
            .query_opt("SELECT code, scale FROM currencies WHERE id = 0", &[])?
            .map(pair),
    };
    if let Some(problem) = default_currency_problem(&found) {
        findings.push(problem);
    }
    Ok(findings.into_check(
        "ledger_meta",
        "the ledger records its currency and scale".into(),
    ))
}

/// The server enforces the references, unless someone turned its triggers
/// off; this looks for what that would let through.
fn foreign_keys(client: &mut Client) -> PgResult<Check> {
    let rows = client.query(
        "SELECT t.tx_id FROM transfers t
          WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.src)
             OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.dst)
          ORDER BY t.tx_id",
        &[],
    )?;
    let mut findings = Findings::default();
    for row in rows {
        let tx_id: i64 = row.get(0);
        findings.push(Problem {
            user: None,
            tx_id: Some(tx_id),
            message: format!("row {tx_id} of transfers refers to a missing row of accounts"),
        });
    }
    Ok(findings.into_check(
        "foreign_keys",
        "every transfer names accounts that exist".into(),
    ))
}

fn holds(client: &mut Client, currencies: &Currencies) -> PgResult<Check> {
    let mut found = HoldFindings::default();
    for row in client.query(HELD_MISMATCHES, &[])? {
        found
            .held
            .push((row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)));
    }
    for row in client.query(OVER_CAPTURED, &[])? {
        found
            .over_captured
            .push((row.get(0), row.get(1), row.get(2), row.get(3)));
    }
    for row in client.query(&over_refunded(), &[])? {
        found
            .over_refunded
            .push((row.get(0), row.get(1), row.get(2), row.get(3)));
    }
    Ok(holds_check(found, currencies))
}

/// Every exchange leg, and every transfer a leg names, for
/// [`pair_problems`], with the settle batch each was decided in: both
/// legs of a pair are decided in one.
fn pairs(client: &mut Client, currencies: &Currencies) -> PgResult<Check> {
    let leg = |row: &postgres::Row| Leg {
        tx_id: row.get(0),
        pair: row.get(1),
        src: row.get(2),
        dst: row.get(3),
        currency: row.get(4),
        status: row.get(5),
        reason: row.get(6),
        settled_at: row.get(7),
        settle_batch: row.get(8),
        keyed: row.get(9),
        hold_or_refund: row.get(10),
    };
    let legs: Vec<Leg> = client
        .query(&leg_rows("settle_batch", "pair_tx_id IS NOT NULL"), &[])?
        .iter()
        .map(leg)
        .collect();
    let missing = unlinked_partners(&legs);
    let partners: Vec<Leg> = if missing.is_empty() {
        Vec::new()
    } else {
        client
            .query(&leg_rows("settle_batch", "tx_id = ANY($1)"), &[&missing])?
            .iter()
            .map(leg)
            .collect()
    };
    let legs = with_partners(legs, partners);
    let mut findings = Findings::default();
    for problem in pair_problems(&legs, currencies) {
        findings.push(problem);
    }
    Ok(findings.into_check(PAIRS_CHECK.0, PAIRS_CHECK.1.into()))
}

fn transfer_fields(client: &mut Client) -> PgResult<Check> {
    let rows = client.query(&transfer_field_suspects(), &[])?;
    let mut findings = Findings::default();
    for row in rows {
        let status: String = row.get(1);
        let reason: Option<String> = row.get(2);
        let stored = StoredFields {
            tx_id: row.get(0),
            status: &status,
            reason: reason.as_deref(),
            settled: row.get(3),
            amount: row.get(4),
            src: row.get(5),
            dst: row.get(6),
        };
        if let Some(problem) = transfer_field_problem(stored) {
            findings.push(problem);
        }
    }
    for row in client.query(UNKNOWN_CURRENCY_TRANSFERS, &[])? {
        findings.push(unknown_currency_problem(row.get(0), row.get(1)));
    }
    Ok(findings.into_check(TRANSFER_FIELDS.0, TRANSFER_FIELDS.1.into()))
}

/// The COMPLETED transfers that left their user source below zero, and the
/// limit changes of those sources: a sound ledger without overdrafts hands
/// the check of limits no row.
fn drawn(client: &mut Client) -> PgResult<Drawn> {
    let debits: Vec<Debit> = client
        .query(
            &format!(
                "SELECT tx_id, src, src_balance, settled_at, currency FROM transfers
                  WHERE src_balance < 0 AND src <> 0 AND status = '{}'
                  ORDER BY tx_id",
                Status::Completed.as_str()
            ),
            &[],
        )?
        .iter()
        .map(|row| Debit {
            tx_id: row.get(0),
            key: BalanceKey::new(row.get(1), CurrencyId(row.get::<_, i16>(4))),
            balance_after: row.get(2),
            settled_at: row.get(3),
        })
        .collect();
    let mut drawn = Drawn {
        debits,
        limits: Vec::new(),
    };
    let accounts = drawn.accounts();
    if !accounts.is_empty() {
        drawn.limits = client
            .query(
                &format!(
                    "SELECT account, at, overdraft, currency FROM policy_changes
                      WHERE account = ANY($1) AND {LIMIT_CHANGE_SQL}
                      ORDER BY account, at, change_id"
                ),
                &[&accounts],
            )?
            .iter()
            .map(|row| LimitChange {
                key: BalanceKey::new(row.get(0), CurrencyId(row.get::<_, i16>(3))),
                at: row.get(1),
                overdraft: row.get(2),
            })
            .collect();
    }
    Ok(drawn)
}

/// Every account, and the transfers summed by the server per account and
/// status, as exact numerics: a few rows per account, however many transfers.
fn accounts_and_tally(client: &mut Client) -> PgResult<(Vec<AccountFigures>, Tally)> {
    let accounts = client
        .query(
            // The largest limit is looked up only below zero, where the
            // check of limits reads it.
            "SELECT a.id, a.name, a.balance, a.pending_in, a.pending_out,
                    CASE WHEN a.balance < 0
                         THEN greatest(a.overdraft, (SELECT max(p.overdraft) FROM policy_changes p
                                                      WHERE p.account = a.id AND p.currency = 0))
                         ELSE 0 END
               FROM accounts a ORDER BY a.id",
            &[],
        )?
        .iter()
        .map(|row| AccountFigures {
            id: row.get(0),
            // `accounts` holds each account's default currency.
            currency: CurrencyId::DEFAULT,
            name: row.get(1),
            balance: row.get(2),
            pending_in: row.get(3),
            pending_out: row.get(4),
            largest_limit: row.get(5),
        })
        .collect::<Vec<_>>();
    let mut accounts = accounts;
    // Every other currency's figures, from the rows made on first use.
    accounts.extend(
        client
            .query(
                &format!(
                    "SELECT b.account, b.currency, a.name, b.balance, b.pending_in, b.pending_out,
                            CASE WHEN b.balance < 0
                                 THEN greatest(b.overdraft,
                                               (SELECT max(p.overdraft) FROM policy_changes p
                                                 WHERE p.account = b.account
                                                   AND p.currency = b.currency
                                                   AND {LIMIT_CHANGE_SQL}))
                                 ELSE 0 END
                       FROM balances b LEFT JOIN accounts a ON a.id = b.account
                      ORDER BY b.account, b.currency"
                ),
                &[],
            )?
            .iter()
            .map(|row| AccountFigures {
                id: row.get(0),
                currency: CurrencyId(row.get::<_, i16>(1)),
                name: row.get(2),
                balance: row.get(3),
                pending_in: row.get(4),
                pending_out: row.get(5),
                largest_limit: row.get(6),
            }),
    );
    let mut tally = Tally::with_capacity(accounts.len());
    for row in client.query(
        "SELECT src, status, sum(amount)::text, count(*), currency FROM transfers
          GROUP BY src, currency, status",
        &[],
    )? {
        let status: String = row.get(1);
        let sum: i128 = row.get::<_, String>(2).parse().unwrap_or(i128::MAX);
        // Grouped by `transfers.currency` too once the column exists.
        tally.add_out(
            BalanceKey::new(row.get(0), CurrencyId(row.get::<_, i16>(4))),
            &status,
            sum,
            row.get::<_, i64>(3) as u64,
        );
    }
    for row in client.query(
        "SELECT dst, status, sum(amount)::text, currency FROM transfers
          GROUP BY dst, currency, status",
        &[],
    )? {
        let status: String = row.get(1);
        let sum: i128 = row.get::<_, String>(2).parse().unwrap_or(i128::MAX);
        tally.add_in(
            BalanceKey::new(row.get(0), CurrencyId(row.get::<_, i16>(3))),
            &status,
            sum,
        );
    }
    Ok((accounts, tally))
}

/// The users' histories replayed ([`Replay`]): every transfer in the order
/// each account saw its decisions, `(settle_batch, tx_id)` (what
/// `get-user --at` orders by after `settled_at`), streamed from the server
/// as it sorts them, with each side's recorded balance. A FAILED transfer
/// records the balance that lacked the funds, so it is replayed too.
fn history(
    client: &mut Client,
    accounts: &[AccountFigures],
    currencies: &Currencies,
) -> PgResult<Check> {
    use postgres::fallible_iterator::FallibleIterator;
    let mut replay = Replay::new(Recorded::WhenDecided, accounts, currencies);
    let mut rows = client.query_raw(
        "SELECT tx_id, src, dst, amount, status, settled_at, settle_batch, src_balance, dst_balance,
                currency
           FROM transfers ORDER BY settle_batch, tx_id",
        std::iter::empty::<i64>(),
    )?;
    while let Some(row) = rows.next()? {
        let status: &str = row.get(4);
        let settled_at: Option<i64> = row.get(5);
        let batch: Option<i64> = row.get(6);
        let placed = batch
            .zip(settled_at)
            .map(|(batch, at)| Placed { batch, at });
        let (tx_id, amount) = (row.get(0), row.get(3));
        let currency = CurrencyId(row.get::<_, i16>(9));
        for (account, incoming, stored) in [
            (row.get(1), false, row.get(7)),
            (row.get(2), true, row.get(8)),
        ] {
            replay.side(Side {
                account,
                currency,
                tx_id,
                status,
                amount,
                incoming,
                listed: true,
                stored,
                placed: Placement::Stored(placed),
                settled_at,
            });
        }
    }
    Ok(replay.finish())
}
