//! CSV downloads: RFC 4180 text of exactly the rows a chart draws, columns named
//! and ordered as in the gold table they come from.

use crate::charts::HistogramBin;
use crate::gold::{CustomerLifetimeValue, GoldRun, MonthlySales, SalesCountryYear, TopProduct};

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

/// A whole CSV: the `header` line, then one line of `fields` per row. The header
/// and the fields are arrays of one length, so a column cannot go missing.
fn table<T, const N: usize>(
    header: [&str; N],
    rows: &[T],
    fields: impl Fn(&T) -> [String; N],
) -> String {
    let mut out = String::new();
    line(&mut out, &header);
    for row in rows {
        line(&mut out, &fields(row).each_ref().map(String::as_str));
    }
    out
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// `gold_sales_country_year` rows.
pub fn sales_country_year(rows: &[SalesCountryYear]) -> String {
    table(
        [
            "year",
            "country",
            "total_sales",
            "total_quantity",
            "transactions",
            "customers",
        ],
        rows,
        |r| {
            [
                r.year.to_string(),
                r.country.clone(),
                r.total_sales.to_string(),
                r.total_quantity.to_string(),
                r.transactions.to_string(),
                r.customers.to_string(),
            ]
        },
    )
}

/// `gold_top_products` rows.
pub fn top_products(rows: &[TopProduct]) -> String {
    table(
        [
            "scope",
            "rank",
            "product_no",
            "product_name",
            "total_sales",
            "total_quantity",
            "transactions",
        ],
        rows,
        |r| {
            [
                r.scope.clone(),
                r.rank.to_string(),
                r.product_no.clone(),
                r.product_name.clone(),
                r.total_sales.to_string(),
                r.total_quantity.to_string(),
                r.transactions.to_string(),
            ]
        },
    )
}

/// `gold_monthly_sales` rows.
pub fn monthly_sales(rows: &[MonthlySales]) -> String {
    table(
        [
            "month",
            "total_sales",
            "total_quantity",
            "transactions",
            "customers",
            "avg_transaction_value",
            "mom_growth_pct",
        ],
        rows,
        |r| {
            [
                r.month.to_string(),
                r.total_sales.to_string(),
                r.total_quantity.to_string(),
                r.transactions.to_string(),
                r.customers.to_string(),
                r.avg_transaction_value.to_string(),
                r.mom_growth_pct.map(|g| g.to_string()).unwrap_or_default(),
            ]
        },
    )
}

/// The lifetime-value histogram's bins.
pub fn lifetime_histogram(bins: &[HistogramBin]) -> String {
    table(
        ["lifetime_value_from", "lifetime_value_to", "customers"],
        bins,
        |b| {
            [
                format!("{:.2}", b.lower),
                format!("{:.2}", b.upper),
                b.count.to_string(),
            ]
        },
    )
}

/// `gold_customer_lifetime_value` rows.
pub fn customer_lifetime(rows: &[CustomerLifetimeValue]) -> String {
    table(
        [
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
        rows,
        |r| {
            [
                r.customer_no.clone(),
                opt(&r.first_name),
                opt(&r.last_name),
                r.country.clone(),
                r.first_purchase.to_string(),
                r.last_purchase.to_string(),
                r.transactions.to_string(),
                r.total_quantity.to_string(),
                r.lifetime_value.to_string(),
                r.avg_transaction_value.to_string(),
                r.value_rank.to_string(),
                r.value_quartile.to_string(),
            ]
        },
    )
}

/// `gold_runs` rows.
pub fn runs(rows: &[GoldRun]) -> String {
    table(
        [
            "datamart",
            "run_id",
            "started_at",
            "finished_at",
            "rows_written",
            "status",
            "silver_snapshot_id",
            "message",
        ],
        rows,
        |r| {
            [
                r.datamart.clone(),
                r.run_id.clone(),
                r.started_at.to_rfc3339(),
                r.finished_at.to_rfc3339(),
                r.rows_written.to_string(),
                r.status.clone(),
                opt(&r.silver_snapshot_id),
                opt(&r.message),
            ]
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurum_gold::Money;

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
