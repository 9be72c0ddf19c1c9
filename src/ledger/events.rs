//! The change feed: what an event is, as every engine reads it, and the
//! cursor a consumer resumes from.
//!
//! Engines only select the rows of `events` with what they are about (the
//! transfer, or the policy change and its account); what an event says of
//! them (the status it gave a transfer, the amount it names, the currency
//! it is counted in) is decided here, once, by [`EventRow::into_record`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{Result, WalletError};
use crate::money::Currency;

use super::model::{Instant, Status, TxId};
use super::store::Store;

/// How long `--follow` waits before it looks for new commits again: short
/// enough that an event shows within a fraction of a second, long enough
/// that a follower costs its ledger nothing noticeable.
pub(crate) const FOLLOW_PAUSE: Duration = Duration::from_millis(100);

/// Where a consumer stopped, as the feed prints it: an opaque string that
/// `--after` takes back. Its form depends on how the engine orders
/// commits: a ledger file commits one writer at a time, so an event's id
/// is its place; on PostgreSQL the place is the writing transaction's id
/// and then the event's (see `postgres/events.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cursor {
    /// `7`: the event id, on a ledger file.
    EventId(i64),
    /// `1234.7`: the transaction id and the event id, on PostgreSQL.
    Commit { xid: u64, event_id: i64 },
}

impl Cursor {
    /// Reads a cursor as `--after` is given it; the message says what a
    /// cursor looks like.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let number = |part: &str| -> Option<u64> {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        };
        let event_id = |part: &str| number(part).and_then(|n| i64::try_from(n).ok());
        let parsed = match text.split_once('.') {
            None => event_id(text).map(Cursor::EventId),
            Some((xid, id)) => number(xid)
                .zip(event_id(id))
                .map(|(xid, event_id)| Cursor::Commit { xid, event_id }),
        };
        parsed.ok_or_else(|| {
            "not a cursor: give the \"cursor\" of an event `wallet events` printed (\"7\" on a ledger file, \"1234.7\" on PostgreSQL)".to_string()
        })
    }

    /// The usage error for a cursor of the other engine's form.
    pub(crate) fn foreign(&self) -> WalletError {
        let (found, wanted) = match self {
            Cursor::EventId(_) => ("a ledger file", "\"1234.7\""),
            Cursor::Commit { .. } => ("PostgreSQL", "\"7\""),
        };
        WalletError::Usage(format!(
            "--after {self} is a cursor of a ledger on {found}; this ledger's cursors look like {wanted}"
        ))
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cursor::EventId(id) => write!(f, "{id}"),
            Cursor::Commit { xid, event_id } => write!(f, "{xid}.{event_id}"),
        }
    }
}

