//! A ledger's currencies: how `currency add` answers a code the ledger
//! already has, and which id a new currency takes.

use crate::error::{Result, WalletError};
use crate::money::{Currency, CurrencyId};

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
    fn ids_end_at_the_largest_small_integer() {
        let err = add_currency(None, Some(CurrencyId(i16::MAX)), &btc(8)).unwrap_err();
        assert_eq!(err.code(), "invalid_currency");
    }
}
