//! [`plan_chunk`] itself, driven over random chunks of transfers, holds and
//! refunds with reused keys, held to a plain model that decides one line
//! after another without the planner; and the same lines cut into chunks
//! differently, each chunk's plan applied before the next is decided.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::domain::{IdempotencyKey, Memo};
use crate::ledger::model::{BalanceKey, Counter, Expiry, Leg};
use crate::money::{Amount, Currency};

const NOW: i64 = 1_000_000;
const HOUR: i64 = 3_600_000;
/// Users 1 to 3 exist; 4 names a user that does not.
const USERS: i64 = 3;
/// A user that exists but was closed.
const CLOSED: i64 = USERS + 2;
/// u2 may go this far below zero; u3 is frozen.
const U2_OVERDRAFT: i64 = 25;
const FROZEN: i64 = 3;

/// Every line of these chunks moves the default currency.
fn key(account: i64) -> BalanceKey {
    BalanceKey::default_currency(account)
}

fn name(account: i64) -> Option<UserName> {
    (account != EXTERNAL_ACCOUNT).then(|| UserName::parse(&format!("u{account}")).unwrap())
}

/// One generated line: kind (0 transfer, 1 hold, 2 hold expiring in an
/// hour, 3 refund), parties, amount, key, memo, refunded original.
#[derive(Debug, Clone, Copy)]
struct Spec {
    kind: u8,
    src: i64,
    dst: i64,
    amount: i64,
    key: Option<u8>,
    memo: bool,
    original: i64,
}

fn specs() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(
        (
            0u8..4,
            0i64..=CLOSED,
            0i64..=CLOSED,
            1i64..60,
            prop::option::of(0u8..3),
            any::<bool>(),
            1i64..=4,
        )
            .prop_map(|(kind, src, dst, amount, key, memo, original)| Spec {
                kind,
                src,
                dst,
                amount,
                key,
                memo,
                original,
            }),
        1..40,
    )
}

fn line(number: u64, spec: Spec) -> BatchLine {
    let transfer = NewTransfer::new(
        name(spec.src),
        name(spec.dst),
        Amount::from_minor_units(spec.amount).unwrap(),
        spec.memo.then(|| Memo::parse("m").unwrap()),
        spec.key
            .map(|k| IdempotencyKey::parse(&format!("k{k}")).unwrap()),
    )
    .and_then(|t| match spec.kind {
        1 => t.with_kind(Kind::Hold(Expiry::Never)),
        2 => t.with_kind(Kind::Hold(Expiry::After(HOUR))),
        3 => t.with_kind(Kind::Refund(TxId::new(spec.original))),
        _ => Ok(t),
    });
    BatchLine {
        line: number,
        transfer,
    }
}

/// A ledger in memory as an engine would lend it, and what writing a plan
/// does to it.
#[derive(Debug, Clone)]
struct Ledger {
    sums: HashMap<BalanceKey, PendingSums>,
    figures: HashMap<BalanceKey, HoldFigures>,
    keys: HashMap<String, StoredKey>,
    originals: HashMap<i64, Original>,
    next_id: i64,
}

impl Ledger {
    /// Users with balances 100, 40 and 0; transfer 1 (u1 → u2, 50) and 2
    /// (u2 → u3, 30) COMPLETED, 3 (u1 → u3, 10) PENDING, 4 absent.
    fn new() -> Self {
        let completed = |src, dst, amount, status: &str| Original {
            src,
            dst,
            amount,
            status: status.to_string(),
            expires_at: None,
            refunded: 0,
            pair: None,
        };
        Self {
            sums: HashMap::new(),
            figures: [(1, 100), (2, 40), (3, 0)]
                .into_iter()
                .map(|(id, balance)| {
                    (
                        key(id),
                        HoldFigures {
                            balance,
                            held: 0,
                            overdraft: if id == 2 { U2_OVERDRAFT } else { 0 },
                            frozen: id == FROZEN,
                        },
                    )
                })
                .collect(),
            keys: HashMap::new(),
            originals: [
                (1, completed(1, 2, 50, "COMPLETED")),
                (2, completed(2, 3, 30, "COMPLETED")),
                (3, completed(1, 3, 10, "PENDING")),
            ]
            .into_iter()
            .collect(),
            next_id: 10,
        }
    }

