//! `wallet verify`: check every ledger invariant and report each check by name.

use super::Context;
use crate::cli::VerifyArgs;
use crate::error::{Result, WalletError};
use crate::head_file::{self, Recorded};
use crate::ledger::{Findings, Ledger, Problem, VerifyOptions, chain, clock};
use crate::output::{Report, verify_view};
use crate::text::{echo, shown_path};

pub(super) fn run(context: &Context, args: VerifyArgs) -> Result<Report> {
    let expected = match &args.expect_head {
        Some(text) => Some(
            chain::from_hex(text.trim())
                .map(|h| chain::hex(&h))
                .ok_or_else(|| {
                    WalletError::Usage(format!(
                        "--expect-head takes the 64 hex digits `wallet verify --head` prints, not '{}'",
                        echo(text)
                    ))
                })?,
        ),
        None => None,
    };
    // Read before the ledger is opened: a file that cannot be read, or a
    // malformed line, is the caller's to fix, whatever the ledger holds.
    let recorded = head_file::read_to_check(args.heads.as_deref(), args.record_head.as_deref())?;
    let mut ledger = Ledger::open_to_verify(&context.db, &context.open_options)?;
    let mut report = ledger.verify(&VerifyOptions { quick: args.quick })?;
    let state =
        if args.head || expected.is_some() || !recorded.is_empty() || args.record_head.is_some() {
            Some(ledger.chain()?)
        } else {
            None
        };
    if let (Some(expected), Some(state)) = (&expected, &state) {
        let mut findings = Findings::default();
        if !state.good_hashes.contains(expected) {
            findings.push(Problem::about_file(format!(
                "the chain does not extend head {expected}: what it sealed was rewritten, this copy is behind it (a standby that lags, an older backup), or that head is of another ledger"
            )));
        }
        report.checks.push(findings.into_check(
            "expect_head",
            format!("the chain still extends head {}…", &expected[..16]),
        ));
    }
    if let Some(state) = &state {
        for (path, purpose, heads) in &recorded {
            report
                .checks
                .push(head_file::check(heads, state, path, *purpose));
        }
    }
    let ok = report.ok();
    // Only books that pass every check get their head recorded: a head of
    // edited books kept outside would vouch for them later.
    let recording = match (&args.record_head, &state) {
        (Some(path), Some(state)) if ok => {
            let outcome = head_file::record(path, state.head.as_ref(), clock::now_ms())?;
            if !context.quiet_summary {
                eprintln!("{}", recorded_note(outcome, state, &shown_path(path)));
            }
            Some(outcome)
        }
        _ => None,
    };
    let summary = verify_view::summary(&report);
    let extras = verify_view::Extras {
        head: state.filter(|_| args.head),
        heads_checked: (!recorded.is_empty()).then(|| {
            recorded
                .iter()
                .map(|(_, _, heads)| heads.len() as u64)
                .sum()
        }),
        recorded_head: recording,
    };
    let printed = verify_view::report(report, extras);
    if ok {
        Ok(printed)
    } else {
        Err(WalletError::VerifyFailed {
            summary,
            report: Box::new(printed),
        })
    }
}

/// What `--record-head` says on stderr (the JSON report says it in
/// `recorded_head`).
fn recorded_note(outcome: Recorded, state: &chain::ChainState, file: &str) -> String {
    let position = state.head.as_ref().map_or_else(String::new, |head| {
        format!(
            "the head of link {} (up to tx_id {})",
            head.seq, head.last_tx
        )
    });
    match outcome {
        Recorded::Appended => format!("recorded {position} in {file}"),
        Recorded::SameAsLast => {
            format!("{file} ends with {position} already; nothing appended")
        }
        Recorded::NothingSealed => {
            format!("nothing is sealed yet (`wallet settle` seals); nothing recorded in {file}")
        }
    }
}
