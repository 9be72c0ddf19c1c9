//! A chunk's plan: the lines of a batch decided in input order, once for
//! every engine, over what the engine read for them.
//!
//! The engine lends a [`ChunkFacts`]: user names to accounts, the stored
//! transfers holding the keys the lines use, each balance's pending sums
//! (which the plan moves as it reserves), a hold's source figures and a
//! refund's original. Figures are asked for by [`BalanceKey`]: a line
//! reserves in its accounts' balances of its own currency. [`plan_chunk`] decides each line after the ones
//! before it (its parties, its key, its reservation, the hold and refund
//! checks) and returns what each line became and the rows to write, in
//! input order, so that ids drawn in that order follow the lines.

use rustc_hash::FxHashMap;

use super::{
    Pinned, StoredAs, check_expiry, check_hold, check_open, check_refund, replay_or_conflict,
    stored_status,
};
use crate::domain::{IdempotencyKey, UserName};
use crate::error::{Result, WalletError};
use crate::ledger::model::{
    BalanceKey, BatchLine, EXTERNAL_ACCOUNT, Kind, Leg, NewTransfer, Queued, Status,
};
use crate::ledger::model::{Instant, TxId};
use crate::money::{Currencies, CurrencyId};

/// A balance's pending sums as the chunk has left them so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PendingSums {
    pub out: i64,
    pub r#in: i64,
}

/// What a hold is checked against besides `pending_out`: the source's
/// balance and what its live holds reserve (holds past their expiry
/// already given back), and its policy in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HoldFigures {
    pub balance: i64,
    pub held: i64,
    pub overdraft: i64,
    pub frozen: bool,
}

/// A user's account as a line names it: its id, and whether it was
/// closed, which refuses the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Named {
    pub id: i64,
    pub closed: bool,
}

/// A transfer stored before the chunk that holds a key a line uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredKey {
    pub tx_id: i64,
    pub src: i64,
    pub dst: i64,
    pub amount: i64,
    pub currency: CurrencyId,
    pub memo: Option<String>,
    /// The status column as stored (a HELD hold may be past its expiry).
    pub status: String,
    pub hold_amount: Option<i64>,
    pub expires_at: Option<i64>,
    pub refund_of: Option<i64>,
    pub created_at: i64,
    /// For an exchange's first leg (the one that holds the key): its second
    /// leg's id, amount and currency.
    pub pair: Option<(i64, i64, CurrencyId)>,
}

impl StoredKey {
    /// What the stored transfer pins.
    pub(crate) fn pinned(&self) -> Pinned<'_> {
        let stored_as = match self.hold_amount {
            Some(amount) => StoredAs::Hold {
                amount,
                placed_at: self.created_at,
                expires_at: self.expires_at,
            },
            None => StoredAs::Transfer {
                refund_of: self.refund_of,
            },
        };
        Pinned::stored(
            self.src,
            self.dst,
            (self.amount, self.currency),
            self.memo.as_deref(),
            stored_as,
        )
        .with_counter(self.pair.map(|(_, amount, currency)| (amount, currency)))
    }

    /// The answer to a request under the same key: a replay of this
    /// transfer (with its status as of `now`) or a conflict.
    pub(crate) fn answer(
        &self,
        key: &IdempotencyKey,
        requested: Pinned<'_>,
        now: i64,
    ) -> Result<Result<Queued>> {
        let status = stored_status(&self.status)?
            .as_of(self.expires_at.map(Instant::new), Instant::new(now));
        Ok(
            replay_or_conflict(key, self.tx_id, status, self.pinned(), requested).map(|queued| {
                Queued {
                    pair_tx_id: self.pair.map(|(pair, _, _)| TxId::new(pair)),
                    ..queued
                }
            }),
        )
    }
}

/// The transfer a refund line pays back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Original {
    pub src: i64,
    pub dst: i64,
    pub amount: i64,
    /// The status column as stored.
    pub status: String,
    pub expires_at: Option<i64>,
    /// Its refunds queued or completed before the chunk.
    pub refunded: i64,
    /// Its pair, if it is an exchange leg (which no refund pays back).
    pub pair: Option<i64>,
}

