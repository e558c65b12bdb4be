//! Exact decimal money values (numeric(18,2) / numeric(12,2)) kept as hundredths.

use serde::{Serialize, Serializer};

/// A decimal with two fraction digits, stored exactly as an integer number of hundredths.
/// Serialised as a JSON number with exactly two fraction digits (`1234.50`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

/// A value that is not a decimal with at most two fraction digits.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a decimal with at most two fraction digits")]
pub struct MoneyParseError(pub String);

impl std::str::FromStr for Money {
    type Err = MoneyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MoneyParseError(s.to_string());
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty()
            || frac.len() > 2
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let int: i64 = int.parse().map_err(|_| err())?;
        let mut cents: i64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            cents += i64::from(b - b'0') * if i == 0 { 10 } else { 1 };
        }
        let v = int
            .checked_mul(100)
            .and_then(|v| v.checked_add(cents))
            .ok_or_else(err)?;
        Ok(Money(if neg { -v } else { v }))
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for (s, v, out) in [
            ("0.00", 0, "0.00"),
            ("12", 1200, "12.00"),
            ("3.5", 350, "3.50"),
            ("-0.05", -5, "-0.05"),
            ("-1234.56", -123456, "-1234.56"),
            (
                "9999999999999999.99",
                999999999999999999,
                "9999999999999999.99",
            ),
        ] {
            let m: Money = s.parse().unwrap();
            assert_eq!(m.0, v);
            assert_eq!(m.to_string(), out);
        }
        for bad in ["", "-", ".5", "1.234", "1e3", "abc", "1.-2"] {
            assert!(bad.parse::<Money>().is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&Money(150)).unwrap(), "1.50");
    }
}
