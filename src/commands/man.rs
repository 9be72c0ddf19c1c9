//! `wallet man`: a manual page in roff, generated from the command line's definition.

use serde::Serialize;

use crate::cli::ManArgs;
use crate::error::Result;
use crate::output::{Human, Report, man_page};

#[derive(Serialize)]
struct Page {
    file_name: String,
    roff: String,
}

pub(super) fn run(args: ManArgs) -> Result<Report> {
    let (file_name, roff) = man_page::page(&args.command)?;
    Ok(Report::new(
        Page {
            file_name,
            roff: roff.clone(),
        },
        Human::Text(roff),
    ))
}
