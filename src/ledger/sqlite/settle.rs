//! Settlement: applying PENDING transfers oldest first, each exactly once,
//! a batch per transaction, decided by [`rules::settle::settle_due`] over
//! the accounts this engine reads for it and keeps between batches.

use rusqlite::{CachedStatement, Connection, OptionalExtension, Transaction, params};

use super::CommitWatch;
use super::columns;
use super::error::{SqlResult, commit};
use super::queue_mark;
use super::slots;
use crate::error::WalletError;
use crate::ledger::clock;
use crate::ledger::events::EventKind;
use crate::ledger::model::{BalanceKey, BatchCounts, EXTERNAL_ACCOUNT};
use crate::ledger::rules;
use crate::ledger::rules::claim;
use crate::ledger::rules::settle::{Account, Due, Original, Outcome};
use crate::money::{Currencies, CurrencyId};
use rustc_hash::FxHashMap as FastMap;
use std::collections::hash_map::Entry;

pub(super) fn pending_count(conn: &Connection) -> SqlResult<u64> {
    let count: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM ({})",
            queue_mark::queue_sql("tx_id", "")
        ),
        [queue_mark::read(conn)?],
        |row| row.get(0),
    )?;
    Ok(count as u64)
}

/// What settlement carries from batch to batch: the accounts it has read,
/// their policies included (valid while no other connection commits: a
/// policy change takes the write lock and commits like any other write,
/// and this store's own writes clear the cache), and reused buffers.
#[derive(Default)]
pub(super) struct SettleCache {
    accounts: FastMap<BalanceKey, Account>,
    due: Vec<Due>,
    /// The transfers the batch's refunds pay back, read for it.
    originals: FastMap<i64, Original>,
    /// (account, tx_id, balance after) of the batch's postings, sorted
    /// before they go in.
    postings: Vec<Posting>,
    /// Each due transfer's outcome, in the order of `due`.
    outcomes: Vec<Outcome>,
    /// (balance, reservation given back) of the holds that expired.
    released: Vec<(BalanceKey, i64)>,
    /// Whether another connection committed since the last batch began.
    commits: CommitWatch,
}

impl SettleCache {
    /// Forgets the accounts if another connection committed since the last
    /// batch: a queue or cancel there moved their pending sums.
    fn revalidate(&mut self, tx: &Transaction<'_>) -> SqlResult<()> {
        if self.commits.others_committed(tx)? {
            self.accounts.clear();
        }
        Ok(())
    }
}

/// Settles up to `max` of the oldest PENDING transfers in one transaction.
/// A batch that does not commit leaves the cache empty, since its figures
/// in memory were never written.
pub(super) fn settle_batch(
    conn: &mut Connection,
    max: u64,
    cache: &mut SettleCache,
    currencies: &Currencies,
) -> SqlResult<BatchCounts> {
    let outcome = settle_batch_in_one_transaction(conn, max, cache, currencies);
    if outcome.is_err() {
        *cache = SettleCache::default();
    }
    outcome
}

