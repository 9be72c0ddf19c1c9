//! `wallet currency add`: add a currency with its scale, or answer the one
//! the ledger has under that code.

use serde::Serialize;

use super::Context;
use crate::cli::{CurrencyArgs, CurrencyCommand};
use crate::error::Result;
use crate::money::Currency;
use crate::output::{Human, Report, WhenQuiet};

#[derive(Serialize)]
struct Added {
    status: &'static str,
    code: String,
    scale: u8,
    replayed: bool,
}

pub(super) fn run(context: &Context, args: CurrencyArgs) -> Result<Report> {
    match args.command {
        CurrencyCommand::Add(args) => {
            let currency = Currency::new(&args.code, args.scale)?;
            let mut ledger = context.open()?;
            let (_, replayed) = ledger.add_currency(&currency)?;
            let line = if replayed {
                format!(
                    "currency {} ({} decimal places) was already added",
                    currency.code, currency.scale
                )
            } else {
                format!(
                    "added currency {} ({} decimal places)",
                    currency.code, currency.scale
                )
            };
            let what = format!("currency {}", currency.code);
            let report = Report::new(
                Added {
                    status: "created",
                    code: currency.code.clone(),
                    scale: currency.scale,
                    replayed,
                },
                Human::Line(line),
            )
            .when_quiet(WhenQuiet::Id(currency.code));
            Ok(report.committed(what, "`wallet currencies` lists it"))
        }
    }
}
