//! `wallet verify`: check every ledger invariant and report each check by name.

use super::Context;
use crate::cli::VerifyArgs;
use crate::error::{Result, WalletError};
use crate::ledger::{Findings, Ledger, Problem, VerifyOptions, chain};
use crate::output::{Report, verify_view};
use crate::text::echo;

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
    let mut ledger = Ledger::open_to_verify(&context.db, &context.open_options)?;
    let mut report = ledger.verify(&VerifyOptions { quick: args.quick })?;
    let state = if args.head || expected.is_some() {
        Some(ledger.chain()?)
    } else {
        None
    };
    if let (Some(expected), Some(state)) = (&expected, &state) {
        let mut findings = Findings::default();
        if !state.good_hashes.contains(expected) {
            findings.push(Problem::about_file(format!(
                "the chain does not extend head {expected}: what it sealed was rewritten, or that head is of another ledger"
            )));
        }
        report.checks.push(findings.into_check(
            "expect_head",
            format!("the chain still extends head {}…", &expected[..16]),
        ));
    }
    let ok = report.ok();
    let summary = verify_view::summary(&report);
    let printed = verify_view::report(report, state.filter(|_| args.head));
    if ok {
        Ok(printed)
    } else {
        Err(WalletError::VerifyFailed {
            summary,
            report: Box::new(printed),
        })
    }
}
