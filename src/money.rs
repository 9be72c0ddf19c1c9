//! Exact money: a ledger currency and amounts held as `i64` counts of minor units.

use crate::error::WalletError;
use crate::text::echo;

/// The most decimal places a ledger may use; more would leave too little
/// room in an `i64` for whole units.
pub(crate) const MAX_SCALE: u8 = 12;

/// A ledger's currency: a code shown next to amounts and the number of
/// decimal places every amount has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency {
    pub code: String,
    pub scale: u8,
}

impl Default for Currency {
    fn default() -> Self {
        Self {
            code: "PHP".into(),
            scale: 2,
        }
    }
}

impl Currency {
    /// Validates a currency as `init` receives it: 2–8 ASCII letters or
    /// digits starting with a letter (ISO 4217 codes and common tickers),
    /// upper-cased, and a scale of at most [`MAX_SCALE`].
    pub fn new(code: &str, scale: u8) -> Result<Self, WalletError> {
        let valid = (2..=8).contains(&code.len())
            && code.starts_with(|c: char| c.is_ascii_alphabetic())
            && code.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(WalletError::InvalidCurrency(format!(
                "'{code}' is not 2-8 ASCII letters or digits starting with a letter"
            )));
        }
        if scale > MAX_SCALE {
            return Err(WalletError::InvalidCurrency(format!(
                "scale {scale} is more than the {MAX_SCALE} decimal places supported"
            )));
        }
        Ok(Self {
            code: code.to_ascii_uppercase(),
            scale,
        })
    }

    /// Parses a positive amount written as a plain decimal (`100`, `100.5`,
    /// `0.01`) into minor units. Anything else is refused rather than
    /// guessed at: signs, exponents, separators, whitespace, more decimals
    /// than the currency has, zero, and values past `i64`.
    pub fn parse_amount(&self, input: &str) -> Result<Amount, WalletError> {
        let minor = self.parse_minor(input)?;
        if minor == 0 {
            return Err(WalletError::InvalidAmount {
                input: echo(input),
                why: "it must be greater than zero".into(),
            });
        }
        Ok(Amount(minor))
    }

    /// Parses a limit: written like an amount ([`Currency::parse_amount`]),
    /// but zero is allowed and means none.
    pub(crate) fn parse_limit(&self, input: &str) -> Result<i64, WalletError> {
        self.parse_minor(input)
    }

    /// A plain decimal, zero included, in minor units.
    fn parse_minor(&self, input: &str) -> Result<i64, WalletError> {
        let refuse = |why: String| WalletError::InvalidAmount {
            input: echo(input),
            why,
        };
        if input.is_empty() {
            return Err(refuse("it is empty".into()));
        }
        let (whole, fraction) = match input.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (input, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
            return Err(refuse(
                "write a plain positive decimal such as 100, 100.5 or 0.01".into(),
            ));
        }
        // `0.5` has its one zero; `01` or `007` reads like a typo (or an
        // octal number), so it is refused rather than guessed at.
        if whole.len() > 1 && whole.starts_with('0') {
            return Err(refuse(
                "leading zeros are not allowed; write it as 1, 100 or 0.50".into(),
            ));
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > usize::from(self.scale) {
            return Err(refuse(match self.scale {
                0 => format!("{} has no decimal places", self.code),
                1 => format!("{} allows at most 1 decimal place", self.code),
                scale => format!("{} allows at most {scale} decimal places", self.code),
            }));
        }
        let too_large = || refuse("it is too large for the ledger".into());
        let mut minor: i64 = 0;
        let padding = usize::from(self.scale) - fraction.len();
        let digits = whole
            .bytes()
            .chain(fraction.bytes())
            .chain(std::iter::repeat_n(b'0', padding));
        for digit in digits {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(digit - b'0')))
                .ok_or_else(too_large)?;
        }
        Ok(minor)
    }

    /// Formats minor units with exactly the currency's decimals; negative
    /// values appear only for the ledger's external account.
    pub fn format(&self, minor: i64) -> String {
        let scale = u32::from(self.scale);
        let sign = if minor < 0 { "-" } else { "" };
        let magnitude = minor.unsigned_abs();
        if scale == 0 {
            return format!("{sign}{magnitude}");
        }
        let unit = 10u64.pow(scale);
        format!(
            "{sign}{}.{:0width$}",
            magnitude / unit,
            magnitude % unit,
            width = scale as usize
        )
    }

    /// Formats a recomputed sum, which may lie outside `i64` on a damaged
    /// ledger.
    pub fn format_wide(&self, minor: i128) -> String {
        match i64::try_from(minor) {
            Ok(minor) => self.format(minor),
            Err(_) => format!("{minor} minor units"),
        }
    }
}

/// A strictly positive amount of money in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(i64);

