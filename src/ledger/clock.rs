//! Timestamps: stored as Unix milliseconds, shown as RFC 3339 UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, the form timestamps take in the ledger.
pub fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// `2026-11-25T19:56:05.123Z`: RFC 3339 in UTC with millisecond precision,
/// fixed width so that the strings sort as the instants do.
pub fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return format!("invalid timestamp {ms}");
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_636_565_123), "2026-11-25T19:56:05.123Z");
    }
}
