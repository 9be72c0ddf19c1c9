//! `wallet init`: create an empty ledger with its currency.

use serde::Serialize;

use super::Context;
use crate::cli::InitArgs;
use crate::error::Result;
use crate::ledger::Ledger;
use crate::money::Currency;
use crate::output::{Human, Report};

#[derive(Serialize)]
struct Created<'a> {
    status: &'static str,
    currency: &'a str,
    scale: u8,
}

pub(super) fn run(context: &Context, args: InitArgs) -> Result<Report> {
    let currency = Currency::new(&args.currency, args.scale)?;
    Ledger::create(&context.db, &currency, &context.open_options)?;
    let line = format!(
        "created ledger {} ({}, {} decimal places)",
        context.db, currency.code, currency.scale
    );
    let report = Report::new(
        Created {
            status: "created",
            currency: &currency.code,
            scale: currency.scale,
        },
        Human::Line(line),
    );
    Ok(report.committed(
        format!("the ledger {}", context.db),
        "`wallet init` again answers ledger_exists",
    ))
}
