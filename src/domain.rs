//! Validated values that cross from the command line into the ledger: names, emails, keys, memos.

use std::fmt;

use crate::error::WalletError;
use crate::text::{echo, is_invisible};

/// A user name: 1–32 ASCII letters, digits, `.`, `_`, `-`, starting with a
/// letter or digit. Kept as typed; the ledger compares it without case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(input: &str) -> Result<Self, WalletError> {
        let refuse = |why| WalletError::InvalidName {
            input: echo(input),
            why,
        };
        if input.is_empty() {
            return Err(refuse("it is empty"));
        }
        if input.chars().count() > 32 {
            return Err(refuse("it is longer than 32 characters"));
        }
        if !input.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(refuse("it must start with an ASCII letter or digit"));
        }
        if !input
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(refuse("use only ASCII letters, digits, '.', '_' and '-'"));
        }
        Ok(Self(input.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, checked only as far as a ledger needs: one `@`, a
/// non-empty local part, a dotted domain, no whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, WalletError> {
        let refuse = |why| WalletError::InvalidEmail {
            input: echo(input),
            why,
        };
        if input.is_empty() {
            return Err(refuse("it is empty"));
        }
        if input.chars().count() > 254 {
            return Err(refuse("it is longer than 254 characters"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refuse("it contains whitespace or control characters"));
        }
        // Internationalised addresses would need IDN handling to compare and
        // show safely; printable ASCII cannot hide a character.
        if !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(refuse(
                "use only printable ASCII (internationalised addresses are not supported)",
            ));
        }
        let mut parts = input.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(refuse("it must contain exactly one '@'"));
        };
        if local.is_empty() {
            return Err(refuse("the part before '@' is empty"));
        }
        if !domain.contains('.') {
            return Err(refuse("the domain must contain a dot, like example.com"));
        }
        if domain.split('.').any(|label| label.is_empty()) {
            return Err(refuse(
                "the domain has an empty part (a dot at its start or end, or two in a row)",
            ));
        }
        Ok(Self(input.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A caller-chosen idempotency key: 1–128 printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A key given or not; every front end reads `--id`/`"id"` the same way.
    pub(crate) fn parse_optional(input: Option<&str>) -> Result<Option<Self>, WalletError> {
        input.map(Self::parse).transpose()
    }

    pub fn parse(input: &str) -> Result<Self, WalletError> {
        let refuse = |why| WalletError::InvalidKey {
            input: echo(input),
            why,
        };
        if input.is_empty() {
            return Err(refuse("it is empty"));
        }
        if input.chars().count() > 128 {
            return Err(refuse("it is longer than 128 characters"));
        }
        if input.chars().any(is_invisible) {
            return Err(refuse(
                "it contains control, invisible or unassigned characters",
            ));
        }
        Ok(Self(input.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A free-text note on a transfer: at most 256 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memo(String);

impl Memo {
    pub(crate) const MAX_CHARS: usize = 256;

    /// A memo given or not; an empty memo is no memo, so it is stored as
    /// none and compares equal to none when a key is replayed.
    pub(crate) fn parse_optional(input: Option<&str>) -> Result<Option<Self>, WalletError> {
        input
            .filter(|memo| !memo.is_empty())
            .map(Self::parse)
            .transpose()
    }

    pub fn parse(input: &str) -> Result<Self, WalletError> {
        let refuse = |why| WalletError::InvalidMemo {
            input: echo(input),
            why,
        };
        if input.chars().count() > Self::MAX_CHARS {
            return Err(refuse("it is longer than 256 characters"));
        }
        if input.chars().any(is_invisible) {
            return Err(refuse(
                "it contains control, invisible or unassigned characters",
            ));
        }
        Ok(Self(input.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in [
            "alice",
            "A",
            "bob.smith",
            "x_1-2",
            "9lives",
            &"a".repeat(32),
        ] {
            assert!(UserName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-bob",
            ".x",
            "_x",
            "al ice",
            "alice!",
            "élise",
            &"a".repeat(33),
            "a\n",
            "'; DROP TABLE accounts; --",
        ] {
            assert_eq!(
                UserName::parse(bad).unwrap_err().code(),
                "invalid_name",
                "{bad}"
            );
        }
    }

    #[test]
    fn emails() {
        for good in ["a@b.co", "alice+tag@mail.example.com"] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
        let long = format!("{}@example.com", "a".repeat(243));
        for bad in [
            "",
            "alice",
            "@b.co",
            "a@b",
            "a@@b.co",
            "a@b@c.co",
            "a b@c.co",
            "a@b.co\n",
            "a@.co",
            "a@b.",
            &long,
            "ü@exämple.de",
            "a\u{202e}@b.co",
            "a\u{200b}@b.co",
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err().code(),
                "invalid_email",
                "{bad}"
            );
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(242))).is_ok());
    }

    #[test]
    fn keys_and_memos() {
        assert!(IdempotencyKey::parse("order-42 retry").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("a\tb").is_err());
        assert!(Memo::parse("").is_ok());
        assert!(Memo::parse("rent — november").is_ok());
        assert!(Memo::parse("a\u{7}").is_err());
        assert!(Memo::parse("rtl \u{202e} gnp.exe").is_err());
        assert!(IdempotencyKey::parse("\u{202e}key").is_err());
        assert!(IdempotencyKey::parse("key\u{200b}").is_err());
    }
}