/// What happened, as the `kind` column stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    HoldPlaced,
    HoldCaptured,
    HoldReleased,
    HoldExpired,
    /// A transfer's final status: COMPLETED or FAILED by settle, CANCELLED.
    TransferDecided,
    PolicyChanged,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::HoldPlaced,
        EventKind::HoldCaptured,
        EventKind::HoldReleased,
        EventKind::HoldExpired,
        EventKind::TransferDecided,
        EventKind::PolicyChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::HoldPlaced => "hold_placed",
            EventKind::HoldCaptured => "hold_captured",
            EventKind::HoldReleased => "hold_released",
            EventKind::HoldExpired => "hold_expired",
            EventKind::TransferDecided => "transfer_decided",
            EventKind::PolicyChanged => "policy_changed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The kind as a ledger file stores it: a small code, a decision's 0,
    /// which SQLite stores in no byte at all (a settle batch writes one
    /// row per decision).
    pub fn code(self) -> i64 {
        match self {
            EventKind::TransferDecided => 0,
            EventKind::HoldPlaced => 1,
            EventKind::HoldCaptured => 2,
            EventKind::HoldReleased => 3,
            EventKind::HoldExpired => 4,
            EventKind::PolicyChanged => 5,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The status this event gave its transfer: a hold's events name the
    /// status they moved it to, a decision the one it ended in (`stored`,
    /// which never changes once decided).
    fn status_given(self, stored: Status) -> Status {
        match self {
            EventKind::HoldPlaced => Status::Held,
            EventKind::HoldCaptured => Status::Pending,
            EventKind::HoldReleased => Status::Released,
            EventKind::HoldExpired => Status::Expired,
            EventKind::TransferDecided | EventKind::PolicyChanged => stored,
        }
    }
}

/// One event of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub event_id: i64,
    pub cursor: Cursor,
    pub kind: EventKind,
    /// The instant the engine stamped the change with.
    pub at: Instant,
    pub tx_id: Option<TxId>,
    pub change_id: Option<i64>,
    pub about: About,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum About {
    Transfer {
        /// The status the event gave the transfer.
        status: Status,
        /// Why it failed, for a FAILED decision only.
        reason: Option<String>,
        /// User names; `None` is the external account.
        from: Option<String>,
        to: Option<String>,
        /// A hold's amount while it reserves or gives back money; the
        /// amount that moves once captured or decided.
        amount: i64,
        /// The currency the amount is in.
        currency: Currency,
        memo: Option<String>,
        /// The other leg, for a leg of an exchange.
        pair_tx_id: Option<TxId>,
    },
    Policy {
        user: String,
        /// `overdraft`, `freeze`, `unfreeze` or `close`.
        change: String,
        /// The new limit, for an `overdraft` change.
        overdraft: Option<i64>,
        /// The limit's currency, for an `overdraft` change.
        currency: Option<Currency>,
        memo: Option<String>,
    },
}

/// An `events` row as an engine selects it, joined to what it is about.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventRow {
    pub event_id: i64,
    /// The writing transaction, on engines whose commit order needs it.
    pub xid: Option<u64>,
    pub kind: String,
    pub at: i64,
    pub tx_id: Option<i64>,
    pub change_id: Option<i64>,
    /// The transfer's stored status, reason, user names, amounts and memo.
    pub status: Option<String>,
    pub reason: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub amount: Option<i64>,
    pub hold_amount: Option<i64>,
    pub memo: Option<String>,
    /// The code and scale of the transfer's currency, and its exchange
    /// partner.
    pub currency: Option<String>,
    pub scale: Option<i64>,
    pub pair_tx_id: Option<i64>,
    /// The policy change's account name, kind, limit, memo, and the code
    /// and scale of its currency.
    pub user: Option<String>,
    pub change: Option<String>,
    pub overdraft: Option<i64>,
    pub change_memo: Option<String>,
    pub change_currency: Option<String>,
    pub change_scale: Option<i64>,
}

/// A currency as a row joined it, `None` when no row was found.
fn joined_currency(code: Option<String>, scale: Option<i64>) -> Option<Currency> {
    let scale = u8::try_from(scale?).ok()?;
    Some(Currency { code: code?, scale })
}

impl EventRow {
    /// The event as the feed shows it; a row that names what is not there
    /// is damage (`integrity`).
    pub(crate) fn into_record(self) -> Result<EventRecord> {
        let event_id = self.event_id;
        let damaged = |what: &str| {
            WalletError::Integrity(format!("event {event_id} {what}; run `wallet verify`"))
        };
        let kind = EventKind::parse(&self.kind)
            .ok_or_else(|| damaged(&format!("has an unknown kind '{}'", self.kind)))?;
        let cursor = match self.xid {
            None => Cursor::EventId(event_id),
            Some(xid) => Cursor::Commit { xid, event_id },
        };
        let about = if kind == EventKind::PolicyChanged {
            let (Some(user), Some(change)) = (self.user, self.change) else {
                return Err(damaged(
                    "names a policy change or account that is not there",
                ));
            };
            // Only a limit is counted in a currency.
            let currency = match self.overdraft {
                None => None,
                Some(_) => Some(
                    joined_currency(self.change_currency, self.change_scale)
                        .ok_or_else(|| damaged("names a currency that is not there"))?,
                ),
            };
            About::Policy {
                currency,
                user,
                change,
                overdraft: self.overdraft,
                memo: self.change_memo,
            }
        } else {
            let stored = self
                .status
                .as_deref()
                .and_then(Status::parse)
                .ok_or_else(|| damaged("names a transfer that is not there"))?;
            let status = kind.status_given(stored);
            let amount = match kind {
                EventKind::HoldPlaced | EventKind::HoldReleased | EventKind::HoldExpired => {
                    self.hold_amount.or(self.amount)
                }
                _ => self.amount,
            }
            .ok_or_else(|| damaged("names a transfer without an amount"))?;
            let currency = joined_currency(self.currency, self.scale)
                .ok_or_else(|| damaged("names a currency that is not there"))?;
            About::Transfer {
                status,
                reason: if status == Status::Failed {
                    self.reason
                } else {
                    None
                },
                from: self.from,
                to: self.to,
                amount,
                currency,
                memo: self.memo,
                pair_tx_id: self.pair_tx_id.map(TxId::new),
            }
        };
        Ok(EventRecord {
            event_id,
            cursor,
            kind,
            at: Instant::new(self.at),
            tx_id: self.tx_id.map(TxId::new),
            change_id: self.change_id,
            about,
        })
    }
}

