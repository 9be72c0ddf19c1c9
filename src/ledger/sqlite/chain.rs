//! The hash chain on a ledger file: sealing decided transfers into links,
//! and recomputing every link for `verify`.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::columns::{int, int_or_null, text, text_or_null};
use super::error::{SqlResult, commit};
use crate::ledger::chain::{
    self, ChainState, Hash, LinkHasher, LinkHeader, Ranges, SealFacts, Sealed, SealedAccount,
    SealedChange, SealedCurrency, StoredLink,
};
use crate::ledger::clock;
use crate::ledger::rules;
use crate::money::Currency;

const SEALED_FIELDS: &str = "SELECT tx_id, src, dst, amount, status, reason, memo, idem_key,
        created_at, settled_at, hold_amount, expires_at, refund_of, currency, pair_tx_id
        FROM transfers";

/// Reads a row as the link hashes it, its text borrowed from the row (the
/// seal reads every transfer it covers).
fn sealed_from_row<'r>(row: &'r rusqlite::Row<'_>) -> rusqlite::Result<Sealed<'r>> {
    Ok(Sealed {
        tx_id: int(row, 0)?,
        src: int(row, 1)?,
        dst: int(row, 2)?,
        amount: int(row, 3)?,
        status: text(row, 4)?,
        reason: text_or_null(row, 5)?,
        memo: text_or_null(row, 6)?,
        key: text_or_null(row, 7)?,
        created_at: int(row, 8)?,
        settled_at: int_or_null(row, 9)?,
        hold_amount: int_or_null(row, 10)?,
        expires_at: int_or_null(row, 11)?,
        refund_of: int_or_null(row, 12)?,
        currency: int(row, 13)?,
        pair_tx_id: int_or_null(row, 14)?,
    })
}

/// The last link: its number, `last_tx`, hash, `accounts_to`,
/// `changes_to` and `currencies_to`; the genesis before the first.
type Head = (i64, i64, Hash, Option<i64>, Option<i64>, Option<i64>);

