//! Query-string parsing shared by the gold endpoints: every value is validated here
//! so that a bad parameter is a 400 with a message, never a 500.

use chrono::NaiveDate;

use crate::problem::Problem;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_LIMIT: u32 = 1000;

/// The decoded query string.
#[derive(Debug, Default, Clone)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    /// Decodes a raw query string; a parameter given twice is refused.
    pub fn parse(raw: Option<&str>) -> Result<Self, Problem> {
        let pairs: Vec<(String, String)> = match raw {
            None | Some("") => Vec::new(),
            Some(q) => serde_urlencoded::from_str(q)
                .map_err(|e| Problem::bad_request(format!("malformed query string: {e}")))?,
        };
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(Problem::bad_param(
                    k,
                    format!("parameter `{k}` is given more than once"),
                ));
            }
        }
        Ok(Self { pairs })
    }

    /// The raw value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs except the named ones, in their original order.
    pub fn without(&self, names: &[&str]) -> Vec<(&str, &str)> {
        self.pairs
            .iter()
            .filter(|(k, _)| !names.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// A non-empty text parameter.
    pub fn text(&self, name: &str) -> Result<Option<String>, Problem> {
        match self.get(name) {
            None => Ok(None),
            Some("") => Err(Problem::bad_param(
                name,
                format!("`{name}` must not be empty"),
            )),
            Some(v) if v.len() > 512 => Err(Problem::bad_param(
                name,
                format!("`{name}` is too long (at most 512 bytes)"),
            )),
            // PostgreSQL text cannot hold NUL, so no stored value can match one.
            Some(v) if v.contains('\0') => Err(Problem::bad_param(
                name,
                format!("`{name}` must not contain a NUL character"),
            )),
            Some(v) => Ok(Some(v.to_string())),
        }
    }

    /// An integer parameter within `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, Problem> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let n: i64 = v.parse().map_err(|_| {
            Problem::bad_param(name, format!("`{name}` must be an integer, got `{v}`"))
        })?;
        if n < min || n > max {
            return Err(Problem::bad_param(
                name,
                format!("`{name}` must be between {min} and {max}, got {n}"),
            ));
        }
        Ok(Some(n))
    }

    /// A month: `YYYY-MM` or `YYYY-MM-DD`, returned as the first day of that month.
    pub fn month(&self, name: &str) -> Result<Option<NaiveDate>, Problem> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let bad = || {
            Problem::bad_param(
                name,
                format!("`{name}` must be a month as YYYY-MM (or a date YYYY-MM-DD), got `{v}`"),
            )
        };
        let date = if v.len() == 7 {
            NaiveDate::parse_from_str(&format!("{v}-01"), "%Y-%m-%d").map_err(|_| bad())?
        } else if v.len() == 10 {
            NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| bad())?
        } else {
            return Err(bad());
        };
        Ok(date.with_day0(0))
    }

    /// Pagination and ordering common to every gold endpoint.
    pub fn page(&self, order_columns: &[&str]) -> Result<PageRequest, Problem> {
        let limit = self
            .int("limit", 0, i64::from(MAX_LIMIT))?
            .map_or(DEFAULT_LIMIT, |v| v as u32);
        let offset = self.int("offset", 0, i64::MAX)?.unwrap_or(0) as u64;
        let order_by = match self.get("order_by") {
            None => 0,
            Some(v) => order_columns.iter().position(|c| *c == v).ok_or_else(|| {
                Problem::bad_param(
                    "order_by",
                    format!(
                        "`order_by` must be one of {}, got `{v}`",
                        order_columns.join(", ")
                    ),
                )
            })?,
        };
        let descending = match self.get("order") {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(v) => {
                return Err(Problem::bad_param(
                    "order",
                    format!("`order` must be asc or desc, got `{v}`"),
                ));
            }
        };
        Ok(PageRequest {
            limit,
            offset,
            order_by,
            descending,
        })
    }
}

use chrono::Datelike;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Page size, 0..=1000.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
    /// Index into the datamart's order columns.
    pub order_by: usize,
    /// Descending instead of ascending.
    pub descending: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_edges() {
        let cols = ["a", "b"];
        let p = |q: &str| QueryParams::parse(Some(q)).and_then(|q| q.page(&cols));
        assert_eq!(p("").unwrap().limit, 50);
        assert_eq!(p("limit=0").unwrap().limit, 0);
        assert_eq!(p("limit=1000").unwrap().limit, 1000);
        for bad in [
            "limit=1001",
            "limit=-1",
            "limit=abc",
            "offset=-5",
            "offset=x",
            "order_by=c",
            "order=up",
            "limit=1&limit=2",
        ] {
            assert_eq!(p(bad).unwrap_err().status, 400, "{bad}");
        }
        let r = p("order_by=b&order=desc&offset=7").unwrap();
        assert_eq!((r.order_by, r.descending, r.offset), (1, true, 7));
    }

    #[test]
    fn text_values() {
        let q = |s: &str| QueryParams::parse(Some(s)).and_then(|q| q.text("datamart"));
        assert_eq!(
            q("datamart=top-products").unwrap().as_deref(),
            Some("top-products")
        );
        assert_eq!(q("").unwrap(), None);
        let long = format!("datamart={}", "x".repeat(513));
        for bad in ["datamart=", "datamart=%00", "datamart=a%00b", long.as_str()] {
            assert_eq!(q(bad).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn months() {
        let q = QueryParams::parse(Some("from=2023-02&to=2023-05-17&bad=2023-13")).unwrap();
        assert_eq!(
            q.month("from").unwrap(),
            NaiveDate::from_ymd_opt(2023, 2, 1)
        );
        assert_eq!(q.month("to").unwrap(), NaiveDate::from_ymd_opt(2023, 5, 1));
        assert!(q.month("bad").is_err());
    }
}
