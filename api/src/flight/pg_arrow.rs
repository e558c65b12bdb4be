//! PostgreSQL result columns as Arrow: the type mapping and a builder that turns
//! rows (in PostgreSQL's binary format) into record batches.
//!
//! Values are decoded from the wire bytes directly: `numeric(p,s)` becomes
//! Decimal128(p,s) by integer arithmetic on its base-10000 digits (never through a
//! float), `date` Date32 and `timestamptz` Timestamp(µs, UTC) by shifting
//! PostgreSQL's 2000-01-01 epoch to 1970-01-01.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

/// Precision and scale of the contract's money columns, `numeric(18,2)`.
pub const NUMERIC_MONEY: ColumnKind = ColumnKind::Numeric {
    precision: 18,
    scale: 2,
};

/// Scale given to `numeric` values without a declared scale (e.g. `avg(...)`,
/// `sum(...)`): Decimal128(38, 10), rounded half away from zero. Cast in SQL
/// (`::numeric(18,2)`) to choose another.
pub const UNCONSTRAINED_NUMERIC_SCALE: i8 = 10;

/// Days from 1970-01-01 (Arrow) to 2000-01-01 (PostgreSQL).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// How a result column is read and what Arrow type it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `boolean` → Boolean.
    Bool,
    /// `smallint` → Int16.
    Int16,
    /// `integer` → Int32.
    Int32,
    /// `bigint` → Int64.
    Int64,
    /// `real` → Float32.
    Float32,
    /// `double precision` → Float64.
    Float64,
    /// `numeric(p,s)` → Decimal128(p,s).
    Numeric {
        /// Total digits.
        precision: u8,
        /// Fraction digits.
        scale: i8,
    },
    /// `text`, `varchar`, `char(n)`, `name` → Utf8.
    Text,
    /// `date` → Date32.
    Date,
    /// `timestamp` → Timestamp(µs).
    Timestamp,
    /// `timestamptz` → Timestamp(µs, UTC).
    TimestampTz,
}

/// A column type Flight SQL cannot return.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "column `{column}` has PostgreSQL type {pg_type}, which Flight SQL does not return; \
     cast it (e.g. `{column}::text`)"
)]
pub struct UnsupportedType {
    /// The column name.
    pub column: String,
    /// The PostgreSQL type name.
    pub pg_type: String,
}

impl ColumnKind {
    /// The kind of a PostgreSQL column of type `ty` with type modifier `typmod`.
    pub fn of(column: &str, ty: &Type, typmod: i32) -> Result<ColumnKind, UnsupportedType> {
        Ok(match *ty {
            Type::BOOL => ColumnKind::Bool,
            Type::INT2 => ColumnKind::Int16,
            Type::INT4 => ColumnKind::Int32,
            Type::INT8 => ColumnKind::Int64,
            Type::FLOAT4 => ColumnKind::Float32,
            Type::FLOAT8 => ColumnKind::Float64,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => ColumnKind::Text,
            Type::DATE => ColumnKind::Date,
            Type::TIMESTAMP => ColumnKind::Timestamp,
            Type::TIMESTAMPTZ => ColumnKind::TimestampTz,
            Type::NUMERIC => numeric_kind(typmod),
            _ => {
                return Err(UnsupportedType {
                    column: column.to_string(),
                    pg_type: ty.name().to_string(),
                });
            }
        })
    }

    /// The Arrow type.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnKind::Bool => DataType::Boolean,
            ColumnKind::Int16 => DataType::Int16,
            ColumnKind::Int32 => DataType::Int32,
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::Float32 => DataType::Float32,
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Numeric { precision, scale } => DataType::Decimal128(precision, scale),
            ColumnKind::Text => DataType::Utf8,
            ColumnKind::Date => DataType::Date32,
            ColumnKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnKind::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
        }
    }
}