/// What a chunk is decided over, lent by the engine: read ahead of the
/// plan, or looked up as the plan asks (under a lock that keeps it true
/// for the whole chunk). `Fault` is the engine's own failure.
pub(crate) trait ChunkFacts {
    type Fault: From<WalletError>;
    /// The account of a user name, regardless of ASCII case.
    fn account(&mut self, name: &UserName) -> std::result::Result<Option<Named>, Self::Fault>;
    /// The transfer stored before this chunk that holds `key`. An engine
    /// may answer none without looking if its own unique index then checks
    /// every key the plan's rows take, and it keeps the plan only if each
    /// keyed line became a row or names one (a line refused after this
    /// answer might have been a replay).
    fn stored_key(
        &mut self,
        key: &IdempotencyKey,
    ) -> std::result::Result<Option<StoredKey>, Self::Fault>;
    /// A balance's pending sums, as the chunk has left them.
    fn sums(&mut self, key: BalanceKey) -> std::result::Result<PendingSums, Self::Fault>;
    /// Records a balance's new pending sums.
    fn set_sums(&mut self, key: BalanceKey, sums: PendingSums);
    /// A hold source's balance and held in the hold's currency, as before
    /// the chunk.
    fn hold_figures(&mut self, key: BalanceKey) -> std::result::Result<HoldFigures, Self::Fault>;
    /// The transfer a refund pays back, as before the chunk.
    fn original(&mut self, tx_id: i64) -> std::result::Result<Option<Original>, Self::Fault>;
}

/// What a new row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKind {
    Transfer,
    Hold { expires_at: Option<i64> },
    Refund { original: i64 },
}

/// A transfer the chunk writes, in input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NewRow {
    /// The index, in the chunk, of the line it comes from.
    pub line: usize,
    pub src: i64,
    pub dst: i64,
    pub amount: i64,
    pub currency: CurrencyId,
    pub kind: RowKind,
    /// For an exchange: which leg. An exchange line makes two rows, the
    /// first leg and right after it the second; the engine writes them with
    /// consecutive ids, each naming the other as its pair, and the line's
    /// key on the first alone.
    pub leg: Option<Leg>,
}

/// What a new row moves in its accounts' figures once written: a queued
/// transfer adds to its source's `pending_out` and its destination's
/// `pending_in`; a hold adds to its source's `held` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reserves {
    pub src_out: i64,
    pub dst_in: i64,
    pub src_held: i64,
}

impl NewRow {
    /// What it reserves: the one statement of it, which `plan_chunk` moves
    /// in the facts it keeps and an engine that sums written rows adds up.
    pub(crate) fn reserves(&self) -> Reserves {
        match self.kind {
            RowKind::Hold { .. } => Reserves {
                src_out: 0,
                dst_in: 0,
                src_held: self.amount,
            },
            _ => Reserves {
                src_out: self.amount,
                dst_in: self.amount,
                src_held: 0,
            },
        }
    }

    /// The status it is written with.
    pub(crate) fn status(&self) -> Status {
        match self.kind {
            RowKind::Hold { .. } => Status::Held,
            _ => Status::Pending,
        }
    }

    /// What the row pins once written at `now` with its line's memo.
    pub(crate) fn pinned<'m>(&self, memo: Option<&'m str>, now: i64) -> Pinned<'m> {
        let stored_as = match self.kind {
            RowKind::Hold { expires_at } => StoredAs::Hold {
                amount: self.amount,
                placed_at: now,
                expires_at,
            },
            RowKind::Refund { original } => StoredAs::Transfer {
                refund_of: Some(original),
            },
            RowKind::Transfer => StoredAs::Transfer { refund_of: None },
        };
        Pinned::stored(
            self.src,
            self.dst,
            (self.amount, self.currency),
            memo,
            stored_as,
        )
    }
}

/// What one line became.
#[derive(Debug)]
pub(crate) enum Planned {
    /// Refused when it was read; the engine hands on the line's own error.
    BadLine,
    /// Refused by a rule.
    Refused(WalletError),
    /// Answered by the transfer stored before the chunk under its key.
    Replayed(Queued),
    /// The chunk's new row `n`.
    New(usize),
    /// Its key names the new row `row` of an earlier line: a replay, or a
    /// conflict naming the first field that differs. Its own accounts are
    /// kept to answer it again should the row lose its key.
    SameKeyAs {
        row: usize,
        conflict: Option<&'static str>,
        src: i64,
        dst: i64,
    },
}

/// A chunk decided: one entry per line and the rows to write, both in input
/// order, and the balances whose `held` the chunk's holds raised.
#[derive(Debug, Default)]
pub(crate) struct ChunkPlan {
    pub lines: Vec<Planned>,
    pub rows: Vec<NewRow>,
    /// Each hold source's `held` in the hold's currency after the chunk, in
    /// the order first met.
    pub held: Vec<(BalanceKey, i64)>,
}

