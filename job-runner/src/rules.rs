//! The field-level rules of docs/data-format.md ("Field formats" and "Rules and
//! reject reasons"), as pure functions.
//!
//! Every function takes a value that is already trimmed (the raw layer stores
//! trimmed text) and answers exactly what the contract says, nothing more.

use chrono::{Datelike, NaiveDate};

/// Days from 0001-01-01 (chrono's CE day 1) to 1970-01-01, for Arrow `Date32`.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

/// Parses `M/d/yyyy`: month and day of one or two digits, a year of exactly four,
/// and a real calendar date (leap years honoured). Year 0 does not exist.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let mut parts = text.split('/');
    let (month, day, year) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let month = digits(month, 1, 2)?;
    let day = digits(day, 1, 2)?;
    let year = digits(year, 4, 4)?;
    if year == 0 {
        return None;
    }
    NaiveDate::from_ymd_opt(year as i32, month, day)
}

/// A date as Arrow `Date32`: days since 1970-01-01.
pub fn date32(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS
}

/// The date of an Arrow `Date32` value.
pub fn from_date32(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_CE_DAYS).unwrap_or(NaiveDate::MIN)
}

fn digits(text: &str, min: usize, max: usize) -> Option<u32> {
    if text.len() < min || text.len() > max || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses a quantity: an optional leading `-`, then one or more digits (leading
/// zeros allowed), within the 32-bit signed range.
pub fn parse_quantity(text: &str) -> Option<i32> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: i64 = 0;
    for b in body.bytes() {
        value = value * 10 + i64::from(b - b'0');
        if value > 1 << 31 {
            return None;
        }
    }
    let value = if negative { -value } else { value };
    i32::try_from(value).ok()
}

/// The largest price magnitude, in hundredths, that has at most 10 integer digits.
const MAX_PRICE_CENTS: i64 = 10_000_000_000 * 100 - 1;

/// Parses a price into hundredths: an optional leading `-`, at least one digit,
/// and optionally a point followed by one or two digits; at most 10 integer
/// digits (counted on the value, so leading zeros do not count).
pub fn parse_price(text: &str) -> Option<i64> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (integer, fraction) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    if integer.is_empty() || !integer.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut cents: i64 = 0;
    for b in integer.bytes() {
        cents = cents * 10 + i64::from(b - b'0');
        if cents > MAX_PRICE_CENTS / 100 {
            return None;
        }
    }
    cents *= 100;
    if let Some(fraction) = fraction {
        if fraction.is_empty()
            || fraction.len() > 2
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut hundredths: i64 = fraction.parse().ok()?;
        if fraction.len() == 1 {
            hundredths *= 10;
        }
        cents += hundredths;
    }
    Some(if negative { -cents } else { cents })
}

/// Exactly one `@` with at least one character on each side.
pub fn is_valid_email(email: &str) -> bool {
    let mut at = email.match_indices('@');
    match (at.next(), at.next()) {
        (Some((index, _)), None) => index > 0 && index + 1 < email.len(),
        _ => false,
    }
}

/// A transaction number starting with `C` (case-sensitive) is a cancellation.
pub fn is_cancellation(transaction_no: &str) -> bool {
    transaction_no.starts_with('C')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1/5/2023"), NaiveDate::from_ymd_opt(2023, 1, 5));
        assert_eq!(
            parse_date("01/05/2023"),
            NaiveDate::from_ymd_opt(2023, 1, 5)
        );
        assert_eq!(
            parse_date("12/31/2019"),
            NaiveDate::from_ymd_opt(2019, 12, 31)
        );
        assert_eq!(
            parse_date("2/29/2024"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        for bad in [
            "2/29/2023",
            "1/5/23",
            "2023-01-05",
            "1/5/2023 10:26",
            "13/1/2023",
            "0/1/2023",
            "1/0/2023",
            "4/31/2023",
            "001/5/2023",
            "1/5/02023",
            "1/5/0000",
            "1//2023",
            "1/5",
            "1/5/2023/1",
            "a/5/2023",
            "+1/5/2023",
            "1/-5/2023",
            " 1/5/2023",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        // 1900 is not a leap year, 2000 is.
        assert_eq!(parse_date("2/29/1900"), None);
        assert!(parse_date("2/29/2000").is_some());
    }

    #[test]
    fn date32_round_trips() {
        let d = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        assert_eq!(date32(d), 0);
        let d = NaiveDate::from_ymd_opt(2023, 1, 5).unwrap();
        assert_eq!(date32(d), 19362);
        assert_eq!(from_date32(19362), d);
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("12"), Some(12));
        assert_eq!(parse_quantity("007"), Some(7));
        assert_eq!(parse_quantity("-3"), Some(-3));
        assert_eq!(parse_quantity("-0"), Some(0));
        assert_eq!(parse_quantity("2147483647"), Some(i32::MAX));
        assert_eq!(parse_quantity("-2147483648"), Some(i32::MIN));
        assert_eq!(parse_quantity("0000000000002147483647"), Some(i32::MAX));
        for bad in [
            "2147483648",
            "-2147483649",
            "2.5",
            "1e3",
            "1,000",
            "+5",
            "-",
            "",
            "--1",
            "99999999999999999999",
        ] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn prices() {
        assert_eq!(parse_price("3.5"), Some(350));
        assert_eq!(parse_price("3.50"), Some(350));
        assert_eq!(parse_price("12"), Some(1200));
        assert_eq!(parse_price("0.05"), Some(5));
        assert_eq!(parse_price("-4.5"), Some(-450));
        assert_eq!(parse_price("0"), Some(0));
        assert_eq!(parse_price("9999999999.99"), Some(999_999_999_999));
        assert_eq!(parse_price("0009999999999.99"), Some(999_999_999_999));
        for bad in [
            ".5",
            "5.",
            "3.125",
            "$4.50",
            "1,50",
            "10000000000",
            "-",
            "",
            "1.5.0",
            "1e2",
            "+1",
            " 1",
            "1.-5",
        ] {
            assert_eq!(parse_price(bad), None, "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(is_valid_email("a@b"));
        assert!(is_valid_email("jane.doe@example.com"));
        for bad in ["", "@", "a@", "@b", "ab", "a@@b", "a@b@c"] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn cancellations_are_case_sensitive() {
        assert!(is_cancellation("C536379"));
        assert!(!is_cancellation("c536379"));
        assert!(!is_cancellation("536379C"));
    }
}