impl Amount {
    pub fn minor_units(self) -> i64 {
        self.0
    }

    /// Rebuilds an amount read back from the ledger, where the schema
    /// already guarantees it is positive.
    pub fn from_minor_units(minor: i64) -> Option<Self> {
        (minor > 0).then_some(Self(minor))
    }
}

/// A currency's number in its ledger: the default, the one `init` named,
/// is 0, and each `currency add` takes the next. Stored as a small integer
/// beside every transfer and balance, so a ledger of one currency carries
/// nothing for it but zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CurrencyId(pub i16);

impl CurrencyId {
    pub const DEFAULT: CurrencyId = CurrencyId(0);
}

/// The currencies of one ledger, in the order they were added: the default
/// first. A scale never changes once added, so a process may keep the
/// list; it only grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currencies {
    list: Vec<Currency>,
}

impl Currencies {
    /// The list of a ledger whose default currency is `default`.
    pub fn new(default: Currency) -> Self {
        Self {
            list: vec![default],
        }
    }

    /// The list read back from a ledger, in id order; `None` when it is
    /// empty, as no ledger is.
    pub fn from_ordered(list: Vec<Currency>) -> Option<Self> {
        (!list.is_empty()).then_some(Self { list })
    }

    pub fn default_currency(&self) -> &Currency {
        &self.list[0]
    }

    pub fn get(&self, id: CurrencyId) -> Option<&Currency> {
        usize::try_from(id.0).ok().and_then(|i| self.list.get(i))
    }

    /// The currency a user named, by code in any case; an unknown code is
    /// `invalid_currency`, naming the ones the ledger has.
    pub fn by_code(&self, code: &str) -> Result<(CurrencyId, &Currency), WalletError> {
        self.iter()
            .find(|(_, c)| c.code.eq_ignore_ascii_case(code))
            .ok_or_else(|| {
                let known: Vec<&str> = self.list.iter().map(|c| c.code.as_str()).collect();
                WalletError::InvalidCurrency(format!(
                    "'{}' is not a currency of this ledger (it has {})",
                    echo(code),
                    known.join(", ")
                ))
            })
    }

    /// Each currency with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (CurrencyId, &Currency)> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, c)| (CurrencyId(i as i16), c))
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn php() -> Currency {
        Currency::default()
    }

    #[test]
    fn a_ledger_finds_its_currencies_by_code_in_any_case_and_names_them_when_not() {
        let btc = Currency::new("BTC", 8).unwrap();
        let list = Currencies::from_ordered(vec![php(), btc.clone()]).unwrap();
        assert_eq!(list.default_currency(), &php());
        assert_eq!(list.by_code("btc").unwrap(), (CurrencyId(1), &btc));
        assert_eq!(list.get(CurrencyId(1)), Some(&btc));
        assert_eq!(list.get(CurrencyId(2)), None);
        assert_eq!(list.get(CurrencyId(-1)), None);
        let unknown = list.by_code("EUR").unwrap_err();
        assert_eq!(unknown.code(), "invalid_currency");
        assert!(unknown.to_string().contains("PHP, BTC"), "{unknown}");
        assert!(Currencies::from_ordered(Vec::new()).is_none());
    }

    #[test]
    fn accepts_the_contract_examples() {
        let c = php();
        assert_eq!(c.parse_amount("100").unwrap().minor_units(), 10_000);
        assert_eq!(c.parse_amount("100.5").unwrap().minor_units(), 10_050);
        assert_eq!(c.parse_amount("100.50").unwrap().minor_units(), 10_050);
        assert_eq!(c.parse_amount("0.01").unwrap().minor_units(), 1);
        assert_eq!(c.parse_amount("0.50").unwrap().minor_units(), 50);
    }