/// Failures are marked one by one; then every transfer of the batch still
/// PENDING is completed by one statement over its `tx_id` range. That range
/// holds no PENDING transfer outside the batch, because the batch is the
/// oldest `max` of them and the write lock keeps new ones out.
fn settle_batch_in_one_transaction(
    conn: &mut Connection,
    max: u64,
    cache: &mut SettleCache,
    currencies: &Currencies,
) -> SqlResult<BatchCounts> {
    let tx = super::guard::begin_write(conn)?;
    cache.revalidate(&tx)?;
    let previous: Option<i64> = tx
        .prepare_cached("SELECT settled_at FROM settle_log ORDER BY batch DESC LIMIT 1")?
        .query_row([], |row| row.get(0))
        .optional()?;
    let now = rules::settle::batch_instant(clock::now_ms(), previous);
    let expired = expire_holds(&tx, now, cache)?;
    let mark = queue_mark::read(&tx)?;
    cache.due.clear();
    {
        // One row past the cap: if the cap falls between an exchange's
        // legs, the second comes too.
        let mut stmt = tx.prepare_cached(&queue_mark::queue_sql(
            "tx_id, src, dst, amount, refund_of, currency, pair_tx_id",
            " ORDER BY tx_id LIMIT ?2",
        ))?;
        let mut rows = stmt.query([
            mark,
            i64::try_from(max).unwrap_or(i64::MAX).saturating_add(1),
        ])?;
        while let Some(row) = rows.next()? {
            cache.due.push(Due {
                tx_id: columns::int(row, 0)?,
                src: columns::int(row, 1)?,
                dst: columns::int(row, 2)?,
                amount: columns::int(row, 3)?,
                currency: CurrencyId(columns::small(row, 5)?),
                refund_of: columns::int_or_null(row, 4)?,
                pair: columns::int_or_null(row, 6)?,
            });
        }
    }
    let read = cache.due.len();
    let claimed = claimed(&cache.due, max)?;
    cache.due.truncate(claimed);
    let drained = read as u64 <= max && claimed == read;
    let (Some(first), Some(last)) = (cache.due.first(), cache.due.last()) else {
        // Nothing PENDING (the window was empty, not cut to nothing by the
        // cap): rows past the mark (cancelled transfers, holds) need not be
        // walked again.
        let moved = read == 0 && queue_mark::past_everything(&tx)?;
        if expired > 0 || moved {
            commit(
                tx,
                &if expired > 0 {
                    format!("the expiry of {expired} holds")
                } else {
                    "the queue's mark".to_string()
                },
                "`wallet settle` again marks any that are left",
            )?;
        }
        return Ok(BatchCounts {
            drained: true,
            expired,
            ..BatchCounts::default()
        });
    };
    let (first, last) = (first.tx_id, last.tx_id);
    if cache.accounts.is_empty() {
        // Figures about to be read into memory and paid out from: a sum
        // over the accounts costs a fraction of the batch, and stops
        // damage (a balance raised by hand) from being carried forward.
        check_books(&tx, currencies)?;
    }
    {
        // Every account and refunded transfer the batch names, read before
        // the rules decide it: the accounts once while the cache stays fresh.
        let mut load = tx.prepare_cached(
            "SELECT balance, pending_in, pending_out, held, overdraft, frozen
             FROM accounts WHERE id = ?1",
        )?;
        cache.originals.clear();
        for d in &cache.due {
            load_account(&tx, &mut cache.accounts, &mut load, d.src_key())?;
            load_account(&tx, &mut cache.accounts, &mut load, d.dst_key())?;
            if let Some(original) = d.refund_of
                && let Entry::Vacant(slot) = cache.originals.entry(original)
            {
                slot.insert(refunded_so_far(&tx, original)?);
            }
        }
    }
    let counts = rules::settle::settle_due(
        &cache.due,
        &mut cache.accounts,
        &mut cache.originals,
        &mut cache.outcomes,
    )?;
    let counts = BatchCounts { expired, ..counts };
    // Recorded while the batch is still PENDING: its range holds no other
    // PENDING transfer, so one walk of it finds exactly the batch; and a
    // range as long as the batch holds nothing else at all.
    let dense = u64::try_from(last - first + 1).ok() == u64::try_from(cache.due.len()).ok();
    let recorded = super::events::record_decided_range(&tx, (first, last), dense)?;
    if recorded != cache.due.len() {
        return Err(WalletError::internal(anyhow::anyhow!(
            "{recorded} decisions recorded where {} were due",
            cache.due.len()
        ))
        .into());
    }
    {
        let mut mark_failed = tx.prepare_cached(
            "UPDATE transfers SET status = 'FAILED', reason = ?2, settled_at = ?3
             WHERE tx_id = ?1 AND status = 'PENDING'",
        )?;
        for (d, outcome) in cache.due.iter().zip(&cache.outcomes) {
            if let Some(reason) = outcome.reason()
                && mark_failed.execute(params![d.tx_id, reason.as_str(), now])? != 1
            {
                return Err(stopped_pending(d.tx_id).into());
            }
        }
    }
    let marked = tx
        .prepare_cached(
            // A walk along the rowid range updates in one pass; through an
            // index of PENDING rows (the captured holds') SQLite would first
            // collect the rowids, since the update moves rows out of it.
            "UPDATE transfers NOT INDEXED SET status = 'COMPLETED', settled_at = ?1
             WHERE tx_id BETWEEN ?2 AND ?3 AND status = 'PENDING'",
        )?
        .execute(params![now, first, last])?;
    if marked as u64 != counts.completed {
        return Err(WalletError::internal(anyhow::anyhow!(
            "{marked} transfers completed where {} were due",
            counts.completed
        ))
        .into());
    }
    post(
        &tx,
        cache.due.iter().zip(&cache.outcomes).map(|(due, outcome)| {
            let (src_after, dst_after) = outcome.balances_after(due);
            (due.tx_id, due.src, src_after, due.dst, dst_after)
        }),
        &mut cache.postings,
    )?;
    log_batch(&tx, now, &cache.due, &cache.outcomes)?;
    if drained {
        queue_mark::past_everything(&tx)?;
    } else {
        queue_mark::passed(&tx, mark, last)?;
    }
    {
        let mut write = tx.prepare_cached(
            "UPDATE accounts SET balance = ?2, pending_in = ?3, pending_out = ?4 WHERE id = ?1",
        )?;
        for (key, account) in cache.accounts.iter_mut().filter(|(_, a)| a.dirty) {
            if slots::in_accounts(*key) {
                write.execute(params![
                    key.account,
                    account.balance,
                    account.pending_in,
                    account.pending_out
                ])?;
            } else {
                slots::execute(
                    &tx,
                    *key,
                    "",
                    "UPDATE balances SET balance = ?2, pending_in = ?3, pending_out = ?4
                     WHERE account = ?1 AND currency = ?5",
                    &[&account.balance, &account.pending_in, &account.pending_out],
                )?;
            }
            account.dirty = false;
        }
    }
    commit(
        tx,
        &format!("the settlement of transfers {first}–{last}"),
        "`wallet settle` again is safe: it applies each transfer once",
    )?;
    // The batch is the oldest PENDING transfers under the write lock, up to
    // `max` and one more to keep a pair whole: it drained the queue if it
    // took every row it read and there was no row past the cap.
    Ok(BatchCounts { drained, ..counts })
}

