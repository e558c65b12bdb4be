//! An independent, deliberately plain implementation of docs/data-format.md, used
//! only to check the job-runner's gold tables value by value. It shares no code
//! with the job-runner: its own CSV reading, rules and aggregation.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use chrono::{Datelike, NaiveDate};

type Row = HashMap<String, Option<String>>;

/// Rows of one source file: (record number, contract column -> value).
fn read_csv(path: &Path, columns: &[&str]) -> Vec<(i64, Row)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty());
    let header: Vec<String> = split(lines.next().unwrap())
        .unwrap()
        .into_iter()
        .map(|h| h.unwrap_or_default().to_lowercase())
        .collect();
    let mut rows = Vec::new();
    for (index, line) in lines.enumerate() {
        let Some(fields) = split(line) else { continue };
        if fields.len() != header.len() {
            continue;
        }
        let mut row = Row::new();
        for column in columns {
            let at = header
                .iter()
                .position(|h| *h == column.to_lowercase())
                .unwrap();
            row.insert(column.to_string(), fields[at].clone());
        }
        rows.push((index as i64 + 1, row));
    }
    rows
}

/// RFC 4180 fields of one line, trimmed, empty as None; None for a broken line.
fn split(line: &str) -> Option<Vec<Option<String>>> {
    let chars: Vec<char> = line.chars().collect();
    let n = chars.len();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let mut field = String::new();
        let mut j = i;
        while j < n && (chars[j] == ' ' || chars[j] == '\t') {
            j += 1;
        }
        if j < n && chars[j] == '"' {
            j += 1;
            loop {
                if j >= n {
                    return None;
                }
                if chars[j] == '"' {
                    if j + 1 < n && chars[j + 1] == '"' {
                        field.push('"');
                        j += 2;
                        continue;
                    }
                    j += 1;
                    break;
                }
                field.push(chars[j]);
                j += 1;
            }
            while j < n && (chars[j] == ' ' || chars[j] == '\t') {
                j += 1;
            }
            fields.push(field);
            if j == n {
                break;
            }
            if chars[j] != ',' {
                return None;
            }
            i = j + 1;
        } else {
            let mut k = i;
            while k < n && chars[k] != ',' {
                if chars[k] == '"' {
                    return None;
                }
                field.push(chars[k]);
                k += 1;
            }
            fields.push(field);
            if k == n {
                break;
            }
            i = k + 1;
        }
    }
    Some(
        fields
            .into_iter()
            .map(|f| Some(f.trim().to_string()).filter(|t| !t.is_empty()))
            .collect(),
    )
}

fn date(text: &str) -> Option<NaiveDate> {
    let parts: Vec<&str> = text.split('/').collect();
    if parts.len() != 3
        || parts[2].len() != 4
        || parts[0].is_empty()
        || parts[0].len() > 2
        || parts[1].is_empty()
        || parts[1].len() > 2
    {
        return None;
    }
    if !parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())) {
        return None;
    }
    let year: i32 = parts[2].parse().ok()?;
    if year == 0 {
        return None;
    }
    NaiveDate::from_ymd_opt(year, parts[0].parse().ok()?, parts[1].parse().ok()?)
}

fn quantity(text: &str) -> Option<i32> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    if trimmed.len() > 10 {
        return None;
    }
    let value: i64 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().ok()?
    };
    let value = if text.starts_with('-') { -value } else { value };
    i32::try_from(value).ok()
}

fn price(text: &str) -> Option<i128> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match body.find('.') {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, "00"),
    };
    if int.is_empty() || !int.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if frac.is_empty() || frac.len() > 2 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if int.trim_start_matches('0').len() > 10 {
        return None;
    }
    let int: i128 = int.parse().ok()?;
    let frac: i128 = format!("{frac:0<2}").parse().ok()?;
    let cents = int * 100 + frac;
    Some(if text.starts_with('-') { -cents } else { cents })
}

fn email_ok(email: &str) -> bool {
    let parts: Vec<&str> = email.split('@').collect();
    parts.len() == 2 && !parts[0].is_empty() && !parts[1].is_empty()
}

fn get<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    row.get(column).and_then(|v| v.as_deref())
}

