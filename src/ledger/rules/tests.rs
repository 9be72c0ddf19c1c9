//! The rules alone, with no database: each rule by example, and random
//! sequences of queue, cancel and settle decided by the rules held to a
//! plain model written without them.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::domain::{IdempotencyKey, UserName};
use crate::ledger::model::{BalanceKey, BatchCounts, FailReason, Status};
use crate::money::{Amount, CurrencyId};

fn user(name: &str) -> Option<UserName> {
    Some(UserName::parse(name).unwrap())
}

fn request(src: Option<UserName>, dst: Option<UserName>, minor: i64) -> NewTransfer {
    NewTransfer::new(
        src,
        dst,
        Amount::from_minor_units(minor).unwrap(),
        None,
        None,
    )
    .unwrap()
}

#[test]
fn a_request_names_a_user_and_never_one_account_twice() {
    assert!(check_parties(user("alice").as_ref(), user("bob").as_ref()).is_ok());
    assert!(check_parties(None, user("bob").as_ref()).is_ok());
    assert!(check_parties(user("alice").as_ref(), None).is_ok());
    let same = check_parties(user("Alice").as_ref(), user("aLICE").as_ref()).unwrap_err();
    assert_eq!(same.code(), "same_account");
    assert_eq!(
        check_parties(None, None).unwrap_err().code(),
        "invalid_line"
    );
    let built = NewTransfer::new(
        user("bob"),
        user("BOB"),
        Amount::from_minor_units(1).unwrap(),
        None,
        None,
    );
    assert_eq!(built.unwrap_err().code(), "same_account");
}

