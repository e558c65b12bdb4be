//! CSV downloads: RFC 4180 text of exactly the rows a chart draws, columns named
//! and ordered as in the gold table they come from.

use crate::charts::HistogramBin;
use crate::gold::{CustomerLifetime, GoldRun, MonthlySales, SalesCountryYear, TopProduct};

/// One CSV field: quoted when it holds a comma, quote, or line break; a leading
/// `=`, `+`, `-` or `@` of text is kept as is (the values are data, and numbers
/// such as `-3.00` must stay numbers), so open the file as data, not as a sheet.
fn field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn line(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, f);
    }
    out.push_str("\r\n");
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// `gold_sales_country_year` rows.
pub fn sales_country_year(rows: &[SalesCountryYear]) -> String {
    let mut out = String::new();
    line(
        &mut out,
        &[
            "year",
            "country",
            "total_sales",
            "total_quantity",
            "transactions",
            "customers",
        ],
    );
    for r in rows {
        line(
            &mut out,
            &[
                &r.year.to_string(),
                &r.country,
                &r.total_sales.to_string(),
                &r.total_quantity.to_string(),
                &r.transactions.to_string(),
                &r.customers.to_string(),
            ],
        );
    }
    out
}

/// `gold_top_products` rows.
pub fn top_products(rows: &[TopProduct]) -> String {
    let mut out = String::new();
    line(
        &mut out,
        &[
            "scope",
            "rank",
            "product_no",
            "product_name",
            "total_sales",
            "total_quantity",
            "transactions",
        ],
    );
    for r in rows {
        line(
            &mut out,
            &[
                &r.scope,
                &r.rank.to_string(),
                &r.product_no,
                &r.product_name,
                &r.total_sales.to_string(),
                &r.total_quantity.to_string(),
                &r.transactions.to_string(),
            ],
        );
    }
    out
}

/// `gold_monthly_sales` rows.
pub fn monthly_sales(rows: &[MonthlySales]) -> String {
    let mut out = String::new();
    line(
        &mut out,
        &[
            "month",
            "total_sales",
            "total_quantity",
            "transactions",
            "customers",
            "avg_transaction_value",
            "mom_growth_pct",
        ],
    );
    for r in rows {
        line(
            &mut out,
            &[
                &r.month.to_string(),
                &r.total_sales.to_string(),
                &r.total_quantity.to_string(),
                &r.transactions.to_string(),
                &r.customers.to_string(),
                &r.avg_transaction_value.to_string(),
                &r.mom_growth_pct.map(|g| g.to_string()).unwrap_or_default(),
            ],
        );
    }
    out
}

/// The lifetime-value histogram's bins.
pub fn lifetime_histogram(bins: &[HistogramBin]) -> String {
    let mut out = String::new();
    line(
        &mut out,
        &["lifetime_value_from", "lifetime_value_to", "customers"],
    );
    for b in bins {
        line(
            &mut out,
            &[
                &format!("{:.2}", b.lower),
                &format!("{:.2}", b.upper),
                &b.count.to_string(),
            ],
        );
    }
    out
}

/// `gold_customer_lifetime_value` rows.
pub fn customer_lifetime(rows: &[CustomerLifetime]) -> String {
    let mut out = String::new();
    line(
        &mut out,
        &[
            "customer_no",
            "first_name",
            "last_name",
            "country",
            "first_purchase",
            "last_purchase",
            "transactions",
            "total_quantity",
            "lifetime_value",
            "avg_transaction_value",
            "value_rank",
            "value_quartile",
        ],
    );
    for r in rows {
        line(
            &mut out,
            &[
                &r.customer_no,
                opt(&r.first_name),
                opt(&r.last_name),
                &r.country,
                &r.first_purchase.to_string(),
                &r.last_purchase.to_string(),
                &r.transactions.to_string(),
                &r.total_quantity.to_string(),
                &r.lifetime_value.to_string(),
                &r.avg_transaction_value.to_string(),
                &r.value_rank.to_string(),
                &r.value_quartile.to_string(),
            ],
        );
    }
    out
}

/// `gold_runs` rows.
pub fn runs(rows: &[GoldRun]) -> String {
    let mut out = String::new();
    line(
        &mut out,
        &[
            "datamart",
            "run_id",
            "started_at",
            "finished_at",
            "rows_written",
            "status",
            "silver_snapshot_id",
            "message",
        ],
    );
    for r in rows {
        line(
            &mut out,
            &[
                &r.datamart,
                &r.run_id,
                &r.started_at.to_rfc3339(),
                &r.finished_at.to_rfc3339(),
                &r.rows_written.to_string(),
                &r.status,
                opt(&r.silver_snapshot_id),
                opt(&r.message),
            ],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;

    #[test]
    fn quotes_only_what_needs_quoting() {
        let rows = vec![SalesCountryYear {
            year: 2024,
            country: "Korea, Republic of".into(),
            total_sales: Money::from_cents(-150),
            total_quantity: 3,
            transactions: 2,
            customers: 1,
        }];
        assert_eq!(
            sales_country_year(&rows),
            "year,country,total_sales,total_quantity,transactions,customers\r\n\
             2024,\"Korea, Republic of\",-1.50,3,2,1\r\n"
        );
        let mut s = String::new();
        field(&mut s, "say \"hi\"");
        assert_eq!(s, "\"say \"\"hi\"\"\"");
    }
}
