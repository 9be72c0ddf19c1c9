//! What the bank tests' models share about currencies and exchanges: the
//! second currency their users hold, amounts in either, and the audits of
//! what the ledger stored: both legs of every exchange linked, mirrored
//! and decided alike (never one applied without the other, at the end and
//! in every snapshot read while the run goes on), and each currency
//! summing to zero on its own.

use std::collections::BTreeMap;

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
