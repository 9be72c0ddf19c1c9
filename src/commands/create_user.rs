//! `wallet create-user`: add a user with a zero balance, and an overdraft
//! limit if one is given.

use serde::Serialize;

use super::Context;
use crate::cli::CreateUserArgs;
use crate::domain::{Email, UserName};
use crate::error::{Result, WalletError};
use crate::money::Currency;
use crate::output::{Human, Report, WhenQuiet};

#[derive(Serialize)]
struct Created {
    status: &'static str,
    name: String,
    email: String,
}

pub(super) fn run(context: &Context, args: CreateUserArgs) -> Result<Report> {
    let name = UserName::parse(&args.name)?;
    let email = Email::parse(&args.email)?;
    let limit = args.overdraft.as_deref();
    let mut ledger = match context.open() {
        Err(WalletError::LedgerNotFound(_)) => {
            // A limit the new ledger's currency refuses creates no ledger.
            limit
                .map(|limit| Currency::default().parse_limit(limit))
                .transpose()?;
            context.open_or_create()?
        }
        opened => opened?,
    };
    let overdraft = limit
        .map(|limit| ledger.currency().parse_limit(limit))
        .transpose()?
        .unwrap_or(0);
    let user = ledger.create_user(&name, &email, overdraft)?;
    let line = format!("created user {} <{}>", user.name, user.email);
    let what = format!("user '{}'", user.name);
    let quiet = WhenQuiet::Id(user.name.clone());
    let report = Report::new(
        Created {
            status: "created",
            name: user.name,
            email: user.email,
        },
        Human::Line(line),
    );
    Ok(report
        .when_quiet(quiet)
        .committed(what, "`wallet get-user` shows it"))
}
