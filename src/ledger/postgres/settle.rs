//! Settlement on PostgreSQL: any number of workers, each transfer applied
//! exactly once, each source account's transfers decided oldest first.
//!
//! A transfer's lane is its source account's (a deposit's, its
//! destination's). A worker's batch locks lanes, then the PENDING transfers
//! it claims in them, then the user accounts they name, in id order, and
//! has [`rules::settle::settle_due`] decide the transfers in `tx_id` order.
//! The lanes it locks are those of the oldest PENDING transfers that no
//! other worker holds, as many as the oldest `max` transfers span. One
//! worker alone therefore takes exactly the oldest `max` transfers, as the
//! SQLite engine does, and reaches the same outcomes; with several, each
//! takes the oldest work of the lanes the others leave, and a source
//! account's transfers, all in its lane, are still decided one batch after
//! another in `tx_id` order. What may differ from one worker: a credit from another
//! lane may land before or after a debit that one worker would have
//! decided in the other order.
//!
//! The two legs of an exchange wait in two lanes, the payer's and the
//! desk's, and are decided in one batch, at the first leg's place
//! ([`rules::settle::settle_due`]). A batch asks for a leg's partner lane
//! right after the leg's own, and [`rules::claim::claim`] takes whole pairs
//! only: a leg whose partner's lane another worker holds stops its own lane
//! there for this batch, which then is not `drained`, so a later batch
//! takes the pair. No transfer naming either party lies between the legs
//! (the queue draws their ids under both parties' locks), so a second leg
//! passing rows of its lane queued between the legs passes no transfer of
//! its source.
//!
//! Every user account of a batch is locked for it, the sources for their
//! funds and the payees for their credits, all in id order, so batches that
//! pay one user account wait for each other; the external account, which
//! nearly every deposit and withdrawal names, is read unlocked and moved by
//! one relative update at the end, so it holds no worker up.
//!
//! Parallelism comes from batches that span few lanes: with the default
//! 1,024 lanes, batches of a few hundred transfers leave most lanes to the
//! other workers, where batches of 100,000 span them all.

use std::collections::HashMap;

use postgres::Client;

use super::NOW_MS;
use super::commit;
use super::error::PgResult;
use super::events;
use super::guard::Guard;
use super::prepared::Prepared;
use crate::error::WalletError;
use crate::ledger::events::EventKind;
use crate::ledger::model::{BalanceKey, BatchCounts, EXTERNAL_ACCOUNT, FailReason, Status};
use crate::ledger::rules;
use crate::ledger::rules::claim::{self, Waiting};
use crate::ledger::rules::settle::{Account, Due, Original};
use crate::money::{Currencies, CurrencyId};

pub(super) fn pending_count(client: &mut Client) -> PgResult<u64> {
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM transfers WHERE status = 'PENDING'",
            &[],
        )?
        .get(0);
    Ok(count as u64)
}

/// Balances sum to zero and what is pending out is what is pending in,
/// read from one snapshot; checked before a process first pays out of
/// figures it reads, so damage is not carried forward.
pub(super) fn check_books(client: &mut Client, currencies: &Currencies) -> PgResult<()> {
    // Each currency on its own: the default's figures in `accounts`, every
    // other's in `balances`.
    let rows = client.query(
        "SELECT 0::smallint, coalesce(sum(balance), 0)::text, coalesce(sum(pending_in), 0)::text,
                coalesce(sum(pending_out), 0)::text FROM accounts
         UNION ALL
         SELECT currency, sum(balance)::text, sum(pending_in)::text, sum(pending_out)::text
           FROM balances GROUP BY currency
         ORDER BY 1",
        &[],
    )?;
    for row in &rows {
        let wide = |i: usize| -> i128 { row.get::<_, String>(i).parse().unwrap_or(i128::MAX) };
        let id = CurrencyId(row.get::<_, i16>(0));
        let Some(currency) = currencies.get(id) else {
            return Err(WalletError::Integrity(format!(
                "balances name currency {}, which the ledger does not have; run `wallet verify`",
                id.0
            ))
            .into());
        };
        rules::check_account_sums(wide(1), wide(2), wide(3), currency)?;
    }
    Ok(())
}

