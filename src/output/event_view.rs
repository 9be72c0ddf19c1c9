//! The change feed's line: one JSON object per event.

use std::io::{self, Write};

use serde::Serialize;

use crate::ledger::TxId;
use crate::ledger::events::{About, EventRecord};
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
        /// At the scale of its currency.
        amount: String,
        /// The currency's code.
        currency: String,
        memo: Option<String>,
        pair_tx_id: Option<TxId>,
    },
    Policy {
        user: String,
        change: String,
        overdraft: Option<String>,
        /// The limit's currency code, for an `overdraft` change.
        currency: Option<String>,
        memo: Option<String>,
    },
}

impl EventView {
    pub(crate) fn new(event: &EventRecord) -> Self {
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
                    currency,
                    memo,
                    pair_tx_id,
                } => AboutView::Transfer {
                    status: status.as_str(),
                    reason: reason.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    amount: currency.format(*amount),
                    currency: currency.code.clone(),
                    memo: memo.clone(),
                    pair_tx_id: *pair_tx_id,
                },
                About::Policy {
                    user,
                    change,
                    overdraft,
                    currency,
                    memo,
                } => AboutView::Policy {
                    user: user.clone(),
                    change: change.clone(),
                    overdraft: overdraft
                        .zip(currency.as_ref())
                        .map(|(limit, currency)| currency.format(limit)),
                    currency: currency.as_ref().map(|c| c.code.clone()),
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
