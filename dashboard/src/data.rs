//! The data behind each chart, read from the API through the cache. The overview
//! page and the CSV downloads both take their rows from here, so a CSV holds exactly
//! the rows its chart draws.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::api_client::{ApiClient, ApiError};
use crate::cache::{Loaded, ResponseCache};
use crate::charts::{HistogramBin, histogram};
use crate::filters::Filters;
use crate::gold::{CustomerLifetimeValue, GoldRun, MonthlySales, SalesCountryYear, TopProduct};
use crate::session::{Role, Session};
use aurum_gold::Money;

/// Runs shown on the runs page (the newest).
pub const RUNS_SHOWN: u64 = 200;
/// Bins the lifetime-value histogram aims at.
pub const HISTOGRAM_BINS: usize = 12;

/// Where the gold data comes from: the API, with a short cache in front.
pub struct GoldSource {
    api: ApiClient,
    cache: ResponseCache,
}

fn now_epoch() -> i64 {
    Utc::now().timestamp()
}

/// How fresh the gold tables are.
#[derive(Debug, Clone, Default)]
pub struct Freshness {
    /// When the last datamart was published.
    pub last_refresh: Option<DateTime<Utc>>,
    /// The silver snapshots the current tables were built from.
    pub silver_snapshots: Vec<String>,
}

/// The headline figures of the filtered data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headline {
    /// Sum of sales.
    pub total_sales: Money,
    /// Transactions.
    pub transactions: i64,
    /// Distinct customers.
    pub customers: i64,
}

impl GoldSource {
    /// A source reading `api`, caching answers in `cache`.
    pub fn new(api: ApiClient, cache: ResponseCache) -> GoldSource {
        GoldSource { api, cache }
    }

    /// The API client.
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The cache.
    pub fn cache(&self) -> &ResponseCache {
        &self.cache
    }

    /// The cached value of `key` for this session's role, or `fetch`ed and stored.
    /// The cache serves only tokens the API has accepted before.
    async fn cached<T, F, Fut>(
        &self,
        session: &Session,
        key: String,
        fetch: F,
    ) -> Result<Arc<T>, ApiError>
    where
        T: Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        if let Some(hit) = self.cached_hit::<T>(session, &key).await? {
            return Ok(hit);
        }
        // One reading per key at a time: requests that miss together wait for the
        // first one's answer instead of all reading the same rows from the API.
        match self.cache.get_or_load(session.role, &key, fetch()).await {
            Loaded::Mine(value) => {
                self.cache.mark_verified(session, now_epoch());
                Ok(value)
            }
            Loaded::Theirs(value) => {
                if self.authorise(session).await? {
                    Ok(value)
                } else {
                    Err(ApiError::Unauthorized)
                }
            }
            Loaded::Failed(e) => Err(e),
            // The load this request waited for failed (it may have been another
            // session's bad token), or caching is off: read for this session.
            Loaded::NotLoaded => {
                let value = Arc::new(fetch().await?);
                self.cache.mark_verified(session, now_epoch());
                Ok(value)
            }
        }
    }

    /// Whether this session may use cached values: its token was accepted by the
    /// API before, or is now (one page of no rows asks it, far cheaper than
    /// reading the data again). An expired session may not.
    async fn authorise(&self, session: &Session) -> Result<bool, ApiError> {
        let now = now_epoch();
        if self.cache.is_verified(session, now) {
            return Ok(true);
        }
        if session.expires_at > now {
            self.api.check_token(&session.token).await?;
            self.cache.mark_verified(session, now);
            return Ok(true);
        }
        Ok(false)
    }

    /// The cached value of `key` if there is one this session may use.
    async fn cached_hit<T: Send + Sync + 'static>(
        &self,
        session: &Session,
        key: &str,
    ) -> Result<Option<Arc<T>>, ApiError> {
        let Some(hit) = self.cache.get::<T>(session.role, key).await else {
            return Ok(None);
        };
        Ok(self.authorise(session).await?.then_some(hit))
    }

    /// Every row of `gold_sales_country_year` (a few hundred at most: countries x years),
    /// in the API's default order (year, country). Filtering happens here, so the same
    /// rows also list the years and countries the filters offer.
    pub async fn sales_country_year(
        &self,
        s: &Session,
    ) -> Result<Arc<Vec<SalesCountryYear>>, ApiError> {
        let path = "/gold/sales-country-year";
        self.cached(s, path.into(), || self.api.all(&s.token, path, &[]))
            .await
    }

    /// The top products of a scope (`ALL` or a country), by rank.
    pub async fn top_products(
        &self,
        s: &Session,
        scope: &str,
    ) -> Result<Arc<Vec<TopProduct>>, ApiError> {
        let path = "/gold/top-products";
        let query = vec![("scope", scope.to_string())];
        let key = format!("{path}?scope={scope}");
        self.cached(s, key, || self.api.all(&s.token, path, &query))
            .await
    }

    /// Monthly sales, of one year or all, by month.
    pub async fn monthly_sales(
        &self,
        s: &Session,
        year: Option<i32>,
    ) -> Result<Arc<Vec<MonthlySales>>, ApiError> {
        let path = "/gold/monthly-sales";
        let query: Vec<(&str, String)> = match year {
            Some(y) => vec![("from", format!("{y:04}-01")), ("to", format!("{y:04}-12"))],
            None => Vec::new(),
        };
        let key = format!("{path}?year={year:?}");
        self.cached(s, key, || self.api.all(&s.token, path, &query))
            .await
    }

    /// Customer lifetime values, of one country or all, by value rank.
    pub async fn customer_lifetime(
        &self,
        s: &Session,
        country: Option<&str>,
    ) -> Result<Arc<Vec<CustomerLifetimeValue>>, ApiError> {
        let path = "/gold/customer-lifetime";
        let query: Vec<(&str, String)> = country
            .map(|c| vec![("country", c.to_string())])
            .unwrap_or_default();
        let key = format!("{path}?country={country:?}");
        self.cached(s, key, || self.api.all(&s.token, path, &query))
            .await
    }

    /// The newest runs (admins only; a viewer gets `ApiError::Forbidden`).
    pub async fn runs(&self, s: &Session) -> Result<Arc<Vec<GoldRun>>, ApiError> {
        let path = "/gold/runs";
        let query = vec![("limit", RUNS_SHOWN.to_string())];
        self.cached(s, path.into(), || async {
            Ok(self
                .api
                .page::<GoldRun>(&s.token, path, &query)
                .await?
                .0
                .items)
        })
        .await
    }

    /// Freshness: from the runs history for admins, from the API's readiness report
    /// (the published versions) for viewers, who may not read the runs.
    pub async fn freshness(&self, s: &Session) -> Result<Freshness, ApiError> {
        if s.role == Role::Admin {
            let runs = self.runs(s).await?;
            return Ok(freshness_from_runs(&runs));
        }
        let ready = self
            .cached(s, "/readyz".into(), || self.api.readiness())
            .await;
        Ok(match ready {
            Ok(r) => Freshness {
                last_refresh: r.datamarts.values().filter_map(|d| d.finished_at).max(),
                silver_snapshots: distinct_sorted(
                    r.datamarts
                        .values()
                        .filter_map(|d| d.silver_snapshot_id.clone()),
                ),
            },
            // The figures still show when readiness cannot be read.
            Err(_) => Freshness::default(),
        })
    }
}

