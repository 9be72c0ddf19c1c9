//! The change feed on PostgreSQL: the `events` rows each writing path adds
//! as part of the statement that makes the change, and the feed's read.
//!
//! Each row carries the id of the transaction that wrote it (`xid`, the
//! column's default). Several settle workers commit at once, each with
//! event ids drawn from one sequence when it wrote them, so `event_id`
//! order is not commit order: a worker may draw id 10 and commit after
//! another committed id 11. How the read copes is written at [`READ`].

use postgres::Client;

use super::error::PgResult;
use super::schema::EVENT_BLOCK;
use crate::ledger::events::{Cursor, EventKind, EventRow};

/// `changes`, a statement that returns the `tx_id` and `at` of each
/// transfer it changed, made to record an event of `kind` per row in the
/// same statement, in `tx_id` order: no round trip of its own. The
/// statement's count is the rows recorded.
pub(super) fn recorded(kind: EventKind, changes: &str) -> String {
    format!(
        "WITH changed AS ({changes})
         INSERT INTO events (kind, tx_id, at)
         SELECT {kind}, tx_id, at FROM changed ORDER BY tx_id",
        kind = kind.code()
    )
}

/// The statement that records a settle batch's decisions, `$1` their
/// `tx_ids` in order and `$2` when, as one `events` row per
/// [`EVENT_BLOCK`] of them: one draw from the sequence, which steps by a
/// block, gives a row its ids, the row's own `event_id` the largest (so the
/// read's index range over rows covers every id it holds) and the others
/// counting down from it ([`READ`] unfolds them). No call per decision.
pub(super) fn decisions_recorded() -> String {
    format!(
        "INSERT INTO events (event_id, kind, at, tx_ids)
         SELECT drawn + cardinality(ids) - 1, {kind}, $2, ids
           FROM (SELECT nextval('events_event_id_seq') AS drawn,
                        ($1::bigint[])[block * {EVENT_BLOCK} + 1 : (block + 1) * {EVENT_BLOCK}] AS ids
                   FROM generate_series(0, (cardinality($1::bigint[]) - 1) / {EVENT_BLOCK}) AS block
                  ORDER BY block) AS rows",
        kind = EventKind::TransferDecided.code()
    )
}

/// [`recorded`] for a statement whose rows the caller reads: `answer`
/// reads them from `changed`; the rows `only` keeps are recorded.
pub(super) fn recorded_returning(
    kind: EventKind,
    changes: &str,
    only: &str,
    answer: &str,
) -> String {
    format!(
        "WITH changed AS ({changes}),
              recorded AS (INSERT INTO events (kind, tx_id, at)
                           SELECT {kind}, tx_id, at FROM changed WHERE {only} ORDER BY tx_id)
         {answer}",
        kind = kind.code()
    )
}

/// The feed, in commit order.
///
/// A transaction's id (`xid`) is assigned when it first writes, and
/// `pg_snapshot_xmin` of a snapshot is the oldest id still running when
/// it was taken: every transaction below it has ended, committed or
/// rolled back, and one that has no id yet will get one at or above it.
/// So the rows with `xid` below it are final: none can still appear.
/// The read takes only those, in (`xid`, `event_id`) order, and the
/// cursor is the pair of the last one taken. A row that commits later
/// than that read has an `xid` at or above the xmin the read saw, which
/// is above the cursor's `xid` (taken below that xmin): it sorts after
/// the cursor, so the next read returns it, and a cursor never passes it.
/// Rows of one transaction commit together and are taken together, in
/// the order it wrote them. The price: a transaction that stays open
/// (anywhere on the server, since ids are server-wide) holds back events
/// committed after it began until it ends; none is lost.
///
/// A settle batch's row holds many decisions ([`decisions_recorded`]; rows
/// written before schema version 9 list their ids in `event_ids`); the
/// read unfolds it and orders and filters by each decision's own id. The
/// row's id is the largest it holds, so the index range that starts at the
/// cursor's pair reaches every row with an id after it.
///
/// One statement, so one snapshot, and it assigns no `xid` of its own.
const READ: &str = "
SELECT e.xid::text, ev.id, e.kind, e.at, coalesce(u.tx_id, e.tx_id), e.change_id,
       t.status, t.reason, src.name, dst.name, t.amount, t.hold_amount, t.memo,
       owner.name, p.kind, p.overdraft, p.memo,
       tc.code, tc.scale::bigint, t.pair_tx_id, pc.code, pc.scale::bigint
  FROM events e
  LEFT JOIN LATERAL unnest(e.event_ids, e.tx_ids) WITH ORDINALITY AS u(event_id, tx_id, n)
         ON true
 CROSS JOIN LATERAL (SELECT coalesce(u.event_id, e.event_id - cardinality(e.tx_ids) + u.n,
                                     e.event_id) AS id) AS ev
  LEFT JOIN transfers t ON t.tx_id = coalesce(u.tx_id, e.tx_id)
  LEFT JOIN accounts src ON src.id = t.src
  LEFT JOIN accounts dst ON dst.id = t.dst
  LEFT JOIN currencies tc ON tc.id = t.currency
  LEFT JOIN policy_changes p ON p.change_id = e.change_id
  LEFT JOIN accounts owner ON owner.id = p.account
  LEFT JOIN currencies pc ON pc.id = p.currency
 WHERE e.xid < pg_snapshot_xmin(pg_current_snapshot())
   AND (e.xid, e.event_id) > ($1::text::xid8, $2)
   AND (e.xid, ev.id) > ($1::text::xid8, $2)
 ORDER BY e.xid, ev.id
 LIMIT $3";

/// Up to `limit` events after `after`, with what each is about; see [`READ`].
pub(super) fn read(
    client: &mut Client,
    after: Option<&Cursor>,
    limit: u32,
) -> PgResult<Vec<EventRow>> {
    let (xid, event_id) = match after {
        None => (0, 0),
        Some(Cursor::Commit { xid, event_id }) => (*xid, *event_id),
        Some(other) => return Err(other.foreign().into()),
    };
    let rows = client.query(READ, &[&xid.to_string(), &event_id, &i64::from(limit)])?;
    rows.iter()
        .map(|row| {
            let xid: String = row.get(0);
            Ok(EventRow {
                xid: Some(xid.parse().map_err(|_| {
                    crate::error::WalletError::internal(anyhow::anyhow!(
                        "a transaction id read as '{xid}'"
                    ))
                })?),
                event_id: row.get(1),
                // A code no kind has is passed on as text, which the
                // record refuses as damage.
                kind: {
                    let code: i16 = row.get(2);
                    EventKind::from_code(i64::from(code))
                        .map_or_else(|| format!("code {code}"), |k| k.as_str().to_string())
                },
                at: row.get(3),
                tx_id: row.get(4),
                change_id: row.get(5),
                status: row.get(6),
                reason: row.get(7),
                from: row.get(8),
                to: row.get(9),
                amount: row.get(10),
                hold_amount: row.get(11),
                memo: row.get(12),
                user: row.get(13),
                change: row.get(14),
                overdraft: row.get(15),
                change_memo: row.get(16),
                currency: row.get(17),
                scale: row.get(18),
                pair_tx_id: row.get(19),
                change_currency: row.get(20),
                change_scale: row.get(21),
            })
        })
        .collect()
}
