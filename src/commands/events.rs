//! `wallet events`: the change feed as JSON Lines, once or (`--follow`)
//! until stopped.

use std::io;

use super::Context;
use crate::cli::EventsArgs;
use crate::error::{Result, WalletError};
use crate::ledger::events::{Cursor, FeedOptions};
use crate::output::Report;
use crate::output::event_view::{EventView, write_line};

pub(super) fn run(context: &Context, args: EventsArgs) -> Result<Report> {
    let after = args
        .after
        .as_deref()
        .map(|text| {
            Cursor::parse(text).map_err(|why| {
                WalletError::Usage(format!("--after {}: {why}", crate::text::echo(text)))
            })
        })
        .transpose()?;
    let follow = if args.follow {
        Some(super::signals::on_signals()?)
    } else {
        None
    };
    let mut ledger = context.open_to_read()?;
    let currency = ledger.currency().clone();
    let options = FeedOptions {
        after,
        limit: args.limit,
        follow,
    };
    let mut out = io::stdout().lock();
    // A reader that stops early (`| head -1`) ends the feed quietly: it
    // only read. Any other failure to write is an error.
    let mut stopped: Option<io::Error> = None;
    ledger.stream_events(&options, &mut |event| match write_line(
        &mut out,
        &EventView::new(event, &currency),
    ) {
        Ok(()) => Ok(true),
        Err(e) => {
            stopped = Some(e);
            Ok(false)
        }
    })?;
    match stopped {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(WalletError::Io(e.into())),
        _ => Ok(Report::streamed()),
    }
}