/// Events a read asks for at once: a page of a long feed.
const PAGE: u32 = 1_000;

/// How `events` reads the feed.
#[derive(Debug, Clone, Default)]
pub(crate) struct FeedOptions {
    pub after: Option<Cursor>,
    /// Stop after this many events.
    pub limit: Option<u64>,
    /// Keep waiting for new events once the feed is read, until this flag
    /// is set (`--follow`).
    pub follow: Option<Arc<AtomicBool>>,
}

/// Hands `each` the events after `options.after`, in commit order, a page
/// per read; with `follow`, then waits for more, looking every
/// [`FOLLOW_PAUSE`] whether anything committed, until the stop flag is set
/// (checked after each event, so a stop ends the feed after the event in
/// hand) or `each` returns false. Returns how many events `each` took.
pub(crate) fn stream(
    store: &mut dyn Store,
    options: &FeedOptions,
    each: &mut dyn FnMut(&EventRecord) -> Result<bool>,
) -> Result<u64> {
    let mut after = options.after;
    let mut taken = 0u64;
    let stopped = || {
        options
            .follow
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::Relaxed))
    };
    loop {
        let left = options.limit.map_or(u64::MAX, |limit| limit - taken);
        if left == 0 || stopped() {
            return Ok(taken);
        }
        let page = u32::try_from(left).unwrap_or(PAGE).min(PAGE);
        let events = store.events(after.as_ref(), page)?;
        for event in &events {
            if !each(event)? {
                return Ok(taken + 1);
            }
            taken += 1;
            after = Some(event.cursor);
            if stopped() {
                return Ok(taken);
            }
        }
        if events.len() as u32 == page {
            continue;
        }
        if options.follow.is_none() {
            return Ok(taken);
        }
        // Read again only once a commit may have added events: a look
        // between pauses, never a snapshot held while waiting.
        loop {
            std::thread::sleep(FOLLOW_PAUSE);
            if stopped() || store.may_have_new_events()? {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_print() {
        for cursor in [
            Cursor::EventId(7),
            Cursor::Commit {
                xid: 1234,
                event_id: 56,
            },
        ] {
            assert_eq!(Cursor::parse(&cursor.to_string()), Ok(cursor));
        }
    }

    #[test]
    fn malformed_cursors_are_refused() {
        for text in [
            "",
            "x",
            "-1",
            "1.",
            ".1",
            "1.2.3",
            "1e3",
            " 1",
            "+1",
            "99999999999999999999",
        ] {
            assert!(Cursor::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_hold_event_names_the_status_it_gave_and_the_held_amount() {
        let row = |kind: &str| EventRow {
            event_id: 1,
            kind: kind.into(),
            tx_id: Some(3),
            status: Some("PENDING".into()),
            reason: Some("insufficient_funds".into()),
            amount: Some(25),
            hold_amount: Some(30),
            currency: Some("PHP".into()),
            scale: Some(2),
            ..EventRow::default()
        };
        let about = |kind: &str| row(kind).into_record().unwrap().about;
        let expect = |status, amount| About::Transfer {
            status,
            reason: None,
            from: None,
            to: None,
            amount,
            currency: Currency::default(),
            memo: None,
            pair_tx_id: None,
        };
        assert_eq!(about("hold_placed"), expect(Status::Held, 30));
        assert_eq!(about("hold_captured"), expect(Status::Pending, 25));
        assert_eq!(about("hold_released"), expect(Status::Released, 30));
        assert_eq!(about("hold_expired"), expect(Status::Expired, 30));
        assert_eq!(about("transfer_decided"), expect(Status::Pending, 25));
        assert!(row("lost").into_record().is_err());
        let mut unlisted = row("transfer_decided");
        unlisted.scale = None;
        assert!(unlisted.into_record().is_err(), "a currency not there");
    }
}