    #[test]
    fn a_limit_is_read_like_an_amount_but_may_be_zero() {
        let c = php();
        for zero in ["0", "0.0", "0.00"] {
            assert_eq!(c.parse_limit(zero).unwrap(), 0, "{zero}");
        }
        assert_eq!(c.parse_limit("50").unwrap(), 5_000);
        assert_eq!(c.parse_limit("0.01").unwrap(), 1);
        for bad in ["", "-5", "-0", "+5", "1.001", "00", "01", "abc", "1e3"] {
            let err = c.parse_limit(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_amount", "{bad}");
        }
        assert!(
            c.parse_amount("0").is_err(),
            "an amount still may not be zero"
        );
    }

    #[test]
    fn leading_zeros_are_refused_but_a_lone_zero_before_the_point() {
        let c = php();
        for typo in ["007", "01", "00.50", "000000000000001"] {
            let err = c.parse_amount(typo).unwrap_err();
            assert_eq!(err.code(), "invalid_amount", "{typo}");
            assert!(err.to_string().contains("leading zeros"), "{err}");
        }
        assert_eq!(c.parse_amount("10").unwrap().minor_units(), 1_000);
    }

    #[test]
    fn refuses_every_malformed_amount() {
        let c = php();
        for bad in [
            "",
            "0",
            "0.00",
            "-5",
            "+5",
            "1.001",
            "1e3",
            "1E3",
            "1,000",
            " 1",
            "1 ",
            "1_000",
            ".5",
            "5.",
            "abc",
            "0x10",
            "١٢",
            "１",
            "1..2",
            "NaN",
            "inf",
            "-0",
            "1.-1",
            "92233720368547758.08",
            "99999999999999999999",
        ] {
            let err = c.parse_amount(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_amount", "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_largest_amount_fits_and_one_more_does_not() {
        let c = php();
        assert_eq!(
            c.parse_amount("92233720368547758.07")
                .unwrap()
                .minor_units(),
            i64::MAX
        );
        assert!(c.parse_amount("92233720368547758.08").is_err());
    }

    #[test]
    fn scale_zero_has_no_decimal_point() {
        let jpy = Currency::new("jpy", 0).unwrap();
        assert_eq!(jpy.code, "JPY");
        assert_eq!(jpy.parse_amount("500").unwrap().minor_units(), 500);
        assert!(jpy.parse_amount("500.0").is_err());
        assert_eq!(jpy.format(500), "500");
    }

    #[test]
    fn formats_with_exact_decimals_and_sign() {
        let c = php();
        assert_eq!(c.format(0), "0.00");
        assert_eq!(c.format(5), "0.05");
        assert_eq!(c.format(10_050), "100.50");
        assert_eq!(c.format(-10_050), "-100.50");
        assert_eq!(c.format(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn refuses_bad_currencies() {
        assert!(Currency::new("P", 2).is_err());
        assert!(Currency::new("1AB", 2).is_err());
        assert!(Currency::new("PHP", 13).is_err());
        assert!(Currency::new("US D", 2).is_err());
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(minor in 1i64..=i64::MAX, scale in 0u8..=MAX_SCALE) {
            let c = Currency::new("XTS", scale).unwrap();
            let text = c.format(minor);
            prop_assert_eq!(c.parse_amount(&text).unwrap().minor_units(), minor);
        }

        #[test]
        fn parse_then_format_is_canonical(whole in 0u64..1_000_000_000, cents in 0u8..100) {
            prop_assume!(whole > 0 || cents > 0);
            let c = php();
            let text = format!("{whole}.{cents:02}");
            let amount = c.parse_amount(&text).unwrap();
            prop_assert_eq!(c.format(amount.minor_units()), text);
        }

        #[test]
        fn arbitrary_strings_never_panic(input in "\\PC{0,40}") {
            let _ = php().parse_amount(&input);
        }

        #[test]
        fn anything_with_a_non_digit_is_refused(
            prefix in "[0-9]{0,5}", bad in "[^0-9.]", suffix in "[0-9]{0,5}"
        ) {
            let input = format!("{prefix}{bad}{suffix}");
            prop_assert!(php().parse_amount(&input).is_err());
        }

        #[test]
        fn overflow_is_refused_never_wrapped(extra in 1u64..1_000_000) {
            let c = Currency::new("XTS", 0).unwrap();
            let too_big = (i64::MAX as u128) + u128::from(extra);
            prop_assert!(c.parse_amount(&too_big.to_string()).is_err());
        }
    }

    /// What the contract accepts, written independently of the parser: ASCII
    /// digits, optionally a dot and 1..=scale more, nonzero, at most
    /// `i64::MAX` minor units.
    fn oracle(input: &str, scale: u8) -> Option<i64> {
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        let (whole, fraction) = input.split_once('.').unwrap_or((input, ""));
        if !digits(whole) || (input.contains('.') && !digits(fraction)) {
            return None;
        }
        if fraction.len() > usize::from(scale) || (whole.len() > 1 && whole.starts_with('0')) {
            return None;
        }
        let padded = format!("{whole}{fraction:0<width$}", width = usize::from(scale));
        let value: u128 = padded.parse().ok()?;
        (value > 0 && value <= i64::MAX as u128).then_some(value as i64)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn the_parser_accepts_exactly_what_the_contract_allows(
            input in "[0-9.+\\-eE, _١２]{0,24}|[0-9]{1,21}(\\.[0-9]{0,4})?",
            scale in 0u8..=4,
        ) {
            let currency = Currency::new("XTS", scale).unwrap();
            let parsed = currency.parse_amount(&input).ok().map(Amount::minor_units);
            prop_assert_eq!(parsed, oracle(&input, scale), "{:?} at scale {}", input, scale);
        }
    }
}
