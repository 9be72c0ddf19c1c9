//! Opening a ledger: the one place where a [`Location`] becomes an engine.
//!
//! Everything above it holds a `Box<dyn Store>` and asks the store what it
//! needs to know of its engine ([`Store::profile`]); a new engine is one arm
//! here.

use super::postgres::PgEngine;
use super::sqlite::SqliteEngine;
use super::store::{Access, Engine, OpenOptions, Store};
use crate::error::Result;
use crate::location::Location;
use crate::money::Currency;

/// The engine that keeps the ledger at `location`.
fn engine(location: &Location) -> Box<dyn Engine + '_> {
    match location {
        Location::File(path) => Box::new(SqliteEngine(path)),
        Location::Server(url) => Box::new(PgEngine(url)),
    }
}

/// Opens a ledger that must already exist, as far as `access` allows.
pub(super) fn open(
    location: &Location,
    access: Access,
    options: &OpenOptions,
) -> Result<Box<dyn Store>> {
    engine(location).open(access, options)
}

/// Opens the ledger to write, creating it with `currency` if there is none.
pub(super) fn open_or_create(
    location: &Location,
    currency: &Currency,
    options: &OpenOptions,
) -> Result<Box<dyn Store>> {
    engine(location).open_or_create(currency, options)
}

/// Creates a new ledger; refuses if one (or anything else) is already there.
pub(super) fn create(
    location: &Location,
    currency: &Currency,
    options: &OpenOptions,
) -> Result<()> {
    engine(location).create(currency, options)
}

/// Brings the ledger's schema up to date; returns the versions before and after.
pub(super) fn migrate(location: &Location, options: &OpenOptions) -> Result<(i64, i64)> {
    engine(location).migrate(options)
}
