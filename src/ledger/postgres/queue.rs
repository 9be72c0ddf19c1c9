//! Queueing on PostgreSQL: a chunk's facts read with a few set-based
//! statements, its lines decided by [`rules::plan::plan_chunk`], and its
//! new rows written with one insert (binary `COPY` into a staging table and
//! one `INSERT … SELECT` for a large chunk; holds, refunds, other
//! currencies and exchange legs by one more) and one update of the pending
//! sums per account.
//!
//! An exchange line is two rows, adjacent in the plan, so their ids come
//! from the same draw and each row is written naming the other as its
//! pair; the line's key is on the first leg only. Both parties are locked
//! before the ids are drawn, so no transfer naming either takes an id
//! between the legs, which is what lets settlement decide the pair at its
//! first leg.
//!
//! Ids come from the table's sequence, taken in one round trip for the
//! whole chunk in the plan's row order, so ids follow the lines. The
//! idempotency key's unique index is the truth about keys: a line whose
//! key another process inserted meanwhile is skipped by `ON CONFLICT DO
//! NOTHING` and answered from that process's transfer.

use std::collections::{HashMap, HashSet};

use postgres::Client;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use super::NOW_MS;
use super::commit;
use super::error::{PgFault, PgResult};
use super::events;
use super::guard::Guard;
use crate::domain::{IdempotencyKey, UserName};
use crate::error::WalletError;
use crate::ledger::events::EventKind;
use crate::ledger::model::{
    BalanceKey, BatchLine, BatchSink, BatchSummary, EXTERNAL_ACCOUNT, Kind, Leg, NewTransfer, Span,
};
use crate::ledger::rules::plan::{
    ChunkFacts, ChunkPlan, HoldFigures, Named, NewRow, Original, PendingSums, Planned, RowKind,
    StoredKey,
};
use crate::ledger::rules::{self, Pinned};
use crate::money::{Currencies, CurrencyId};

/// From this many new transfers on, a chunk is written through `COPY`;
/// below it, one `INSERT … SELECT FROM unnest(…)` costs less than the
/// staging table's round trips.
pub(super) const COPY_THRESHOLD: usize = 512;

/// The staging table a connection copies a chunk into. Temporary (only this
/// session sees it, and it is never logged) and emptied at each commit.
pub(super) fn create_staging(client: &mut Client) -> PgResult<()> {
    client.batch_execute(
        "CREATE TEMPORARY TABLE IF NOT EXISTS wallet_staging (
             tx_id bigint, lane integer, src bigint, dst bigint, amount bigint,
             memo text, idem_key text, created_at bigint
         ) ON COMMIT DELETE ROWS",
    )?;
    Ok(())
}

/// A chunk decided and written, not yet committed.
pub(super) struct PlannedChunk {
    plan: ChunkPlan,
    /// The id of each new row, in the plan's order.
    ids: Vec<i64>,
    write: bool,
}

pub(super) enum Attempt {
    Done(PlannedChunk),
    /// A pending sum may overflow: decide again with the accounts locked.
    Careful,
}

/// What a chunk is decided over, read before the plan.
#[derive(Default)]
struct Prefetched {
    names: HashMap<String, i64>,
    /// The chunk's users that are closed, as read with their sums.
    closed: HashSet<i64>,
    keys: HashMap<String, StoredKey>,
    sums: HashMap<BalanceKey, PendingSums>,
    figures: HashMap<BalanceKey, HoldFigures>,
    originals: HashMap<i64, Original>,
}

impl ChunkFacts for Prefetched {
    type Fault = PgFault;

    fn account(&mut self, name: &UserName) -> PgResult<Option<Named>> {
        Ok(self
            .names
            .get(&name.as_str().to_ascii_lowercase())
            .map(|&id| Named {
                id,
                closed: self.closed.contains(&id),
            }))
    }

    fn stored_key(&mut self, key: &IdempotencyKey) -> PgResult<Option<StoredKey>> {
        Ok(self.keys.get(key.as_str()).cloned())
    }

    fn sums(&mut self, key: BalanceKey) -> PgResult<PendingSums> {
        Ok(self.sums.get(&key).copied().unwrap_or_default())
    }

    fn set_sums(&mut self, key: BalanceKey, sums: PendingSums) {
        self.sums.insert(key, sums);
    }

    fn hold_figures(&mut self, key: BalanceKey) -> PgResult<HoldFigures> {
        Ok(self.figures.get(&key).copied().unwrap_or_default())
    }

    fn original(&mut self, tx_id: i64) -> PgResult<Option<Original>> {
        Ok(self.originals.get(&tx_id).cloned())
    }
}

