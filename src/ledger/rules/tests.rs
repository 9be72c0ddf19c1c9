//! The rules alone, with no database: each rule by example, and random
//! sequences of queue, cancel and settle decided by the rules held to a
//! plain model written without them.

use proptest::prelude::*;

use super::*;
use crate::domain::{IdempotencyKey, UserName};
use crate::ledger::model::{FailReason, Status};
use crate::money::Amount;

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
        500,
        Some("rent"),
        StoredAs::Transfer { refund_of: None },
    );
    let replayed = replay_or_conflict(&key, 9, Status::Completed, earlier, earlier).unwrap();
    assert_eq!(
        replayed,
        Queued {
            tx_id: 9,
            status: Status::Completed,
            replayed: true
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
            "memo",
            Pinned {
                memo: None,
                ..earlier
            },
        ),
    ];
    // Several fields differ: the first in the order source, destination,
    // amount, memo is named.
    let all_differ = Pinned::stored(3, 4, 1, None, StoredAs::Transfer { refund_of: None });
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

#[test]
fn settlement_decides_by_the_balance_it_sees() {
    assert_eq!(
        decide(1, 100, 0, 0, 100),
        Decision::Complete {
            src_balance: 0,
            dst_balance: 100
        }
    );
    assert_eq!(
        decide(1, 99, 0, 0, 100),
        Decision::Fail(FailReason::InsufficientFunds)
    );
    // The outside world pays whatever it is asked to.
    assert_eq!(
        decide(EXTERNAL_ACCOUNT, 0, 0, 0, 100),
        Decision::Complete {
            src_balance: -100,
            dst_balance: 100
        }
    );
    assert_eq!(
        decide(1, 10, 0, i64::MAX, 10),
        Decision::Fail(FailReason::BalanceOverflow)
    );
    assert_eq!(
        decide(EXTERNAL_ACCOUNT, i64::MIN + 5, 0, 0, 10),
        Decision::Fail(FailReason::BalanceOverflow)
    );
}

/// One step of a random session. Accounts are numbered, 0 the outside.
#[derive(Debug, Clone)]
enum Op {
    Queue { src: usize, dst: usize, amount: i64 },
    Cancel { nth: usize },
    Settle { up_to: usize },
}

const USERS: usize = 4;

