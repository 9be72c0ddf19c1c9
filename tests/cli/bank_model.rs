//! What the bank tests' models share about currencies and exchanges: the
//! second currency their users hold, amounts in either, and the audits of
//! what the ledger stored: both legs of every exchange linked, mirrored
//! and decided alike (never one applied without the other, at the end and
//! in every snapshot read while the run goes on), and each currency
//! summing to zero on its own.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::common::Rng;

/// The id `transfers.currency` gives the ledger's default currency (PHP,
/// 2 places) and the one the bank tests add first.
pub(crate) const DEFAULT: i16 = 0;
pub(crate) const OTHER: i16 = 1;
/// The code and scale of [`OTHER`].
pub(crate) const OTHER_CODE: &str = "BTC";
pub(crate) const OTHER_SCALE: u32 = 8;

/// How many minor units of [`OTHER`] the writers use where they would use
/// one of the default currency, so amounts and limits in both are of a
/// size and the same runs of funds fail in each.
pub(crate) const OTHER_PER_DEFAULT: i64 = 1_000_000;

/// The code the commands name currency `currency` by.
pub(crate) fn code(currency: i16) -> &'static str {
    match currency {
        DEFAULT => "PHP",
        OTHER => OTHER_CODE,
        other => panic!("no currency {other} in the bank"),
    }
}

fn scale(currency: i16) -> u32 {
    match currency {
        DEFAULT => 2,
        _ => OTHER_SCALE,
    }
}

/// `minor` units of `currency` as the CLI takes and prints them.
pub(crate) fn money_in(minor: i64, currency: i16) -> String {
    let unit = 10_i64.pow(scale(currency));
    let sign = if minor < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:0width$}",
        minor.abs() / unit,
        minor.abs() % unit,
        width = scale(currency) as usize
    )
}

/// An amount the CLI printed in `currency`, as minor units.
pub(crate) fn parse_in(text: &str, currency: i16) -> i64 {
    let (whole, fraction) = text.split_once('.').expect("an amount with decimals");
    assert_eq!(fraction.len(), scale(currency) as usize, "{text}");
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap();
    sign * (whole * 10_i64.pow(scale(currency)) + fraction.parse::<i64>().unwrap())
}

/// A transfer row as the audits read it, by account ids (0 is the
/// external account).
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub src: i64,
    pub dst: i64,
    pub amount: i64,
    pub currency: i16,
    pub pair: Option<i64>,
    pub status: String,
    pub reason: Option<String>,
    pub settled_at: Option<i64>,
    /// The settle batch that decided it, where the engine records one.
    pub batch: Option<i64>,
}

/// How the exchanges stored ended, counted by pairs.
#[derive(Debug, Default)]
pub(crate) struct Pairs {
    pub completed: usize,
    pub failed: usize,
    pub cancelled: usize,
}

/// Asserts what every exchange in `rows` (by tx_id) must be: each leg's
/// partner exists and links back; the first leg (the smaller id) moves
/// the user's money to the desk and the second the desk's back, in the
/// other currency; and both legs were decided alike: the same status (so
/// no leg COMPLETED or FAILED without its partner), the same reason, the
/// same instant and the same settle batch. Returns how the pairs ended.
pub(crate) fn check_pairs(rows: &BTreeMap<i64, Row>) -> Pairs {
    let mut pairs = Pairs::default();
    for (&tx_id, first) in rows {
        let Some(pair) = first.pair else { continue };
        let second = rows
            .get(&pair)
            .unwrap_or_else(|| panic!("leg {tx_id} names a partner {pair} that does not exist"));
        assert_eq!(
            second.pair,
            Some(tx_id),
            "leg {pair} does not link back to {tx_id}"
        );
        if pair < tx_id {
            continue;
        }
        assert_eq!(
            (second.src, second.dst),
            (first.dst, first.src),
            "exchange {tx_id}/{pair}: the legs mirror each other"
        );
        assert_ne!(
            first.currency, second.currency,
            "exchange {tx_id}/{pair} moves two currencies"
        );
        assert_eq!(
            (&first.status, &first.reason),
            (&second.status, &second.reason),
            "exchange {tx_id}/{pair}: one leg was decided without the other: {first:?} {second:?}"
        );
        assert_eq!(
            (first.settled_at, first.batch),
            (second.settled_at, second.batch),
            "exchange {tx_id}/{pair}: the legs were decided apart: {first:?} {second:?}"
        );
        match first.status.as_str() {
            "COMPLETED" => pairs.completed += 1,
            "FAILED" => pairs.failed += 1,
            "CANCELLED" => pairs.cancelled += 1,
            other => panic!("exchange {tx_id}/{pair} left {other}"),
        }
    }
    pairs
}