/// `numeric(p,s)` carries `((p << 16) | s) + 4` as its type modifier; -1 means
/// unconstrained. Precisions above Arrow's 38 digits fall back to the unconstrained
/// mapping.
fn numeric_kind(typmod: i32) -> ColumnKind {
    if typmod >= 4 {
        let m = typmod - 4;
        let precision = (m >> 16) & 0xffff;
        // PostgreSQL 15+ stores the scale as 11-bit two's complement.
        let scale = ((m & 0x7ff) ^ 0x400) - 0x400;
        if (1..=38).contains(&precision) && (-38..=38).contains(&scale) {
            return ColumnKind::Numeric {
                precision: precision as u8,
                scale: scale as i8,
            };
        }
    }
    ColumnKind::Numeric {
        precision: 38,
        scale: UNCONSTRAINED_NUMERIC_SCALE,
    }
}

/// One column of a result: its name and kind.
#[derive(Debug, Clone)]
pub struct ResultColumn {
    /// Column name.
    pub name: String,
    /// Kind.
    pub kind: ColumnKind,
}

/// The Arrow schema of result columns (all nullable: PostgreSQL does not say
/// which expression results can be NULL).
pub fn schema_of(columns: &[ResultColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.kind.arrow_type(), true))
            .collect::<Vec<_>>(),
    ))
}

/// The result columns of a prepared statement.
pub fn columns_of(
    statement: &tokio_postgres::Statement,
) -> Result<Vec<ResultColumn>, UnsupportedType> {
    statement
        .columns()
        .iter()
        .map(|c| {
            Ok(ResultColumn {
                name: c.name().to_string(),
                kind: ColumnKind::of(c.name(), c.type_(), c.type_modifier())?,
            })
        })
        .collect()
}

/// A value's raw binary wire bytes, whatever its type (decoded here by kind).
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

fn bad(column: &str, what: &str) -> ArrowError {
    ArrowError::ExternalError(format!("column `{column}`: {what}").into())
}

fn fixed<const N: usize>(raw: &[u8], column: &str) -> Result<[u8; N], ArrowError> {
    raw.try_into()
        .map_err(|_| bad(column, &format!("expected {N} bytes, got {}", raw.len())))
}

/// Decodes PostgreSQL's binary `numeric` into an integer scaled by `10^scale`,
/// exactly when the value has at most `scale` fraction digits, else rounded half
/// away from zero. `None` for NaN and infinities, or when it does not fit i128.
pub fn numeric_to_i128(raw: &[u8], scale: i8) -> Option<i128> {
    if raw.len() < 8 {
        return None;
    }
    let ndigits = i16::from_be_bytes([raw[0], raw[1]]) as usize;
    let weight = i16::from_be_bytes([raw[2], raw[3]]) as i32;
    let sign = u16::from_be_bytes([raw[4], raw[5]]);
    if sign != 0x0000 && sign != 0x4000 {
        return None; // NaN, +/-Infinity
    }
    if raw.len() != 8 + 2 * ndigits {
        return None;
    }
    // value = Σ digit[i] * 10000^(weight - i); we want value * 10^scale. Digit-level
    // arithmetic stays in i32 (a digit is < 10000): i128 division is slow.
    let mut acc: i128 = 0;
    let mut round_up = false;
    for i in 0..ndigits {
        let digit = i32::from(i16::from_be_bytes([raw[8 + 2 * i], raw[9 + 2 * i]]));
        // Decimal exponent of this base-10000 digit's last decimal place, after scaling.
        let exp = 4 * (weight - i as i32) + scale as i32;
        if exp >= 0 {
            let term = i128::from(digit).checked_mul(*POW10.get(exp as usize)?)?;
            acc = acc.checked_add(term)?;
        } else if exp > -4 {
            let div = 10i32.pow((-exp) as u32);
            acc = acc.checked_add(i128::from(digit / div))?;
            // The first dropped decimal digit decides rounding (half away from zero).
            round_up = (digit % div) * 10 / div >= 5;
            break;
        } else {
            // Whole base-10000 digit below the scale: only its leading decimal digit
            // matters, and only if nothing was dropped before it.
            if exp == -4 && !round_up {
                round_up = digit >= 5000;
            }
            break;
        }
    }
    if round_up {
        acc = acc.checked_add(1)?;
    }
    Some(if sign == 0x4000 { -acc } else { acc })
}

