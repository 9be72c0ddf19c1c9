//! The hash chain on PostgreSQL: sealed after the fact by one process at a
//! time (an advisory lock; a process that finds it taken leaves the work to
//! the holder), so settle workers never wait on it.

use postgres::{Client, Row};

use super::NOW_MS;
use super::error::PgResult;
use crate::ledger::chain::{self, ChainState, Hash, LinkHasher, LinkHeader, Sealed, StoredLink};
use crate::ledger::rules;
use crate::money::Currency;

const SEALED_FIELDS: &str = "SELECT tx_id, src, dst, amount, status, reason, memo, idem_key,
        created_at, settled_at, hold_amount, expires_at, refund_of FROM transfers";

/// Rows read at a time while hashing a link.
const FETCH: i32 = 5_000;

fn sealed_from_row(row: &Row) -> Sealed {
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
    }
}

fn covered(
    tx: &mut postgres::Transaction<'_>,
    header: &LinkHeader,
    each: &mut dyn FnMut(Sealed),
    queued: &mut dyn FnMut(Sealed),
) -> PgResult<Vec<i64>> {
    let mut missing = Vec::new();
    for &id in &header.late {
        match tx.query_opt(&format!("{SEALED_FIELDS} WHERE tx_id = $1"), &[&id])? {
            Some(row) => each(sealed_from_row(&row)),
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
                queued(t);
                continue;
            }
            each(t);
        }
    }
    Ok(missing)
}

/// The ids a seal may cover: (smallest, largest), read
/// under a lock that waits for every transaction that drew transfer ids or
/// changed transfers: any id drawn later is larger than these, so no row can
/// appear below them after the seal.
type Bounds = (Option<i64>, Option<i64>);

fn bounds(client: &mut Client) -> PgResult<Bounds> {
    let mut tx = client.transaction()?;
    tx.batch_execute("LOCK TABLE transfers IN SHARE MODE")?;
    let row = tx.query_one("SELECT min(tx_id), max(tx_id) FROM transfers", &[])?;
    let bounds = (row.get(0), row.get(1));
    tx.commit()?;
    Ok(bounds)
}

/// Seals what can be sealed unless another process is sealing, in one
/// transaction that holds the chain's advisory lock.
pub(super) fn seal(client: &mut Client, currency: &Currency) -> PgResult<u64> {
    let waiting: bool = client.query_one(&chain::anything_to_seal(), &[])?.get(0);
    if !waiting {
        return Ok(0);
    }
    let bounds = bounds(client)?;
    let mut tx = client.transaction()?;
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
    let mut added = 0u64;
    while seal_one(&mut tx, currency, bounds)? {
        added += 1;
    }
    tx.commit()?;
    Ok(added)
}

fn seal_one(
    tx: &mut postgres::Transaction<'_>,
    currency: &Currency,
    (min_tx, max_tx): Bounds,
) -> PgResult<bool> {
    let head = tx.query_opt(
        "SELECT seq, last_tx, hash FROM chain_links ORDER BY seq DESC LIMIT 1",
        &[],
    )?;
    let (seq, last, prev): (i64, i64, Hash) = match head {
        Some(row) => (
            row.get(0),
            row.get(1),
            chain::from_hex(&row.get::<_, String>(2)).unwrap_or([0; 32]),
        ),
        None => (0, i64::MIN, chain::genesis(currency)),
    };
    let (Some(max_tx), Some(min_tx)) = (max_tx, min_tx) else {
        return Ok(false);
    };
    let start = last;
    let end = chain::link_end(last, min_tx, max_tx);
    let changing = rules::changing_statuses_sql();
    let late: Vec<i64> = tx
        .query(
            &format!(
                "SELECT o.tx_id FROM chain_open o JOIN transfers t ON t.tx_id = o.tx_id
                  WHERE t.status NOT IN ({changing}) ORDER BY o.tx_id"
            ),
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if end <= start && late.is_empty() {
        return Ok(false);
    }
    let end = end.max(start);
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
    tx.execute(
        &format!(
            "INSERT INTO chain_links (seq, first_tx, last_tx, excluded, late, count, hash, sealed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, {NOW_MS})"
        ),
        &[
            &header.seq,
            &header.first_tx,
            &header.last_tx,
            &chain::ids_to_text(&header.excluded),
            &chain::ids_to_text(&header.late),
            &count,
            &hash,
        ],
    )?;
    tx.execute(
        "DELETE FROM chain_open WHERE tx_id = ANY($1)",
        &[&header.late],
    )?;
    tx.execute(
        "INSERT INTO chain_open (tx_id) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING",
        &[&header.excluded],
    )?;
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
            "SELECT seq, first_tx, last_tx, excluded, late, count, hash FROM chain_links ORDER BY seq",
            &[],
        )?
        .iter()
        .map(|r| StoredLink {
            header: LinkHeader {
                seq: r.get(0),
                first_tx: r.get(1),
                last_tx: r.get(2),
                excluded: chain::ids_from_text(&r.get::<_, String>(3)),
                late: chain::ids_from_text(&r.get::<_, String>(4)),
            },
            count: r.get(5),
            hash: r.get(6),
        })
        .collect();
    let mut state = chain::walk(&links, currency, |h, each, queued| {
        covered(&mut tx, h, each, queued)
    })?;
    let last = links.last().map_or(i64::MIN, |l| l.header.last_tx);
    let after: i64 = tx
        .query_one("SELECT count(*) FROM transfers WHERE tx_id > $1", &[&last])?
        .get(0);
    let open: i64 = tx.query_one("SELECT count(*) FROM chain_open", &[])?.get(0);
    state.unsealed = after + open;
    tx.commit()?;
    Ok(state)
}