/// Asserts that no exchange was ever seen half applied: in one snapshot of
/// `(tx_id, pair_tx_id, status)` of the legs, each leg's partner is there
/// with the same status.
pub(crate) fn check_snapshot(legs: &[(i64, i64, String)]) {
    let status: BTreeMap<i64, &str> = legs.iter().map(|(t, _, s)| (*t, s.as_str())).collect();
    for (tx_id, pair, leg_status) in legs {
        assert_eq!(
            status.get(pair).copied(),
            Some(leg_status.as_str()),
            "a snapshot shows leg {tx_id} {leg_status} and its partner {pair} otherwise"
        );
    }
}

/// Each account's balance in each currency, summed from the COMPLETED
/// rows, after asserting that every currency sums to zero over all
/// accounts, the external account's included.
pub(crate) fn completed_sums(rows: &BTreeMap<i64, Row>) -> BTreeMap<(i64, i16), i64> {
    let mut sums: BTreeMap<(i64, i16), i64> = BTreeMap::new();
    for row in rows.values().filter(|r| r.status == "COMPLETED") {
        *sums.entry((row.src, row.currency)).or_default() -= row.amount;
        *sums.entry((row.dst, row.currency)).or_default() += row.amount;
    }
    for currency in [DEFAULT, OTHER] {
        let total: i64 = sums
            .iter()
            .filter(|((_, c), _)| *c == currency)
            .map(|(_, v)| v)
            .sum();
        assert_eq!(total, 0, "currency {currency} sums to zero on its own");
    }
    sums
}

/// Asserts that a drained ledger shows `user` (account `account`, its
/// `get-user --json` answer in `shown_user`) with the balance `balances`
/// holds for it in each currency, and nothing pending.
pub(crate) fn assert_settled_user(
    shown_user: &serde_json::Value,
    who: &str,
    account: i64,
    balances: &BTreeMap<(i64, i16), i64>,
) {
    for currency in [DEFAULT, OTHER] {
        let expected = balances.get(&(account, currency)).copied().unwrap_or(0);
        assert_eq!(
            shown(shown_user, currency),
            (expected, 0, 0),
            "{who} in {}: balance, pending in and out",
            code(currency)
        );
    }
}

/// The figures a user shows in one currency, from `get-user --json`'s
/// `balances` (absent: never touched, all zero).
pub(crate) fn shown(user: &serde_json::Value, currency: i16) -> (i64, i64, i64) {
    let figures = &user["balances"][code(currency)];
    if figures.is_null() {
        return (0, 0, 0);
    }
    let figure = |name: &str| {
        parse_in(
            figures[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} in {user}")),
            currency,
        )
    };
    (
        figure("balance"),
        figure("pending_in"),
        figure("pending_out"),
    )
}

/// The users (`user0`, …) and then the desk users exchanges go through
/// (`desk0`, …), created in that order after the external account.
#[derive(Clone, Copy)]
pub(crate) struct Population {
    pub users: usize,
    pub desks: usize,
}

/// What a writer asked for and was told: `None` on a side is the outside
/// world; an exchange is two, each leg naming the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub src: Option<usize>,
    pub dst: Option<usize>,
    pub amount: i64,
    pub currency: i16,
    pub pair: Option<i64>,
}

/// What a writer queues next.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Deposit,
    Withdraw,
    Transfer,
    /// An `exchange` command.
    Exchange,
    /// A batch of one to three lines, most of them exchanges.
    Batch,
}

/// One exchange to queue: `user` gives `amount` of `currency` to `desk`
/// for `for_amount` of `for_currency`.
struct Exchange {
    user: usize,
    desk: usize,
    amount: i64,
    currency: i16,
    for_amount: i64,
    for_currency: i16,
}

/// A command that queues, with the requests of what each of its answers
/// (each line of a batch) queued: one transfer, or an exchange's two legs.
pub(crate) struct Queue {
    pub args: Vec<String>,
    requests: Vec<Vec<Request>>,
}