fn ops() -> impl Strategy<Value = Vec<Op>> {
    // Mostly everyday amounts, sometimes one near the top of the range,
    // so that pending sums and balances reach their limits.
    let amount = prop_oneof![
        8 => 1i64..400,
        1 => (i64::MAX - 1000)..=i64::MAX,
    ];
    let op = prop_oneof![
        6 => (0..=USERS, 0..=USERS, amount).prop_map(|(src, dst, amount)| Op::Queue { src, dst, amount }),
        1 => (0usize..64).prop_map(|nth| Op::Cancel { nth }),
        2 => (1usize..8).prop_map(|up_to| Op::Settle { up_to }),
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
}

/// The indexes of the oldest `up_to` PENDING rows: what a settle of that
/// size takes, in both the book and the model.
fn oldest_pending(rows: &[Row], up_to: usize) -> Vec<usize> {
    (0..rows.len())
        .filter(|&i| rows[i].status == Status::Pending)
        .take(up_to)
        .collect()
}

/// What an engine stores, kept in vectors and changed only as the rules say.
#[derive(Default)]
struct RulesBook {
    balance: [i64; USERS + 1],
    pending_in: [i64; USERS + 1],
    pending_out: [i64; USERS + 1],
    rows: Vec<Row>,
}

impl RulesBook {
    fn queue(&mut self, src: usize, dst: usize, amount: i64) -> bool {
        let Ok(transfer) = NewTransfer::new(
            name_of(src),
            name_of(dst),
            Amount::from_minor_units(amount).unwrap(),
            None,
            None,
        ) else {
            return false;
        };
        let Ok((out, r#in)) =
            reserve_pending(&transfer, self.pending_out[src], self.pending_in[dst])
        else {
            return false;
        };
        self.pending_out[src] = out;
        self.pending_in[dst] = r#in;
        self.rows.push(Row {
            src,
            dst,
            amount,
            status: Status::Pending,
            reason: None,
        });
        true
    }

    fn leave_pending(&mut self, i: usize) {
        let Row {
            src, dst, amount, ..
        } = self.rows[i];
        self.pending_out[src] = release_pending(src as i64, self.pending_out[src], amount).unwrap();
        self.pending_in[dst] = release_pending(dst as i64, self.pending_in[dst], amount).unwrap();
    }

    fn cancel(&mut self, i: usize) -> bool {
        if stored_status(self.rows[i].status.as_str()).unwrap() != Status::Pending {
            return false;
        }
        self.leave_pending(i);
        self.rows[i].status = Status::Cancelled;
        true
    }

    fn settle(&mut self, up_to: usize) {
        for i in oldest_pending(&self.rows, up_to) {
            let Row {
                src, dst, amount, ..
            } = self.rows[i];
            match decide(src as i64, self.balance[src], 0, self.balance[dst], amount) {
                Decision::Complete {
                    src_balance,
                    dst_balance,
                } => {
                    self.balance[src] = src_balance;
                    self.balance[dst] = dst_balance;
                    self.rows[i].status = Status::Completed;
                }
                Decision::Fail(reason) => {
                    self.rows[i].status = Status::Failed;
                    self.rows[i].reason = Some(reason);
                }
            }
            self.leave_pending(i);
        }
    }
}

/// The same session told plainly: wide integers, no rules functions.
#[derive(Default)]
struct PlainModel {
    rows: Vec<Row>,
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

    fn queue(&mut self, src: usize, dst: usize, amount: i64) -> bool {
        let max = i128::from(i64::MAX);
        let refused = src == dst
            || self.pending_sum(src, true) + i128::from(amount) > max
            || self.pending_sum(dst, false) + i128::from(amount) > max;
        if !refused {
            self.rows.push(Row {
                src,
                dst,
                amount,
                status: Status::Pending,
                reason: None,
            });
        }
        !refused
    }

    fn cancel(&mut self, i: usize) -> bool {
        let pending = self.rows[i].status == Status::Pending;
        if pending {
            self.rows[i].status = Status::Cancelled;
        }
        pending
    }

    fn settle(&mut self, up_to: usize) {
        for i in oldest_pending(&self.rows, up_to) {
            let (src, dst, amount) = (self.rows[i].src, self.rows[i].dst, self.rows[i].amount);
            let (from, to) = (self.balance(src), self.balance(dst));
            let amount = i128::from(amount);
            let range = i128::from(i64::MIN)..=i128::from(i64::MAX);
            let (status, reason) = if src != 0 && from < amount {
                (Status::Failed, Some(FailReason::InsufficientFunds))
            } else if !range.contains(&(from - amount)) || !range.contains(&(to + amount)) {
                (Status::Failed, Some(FailReason::BalanceOverflow))
            } else {
                (Status::Completed, None)
            };
            self.rows[i].status = status;
            self.rows[i].reason = reason;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sessions_decided_by_the_rules_equal_the_plain_model(ops in ops()) {
        let mut book = RulesBook::default();
        let mut plain = PlainModel::default();
        for op in &ops {
            match *op {
                Op::Queue { src, dst, amount } => {
                    prop_assert_eq!(book.queue(src, dst, amount), plain.queue(src, dst, amount), "{:?}", op);
                }
                Op::Cancel { nth } if !book.rows.is_empty() => {
                    let i = nth % book.rows.len();
                    prop_assert_eq!(book.cancel(i), plain.cancel(i), "{:?}", op);
                }
                Op::Cancel { .. } => {}
                Op::Settle { up_to } => {
                    book.settle(up_to);
                    plain.settle(up_to);
                }
            }
            prop_assert_eq!(&book.rows, &plain.rows);
        }
        book.settle(usize::MAX);
        plain.settle(usize::MAX);
        prop_assert_eq!(&book.rows, &plain.rows);
        for account in 0..=USERS {
            prop_assert_eq!(i128::from(book.balance[account]), plain.balance(account));
            prop_assert_eq!(i128::from(book.pending_out[account]), plain.pending_sum(account, true));
            prop_assert_eq!(i128::from(book.pending_in[account]), plain.pending_sum(account, false));
            if account > 0 {
                prop_assert!(book.balance[account] >= 0, "no user below zero");
            }
        }
        prop_assert_eq!(book.balance.iter().map(|b| i128::from(*b)).sum::<i128>(), 0, "money is conserved");
    }
}