/// Reads the chunk's facts, has the rules decide every line, and writes
/// the new transfers and sums, in an open transaction. `careful` locks the
/// accounts before reading their sums; otherwise the sums are read
/// unlocked and moved by relative updates, so concurrent writers only
/// queue for the moment of the update, and a line that an unlocked sum
/// would refuse sends the chunk back here with `careful` set. A chunk with
/// a hold or a refund is always careful: those are decided against
/// balances and holds that must not move before the commit.
pub(super) fn plan_and_write(
    client: &mut Client,
    guard: &mut Guard,
    currencies: &Currencies,
    chunk: &[BatchLine],
    all_or_nothing: bool,
    lanes: i32,
    careful: bool,
) -> PgResult<Attempt> {
    let requests = || chunk.iter().filter_map(|line| line.transfer.as_ref().ok());
    // A hold placed, or one expired for its source, is an event; the
    // statement that inserts holds and refunds names the feed's table
    // even when it records nothing, and a statement trigger there would
    // run, so the table is locked for the schema check as well.
    let holds_or_refunds = requests().any(|t| t.kind() != Kind::Transfer);
    // A line in another currency reads and writes `balances` rows of its
    // users, which only a transaction holding their accounts' locks may
    // touch: such a chunk is careful too.
    let mut others: Vec<CurrencyId> = requests()
        .flat_map(|t| {
            // An exchange moves its counter leg's currency too.
            let counter = match t.kind() {
                Kind::Exchange(counter) => Some(counter.currency),
                _ => None,
            };
            std::iter::once(t.currency()).chain(counter)
        })
        .filter(|c| *c != CurrencyId::DEFAULT)
        .collect();
    others.sort_unstable();
    others.dedup();
    let writes: &[&str] = match (holds_or_refunds, others.is_empty()) {
        (true, true) => &["transfers", "accounts", "events"],
        (false, true) => &["transfers", "accounts"],
        (true, false) => &["transfers", "accounts", "balances", "events"],
        (false, false) => &["transfers", "accounts", "balances"],
    };
    guard.begin(client, writes, &[])?;
    let careful = careful || holds_or_refunds || !others.is_empty();
    let mut facts = Prefetched {
        names: resolve_names(client, chunk)?,
        keys: earlier_uses(client, requests())?,
        ..Prefetched::default()
    };
    let users: Vec<i64> = {
        let mut ids: Vec<i64> = facts.names.values().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    // Careful: the users locked in id order, as every writer locks them;
    // the external account is never locked before the end of a transaction.
    let lock = if careful { " FOR UPDATE" } else { "" };
    let read = client.query_typed(
        &format!(
            "SELECT id, pending_out, pending_in, balance, held, overdraft, frozen, closed
               FROM accounts WHERE id = ANY($1) ORDER BY id{lock}"
        ),
        &[(&users, Type::INT8_ARRAY)],
    )?;
    // One row even in a ledger that lost its external account: the insert
    // then names the damage.
    let external = client
        .query_typed(
            &format!(
                "SELECT {NOW_MS}, e.pending_out, e.pending_in
                   FROM (SELECT 1) AS one LEFT JOIN accounts e ON e.id = 0"
            ),
            &[],
        )?
        .pop()
        .ok_or_else(|| {
            PgFault::Wallet(WalletError::internal(anyhow::anyhow!(
                "a select of one row returned none"
            )))
        })?;
    let now: i64 = external.get(0);
    // `accounts` holds each account's figures in the default currency.
    facts.sums.insert(
        BalanceKey::default_currency(EXTERNAL_ACCOUNT),
        PendingSums {
            out: external.get::<_, Option<i64>>(1).unwrap_or(0),
            r#in: external.get::<_, Option<i64>>(2).unwrap_or(0),
        },
    );
    for row in &read {
        let id = row.get(0);
        let key = BalanceKey::default_currency(id);
        let sums = PendingSums {
            out: row.get(1),
            r#in: row.get(2),
        };
        facts.sums.insert(key, sums);
        let figures = HoldFigures {
            balance: row.get(3),
            held: row.get(4),
            overdraft: row.get(5),
            frozen: row.get(6),
        };
        facts.figures.insert(key, figures);
        if row.get::<_, bool>(7) {
            facts.closed.insert(id);
        }
    }
    if !others.is_empty() {
        let keys = balances_named(requests(), &facts.names, &others);
        read_other_currencies(client, &mut facts, &keys)?;
    }
    let expired = expire_holds_of_sources(client, &mut facts, chunk)?;
    read_originals(client, &mut facts, chunk)?;
    let plan = rules::plan::plan_chunk(chunk, &mut facts, now, currencies)?;
    if !careful && plan.overflows() {
        return Ok(Attempt::Careful);
    }
    let mut planned = PlannedChunk {
        write: !(all_or_nothing && plan.refused() > 0),
        plan,
        ids: Vec::new(),
    };
    if planned.write && lock_users(client, &planned.plan.rows)? {
        // A user was closed after its row was read unlocked: decide again
        // with the rows locked from the start, which no close can pass.
        return Ok(Attempt::Careful);
    }
    planned.ids = take_ids(client, planned.plan.rows.len())?;
    if !planned.write || (planned.plan.rows.is_empty() && expired.is_empty()) {
        return Ok(Attempt::Done(planned));
    }
    let inserted = insert(client, chunk, &planned, lanes, now)?;
    if inserted.len() != planned.plan.rows.len() {
        // Another process committed one of these keys after they were
        // looked up: answer those lines from its transfer instead.
        lost_key_races(client, chunk, &mut planned, &inserted, now)?;
        if all_or_nothing && planned.plan.refused() > 0 {
            planned.write = false;
            return Ok(Attempt::Done(planned));
        }
    }
    match move_sums(client, &planned, &inserted, &expired) {
        // Sums read unlocked were raised meanwhile past what 64 bits hold.
        Err(fault) if fault.is_out_of_range() && !careful => Ok(Attempt::Careful),
        Err(fault) => Err(fault),
        Ok(()) => Ok(Attempt::Done(planned)),
    }
}

/// The balances in other currencies the chunk's lines name: each line's
/// parties in its currency (and an exchange's in its counter currency too),
/// and the external account in each, so a balance appears on first use and
/// no other.
fn balances_named<'a>(
    requests: impl Iterator<Item = &'a NewTransfer>,
    names: &HashMap<String, i64>,
    others: &[CurrencyId],
) -> Vec<BalanceKey> {
    let party = |name: Option<&UserName>| match name {
        None => Some(EXTERNAL_ACCOUNT),
        Some(name) => names.get(&name.as_str().to_ascii_lowercase()).copied(),
    };
    let mut keys: Vec<BalanceKey> = others
        .iter()
        .map(|&c| BalanceKey::new(EXTERNAL_ACCOUNT, c))
        .collect();
    for t in requests {
        let counter = match t.kind() {
            Kind::Exchange(counter) => Some(counter.currency),
            _ => None,
        };
        let parties = [party(t.src()), party(t.dst())];
        for currency in std::iter::once(t.currency()).chain(counter) {
            if currency != CurrencyId::DEFAULT {
                keys.extend(
                    parties
                        .iter()
                        .flatten()
                        .map(|&id| BalanceKey::new(id, currency)),
                );
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Reads the figures of the chunk's users and the external account in the
/// chunk's other currencies. A user's balance with no row yet reads as
/// zero, under its account's `frozen`: its row is made when a queued line
/// first reserves on it (`move_sums`). The users are locked by then; the
/// external account's rows, made when their currency was added, are read
/// unlocked and moved by relative updates, as its `accounts` row is.
fn read_other_currencies(
    client: &mut Client,
    facts: &mut Prefetched,
    keys: &[BalanceKey],
) -> PgResult<()> {
    for &key in keys.iter().filter(|k| k.account != EXTERNAL_ACCOUNT) {
        let frozen = facts
            .figures
            .get(&BalanceKey::default_currency(key.account))
            .is_some_and(|f| f.frozen);
        facts.sums.insert(key, PendingSums::default());
        let figures = HoldFigures {
            frozen,
            ..HoldFigures::default()
        };
        facts.figures.insert(key, figures);
    }
    for (key, row) in super::balances::read(client, super::balances::READ, keys)? {
        facts.sums.insert(
            key,
            PendingSums {
                out: row.pending_out,
                r#in: row.pending_in,
            },
        );
        facts.figures.insert(
            key,
            HoldFigures {
                balance: row.balance,
                held: row.held,
                overdraft: row.overdraft,
                frozen: row.frozen,
            },
        );
    }
    Ok(())
}

/// Marks the holds of the chunk's hold sources that are past their expiry
/// EXPIRED, and takes their reservations out of the figures the plan
/// reads; returns what each source's `held` must give back.
fn expire_holds_of_sources(
    client: &mut Client,
    facts: &mut Prefetched,
    chunk: &[BatchLine],
) -> PgResult<HashMap<BalanceKey, i64>> {
    let mut sources: Vec<i64> = chunk
        .iter()
        .filter_map(|line| line.transfer.as_ref().ok())
        .filter(|t| matches!(t.kind(), Kind::Hold(_)))
        .filter_map(|t| t.src())
        .filter_map(|name| {
            facts
                .names
                .get(&name.as_str().to_ascii_lowercase())
                .copied()
        })
        .collect();
    if sources.is_empty() {
        return Ok(HashMap::new());
    }
    sources.sort_unstable();
    sources.dedup();
    let rows = client.query(
        &events::recorded_returning(
            EventKind::HoldExpired,
            &format!(
                "UPDATE transfers SET status = 'EXPIRED', settled_at = {NOW_MS}
                  WHERE src = ANY($1) AND {past_expiry}
                 RETURNING tx_id, src, hold_amount, currency, settled_at AS at",
                past_expiry = rules::past_expiry_sql("", NOW_MS)
            ),
            "true",
            "SELECT src, currency, sum(hold_amount)::bigint FROM changed GROUP BY src, currency",
        ),
        &[&sources],
    )?;
    let mut expired = HashMap::new();
    for row in &rows {
        let key = BalanceKey::new(row.get(0), CurrencyId(row.get::<_, i16>(1)));
        let amount: i64 = row.get(2);
        if let Some(figures) = facts.figures.get_mut(&key) {
            figures.held -= amount;
        }
        expired.insert(key, amount);
    }
    Ok(expired)
}

/// Reads and locks the transfers the chunk's refunds pay back, with the
/// refunds of each queued or completed so far. The original's row lock
/// orders refunds of one transfer.
fn read_originals(
    client: &mut Client,
    facts: &mut Prefetched,
    chunk: &[BatchLine],
) -> PgResult<()> {
    let mut wanted: Vec<i64> = chunk
        .iter()
        .filter_map(|line| line.transfer.as_ref().ok())
        .filter_map(|t| match t.kind() {
            Kind::Refund(original) => Some(original.get()),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    wanted.sort_unstable();
    wanted.dedup();
    let rows = client.query(
        "SELECT tx_id, src, dst, amount, status, expires_at, pair_tx_id FROM transfers
          WHERE tx_id = ANY($1) ORDER BY tx_id FOR UPDATE",
        &[&wanted],
    )?;
    let refunded: HashMap<i64, i64> = client
        .query(
            &format!(
                "SELECT refund_of, sum(amount)::bigint FROM transfers
                  WHERE refund_of = ANY($1) AND status IN ({}) GROUP BY refund_of",
                rules::refund_counting_statuses_sql()
            ),
            &[&wanted],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for row in &rows {
        let tx_id: i64 = row.get(0);
        facts.originals.insert(
            tx_id,
            Original {
                src: row.get(1),
                dst: row.get(2),
                amount: row.get(3),
                status: row.get(4),
                expires_at: row.get(5),
                refunded: refunded.get(&tx_id).copied().unwrap_or(0),
                pair: row.get(6),
            },
        );
    }
    Ok(())
}

/// Reports every line to the sink and commits, or rolls back an
/// all-or-nothing chunk that has a refused line.
pub(super) fn finish(
    client: &mut Client,
    guard: &Guard,
    chunk: &[BatchLine],
    planned: PlannedChunk,
    all_or_nothing: bool,
    sink: &mut dyn BatchSink,
) -> PgResult<BatchSummary> {
    let mut summary = BatchSummary::default();
    let mut span = Span::default();
    let PlannedChunk { plan, ids, write } = planned;
    for (line, answer) in chunk.iter().zip(plan.answers(chunk, &ids, all_or_nothing)) {
        let outcome = match (answer, &line.transfer) {
            (Some(outcome), _) => outcome,
            (None, Err(refused)) => Err(clone_refusal(refused)),
            (None, Ok(_)) => Err(WalletError::internal(anyhow::anyhow!(
                "a line read well was planned as refused when read"
            ))),
        };
        span.note(line.line, &outcome);
        summary.count(&outcome);
        sink.record(line.line, outcome)?;
    }
    if !write || sink.dry_run() {
        client.batch_execute("ROLLBACK")?;
        return Ok(summary);
    }
    sink.before_commit()?;
    commit(
        client,
        guard,
        &span.describe(),
        "`wallet get-transfer` shows what is there; only a retry with the same --id (or \"id\") is exact, without one it queues again",
    )?;
    summary.committed = true;
    Ok(summary)
}

/// Every user name the chunk names, resolved in one query.
fn resolve_names(client: &mut Client, chunk: &[BatchLine]) -> PgResult<HashMap<String, i64>> {
    let mut wanted: Vec<String> = chunk
        .iter()
        .filter_map(|line| line.transfer.as_ref().ok())
        .flat_map(|t| [t.src(), t.dst()])
        .flatten()
        .map(|name| name.as_str().to_ascii_lowercase())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client.query_typed(
        "SELECT lower(name), id FROM accounts WHERE lower(name) = ANY($1)",
        &[(&wanted, Type::TEXT_ARRAY)],
    )?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// The transfers that already hold any key the requests use, in one query.
fn earlier_uses<'t>(
    client: &mut Client,
    requests: impl Iterator<Item = &'t NewTransfer>,
) -> PgResult<HashMap<String, StoredKey>> {
    let keys: Vec<&str> = requests
        .filter_map(|t| t.key().map(IdempotencyKey::as_str))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    // Only the first leg of an exchange holds its key; the second leg's
    // fields, which a replay must repeat too, come from its pair.
    let rows = client.query_typed(
        "SELECT t.idem_key, t.tx_id, t.src, t.dst, t.amount, t.memo, t.status, t.hold_amount,
                t.expires_at, t.refund_of, t.created_at, t.currency, p.tx_id, p.amount, p.currency
           FROM transfers t LEFT JOIN transfers p ON p.tx_id = t.pair_tx_id
          WHERE t.idem_key = ANY($1)",
        &[(&keys, Type::TEXT_ARRAY)],
    )?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get(0),
                StoredKey {
                    tx_id: row.get(1),
                    src: row.get(2),
                    dst: row.get(3),
                    amount: row.get(4),
                    currency: CurrencyId(row.get::<_, i16>(11)),
                    memo: row.get(5),
                    status: row.get(6),
                    hold_amount: row.get(7),
                    expires_at: row.get(8),
                    refund_of: row.get(9),
                    created_at: row.get(10),
                    pair: row
                        .get::<_, Option<i64>>(12)
                        .map(|pair| (pair, row.get(13), CurrencyId(row.get::<_, i16>(14)))),
                },
            )
        })
        .collect())
}

/// Locks the user accounts of the new rows, in id order as every writer
/// locks them (so no two writers deadlock), before their ids are drawn. A
/// source's new transfers thus take their ids in the order they commit,
/// so a settle worker, which locks the source too, never finds a transfer
/// of that source committed after a later one of it was decided. Returns
/// whether one of them is closed now, which the plan did not see.
fn lock_users(client: &mut Client, rows: &[NewRow]) -> PgResult<bool> {
    let mut users: Vec<i64> = rows
        .iter()
        .flat_map(|row| [row.src, row.dst])
        .filter(|id| *id != EXTERNAL_ACCOUNT)
        .collect();
    users.sort_unstable();
    users.dedup();
    if users.is_empty() {
        return Ok(false);
    }
    let locked = client.query_typed(
        "SELECT closed FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &[(&users, Type::INT8_ARRAY)],
    )?;
    Ok(locked.iter().any(|row| row.get::<_, bool>(0)))
}

/// Ids for the new rows, in line order, from the table's own sequence, in
/// one round trip.
fn take_ids(client: &mut Client, rows: usize) -> PgResult<Vec<i64>> {
    if rows == 0 {
        return Ok(Vec::new());
    }
    // The lock every insert takes anyway is held from the transaction's
    // start (`Guard::begin`), before the ids are drawn: the hash chain's
    // sealer waits for such transactions before it fixes which ids are
    // final (`chain::seal`), so none can commit an id below the bound it
    // sealed. Writers do not conflict on it.
    let ids = client.query_typed(
        "SELECT nextval('transfers_tx_id_seq') FROM generate_series(1, $1::bigint)",
        &[(&(rows as i64), Type::INT8)],
    )?;
    Ok(ids.iter().map(|row| row.get(0)).collect())
}

const INSERT: &str = "INSERT INTO transfers
             (tx_id, lane, src, dst, amount, status, memo, idem_key, created_at";
const ON_KEY: &str = "ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING RETURNING tx_id";

/// Inserts the new rows, skipping any whose key is taken; returns the ids
/// inserted. Plain transfers go in by one statement (through `COPY` when
/// many), holds and refunds by another.
fn insert(
    client: &mut Client,
    chunk: &[BatchLine],
    planned: &PlannedChunk,
    lanes: i32,
    now: i64,
) -> PgResult<Vec<i64>> {
    let lane = |row: &NewRow| {
        let owner = if row.src == EXTERNAL_ACCOUNT {
            row.dst
        } else {
            row.src
        };
        (owner % i64::from(lanes)) as i32
    };
    let extras = |row: &NewRow| {
        chunk[row.line]
            .transfer
            .as_ref()
            .ok()
            .map_or((None, None), |t| {
                (t.memo(), t.key().map(IdempotencyKey::as_str))
            })
    };
    let rows = &planned.plan.rows;
    let plain = || {
        rows.iter()
            .zip(&planned.ids)
            .filter(|(row, _)| is_plain(row))
    };
    let plain_count = plain().count();
    let mut inserted: Vec<i64> = Vec::with_capacity(rows.len());
    if plain_count == 0 {
        // Nothing plain to write.
    } else if plain_count < COPY_THRESHOLD {
        let (mut ids, mut lanes_, mut srcs, mut dsts, mut amounts, mut memos, mut keys) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for (row, id) in plain() {
            let (memo, key) = extras(row);
            ids.push(*id);
            lanes_.push(lane(row));
            srcs.push(row.src);
            dsts.push(row.dst);
            amounts.push(row.amount);
            memos.push(memo);
            keys.push(key);
        }
        let written = client.query_typed(
            &format!(
                "{INSERT}) SELECT i, l, s, d, a, 'PENDING', m, k, $8
                 FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::bigint[],
                             $5::bigint[], $6::text[], $7::text[]) AS u(i, l, s, d, a, m, k)
                 ORDER BY i {ON_KEY}"
            ),
            &[
                (&ids, Type::INT8_ARRAY),
                (&lanes_, Type::INT4_ARRAY),
                (&srcs, Type::INT8_ARRAY),
                (&dsts, Type::INT8_ARRAY),
                (&amounts, Type::INT8_ARRAY),
                (&memos, Type::TEXT_ARRAY),
                (&keys, Type::TEXT_ARRAY),
                (&now, Type::INT8),
            ],
        )?;
        inserted.extend(written.iter().map(|row| row.get::<_, i64>(0)));
    } else {
        let sink = client.copy_in(
            "COPY wallet_staging (tx_id, lane, src, dst, amount, memo, idem_key, created_at) FROM STDIN BINARY",
        )?;
        let mut writer = BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT8,
                Type::INT4,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
            ],
        );
        for (row, id) in plain() {
            let (memo, key) = extras(row);
            writer.write(&[
                id,
                &lane(row),
                &row.src,
                &row.dst,
                &row.amount,
                &memo,
                &key,
                &now,
            ])?;
        }
        writer.finish()?;
        let written = client.query(
            &format!(
                "{INSERT}) SELECT tx_id, lane, src, dst, amount, 'PENDING', memo, idem_key, created_at
                 FROM wallet_staging ORDER BY tx_id {ON_KEY}"
            ),
            &[],
        )?;
        client.batch_execute("TRUNCATE wallet_staging")?;
        inserted.extend(written.iter().map(|row| row.get::<_, i64>(0)));
    }
    if plain_count < rows.len() {
        let (mut ids, mut lanes_, mut srcs, mut dsts, mut amounts, mut statuses) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut memos, mut keys, mut held, mut expiries, mut originals, mut currencies) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut pairs = vec![];
        for (i, (row, id)) in rows.iter().zip(&planned.ids).enumerate() {
            if is_plain(row) {
                continue;
            }
            let (hold, expires_at, original) = match row.kind {
                RowKind::Transfer => (None, None, None),
                RowKind::Hold { expires_at } => (Some(row.amount), expires_at, None),
                RowKind::Refund { original } => (None, None, Some(original)),
            };
            // The legs of an exchange are adjacent rows, so each knows the
            // other's id before either is written; the line's key goes on
            // the first leg alone.
            let (pair, key) = match row.leg {
                None => (None, extras(row).1),
                Some(Leg::First) => (Some(planned.ids[i + 1]), extras(row).1),
                Some(Leg::Second) => (Some(planned.ids[i - 1]), None),
            };
            let memo = extras(row).0;
            pairs.push(pair);
            ids.push(*id);
            lanes_.push(lane(row));
            srcs.push(row.src);
            dsts.push(row.dst);
            amounts.push(row.amount);
            statuses.push(row.status().as_str());
            memos.push(memo);
            keys.push(key);
            held.push(hold);
            expiries.push(expires_at);
            originals.push(original);
            currencies.push(row.currency.0);
        }
        // A placed hold is an event; a refund is not, until decided.
        let written = client.query(
            &events::recorded_returning(
                EventKind::HoldPlaced,
                &format!(
                    "{INSERT}, hold_amount, expires_at, refund_of, currency, pair_tx_id)
                     SELECT i, l, s, d, a, st, m, k, $12, h, e, r, c, p
                     FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::bigint[],
                                 $5::bigint[], $6::text[], $7::text[], $8::text[],
                                 $9::bigint[], $10::bigint[], $11::bigint[], $13::smallint[],
                                 $14::bigint[])
                          AS u(i, l, s, d, a, st, m, k, h, e, r, c, p)
                     ORDER BY i {ON_KEY}, hold_amount, created_at AS at"
                ),
                "hold_amount IS NOT NULL",
                "SELECT tx_id FROM changed",
            ),
            &[
                &ids,
                &lanes_,
                &srcs,
                &dsts,
                &amounts,
                &statuses,
                &memos,
                &keys,
                &held,
                &expiries,
                &originals,
                &now,
                &currencies,
                &pairs,
            ],
        )?;
        inserted.extend(written.iter().map(|row| row.get::<_, i64>(0)));
        drop_orphan_legs(client, planned, &mut inserted)?;
    }
    Ok(inserted)
}

