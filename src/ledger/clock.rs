//! The ledger's clock: now, in Unix milliseconds, which a debug build's
//! tests may set.

use std::time::{SystemTime, UNIX_EPOCH};

/// Read by debug builds only: an instant (RFC 3339 or Unix milliseconds)
/// that stands for "now", so tests can place holds and let them expire.
pub(crate) const TEST_CLOCK_VAR: &str = "WALLET_TEST_NOW";

/// The instant the test clock names, in a debug build where it is set.
pub(crate) fn test_now() -> Option<i64> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let text = std::env::var(TEST_CLOCK_VAR).ok()?;
    text.parse::<i64>()
        .ok()
        .or_else(|| crate::time::parse_instant(&text).ok())
}

/// Milliseconds since the Unix epoch, the form timestamps take in the ledger.
pub(crate) fn now_ms() -> i64 {
    if let Some(now) = test_now() {
        return now;
    }
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// How an instant is shown, for the messages the ledger writes.
pub(crate) use crate::time::rfc3339;
