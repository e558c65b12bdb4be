//! The filters every chart shares, carried in the URL query (`?year=2024&country=France`)
//! so that a view is a shareable link and the back button walks through views.

use serde::Deserialize;

/// The raw query of a page or CSV route.
#[derive(Debug, Default, Deserialize)]
pub struct FilterQuery {
    /// A calendar year, or empty for all years.
    #[serde(default)]
    pub year: Option<String>,
    /// A country name, or empty for all countries.
    #[serde(default)]
    pub country: Option<String>,
}

/// Validated filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filters {
    /// Only this year.
    pub year: Option<i32>,
    /// Only this country.
    pub country: Option<String>,
}

/// A filter value that cannot be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not a four-digit year.
    #[error("the year must be four digits, like 2024 (got `{0}`)")]
    Year(String),
    /// An over-long or control-character country.
    #[error("the country filter is not a country name")]
    Country,
}

impl Filters {
    /// Checks a raw query: an empty value means "all".
    pub fn parse(q: &FilterQuery) -> Result<Filters, FilterError> {
        let year = match q.year.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(y) if y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()) => {
                Some(y.parse().map_err(|_| FilterError::Year(y.to_string()))?)
            }
            Some(y) => return Err(FilterError::Year(y.chars().take(20).collect())),
        };
        let country = match q
            .country
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(c) if c.len() > 200 || c.chars().any(char::is_control) => {
                return Err(FilterError::Country);
            }
            Some(c) => Some(c.to_string()),
        };
        Ok(Filters { year, country })
    }

    /// The filters as a URL query (`year=2024&country=France`), empty for none.
    pub fn query_string(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(y) = self.year {
            pairs.push(("year", y.to_string()));
        }
        if let Some(c) = &self.country {
            pairs.push(("country", c.clone()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The top-products scope for the country filter.
    pub fn scope(&self) -> &str {
        self.country.as_deref().unwrap_or("ALL")
    }

    /// Whether a (year, country) combination passes the filters.
    pub fn matches(&self, year: i32, country: &str) -> bool {
        self.year.is_none_or(|y| y == year) && self.country.as_deref().is_none_or(|c| c == country)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(year: Option<&str>, country: Option<&str>) -> FilterQuery {
        FilterQuery {
            year: year.map(str::to_string),
            country: country.map(str::to_string),
        }
    }

    #[test]
    fn parses_and_round_trips() {
        let f = Filters::parse(&q(Some("2024"), Some("Korea, Republic of"))).unwrap();
        assert_eq!(f.year, Some(2024));
        assert_eq!(f.query_string(), "year=2024&country=Korea%2C+Republic+of");
        assert_eq!(f.scope(), "Korea, Republic of");
        assert!(f.matches(2024, "Korea, Republic of") && !f.matches(2023, "Korea, Republic of"));
        let all = Filters::parse(&q(Some(""), Some(" "))).unwrap();
        assert_eq!(all, Filters::default());
        assert_eq!(all.query_string(), "");
        assert_eq!(all.scope(), "ALL");
        assert!(all.matches(1999, "anything"));
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Filters::parse(&q(Some("24"), None)).is_err());
        assert!(Filters::parse(&q(Some("2024x"), None)).is_err());
        assert!(Filters::parse(&q(None, Some("a\u{0}b"))).is_err());
    }
}