/// A row the one multi-row statement (or `COPY`) writes: a plain transfer
/// in the default currency. Holds, refunds, other currencies and exchange
/// legs go through the statement that writes their extra columns.
fn is_plain(row: &NewRow) -> bool {
    row.kind == RowKind::Transfer && row.currency == CurrencyId::DEFAULT && row.leg.is_none()
}

/// Deletes each second leg written whose first leg was not, because
/// another process committed the exchange's key meanwhile: that line is
/// answered from the other process's exchange, and a leg must never wait
/// without its pair.
fn drop_orphan_legs(
    client: &mut Client,
    planned: &PlannedChunk,
    inserted: &mut Vec<i64>,
) -> PgResult<()> {
    if inserted.len() == planned.ids.len() {
        return Ok(());
    }
    let written: HashSet<i64> = inserted.iter().copied().collect();
    let orphans: Vec<i64> = planned
        .plan
        .rows
        .iter()
        .zip(&planned.ids)
        .enumerate()
        .filter(|(_, (row, id))| row.leg == Some(Leg::Second) && written.contains(id))
        .filter(|(i, _)| !written.contains(&planned.ids[i - 1]))
        .map(|(_, (_, id))| *id)
        .collect();
    if orphans.is_empty() {
        return Ok(());
    }
    client.execute("DELETE FROM transfers WHERE tx_id = ANY($1)", &[&orphans])?;
    inserted.retain(|id| !orphans.contains(id));
    Ok(())
}

