//! Opening a ledger: the one place where a [`Location`] becomes an engine.
//!
//! Everything above it holds a `Box<dyn Store>` and asks the store what it
//! needs to know of its engine ([`Store::profile`]); a new engine is one arm
//! here.

use std::time::{Duration, Instant};

use super::postgres::PgEngine;
use super::sqlite::SqliteEngine;
use super::store::{Access, Engine, OpenOptions, Store};
use crate::error::{Result, WalletError};
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
    let engine = engine(location);
    if access == Access::Write {
        until_a_server_takes_writes(options, || engine.open(access, options))
    } else {
        engine.open(access, options)
    }
}

/// Opens the ledger to write, creating it with `currency` if there is none.
pub(super) fn open_or_create(
    location: &Location,
    currency: &Currency,
    options: &OpenOptions,
) -> Result<Box<dyn Store>> {
    let engine = engine(location);
    until_a_server_takes_writes(options, || engine.open_or_create(currency, options))
}

/// The longest pause between two attempts to reach a server that takes
/// writes.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Runs `open` again while no server takes writes (one restarting, or a
/// failover under way: the old primary gone, the standby not promoted
/// yet), for at most `--lock-timeout`, as a writer waits for a lock; then
/// its error stands. A file never answers so.
fn until_a_server_takes_writes(
    options: &OpenOptions,
    mut open: impl FnMut() -> Result<Box<dyn Store>>,
) -> Result<Box<dyn Store>> {
    let deadline = Instant::now() + options.lock_timeout;
    let mut pause = Duration::from_millis(50);
    loop {
        match open() {
            Err(WalletError::ServerUnavailable(_) | WalletError::ReadOnly(_))
                if Instant::now() + pause < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            other => return other,
        }
    }
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
