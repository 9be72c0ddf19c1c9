//! What `wallet settle` prints: its summary (JSON counts, one line for
//! people), and the error it ends with when it stopped after some batches
//! had committed.

use indicatif::HumanCount;
use serde::Serialize;

use super::{Human, Report, plural};
use crate::error::WalletError;
use crate::ledger::{SettleStopped, SettleSummary};

#[derive(Serialize)]
struct Settled {
    processed: u64,
    completed: u64,
    failed: u64,
    /// `null` when it could not be counted.
    remaining: Option<u64>,
    /// Holds found past their expiry and marked EXPIRED.
    expired: u64,
}

/// An error after some batches committed: those batches are the output,
/// so a script can tell what was applied; the error says why it stopped
/// and that those batches stay.
pub(crate) fn stopped_part_way(stopped: SettleStopped) -> WalletError {
    let SettleSummary {
        processed, expired, ..
    } = stopped.done;
    if processed == 0 && expired == 0 {
        return stopped.error;
    }
    let mut committed = format!(
        "before it, {processed} transfer{} had been settled and committed",
        plural(processed)
    );
    if expired > 0 {
        committed.push_str(&format!(
            " and {expired} expired hold{} marked",
            plural(expired)
        ));
    }
    committed.push_str(
        " (the summary on stdout); `wallet settle` again is safe: it applies each transfer once",
    );
    WalletError::StoppedPartWay {
        done: Box::new(report(stopped.done)),
        error: Box::new(stopped.error),
        committed,
    }
}

/// The summary of a settlement that ran to its end.
pub(crate) fn report(summary: SettleSummary) -> Report {
    let SettleSummary {
        processed,
        completed,
        failed,
        expired,
        remaining,
    } = summary;
    // Counts for people, written as the progress bar writes them; JSON keeps numbers.
    let mut line = format!(
        "settled {} transfer{}: {} completed, {} failed, {}",
        HumanCount(processed),
        plural(processed),
        HumanCount(completed),
        HumanCount(failed),
        match remaining {
            Some(remaining) => format!("{} still pending", HumanCount(remaining)),
            None => "how many are still pending could not be read".to_string(),
        }
    );
    if expired > 0 {
        line.push_str(&format!(
            "; {} expired hold{} marked",
            HumanCount(expired),
            plural(expired)
        ));
    }
    let report = Report::new(
        Settled {
            processed,
            completed,
            failed,
            remaining,
            expired,
        },
        Human::Line(line),
    );
    if processed == 0 && expired == 0 {
        return report;
    }
    report.committed(
        format!(
            "the settlement of {processed} transfer{}",
            plural(processed)
        ),
        "`wallet settle` again is safe: it applies each transfer once",
    )
}