/// Answers the lines whose new row was not inserted because another
/// process took the key meanwhile.
fn lost_key_races(
    client: &mut Client,
    chunk: &[BatchLine],
    planned: &mut PlannedChunk,
    inserted: &[i64],
    now: i64,
) -> PgResult<()> {
    let inserted: std::collections::HashSet<i64> = inserted.iter().copied().collect();
    let lost: Vec<usize> = (0..planned.plan.rows.len())
        .filter(|&i| !inserted.contains(&planned.ids[i]))
        .collect();
    let requests = lost
        .iter()
        .filter_map(|&i| chunk[planned.plan.rows[i].line].transfer.as_ref().ok());
    let found = earlier_uses(client, requests)?;
    for &i in &lost {
        let row = planned.plan.rows[i];
        let line = chunk[row.line].line;
        let key = chunk[row.line]
            .transfer
            .as_ref()
            .ok()
            .and_then(NewTransfer::key);
        let (Some(key), Some(stored)) = (key, key.and_then(|k| found.get(k.as_str()))) else {
            return Err(PgFault::Wallet(WalletError::internal(anyhow::anyhow!(
                "line {line} was neither queued nor found under its key"
            ))));
        };
        // Each line that leaned on the lost row is answered from the
        // transfer that holds the key now, by its own fields: a line that
        // repeated the first one replays it, one that differed conflicts.
        for (l, p) in planned.plan.lines.iter_mut().enumerate() {
            let (src, dst) = match p {
                Planned::New(r) if *r == i => (row.src, row.dst),
                Planned::SameKeyAs {
                    row: r, src, dst, ..
                } if *r == i => (*src, *dst),
                _ => continue,
            };
            let Ok(transfer) = &chunk[l].transfer else {
                continue;
            };
            let requested = Pinned::requested(transfer, src, dst);
            *p = match stored.answer(key, requested, now)? {
                Ok(queued) => Planned::Replayed(queued),
                Err(conflict) => Planned::Refused(conflict),
            };
        }
    }
    Ok(())
}

