//! The hash chain on PostgreSQL: sealed after the fact by one process at a
//! time (an advisory lock; a process that finds it taken leaves the work to
//! the holder), so settle workers never wait on it.

use postgres::{Client, GenericClient, Row};

use super::NOW_MS;
use super::error::PgResult;
use super::guard::Guard;
use crate::ledger::chain::{
    self, ChainState, Hash, LinkHasher, LinkHeader, Ranges, SealFacts, Sealed, SealedAccount,
    SealedChange, SealedCurrency, StoredLink,
};
use crate::ledger::rules;
use crate::money::Currency;

const SEALED_FIELDS: &str = "SELECT tx_id, src, dst, amount, status, reason, memo, idem_key,
        created_at, settled_at, hold_amount, expires_at, refund_of, currency, pair_tx_id
        FROM transfers";

/// Rows read at a time while hashing a link.
const FETCH: i32 = 5_000;

fn sealed_from_row(row: &Row) -> Sealed<'_> {
    Sealed {
        tx_id: row.get(0),
        src: row.get(1),
        dst: row.get(2),
        amount: row.get(3),
        status: row.get(4),
        reason: row.get(5),
        memo: row.get(6),
        key: row.get(7),
        created_at: row.get(8),
        settled_at: row.get(9),
        hold_amount: row.get(10),
        expires_at: row.get(11),
        refund_of: row.get(12),
        currency: i64::from(row.get::<_, i16>(13)),
        pair_tx_id: row.get(14),
    }
}

fn link_from_row(r: &Row) -> StoredLink {
    StoredLink {
        header: LinkHeader {
            seq: r.get(0),
            first_tx: r.get(1),
            last_tx: r.get(2),
            excluded: chain::ids_from_text(&r.get::<_, String>(3)),
            late: chain::ids_from_text(&r.get::<_, String>(4)),
            accounts_to: r.get(7),
            changes_to: r.get(8),
            currencies_to: r.get(9),
        },
        count: r.get(5),
        hash: r.get(6),
    }
}

/// What the chain owes, folded from the lists of its links; `None` when they
/// do not fold (`verify` names the link), and nothing is sealed on top.
fn owed(client: &mut impl GenericClient) -> PgResult<Option<chain::Owed>> {
    let headers: Vec<LinkHeader> = client
        .query(chain::OWING_LINKS, &[])?
        .iter()
        .map(|r| LinkHeader {
            seq: r.get(0),
            first_tx: r.get(1),
            last_tx: r.get(2),
            excluded: chain::ids_from_text(&r.get::<_, String>(3)),
            late: chain::ids_from_text(&r.get::<_, String>(4)),
            accounts_to: None,
            changes_to: None,
            currencies_to: None,
        })
        .collect();
    Ok(chain::owed_after(&headers).ok())
}

