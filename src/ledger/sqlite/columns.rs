//! Column reads for the loops that read every row of a batch: a value is
//! taken as the row holds it, without `Row::get`'s lookup of the index and
//! copy of text, which cost more than the value itself tens of thousands
//! of times a batch.

use rusqlite::Row;
use rusqlite::types::{FromSqlError, FromSqlResult, ValueRef};

fn read<'r, T>(
    row: &'r Row<'_>,
    i: usize,
    as_type: impl FnOnce(ValueRef<'r>) -> FromSqlResult<T>,
) -> rusqlite::Result<T> {
    let value = row.get_ref_unwrap(i);
    as_type(value).map_err(|e| match e {
        FromSqlError::InvalidType => {
            rusqlite::Error::InvalidColumnType(i, String::new(), value.data_type())
        }
        other => rusqlite::Error::FromSqlConversionFailure(i, value.data_type(), Box::new(other)),
    })
}

pub(super) fn int(row: &Row<'_>, i: usize) -> rusqlite::Result<i64> {
    read(row, i, |v| v.as_i64())
}

/// A small integer (a currency's id): one out of range is a conversion
/// failure, as `Row::get` makes it.
pub(super) fn small(row: &Row<'_>, i: usize) -> rusqlite::Result<i16> {
    read(row, i, |v| {
        let wide = v.as_i64()?;
        i16::try_from(wide).map_err(|_| FromSqlError::OutOfRange(wide))
    })
}

pub(super) fn int_or_null(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<i64>> {
    read(row, i, |v| v.as_i64_or_null())
}

pub(super) fn text<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    read(row, i, |v| v.as_str())
}

pub(super) fn text_or_null<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    read(row, i, |v| v.as_str_or_null())
}