/// How many of the oldest PENDING transfers, `window` (read one past the
/// cap), the batch takes: `rules::claim` on one lane, which on a file is a
/// prefix of the window, since an exchange's legs take consecutive ids.
fn claimed(window: &[Due], max: u64) -> SqlResult<usize> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if !window.iter().any(|d| d.pair.is_some()) {
        return Ok(window.len().min(max));
    }
    let waiting: Vec<claim::Waiting> = window
        .iter()
        .map(|d| claim::Waiting {
            tx_id: d.tx_id,
            lane: 0,
            pair: d.pair,
        })
        .collect();
    let taken = claim::claim(&waiting, |_| true, max);
    let prefix = taken
        .iter()
        .zip(window)
        .all(|(taken, due)| *taken == due.tx_id);
    match window.first() {
        Some(head) if taken.is_empty() => Err(WalletError::Integrity(format!(
            "exchange leg {} waits without its pair; run `wallet verify`",
            head.tx_id
        ))
        .into()),
        _ if !prefix => Err(WalletError::internal(anyhow::anyhow!(
            "a settle batch on a ledger file claimed transfers out of order"
        ))
        .into()),
        _ => Ok(taken.len()),
    }
}

/// Postings inserted by one statement.
const POSTINGS_PER_STATEMENT: usize = 64;

/// (account, tx_id, the account's balance right after, if it was applied).
pub(super) type Posting = (i64, i64, Option<i64>);

/// A hold is posted when placed; when it is decided, its postings gain
/// their balance instead of going in again.
fn postings_sql(rows: usize) -> String {
    let values = vec!["(?, ?, ?)"; rows].join(", ");
    format!(
        "INSERT INTO postings (account, tx_id, balance_after) VALUES {values}
         ON CONFLICT (account, tx_id) DO UPDATE SET balance_after = excluded.balance_after"
    )
}

