//! Exact money: decimals with two fraction digits, held as integer hundredths.
//!
//! The contract wants exact decimal arithmetic and rounding half away from zero
//! "only at the end"; integers of hundredths give both without a decimal crate.
//! Every gold money column is `numeric(18,2)` (`mom_growth_pct` is
//! `numeric(12,2)`), so an `i128` of hundredths holds any value and any
//! intermediate sum. One text rule serves everyone: the contract's price rule
//! (docs/data-format.md), so `5.` and `.5` are not money.

use std::fmt;
use std::str::FromStr;

/// A decimal amount with exactly two fraction digits, as a count of hundredths.
/// Also used for percentages (`mom_growth_pct`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i128);

/// Text that is not a decimal with at most two fraction digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a decimal with at most two fraction digits")]
pub struct MoneyParseError(pub String);

impl Money {
    /// The amount of `cents` hundredths.
    pub const fn from_cents(cents: i128) -> Money {
        Money(cents)
    }

    /// The amount in hundredths.
    pub const fn cents(self) -> i128 {
        self.0
    }

    /// The amount as a float, for chart geometry only (never for shown values).
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// The sum of two amounts (saturating: far beyond any `numeric(18,2)` value).
    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// `numerator / denominator` in hundredths, where `numerator` is itself in
    /// hundredths, rounded half away from zero. `denominator` must not be 0.
    pub fn ratio(numerator: Money, denominator: i128) -> Money {
        Money(div_round_half_away(numerator.0, denominator))
    }

    /// Whether the value fits `numeric(precision, 2)`.
    pub fn fits_precision(self, precision: u32) -> bool {
        self.0.unsigned_abs() < 10u128.pow(precision)
    }
}

/// `n / d` rounded half away from zero. `d` must not be 0.
pub fn div_round_half_away(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if 2 * r.unsigned_abs() >= d.unsigned_abs() {
        if (n < 0) != (d < 0) { q - 1 } else { q + 1 }
    } else {
        q
    }
}

/// Month-over-month growth in hundredths of a percent:
/// `100 * (current - previous) / previous`, rounded half away from zero;
/// `None` when `previous` is zero.
pub fn growth_pct(current: Money, previous: Money) -> Option<Money> {
    if previous.0 == 0 {
        return None;
    }
    Some(Money(div_round_half_away(
        10_000 * (current.0 - previous.0),
        previous.0,
    )))
}

impl FromStr for Money {
    type Err = MoneyParseError;

    /// An optional leading `-`, at least one digit, and if there is a point, one
    /// or two digits after it: `12`, `3.5`, `-0.05`; not `5.`, `.5`, `1.234`,
    /// `+1`, `1e3`, `1,5`.
    fn from_str(s: &str) -> Result<Money, MoneyParseError> {
        let err = || MoneyParseError(s.to_owned());
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (units, fraction) = match body.split_once('.') {
            Some((units, fraction)) if !fraction.is_empty() => (units, fraction),
            Some(_) => return Err(err()),
            None => (body, ""),
        };
        if units.is_empty()
            || !units.bytes().all(|b| b.is_ascii_digit())
            || fraction.len() > 2
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let mut total: i128 = 0;
        for b in units.bytes() {
            total = total
                .checked_mul(10)
                .and_then(|t| t.checked_add(i128::from(b - b'0')))
                .ok_or_else(err)?;
        }
        let mut cents: i128 = 0;
        for (i, b) in fraction.bytes().enumerate() {
            cents += i128::from(b - b'0') * if i == 0 { 10 } else { 1 };
        }
        let total = total
            .checked_mul(100)
            .and_then(|t| t.checked_add(cents))
            .ok_or_else(err)?;
        Ok(Money(if negative { -total } else { total }))
    }
}

impl fmt::Display for Money {
    /// Plain decimal with two digits, as PostgreSQL prints `numeric(18,2)`: `-1234.50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(feature = "serde")]
mod json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Money;

