//! How a command that keeps running (`settle --watch`, `events --follow`)
//! is told to stop.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::error::{Result, WalletError};

/// A flag set by SIGINT, SIGTERM or SIGHUP: the command finishes the step
/// in hand (a worker's batch, a feed's line), then stops.
pub(super) fn on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|e| {
            WalletError::Io(anyhow::Error::new(e).context("cannot install a signal handler"))
        })?;
    }
    Ok(stop)
}