/// Latest successful run per datamart: the newest finish time and their snapshots.
pub fn freshness_from_runs(runs: &[GoldRun]) -> Freshness {
    let mut latest: Vec<&GoldRun> = Vec::new();
    for run in runs.iter().filter(|r| r.status == "succeeded") {
        match latest.iter_mut().find(|r| r.datamart == run.datamart) {
            Some(existing) if existing.finished_at >= run.finished_at => {}
            Some(existing) => *existing = run,
            None => latest.push(run),
        }
    }
    Freshness {
        last_refresh: latest.iter().map(|r| r.finished_at).max(),
        silver_snapshots: distinct_sorted(
            latest.iter().filter_map(|r| r.silver_snapshot_id.clone()),
        ),
    }
}

fn distinct_sorted(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The sales-by-country-and-year rows passing the filters.
pub fn filter_sales(rows: &[SalesCountryYear], f: &Filters) -> Vec<SalesCountryYear> {
    rows.iter()
        .filter(|r| f.matches(r.year, &r.country))
        .cloned()
        .collect()
}

/// Headline figures of the filtered data. Transactions add up across rows because a
/// transaction belongs to one customer (one country) and one date (one year);
/// customers add up across countries within one year for the same reason. Across
/// years a customer may repeat, so without a year filter the distinct customers are
/// the customer-lifetime rows (one per customer with a purchase).
pub fn headline(
    filtered_sales: &[SalesCountryYear],
    f: &Filters,
    lifetime_rows: usize,
) -> Headline {
    let total_sales = filtered_sales
        .iter()
        .fold(Money::default(), |acc, r| acc.saturating_add(r.total_sales));
    let transactions = filtered_sales.iter().map(|r| r.transactions).sum();
    let customers = if f.year.is_some() {
        filtered_sales.iter().map(|r| r.customers).sum()
    } else {
        lifetime_rows as i64
    };
    Headline {
        total_sales,
        transactions,
        customers,
    }
}

/// The lifetime-value histogram of the (country-filtered) customers.
pub fn lifetime_histogram(rows: &[CustomerLifetimeValue]) -> Vec<HistogramBin> {
    let values: Vec<f64> = rows.iter().map(|r| r.lifetime_value.to_f64()).collect();
    histogram(&values, HISTOGRAM_BINS)
}

/// Distinct years and countries in the sales rows, for the filter form.
pub fn filter_options(rows: &[SalesCountryYear]) -> (Vec<i32>, Vec<String>) {
    let mut years: Vec<i32> = rows.iter().map(|r| r.year).collect();
    years.sort_unstable();
    years.dedup();
    let mut countries: Vec<String> = rows.iter().map(|r| r.country.clone()).collect();
    countries.sort();
    countries.dedup();
    (years, countries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(year: i32, country: &str, sales: i128, tx: i64, cust: i64) -> SalesCountryYear {
        SalesCountryYear {
            year,
            country: country.into(),
            total_sales: Money::from_cents(sales),
            total_quantity: 1,
            transactions: tx,
            customers: cust,
        }
    }

    #[test]
    fn headline_adds_up_per_filter() {
        let rows = vec![
            row(2023, "A", 100, 2, 1),
            row(2024, "A", 50, 1, 1),
            row(2024, "B", 25, 3, 2),
        ];
        let all = Filters::default();
        let h = headline(&filter_sales(&rows, &all), &all, 3);
        assert_eq!(
            h,
            Headline {
                total_sales: Money::from_cents(175),
                transactions: 6,
                customers: 3
            }
        );
        let y = Filters {
            year: Some(2024),
            country: None,
        };
        let h = headline(&filter_sales(&rows, &y), &y, 99);
        assert_eq!(
            (h.total_sales.cents(), h.transactions, h.customers),
            (75, 4, 3)
        );
        assert_eq!(
            filter_options(&rows),
            (vec![2023, 2024], vec!["A".into(), "B".into()])
        );
    }
}
