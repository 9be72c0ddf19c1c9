//! What `wallet settle` shows on stderr while it runs: a progress bar when
//! it drains to an end, and a line for each failure a watch rides out.

use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::WalletError;
use crate::ledger::worker::Events;

/// What the run shows on stderr: a progress bar, and a line per retry.
pub(super) struct Shown {
    bar: OnceLock<ProgressBar>,
    show_progress: bool,
    json: bool,
}

impl Shown {
    pub(super) fn new(show_progress: bool, json: bool) -> Self {
        Self {
            bar: OnceLock::new(),
            show_progress,
            json,
        }
    }

    /// Clears the bar, if one was drawn, before the summary is printed.
    pub(super) fn finish(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

impl Events for Shown {
    fn wants_total(&self) -> bool {
        self.show_progress
    }

    fn started(&self, total: u64, batch_size: u64) {
        let _ = self.bar.set(progress_bar(total, batch_size));
    }

    fn settled(&self, more: u64) {
        if let Some(bar) = self.bar.get() {
            bar.inc(more);
        }
    }

    /// One line for a failure the worker rides out: its cause alone, since
    /// batches before it in the same pass may have committed.
    fn retrying(&self, error: &WalletError, pause: Duration) {
        let pause_ms = pause.as_millis();
        let cause = error.cause();
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"warning": {"code": error.code(), "message": cause, "retry_in_ms": pause_ms}})
            );
        } else {
            eprintln!("warning: {cause}; retrying in {pause_ms} ms");
        }
    }
}

/// A bar only when there is more than one batch to wait for.
fn progress_bar(total: u64, batch_size: u64) -> ProgressBar {
    if total <= batch_size {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "settling {bar:40} {human_pos}/{human_len} transfers ({eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}