/// The owed ids whose transfer is decided now, in order.
fn decided(client: &mut impl GenericClient, owed: &chain::Owed) -> PgResult<Vec<i64>> {
    if owed.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = owed.keys().copied().collect();
    Ok(client
        .query(
            &format!(
                "SELECT tx_id FROM transfers WHERE tx_id = ANY($1) AND status NOT IN ({})
                  ORDER BY tx_id",
                rules::changing_statuses_sql()
            ),
            &[&ids],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Feeds a link's transfers to `hasher` in the order it hashes them: the
/// late ones by id, then those of its range, the excluded ones by their
/// queue fields; then the accounts of its range, by id; then its policy
/// changes, by id; then its currencies, by id.
fn covered(
    tx: &mut postgres::Transaction<'_>,
    header: &LinkHeader,
    ranges: Ranges,
    hasher: &mut LinkHasher,
) -> PgResult<Vec<i64>> {
    let mut missing = Vec::new();
    for &id in &header.late {
        match tx.query_opt(&format!("{SEALED_FIELDS} WHERE tx_id = $1"), &[&id])? {
            Some(row) => hasher.add(&sealed_from_row(&row)),
            None => missing.push(id),
        }
    }
    let lower = header.first_tx.saturating_sub(1);
    let portal = tx.bind(
        &format!("{SEALED_FIELDS} WHERE tx_id > $1 AND tx_id <= $2 ORDER BY tx_id"),
        &[&lower, &header.last_tx],
    )?;
    let mut excluded = header.excluded.iter().peekable();
    loop {
        let rows = tx.query_portal(&portal, FETCH)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let t = sealed_from_row(row);
            while excluded.peek().is_some_and(|&&id| id < t.tx_id) {
                excluded.next();
            }
            if excluded.peek() == Some(&&t.tx_id) {
                hasher.add_queued(&t);
                continue;
            }
            hasher.add(&t);
        }
    }
    if let Some(accounts) = ranges.accounts {
        let (low, high) = accounts.bounds();
        for r in tx.query(
            "SELECT id, name, email, created_at FROM accounts WHERE id >= $1 AND id <= $2 ORDER BY id",
            &[&low, &high],
        )? {
            hasher.add_account(&SealedAccount {
                id: r.get(0),
                name: r.get(1),
                email: r.get(2),
                created_at: r.get(3),
            });
        }
    }
    if let Some(changes) = ranges.changes {
        let (low, high) = changes.bounds();
        for r in tx.query(
            "SELECT change_id, account, kind, overdraft, memo, at, currency FROM policy_changes
              WHERE change_id >= $1 AND change_id <= $2 ORDER BY change_id",
            &[&low, &high],
        )? {
            hasher.add_change(&SealedChange {
                change_id: r.get(0),
                account: r.get(1),
                kind: r.get(2),
                overdraft: r.get(3),
                memo: r.get(4),
                at: r.get(5),
                currency: i64::from(r.get::<_, i16>(6)),
            });
        }
    }
    if let Some(currencies) = ranges.currencies {
        let (low, high) = currencies.bounds();
        for r in tx.query(
            "SELECT id, code, scale, created_at FROM currencies
              WHERE id >= $1::bigint AND id <= $2::bigint ORDER BY id",
            &[&low, &high],
        )? {
            hasher.add_currency(&SealedCurrency {
                id: i64::from(r.get::<_, i16>(0)),
                code: r.get(1),
                scale: i64::from(r.get::<_, i32>(2)),
                created_at: r.get(3),
            });
        }
    }
    Ok(missing)
}

/// The ids a seal may cover: (smallest transfer, largest transfer, largest
/// account, largest policy change, largest currency), each read under a
/// lock that waits for every transaction that drew such ids or changed such
/// rows: any id drawn later is larger than these, so no row can appear
/// below them after the seal.
type Bounds = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn bounds(client: &mut Client) -> PgResult<Bounds> {
    let mut tx = client.transaction()?;
    tx.batch_execute("LOCK TABLE transfers IN SHARE MODE")?;
    let row = tx.query_one("SELECT min(tx_id), max(tx_id) FROM transfers", &[])?;
    let (min_tx, max_tx) = (row.get(0), row.get(1));
    tx.commit()?;
    // A transaction of its own, so that the sealer never holds one table's
    // lock while it waits for the other's: writers take them in either order.
    let mut tx = client.transaction()?;
    tx.batch_execute("LOCK TABLE accounts IN SHARE MODE")?;
    let max_account = tx.query_one("SELECT max(id) FROM accounts", &[])?.get(0);
    tx.commit()?;
    // Its own transaction too, for the same reason: a policy change is
    // written with its account's new state. The lock waits for a change
    // still uncommitted, whose id may lie below a committed one's.
    let mut tx = client.transaction()?;
    tx.batch_execute("LOCK TABLE policy_changes IN SHARE MODE")?;
    let max_change = tx
        .query_one("SELECT max(change_id) FROM policy_changes", &[])?
        .get(0);
    tx.commit()?;
    // Its own transaction too: `currency add` draws the next id from the
    // largest committed one, and the lock waits for one still uncommitted.
    let mut tx = client.transaction()?;
    tx.batch_execute("LOCK TABLE currencies IN SHARE MODE")?;
    let max_currency: Option<i16> = tx.query_one("SELECT max(id) FROM currencies", &[])?.get(0);
    tx.commit()?;
    Ok((
        min_tx,
        max_tx,
        max_account,
        max_change,
        max_currency.map(i64::from),
    ))
}

/// Seals what can be sealed unless another process is sealing, in one
/// transaction that holds the chain's advisory lock.
pub(super) fn seal(client: &mut Client, guard: &mut Guard, currency: &Currency) -> PgResult<u64> {
    let facts = client.query_one(chain::SEAL_FACTS, &[])?;
    let decided_owed = match owed(client)? {
        Some(owed) => !decided(client, &owed)?.is_empty(),
        None => return Ok(0),
    };
    let facts = SealFacts {
        last_tx: facts.get(0),
        accounts_to: facts.get(1),
        changes_to: facts.get(2),
        currencies_to: facts.get(3),
        max_tx: facts.get(4),
        max_account: facts.get(5),
        max_change: facts.get(6),
        max_currency: facts.get(7),
    };
    if !chain::anything_to_seal(&facts, decided_owed) {
        return Ok(0);
    }
    let bounds = bounds(client)?;
    let mut tx = client.transaction()?;
    guard.enter(
        &mut tx,
        &["chain_links"],
        &["transfers", "accounts", "policy_changes", "currencies"],
    )?;
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.chain'))",
            &[],
        )?
        .get(0);
    if !locked {
        tx.rollback()?;
        return Ok(0);
    }
    let Some(mut owed) = owed(&mut tx)? else {
        tx.rollback()?;
        return Ok(0);
    };
    let mut added = 0u64;
    while seal_one(&mut tx, currency, bounds, &mut owed)? {
        added += 1;
    }
    tx.batch_execute(&guard.commit_check_sql())?;
    tx.commit()?;
    Ok(added)
}

fn seal_one(
    tx: &mut postgres::Transaction<'_>,
    currency: &Currency,
    (min_tx, max_tx, max_account, max_change, max_currency): Bounds,
    owed: &mut chain::Owed,
) -> PgResult<bool> {
    let head = tx.query_opt(
        "SELECT seq, last_tx, hash, accounts_to, changes_to, currencies_to
           FROM chain_links ORDER BY seq DESC LIMIT 1",
        &[],
    )?;
    type Head = (i64, i64, Hash, Option<i64>, Option<i64>, Option<i64>);
    let (seq, last, prev, accounts_after, changes_after, currencies_after): Head = match head {
        Some(row) => (
            row.get(0),
            row.get(1),
            chain::from_hex(&row.get::<_, String>(2)).unwrap_or([0; 32]),
            row.get(3),
            row.get(4),
            row.get(5),
        ),
        None => (0, i64::MIN, chain::genesis(currency), None, None, None),
    };
    let start = last;
    let end = match (min_tx, max_tx) {
        (Some(min_tx), Some(max_tx)) => chain::link_end(last, min_tx, max_tx).max(start),
        _ => start,
    };
    let accounts = chain::next_range(accounts_after, max_account);
    let changes = chain::next_range(changes_after, max_change);
    let currencies = chain::next_range(currencies_after, max_currency);
    let ranges = Ranges {
        accounts: Some(accounts),
        changes: Some(changes),
        currencies: Some(currencies),
    };
    let late = decided(tx, owed)?;
    if !chain::link_due(start, end, &late, ranges) {
        return Ok(false);
    }
    let changing = rules::changing_statuses_sql();
    let excluded: Vec<i64> = tx
        .query(
            &format!(
                "SELECT tx_id FROM transfers WHERE status IN ({changing}) AND tx_id > $1 AND tx_id <= $2
                  ORDER BY tx_id"
            ),
            &[&start, &end],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let header = LinkHeader {
        seq: seq + 1,
        first_tx: start.saturating_add(1),
        last_tx: end,
        excluded,
        late,
        accounts_to: Some(accounts.to),
        changes_to: Some(changes.to),
        currencies_to: Some(currencies.to),
    };
    let mut hasher = LinkHasher::new(&prev, &header);
    covered(tx, &header, ranges, &mut hasher)?;
    let count = hasher.count;
    let hash = chain::hex(&hasher.finish());
    tx.execute(
        &format!(
            "INSERT INTO chain_links
                 (seq, first_tx, last_tx, excluded, late, count, hash, sealed_at, accounts_to,
                  changes_to, currencies_to)
             VALUES ($1, $2, $3, $4, $5, $6, $7, {NOW_MS}, $8, $9, $10)"
        ),
        &[
            &header.seq,
            &header.first_tx,
            &header.last_tx,
            &chain::ids_to_text(&header.excluded),
            &chain::ids_to_text(&header.late),
            &count,
            &hash,
            &header.accounts_to,
            &header.changes_to,
            &header.currencies_to,
        ],
    )?;
    // The sealer wrote this link's lists itself, so they fold.
    let _ = chain::owe(owed, &header);
    Ok(true)
}

/// Recomputes every link, in one read-only snapshot.
pub(super) fn state(client: &mut Client, currency: &Currency) -> PgResult<ChainState> {
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()?;
    let links: Vec<StoredLink> = tx
        .query(
            "SELECT seq, first_tx, last_tx, excluded, late, count, hash, accounts_to, changes_to,
                    currencies_to
               FROM chain_links ORDER BY seq",
            &[],
        )?
        .iter()
        .map(link_from_row)
        .collect();
    let mut state = chain::walk(&links, currency, |h, ranges, hasher| {
        covered(&mut tx, h, ranges, hasher)
    })?;
    let last = links.last().map_or(i64::MIN, |l| l.header.last_tx);
    let after: i64 = tx
        .query_one("SELECT count(*) FROM transfers WHERE tx_id > $1", &[&last])?
        .get(0);
    let owed: Vec<i64> = state.owed.keys().copied().collect();
    let found: Vec<i64> = tx
        .query(
            "SELECT tx_id FROM transfers WHERE tx_id = ANY($1)",
            &[&owed],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    state.owed_rows_found(&found);
    state.unsealed = after + owed.len() as i64;
    if let Some(first) = chain::first_covered(&links) {
        state.outside = tx
            .query(
                "SELECT tx_id FROM transfers WHERE tx_id < $1 ORDER BY tx_id LIMIT 10",
                &[&first],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
    }
    let (low, _) = chain::next_range(state.accounts_to, None).bounds();
    state.unsealed_accounts = tx
        .query_one("SELECT count(*) FROM accounts WHERE id >= $1", &[&low])?
        .get(0);
    let (low, _) = chain::next_range(state.changes_to, None).bounds();
    state.unsealed_changes = tx
        .query_one(
            "SELECT count(*) FROM policy_changes WHERE change_id >= $1",
            &[&low],
        )?
        .get(0);
    let (low, _) = chain::next_range(state.currencies_to, None).bounds();
    state.unsealed_currencies = tx
        .query_one(
            "SELECT count(*) FROM currencies WHERE id >= $1::bigint",
            &[&low],
        )?
        .get(0);
    tx.commit()?;
    Ok(state)
}
