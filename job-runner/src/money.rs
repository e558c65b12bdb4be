//! Exact money: decimals with two fraction digits, held as integer hundredths.
//!
//! The contract wants exact decimal arithmetic and rounding half away from zero
//! "only at the end"; integers of hundredths give both without a decimal crate.

use std::error::Error;
use std::fmt;

use bytes::{BufMut, BytesMut};
use postgres_types::{IsNull, ToSql, Type, to_sql_checked};

/// A decimal amount with exactly two fraction digits, as a count of hundredths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cents(pub i128);

impl Cents {
    /// `numerator / denominator` in hundredths, where `numerator` is itself in
    /// hundredths, rounded half away from zero.
    pub fn ratio(numerator: Cents, denominator: i128) -> Cents {
        Cents(div_round_half_away(numerator.0, denominator))
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
pub fn growth_pct(current: Cents, previous: Cents) -> Option<Cents> {
    if previous.0 == 0 {
        return None;
    }
    Some(Cents(div_round_half_away(
        10_000 * (current.0 - previous.0),
        previous.0,
    )))
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// PostgreSQL `numeric` in its binary wire format, scale 2.
impl ToSql for Cents {
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
    fn rounds_half_away_from_zero() {
        assert_eq!(div_round_half_away(5, 2), 3);
        assert_eq!(div_round_half_away(-5, 2), -3);
        assert_eq!(div_round_half_away(5, -2), -3);
        assert_eq!(div_round_half_away(4, 3), 1);
        assert_eq!(div_round_half_away(-4, 3), -1);
        assert_eq!(div_round_half_away(7, 3), 2);
        assert_eq!(div_round_half_away(0, 7), 0);
        assert_eq!(Cents::ratio(Cents(1001), 2), Cents(501)); // 10.01 / 2 = 5.005 -> 5.01
        assert_eq!(Cents::ratio(Cents(-1001), 2), Cents(-501));
        assert_eq!(Cents::ratio(Cents(1000), 3), Cents(333));
    }

    #[test]
    fn growth_is_exact_and_none_on_zero() {
        assert_eq!(growth_pct(Cents(150), Cents(100)), Some(Cents(5000)));
        assert_eq!(growth_pct(Cents(100), Cents(300)), Some(Cents(-6667)));
        assert_eq!(growth_pct(Cents(200), Cents(300)), Some(Cents(-3333)));
        assert_eq!(growth_pct(Cents(1), Cents(0)), None);
        // 100 * (1 - 8) / 8 = -87.5 exactly -> -87.50; and a half case: 1/1600 -> 0.0625%
        assert_eq!(growth_pct(Cents(1), Cents(8)), Some(Cents(-8750)));
        assert_eq!(growth_pct(Cents(1601), Cents(1600)), Some(Cents(6)));
    }

    #[test]
    fn displays_two_decimals() {
        assert_eq!(Cents(-5).to_string(), "-0.05");
        assert_eq!(Cents(123_456).to_string(), "1234.56");
        assert_eq!(Cents(0).to_string(), "0.00");
    }

    #[test]
    fn numeric_wire_format() {
        let encode = |c: Cents| {
            let mut buf = BytesMut::new();
            c.to_sql(&Type::NUMERIC, &mut buf).unwrap();
            buf.to_vec()
        };
        // 12345.67 = 1 2345 . 6700 -> digits [1, 2345, 6700], weight 1
        assert_eq!(
            encode(Cents(1_234_567)),
            vec![0, 3, 0, 1, 0, 0, 0, 2, 0, 1, 0x09, 0x29, 0x1a, 0x2c]
        );
        // 0.05 -> digits [500], weight -1
        assert_eq!(
            encode(Cents(5)),
            vec![0, 1, 0xff, 0xff, 0, 0, 0, 2, 0x01, 0xf4]
        );
        // -10000.00 -> digits [1], weight 1, negative
        assert_eq!(
            encode(Cents(-1_000_000)),
            vec![0, 1, 0, 1, 0x40, 0, 0, 2, 0, 1]
        );
        assert_eq!(encode(Cents(0)), vec![0, 0, 0, 0, 0, 0, 0, 2]);
    }
}