/// Enters transfers in their users' histories: a row per user side (the
/// external account keeps none) with that user's balance right after the
/// transfer was applied (none if it was not), inserted in (account, tx_id)
/// order so that each account's entries go in at one place of the index,
/// after its older ones.
pub(super) fn post(
    tx: &Transaction<'_>,
    decided: impl Iterator<Item = (i64, i64, Option<i64>, i64, Option<i64>)>,
    buffer: &mut Vec<Posting>,
) -> SqlResult<()> {
    buffer.clear();
    for (tx_id, src, src_after, dst, dst_after) in decided {
        for (account, after) in [(src, src_after), (dst, dst_after)] {
            if account != EXTERNAL_ACCOUNT {
                buffer.push((account, tx_id, after));
            }
        }
    }
    // (account, tx_id) is unique: the balance never decides the order.
    buffer.sort_unstable_by_key(|&(account, tx_id, _)| (account, tx_id));
    // Many rows a statement: each execution of a statement costs about as
    // much as the row it inserts.
    let mut rows = buffer.chunks_exact(POSTINGS_PER_STATEMENT);
    if rows.len() > 0 {
        let mut insert = tx.prepare_cached(&postings_sql(POSTINGS_PER_STATEMENT))?;
        for chunk in rows.by_ref() {
            let values: Vec<&dyn rusqlite::ToSql> = chunk
                .iter()
                .flat_map(|(account, tx_id, after)| [account as &dyn rusqlite::ToSql, tx_id, after])
                .collect();
            insert.execute(values.as_slice())?;
        }
    }
    let mut insert = tx.prepare_cached(&postings_sql(1))?;
    for (account, tx_id, after) in rows.remainder() {
        insert.execute(params![account, tx_id, after])?;
    }
    Ok(())
}

/// Records the batch in `settle_log`, and in `late_applied` the user sides
/// of any transfer it applied after a larger `tx_id` had been decided (a
/// hold captured late): what `get-user --at` needs to place an instant.
fn log_batch(tx: &Transaction<'_>, now: i64, due: &[Due], outcomes: &[Outcome]) -> SqlResult<()> {
    let (batch, before): (i64, i64) = tx
        .prepare_cached(
            "SELECT coalesce(max(batch), 0) + 1,
                    coalesce((SELECT max_tx FROM settle_log ORDER BY batch DESC LIMIT 1), 0)
             FROM settle_log",
        )?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let last = due.last().map_or(0, |d| d.tx_id);
    tx.prepare_cached("INSERT INTO settle_log (batch, settled_at, max_tx) VALUES (?1, ?2, ?3)")?
        .execute(params![batch, now, before.max(last)])?;
    // Due transfers come in `tx_id` order: the late ones lead.
    let mut late = tx.prepare_cached(
        "INSERT OR REPLACE INTO late_applied (account, tx_id, batch) VALUES (?1, ?2, ?3)",
    )?;
    for (d, outcome) in due
        .iter()
        .zip(outcomes)
        .take_while(|(d, _)| d.tx_id < before)
    {
        if outcome.reason().is_some() {
            continue;
        }
        for account in [d.src, d.dst] {
            if account != EXTERNAL_ACCOUNT {
                late.execute(params![account, d.tx_id, batch])?;
            }
        }
    }
    Ok(())
}

