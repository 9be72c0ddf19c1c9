//! How the ledger's typed values are written to and read from PostgreSQL:
//! as the `bigint`s the schema stores.

use std::error::Error;

use postgres::types::private::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::ledger::model::{Instant, TxId};

type SqlResult<T> = Result<T, Box<dyn Error + Sync + Send>>;

impl ToSql for TxId {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> SqlResult<IsNull> {
        self.get().to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for TxId {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> SqlResult<Self> {
        i64::from_sql(ty, raw).map(TxId::new)
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

impl ToSql for Instant {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> SqlResult<IsNull> {
        self.get().to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Instant {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> SqlResult<Self> {
        i64::from_sql(ty, raw).map(Instant::new)
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}
