//! `wallet create-user`: add a user with a zero balance.

use serde::Serialize;

use super::Context;
use crate::cli::CreateUserArgs;
use crate::domain::{Email, UserName};
use crate::error::Result;
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
    let user = context.open_or_create()?.create_user(&name, &email)?;
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
