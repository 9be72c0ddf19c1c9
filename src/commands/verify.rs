//! `wallet verify`: check every ledger invariant and report each check by name.

use serde::Serialize;

use super::Context;
use crate::cli::VerifyArgs;
use crate::error::{Result, WalletError};
use crate::ledger::{Check, Ledger, Problem, VerifyOptions, VerifyReport};
use crate::report::{Human, Report};

#[derive(Serialize)]
struct ReportView {
    ok: bool,
    checks: Vec<CheckView>,
}

#[derive(Serialize)]
struct CheckView {
    name: &'static str,
    ok: bool,
    detail: String,
    problem_count: u64,
    problems: Vec<ProblemView>,
}

#[derive(Serialize)]
struct ProblemView {
    user: Option<String>,
    tx_id: Option<i64>,
    message: String,
}

pub fn run(context: &Context, args: VerifyArgs) -> Result<Report> {
    let mut ledger = Ledger::open_to_verify(&context.db, &context.open_options)?;
    let report = ledger.verify(&VerifyOptions { quick: args.quick })?;
    let ok = report.ok();
    let summary = summary(&report);
    let human = human(&report);
    let view = ReportView {
        ok,
        checks: report.checks.into_iter().map(CheckView::from).collect(),
    };
    let report = Report::new(view, human);
    if ok {
        Ok(report)
    } else {
        Err(WalletError::VerifyFailed {
            summary,
            report: Box::new(report),
        })
    }
}

impl From<Check> for CheckView {
    fn from(check: Check) -> Self {
        Self {
            name: check.name,
            ok: check.ok,
            detail: check.detail,
            problem_count: check.problem_count,
            problems: check.problems.into_iter().map(ProblemView::from).collect(),
        }
    }
}

impl From<Problem> for ProblemView {
    fn from(problem: Problem) -> Self {
        Self {
            user: problem.user,
            tx_id: problem.tx_id,
            message: problem.message,
        }
    }
}

/// The error's one line: which checks failed and the first thing each found.
fn summary(report: &VerifyReport) -> String {
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|check| !check.ok)
        .map(|check| {
            let first = check
                .problems
                .first()
                .map_or_else(String::new, |p| p.message.clone());
            let more = check.problem_count.saturating_sub(1);
            if more == 0 {
                format!("{} ({first})", check.name)
            } else {
                format!("{} ({first}; {more} more)", check.name)
            }
        })
        .collect();
    format!(
        "{} of {} checks failed: {}",
        failed.len(),
        report.checks.len(),
        failed.join(", ")
    )
}

/// One row per check, then one per problem under the check that found it.
fn human(report: &VerifyReport) -> Human {
    let mut rows = Vec::new();
    for check in &report.checks {
        rows.push(vec![
            check.name.to_string(),
            if check.ok { "ok" } else { "FAILED" }.to_string(),
            check.detail.clone(),
        ]);
        for problem in &check.problems {
            rows.push(vec![String::new(), String::new(), problem.message.clone()]);
        }
        let unlisted = check.problem_count - check.problems.len() as u64;
        if unlisted > 0 {
            rows.push(vec![
                String::new(),
                String::new(),
                format!("… and {unlisted} more"),
            ]);
        }
    }
    Human::Rows {
        header: vec!["check", "status", "detail"],
        rows,
        empty: "no checks ran".into(),
    }
}
