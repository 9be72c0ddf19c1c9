//! Instants and durations as people write them: RFC 3339, a date, `30m`;
//! and the one text form an instant is shown in. The ledger counts time in
//! Unix milliseconds.

use ::time::OffsetDateTime;

use crate::error::{Result, WalletError};
use crate::text::echo;

/// `2026-11-25T19:56:05.123Z`: RFC 3339 in UTC with millisecond precision,
/// fixed width so that the strings sort as the instants do.
pub(crate) fn rfc3339(ms: i64) -> String {
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

/// An instant given on the command line: RFC 3339 (`2026-11-25T19:56:05Z`,
/// any offset), or a date (`2026-11-25`), which means the end of that day
/// in UTC: the last millisecond before the next one begins.
pub(crate) fn parse_instant(text: &str) -> Result<i64> {
    parse_bound(text, false)
}

/// As [`parse_instant`], but a date means the start of that day (UTC): the
/// lower bound of a range such as `export --since`.
pub(crate) fn parse_instant_from(text: &str) -> Result<i64> {
    parse_bound(text, true)
}

fn parse_bound(text: &str, day_start: bool) -> Result<i64> {
    use ::time::format_description::well_known::Rfc3339;
    let refuse = |why| WalletError::InvalidTime {
        input: echo(text),
        why,
    };
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| refuse("it is out of range"));
    }
    let date_format = ::time::macros::format_description!("[year]-[month]-[day]");
    match ::time::Date::parse(text, &date_format) {
        Ok(date) if day_start => {
            i64::try_from(date.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| refuse("it is out of range"))
        }
        Ok(date) => {
            let next = date
                .next_day()
                .ok_or_else(|| refuse("it is out of range"))?
                .midnight()
                .assume_utc();
            i64::try_from(next.unix_timestamp_nanos() / 1_000_000 - 1)
                .map_err(|_| refuse("it is out of range"))
        }
        Err(_) => Err(refuse(
            "expected RFC 3339 (2026-11-25T19:56:05Z) or a date (2026-11-25)",
        )),
    }
}

/// A duration such as `90s`, `30m`, `12h` or `7d`, in milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<i64> {
    let refuse = |why| WalletError::InvalidTime {
        input: echo(text),
        why,
    };
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(refuse("it must start with a whole number (e.g. 30m)"));
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| refuse("it needs a unit: s, m, h or d (e.g. 30m)"))?;
    let (digits, unit) = text.split_at(split);
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(refuse("the unit must be s, m, h or d (e.g. 30m)")),
    };
    let count: i64 = digits
        .parse()
        .map_err(|_| refuse("it must start with a whole number (e.g. 30m)"))?;
    if count == 0 {
        return Err(refuse("it must be longer than zero"));
    }
    count
        .checked_mul(unit_ms)
        .ok_or_else(|| refuse("it is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_instants_dates_and_durations() {
        assert_eq!(parse_instant("1970-01-01T00:00:01Z").unwrap(), 1_000);
        assert_eq!(parse_instant("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert_eq!(parse_instant("1970-01-01").unwrap(), 86_400_000 - 1);
        assert!(parse_instant("yesterday").is_err());
        assert_eq!(parse_duration("90s").unwrap(), 90_000);
        assert_eq!(parse_duration("2h").unwrap(), 7_200_000);
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5w").is_err());
    }

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_636_565_123), "2026-11-25T19:56:05.123Z");
    }
}