/// Latest valid row per key, over ingests in order.
fn keyed(
    ingests: &[&Path],
    file: &str,
    columns: &[&str],
    key: &str,
    valid: impl Fn(&Row) -> bool,
) -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    for dir in ingests {
        for (_, row) in read_csv(&dir.join(file), columns) {
            if valid(&row) {
                rows.insert(get(&row, key).unwrap().to_string(), row);
            }
        }
    }
    rows
}

struct Line {
    no: String,
    date: NaiveDate,
    product: String,
    product_name: String,
    customer: String,
    first: Option<String>,
    last: Option<String>,
    country: String,
    quantity: i64,
    amount: i128,
}

/// The gold tables as text rows, sorted, for `ingests` fed in this order.
pub struct Gold {
    pub sales_country_year: Vec<Vec<String>>,
    pub top_products: Vec<Vec<String>>,
    pub monthly_sales: Vec<Vec<String>>,
    pub customer_lifetime_value: Vec<Vec<String>>,
}

fn money(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

fn round_div(n: i128, d: i128) -> i128 {
    let q = (2 * n.abs() + d.abs()) / (2 * d.abs());
    if (n < 0) != (d < 0) { -q } else { q }
}

/// A customer's aggregate, first and last purchase, and one of its lines.
type CustomerAgg<'a> = (Agg, NaiveDate, NaiveDate, &'a Line);

#[derive(Default)]
struct Agg {
    sales: i128,
    quantity: i64,
    transactions: BTreeSet<String>,
    customers: BTreeSet<String>,
}

impl Agg {
    fn add(&mut self, line: &Line) {
        self.sales += line.amount;
        self.quantity += line.quantity;
        self.transactions.insert(line.no.clone());
        self.customers.insert(line.customer.clone());
    }
}

