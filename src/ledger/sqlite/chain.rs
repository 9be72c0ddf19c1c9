//! The hash chain on a ledger file: sealing decided transfers into links,
//! and recomputing every link for `verify`.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::error::{SqlResult, commit};
use crate::ledger::chain::{self, ChainState, Hash, LinkHasher, LinkHeader, Sealed, StoredLink};
use crate::ledger::clock;
use crate::ledger::rules;
use crate::money::Currency;

const SEALED_FIELDS: &str = "SELECT tx_id, src, dst, amount, status, reason, memo, idem_key,
        created_at, settled_at, hold_amount, expires_at, refund_of FROM transfers";

fn sealed_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Sealed> {
    Ok(Sealed {
        tx_id: row.get(0)?,
        src: row.get(1)?,
        dst: row.get(2)?,
        amount: row.get(3)?,
        status: row.get(4)?,
        reason: row.get(5)?,
        memo: row.get(6)?,
        key: row.get(7)?,
        created_at: row.get(8)?,
        settled_at: row.get(9)?,
        hold_amount: row.get(10)?,
        expires_at: row.get(11)?,
        refund_of: row.get(12)?,
    })
}

fn head(conn: &Connection, currency: &Currency) -> SqlResult<(i64, i64, Hash)> {
    let found: Option<(i64, i64, String)> = conn
        .prepare_cached("SELECT seq, last_tx, hash FROM chain_links ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(match found {
        Some((seq, last, hash)) => (seq, last, chain::from_hex(&hash).unwrap_or([0; 32])),
        None => (0, i64::MIN, chain::genesis(currency)),
    })
}

/// Feeds a link's transfers to `each` in the order it hashes them: the late
/// ones by id, then those of its range but the excluded ones.
fn covered(
    conn: &Connection,
    header: &LinkHeader,
    each: &mut dyn FnMut(Sealed),
    queued: &mut dyn FnMut(Sealed),
) -> SqlResult<Vec<i64>> {
    let mut missing = Vec::new();
    let mut one = conn.prepare_cached(&format!("{SEALED_FIELDS} WHERE tx_id = ?1"))?;
    for &id in &header.late {
        match one.query_row([id], sealed_from_row).optional()? {
            Some(t) => each(t),
            None => missing.push(id),
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
            queued(t);
            continue;
        }
        each(t);
    }
    Ok(missing)
}

/// Seals what can be sealed, a link of at most [`LINK_MAX`] transfers at a
/// time, in one write transaction; returns how many links it added.
pub(super) fn seal(conn: &mut Connection, currency: &Currency) -> SqlResult<u64> {
    let waiting: bool = conn
        .prepare_cached(&chain::anything_to_seal())?
        .query_row([], |r| r.get(0))?;
    if !waiting {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut added = 0u64;
    loop {
        if !seal_one(&tx, currency)? {
            break;
        }
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

fn seal_one(tx: &Transaction<'_>, currency: &Currency) -> SqlResult<bool> {
    let (seq, last, prev) = head(tx, currency)?;
    let (min_tx, max_tx): (Option<i64>, Option<i64>) = tx
        .prepare_cached("SELECT min(tx_id), max(tx_id) FROM transfers")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (Some(min_tx), Some(max_tx)) = (min_tx, max_tx) else {
        return Ok(false);
    };
    let start = last;
    let end = chain::link_end(last, min_tx, max_tx);
    let changing = rules::changing_statuses_sql();
    let late: Vec<i64> = tx
        .prepare_cached(&format!(
            "SELECT o.tx_id FROM chain_open o JOIN transfers t ON t.tx_id = o.tx_id
             WHERE t.status NOT IN ({changing}) ORDER BY o.tx_id"
        ))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if end <= start && late.is_empty() {
        return Ok(false);
    }
    let end = end.max(start);
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
    };
    let hasher = std::cell::RefCell::new(LinkHasher::new(&prev, &header));
    covered(
        tx,
        &header,
        &mut |t| hasher.borrow_mut().add(&t),
        &mut |t| hasher.borrow_mut().add_queued(&t),
    )?;
    let hasher = hasher.into_inner();
    let count = hasher.count;
    let hash = chain::hex(&hasher.finish());
    tx.prepare_cached(
        "INSERT INTO chain_links (seq, first_tx, last_tx, excluded, late, count, hash, sealed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        header.seq,
        header.first_tx,
        header.last_tx,
        chain::ids_to_text(&header.excluded),
        chain::ids_to_text(&header.late),
        count,
        hash,
        clock::now_ms()
    ])?;
    for id in &header.late {
        tx.prepare_cached("DELETE FROM chain_open WHERE tx_id = ?1")?
            .execute([id])?;
    }
    for id in &header.excluded {
        tx.prepare_cached("INSERT OR IGNORE INTO chain_open (tx_id) VALUES (?1)")?
            .execute([id])?;
    }
    Ok(true)
}

/// Recomputes every link from the transfers it covers.
pub(super) fn state(conn: &Connection, currency: &Currency) -> SqlResult<ChainState> {
    let links: Vec<StoredLink> = conn
        .prepare(
            "SELECT seq, first_tx, last_tx, excluded, late, count, hash FROM chain_links ORDER BY seq",
        )?
        .query_map([], |r| {
            Ok(StoredLink {
                header: LinkHeader {
                    seq: r.get(0)?,
                    first_tx: r.get(1)?,
                    last_tx: r.get(2)?,
                    excluded: chain::ids_from_text(&r.get::<_, String>(3)?),
                    late: chain::ids_from_text(&r.get::<_, String>(4)?),
                },
                count: r.get(5)?,
                hash: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut state = chain::walk(&links, currency, |h, each, queued| {
        covered(conn, h, each, queued)
    })?;
    let last = links.last().map_or(i64::MIN, |l| l.header.last_tx);
    let after: i64 = conn.query_row(
        "SELECT count(*) FROM transfers WHERE tx_id > ?1",
        [last],
        |r| r.get(0),
    )?;
    let open: i64 = conn.query_row("SELECT count(*) FROM chain_open", [], |r| r.get(0))?;
    state.unsealed = after + open;
    Ok(state)
}
