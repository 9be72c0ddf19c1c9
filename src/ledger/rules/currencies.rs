//! A ledger's currencies: how `currency add` answers a code the ledger
//! already has, and which id a new currency takes.

use crate::error::{Result, WalletError};
use crate::money::{Currencies, Currency, CurrencyId};

/// What `currency add` does with the code asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddCurrency {
    /// The code is new: it takes this id.
    Insert(CurrencyId),
    /// The same code with the same scale is there already: a retry, which
    /// answers the currency as it is.
    Replay(CurrencyId),
}

/// Decides `currency add` of `wanted` from the row already stored under its
/// code (its id and scale), if any, and the largest id in use. A scale
/// never changes once added, so the same code with another scale is
/// `currency_exists`; ids are handed out in order and end at the largest
/// `smallint`.
pub(crate) fn add_currency(
    stored: Option<(CurrencyId, i64)>,
    largest: Option<CurrencyId>,
    wanted: &Currency,
) -> Result<AddCurrency> {
    match stored {
        Some((id, scale)) if scale == i64::from(wanted.scale) => Ok(AddCurrency::Replay(id)),
        Some((_, scale)) => Err(WalletError::CurrencyExists {
            code: wanted.code.clone(),
            scale,
            wanted: wanted.scale,
        }),
        None => match largest {
            None => Ok(AddCurrency::Insert(CurrencyId::DEFAULT)),
            Some(CurrencyId(id)) => id
                .checked_add(1)
                .map(CurrencyId)
                .map(AddCurrency::Insert)
                .ok_or_else(|| {
                    WalletError::InvalidCurrency(format!(
                        "the ledger holds {} currencies, the most it can; '{}' cannot be added",
                        i32::from(i16::MAX) + 1,
                        wanted.code
                    ))
                }),
        },
    }
}

/// The ledger's currencies from its stored rows (id, code, scale) in id
/// order. Ids are handed out from 0 without a gap and scales are small,
/// so a row that breaks either, or no row at all, was not written by
/// wallet: `integrity`, which `verify` locates.
pub(crate) fn listed(rows: impl IntoIterator<Item = (i64, String, i64)>) -> Result<Currencies> {
    let mut list = Vec::new();
    for (id, code, scale) in rows {
        match u8::try_from(scale) {
            Ok(scale) if usize::try_from(id).ok() == Some(list.len()) => {
                list.push(Currency { code, scale });
            }
            _ => {
                return Err(WalletError::Integrity(format!(
                    "currency {id} ({}, scale {scale}) is not one wallet writes; run `wallet verify`",
                    crate::text::echo(&code)
                )));
            }
        }
    }
    Currencies::from_ordered(list).ok_or_else(|| {
        WalletError::Integrity(
            "the ledger lists no currencies, so its default is unknown; run `wallet verify`".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btc(scale: u8) -> Currency {
        Currency::new("BTC", scale).unwrap()
    }

    #[test]
    fn a_new_code_takes_the_next_id() {
        let next = add_currency(None, Some(CurrencyId(0)), &btc(8)).unwrap();
        assert_eq!(next, AddCurrency::Insert(CurrencyId(1)));
    }

    #[test]
    fn the_same_code_and_scale_replays_and_another_scale_conflicts() {
        let stored = Some((CurrencyId(3), 8));
        assert_eq!(
            add_currency(stored, Some(CurrencyId(5)), &btc(8)).unwrap(),
            AddCurrency::Replay(CurrencyId(3))
        );
        let err = add_currency(stored, Some(CurrencyId(5)), &btc(2)).unwrap_err();
        assert_eq!(err.code(), "currency_exists");
        assert_eq!(err.exit_code(), 4);
    }

    #[test]
    fn stored_rows_are_listed_only_in_order_from_zero() {
        let row = |id: i64, code: &str, scale: i64| (id, code.to_string(), scale);
        let list = listed([row(0, "PHP", 2), row(1, "BTC", 8)]).unwrap();
        assert_eq!(list.by_code("btc").unwrap().0, CurrencyId(1));
        for rows in [
            vec![],
            vec![row(1, "BTC", 8)],
            vec![row(0, "PHP", 2), row(2, "BTC", 8)],
            vec![row(0, "PHP", -1)],
        ] {
            assert_eq!(listed(rows).unwrap_err().code(), "integrity");
        }
    }

    #[test]
    fn a_default_currency_that_disagrees_with_ledger_meta_is_a_finding() {
        use crate::ledger::rules::verify::{DefaultCurrency, default_currency_problem};
        let php = Some(("PHP".to_string(), 2));
        let same = DefaultCurrency {
            meta: php.clone(),
            listed: php.clone(),
        };
        assert_eq!(default_currency_problem(&same), None);
        let scale = DefaultCurrency {
            meta: php.clone(),
            listed: Some(("PHP".to_string(), 0)),
        };
        let problem = default_currency_problem(&scale).unwrap();
        assert!(problem.message.contains("PHP with 2"), "{problem:?}");
        let missing = DefaultCurrency {
            meta: php.clone(),
            listed: None,
        };
        assert!(default_currency_problem(&missing).is_some());
        // A missing ledger_meta row is its own check's finding.
        let no_meta = DefaultCurrency {
            meta: None,
            listed: php,
        };
        assert_eq!(default_currency_problem(&no_meta), None);
    }

    #[test]
    fn ids_end_at_the_largest_small_integer() {
        let err = add_currency(None, Some(CurrencyId(i16::MAX)), &btc(8)).unwrap_err();
        assert_eq!(err.code(), "invalid_currency");
    }
}