    /// Writes a plan as an engine does: ids in row order, the rows' keys
    /// and refunds stored, the holds' `held`.
    fn apply(&mut self, lines: &[BatchLine], plan: &ChunkPlan) -> Vec<i64> {
        let ids: Vec<i64> = (0..plan.rows.len() as i64)
            .map(|n| self.next_id + n)
            .collect();
        self.next_id += plan.rows.len() as i64;
        for (n, (row, id)) in plan.rows.iter().zip(&ids).enumerate() {
            let transfer = lines[row.line].transfer.as_ref().unwrap();
            let pair = (row.leg == Some(Leg::First)).then(|| {
                let second = &plan.rows[n + 1];
                (id + 1, second.amount, second.currency)
            });
            if let Some(key) = transfer.key()
                && row.leg != Some(Leg::Second)
            {
                let (hold_amount, expires_at, refund_of) = match row.kind {
                    RowKind::Hold { expires_at } => (Some(row.amount), expires_at, None),
                    RowKind::Refund { original } => (None, None, Some(original)),
                    RowKind::Transfer => (None, None, None),
                };
                self.keys.insert(
                    key.as_str().to_string(),
                    StoredKey {
                        tx_id: *id,
                        src: row.src,
                        dst: row.dst,
                        amount: row.amount,
                        currency: row.currency,
                        memo: transfer.memo().map(str::to_string),
                        status: row.status().as_str().to_string(),
                        hold_amount,
                        expires_at,
                        refund_of,
                        created_at: NOW,
                        pair,
                    },
                );
            }
            if let RowKind::Refund { original } = row.kind {
                self.originals.get_mut(&original).unwrap().refunded += row.amount;
            }
        }
        for (key, held) in &plan.held {
            self.figures.get_mut(key).unwrap().held = *held;
        }
        ids
    }
}

impl ChunkFacts for Ledger {
    type Fault = WalletError;

    fn account(&mut self, name: &UserName) -> Result<Option<Named>> {
        Ok((1..=USERS)
            .chain([CLOSED])
            .find(|id| name.as_str() == format!("u{id}"))
            .map(|id| Named {
                id,
                closed: id == CLOSED,
            }))
    }

    fn stored_key(&mut self, key: &IdempotencyKey) -> Result<Option<StoredKey>> {
        Ok(self.keys.get(key.as_str()).cloned())
    }

    fn sums(&mut self, key: BalanceKey) -> Result<PendingSums> {
        Ok(self.sums.get(&key).copied().unwrap_or_default())
    }

    fn set_sums(&mut self, key: BalanceKey, sums: PendingSums) {
        self.sums.insert(key, sums);
    }

    fn hold_figures(&mut self, key: BalanceKey) -> Result<HoldFigures> {
        Ok(self.figures[&key])
    }

    fn original(&mut self, tx_id: i64) -> Result<Option<Original>> {
        Ok(self.originals.get(&tx_id).cloned())
    }
}

