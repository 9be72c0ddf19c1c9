//! What a command hands back for printing: one JSON document and its human form.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::Done;

/// The result of a successful command, before it is printed.
#[derive(Debug)]
pub struct Report {
    /// The JSON document, serialized once when the report is made: a
    /// page of history is written out as it was built, with no tree of
    /// values in between.
    pub json: Box<RawValue>,
    pub human: Human,
    /// What the command committed, for an error if the report cannot be
    /// printed: then the caller does not learn what was written.
    committed: Option<Committed>,
    /// What `--quiet` leaves of the human form.
    pub when_quiet: WhenQuiet,
}

/// A report travels with an error that stopped a command part-way, or
/// with `verify`'s, to be printed with it.
impl Done for Report {}

/// What a report prints under `--quiet` (JSON is never changed by it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhenQuiet {
    /// The data asked for, as without `--quiet`; a confirmation line is dropped.
    Unchanged,
    /// Only the id of what the command created, so a script can capture it.
    Id(String),
    /// Nothing: the command's effect is its answer.
    Nothing,
}

/// A change the command made, and what the caller can do to learn of it.
#[derive(Debug)]
struct Committed {
    what: String,
    advice: &'static str,
}

/// How a report looks to a person at a terminal.
#[derive(Debug)]
pub enum Human {
    /// A confirmation of something done; `--quiet` drops it.
    Line(String),
    /// A document printed as it is (a completion script, a manual page).
    Text(String),
    /// One record as a two-column table of field and value.
    Record(Vec<(&'static str, String)>),
    /// Several records as a table, or `empty` when there are none.
    Rows {
        header: Vec<&'static str>,
        rows: Vec<Vec<String>>,
        empty: String,
    },
    /// Several tables, each under its title line (a trial balance per
    /// currency).
    Tables(Vec<Titled>),
    /// The command already wrote its output as it went (a stream of lines).
    Streamed,
}

/// One table of [`Human::Tables`].
#[derive(Debug)]
pub struct Titled {
    pub title: String,
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Report {
    pub fn new(json: impl Serialize, human: Human) -> Self {
        let json = serde_json::value::to_raw_value(&json).expect("report types serialize to JSON");
        Self {
            json,
            human,
            committed: None,
            when_quiet: WhenQuiet::Unchanged,
        }
    }

    /// Sets what `--quiet` prints of this report.
    pub fn when_quiet(self, when_quiet: WhenQuiet) -> Self {
        Self { when_quiet, ..self }
    }

    /// Marks the report as the answer of a command that committed `what`;
    /// `advice` says how to learn of it if the answer is lost.
    pub fn committed(self, what: String, advice: &'static str) -> Self {
        Self {
            committed: Some(Committed { what, advice }),
            ..self
        }
    }

    /// What the command committed, if anything.
    pub fn change(&self) -> Option<&str> {
        self.committed.as_ref().map(|c| c.what.as_str())
    }

    pub fn advice(&self) -> &'static str {
        self.committed.as_ref().map_or("", |c| c.advice)
    }

    /// A report for a command that printed its own output while it ran.
    pub fn streamed() -> Self {
        Self {
            json: RawValue::NULL.to_owned(),
            human: Human::Streamed,
            committed: None,
            when_quiet: WhenQuiet::Unchanged,
        }
    }
}