impl ChunkPlan {
    /// What row `row` pins once written at `now` with its line's memo; a
    /// first leg pins what its second leg pays back too.
    fn pinned_row<'m>(&self, row: usize, memo: Option<&'m str>, now: i64) -> Pinned<'m> {
        let written = &self.rows[row];
        let pinned = written.pinned(memo, now);
        match written.leg {
            Some(Leg::First) => {
                let second = &self.rows[row + 1];
                pinned.with_counter(Some((second.amount, second.currency)))
            }
            _ => pinned,
        }
    }

    /// How many lines are refused (read badly, refused, or a conflict).
    pub(crate) fn refused(&self) -> usize {
        self.lines
            .iter()
            .filter(|p| {
                matches!(
                    p,
                    Planned::BadLine
                        | Planned::Refused(_)
                        | Planned::SameKeyAs {
                            conflict: Some(_),
                            ..
                        }
                )
            })
            .count()
    }

    /// Whether some line asks for more than an unlocked read of the sums
    /// can promise (a pending sum at the limit of 64 bits).
    pub(crate) fn overflows(&self) -> bool {
        self.lines
            .iter()
            .any(|p| matches!(p, Planned::Refused(WalletError::PendingOverflow(_))))
    }

    /// Each line's answer in input order, once `ids[n]` is the id of row
    /// `n`; `None` for a line refused when read. In an all-or-nothing chunk
    /// a conflict names the earlier line, since its transfer is rolled back.
    pub(crate) fn answers<'a>(
        self,
        lines: &'a [BatchLine],
        ids: &'a [i64],
        all_or_nothing: bool,
    ) -> impl Iterator<Item = Option<Result<Queued>>> + 'a {
        let rows = self.rows;
        let pair_of = move |row: usize, rows: &[NewRow]| {
            (rows[row].leg == Some(Leg::First)).then(|| TxId::new(ids[row + 1]))
        };
        self.lines
            .into_iter()
            .zip(lines)
            .map(move |(planned, line)| match planned {
                Planned::BadLine => None,
                Planned::Refused(refused) => Some(Err(refused)),
                Planned::Replayed(queued) => Some(Ok(queued)),
                Planned::New(row) => Some(Ok(Queued {
                    tx_id: TxId::new(ids[row]),
                    status: rows[row].status(),
                    replayed: false,
                    pair_tx_id: pair_of(row, &rows),
                })),
                Planned::SameKeyAs {
                    row,
                    conflict: None,
                    ..
                } => Some(Ok(Queued {
                    tx_id: TxId::new(ids[row]),
                    status: rows[row].status(),
                    replayed: true,
                    pair_tx_id: pair_of(row, &rows),
                })),
                Planned::SameKeyAs {
                    row,
                    conflict: Some(field),
                    ..
                } => Some(Err(WalletError::IdempotencyConflict {
                    key: line
                        .transfer
                        .as_ref()
                        .ok()
                        .and_then(NewTransfer::key)
                        .map_or_else(String::new, |key| key.as_str().to_string()),
                    field,
                    tx_id: ids[row],
                    earlier_line: all_or_nothing.then_some(lines[rows[row].line].line),
                })),
            })
    }
}

/// What the plan itself keeps while it decides: the keys the chunk's new
/// rows took, and what its holds and refunds have added so far.
#[derive(Default)]
struct Decided<'a> {
    keys: FxHashMap<&'a str, usize>,
    /// Each hold source's `held` as read, and its figures with the
    /// chunk's holds counted.
    held: Vec<(BalanceKey, i64, HoldFigures)>,
    /// Each refunded original's refunds with the chunk's counted.
    refunded: Vec<(i64, i64)>,
}

/// Decides `lines` in input order over `facts`, at the ledger's clock `now`.
pub(crate) fn plan_chunk<F: ChunkFacts>(
    lines: &[BatchLine],
    facts: &mut F,
    now: i64,
    currencies: &Currencies,
) -> std::result::Result<ChunkPlan, F::Fault> {
    let mut plan = ChunkPlan {
        lines: Vec::with_capacity(lines.len()),
        rows: Vec::with_capacity(lines.len()),
        held: Vec::new(),
    };
    let mut decided = Decided::default();
    for index in 0..lines.len() {
        let planned = decide_line(
            lines,
            index,
            facts,
            now,
            currencies,
            &mut plan,
            &mut decided,
        )?;
        plan.lines.push(planned);
    }
    // Only what the chunk raised: a refused hold leaves its source as it
    // was, with no balance made for it in a new currency.
    plan.held = decided
        .held
        .into_iter()
        .filter(|(_, read, figures)| figures.held != *read)
        .map(|(key, _, figures)| (key, figures.held))
        .collect();
    Ok(plan)
}

