//! Fuzz target: the amount parser accepts only plain positive decimals, and what it accepts formats back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wallet::money::Currency;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for scale in [0, 2, 12] {
        let currency = Currency::new("XTS", scale).expect("a valid currency");
        if let Ok(amount) = currency.parse_amount(text) {
            let minor = amount.minor_units();
            assert!(minor > 0, "{text:?} parsed to {minor}");
            assert!(
                text.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
                "{text:?} has more than digits and a dot"
            );
            let shown = currency.format(minor);
            let again = currency
                .parse_amount(&shown)
                .expect("formatted amounts parse");
            assert_eq!(again.minor_units(), minor, "{text:?} -> {shown:?}");
        }
    }
});
