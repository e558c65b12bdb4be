//! The SQL types Flight SQL results carry, as XDBC type info
//! (`CommandGetXdbcTypeInfo`): what JDBC's `DatabaseMetaData.getTypeInfo` and
//! ODBC's `SQLGetTypeInfo` report. One entry per PostgreSQL type that
//! [`ColumnKind`](crate::flight::pg_arrow::ColumnKind) maps.

use arrow_flight::sql::metadata::{XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
use arrow_flight::sql::{Nullable, Searchable, XdbcDataType, XdbcDatetimeSubcode};
use tonic::Status;

/// A type entry with the fields every type shares here filled in.
fn entry(type_name: &str, data_type: XdbcDataType) -> XdbcTypeInfo {
    XdbcTypeInfo {
        type_name: type_name.to_string(),
        data_type,
        sql_data_type: data_type,
        nullable: Nullable::NullabilityNullable,
        searchable: Searchable::Full,
        local_type_name: Some(type_name.to_string()),
        ..XdbcTypeInfo::default()
    }
}

/// A signed number type of `digits` digits in base `radix` (10 for integers and
/// numeric, 2 for the binary floating-point types).
fn number(type_name: &str, data_type: XdbcDataType, digits: i32, radix: i32) -> XdbcTypeInfo {
    XdbcTypeInfo {
        column_size: Some(digits),
        unsigned_attribute: Some(false),
        auto_increment: Some(false),
        num_prec_radix: Some(radix),
        ..entry(type_name, data_type)
    }
}

/// A date/time type whose literals read `<keyword> '...'`.
fn datetime(
    type_name: &str,
    keyword: &str,
    data_type: XdbcDataType,
    subcode: XdbcDatetimeSubcode,
) -> XdbcTypeInfo {
    XdbcTypeInfo {
        literal_prefix: Some(format!("{keyword} '")),
        literal_suffix: Some("'".into()),
        // JDBC and ODBC report date/time types as the DATETIME family plus a subcode.
        sql_data_type: XdbcDataType::XdbcDatetime,
        datetime_subcode: Some(subcode),
        ..entry(type_name, data_type)
    }
}

/// The type info of every type a Flight SQL result here can have.
pub fn type_info() -> Result<XdbcTypeInfoData, Status> {
    use XdbcDataType as T;
    use XdbcDatetimeSubcode as D;
    let mut builder = XdbcTypeInfoDataBuilder::new();
    for info in [
        XdbcTypeInfo {
            column_size: Some(1),
            ..entry("boolean", T::XdbcBit)
        },
        number("smallint", T::XdbcSmallint, 5, 10),
        number("integer", T::XdbcInteger, 10, 10),
        number("bigint", T::XdbcBigint, 19, 10),
        number("real", T::XdbcReal, 24, 2),
        number("double precision", T::XdbcDouble, 53, 2),
        XdbcTypeInfo {
            create_params: Some(vec!["precision".into(), "scale".into()]),
            minimum_scale: Some(0),
            maximum_scale: Some(38),
            ..number("numeric", T::XdbcNumeric, 38, 10)
        },
        XdbcTypeInfo {
            literal_prefix: Some("'".into()),
            literal_suffix: Some("'".into()),
            case_sensitive: true,
            ..entry("text", T::XdbcVarchar)
        },
        XdbcTypeInfo {
            column_size: Some(10),
            // Subcode 1 is both YEAR and DATE in the protocol; prost names it Year.
            ..datetime("date", "date", T::XdbcDate, D::XdbcSubcodeYear)
        },
        XdbcTypeInfo {
            column_size: Some(26),
            ..datetime(
                "timestamp",
                "timestamp",
                T::XdbcTimestamp,
                D::XdbcSubcodeTimestamp,
            )
        },
        XdbcTypeInfo {
            column_size: Some(32),
            ..datetime(
                "timestamp with time zone",
                "timestamptz",
                T::XdbcTimestamp,
                D::XdbcSubcodeTimestampWithTimezone,
            )
        },
    ] {
        builder.append(info);
    }
    builder
        .build()
        .map_err(|e| Status::internal(format!("type info: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapped_type_is_listed_once_and_filters_by_data_type() {
        let data = type_info().unwrap();
        assert_eq!(data.record_batch(None).unwrap().num_rows(), 11);
        // Two timestamp types share XDBC_TIMESTAMP; one type is a numeric.
        assert_eq!(
            data.record_batch(XdbcDataType::XdbcTimestamp as i32)
                .unwrap()
                .num_rows(),
            2
        );
        assert_eq!(
            data.record_batch(XdbcDataType::XdbcNumeric as i32)
                .unwrap()
                .num_rows(),
            1
        );
        assert_eq!(
            data.record_batch(XdbcDataType::XdbcWchar as i32)
                .unwrap()
                .num_rows(),
            0
        );
    }
}