/// Marks every hold past its expiry EXPIRED and gives its reservation
/// back, in a transaction of its own; returns how many. The accounts are
/// locked in id order, as every writer locks them, before one update
/// gives each its reservations back.
pub(super) fn expire_holds(
    client: &mut Client,
    guard: &mut Guard,
    prepared: &mut Prepared,
) -> PgResult<u64> {
    // Most batches find none: a read tells, so that they begin no
    // transaction and pay for no schema check.
    let look = prepared.get(
        client,
        &format!(
            "SELECT EXISTS (SELECT 1 FROM transfers WHERE {})",
            rules::past_expiry_sql("", NOW_MS)
        ),
    )?;
    let any: bool = client.query_one(&look, &[])?.get(0);
    if !any {
        return Ok(0);
    }
    guard.begin(
        client,
        &["transfers", "accounts", "balances", "events"],
        &[],
    )?;
    let found = client.query(
        &events::recorded_returning(
            EventKind::HoldExpired,
            &format!(
                "UPDATE transfers SET status = 'EXPIRED', settled_at = {NOW_MS}
                  WHERE tx_id IN (SELECT tx_id FROM transfers
                                   WHERE {past_expiry}
                                   FOR UPDATE SKIP LOCKED)
                 RETURNING tx_id, src, hold_amount, currency, settled_at AS at",
                past_expiry = rules::past_expiry_sql("", NOW_MS)
            ),
            "true",
            "SELECT src, hold_amount, currency FROM changed",
        ),
        &[],
    )?;
    let mut released = Vec::new();
    let count = rules::settle::expire_holds(
        // The hold's currency from `transfers.currency` once the column exists.
        found.iter().map(|row| {
            (
                BalanceKey::new(row.get(0), CurrencyId(row.get::<_, i16>(2))),
                row.get(1),
            )
        }),
        &mut released,
    );
    if count == 0 {
        client.batch_execute("ROLLBACK")?;
        return Ok(0);
    }
    let mut locked: Vec<i64> = released.iter().map(|(key, _)| key.account).collect();
    locked.sort_unstable();
    locked.dedup();
    client.execute(
        "SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &[&locked],
    )?;
    let (ids, amounts): (Vec<i64>, Vec<i64>) = released
        .iter()
        .filter(|(key, _)| key.currency == CurrencyId::DEFAULT)
        .map(|(key, amount)| (key.account, *amount))
        .unzip();
    client.execute(
        "UPDATE accounts a SET held = a.held - u.amount
           FROM unnest($1::bigint[], $2::bigint[]) AS u(id, amount)
          WHERE a.id = u.id",
        &[&ids, &amounts],
    )?;
    // Holds in other currencies give back to their `balances` rows, in
    // (account, currency) order, under the accounts' locks taken above.
    let mut others: Vec<(BalanceKey, i64)> = released
        .into_iter()
        .filter(|(key, _)| key.currency != CurrencyId::DEFAULT)
        .collect();
    others.sort_unstable();
    for (key, amount) in others {
        client.execute(
            "UPDATE balances SET held = held - $3 WHERE account = $1 AND currency = $2",
            &[&key.account, &key.currency.0, &amount],
        )?;
    }
    commit(
        client,
        guard,
        &format!("the expiry of {count} holds"),
        "`wallet settle` again marks any that are left",
    )?;
    Ok(count)
}

/// How far past the oldest `max` PENDING transfers a worker looks for
/// lanes no other worker holds: the oldest work of this many batches.
const LOOK_AHEAD: i64 = 4;