fn decide_line<'a, F: ChunkFacts>(
    lines: &'a [BatchLine],
    index: usize,
    facts: &mut F,
    now: i64,
    currencies: &Currencies,
    plan: &mut ChunkPlan,
    decided: &mut Decided<'a>,
) -> std::result::Result<Planned, F::Fault> {
    let Ok(transfer) = &lines[index].transfer else {
        return Ok(Planned::BadLine);
    };
    let (src, dst) = match (
        account(facts, transfer.src())?,
        account(facts, transfer.dst())?,
    ) {
        (Ok(src), Ok(dst)) => (src, dst),
        (Err(refused), _) | (_, Err(refused)) => return Ok(Planned::Refused(refused)),
    };
    let requested = Pinned::requested(transfer, src, dst);
    if let Some(key) = transfer.key() {
        if let Some(&row) = decided.keys.get(key.as_str()) {
            let earlier = &plan.rows[row];
            let memo = lines[earlier.line]
                .transfer
                .as_ref()
                .ok()
                .and_then(NewTransfer::memo);
            let conflict = match replay_or_conflict(
                key,
                0,
                earlier.status(),
                plan.pinned_row(row, memo, now),
                requested,
            ) {
                Err(WalletError::IdempotencyConflict { field, .. }) => Some(field),
                _ => None,
            };
            return Ok(Planned::SameKeyAs {
                row,
                conflict,
                src,
                dst,
            });
        }
        if let Some(stored) = facts.stored_key(key)? {
            return Ok(match stored.answer(key, requested, now)? {
                Ok(queued) => Planned::Replayed(queued),
                Err(conflict) => Planned::Refused(conflict),
            });
        }
    }
    let (amount, currency_id) = (requested.amount, requested.currency);
    // Refusals show amounts at the scale of the line's own currency.
    let currency = currencies
        .get(currency_id)
        .unwrap_or_else(|| currencies.default_currency());
    let (src_key, dst_key) = (
        BalanceKey::new(src, currency_id),
        BalanceKey::new(dst, currency_id),
    );
    let kind = match transfer.kind() {
        Kind::Hold(expiry) => {
            let Some(source) = transfer.src() else {
                return Ok(Planned::Refused(WalletError::InvalidLine(
                    "a hold needs a user as src: it reserves that user's money".into(),
                )));
            };
            let expires_at = expiry.instant(now);
            if let Err(refused) = check_expiry(expires_at, now) {
                return Ok(Planned::Refused(refused));
            }
            let pending_out = facts.sums(src_key)?.out;
            let slot = match decided.held.iter().position(|(key, ..)| *key == src_key) {
                Some(slot) => slot,
                None => {
                    let figures = facts.hold_figures(src_key)?;
                    decided.held.push((src_key, figures.held, figures));
                    decided.held.len() - 1
                }
            };
            let figures = &mut decided.held[slot].2;
            match check_hold(source, figures, pending_out, amount, currency) {
                Ok(held) => figures.held = held,
                Err(refused) => return Ok(Planned::Refused(refused)),
            }
            RowKind::Hold { expires_at }
        }
        Kind::Refund(original) => {
            let original = original.get();
            let Some(found) = facts.original(original)? else {
                return Ok(Planned::Refused(WalletError::TransferNotFound(
                    original.to_string(),
                )));
            };
            if (src, dst) != (found.dst, found.src) {
                return Ok(Planned::Refused(WalletError::InvalidLine(format!(
                    "a refund of transfer {original} goes from its destination back to its source"
                ))));
            }
            let slot = match decided.refunded.iter().position(|(o, _)| *o == original) {
                Some(slot) => slot,
                None => {
                    decided.refunded.push((original, found.refunded));
                    decided.refunded.len() - 1
                }
            };
            let status = stored_status(&found.status)?
                .as_of(found.expires_at.map(Instant::new), Instant::new(now));
            if let Err(refused) = check_refund(
                original,
                status.as_str(),
                (found.amount, found.pair),
                decided.refunded[slot].1,
                amount,
                currency,
            ) {
                return Ok(Planned::Refused(refused));
            }
            if let Err(refused) = reserve(transfer, src_key, dst_key, facts)? {
                return Ok(Planned::Refused(refused));
            }
            decided.refunded[slot].1 += amount;
            RowKind::Refund { original }
        }
        Kind::Transfer => {
            if let Err(refused) = reserve(transfer, src_key, dst_key, facts)? {
                return Ok(Planned::Refused(refused));
            }
            RowKind::Transfer
        }
        Kind::Exchange(counter) => {
            if let Err(refused) = super::check_exchange_currencies(currency_id, counter.currency) {
                return Ok(Planned::Refused(refused));
            }
            let back = (
                BalanceKey::new(dst, counter.currency),
                BalanceKey::new(src, counter.currency),
            );
            if let Err(refused) = reserve_exchange(
                transfer,
                (src_key, dst_key),
                back,
                counter.amount.minor_units(),
                facts,
            )? {
                return Ok(Planned::Refused(refused));
            }
            let row = plan.rows.len();
            if let Some(key) = transfer.key() {
                decided.keys.insert(key.as_str(), row);
            }
            plan.rows.push(NewRow {
                line: index,
                src,
                dst,
                amount,
                currency: currency_id,
                kind: RowKind::Transfer,
                leg: Some(Leg::First),
            });
            plan.rows.push(NewRow {
                line: index,
                src: dst,
                dst: src,
                amount: counter.amount.minor_units(),
                currency: counter.currency,
                kind: RowKind::Transfer,
                leg: Some(Leg::Second),
            });
            return Ok(Planned::New(row));
        }
    };
    let row = plan.rows.len();
    if let Some(key) = transfer.key() {
        decided.keys.insert(key.as_str(), row);
    }
    plan.rows.push(NewRow {
        line: index,
        src,
        dst,
        amount,
        currency: currency_id,
        kind,
        leg: None,
    });
    Ok(Planned::New(row))
}