    /// A JSON number with exactly two fraction digits (`1234.50`), written from
    /// the exact value, never through a float.
    impl Serialize for Money {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let raw = serde_json::value::RawValue::from_string(self.to_string())
                .map_err(serde::ser::Error::custom)?;
            raw.serialize(serializer)
        }
    }

    /// A JSON number (or a string holding one), read from its own text so that
    /// no float rounding happens on the way.
    impl<'de> Deserialize<'de> for Money {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
            let raw: Box<serde_json::value::RawValue> = Deserialize::deserialize(d)?;
            let text = raw.get().trim().trim_matches('"');
            text.parse().map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use std::error::Error;

    use bytes::{BufMut, BytesMut};
    use postgres_types::{IsNull, ToSql, Type, to_sql_checked};

    use super::Money;

    /// PostgreSQL `numeric` in its binary wire format, scale 2.
    impl ToSql for Money {
        fn to_sql(
            &self,
            _ty: &Type,
            out: &mut BytesMut,
        ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
            let abs = self.0.unsigned_abs();
            let (integer, fraction) = (abs / 100, abs % 100);
            // Base-10000 digits, most significant first: the integer part, then one
            // fractional digit holding the two decimals (".05" is the digit 0500).
            let mut digits: Vec<i16> = Vec::new();
            let mut rest = integer;
            while rest > 0 {
                digits.push((rest % 10_000) as i16);
                rest /= 10_000;
            }
            digits.reverse();
            let mut weight = digits.len() as i16 - 1;
            digits.push((fraction * 100) as i16);
            while digits.first() == Some(&0) {
                digits.remove(0);
                weight -= 1;
            }
            while digits.last() == Some(&0) {
                digits.pop();
            }
            if digits.is_empty() {
                weight = 0;
            }
            out.put_i16(digits.len() as i16);
            out.put_i16(weight);
            out.put_u16(if self.0 < 0 { 0x4000 } else { 0x0000 });
            out.put_i16(2);
            for digit in digits {
                out.put_i16(digit);
            }
            Ok(IsNull::No)
        }

        fn accepts(ty: &Type) -> bool {
            *ty == Type::NUMERIC
        }

        to_sql_checked!();
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn numeric_wire_format() {
            let encode = |c: Money| {
                let mut buf = BytesMut::new();
                c.to_sql(&Type::NUMERIC, &mut buf).unwrap();
                buf.to_vec()
            };
            // 12345.67 = 1 2345 . 6700 -> digits [1, 2345, 6700], weight 1
            assert_eq!(
                encode(Money(1_234_567)),
                vec![0, 3, 0, 1, 0, 0, 0, 2, 0, 1, 0x09, 0x29, 0x1a, 0x2c]
            );
            // 0.05 -> digits [500], weight -1
            assert_eq!(
                encode(Money(5)),
                vec![0, 1, 0xff, 0xff, 0, 0, 0, 2, 0x01, 0xf4]
            );
            // -10000.00 -> digits [1], weight 1, negative
            assert_eq!(
                encode(Money(-1_000_000)),
                vec![0, 1, 0, 1, 0x40, 0, 0, 2, 0, 1]
            );
            assert_eq!(encode(Money(0)), vec![0, 0, 0, 0, 0, 0, 0, 2]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(div_round_half_away(5, 2), 3);
        assert_eq!(div_round_half_away(-5, 2), -3);
        assert_eq!(div_round_half_away(5, -2), -3);
        assert_eq!(div_round_half_away(4, 3), 1);
        assert_eq!(div_round_half_away(-4, 3), -1);
        assert_eq!(div_round_half_away(7, 3), 2);
        assert_eq!(div_round_half_away(0, 7), 0);
        assert_eq!(Money::ratio(Money(1001), 2), Money(501)); // 10.01 / 2 = 5.005 -> 5.01
        assert_eq!(Money::ratio(Money(-1001), 2), Money(-501));
        assert_eq!(Money::ratio(Money(1000), 3), Money(333));
    }

    #[test]
    fn growth_is_exact_and_none_on_zero() {
        assert_eq!(growth_pct(Money(150), Money(100)), Some(Money(5000)));
        assert_eq!(growth_pct(Money(100), Money(300)), Some(Money(-6667)));
        assert_eq!(growth_pct(Money(200), Money(300)), Some(Money(-3333)));
        assert_eq!(growth_pct(Money(1), Money(0)), None);
        // 100 * (1 - 8) / 8 = -87.5 exactly -> -87.50; and a half case: 1/1600 -> 0.0625%
        assert_eq!(growth_pct(Money(1), Money(8)), Some(Money(-8750)));
        assert_eq!(growth_pct(Money(1601), Money(1600)), Some(Money(6)));
    }

    #[test]
    fn parses_and_prints_exactly() {
        for (text, cents, shown) in [
            ("0", 0, "0.00"),
            ("0.00", 0, "0.00"),
            ("12", 1200, "12.00"),
            ("3.5", 350, "3.50"),
            ("1234.50", 123_450, "1234.50"),
            ("-0.05", -5, "-0.05"),
            ("-1234.56", -123_456, "-1234.56"),
            ("007.1", 710, "7.10"),
            (
                "9999999999999999.99",
                999_999_999_999_999_999,
                "9999999999999999.99",
            ),
        ] {
            let m: Money = text.parse().unwrap();
            assert_eq!(m.cents(), cents, "{text}");
            assert_eq!(m.to_string(), shown, "{text}");
        }
    }

    /// The contract's price rule (docs/data-format.md): a point needs one or two
    /// digits after it, and at least one before it. The API once accepted `5.`
    /// while the dashboard refused it; both now use this one rule.
    #[test]
    fn refuses_what_the_contract_calls_bad() {
        for bad in [
            "", "-", ".5", "5.", "-5.", "1.234", "1e3", "abc", "1,5", "1.-2", "+1", " 1", "1 ",
            "$4.50", "1.5.0",
        ] {
            assert!(bad.parse::<Money>().is_err(), "{bad}");
        }
        let huge = "9".repeat(60);
        assert!(huge.parse::<Money>().is_err());
    }

    #[test]
    fn displays_two_decimals() {
        assert_eq!(Money(-5).to_string(), "-0.05");
        assert_eq!(Money(123_456).to_string(), "1234.56");
        assert_eq!(Money(0).to_string(), "0.00");
    }

    #[test]
    fn fits_precision() {
        assert!(Money(999_999_999_999_999_999).fits_precision(18));
        assert!(!Money(1_000_000_000_000_000_000).fits_precision(18));
        assert!(!Money(-1_000_000_000_000_000_000).fits_precision(18));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_numbers_without_float_rounding() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Row {
            a: Money,
            b: Option<Money>,
        }
        let r: Row = serde_json::from_str(r#"{"a": 90071992547409.93, "b": null}"#).unwrap();
        assert_eq!(r.a.to_string(), "90071992547409.93");
        assert_eq!(r.b, None);
        assert_eq!(
            serde_json::to_string(&Row {
                a: Money(150),
                b: Some(Money(-5))
            })
            .unwrap(),
            r#"{"a":1.50,"b":-0.05}"#
        );
        assert!(serde_json::from_str::<Row>(r#"{"a": 5., "b": null}"#).is_err());
    }
}