/// A line's answer as compared: its id, status and whether replayed, or
/// its error code and the id it names.
type Answer = std::result::Result<(i64, Status, bool), (&'static str, Option<i64>)>;

fn answer(outcome: Option<Result<Queued>>, line: &BatchLine) -> Answer {
    match outcome {
        Some(Ok(q)) => Ok((q.tx_id.get(), q.status, q.replayed)),
        Some(Err(WalletError::IdempotencyConflict { tx_id, .. })) => {
            Err(("idempotency_conflict", Some(tx_id)))
        }
        Some(Err(err)) => Err((err.code(), None)),
        None => Err((line.transfer.as_ref().unwrap_err().code(), None)),
    }
}

/// Plans `lines` cut after each length in `cuts`, applying each chunk.
fn run_in_chunks(lines: &[BatchLine], cuts: &[usize]) -> (Vec<Answer>, Ledger) {
    let mut ledger = Ledger::new();
    let mut answers = Vec::new();
    let mut rest = lines;
    let mut cuts = cuts.iter();
    while !rest.is_empty() {
        let size = cuts
            .next()
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        let (chunk, after) = rest.split_at(size);
        let currency = Currency::default();
        let before = (ledger.sums.clone(), ledger.figures.clone());
        let plan = plan_chunk(chunk, &mut ledger, NOW, &Currencies::new(currency)).unwrap();
        reserves_add_up(&before, &ledger, &plan);
        assert_eq!(plan.lines.len(), chunk.len());
        assert!(
            plan.rows.windows(2).all(|w| w[0].line < w[1].line),
            "rows follow the lines"
        );
        let ids = ledger.apply(chunk, &plan);
        for (outcome, line) in plan.answers(chunk, &ids, false).zip(chunk) {
            answers.push(answer(outcome, line));
        }
        rest = after;
    }
    (answers, ledger)
}

/// What the rows of a plan reserve, summed as an engine that counts the
/// rows it wrote sums them, is what the plan moved in the pending sums
/// and in `held`.
fn reserves_add_up(
    (sums, figures): &(
        HashMap<BalanceKey, PendingSums>,
        HashMap<BalanceKey, HoldFigures>,
    ),
    after: &Ledger,
    plan: &ChunkPlan,
) {
    let mut moved: HashMap<BalanceKey, (i64, i64, i64)> = HashMap::new();
    for row in &plan.rows {
        let reserves = row.reserves();
        let (src, dst) = (
            BalanceKey::new(row.src, row.currency),
            BalanceKey::new(row.dst, row.currency),
        );
        moved.entry(src).or_default().0 += reserves.src_out;
        moved.entry(src).or_default().2 += reserves.src_held;
        moved.entry(dst).or_default().1 += reserves.dst_in;
    }
    for account in 0..=USERS {
        let account = key(account);
        let was = sums.get(&account).copied().unwrap_or_default();
        let now = after.sums.get(&account).copied().unwrap_or_default();
        let held = |f: &HashMap<BalanceKey, HoldFigures>| f.get(&account).map_or(0, |f| f.held);
        let planned_held = plan
            .held
            .iter()
            .find(|(a, _)| *a == account)
            .map_or(held(figures), |(_, h)| *h);
        let (out, r#in, h) = moved.get(&account).copied().unwrap_or_default();
        assert_eq!(now.out - was.out, out, "pending_out of {account:?}");
        assert_eq!(now.r#in - was.r#in, r#in, "pending_in of {account:?}");
        assert_eq!(planned_held - held(figures), h, "held of {account:?}");
    }
}

/// What a key pins in the model: kind, parties, amount, memo, original.
type Fields = (u8, i64, i64, i64, bool, i64);

/// What each line should answer, decided one after another by the rules
/// as the contract states them, without the planner.
fn model(specs: &[Spec], lines: &[BatchLine]) -> Vec<Answer> {
    let balance: HashMap<i64, i64> = [(1, 100), (2, 40), (3, 0)].into_iter().collect();
    let mut held: HashMap<i64, i64> = HashMap::new();
    let mut pending_out: HashMap<i64, i64> = HashMap::new();
    let originals: HashMap<i64, (i64, i64, i64, &str)> = [
        (1, (1, 2, 50, "COMPLETED")),
        (2, (2, 3, 30, "COMPLETED")),
        (3, (1, 3, 10, "PENDING")),
    ]
    .into_iter()
    .collect();
    let mut refunded: HashMap<i64, i64> = HashMap::new();
    // key → (id, status, the fields it pins)
    let mut keys: HashMap<u8, (i64, Status, Fields)> = HashMap::new();
    let mut next_id = 10;
    let mut out = Vec::new();
    for (spec, line) in specs.iter().zip(lines) {
        if let Err(err) = &line.transfer {
            out.push(Err((err.code(), None)));
            continue;
        }
        // Each side in turn, the source first: unknown, then closed.
        let refused = [spec.src, spec.dst]
            .into_iter()
            .find_map(|side| match side {
                CLOSED => Some("account_closed"),
                side if side > USERS => Some("user_not_found"),
                _ => None,
            });
        if let Some(code) = refused {
            out.push(Err((code, None)));
            continue;
        }
        // Holds of either expiry pin "hold"; an hour after NOW differs
        // from none.
        let kind = spec.kind;
        let original = if kind == 3 { spec.original } else { 0 };
        let pinned = (kind, spec.src, spec.dst, spec.amount, spec.memo, original);
        if let Some(key) = spec.key
            && let Some((id, status, earlier)) = keys.get(&key)
        {
            out.push(if *earlier == pinned {
                Ok((*id, *status, true))
            } else {
                Err(("idempotency_conflict", Some(*id)))
            });
            continue;
        }
        let status = match kind {
            1 | 2 => {
                if spec.src == FROZEN {
                    out.push(Err(("account_frozen", None)));
                    continue;
                }
                let overdraft = if spec.src == 2 { U2_OVERDRAFT } else { 0 };
                let available = balance[&spec.src] + overdraft
                    - pending_out.get(&spec.src).copied().unwrap_or(0)
                    - held.get(&spec.src).copied().unwrap_or(0);
                if available < spec.amount {
                    out.push(Err(("insufficient_funds", None)));
                    continue;
                }
                *held.entry(spec.src).or_default() += spec.amount;
                Status::Held
            }
            3 => {
                let Some(&(o_src, o_dst, o_amount, o_status)) = originals.get(&spec.original)
                else {
                    out.push(Err(("transfer_not_found", None)));
                    continue;
                };
                if (spec.src, spec.dst) != (o_dst, o_src) {
                    out.push(Err(("invalid_line", None)));
                    continue;
                }
                if o_status != "COMPLETED" {
                    out.push(Err(("not_refundable", None)));
                    continue;
                }
                let already = refunded.get(&spec.original).copied().unwrap_or(0);
                if already + spec.amount > o_amount {
                    out.push(Err(("refund_exceeds_original", None)));
                    continue;
                }
                *refunded.entry(spec.original).or_default() += spec.amount;
                *pending_out.entry(spec.src).or_default() += spec.amount;
                Status::Pending
            }
            _ => {
                *pending_out.entry(spec.src).or_default() += spec.amount;
                Status::Pending
            }
        };
        if let Some(key) = spec.key {
            keys.insert(key, (next_id, status, pinned));
        }
        out.push(Ok((next_id, status, false)));
        next_id += 1;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_chunk_is_decided_in_input_order_however_it_is_cut(
        specs in specs(),
        cuts in prop::collection::vec(1usize..8, 0..10),
    ) {
        let lines: Vec<BatchLine> = specs
            .iter()
            .enumerate()
            .map(|(n, spec)| line(n as u64 + 1, *spec))
            .collect();
        let expected = model(&specs, &lines);
        let (whole, ledger) = run_in_chunks(&lines, &[]);
        prop_assert_eq!(&whole, &expected);
        let (cut, _) = run_in_chunks(&lines, &cuts);
        prop_assert_eq!(&cut, &expected);
        // Holds never reserve more than a balance and its limit, and the
        // pending sums are what the new rows reserve.
        for (account, figures) in &ledger.figures {
            prop_assert!(
                figures.held <= figures.balance + figures.overdraft,
                "account {:?}",
                account
            );
        }
        let mut reserved: HashMap<BalanceKey, i64> = HashMap::new();
        for (answer, spec) in whole.iter().zip(&specs) {
            if let Ok((_, Status::Pending, false)) = answer {
                *reserved.entry(key(spec.src)).or_default() += spec.amount;
            }
        }
        for (account, sums) in &ledger.sums {
            prop_assert_eq!(sums.out, reserved.get(account).copied().unwrap_or(0));
        }
    }
}

/// An exchange line: two rows, the first leg and the second right after it
/// from the desk back in the other currency, both reserved; its key on the
/// first, replayed with both ids, in the chunk and after it, and a reuse
/// with another counter amount or currency a conflict naming it.
#[test]
fn an_exchange_line_makes_two_linked_rows_under_one_key() {
    let exchange = |counter: i64, currency: i16| BatchLine {
        line: 1,
        transfer: NewTransfer::new(
            name(1),
            name(2),
            Amount::from_minor_units(10).unwrap(),
            None,
            Some(IdempotencyKey::parse("swap").unwrap()),
        )
        .and_then(|t| {
            t.with_kind(Kind::Exchange(Counter {
                amount: Amount::from_minor_units(counter).unwrap(),
                currency: CurrencyId(currency),
            }))
        }),
    };
    let currencies = Currencies::from_ordered(vec![
        Currency::default(),
        Currency::new("BTC", 8).unwrap(),
        Currency::new("USD", 2).unwrap(),
    ])
    .unwrap();
    let mut ledger = Ledger::new();
    let lines = [exchange(7, 1), exchange(7, 1), exchange(8, 1)];
    let plan = plan_chunk(&lines, &mut ledger, NOW, &currencies).unwrap();
    assert_eq!(plan.rows.len(), 2);
    let (first, second) = (plan.rows[0], plan.rows[1]);
    assert_eq!((first.src, first.dst, first.amount), (1, 2, 10));
    assert_eq!(
        (first.currency, first.leg),
        (CurrencyId(0), Some(Leg::First))
    );
    assert_eq!((second.src, second.dst, second.amount), (2, 1, 7));
    assert_eq!(
        (second.currency, second.leg),
        (CurrencyId(1), Some(Leg::Second))
    );
    let sums = |ledger: &Ledger, account, currency| {
        let s = ledger.sums[&BalanceKey::new(account, CurrencyId(currency))];
        (s.out, s.r#in)
    };
    assert_eq!(sums(&ledger, 1, 0), (10, 0));
    assert_eq!(sums(&ledger, 2, 0), (0, 10));
    assert_eq!(sums(&ledger, 2, 1), (7, 0));
    assert_eq!(sums(&ledger, 1, 1), (0, 7));
    let ids = ledger.apply(&lines, &plan);
    let answers: Vec<_> = plan.answers(&lines, &ids, false).collect();
    let queued = |answer: &Option<Result<Queued>>| {
        let q = answer.as_ref().unwrap().as_ref().unwrap();
        (q.tx_id.get(), q.pair_tx_id.map(TxId::get), q.replayed)
    };
    assert_eq!(queued(&answers[0]), (10, Some(11), false));
    assert_eq!(queued(&answers[1]), (10, Some(11), true));
    match answers[2].as_ref().unwrap() {
        Err(WalletError::IdempotencyConflict { field, .. }) => {
            assert_eq!(*field, "exchanged amount");
        }
        other => panic!("{other:?}"),
    }

    let later = [exchange(7, 1), exchange(7, 2)];
    let plan = plan_chunk(&later, &mut ledger, NOW, &currencies).unwrap();
    assert!(plan.rows.is_empty());
    let answers: Vec<_> = plan.answers(&later, &[], false).collect();
    assert_eq!(queued(&answers[0]), (10, Some(11), true));
    match answers[1].as_ref().unwrap() {
        Err(WalletError::IdempotencyConflict { field, .. }) => {
            assert_eq!(*field, "exchanged currency");
        }
        other => panic!("{other:?}"),
    }
}
