//! Exact money: the API writes amounts as JSON numbers with two decimals, written
//! from PostgreSQL `numeric`; reading them into a float would round large sums, and
//! the CSV downloads must equal the gold tables, so amounts are kept as integer cents.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// An amount with two decimals, held exactly as cents. Also used for percentages
/// (`mom_growth_pct` is `numeric(12,2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Text that is not a decimal with at most two fraction digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an amount with at most two decimals")]
pub struct MoneyError(pub String);

impl Money {
    /// The amount of `cents` hundredths.
    pub const fn from_cents(cents: i64) -> Money {
        Money(cents)
    }

    /// The amount in cents.
    pub const fn cents(self) -> i64 {
        self.0
    }

    /// The amount as a float, for chart geometry only (never for displayed values).
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// The amount with thousands separators, for display: `1,234.50`.
    pub fn grouped(self) -> String {
        crate::charts::format_money(self)
    }

    /// The sum of two amounts (saturating: far beyond any `numeric(18,2)` value).
    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Money, MoneyError> {
        let err = || MoneyError(s.to_string());
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (units, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if units.is_empty()
            || !units.bytes().all(|b| b.is_ascii_digit())
            || fraction.len() > 2
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || (digits.contains('.') && fraction.is_empty())
        {
            return Err(err());
        }
        let units: i64 = units.parse().map_err(|_| err())?;
        let mut cents: i64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| err())?
        };
        if fraction.len() == 1 {
            cents *= 10;
        }
        let total = units
            .checked_mul(100)
            .and_then(|u| u.checked_add(cents))
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

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        // The number's own text, so no float rounding happens on the way.
        let raw: Box<serde_json::value::RawValue> = Deserialize::deserialize(d)?;
        let text = raw.get().trim().trim_matches('"');
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        for (text, cents, shown) in [
            ("0", 0, "0.00"),
            ("1234.5", 123450, "1234.50"),
            ("1234.50", 123450, "1234.50"),
            ("-0.05", -5, "-0.05"),
            (
                "9999999999999999.99",
                999_999_999_999_999_999,
                "9999999999999999.99",
            ),
        ] {
            let m: Money = text.parse().unwrap();
            assert_eq!(m.cents(), cents, "{text}");
            assert_eq!(m.to_string(), shown);
        }
        for bad in ["", "-", ".5", "5.", "1.234", "1e3", "abc", "1,5"] {
            assert!(bad.parse::<Money>().is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_json_numbers_without_float_rounding() {
        #[derive(Deserialize)]
        struct Row {
            a: Money,
            b: Option<Money>,
        }
        let r: Row = serde_json::from_str(r#"{"a": 90071992547409.93, "b": null}"#).unwrap();
        assert_eq!(r.a.to_string(), "90071992547409.93");
        assert_eq!(r.b, None);
    }
}