/// Marks every hold past its expiry EXPIRED and gives its reservation
/// back; returns how many. Readers already leave such holds out.
fn expire_holds(tx: &Transaction<'_>, now: i64, cache: &mut SettleCache) -> SqlResult<u64> {
    let count = {
        let mut stmt = tx.prepare_cached(&format!(
            "UPDATE transfers SET status = 'EXPIRED', settled_at = ?1
             WHERE tx_id IN (SELECT tx_id FROM transfers INDEXED BY transfers_held_by_expiry
                             WHERE {})
             RETURNING tx_id, src, hold_amount, currency",
            rules::past_expiry_sql("", "?1")
        ))?;
        let mut found = stmt
            .query_map([now], |row| {
                Ok((
                    row.get(0)?,
                    BalanceKey::new(row.get(1)?, CurrencyId(row.get(3)?)),
                    row.get(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<(i64, BalanceKey, i64)>>>()?;
        found.sort_unstable();
        super::events::record(tx, EventKind::HoldExpired, now, found.iter().map(|f| f.0))?;
        rules::settle::expire_holds(
            found.into_iter().map(|(_, src, amount)| (src, amount)),
            &mut cache.released,
        )
    };
    for &(key, amount) in &cache.released {
        slots::execute(
            tx,
            key,
            "UPDATE accounts SET held = held - ?2 WHERE id = ?1",
            "UPDATE balances SET held = held - ?2 WHERE account = ?1 AND currency = ?3",
            &[&amount],
        )?;
    }
    rules::settle::release_holds(&cache.released, &mut cache.accounts)?;
    Ok(count)
}

/// A transfer's amount and the sum of its refunds completed so far.
fn refunded_so_far(tx: &Transaction<'_>, original: i64) -> SqlResult<Original> {
    let (amount, refunded) = tx
        .prepare_cached(&format!(
            "SELECT o.amount, (SELECT coalesce(sum(r.amount), 0) FROM transfers r
                                INDEXED BY transfers_by_refund_of
                                WHERE r.refund_of = o.tx_id AND r.status IN ({}))
             FROM transfers o WHERE o.tx_id = ?1",
            rules::refund_paid_statuses_sql()
        ))?
        .query_row([original], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(Original { amount, refunded })
}

/// The invariants of the accounts table as a whole that a write must not
/// build on when broken: balances sum to zero, and what is pending out of
/// accounts is what is pending into them.
fn check_books(tx: &Transaction<'_>, currencies: &Currencies) -> SqlResult<()> {
    let (balances, pending_in, pending_out): (i128, i128, i128) = {
        let mut stmt =
            tx.prepare_cached("SELECT balance, pending_in, pending_out FROM accounts")?;
        let mut rows = stmt.query([])?;
        let mut sums = (0i128, 0i128, 0i128);
        while let Some(row) = rows.next()? {
            sums.0 += i128::from(row.get::<_, i64>(0)?);
            sums.1 += i128::from(row.get::<_, i64>(1)?);
            sums.2 += i128::from(row.get::<_, i64>(2)?);
        }
        sums
    };
    rules::check_account_sums(
        balances,
        pending_in,
        pending_out,
        currencies.default_currency(),
    )?;
    // Every other currency sums to zero on its own.
    let mut stmt = tx.prepare_cached(
        "SELECT currency, sum(balance), sum(pending_in), sum(pending_out) FROM balances
         GROUP BY currency ORDER BY currency",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id = CurrencyId(row.get(0)?);
        let (balances, pending_in, pending_out): (i64, i64, i64) =
            (row.get(1)?, row.get(2)?, row.get(3)?);
        let Some(currency) = currencies.get(id) else {
            return Err(WalletError::Integrity(format!(
                "balances name currency {}, which the ledger does not have; run `wallet verify`",
                id.0
            ))
            .into());
        };
        rules::check_account_sums(
            balances.into(),
            pending_in.into(),
            pending_out.into(),
            currency,
        )?;
    }
    Ok(())
}

fn stopped_pending(tx_id: i64) -> WalletError {
    WalletError::internal(anyhow::anyhow!(
        "transfer {tx_id} stopped being PENDING under the write lock"
    ))
}

/// Reads a balance's figures from the file the first time a batch needs
/// them: the default currency's from `accounts`, another's from its
/// `balances` row (made at zero if missing, so a source with nothing in it
/// fails for want of funds), frozen always from the account.
fn load_account(
    tx: &Transaction<'_>,
    accounts: &mut FastMap<BalanceKey, Account>,
    load: &mut CachedStatement<'_>,
    key: BalanceKey,
) -> SqlResult<()> {
    if let Entry::Vacant(slot) = accounts.entry(key) {
        let read = |row: &rusqlite::Row<'_>| {
            Ok(Account::read(
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        };
        let account = if slots::in_accounts(key) {
            load.query_row([key.account], read)?
        } else {
            // The line that queued a transfer made both its balances' rows
            // when it reserved on them; one missing now is damage.
            // `frozen` by a subquery: a join on the account would have
            // SQLite plan the statement again for every account bound.
            tx.prepare_cached(
                "SELECT balance, pending_in, pending_out, held, overdraft,
                        (SELECT frozen FROM accounts WHERE id = ?1)
                 FROM balances WHERE account = ?1 AND currency = ?2",
            )?
            .query_row(params![key.account, key.currency], read)
            .optional()?
            .ok_or_else(|| {
                WalletError::Integrity(format!(
                    "a PENDING transfer moves account {}'s balance in currency {}, which has no row; run `wallet verify`",
                    key.account, key.currency.0
                ))
            })?
        };
        slot.insert(account);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ledger::model::TxId;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::domain::{Email, UserName};
    use crate::error::Result;
    use crate::ledger::{
        BatchLine, BatchOptions, BatchSink, Ledger, Location, NewTransfer, OpenOptions, Queued,
        SettleOptions, SettleSummary,
    };
    use crate::money::{Amount, Currency};
    use proptest::prelude::*;
    use tempfile::TempDir;

    /// Every figure settlement decides: balances and pending sums of all
    /// accounts, and each transfer's status and reason.
    type Snapshot = (
        Vec<(i64, i64, i64, i64)>,
        Vec<(i64, String, Option<String>)>,
    );

    fn raw(dir: &TempDir) -> rusqlite::Connection {
        rusqlite::Connection::open(dir.path().join("wallet.db")).unwrap()
    }

    fn snapshot(dir: &TempDir) -> Snapshot {
        let conn = raw(dir);
        let mut accounts = conn
            .prepare("SELECT id, balance, pending_in, pending_out FROM accounts ORDER BY id")
            .unwrap();
        let accounts = accounts
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut transfers = conn
            .prepare("SELECT tx_id, status, reason FROM transfers ORDER BY tx_id")
            .unwrap();
        let transfers = transfers
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        (accounts, transfers)
    }

    /// A ledger in a temp dir with `users` users and the transfers of
    /// `workload` queued: (src, dst, amount) with 0 meaning the outside world.
    fn ledger_with(dir: &TempDir, users: usize, workload: &[(usize, usize, i64)]) -> Ledger {
        let location = Location::File(dir.path().join("wallet.db"));
        Ledger::create(&location, &Currency::default(), &OpenOptions::default()).unwrap();
        let mut ledger = Ledger::open(&location, &OpenOptions::default()).unwrap();
        for i in 1..=users {
            let name = UserName::parse(&format!("u{i}")).unwrap();
            let email = Email::parse(&format!("u{i}@example.com")).unwrap();
            ledger.create_user(&name, &email, 0).unwrap();
        }
        let side = |i: usize| (i > 0).then(|| UserName::parse(&format!("u{i}")).unwrap());
        let lines = workload
            .iter()
            .filter(|(src, dst, _)| src != dst)
            .enumerate()
            .map(|(i, &(src, dst, amount))| {
                Ok(BatchLine {
                    line: i as u64 + 1,
                    transfer: NewTransfer::new(
                        side(src),
                        side(dst),
                        Amount::from_minor_units(amount).unwrap(),
                        None,
                        None,
                    ),
                })
            });
        let summary = ledger
            .queue_batch(lines, &BatchOptions::default(), &mut Discard)
            .unwrap();
        assert_eq!(summary.failed, 0);
        ledger
    }

    struct Discard;

    impl BatchSink for Discard {
        fn record(&mut self, _: u64, _: Result<Queued>) -> Result<()> {
            Ok(())
        }

        fn committed(&mut self) -> Result<()> {
            Ok(())
        }
    }

    fn settle_all(ledger: &mut Ledger, batch_size: usize) -> SettleSummary {
        let options = SettleOptions {
            batch_size,
            ..SettleOptions::default()
        };
        ledger.settle(&options, |_| {}).unwrap()
    }

    fn workload() -> impl Strategy<Value = (usize, Vec<(usize, usize, i64)>)> {
        (2usize..6).prop_flat_map(|users| {
            let transfer = (0..=users, 0..=users, 1i64..500);
            (Just(users), prop::collection::vec(transfer, 1..80))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn batches_settle_exactly_as_one_at_a_time(
            (users, transfers) in workload(),
            batch_size in 2usize..40,
        ) {
            let (one_dir, batch_dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
            let mut one = ledger_with(&one_dir, users, &transfers);
            let mut batched = ledger_with(&batch_dir, users, &transfers);
            let by_one = settle_all(&mut one, 1);
            let by_batch = settle_all(&mut batched, batch_size);
            prop_assert_eq!(by_one, by_batch);
            prop_assert_eq!(by_batch.remaining, Some(0));
            let (accounts, statuses) = snapshot(&batch_dir);
            prop_assert_eq!(snapshot(&one_dir), (accounts.clone(), statuses));
            prop_assert_eq!(accounts.iter().map(|a| a.1).sum::<i64>(), 0, "money is conserved");
            prop_assert!(accounts.iter().skip(1).all(|a| a.1 >= 0 && a.2 == 0 && a.3 == 0));
        }
    }

    #[test]
    fn an_overdraft_fails_even_when_a_later_transfer_in_the_batch_refills() {
        let dir = TempDir::new().unwrap();
        // u1 pays 100 to u2 before the deposit that would cover it arrives.
        let mut ledger = ledger_with(&dir, 2, &[(1, 2, 100), (0, 1, 100), (1, 2, 100)]);
        let summary = settle_all(&mut ledger, 100);
        assert_eq!((summary.completed, summary.failed), (2, 1));
        let (accounts, transfers) = snapshot(&dir);
        assert_eq!(transfers[0].1, "FAILED");
        assert_eq!(
            transfers[0].2.as_deref(),
            Some(crate::ledger::model::FailReason::InsufficientFunds.as_str())
        );
        assert_eq!(transfers[2].1, "COMPLETED");
        assert_eq!((accounts[1].1, accounts[2].1), (0, 100));
    }

    #[test]
    fn a_write_by_another_connection_between_batches_is_seen() {
        let dir = TempDir::new().unwrap();
        let workload: Vec<_> = (0..10).map(|_| (0, 1, 10)).collect();
        let mut ledger = ledger_with(&dir, 2, &workload);
        let mut other = Ledger::open(
            &Location::File(dir.path().join("wallet.db")),
            &OpenOptions::default(),
        )
        .unwrap();
        let options = SettleOptions {
            batch_size: 3,
            ..SettleOptions::default()
        };
        let mut cancelled = false;
        let summary = ledger
            .settle(&options, |_| {
                if !cancelled {
                    // Between batches: cancel the last transfer, which moves u1's pending_in.
                    other.cancel(TxId::new(10)).unwrap();
                    cancelled = true;
                }
            })
            .unwrap();
        assert_eq!(summary.processed, 9);
        let (accounts, transfers) = snapshot(&dir);
        assert_eq!(
            accounts[1],
            (1, 90, 0, 0),
            "u1: settled 90, nothing pending"
        );
        assert_eq!(transfers[9].1, "CANCELLED");
    }

    /// A policy changes through the write lock like any other write, so
    /// the accounts kept between batches are read again after it.
    #[test]
    fn a_policy_changed_between_batches_decides_the_next_batch() {
        let dir = TempDir::new().unwrap();
        // u1 gets 100, then pays u2 10 three times, a batch each.
        let mut ledger = ledger_with(&dir, 2, &[(0, 1, 100), (1, 2, 10), (1, 2, 10), (1, 2, 10)]);
        let options = SettleOptions {
            batch_size: 2,
            ..SettleOptions::default()
        };
        let mut batches = 0;
        ledger
            .settle(&options, |_| {
                batches += 1;
                if batches == 1 {
                    raw(&dir)
                        .execute("UPDATE accounts SET frozen = 1 WHERE id = 1", [])
                        .unwrap();
                }
            })
            .unwrap();
        let (accounts, transfers) = snapshot(&dir);
        let statuses: Vec<(&str, Option<&str>)> = transfers
            .iter()
            .map(|t| (t.1.as_str(), t.2.as_deref()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("COMPLETED", None),
                ("COMPLETED", None),
                ("FAILED", Some("account_frozen")),
                ("FAILED", Some("account_frozen")),
            ]
        );
        assert_eq!((accounts[1].1, accounts[2].1), (90, 10));
    }

    #[test]
    fn the_schema_checks_hold_after_settling() {
        let dir = TempDir::new().unwrap();
        let mut ledger = ledger_with(&dir, 2, &[(0, 1, 10), (1, 2, 50)]);
        settle_all(&mut ledger, 10);
        for sql in [
            // A balance may go below zero down to its overdraft limit,
            // which `verify` checks against the limit in force; a limit
            // itself never goes below zero.
            "UPDATE accounts SET overdraft = -1 WHERE id = 1",
            "UPDATE accounts SET frozen = 2 WHERE id = 1",
            "UPDATE transfers SET status = 'LOST' WHERE tx_id = 1",
            "UPDATE transfers SET reason = NULL WHERE tx_id = 2",
        ] {
            let err = raw(&dir).execute(sql, []).unwrap_err();
            assert!(err.to_string().contains("CHECK"), "{sql}: {err}");
        }
    }

    #[test]
    fn a_stop_flag_ends_settle_after_the_batch_in_hand() {
        let dir = TempDir::new().unwrap();
        let workload: Vec<_> = (0..10).map(|_| (0, 1, 10)).collect();
        let mut ledger = ledger_with(&dir, 2, &workload);
        let stop = Arc::new(AtomicBool::new(false));
        let options = SettleOptions {
            batch_size: 4,
            stop: Some(Arc::clone(&stop)),
            ..SettleOptions::default()
        };
        let summary = ledger
            .settle(&options, |_| stop.store(true, Ordering::Relaxed))
            .unwrap();
        assert_eq!((summary.processed, summary.remaining), (4, Some(6)));
    }
}
