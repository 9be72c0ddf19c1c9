//! What `wallet verify` prints: each check by name with what it found,
//! the chain's head on request, and the one line its error gives.

use serde::Serialize;

use super::{Human, Report};
use crate::head_file::Recorded;
use crate::ledger::chain::ChainState;
use crate::ledger::{Check, Problem, VerifyReport};

/// What `verify` adds to its checks on request.
pub(crate) struct Extras {
    /// The chain's head (`--head`), printed as a last row of the table too.
    pub head: Option<ChainState>,
    /// How many recorded heads `--heads` checked.
    pub heads_checked: Option<u64>,
    /// What `--record-head` did.
    pub recorded_head: Option<Recorded>,
}

/// The report as printed: each check, and what `extras` adds.
pub(crate) fn report(report: VerifyReport, extras: Extras) -> Report {
    let mut human = human(&report);
    let head = extras.head.map(|state| HeadView {
        link: state.head.as_ref().map_or(0, |head| head.seq),
        last_tx: state.head.as_ref().map(|head| head.last_tx),
        hash: state.head.map(|head| head.hash),
        sealed: state.sealed,
        unsealed: state.unsealed,
    });
    if let (Some(head), Human::Rows { rows, .. }) = (&head, &mut human) {
        rows.push(vec![
            "head".into(),
            "".into(),
            match &head.hash {
                Some(hash) => format!(
                    "{hash} (link {}, up to tx_id {})",
                    head.link,
                    head.last_tx.unwrap_or_default()
                ),
                None => "none yet: nothing is sealed".into(),
            },
        ]);
    }
    let view = ReportView {
        ok: report.ok(),
        checks: report.checks.into_iter().map(CheckView::from).collect(),
        head,
        heads_checked: extras.heads_checked,
        recorded_head: extras.recorded_head.map(Recorded::name),
    };
    Report::new(view, human)
}

#[derive(Serialize)]
struct ReportView {
    ok: bool,
    checks: Vec<CheckView>,
    /// With `--head`: the chain's head.
    #[serde(skip_serializing_if = "Option::is_none")]
    head: Option<HeadView>,
    /// With `--heads`: how many heads recorded in the file were checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    heads_checked: Option<u64>,
    /// With `--record-head`, when every check passed: `appended`,
    /// `same_as_last` or `nothing_sealed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_head: Option<&'static str>,
}

#[derive(Serialize)]
struct HeadView {
    /// The last sealed link's hash (hex), or null before any.
    hash: Option<String>,
    link: i64,
    /// The largest `tx_id` the sealed links cover.
    last_tx: Option<i64>,
    sealed: i64,
    unsealed: i64,
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
pub(crate) fn summary(report: &VerifyReport) -> String {
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