/// What a writer queued under one command, to replay it: its arguments,
/// and the tx_id (with the partner's, for an exchange) of each answer.
pub(crate) struct Mine {
    pub args: Vec<String>,
    pub ids: Vec<(i64, Option<i64>)>,
}

/// A currency picked at random, the default more often.
fn currency(rng: &mut Rng) -> i16 {
    if rng.below(3) == 0 { OTHER } else { DEFAULT }
}

/// A random amount in `currency`: up to 400.00 (in BTC 400 whole coins)
/// against balances of a few hundred, so many fail.
fn amount(rng: &mut Rng, currency: i16) -> i64 {
    let ceiling = if rng.below(2) == 0 { 5_000 } else { 40_000 };
    let amount = 1 + rng.below(ceiling) as i64;
    if currency == OTHER {
        amount * OTHER_PER_DEFAULT
    } else {
        amount
    }
}

impl Population {
    /// A user's name, or a desk's for the indexes after the users.
    pub(crate) fn name(self, user: usize) -> String {
        if user < self.users {
            format!("user{user}")
        } else {
            format!("desk{}", user - self.users)
        }
    }

    /// A user (never a desk) picked at random.
    pub(crate) fn user(self, rng: &mut Rng) -> usize {
        rng.below(self.users as u64) as usize
    }

    /// The account id of user (or desk) `user`.
    pub(crate) fn account_id(self, user: usize) -> i64 {
        user as i64 + 1
    }

    /// What a writer asked for that made `row`.
    pub(crate) fn request_of(self, row: &Row) -> Request {
        let user = |id: i64| (id != 0).then(|| usize::try_from(id - 1).unwrap());
        Request {
            src: user(row.src),
            dst: user(row.dst),
            amount: row.amount,
            currency: row.currency,
            pair: row.pair,
        }
    }

    fn exchange(self, rng: &mut Rng) -> Exchange {
        let currency = currency(rng);
        let for_currency = if currency == DEFAULT { OTHER } else { DEFAULT };
        Exchange {
            user: self.user(rng),
            desk: self.users + rng.below(self.desks as u64) as usize,
            amount: amount(rng, currency),
            currency,
            for_amount: amount(rng, for_currency),
            for_currency,
        }
    }

    fn transfer(self, rng: &mut Rng, op: Op) -> Request {
        let currency = currency(rng);
        let amount = amount(rng, currency);
        let (src, dst) = match op {
            Op::Deposit => (None, Some(self.user(rng))),
            Op::Withdraw => (Some(self.user(rng)), None),
            _ => {
                let src = self.user(rng);
                let dst = (src + 1 + rng.below(self.users as u64 - 1) as usize) % self.users;
                (Some(src), Some(dst))
            }
        };
        Request {
            src,
            dst,
            amount,
            currency,
            pair: None,
        }
    }

    fn legs(self, exchange: &Exchange) -> Vec<Request> {
        vec![
            Request {
                src: Some(exchange.user),
                dst: Some(exchange.desk),
                amount: exchange.amount,
                currency: exchange.currency,
                pair: None,
            },
            Request {
                src: Some(exchange.desk),
                dst: Some(exchange.user),
                amount: exchange.for_amount,
                currency: exchange.for_currency,
                pair: None,
            },
        ]
    }