fn head(conn: &Connection, currency: &Currency) -> SqlResult<Head> {
    let found: Option<Head> = conn
        .prepare_cached(
            "SELECT seq, last_tx, hash, accounts_to, changes_to, currencies_to
               FROM chain_links ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                chain::from_hex(&r.get::<_, String>(2)?).unwrap_or([0; 32]),
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()?;
    Ok(found.unwrap_or_else(|| (0, i64::MIN, chain::genesis(currency), None, None, None)))
}

fn link_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredLink> {
    Ok(StoredLink {
        header: LinkHeader {
            seq: r.get(0)?,
            first_tx: r.get(1)?,
            last_tx: r.get(2)?,
            excluded: chain::ids_from_text(&r.get::<_, String>(3)?),
            late: chain::ids_from_text(&r.get::<_, String>(4)?),
            accounts_to: r.get(7)?,
            changes_to: r.get(8)?,
            currencies_to: r.get(9)?,
        },
        count: r.get(5)?,
        hash: r.get(6)?,
    })
}

/// What the chain owes, folded from the lists of its links; `None` when they
/// do not fold (`verify` names the link), and nothing is sealed on top.
fn owed(conn: &Connection) -> SqlResult<Option<chain::Owed>> {
    let headers: Vec<LinkHeader> = conn
        .prepare_cached(chain::OWING_LINKS)?
        .query_map([], |r| {
            Ok(LinkHeader {
                seq: r.get(0)?,
                first_tx: r.get(1)?,
                last_tx: r.get(2)?,
                excluded: chain::ids_from_text(&r.get::<_, String>(3)?),
                late: chain::ids_from_text(&r.get::<_, String>(4)?),
                accounts_to: None,
                changes_to: None,
                currencies_to: None,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(chain::owed_after(&headers).ok())
}

/// The owed ids whose transfer is decided now, in order.
fn decided(conn: &Connection, owed: &chain::Owed) -> SqlResult<Vec<i64>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT 1 FROM transfers WHERE tx_id = ?1 AND status NOT IN ({})",
        rules::changing_statuses_sql()
    ))?;
    let mut out = Vec::new();
    for &id in owed.keys() {
        if stmt.exists([id])? {
            out.push(id);
        }
    }
    Ok(out)
}

/// Feeds a link's transfers to `hasher` in the order it hashes them: the
/// late ones by id, then those of its range, the excluded ones by their
/// queue fields; then the accounts of its range, by id; then its policy
/// changes, by id; then its currencies, by id.
fn covered(
    conn: &Connection,
    header: &LinkHeader,
    ranges: Ranges,
    hasher: &mut LinkHasher,
) -> SqlResult<Vec<i64>> {
    let mut missing = Vec::new();
    let mut one = conn.prepare_cached(&format!("{SEALED_FIELDS} WHERE tx_id = ?1"))?;
    for &id in &header.late {
        let found = one
            .query_row([id], |row| {
                hasher.add(&sealed_from_row(row)?);
                Ok(())
            })
            .optional()?;
        if found.is_none() {
            missing.push(id);
        }
    }
    let mut range = conn.prepare_cached(&format!(
        "{SEALED_FIELDS} WHERE tx_id > ?1 AND tx_id <= ?2 ORDER BY tx_id"
    ))?;
    let mut rows = range.query(params![header.first_tx.saturating_sub(1), header.last_tx])?;
    let mut excluded = header.excluded.iter().peekable();
    while let Some(row) = rows.next()? {
        let t = sealed_from_row(row)?;
        while excluded.peek().is_some_and(|&&id| id < t.tx_id) {
            excluded.next();
        }
        if excluded.peek() == Some(&&t.tx_id) {
            hasher.add_queued(&t);
            continue;
        }
        hasher.add(&t);
    }
    if let Some(accounts) = ranges.accounts {
        let (low, high) = accounts.bounds();
        let mut stmt = conn.prepare_cached(
            "SELECT id, name, email, created_at FROM accounts WHERE id >= ?1 AND id <= ?2 ORDER BY id",
        )?;
        let mut rows = stmt.query([low, high])?;
        while let Some(r) = rows.next()? {
            hasher.add_account(&SealedAccount {
                id: r.get(0)?,
                name: r.get(1)?,
                email: r.get(2)?,
                created_at: r.get(3)?,
            });
        }
    }
    if let Some(changes) = ranges.changes {
        let (low, high) = changes.bounds();
        let mut stmt = conn.prepare_cached(
            "SELECT change_id, account, kind, overdraft, memo, at, currency FROM policy_changes
              WHERE change_id >= ?1 AND change_id <= ?2 ORDER BY change_id",
        )?;
        let mut rows = stmt.query([low, high])?;
        while let Some(r) = rows.next()? {
            hasher.add_change(&SealedChange {
                change_id: r.get(0)?,
                account: r.get(1)?,
                kind: r.get(2)?,
                overdraft: r.get(3)?,
                memo: r.get(4)?,
                at: r.get(5)?,
                currency: r.get(6)?,
            });
        }
    }
    if let Some(currencies) = ranges.currencies {
        let (low, high) = currencies.bounds();
        let mut stmt = conn.prepare_cached(
            "SELECT id, code, scale, created_at FROM currencies
              WHERE id >= ?1 AND id <= ?2 ORDER BY id",
        )?;
        let mut rows = stmt.query([low, high])?;
        while let Some(r) = rows.next()? {
            hasher.add_currency(&SealedCurrency {
                id: r.get(0)?,
                code: r.get(1)?,
                scale: r.get(2)?,
                created_at: r.get(3)?,
            });
        }
    }
    Ok(missing)
}

/// Seals what can be sealed, a link of at most [`LINK_MAX`] transfers at a
/// time, in one write transaction; returns how many links it added.
pub(super) fn seal(conn: &mut Connection, currency: &Currency) -> SqlResult<u64> {
    let facts = conn.prepare_cached(chain::SEAL_FACTS)?.query_row([], |r| {
        Ok(SealFacts {
            last_tx: r.get(0)?,
            accounts_to: r.get(1)?,
            changes_to: r.get(2)?,
            currencies_to: r.get(3)?,
            max_tx: r.get(4)?,
            max_account: r.get(5)?,
            max_change: r.get(6)?,
            max_currency: r.get(7)?,
        })
    })?;
    let decided_owed = match owed(conn)? {
        Some(owed) => !decided(conn, &owed)?.is_empty(),
        None => return Ok(0),
    };
    if !chain::anything_to_seal(&facts, decided_owed) {
        return Ok(0);
    }
    let tx = super::guard::begin_write(conn)?;
    let Some(mut owed) = owed(&tx)? else {
        return Ok(0);
    };
    let mut added = 0u64;
    while seal_one(&tx, currency, &mut owed)? {
        added += 1;
    }
    if added > 0 {
        commit(
            tx,
            &format!("{added} links of the hash chain"),
            "`wallet verify` shows the chain's head",
        )?;
    }
    Ok(added)
}

fn seal_one(tx: &Transaction<'_>, currency: &Currency, owed: &mut chain::Owed) -> SqlResult<bool> {
    let (seq, last, prev, accounts_after, changes_after, currencies_after) = head(tx, currency)?;
    type Maxima = (
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let (min_tx, max_tx, max_account, max_change, max_currency): Maxima = tx
        .prepare_cached(
            "SELECT (SELECT min(tx_id) FROM transfers), (SELECT max(tx_id) FROM transfers),
                    (SELECT max(id) FROM accounts), (SELECT max(change_id) FROM policy_changes),
                    (SELECT max(id) FROM currencies)",
        )?
        .query_row([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
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
        .prepare_cached(&format!(
            "SELECT tx_id FROM transfers
             WHERE tx_id > ?1 AND tx_id <= ?2 AND status IN ({changing})
             ORDER BY tx_id"
        ))?
        .query_map(params![start, end], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
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
    tx.prepare_cached(
        "INSERT INTO chain_links
             (seq, first_tx, last_tx, excluded, late, count, hash, sealed_at, accounts_to,
              changes_to, currencies_to)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        header.seq,
        header.first_tx,
        header.last_tx,
        chain::ids_to_text(&header.excluded),
        chain::ids_to_text(&header.late),
        count,
        hash,
        clock::now_ms(),
        header.accounts_to,
        header.changes_to,
        header.currencies_to,
    ])?;
    // The sealer wrote this link's lists itself, so they fold.
    let _ = chain::owe(owed, &header);
    Ok(true)
}

/// Recomputes every link from the transfers, accounts, policy changes and
/// currencies it covers.
pub(super) fn state(conn: &Connection, currency: &Currency) -> SqlResult<ChainState> {
    let links: Vec<StoredLink> = conn
        .prepare(
            "SELECT seq, first_tx, last_tx, excluded, late, count, hash, accounts_to, changes_to,
                    currencies_to
             FROM chain_links ORDER BY seq",
        )?
        .query_map([], link_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut state = chain::walk(&links, currency, |h, ranges, hasher| {
        covered(conn, h, ranges, hasher)
    })?;
    let last = links.last().map_or(i64::MIN, |l| l.header.last_tx);
    let after: i64 = conn.query_row(
        "SELECT count(*) FROM transfers WHERE tx_id > ?1",
        [last],
        |r| r.get(0),
    )?;
    let mut exists = conn.prepare("SELECT 1 FROM transfers WHERE tx_id = ?1")?;
    let mut found = Vec::new();
    for &id in state.owed.keys() {
        if exists.exists([id])? {
            found.push(id);
        }
    }
    state.owed_rows_found(&found);
    state.unsealed = after + state.owed.len() as i64;
    if let Some(first) = chain::first_covered(&links) {
        state.outside = conn
            .prepare("SELECT tx_id FROM transfers WHERE tx_id < ?1 ORDER BY tx_id LIMIT 10")?
            .query_map([first], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
    }
    let (low, _) = chain::next_range(state.accounts_to, None).bounds();
    state.unsealed_accounts =
        conn.query_row("SELECT count(*) FROM accounts WHERE id >= ?1", [low], |r| {
            r.get(0)
        })?;
    let (low, _) = chain::next_range(state.changes_to, None).bounds();
    state.unsealed_changes = conn.query_row(
        "SELECT count(*) FROM policy_changes WHERE change_id >= ?1",
        [low],
        |r| r.get(0),
    )?;
    let (low, _) = chain::next_range(state.currencies_to, None).bounds();
    state.unsealed_currencies = conn.query_row(
        "SELECT count(*) FROM currencies WHERE id >= ?1",
        [low],
        |r| r.get(0),
    )?;
    Ok(state)
}