fn account<F: ChunkFacts>(
    facts: &mut F,
    name: Option<&UserName>,
) -> std::result::Result<Result<i64>, F::Fault> {
    let Some(name) = name else {
        return Ok(Ok(EXTERNAL_ACCOUNT));
    };
    Ok(match facts.account(name)? {
        None => Err(WalletError::UserNotFound(name.to_string())),
        Some(named) => check_open(name, named.closed).map(|()| named.id),
    })
}

/// Reserves a queued transfer's amount in its balances' pending sums.
fn reserve<F: ChunkFacts>(
    transfer: &NewTransfer,
    src: BalanceKey,
    dst: BalanceKey,
    facts: &mut F,
) -> std::result::Result<Result<()>, F::Fault> {
    let mut src_sums = facts.sums(src)?;
    let mut dst_sums = facts.sums(dst)?;
    match super::reserve_pending(transfer, src_sums.out, dst_sums.r#in) {
        Ok((out, r#in)) => {
            src_sums.out = out;
            dst_sums.r#in = r#in;
            facts.set_sums(src, src_sums);
            facts.set_sums(dst, dst_sums);
            Ok(Ok(()))
        }
        Err(refused) => Ok(Err(refused)),
    }
}

/// Reserves both legs of an exchange, or neither: `out` is the first leg's
/// balances (source, desk) in its currency, `back` the second's (desk,
/// source) in the other, which it moves by `counter`.
fn reserve_exchange<F: ChunkFacts>(
    transfer: &NewTransfer,
    out: (BalanceKey, BalanceKey),
    back: (BalanceKey, BalanceKey),
    counter: i64,
    facts: &mut F,
) -> std::result::Result<Result<()>, F::Fault> {
    let mut sums = [
        facts.sums(out.0)?,
        facts.sums(out.1)?,
        facts.sums(back.0)?,
        facts.sums(back.1)?,
    ];
    let first = super::reserve_pending(transfer, sums[0].out, sums[1].r#in);
    let second = super::reserve_between(
        counter,
        (transfer.dst(), sums[2].out),
        (transfer.src(), sums[3].r#in),
    );
    match (first, second) {
        (Ok((out_0, in_1)), Ok((out_2, in_3))) => {
            sums[0].out = out_0;
            sums[1].r#in = in_1;
            sums[2].out = out_2;
            sums[3].r#in = in_3;
            for (key, sums) in [out.0, out.1, back.0, back.1].into_iter().zip(sums) {
                facts.set_sums(key, sums);
            }
            Ok(Ok(()))
        }
        (Err(refused), _) | (_, Err(refused)) => Ok(Err(refused)),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
