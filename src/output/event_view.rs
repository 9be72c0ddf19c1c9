//! The change feed's line: one JSON object per event.

use std::io::{self, Write};

use serde::Serialize;

use crate::ledger::TxId;
use crate::ledger::events::{About, EventRecord};
use crate::money::Currency;
use crate::time;

/// An event as `wallet events` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct EventView {
    pub event_id: i64,
    pub cursor: String,
    pub kind: &'static str,
    pub at: String,
    pub tx_id: Option<TxId>,
    pub change_id: Option<i64>,
    #[serde(flatten)]
    pub about: AboutView,
}

/// The fields of what the event is about.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum AboutView {
    Transfer {
        status: &'static str,
        reason: Option<String>,
        from: Option<String>,
        to: Option<String>,
        amount: String,
        memo: Option<String>,
    },
    Policy {
        user: String,
        change: String,
        overdraft: Option<String>,
        memo: Option<String>,
    },
}

impl EventView {
    pub(crate) fn new(event: &EventRecord, currency: &Currency) -> Self {
        Self {
            event_id: event.event_id,
            cursor: event.cursor.to_string(),
            kind: event.kind.as_str(),
            at: time::rfc3339(event.at.get()),
            tx_id: event.tx_id,
            change_id: event.change_id,
            about: match &event.about {
                About::Transfer {
                    status,
                    reason,
                    from,
                    to,
                    amount,
                    memo,
                } => AboutView::Transfer {
                    status: status.as_str(),
                    reason: reason.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    amount: currency.format(*amount),
                    memo: memo.clone(),
                },
                About::Policy {
                    user,
                    change,
                    overdraft,
                    memo,
                } => AboutView::Policy {
                    user: user.clone(),
                    change: change.clone(),
                    overdraft: overdraft.map(|limit| currency.format(limit)),
                    memo: memo.clone(),
                },
            },
        }
    }
}

/// Prints one event as a line and flushes it, so a consumer reading the
/// pipe sees each event as soon as it is printed.
pub(crate) fn write_line(out: &mut impl Write, view: &EventView) -> io::Result<()> {
    serde_json::to_writer(&mut *out, view)?;
    out.write_all(b"\n")?;
    out.flush()
}