/// Settles up to `max` transfers in one transaction; see the module's notes.
pub(super) fn settle_batch(
    client: &mut Client,
    guard: &mut Guard,
    prepared: &mut Prepared,
    max: u64,
) -> PgResult<BatchCounts> {
    let max = i64::try_from(max).unwrap_or(i64::MAX).max(1);
    // The lanes first: a batch waiting for them holds no other lock.
    guard.begin(
        client,
        &["lanes", "transfers", "accounts", "balances", "events"],
        &[],
    )?;
    // The lanes of the oldest PENDING work, in order of each lane's oldest
    // transfer; the first `spanned` of them hold the oldest `max`. The
    // window is those `max` first and one more (the second leg of a pair
    // the cap falls inside), all a lone worker ever needs; only when
    // another worker holds one of their lanes does the batch read the
    // oldest work of `LOOK_AHEAD` batches, for lanes no one holds. (A lane
    // this batch has locked is locked again, not skipped.)
    let look = prepared.get(
        client,
        "SELECT tx_id, lane, pair_tx_id FROM transfers WHERE status = 'PENDING'
          ORDER BY tx_id LIMIT $1",
    )?;
    let lock_lanes = prepared.get(
        client,
        "SELECT l.lane FROM unnest($1::integer[]) WITH ORDINALITY AS c(lane, position)
           JOIN lanes l ON l.lane = c.lane
          ORDER BY c.position
          LIMIT $2
          FOR UPDATE OF l SKIP LOCKED",
    )?;
    let mut window_limit = max.saturating_add(1);
    let (window, candidates, lanes) = loop {
        let window: Vec<Waiting> = client
            .query(&look, &[&window_limit])?
            .iter()
            .map(|row| Waiting {
                tx_id: row.get(0),
                lane: row.get(1),
                pair: row.get(2),
            })
            .collect();
        if window.is_empty() {
            client.batch_execute("ROLLBACK")?;
            return Ok(BatchCounts {
                drained: true,
                ..BatchCounts::default()
            });
        }
        let candidates = candidate_lanes(&window, max);
        let lanes: std::collections::HashSet<i32> = client
            .query(&lock_lanes, &[&candidates.lanes, &candidates.spanned])?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let oldest_held = candidates
            .lanes
            .iter()
            .take(usize::try_from(candidates.spanned).unwrap_or(usize::MAX))
            .all(|lane| lanes.contains(lane));
        let looked_ahead = window_limit > max.saturating_add(1);
        let whole_queue = (window.len() as i64) < window_limit;
        if oldest_held || looked_ahead || whole_queue {
            break (window, candidates, lanes);
        }
        window_limit = max.saturating_mul(LOOK_AHEAD);
    };
    if lanes.is_empty() {
        // Other workers hold every lane with work in the window.
        client.batch_execute("ROLLBACK")?;
        return Ok(BatchCounts::default());
    }
    // The oldest transfers of the locked lanes are in the window: a
    // transfer of a source that is not there yet took its id, under the
    // source's lock, after every one of that source's that is.
    let claim = claim::claim(
        &window,
        |lane| lanes.contains(&lane),
        usize::try_from(max).unwrap_or(usize::MAX),
    );
    // Everything PENDING was in the window, and all of it is this batch's:
    // once it commits, nothing that was waiting is left.
    let drained = (window.len() as i64) < window_limit
        && lanes.len() == candidates.lanes.len()
        && claim.len() == window.len();
    if claim.is_empty() {
        client.batch_execute("ROLLBACK")?;
        let whole = (window.len() as i64) < window_limit;
        if let Some(leg) = claim::stray_leg(&window, whole) {
            return Err(WalletError::Integrity(format!(
                "exchange leg {leg} waits without its pair; run `wallet verify`"
            ))
            .into());
        }
        // Every locked lane starts with a leg whose pair another worker's
        // lane holds: blocked, as when no lane was free.
        return Ok(BatchCounts::default());
    }
    let lock_due = prepared.get(
        client,
        "SELECT tx_id, src, dst, amount, refund_of, currency, pair_tx_id FROM transfers
          WHERE tx_id = ANY($1) AND status = 'PENDING'
          ORDER BY tx_id
          FOR UPDATE",
    )?;
    let due: Vec<Due> = client
        .query(&lock_due, &[&claim])?
        .iter()
        .map(|row| Due {
            tx_id: row.get(0),
            src: row.get(1),
            dst: row.get(2),
            amount: row.get(3),
            // Read from `transfers.currency` once the column exists.
            currency: CurrencyId(row.get::<_, i16>(5)),
            refund_of: row.get(4),
            // Both legs or neither: the claim takes whole pairs, and a
            // cancel takes both legs' locks in this same order.
            pair: row.get(6),
        })
        .collect();
    if due.is_empty() {
        // Cancelled or settled by another worker between the look and the lock.
        client.batch_execute("ROLLBACK")?;
        return Ok(BatchCounts {
            drained,
            ..BatchCounts::default()
        });
    }
    // Every user account the batch names is locked, in id order as every
    // writer locks them, so that no two transactions deadlock.
    let mut users: Vec<i64> = due
        .iter()
        .flat_map(|d| [d.src, d.dst])
        .filter(|id| *id != EXTERNAL_ACCOUNT)
        .collect();
    users.sort_unstable();
    users.dedup();
    // Every key is an account's default currency, whose figures live in
    // `accounts`.
    let read = |rows: Vec<postgres::Row>| -> HashMap<BalanceKey, Account> {
        rows.iter()
            .map(|row| {
                (
                    BalanceKey::default_currency(row.get(0)),
                    Account::read(
                        row.get(1),
                        row.get(2),
                        row.get(3),
                        row.get(4),
                        row.get(5),
                        row.get(6),
                    ),
                )
            })
            .collect()
    };
    let lock_accounts = prepared.get(
        client,
        "SELECT id, balance, pending_in, pending_out, held, overdraft, frozen FROM accounts
          WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )?;
    let mut accounts = read(client.query(&lock_accounts, &[&users])?);
    // The external account is read, not locked: it is never refused for
    // funds, and its figures move by one relative update just before the
    // commit, so the deposits and withdrawals of every worker, nearly all
    // naming it, do not wait on each other for it.
    //
    // Read in the same statement, with every source locked: whether a
    // source has a captured hold PENDING, older than the batch's last
    // transfer from it, that the batch did not claim. A hold keeps its
    // older id, so one captured after the window was read and before the
    // batch locked its source is missing from a claim that took newer
    // transfers of that source. Deciding them now would spend what the hold
    // reserved, which its capture has just freed, and leave it to fail for
    // funds; the batch leaves it all to the next one, whose window has it.
    let (sources, lasts) = sources_claimed(&due);
    let due_ids: Vec<i64> = due.iter().map(|d| d.tx_id).collect();
    let read_external = prepared.get(
        client,
        "SELECT id, balance, pending_in, pending_out, held, overdraft, frozen,
                EXISTS (SELECT 1 FROM transfers t
                          JOIN unnest($1::bigint[], $2::bigint[]) AS c(src, last)
                            ON t.src = c.src AND t.tx_id < c.last
                         WHERE t.status = 'PENDING' AND t.hold_amount IS NOT NULL
                           AND t.tx_id <> ALL($3))
           FROM accounts WHERE id = 0",
    )?;
    let external = client.query(&read_external, &[&sources, &lasts, &due_ids])?;
    if external.first().is_some_and(|row| row.get::<_, bool>(7)) {
        client.batch_execute("ROLLBACK")?;
        return Ok(BatchCounts::default());
    }
    let before = read(external);
    accounts.extend(before.iter().map(|(id, a)| (*id, *a)));
    if accounts.len() != users.len() + 1 {
        return Err(WalletError::Integrity(
            "a transfer names an account that does not exist; run `wallet verify`".into(),
        )
        .into());
    }
    // Balances in other currencies, read only when the batch has any: the
    // users' rows under their accounts' locks, the external account's
    // unlocked, moved below by relative updates. The line that queued a
    // transfer made both its rows when it reserved on them (a capture, its
    // destination's): one missing now is damage, as on a ledger file.
    let mut others: Vec<BalanceKey> = due
        .iter()
        .filter(|d| d.currency != CurrencyId::DEFAULT)
        .flat_map(|d| [d.src_key(), d.dst_key()])
        .collect();
    others.sort_unstable();
    others.dedup();
    let mut others_before: HashMap<BalanceKey, Account> = HashMap::new();
    if !others.is_empty() {
        let read_balances = prepared.get(client, super::balances::READ)?;
        let rows = super::balances::read(client, &read_balances, &others)?;
        let found: std::collections::HashSet<BalanceKey> =
            rows.iter().map(|(key, _)| *key).collect();
        if let Some(missing) = others.iter().find(|key| !found.contains(key)) {
            return Err(WalletError::Integrity(format!(
                "a PENDING transfer moves account {}'s balance in currency {}, which has no row; run `wallet verify`",
                missing.account, missing.currency.0
            ))
            .into());
        }
        for (key, row) in &rows {
            let account = Account::read(
                row.balance,
                row.pending_in,
                row.pending_out,
                row.held,
                row.overdraft,
                row.frozen,
            );
            if key.account == EXTERNAL_ACCOUNT {
                others_before.insert(*key, account);
            }
            accounts.insert(*key, account);
        }
        if rows.len() != others.len() {
            return Err(WalletError::Integrity(
                "a transfer names a currency the external account has no balance in; run `wallet verify`"
                    .into(),
            )
            .into());
        }
    }
    // The transfers the batch's refunds pay back, with their refunds
    // completed so far, in one statement. Every refund of one transfer has
    // that transfer's payee as its source, so they are all in one lane,
    // decided by one worker at a time.
    let mut refunded: Vec<i64> = due.iter().filter_map(|d| d.refund_of).collect();
    let mut originals: HashMap<i64, Original> = HashMap::new();
    if !refunded.is_empty() {
        refunded.sort_unstable();
        refunded.dedup();
        originals.extend(
            client
                .query(
                    &format!(
                        "SELECT o.tx_id, o.amount,
                                (SELECT coalesce(sum(r.amount), 0)::bigint FROM transfers r
                                  WHERE r.refund_of = o.tx_id AND r.status IN ({}))
                           FROM transfers o WHERE o.tx_id = ANY($1)",
                        rules::refund_paid_statuses_sql()
                    ),
                    &[&refunded],
                )?
                .iter()
                .map(|row| {
                    (
                        row.get(0),
                        Original {
                            amount: row.get(1),
                            refunded: row.get(2),
                        },
                    )
                }),
        );
    }
    let mut outcomes = Vec::new();
    let counts = rules::settle::settle_due(&due, &mut accounts, &mut originals, &mut outcomes)?;
    let mut decided = Decided::with_capacity(due.len());
    for (d, outcome) in due.iter().zip(&outcomes) {
        // The external account's side is left empty: read unlocked, its
        // balance here is this worker's view, not the balance right after.
        let (src_balance, dst_balance) = outcome.balances_seen(d);
        decided.push(
            d.tx_id,
            outcome.status(),
            outcome.reason().map(FailReason::as_str),
            src_balance,
            dst_balance,
        );
    }
    let column = |f: fn(&Account) -> i64| -> Vec<i64> {
        users
            .iter()
            .map(|id| f(&accounts[&BalanceKey::default_currency(*id)]))
            .collect()
    };
    let move_accounts = prepared.get(
        client,
        "UPDATE accounts a SET balance = u.balance, pending_in = u.pending_in, pending_out = u.pending_out
           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])
                AS u(id, balance, pending_in, pending_out)
          WHERE a.id = u.id",
    )?;
    client.execute(
        &move_accounts,
        &[
            &users,
            &column(|a| a.balance),
            &column(|a| a.pending_in),
            &column(|a| a.pending_out),
        ],
    )?;
    // Numbered once every account it touches is locked: of two batches that
    // share an account, the one that locked it first has the smaller
    // number, so (settle_batch, tx_id) is the order each account saw its
    // decisions.
    let draw = prepared.get(
        client,
        &format!("SELECT nextval('settle_batches'), {NOW_MS}"),
    )?;
    let stamp = client.query_one(&draw, &[])?;
    let (batch, now): (i64, i64) = (stamp.get(0), stamp.get(1));
    let mark = prepared.get(
        client,
        "UPDATE transfers t
            SET status = u.status, reason = u.reason, settled_at = $6, settle_batch = $7,
                src_balance = u.src_balance, dst_balance = u.dst_balance
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
                AS u(tx_id, status, reason, src_balance, dst_balance)
          WHERE t.tx_id = u.tx_id AND t.status = 'PENDING'",
    )?;
    let marked = client.execute(
        &mark,
        &[
            &decided.tx_ids,
            &decided.statuses,
            &decided.reasons,
            &decided.src_balances,
            &decided.dst_balances,
            &now,
            &batch,
        ],
    )?;
    if marked != due.len() as u64 {
        return Err(WalletError::internal(anyhow::anyhow!(
            "{marked} transfers decided where {} were claimed",
            due.len()
        ))
        .into());
    }
    // Every claimed row was decided, so the decisions recorded are the
    // claim's, in the order it holds them.
    let record = prepared.get(client, &events::decisions_recorded())?;
    client.execute(&record, &[&decided.tx_ids, &now])?;
    let outside = BalanceKey::default_currency(EXTERNAL_ACCOUNT);
    let outside_delta = |f: fn(&Account) -> i64| f(&accounts[&outside]) - f(&before[&outside]);
    if due
        .iter()
        .any(|d| d.src == EXTERNAL_ACCOUNT || d.dst == EXTERNAL_ACCOUNT)
    {
        let move_external = prepared.get(
            client,
            "UPDATE accounts SET balance = balance + $1, pending_in = pending_in + $2,
                    pending_out = pending_out + $3 WHERE id = 0",
        )?;
        client.execute(
            &move_external,
            &[
                &outside_delta(|a| a.balance),
                &outside_delta(|a| a.pending_in),
                &outside_delta(|a| a.pending_out),
            ],
        )?;
    }
    if !others.is_empty() {
        let users_others: Vec<&BalanceKey> = others
            .iter()
            .filter(|k| k.account != EXTERNAL_ACCOUNT)
            .collect();
        let figure = |f: fn(&Account) -> i64| -> Vec<i64> {
            users_others.iter().map(|k| f(&accounts[*k])).collect()
        };
        let move_balances = prepared.get(
            client,
            "UPDATE balances b SET balance = u.balance, pending_in = u.pending_in,
                                   pending_out = u.pending_out
               FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::bigint[], $5::bigint[])
                    AS u(account, currency, balance, pending_in, pending_out)
              WHERE b.account = u.account AND b.currency = u.currency",
        )?;
        client.execute(
            &move_balances,
            &[
                &users_others.iter().map(|k| k.account).collect::<Vec<i64>>(),
                &users_others
                    .iter()
                    .map(|k| k.currency.0)
                    .collect::<Vec<i16>>(),
                &figure(|a| a.balance),
                &figure(|a| a.pending_in),
                &figure(|a| a.pending_out),
            ],
        )?;
        // The external account's rows last, in currency order, by deltas.
        for (key, then) in others_before
            .iter()
            .collect::<std::collections::BTreeMap<_, _>>()
        {
            let now_ = &accounts[key];
            client.execute(
                "UPDATE balances SET balance = balance + $3, pending_in = pending_in + $4,
                        pending_out = pending_out + $5 WHERE account = $1 AND currency = $2",
                &[
                    &key.account,
                    &key.currency.0,
                    &(now_.balance - then.balance),
                    &(now_.pending_in - then.pending_in),
                    &(now_.pending_out - then.pending_out),
                ],
            )?;
        }
    }
    let (first, last) = (due[0].tx_id, due[due.len() - 1].tx_id);
    commit(
        client,
        guard,
        &format!("the settlement of transfers {first}–{last}"),
        "`wallet settle` again is safe: it applies each transfer once",
    )?;
    Ok(BatchCounts { drained, ..counts })
}

