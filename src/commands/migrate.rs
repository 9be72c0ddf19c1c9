//! `wallet migrate`: upgrade the ledger's schema explicitly.

use serde::Serialize;

use super::Context;
use crate::error::Result;
use crate::ledger::Ledger;
use crate::output::{Human, Report};

#[derive(Serialize)]
struct Migrated {
    status: &'static str,
    from: i64,
    to: i64,
}

pub(super) fn run(context: &Context) -> Result<Report> {
    let (from, to) = Ledger::migrate(&context.db, &context.open_options)?;
    if from == to {
        let line = format!("the ledger is up to date (schema version {to})");
        return Ok(Report::new(
            Migrated {
                status: "up_to_date",
                from,
                to,
            },
            Human::Line(line),
        ));
    }
    let line = format!("upgraded the ledger from schema version {from} to {to}");
    let report = Report::new(
        Migrated {
            status: "migrated",
            from,
            to,
        },
        Human::Line(line),
    );
    Ok(report.committed(
        format!("the upgrade to schema version {to}"),
        "`wallet migrate` again says whether it is done",
    ))
}