/// Powers of ten that fit i128: `POW10[n] = 10^n` for n in 0..=38.
const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut n = 1;
    while n < table.len() {
        table[n] = table[n - 1] * 10;
        n += 1;
    }
    table
};

enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Numeric(Decimal128Builder, u8, i8),
    Text(StringBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, bool),
}

impl ColumnBuilder {
    fn new(kind: ColumnKind, capacity: usize) -> Self {
        match kind {
            ColumnKind::Bool => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            ColumnKind::Int16 => Self::Int16(Int16Builder::with_capacity(capacity)),
            ColumnKind::Int32 => Self::Int32(Int32Builder::with_capacity(capacity)),
            ColumnKind::Int64 => Self::Int64(Int64Builder::with_capacity(capacity)),
            ColumnKind::Float32 => Self::Float32(Float32Builder::with_capacity(capacity)),
            ColumnKind::Float64 => Self::Float64(Float64Builder::with_capacity(capacity)),
            ColumnKind::Numeric { precision, scale } => {
                Self::Numeric(Decimal128Builder::with_capacity(capacity), precision, scale)
            }
            ColumnKind::Text => Self::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
            ColumnKind::Date => Self::Date(Date32Builder::with_capacity(capacity)),
            ColumnKind::Timestamp => {
                Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity), false)
            }
            ColumnKind::TimestampTz => {
                Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity), true)
            }
        }
    }

    fn append(&mut self, raw: Option<&[u8]>, column: &str) -> Result<(), ArrowError> {
        let Some(raw) = raw else {
            match self {
                Self::Bool(b) => b.append_null(),
                Self::Int16(b) => b.append_null(),
                Self::Int32(b) => b.append_null(),
                Self::Int64(b) => b.append_null(),
                Self::Float32(b) => b.append_null(),
                Self::Float64(b) => b.append_null(),
                Self::Numeric(b, ..) => b.append_null(),
                Self::Text(b) => b.append_null(),
                Self::Date(b) => b.append_null(),
                Self::Timestamp(b, _) => b.append_null(),
            }
            return Ok(());
        };
        match self {
            Self::Bool(b) => b.append_value(fixed::<1>(raw, column)?[0] != 0),
            Self::Int16(b) => b.append_value(i16::from_be_bytes(fixed(raw, column)?)),
            Self::Int32(b) => b.append_value(i32::from_be_bytes(fixed(raw, column)?)),
            Self::Int64(b) => b.append_value(i64::from_be_bytes(fixed(raw, column)?)),
            Self::Float32(b) => b.append_value(f32::from_be_bytes(fixed(raw, column)?)),
            Self::Float64(b) => b.append_value(f64::from_be_bytes(fixed(raw, column)?)),
            Self::Numeric(b, precision, scale) => {
                let v = numeric_to_i128(raw, *scale).ok_or_else(|| {
                    bad(
                        column,
                        "numeric value is NaN, infinite or too large for Decimal128",
                    )
                })?;
                if v.unsigned_abs() >= POW10[usize::from(*precision)].unsigned_abs() {
                    return Err(bad(
                        column,
                        &format!("numeric value does not fit Decimal128({precision}, {scale})"),
                    ));
                }
                b.append_value(v)
            }
            Self::Text(b) => b.append_value(
                std::str::from_utf8(raw).map_err(|_| bad(column, "text is not UTF-8"))?,
            ),
            Self::Date(b) => {
                let days = i32::from_be_bytes(fixed(raw, column)?);
                if days == i32::MAX || days == i32::MIN {
                    return Err(bad(column, "infinite dates have no Arrow value"));
                }
                b.append_value(
                    days.checked_add(PG_EPOCH_DAYS)
                        .ok_or_else(|| bad(column, "date out of range"))?,
                )
            }
            Self::Timestamp(b, _) => {
                let micros = i64::from_be_bytes(fixed(raw, column)?);
                if micros == i64::MAX || micros == i64::MIN {
                    return Err(bad(column, "infinite timestamps have no Arrow value"));
                }
                b.append_value(
                    micros
                        .checked_add(PG_EPOCH_MICROS)
                        .ok_or_else(|| bad(column, "timestamp out of range"))?,
                )
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Numeric(b, precision, scale) => {
                Arc::new(b.finish().with_precision_and_scale(*precision, *scale)?)
            }
            Self::Text(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Timestamp(b, utc) => {
                let a = b.finish();
                Arc::new(if *utc { a.with_timezone("UTC") } else { a })
            }
        })
    }
}