/// Each user account that pays in `due` (in `tx_id` order, so the last
/// row of a source is its last), with the last `tx_id` it pays.
fn sources_claimed(due: &[Due]) -> (Vec<i64>, Vec<i64>) {
    let last_of: HashMap<i64, i64> = due
        .iter()
        .filter(|d| d.src != EXTERNAL_ACCOUNT)
        .map(|d| (d.src, d.tx_id))
        .collect();
    last_of.into_iter().unzip()
}

/// The lanes a batch asks for, in order of each lane's oldest waiting
/// transfer, and how many of them the oldest `max` span.
struct Candidates {
    lanes: Vec<i32>,
    spanned: i64,
}

/// Each waiting row's lane and, right after it, the lane of its partner
/// leg, so that a batch asks for both lanes of a pair together: SKIP LOCKED
/// never waits, so asking for both at once deadlocks no one, and a worker
/// that holds one lane of a pair usually holds the other.
fn candidate_lanes(window: &[Waiting], max: i64) -> Candidates {
    let partner_lane: std::collections::HashMap<i64, i32> =
        if window.iter().any(|w| w.pair.is_some()) {
            window.iter().map(|w| (w.tx_id, w.lane)).collect()
        } else {
            std::collections::HashMap::new()
        };
    let mut lanes: Vec<i32> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut spanned = 0;
    for (i, w) in window.iter().enumerate() {
        if seen.insert(w.lane) {
            lanes.push(w.lane);
        }
        if let Some(lane) = w.pair.and_then(|pair| partner_lane.get(&pair))
            && seen.insert(*lane)
        {
            lanes.push(*lane);
        }
        if i as i64 + 1 == max.min(window.len() as i64) {
            spanned = lanes.len() as i64;
        }
    }
    Candidates { lanes, spanned }
}

/// The decisions of a batch, column by column, as the update binds them.
struct Decided {
    tx_ids: Vec<i64>,
    statuses: Vec<&'static str>,
    reasons: Vec<Option<&'static str>>,
    src_balances: Vec<Option<i64>>,
    dst_balances: Vec<Option<i64>>,
}

impl Decided {
    fn with_capacity(n: usize) -> Self {
        Self {
            tx_ids: Vec::with_capacity(n),
            statuses: Vec::with_capacity(n),
            reasons: Vec::with_capacity(n),
            src_balances: Vec::with_capacity(n),
            dst_balances: Vec::with_capacity(n),
        }
    }

    fn push(
        &mut self,
        tx_id: i64,
        status: Status,
        reason: Option<&'static str>,
        src_balance: Option<i64>,
        dst_balance: Option<i64>,
    ) {
        self.tx_ids.push(tx_id);
        self.statuses.push(status.as_str());
        self.reasons.push(reason);
        self.src_balances.push(src_balance);
        self.dst_balances.push(dst_balance);
    }
}