    /// The command for `op` under idempotency key `key` (a batch's lines
    /// keyed `KEY-N`, its file written into `dir`), in a random currency.
    pub(crate) fn queue(self, rng: &mut Rng, op: Op, key: &str, dir: &Path) -> Queue {
        match op {
            Op::Exchange => {
                let x = self.exchange(rng);
                let args = vec![
                    "exchange".into(),
                    self.name(x.user),
                    money_in(x.amount, x.currency),
                    code(x.currency).into(),
                    "--for".into(),
                    money_in(x.for_amount, x.for_currency),
                    code(x.for_currency).into(),
                    "--via".into(),
                    self.name(x.desk),
                    "--id".into(),
                    key.into(),
                ];
                Queue {
                    args,
                    requests: vec![self.legs(&x)],
                }
            }
            Op::Batch => {
                let mut lines = String::new();
                let mut requests = Vec::new();
                for line in 0..1 + rng.below(3) {
                    let id = format!("{key}-{line}");
                    let doc = if rng.below(3) > 0 {
                        let x = self.exchange(rng);
                        requests.push(self.legs(&x));
                        json!({
                            "exchange": true,
                            "src": self.name(x.user),
                            "via": self.name(x.desk),
                            "amount": money_in(x.amount, x.currency),
                            "currency": code(x.currency),
                            "for_amount": money_in(x.for_amount, x.for_currency),
                            "for_currency": code(x.for_currency),
                            "id": id,
                        })
                    } else {
                        let request = self.transfer(rng, Op::Transfer);
                        let doc = json!({
                            "src": request.src.map(|u| self.name(u)),
                            "dst": request.dst.map(|u| self.name(u)),
                            "amount": money_in(request.amount, request.currency),
                            "currency": code(request.currency),
                            "id": id,
                        });
                        requests.push(vec![request]);
                        doc
                    };
                    lines.push_str(&doc.to_string());
                    lines.push('\n');
                }
                let path = dir.join(format!("{key}.jsonl"));
                std::fs::write(&path, lines).unwrap();
                Queue {
                    args: vec![
                        "transfer".into(),
                        "--batch".into(),
                        path.to_str().unwrap().into(),
                    ],
                    requests,
                }
            }
            _ => {
                let request = self.transfer(rng, op);
                let mut args = match (request.src, request.dst) {
                    (None, Some(dst)) => vec!["deposit".to_string(), self.name(dst)],
                    (Some(src), None) => vec!["withdraw".to_string(), self.name(src)],
                    (Some(src), Some(dst)) => {
                        vec!["transfer".to_string(), self.name(src), self.name(dst)]
                    }
                    (None, None) => unreachable!(),
                };
                args.push(money_in(request.amount, request.currency));
                // The default named now and then, as it may be.
                if request.currency != DEFAULT || rng.below(4) == 0 {
                    args.extend(["--currency".into(), code(request.currency).into()]);
                }
                args.extend(["--id".into(), key.into()]);
                Queue {
                    args,
                    requests: vec![vec![request]],
                }
            }
        }
    }
}

impl Queue {
    pub(crate) fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// Records in `queued` what the command's successful output `out`
    /// says it queued, each leg linked to its partner, and returns the ids
    /// of each answer.
    pub(crate) fn record(
        &self,
        out: &Output,
        queued: &mut BTreeMap<i64, Request>,
    ) -> Vec<(i64, Option<i64>)> {
        assert!(
            out.status.success(),
            "{:?}: {}",
            self.args,
            String::from_utf8_lossy(&out.stderr)
        );
        let ids = queued_ids(out);
        assert_eq!(
            ids.len(),
            self.requests.len(),
            "{:?}: one answer a line",
            self.args
        );
        for ((tx_id, pair, replayed), legs) in ids.iter().zip(&self.requests) {
            let made: Vec<(i64, Request)> = match (legs.as_slice(), pair) {
                ([request], None) => vec![(*tx_id, request.clone())],
                ([first, second], Some(pair)) => vec![
                    (
                        *tx_id,
                        Request {
                            pair: Some(*pair),
                            ..first.clone()
                        },
                    ),
                    (
                        *pair,
                        Request {
                            pair: Some(*tx_id),
                            ..second.clone()
                        },
                    ),
                ],
                _ => panic!("{:?}: {tx_id} {pair:?} is not what was asked", self.args),
            };
            for (tx_id, request) in made {
                // A batch retried after a busy ledger or a lost answer
                // replays the lines it had queued before, whose answers
                // were not read.
                let previous = queued.insert(tx_id, request.clone());
                assert!(
                    previous.is_none() || (*replayed && previous == Some(request)),
                    "tx_id {tx_id} handed out twice"
                );
            }
        }
        ids.iter().map(|(t, p, _)| (*t, *p)).collect()
    }
}

/// The tx_id, partner and `replayed` of every answer a queueing command
/// printed: one, or a batch's result lines, none of which may be an error.
pub(crate) fn queued_ids(out: &Output) -> Vec<(i64, Option<i64>, bool)> {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|line| {
            let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(doc.get("error").is_none(), "a line was refused: {line}");
            (
                doc["tx_id"].as_i64().unwrap_or_else(|| panic!("{line}")),
                doc["pair_tx_id"].as_i64(),
                doc["replayed"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}