/// Accumulates rows into record batches of a fixed schema.
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<ResultColumn>,
    builders: Vec<ColumnBuilder>,
    rows: usize,
}

impl BatchBuilder {
    /// A builder for `columns`, sized for batches of `capacity` rows.
    pub fn new(columns: Vec<ResultColumn>, capacity: usize) -> Self {
        let schema = schema_of(&columns);
        let builders = columns
            .iter()
            .map(|c| ColumnBuilder::new(c.kind, capacity))
            .collect();
        Self {
            schema,
            columns,
            builders,
            rows: 0,
        }
    }

    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows appended since the last batch.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row is pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row.
    pub fn append(&mut self, row: &Row) -> Result<(), ArrowError> {
        for (i, (builder, column)) in self.builders.iter_mut().zip(&self.columns).enumerate() {
            let raw: Option<Raw<'_>> = row
                .try_get(i)
                .map_err(|e| bad(&column.name, &e.to_string()))?;
            builder.append(raw.map(|r| r.0), &column.name)?;
        }
        self.rows += 1;
        Ok(())
    }

    /// The pending rows as a batch (possibly empty); starts a new one.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let arrays = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<Result<Vec<_>, _>>()?;
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a decimal string as PostgreSQL's binary numeric (for the tests).
    fn encode(text: &str) -> Vec<u8> {
        let (neg, t) = text.strip_prefix('-').map_or((false, text), |r| (true, r));
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let int = int.trim_start_matches('0');
        // Pad the integer part on the left and the fraction on the right to groups of 4.
        let ipad = (4 - int.len() % 4) % 4;
        let fpad = (4 - frac.len() % 4) % 4;
        let digits_text = format!("{}{int}{frac}{}", "0".repeat(ipad), "0".repeat(fpad));
        let groups: Vec<i16> = digits_text
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect();
        let weight = ((int.len() + ipad) / 4) as i16 - 1;
        let mut out = Vec::new();
        out.extend((groups.len() as i16).to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend((if neg { 0x4000u16 } else { 0 }).to_be_bytes());
        out.extend((frac.len() as u16).to_be_bytes());
        for g in groups {
            out.extend(g.to_be_bytes());
        }
        out
    }

    #[test]
    fn numeric_is_exact_at_its_scale() {
        for (text, scale, want) in [
            ("1234.50", 2, 123450i128),
            ("-0.01", 2, -1),
            ("0", 2, 0),
            ("9999999999999999.99", 2, 999_999_999_999_999_999),
            ("12345678.9", 2, 1_234_567_890),
            ("100000000", 2, 10_000_000_000),
            ("0.0001", 4, 1),
            ("-42", 0, -42),
        ] {
            assert_eq!(numeric_to_i128(&encode(text), scale), Some(want), "{text}");
        }
    }

    #[test]
    fn numeric_rounds_half_away_from_zero_below_its_scale() {
        for (text, scale, want) in [
            ("2.345", 2, 235i128),
            ("2.344999", 2, 234),
            ("-2.345", 2, -235),
            ("0.00005", 4, 1),
            ("0.00004999", 4, 0),
            ("1.99999", 2, 200),
            ("123.456789012345", 10, 1_234_567_890_123),
        ] {
            assert_eq!(numeric_to_i128(&encode(text), scale), Some(want), "{text}");
        }
    }

    #[test]
    fn numeric_type_modifiers() {
        let typmod = |p: i32, s: i32| ((p << 16) | s) + 4;
        assert_eq!(numeric_kind(typmod(18, 2)), NUMERIC_MONEY);
        assert_eq!(
            numeric_kind(-1),
            ColumnKind::Numeric {
                precision: 38,
                scale: UNCONSTRAINED_NUMERIC_SCALE
            }
        );
    }
}