#[test]
fn a_reused_key_replays_only_when_every_pinned_field_matches() {
    let key = IdempotencyKey::parse("order-7").unwrap();
    let earlier = Pinned::stored(
        1,
        2,
        (500, CurrencyId::DEFAULT),
        Some("rent"),
        StoredAs::Transfer { refund_of: None },
    );
    let replayed = replay_or_conflict(&key, 9, Status::Completed, earlier, earlier).unwrap();
    assert_eq!(
        replayed,
        Queued {
            tx_id: TxId::new(9),
            status: Status::Completed,
            replayed: true,
            pair_tx_id: None,
        }
    );
    let changes = [
        ("source", Pinned { src: 3, ..earlier }),
        ("destination", Pinned { dst: 3, ..earlier }),
        (
            "amount",
            Pinned {
                amount: 501,
                ..earlier
            },
        ),
        (
            "currency",
            Pinned {
                currency: CurrencyId(1),
                ..earlier
            },
        ),
        (
            "memo",
            Pinned {
                memo: None,
                ..earlier
            },
        ),
    ];
    // Several fields differ: the first in the order source, destination,
    // amount, currency, memo is named.
    let all_differ = Pinned::stored(
        3,
        4,
        (1, CurrencyId(1)),
        None,
        StoredAs::Transfer { refund_of: None },
    );
    match replay_or_conflict(&key, 9, Status::Pending, earlier, all_differ) {
        Err(WalletError::IdempotencyConflict { field, .. }) => assert_eq!(field, "source"),
        other => panic!("{other:?}"),
    }
    let amount_and_memo = Pinned {
        amount: 1,
        memo: None,
        ..earlier
    };
    match replay_or_conflict(&key, 9, Status::Pending, earlier, amount_and_memo) {
        Err(WalletError::IdempotencyConflict { field, .. }) => assert_eq!(field, "amount"),
        other => panic!("{other:?}"),
    }
    for (field, requested) in changes {
        match replay_or_conflict(&key, 9, Status::Pending, earlier, requested) {
            Err(WalletError::IdempotencyConflict {
                field: named,
                tx_id: 9,
                ..
            }) => assert_eq!(named, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn a_stored_status_that_is_not_one_of_ours_is_damage() {
    assert_eq!(stored_status("FAILED").unwrap(), Status::Failed);
    assert_eq!(stored_status("LOST").unwrap_err().code(), "integrity");
}

#[test]
fn refunds_count_against_their_original_by_status() {
    assert_eq!(refund_counting_statuses_sql(), "'PENDING', 'COMPLETED'");
    assert_eq!(refund_paid_statuses_sql(), "'COMPLETED'");
    assert_eq!(changing_statuses_sql(), "'PENDING', 'HELD'");
    for status in Status::ALL {
        assert!(!refund_paid(status) || refund_counts_when_queued(status));
    }
}

#[test]
fn a_full_pending_sum_refuses_naming_its_account_not_minor_units() {
    let deposit = request(None, user("bob"), 1);
    assert_eq!(reserve_pending(&deposit, 5, 7).unwrap(), (6, 8));
    let out_full = reserve_pending(&deposit, i64::MAX, 0).unwrap_err();
    assert_eq!(out_full.code(), "invalid_amount");
    assert!(
        out_full.to_string().contains("the external account"),
        "{out_full}"
    );
    let in_full = reserve_pending(&deposit, 0, i64::MAX).unwrap_err();
    assert!(in_full.to_string().contains("user 'bob'"), "{in_full}");
    assert!(!in_full.to_string().contains("'1'"), "{in_full}");
}

#[test]
fn releasing_more_than_is_pending_is_damage() {
    assert_eq!(release_pending(4, 10, 3).unwrap(), 7);
    assert_eq!(release_pending(4, 3, 3).unwrap(), 0);
    assert_eq!(release_pending(4, 2, 3).unwrap_err().code(), "integrity");
}

fn funds(balance: i64, held: i64, overdraft: i64, frozen: bool) -> settle::Account {
    settle::Account::read(balance, 0, 0, held, overdraft, frozen)
}

#[test]
fn settlement_decides_by_the_balance_it_sees() {
    assert_eq!(
        decide(1, &funds(100, 0, 0, false), 0, 100),
        Decision::Complete {
            src_balance: 0,
            dst_balance: 100
        }
    );
    assert_eq!(
        decide(1, &funds(99, 0, 0, false), 0, 100),
        Decision::Fail(FailReason::InsufficientFunds)
    );
    // The outside world pays whatever it is asked to.
    assert_eq!(
        decide(EXTERNAL_ACCOUNT, &funds(0, 0, 0, false), 0, 100),
        Decision::Complete {
            src_balance: -100,
            dst_balance: 100
        }
    );
    assert_eq!(
        decide(1, &funds(10, 0, 0, false), i64::MAX, 10),
        Decision::Fail(FailReason::BalanceOverflow)
    );
    assert_eq!(
        decide(EXTERNAL_ACCOUNT, &funds(i64::MIN + 5, 0, 0, false), 0, 10),
        Decision::Fail(FailReason::BalanceOverflow)
    );
}

#[test]
fn an_overdraft_limit_lets_a_balance_go_below_zero_down_to_it() {
    assert_eq!(
        decide(1, &funds(30, 0, 70, false), 0, 100),
        Decision::Complete {
            src_balance: -70,
            dst_balance: 100
        }
    );
    assert_eq!(
        decide(1, &funds(30, 0, 70, false), 0, 101),
        Decision::Fail(FailReason::InsufficientFunds)
    );
    // Held money is not spendable, limit or not.
    assert_eq!(
        decide(1, &funds(30, 10, 70, false), 0, 100),
        Decision::Fail(FailReason::InsufficientFunds)
    );
    // A limit lowered below what is drawn refuses every debit until
    // credits bring the balance back within it.
    assert_eq!(
        decide(1, &funds(-80, 0, 50, false), 0, 1),
        Decision::Fail(FailReason::InsufficientFunds)
    );
    assert_eq!(
        decide(1, &funds(-40, 0, 50, false), 0, 10),
        Decision::Complete {
            src_balance: -50,
            dst_balance: 10
        }
    );
    // The largest limit and a balance at its floor: exact, no overflow.
    assert_eq!(
        decide(1, &funds(0, 0, i64::MAX, false), 0, i64::MAX),
        Decision::Complete {
            src_balance: -i64::MAX,
            dst_balance: i64::MAX
        }
    );
}

#[test]
fn a_frozen_source_pays_nothing_before_its_funds_are_looked_at() {
    assert_eq!(
        decide(1, &funds(1_000, 0, 0, true), 0, 1),
        Decision::Fail(FailReason::AccountFrozen)
    );
    assert_eq!(
        decide(1, &funds(0, 0, 0, true), 0, 1),
        Decision::Fail(FailReason::AccountFrozen)
    );
    // Frozen or not, the payee takes money.
    assert_eq!(
        decide(2, &funds(10, 0, 0, false), 0, 10),
        Decision::Complete {
            src_balance: 0,
            dst_balance: 10
        }
    );
}

#[test]
fn holds_count_the_limit_and_are_refused_from_a_frozen_user() {
    let currency = crate::money::Currency::default();
    let alice = UserName::parse("alice").unwrap();
    let figures = |balance, held, overdraft, frozen| plan::HoldFigures {
        balance,
        held,
        overdraft,
        frozen,
    };
    assert_eq!(
        check_hold(&alice, &figures(10, 5, 50, false), 20, 35, &currency).unwrap(),
        40
    );
    let short = check_hold(&alice, &figures(10, 5, 50, false), 20, 36, &currency).unwrap_err();
    assert_eq!(short.code(), "insufficient_funds");
    let frozen = check_hold(&alice, &figures(1_000, 0, 0, true), 0, 1, &currency).unwrap_err();
    assert_eq!(frozen.code(), "account_frozen");
    assert_eq!(frozen.exit_code(), 4);
}

#[test]
fn a_capture_needs_a_source_that_may_pay_and_a_payee_that_takes_money() {
    let open = Policy::default();
    let frozen = Policy {
        frozen: true,
        ..open
    };
    let closed = Policy {
        closed: true,
        ..open
    };
    assert!(check_capture_parties(Some("alice"), open, Some("bob"), frozen).is_ok());
    assert!(check_capture_parties(Some("alice"), open, None, open).is_ok());
    let refused = check_capture_parties(Some("alice"), frozen, Some("bob"), open).unwrap_err();
    assert_eq!(refused.code(), "account_frozen");
    assert!(refused.to_string().contains("'alice'"), "{refused}");
    let refused = check_capture_parties(Some("alice"), open, Some("bob"), closed).unwrap_err();
    assert_eq!(refused.code(), "account_closed");
    assert!(refused.to_string().contains("'bob'"), "{refused}");
    let closed_payee = UserName::parse("bob").unwrap();
    assert_eq!(
        check_open(&closed_payee, true).unwrap_err().code(),
        "account_closed"
    );
    assert!(check_open(&closed_payee, false).is_ok());
}

/// One step of a random session. Accounts are numbered, 0 the outside.
#[derive(Debug, Clone)]
enum Op {
    Queue {
        src: usize,
        dst: usize,
        amount: i64,
    },
    /// Queues a refund of the `nth` transfer if it is COMPLETED. Only
    /// settlement caps it, so that the cap is exercised.
    Refund {
        nth: usize,
        amount: i64,
    },
    /// Places a hold on a user's money.
    Hold {
        src: usize,
        amount: i64,
    },
    /// Every hold passes its expiry.
    Expire,
    Cancel {
        nth: usize,
    },
    Settle {
        up_to: usize,
    },
    /// Sets a user's overdraft limit, above or below what it has drawn.
    Limit {
        account: usize,
        overdraft: i64,
    },
    /// Freezes or unfreezes a user.
    Freeze {
        account: usize,
        frozen: bool,
    },
}

const USERS: usize = 4;

fn ops() -> impl Strategy<Value = Vec<Op>> {
    // Mostly everyday amounts, sometimes one near the top of the range,
    // so that pending sums and balances reach their limits.
    let amount = || {
        prop_oneof![
            8 => 1i64..400,
            1 => (i64::MAX - 1000)..=i64::MAX,
        ]
    };
    let op = prop_oneof![
        6 => (0..=USERS, 0..=USERS, amount()).prop_map(|(src, dst, amount)| Op::Queue { src, dst, amount }),
        1 => (0usize..64, 1i64..300).prop_map(|(nth, amount)| Op::Refund { nth, amount }),
        1 => (1..=USERS, amount()).prop_map(|(src, amount)| Op::Hold { src, amount }),
        1 => Just(Op::Expire),
        1 => (0usize..64).prop_map(|nth| Op::Cancel { nth }),
        2 => (1usize..8).prop_map(|up_to| Op::Settle { up_to }),
        1 => (1..=USERS, prop_oneof![3 => Just(0i64), 6 => 1i64..600, 1 => Just(i64::MAX)])
            .prop_map(|(account, overdraft)| Op::Limit { account, overdraft }),
        1 => (1..=USERS, any::<bool>()).prop_map(|(account, frozen)| Op::Freeze { account, frozen }),
    ];
    prop::collection::vec(op, 1..120)
}

fn name_of(account: usize) -> Option<UserName> {
    (account > 0).then(|| UserName::parse(&format!("u{account}")).unwrap())
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    src: usize,
    dst: usize,
    amount: i64,
    status: Status,
    reason: Option<FailReason>,
    refund_of: Option<usize>,
}

impl Row {
    fn new(src: usize, dst: usize, amount: i64, status: Status, refund_of: Option<usize>) -> Self {
        Self {
            src,
            dst,
            amount,
            status,
            reason: None,
            refund_of,
        }
    }
}

/// The indexes of the oldest `up_to` PENDING rows: what a settle of that
/// size takes, in both the book and the model.
fn oldest_pending(rows: &[Row], up_to: usize) -> Vec<usize> {
    (0..rows.len())
        .filter(|&i| rows[i].status == Status::Pending)
        .take(up_to)
        .collect()
}

/// The refund this op would queue, if its original is COMPLETED: the
/// original's payee pays its payer back.
fn refund_of(rows: &[Row], nth: usize, amount: i64) -> Option<(usize, usize, usize, i64)> {
    if rows.is_empty() {
        return None;
    }
    let i = nth % rows.len();
    (rows[i].status == Status::Completed).then_some((rows[i].dst, rows[i].src, i, amount))
}

/// What an engine stores, changed only as the rules say: the account map
/// an engine lends [`settle::settle_due`], and the transfers.
struct RulesBook {
    accounts: HashMap<BalanceKey, settle::Account>,
    rows: Vec<Row>,
}

impl Default for RulesBook {
    fn default() -> Self {
        Self {
            accounts: (0..=USERS as i64)
                .map(|id| (BalanceKey::default_currency(id), settle::Account::default()))
                .collect(),
            rows: Vec::new(),
        }
    }
}

impl RulesBook {
    fn account(&mut self, id: usize) -> &mut settle::Account {
        self.accounts
            .get_mut(&BalanceKey::default_currency(id as i64))
            .unwrap()
    }

    fn queue(&mut self, src: usize, dst: usize, amount: i64, refunds: Option<usize>) -> bool {
        let Ok(transfer) = NewTransfer::new(
            name_of(src),
            name_of(dst),
            Amount::from_minor_units(amount).unwrap(),
            None,
            None,
        ) else {
            return false;
        };
        let Ok((out, r#in)) = reserve_pending(
            &transfer,
            self.account(src).pending_out,
            self.account(dst).pending_in,
        ) else {
            return false;
        };
        self.account(src).pending_out = out;
        self.account(dst).pending_in = r#in;
        self.rows
            .push(Row::new(src, dst, amount, Status::Pending, refunds));
        true
    }

    fn hold(&mut self, src: usize, amount: i64) -> bool {
        let name = name_of(src).unwrap();
        let a = *self.account(src);
        let figures = plan::HoldFigures {
            balance: a.balance,
            held: a.held,
            overdraft: a.overdraft,
            frozen: a.frozen,
        };
        let Ok(held) = check_hold(
            &name,
            &figures,
            a.pending_out,
            amount,
            &crate::money::Currency::default(),
        ) else {
            return false;
        };
        self.account(src).held = held;
        self.rows.push(Row::new(src, 0, amount, Status::Held, None));
        true
    }

    /// Marks every hold EXPIRED, as an engine's statement does, and hands
    /// what it found to the rules.
    fn expire(&mut self) -> u64 {
        let mut found = Vec::new();
        for row in self.rows.iter_mut().filter(|r| r.status == Status::Held) {
            row.status = Status::Expired;
            found.push((BalanceKey::default_currency(row.src as i64), row.amount));
        }
        let mut released = Vec::new();
        let count = settle::expire_holds(found, &mut released);
        settle::release_holds(&released, &mut self.accounts).unwrap();
        count
    }

    fn cancel(&mut self, i: usize) -> bool {
        if check_cancellable(i as i64, self.rows[i].status.as_str()).is_err() {
            return false;
        }
        let Row {
            src, dst, amount, ..
        } = self.rows[i];
        let (out, r#in) = (self.account(src).pending_out, self.account(dst).pending_in);
        self.account(src).pending_out = release_pending(src as i64, out, amount).unwrap();
        self.account(dst).pending_in = release_pending(dst as i64, r#in, amount).unwrap();
        self.rows[i].status = Status::Cancelled;
        true
    }

    /// Reads the batch and what its refunds pay back as an engine does,
    /// has [`settle::settle_due`] decide it and stores the outcomes.
    fn settle(&mut self, up_to: usize) -> BatchCounts {
        let due: Vec<settle::Due> = oldest_pending(&self.rows, up_to)
            .into_iter()
            .map(|i| settle::Due {
                tx_id: i as i64,
                src: self.rows[i].src as i64,
                dst: self.rows[i].dst as i64,
                amount: self.rows[i].amount,
                currency: CurrencyId::DEFAULT,
                refund_of: self.rows[i].refund_of.map(|o| o as i64),
                pair: None,
            })
            .collect();
        let mut originals = HashMap::new();
        for original in due.iter().filter_map(|d| d.refund_of) {
            let refunded = self
                .rows
                .iter()
                .filter(|r| r.refund_of == Some(original as usize))
                .filter(|r| r.status == Status::Completed)
                .map(|r| r.amount)
                .sum();
            originals.insert(
                original,
                settle::Original {
                    amount: self.rows[original as usize].amount,
                    refunded,
                },
            );
        }
        let mut outcomes = Vec::new();
        let counts =
            settle::settle_due(&due, &mut self.accounts, &mut originals, &mut outcomes).unwrap();
        assert_eq!(outcomes.len(), due.len());
        for (d, outcome) in due.iter().zip(outcomes) {
            let row = &mut self.rows[d.tx_id as usize];
            row.status = outcome.status();
            row.reason = outcome.reason();
        }
        counts
    }

    /// One transfer per batch until `up_to` are decided or none is left.
    fn settle_one_by_one(&mut self, up_to: usize) -> BatchCounts {
        let mut total = BatchCounts::default();
        for _ in 0..up_to {
            let counts = self.settle(1);
            if counts.processed() == 0 {
                break;
            }
            total.completed += counts.completed;
            total.failed += counts.failed;
        }
        total
    }
}

/// The same session told plainly: wide integers, no rules functions.
#[derive(Default)]
struct PlainModel {
    rows: Vec<Row>,
    /// Each account's overdraft limit now, and the largest it ever had.
    limit: [i64; USERS + 1],
    largest_limit: [i64; USERS + 1],
    frozen: [bool; USERS + 1],
}

impl PlainModel {
    fn pending_sum(&self, account: usize, outgoing: bool) -> i128 {
        self.rows
            .iter()
            .filter(|r| r.status == Status::Pending)
            .filter(|r| {
                if outgoing {
                    r.src == account
                } else {
                    r.dst == account
                }
            })
            .map(|r| i128::from(r.amount))
            .sum()
    }

    fn held(&self, account: usize) -> i128 {
        self.rows
            .iter()
            .filter(|r| r.status == Status::Held && r.src == account)
            .map(|r| i128::from(r.amount))
            .sum()
    }

    fn balance(&self, account: usize) -> i128 {
        self.rows
            .iter()
            .filter(|r| r.status == Status::Completed)
            .map(|r| {
                let amount = i128::from(r.amount);
                match (r.src == account, r.dst == account) {
                    (true, _) => -amount,
                    (_, true) => amount,
                    _ => 0,
                }
            })
            .sum()
    }

    fn queue(&mut self, src: usize, dst: usize, amount: i64, refunds: Option<usize>) -> bool {
        let max = i128::from(i64::MAX);
        let refused = src == dst
            || self.pending_sum(src, true) + i128::from(amount) > max
            || self.pending_sum(dst, false) + i128::from(amount) > max;
        if !refused {
            self.rows
                .push(Row::new(src, dst, amount, Status::Pending, refunds));
        }
        !refused
    }

    fn hold(&mut self, src: usize, amount: i64) -> bool {
        let amount = i128::from(amount);
        let available = self.balance(src) + i128::from(self.limit[src])
            - self.pending_sum(src, true)
            - self.held(src);
        let placed = !self.frozen[src]
            && available >= amount
            && self.held(src) + amount <= i128::from(i64::MAX);
        if placed {
            self.rows
                .push(Row::new(src, 0, amount as i64, Status::Held, None));
        }
        placed
    }

    fn expire(&mut self) -> u64 {
        let mut count = 0;
        for row in self.rows.iter_mut().filter(|r| r.status == Status::Held) {
            row.status = Status::Expired;
            count += 1;
        }
        count
    }

    fn cancel(&mut self, i: usize) -> bool {
        let pending = self.rows[i].status == Status::Pending;
        if pending {
            self.rows[i].status = Status::Cancelled;
        }
        pending
    }

    fn settle(&mut self, up_to: usize) -> BatchCounts {
        let mut counts = BatchCounts::default();
        for i in oldest_pending(&self.rows, up_to) {
            let (src, dst, amount) = (self.rows[i].src, self.rows[i].dst, self.rows[i].amount);
            let (from, to) = (self.balance(src) - self.held(src), self.balance(dst));
            let amount = i128::from(amount);
            let range = i128::from(i64::MIN)..=i128::from(i64::MAX);
            let refunded = |original: usize| -> i128 {
                self.rows
                    .iter()
                    .filter(|r| r.refund_of == Some(original) && r.status == Status::Completed)
                    .map(|r| i128::from(r.amount))
                    .sum()
            };
            let (status, reason) = if src != 0 && self.frozen[src] {
                (Status::Failed, Some(FailReason::AccountFrozen))
            } else if src != 0 && from + i128::from(self.limit[src]) < amount {
                (Status::Failed, Some(FailReason::InsufficientFunds))
            } else if !range.contains(&(self.balance(src) - amount))
                || !range.contains(&(to + amount))
            {
                (Status::Failed, Some(FailReason::BalanceOverflow))
            } else if let Some(original) = self.rows[i].refund_of
                && refunded(original) + amount > i128::from(self.rows[original].amount)
            {
                (Status::Failed, Some(FailReason::RefundExceedsOriginal))
            } else {
                (Status::Completed, None)
            };
            match status {
                Status::Completed => counts.completed += 1,
                _ => counts.failed += 1,
            }
            self.rows[i].status = status;
            self.rows[i].reason = reason;
            if status == Status::Completed && src != 0 {
                assert!(
                    self.balance(src) >= -i128::from(self.limit[src]),
                    "a debit took user {src} below the limit in force"
                );
            }
        }
        counts
    }

    fn set_limit(&mut self, account: usize, overdraft: i64) {
        self.limit[account] = overdraft;
        self.largest_limit[account] = self.largest_limit[account].max(overdraft);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The rules' settle loop, fed batches of any size, against the plain
    /// model; and the same session settled one transfer per batch, which
    /// must reach the same outcomes and balances.
    #[test]
    fn sessions_decided_by_the_rules_equal_the_plain_model(ops in ops()) {
        let mut book = RulesBook::default();
        let mut single = RulesBook::default();
        let mut plain = PlainModel::default();
        for op in &ops {
            match *op {
                Op::Queue { src, dst, amount } => {
                    let queued = plain.queue(src, dst, amount, None);
                    prop_assert_eq!(book.queue(src, dst, amount, None), queued, "{:?}", op);
                    prop_assert_eq!(single.queue(src, dst, amount, None), queued, "{:?}", op);
                }
                Op::Refund { nth, amount } => {
                    if let Some((src, dst, original, amount)) = refund_of(&plain.rows, nth, amount) {
                        let queued = plain.queue(src, dst, amount, Some(original));
                        prop_assert_eq!(book.queue(src, dst, amount, Some(original)), queued, "{:?}", op);
                        prop_assert_eq!(single.queue(src, dst, amount, Some(original)), queued, "{:?}", op);
                    }
                }
                Op::Hold { src, amount } => {
                    let placed = plain.hold(src, amount);
                    prop_assert_eq!(book.hold(src, amount), placed, "{:?}", op);
                    prop_assert_eq!(single.hold(src, amount), placed, "{:?}", op);
                }
                Op::Expire => {
                    let count = plain.expire();
                    prop_assert_eq!(book.expire(), count);
                    prop_assert_eq!(single.expire(), count);
                }
                Op::Cancel { nth } if !book.rows.is_empty() => {
                    let i = nth % book.rows.len();
                    let cancelled = plain.cancel(i);
                    prop_assert_eq!(book.cancel(i), cancelled, "{:?}", op);
                    prop_assert_eq!(single.cancel(i), cancelled, "{:?}", op);
                }
                Op::Cancel { .. } => {}
                Op::Settle { up_to } => {
                    let counts = plain.settle(up_to);
                    prop_assert_eq!(book.settle(up_to), counts);
                    prop_assert_eq!(single.settle_one_by_one(up_to), counts);
                }
                Op::Limit { account, overdraft } => {
                    plain.set_limit(account, overdraft);
                    book.account(account).overdraft = overdraft;
                    single.account(account).overdraft = overdraft;
                }
                Op::Freeze { account, frozen } => {
                    plain.frozen[account] = frozen;
                    book.account(account).frozen = frozen;
                    single.account(account).frozen = frozen;
                }
            }
            prop_assert_eq!(&book.rows, &plain.rows);
            prop_assert_eq!(&single.rows, &plain.rows);
            prop_assert_eq!(&single.accounts, &book.accounts);
        }
        book.settle(usize::MAX);
        single.settle_one_by_one(usize::MAX);
        plain.settle(usize::MAX);
        prop_assert_eq!(&book.rows, &plain.rows);
        prop_assert_eq!(&single.rows, &plain.rows);
        for account in 0..=USERS {
            let figures = book.accounts[&BalanceKey::default_currency(account as i64)];
            prop_assert_eq!(i128::from(figures.balance), plain.balance(account));
            prop_assert_eq!(i128::from(figures.pending_out), plain.pending_sum(account, true));
            prop_assert_eq!(i128::from(figures.pending_in), plain.pending_sum(account, false));
            prop_assert_eq!(i128::from(figures.held), plain.held(account));
            if account > 0 {
                prop_assert!(
                    i128::from(figures.balance) >= -i128::from(plain.largest_limit[account]),
                    "no user below the largest limit it had"
                );
            }
        }
        prop_assert_eq!(
            book.accounts.values().map(|a| i128::from(a.balance)).sum::<i128>(),
            0,
            "money is conserved"
        );
    }
}

/// Balances in several currencies, as an engine lends them to
/// [`settle::settle_due`]: accounts 0 (external) to 3, each in currencies
/// 0 to 2, every user funded from the external account of that currency,
/// with pending sums that hold exactly the transfers `due` names.
fn books_in_currencies(
    funded: &[i64],
    limits: &[i64],
    held: &[i64],
    frozen: &[bool],
    due: &[settle::Due],
) -> HashMap<BalanceKey, settle::Account> {
    let mut accounts = HashMap::new();
    for currency in 0..CURRENCIES {
        let mut outside = 0;
        for account in 1..=3usize {
            let i = (account - 1) * CURRENCIES as usize + currency as usize;
            outside -= funded[i];
            accounts.insert(
                BalanceKey::new(account as i64, CurrencyId(currency)),
                settle::Account::read(
                    funded[i],
                    0,
                    0,
                    held[i].min(funded[i]),
                    limits[i],
                    frozen[account - 1],
                ),
            );
        }
        accounts.insert(
            BalanceKey::new(0, CurrencyId(currency)),
            settle::Account::read(outside, 0, 0, 0, 0, false),
        );
    }
    for d in due {
        accounts.get_mut(&d.src_key()).unwrap().pending_out += d.amount;
        accounts.get_mut(&d.dst_key()).unwrap().pending_in += d.amount;
    }
    accounts
}

const CURRENCIES: i16 = 3;

fn due_in_currencies() -> impl Strategy<Value = Vec<settle::Due>> {
    prop::collection::vec((0i64..4, 0i64..4, 1i64..400, 0..CURRENCIES), 1..60).prop_map(
        |transfers| {
            transfers
                .into_iter()
                .filter(|(src, dst, _, _)| src != dst)
                .enumerate()
                .map(|(i, (src, dst, amount, currency))| settle::Due {
                    tx_id: i as i64 + 1,
                    src,
                    dst,
                    amount,
                    currency: CurrencyId(currency),
                    refund_of: None,
                    pair: None,
                })
                .collect()
        },
    )
}

/// Settles `due` `batch` at a time, returning each transfer's outcome.
fn settle_in_batches(
    due: &[settle::Due],
    accounts: &mut HashMap<BalanceKey, settle::Account>,
    batch: usize,
) -> Vec<settle::Outcome> {
    let mut all = Vec::new();
    let mut outcomes = Vec::new();
    for chunk in due.chunks(batch) {
        settle::settle_due(chunk, accounts, &mut HashMap::new(), &mut outcomes).unwrap();
        all.extend_from_slice(&outcomes);
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A ledger of several currencies settles as one ledger per currency:
    /// a transfer in one currency never moves a figure of another (each
    /// transfer alone changes only its two balances in its currency), the
    /// batch decides every transfer as that currency's transfers decided
    /// alone would, and each currency sums to zero on its own, with
    /// nothing left pending.
    #[test]
    fn each_currency_settles_as_if_it_were_alone(
        due in due_in_currencies(),
        funded in prop::collection::vec(0i64..300, 9),
        limits in prop::collection::vec(prop_oneof![Just(0i64), 1i64..100], 9),
        held in prop::collection::vec(prop_oneof![Just(0i64), 1i64..100], 9),
        frozen in prop::collection::vec(prop::bool::weighted(0.2), 3),
        batch in 1usize..12,
    ) {
        let start = books_in_currencies(&funded, &limits, &held, &frozen, &due);

        let mut one_by_one = start.clone();
        for d in &due {
            let before = one_by_one.clone();
            settle_in_batches(std::slice::from_ref(d), &mut one_by_one, 1);
            for (key, figures) in &one_by_one {
                if *key != d.src_key() && *key != d.dst_key() {
                    prop_assert_eq!(figures, &before[key], "transfer {} moved {:?}", d.tx_id, key);
                }
            }
        }

        let mut together = start.clone();
        let outcomes = settle_in_batches(&due, &mut together, batch);
        for currency in (0..CURRENCIES).map(CurrencyId) {
            let alone_due: Vec<settle::Due> =
                due.iter().copied().filter(|d| d.currency == currency).collect();
            let mut alone: HashMap<BalanceKey, settle::Account> = start
                .iter()
                .filter(|(key, _)| key.currency == currency)
                .map(|(key, figures)| (*key, *figures))
                .collect();
            let alone_outcomes = settle_in_batches(&alone_due, &mut alone, usize::MAX);
            let mixed: Vec<settle::Outcome> = due
                .iter()
                .zip(&outcomes)
                .filter(|(d, _)| d.currency == currency)
                .map(|(_, outcome)| *outcome)
                .collect();
            prop_assert_eq!(&mixed, &alone_outcomes, "{:?}", currency);
            for (key, figures) in &alone {
                prop_assert_eq!(figures, &together[key], "{:?}", key);
                prop_assert_eq!(figures, &one_by_one[key], "{:?}", key);
            }
            let sum = |f: fn(&settle::Account) -> i64| -> i128 {
                alone.values().map(|a| i128::from(f(a))).sum()
            };
            prop_assert_eq!(sum(|a| a.balance), 0, "{:?} sums to zero", currency);
            prop_assert_eq!(sum(|a| a.pending_in), 0);
            prop_assert_eq!(sum(|a| a.pending_out), 0);
        }
    }
}

/// A sequence of plain transfers and exchanges in several currencies: an
/// exchange is two dues with consecutive ids, source to desk in one
/// currency and desk to source in another, each naming the other.
fn due_with_pairs() -> impl Strategy<Value = Vec<settle::Due>> {
    prop::collection::vec(
        (
            prop::bool::weighted(0.4),
            (0i64..4, 0i64..4, 1i64..400, 0..CURRENCIES),
            (1i64..400, 1..CURRENCIES),
        ),
        1..50,
    )
    .prop_map(|items| {
        let mut due = Vec::new();
        for (exchange, (src, dst, amount, currency), (counter, shift)) in items {
            if src == dst || (exchange && (src == 0 || dst == 0)) {
                continue;
            }
            let tx_id = due.len() as i64 + 1;
            let first = settle::Due {
                tx_id,
                src,
                dst,
                amount,
                currency: CurrencyId(currency),
                refund_of: None,
                pair: exchange.then_some(tx_id + 1),
            };
            due.push(first);
            if exchange {
                due.push(settle::Due {
                    tx_id: tx_id + 1,
                    src: dst,
                    dst: src,
                    amount: counter,
                    currency: CurrencyId((currency + shift) % CURRENCIES),
                    refund_of: None,
                    pair: Some(tx_id),
                });
            }
        }
        due
    })
}

/// Settles `due` in batches of about `batch`, never cutting a pair, as an
/// engine hands them over.
fn settle_whole_pairs(
    due: &[settle::Due],
    accounts: &mut HashMap<BalanceKey, settle::Account>,
    batch: usize,
) -> Vec<settle::Outcome> {
    let mut all = Vec::new();
    let mut outcomes = Vec::new();
    let mut start = 0;
    while start < due.len() {
        let mut end = (start + batch).min(due.len());
        if due[end - 1]
            .pair
            .is_some_and(|pair| pair > due[end - 1].tx_id)
        {
            end += 1;
        }
        settle::settle_due(
            &due[start..end],
            accounts,
            &mut HashMap::new(),
            &mut outcomes,
        )
        .unwrap();
        all.extend_from_slice(&outcomes);
        start = end;
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Exchanges among transfers: never exactly one leg of a pair
    /// completes; both legs end with the same status and reason, the
    /// reason of the first leg that could not be paid; each currency sums
    /// to zero with nothing left pending; and the result is the one a
    /// plain model gets by deciding each pair at its first leg, whatever
    /// the batch size.
    #[test]
    fn an_exchange_settles_whole_or_not_at_all(
        due in due_with_pairs(),
        funded in prop::collection::vec(0i64..300, 9),
        limits in prop::collection::vec(prop_oneof![Just(0i64), 1i64..100], 9),
        held in prop::collection::vec(prop_oneof![Just(0i64), 1i64..100], 9),
        frozen in prop::collection::vec(prop::bool::weighted(0.2), 3),
        batch in 1usize..12,
    ) {
        let start = books_in_currencies(&funded, &limits, &held, &frozen, &due);
        let mut books = start.clone();
        let outcomes = settle_whole_pairs(&due, &mut books, batch);
        prop_assert_eq!(outcomes.len(), due.len());

        // The model: balances per key, a user pays what its balance and
        // limit cover beyond what it holds, unless frozen.
        let mut model: HashMap<BalanceKey, i64> =
            start.iter().map(|(key, a)| (*key, a.balance)).collect();
        let fits = |model: &HashMap<BalanceKey, i64>, d: &settle::Due| -> Option<FailReason> {
            if d.src == 0 {
                return None;
            }
            let figures = &start[&d.src_key()];
            if figures.frozen {
                return Some(FailReason::AccountFrozen);
            }
            (model[&d.src_key()] + figures.overdraft - figures.held < d.amount)
                .then_some(FailReason::InsufficientFunds)
        };
        let mut expected: Vec<Option<FailReason>> = vec![None; due.len()];
        let mut i = 0;
        while i < due.len() {
            let legs = if due[i].pair.is_some() { 2 } else { 1 };
            let reason = due[i..i + legs].iter().find_map(|d| fits(&model, d));
            for (j, d) in due.iter().enumerate().skip(i).take(legs) {
                expected[j] = reason;
                if reason.is_none() {
                    *model.get_mut(&d.src_key()).unwrap() -= d.amount;
                    *model.get_mut(&d.dst_key()).unwrap() += d.amount;
                }
            }
            i += legs;
        }
        for ((d, outcome), wanted) in due.iter().zip(&outcomes).zip(&expected) {
            prop_assert_eq!(outcome.reason(), *wanted, "transfer {}", d.tx_id);
        }
        for (i, d) in due.iter().enumerate() {
            if d.pair == Some(d.tx_id + 1) {
                prop_assert_eq!(outcomes[i].status(), outcomes[i + 1].status());
                prop_assert_eq!(outcomes[i].reason(), outcomes[i + 1].reason());
            }
        }
        for (key, balance) in &model {
            prop_assert_eq!(books[key].balance, *balance, "{:?}", key);
        }
        for currency in (0..CURRENCIES).map(CurrencyId) {
            let of = |f: fn(&settle::Account) -> i64| -> i128 {
                books
                    .iter()
                    .filter(|(key, _)| key.currency == currency)
                    .map(|(_, a)| i128::from(f(a)))
                    .sum()
            };
            prop_assert_eq!(of(|a| a.balance), 0, "{:?} sums to zero", currency);
            prop_assert_eq!(of(|a| a.pending_in), 0);
            prop_assert_eq!(of(|a| a.pending_out), 0);
        }
    }
}

fn leg(tx_id: i64, src: i64, dst: i64, amount: i64, currency: i16, pair: i64) -> settle::Due {
    settle::Due {
        tx_id,
        src,
        dst,
        amount,
        currency: CurrencyId(currency),
        refund_of: None,
        pair: Some(pair),
    }
}

#[test]
fn a_pair_fails_with_the_reason_of_its_first_failing_leg_and_moves_nothing() {
    // The desk (2) is frozen and the user (1) short: the first leg's
    // reason wins.
    let due = [leg(1, 1, 2, 50, 0, 2), leg(2, 2, 1, 7, 1, 1)];
    let mut accounts = books_in_currencies(
        &[10, 0, 0, 0, 100, 0, 0, 0, 0],
        &[0; 9],
        &[0; 9],
        &[false, true, false],
        &due,
    );
    let before = accounts.clone();
    let mut outcomes = Vec::new();
    let counts =
        settle::settle_due(&due, &mut accounts, &mut HashMap::new(), &mut outcomes).unwrap();
    assert_eq!(counts.failed, 2);
    assert_eq!(
        outcomes.iter().map(|o| o.reason()).collect::<Vec<_>>(),
        [Some(FailReason::InsufficientFunds); 2]
    );
    for (key, figures) in &accounts {
        assert_eq!(figures.balance, before[key].balance, "{key:?}");
    }
    // Funded, the user passes and the frozen desk's leg fails both.
    let mut accounts = books_in_currencies(
        &[100, 0, 0, 0, 100, 0, 0, 0, 0],
        &[0; 9],
        &[0; 9],
        &[false, true, false],
        &due,
    );
    settle::settle_due(&due, &mut accounts, &mut HashMap::new(), &mut outcomes).unwrap();
    assert_eq!(
        outcomes.iter().map(|o| o.reason()).collect::<Vec<_>>(),
        [Some(FailReason::AccountFrozen); 2]
    );
}

#[test]
fn a_leg_without_its_partner_in_the_batch_is_a_damaged_ledger() {
    let due = [leg(1, 1, 2, 5, 0, 2)];
    let mut accounts = books_in_currencies(&[100; 9], &[0; 9], &[0; 9], &[false; 3], &due);
    let err =
        settle::settle_due(&due, &mut accounts, &mut HashMap::new(), &mut Vec::new()).unwrap_err();
    assert_eq!(err.code(), "integrity");
}

#[test]
fn an_exchange_needs_two_currencies_and_a_leg_is_never_refunded_or_cancelled_alone() {
    let counter = |currency| {
        Kind::Exchange(crate::ledger::model::Counter {
            amount: Amount::from_minor_units(5).unwrap(),
            currency: CurrencyId(currency),
        })
    };
    let same = request(user("alice"), user("desk"), 10)
        .with_kind(counter(0))
        .unwrap_err();
    assert_eq!(same.code(), "invalid_currency");
    assert!(same.to_string().contains("two currencies"));
    assert_eq!(
        request(None, user("desk"), 10)
            .with_kind(counter(1))
            .unwrap_err()
            .code(),
        "invalid_line"
    );
    assert!(
        request(user("alice"), user("desk"), 10)
            .with_kind(counter(1))
            .is_ok()
    );

    let refused = check_refund(
        12,
        "COMPLETED",
        (100, Some(11)),
        0,
        10,
        &crate::money::Currency::new("PHP", 2).unwrap(),
    )
    .unwrap_err();
    assert_eq!(refused.code(), "not_refundable");
    assert_eq!(
        refused.to_string(),
        "transfer 12 is one leg of exchange 11/12; a leg cannot be refunded alone"
    );

    assert!(check_pair_cancellable((11, "PENDING"), Some((12, "PENDING"))).is_ok());
    assert_eq!(
        check_pair_cancellable((11, "PENDING"), Some((12, "COMPLETED")))
            .unwrap_err()
            .code(),
        "not_pending"
    );
    assert_eq!(
        check_pair_cancellable((11, "FAILED"), Some((12, "PENDING")))
            .unwrap_err()
            .code(),
        "not_pending"
    );
    assert_eq!(
        check_pair_cancellable((11, "PENDING"), None)
            .unwrap_err()
            .code(),
        "integrity"
    );
}

#[test]
fn a_reused_key_names_the_exchanged_field_that_differs() {
    let key = IdempotencyKey::parse("swap-1").unwrap();
    let earlier = Pinned::stored(
        1,
        2,
        (500, CurrencyId(0)),
        None,
        StoredAs::Transfer { refund_of: None },
    )
    .with_counter(Some((7, CurrencyId(1))));
    let replay = replay_or_conflict(&key, 9, Status::Pending, earlier, earlier).unwrap();
    assert!(replay.replayed);
    for (field, requested) in [
        (
            "exchanged amount",
            earlier.with_counter(Some((8, CurrencyId(1)))),
        ),
        (
            "exchanged currency",
            earlier.with_counter(Some((7, CurrencyId(2)))),
        ),
        ("kind (exchange or transfer)", earlier.with_counter(None)),
    ] {
        match replay_or_conflict(&key, 9, Status::Pending, earlier, requested) {
            Err(WalletError::IdempotencyConflict { field: named, .. }) => assert_eq!(named, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}