/// Computes gold from source folders fed in order (one per ingest date).
pub fn gold(ingests: &[&Path], top_n: usize) -> Gold {
    let countries = keyed(
        ingests,
        "countries.csv",
        &["CountryID", "CountryName"],
        "CountryID",
        |r| get(r, "CountryID").is_some() && get(r, "CountryName").is_some(),
    );
    let customer_columns = ["CustomerNo", "FirstName", "LastName", "Email", "CountryID"];
    let customers: BTreeMap<String, Row> = keyed(
        ingests,
        "customers.csv",
        &customer_columns,
        "CustomerNo",
        |r| get(r, "CustomerNo").is_some() && get(r, "Email").is_some_and(email_ok),
    )
    .into_iter()
    .filter(|(_, r)| get(r, "CountryID").is_some_and(|c| countries.contains_key(c)))
    .collect();
    let products = keyed(
        ingests,
        "products.csv",
        &["ProductNo", "ProductName"],
        "ProductNo",
        |r| get(r, "ProductNo").is_some() && get(r, "ProductName").is_some(),
    );

    let columns = [
        "TransactionNo",
        "Date",
        "ProductNo",
        "CustomerNo",
        "Quantity",
        "Price",
    ];
    let mut seen = HashSet::new();
    let mut lines = Vec::new();
    for dir in ingests {
        for (_, row) in read_csv(&dir.join("transactions.csv"), &columns) {
            let values: Vec<Option<&str>> = columns.iter().map(|c| get(&row, c)).collect();
            if values.iter().any(Option::is_none) {
                continue;
            }
            let v: Vec<&str> = values.into_iter().flatten().collect();
            let (Some(d), Some(q), Some(p)) = (date(v[1]), quantity(v[4]), price(v[5])) else {
                continue;
            };
            if v[0].starts_with('C')
                || q <= 0
                || p <= 0
                || !products.contains_key(v[2])
                || !customers.contains_key(v[3])
            {
                continue;
            }
            if !seen.insert((
                v[0].to_string(),
                d,
                v[2].to_string(),
                v[3].to_string(),
                q,
                p,
            )) {
                continue;
            }
            let customer = &customers[v[3]];
            lines.push(Line {
                no: v[0].to_string(),
                date: d,
                product: v[2].to_string(),
                product_name: get(&products[v[2]], "ProductName").unwrap().to_string(),
                customer: v[3].to_string(),
                first: get(customer, "FirstName").map(str::to_string),
                last: get(customer, "LastName").map(str::to_string),
                country: get(
                    &countries[get(customer, "CountryID").unwrap()],
                    "CountryName",
                )
                .unwrap()
                .to_string(),
                quantity: i64::from(q),
                amount: i128::from(q) * p,
            });
        }
    }

    let mut by_year_country: BTreeMap<(i32, String), Agg> = BTreeMap::new();
    let mut by_month: BTreeMap<(i32, u32), Agg> = BTreeMap::new();
    let mut by_scope: BTreeMap<String, BTreeMap<String, (String, Agg)>> = BTreeMap::new();
    let mut by_customer: BTreeMap<String, CustomerAgg> = BTreeMap::new();
    for line in &lines {
        by_year_country
            .entry((line.date.year(), line.country.clone()))
            .or_default()
            .add(line);
        by_month
            .entry((line.date.year(), line.date.month()))
            .or_default()
            .add(line);
        for scope in ["ALL".to_string(), line.country.clone()] {
            by_scope
                .entry(scope)
                .or_default()
                .entry(line.product.clone())
                .or_insert_with(|| (line.product_name.clone(), Agg::default()))
                .1
                .add(line);
        }
        let entry = by_customer
            .entry(line.customer.clone())
            .or_insert_with(|| (Agg::default(), line.date, line.date, line));
        entry.0.add(line);
        entry.1 = entry.1.min(line.date);
        entry.2 = entry.2.max(line.date);
    }

    let mut sales_country_year: Vec<Vec<String>> = by_year_country
        .iter()
        .map(|((year, country), a)| {
            vec![
                year.to_string(),
                country.clone(),
                money(a.sales),
                a.quantity.to_string(),
                a.transactions.len().to_string(),
                a.customers.len().to_string(),
            ]
        })
        .collect();
    sales_country_year.sort();

    let mut top_products = Vec::new();
    for (scope, products) in &by_scope {
        let mut ranked: Vec<(&String, &(String, Agg))> = products.iter().collect();
        ranked.sort_by(|a, b| {
            b.1.1
                .sales
                .cmp(&a.1.1.sales)
                .then(a.0.as_bytes().cmp(b.0.as_bytes()))
        });
        for (index, (no, (name, a))) in ranked.into_iter().take(top_n).enumerate() {
            top_products.push(vec![
                scope.clone(),
                (index + 1).to_string(),
                no.to_string(),
                name.clone(),
                money(a.sales),
                a.quantity.to_string(),
                a.transactions.len().to_string(),
            ]);
        }
    }
    top_products.sort();

    let mut monthly_sales = Vec::new();
    for ((year, month), a) in &by_month {
        let previous = if *month == 1 {
            (year - 1, 12)
        } else {
            (*year, month - 1)
        };
        let growth = match by_month.get(&previous) {
            Some(p) if p.sales != 0 => money(round_div(10_000 * (a.sales - p.sales), p.sales)),
            _ => "NULL".to_string(),
        };
        monthly_sales.push(vec![
            format!("{year:04}-{month:02}-01"),
            money(a.sales),
            a.quantity.to_string(),
            a.transactions.len().to_string(),
            a.customers.len().to_string(),
            money(round_div(a.sales, a.transactions.len() as i128)),
            growth,
        ]);
    }
    monthly_sales.sort();

    let mut ranked: Vec<(&String, &CustomerAgg)> = by_customer.iter().collect();
    ranked.sort_by(|a, b| {
        b.1.0
            .sales
            .cmp(&a.1.0.sales)
            .then(a.0.as_bytes().cmp(b.0.as_bytes()))
    });
    let n = ranked.len();
    let mut customer_lifetime_value = Vec::new();
    for (index, (no, (a, first, last, line))) in ranked.into_iter().enumerate() {
        // ntile(4): the first n % 4 buckets hold one row more.
        let (size, extra) = (n / 4, n % 4);
        let quartile = if index < extra * (size + 1) {
            index / (size + 1) + 1
        } else {
            extra + (index - extra * (size + 1)) / size.max(1) + 1
        };
        customer_lifetime_value.push(vec![
            no.to_string(),
            line.first.clone().unwrap_or_else(|| "NULL".into()),
            line.last.clone().unwrap_or_else(|| "NULL".into()),
            line.country.clone(),
            first.to_string(),
            last.to_string(),
            a.transactions.len().to_string(),
            a.quantity.to_string(),
            money(a.sales),
            money(round_div(a.sales, a.transactions.len() as i128)),
            (index + 1).to_string(),
            quartile.to_string(),
        ]);
    }
    customer_lifetime_value.sort();

    Gold {
        sales_country_year,
        top_products,
        monthly_sales,
        customer_lifetime_value,
    }
}
