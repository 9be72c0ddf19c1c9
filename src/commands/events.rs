//! `wallet events`: the change feed as JSON Lines, once or (`--follow`)
//! until stopped.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
        let stop = super::signals::on_signals()?;
        stop_when_the_reader_goes(Arc::clone(&stop));
        Some(stop)
    } else {
        None
    };
    let mut ledger = context.open_to_read()?;
    let options = FeedOptions {
        after,
        limit: args.limit,
        follow,
    };
    let mut out = io::stdout().lock();
    // A reader that stops early (`| head -1`) ends the feed quietly: it
    // only read. Any other failure to write is an error.
    let mut stopped: Option<io::Error> = None;
    ledger.stream_events(
        &options,
        &mut |event| match write_line(&mut out, &EventView::new(event)) {
            Ok(()) => Ok(true),
            Err(e) => {
                stopped = Some(e);
                Ok(false)
            }
        },
    )?;
    match stopped {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(WalletError::Io(e.into())),
        _ => Ok(Report::streamed()),
    }
}

/// Sets `stop` once nobody reads stdout any more, when it is a pipe or a
/// socket: a follower waiting for events writes nothing, so it would not
/// learn from a failed write that its consumer was killed, and would wait
/// on for as long as the ledger stays quiet. The thread sleeps in the
/// kernel until the reading end is closed.
fn stop_when_the_reader_goes(stop: Arc<AtomicBool>) {
    use rustix::event::{PollFd, PollFlags, poll};
    use rustix::fs::FileType;
    let piped = rustix::fs::fstat(io::stdout().as_fd()).is_ok_and(|stat| {
        matches!(
            FileType::from_raw_mode(stat.st_mode),
            FileType::Fifo | FileType::Socket
        )
    });
    if !piped {
        return;
    }
    std::thread::spawn(move || {
        let stdout = io::stdout();
        let fd = stdout.as_fd();
        loop {
            // No event asked for: only an error or a hang-up wakes it.
            let mut fds = [PollFd::new(&fd, PollFlags::empty())];
            match poll(&mut fds, None) {
                Ok(_) if !fds[0].revents().is_empty() => {
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
        }
    });
}