/// Adds what the inserted rows hold pending to their accounts, and what
/// the inserted holds reserve less what expired holds gave back to their
/// sources' `held`: the users (locked by [`lock_users`]) first, the
/// external account last.
fn move_sums(
    client: &mut Client,
    planned: &PlannedChunk,
    inserted: &[i64],
    expired: &HashMap<BalanceKey, i64>,
) -> PgResult<()> {
    let inserted: std::collections::HashSet<i64> = inserted.iter().copied().collect();
    let mut deltas: HashMap<BalanceKey, (i64, i64, i64)> = HashMap::new();
    for (row, _) in planned
        .plan
        .rows
        .iter()
        .zip(&planned.ids)
        .filter(|(_, id)| inserted.contains(id))
    {
        let reserves = row.reserves();
        let src = deltas
            .entry(BalanceKey::new(row.src, row.currency))
            .or_default();
        src.0 += reserves.src_out;
        src.2 += reserves.src_held;
        deltas
            .entry(BalanceKey::new(row.dst, row.currency))
            .or_default()
            .1 += reserves.dst_in;
    }
    for (src, amount) in expired {
        deltas.entry(*src).or_default().2 -= amount;
    }
    let external = deltas.remove(&BalanceKey::default_currency(EXTERNAL_ACCOUNT));
    // Other currencies' rows: the users' (locked) in (account, currency)
    // order, then the external account's by relative updates in currency
    // order, after every user row, as its default row is moved last.
    let mut others: Vec<(BalanceKey, (i64, i64, i64))> = Vec::new();
    deltas.retain(|key, delta| {
        if key.currency == CurrencyId::DEFAULT {
            return true;
        }
        others.push((*key, *delta));
        false
    });
    others.sort_unstable_by_key(|(key, _)| (key.account == EXTERNAL_ACCOUNT, *key));
    let mut users: Vec<(i64, (i64, i64, i64))> = deltas
        .into_iter()
        .map(|(key, delta)| (key.account, delta))
        .collect();
    users.sort_unstable_by_key(|(id, _)| *id);
    if !users.is_empty() {
        let ids: Vec<i64> = users.iter().map(|(id, _)| *id).collect();
        let outs: Vec<i64> = users.iter().map(|(_, d)| d.0).collect();
        let ins: Vec<i64> = users.iter().map(|(_, d)| d.1).collect();
        let held: Vec<i64> = users.iter().map(|(_, d)| d.2).collect();
        client.query_typed(
            "UPDATE accounts a SET pending_out = a.pending_out + u.o, pending_in = a.pending_in + u.i,
                                   held = a.held + u.h
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) AS u(id, o, i, h)
             WHERE a.id = u.id",
            &[
                (&ids, Type::INT8_ARRAY),
                (&outs, Type::INT8_ARRAY),
                (&ins, Type::INT8_ARRAY),
                (&held, Type::INT8_ARRAY),
            ],
        )?;
    }
    if let Some((out, r#in, _)) = external {
        client.query_typed(
            "UPDATE accounts SET pending_out = pending_out + $1, pending_in = pending_in + $2 WHERE id = 0",
            &[(&out, Type::INT8), (&r#in, Type::INT8)],
        )?;
    }
    // A user's row is made by the first line that reserves on it (the
    // account is locked); the external account's exists from `currency
    // add`, and one missing is damage the update's count names.
    for (key, (out, r#in, held)) in others {
        if (out, r#in, held) == (0, 0, 0) {
            continue;
        }
        let moved = if key.account == EXTERNAL_ACCOUNT {
            client.execute(
                "UPDATE balances SET pending_out = pending_out + $3, pending_in = pending_in + $4,
                                     held = held + $5
                 WHERE account = $1 AND currency = $2",
                &[&key.account, &key.currency.0, &out, &r#in, &held],
            )?
        } else {
            client.execute(
                &format!(
                    "INSERT INTO balances AS b (account, currency, created_at, pending_out,
                                                pending_in, held)
                     VALUES ($1, $2, {NOW_MS}, $3, $4, $5)
                     ON CONFLICT (account, currency) DO UPDATE
                     SET pending_out = b.pending_out + EXCLUDED.pending_out,
                         pending_in = b.pending_in + EXCLUDED.pending_in,
                         held = b.held + EXCLUDED.held"
                ),
                &[&key.account, &key.currency.0, &out, &r#in, &held],
            )?
        };
        if moved != 1 {
            return Err(WalletError::Integrity(format!(
                "the external account has no balance in currency {}",
                key.currency.0
            ))
            .into());
        }
    }
    Ok(())
}

/// A refusal handed on again: the error types are not `Clone`, but a
/// refused line's error is always one of the contract's plain ones, whose
/// code and message are all it carries.
fn clone_refusal(err: &WalletError) -> WalletError {
    match err {
        WalletError::IdempotencyConflict {
            key,
            field,
            tx_id,
            earlier_line,
        } => WalletError::IdempotencyConflict {
            key: key.clone(),
            field,
            tx_id: *tx_id,
            earlier_line: *earlier_line,
        },
        WalletError::UserNotFound(name) => WalletError::UserNotFound(name.clone()),
        WalletError::SameAccount(name) => WalletError::SameAccount(name.clone()),
        WalletError::PendingOverflow(who) => WalletError::PendingOverflow(who.clone()),
        WalletError::InvalidLine(why) => WalletError::InvalidLine(why.clone()),
        WalletError::InvalidCurrency(why) => WalletError::InvalidCurrency(why.clone()),
        WalletError::InvalidAmount { input, why } => WalletError::InvalidAmount {
            input: input.clone(),
            why: why.clone(),
        },
        WalletError::InvalidName { input, why } => WalletError::InvalidName {
            input: input.clone(),
            why,
        },
        WalletError::InvalidKey { input, why } => WalletError::InvalidKey {
            input: input.clone(),
            why,
        },
        WalletError::InvalidMemo { input, why } => WalletError::InvalidMemo {
            input: input.clone(),
            why,
        },
        WalletError::InvalidEmail { input, why } => WalletError::InvalidEmail {
            input: input.clone(),
            why,
        },
        other => WalletError::InvalidLine(other.to_string()),
    }
}
