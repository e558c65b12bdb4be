//! Stage `generate`: realistic, deterministic source data in the contract's
//! format, at any size, with a small share of every kind of dirt the contract
//! rejects, so that cleaning is exercised by tests, the demo and benchmarks.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::report::StageReport;

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {source}")]
pub struct GenerateError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// A small, fast, deterministic random generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// A generator for a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// An index skewed towards small values (a few best sellers, a long tail).
    pub fn skewed(&mut self, n: u64) -> u64 {
        let u = self.below(1 << 20) as f64 / f64::from(1 << 20);
        ((u * u * u) * n as f64) as u64 % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const COUNTRIES: &[&str] = &[
    "United Kingdom",
    "France",
    "Germany",
    "Netherlands",
    "Sweden",
    "Norway",
    "Spain",
    "Portugal",
    "Italy",
    "Belgium",
    "Switzerland",
    "Austria",
    "Denmark",
    "Finland",
    "Ireland",
    "Poland",
    "Czech Republic",
    "Greece",
    "Japan",
    "Australia",
    "Canada",
    "USA",
    "Brazil",
    "Singapore",
    "Israel",
    "Iceland",
    "Cyprus",
    "Lithuania",
    "Malta",
    "Korea, Republic of",
];
const FIRST_NAMES: &[&str] = &[
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Mia", "Ethan", "Sofia", "Mateo", "Isla",
    "Leo", "Freya", "Hugo", "Elin", "Oscar", "Chloé", "Jörg", "Anaïs", "Sean", "Aoife", "Yuki",
    "Zoë", "Björn", "Maria",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "Jones",
    "Martin",
    "Bernard",
    "Müller",
    "Schmidt",
    "de Vries",
    "Jansen",
    "Andersson",
    "Hansen",
    "García",
    "Silva",
    "Rossi",
    "Peeters",
    "Meier",
    "O'Brien",
    "Kowalski",
    "Papadopoulos",
    "Sato",
    "Brown",
    "Tremblay",
    "Lee",
    "Santos",
    "Cohen",
    "Jónsson",
];
const ADJECTIVES: &[&str] = &[
    "Vintage",
    "Red",
    "White",
    "Hanging",
    "Regency",
    "Jumbo",
    "Pink",
    "Blue",
    "Retro",
    "Wooden",
    "Glass",
    "Heart",
    "Paper",
    "Enamel",
    "Lunch",
    "Christmas",
    "Garden",
    "Antique",
    "Polka Dot",
    "Spotty",
];
const NOUNS: &[&str] = &[
    "Mug",
    "Tea Set",
    "Lantern",
    "Bag",
    "Cake Stand",
    "Bunting",
    "Doormat",
    "Candle Holder",
    "Clock",
    "Photo Frame",
    "Storage Tin",
    "Notebook",
    "Coaster Set",
    "Jam Jar",
    "Cushion Cover",
    "Tea Towel",
    "Alarm Clock",
    "Bird Feeder",
    "Lunch Box",
    "Wall Sign",
];

/// The size of each generated table for `transactions` transaction lines.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Customers.
    pub customers: u64,
    /// Products.
    pub products: u64,
    /// Transaction lines.
    pub transactions: u64,
}

impl Sizes {
    /// Realistic proportions: about one customer per 25 lines, up to 4,000 products.
    pub fn for_transactions(transactions: u64) -> Sizes {
        Sizes {
            customers: (transactions / 25).max(40),
            products: (transactions / 12).clamp(30, 4000),
            transactions,
        }
    }
}

/// Writes `countries.csv`, `customers.csv`, `products.csv` and `transactions.csv`
/// into `out`. Same `transactions` and `seed`, same bytes.
pub fn generate(
    out: &Path,
    transactions: u64,
    seed: u64,
) -> Result<Vec<StageReport>, GenerateError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GenerateError {
            path: path.clone(),
            source,
        }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let sizes = Sizes::for_transactions(transactions);
    let mut rng = Rng::new(seed);
    let mut reports = Vec::new();
    type Writer = fn(&mut Rng, &Sizes, &mut dyn Write) -> std::io::Result<u64>;
    let files: [(&str, &str, Writer); 4] = [
        ("countries", "countries.csv", write_countries),
        ("customers", "customers.csv", write_customers),
        ("products", "products.csv", write_products),
        ("transactions", "transactions.csv", write_transactions),
    ];
    for (table, name, write) in files {
        let clock = crate::resources::StageClock::start();
        let path = out.join(name);
        let file = File::create(&path).map_err(io(&path))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        let rows = write(&mut rng, &sizes, &mut writer).map_err(io(&path))?;
        writer.flush().map_err(io(&path))?;
        let mut report = StageReport::new("generate", table);
        report.rows_written = rows;
        report.bytes_written = std::fs::metadata(&path).map_err(io(&path))?.len();
        report.finish(clock.wall(), clock.cpu());
        reports.push(report);
    }
    Ok(reports)
}

/// A field as CSV: quoted when it holds a comma or a quote.
fn csv(field: &str) -> String {
    if field.contains([',', '"']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn write_countries(rng: &mut Rng, _: &Sizes, w: &mut dyn Write) -> std::io::Result<u64> {
    writeln!(w, "CountryID,CountryName")?;
    let mut rows = 0;
    for (index, name) in COUNTRIES.iter().enumerate() {
        let id = index + 1;
        // Some fields arrive padded or quoted with padding.
        match rng.below(10) {
            0 => writeln!(w, " {id} , \" {name} \"")?,
            _ => writeln!(w, "{id},{}", csv(name))?,
        }
        rows += 1;
    }
    // Dirt: a missing name, a later row without a name (must not displace the
    // valid one), a renamed duplicate (the later one wins), a blank line.
    writeln!(w, "{},", COUNTRIES.len() + 1)?;
    writeln!(w, "3,")?;
    writeln!(w)?;
    writeln!(w, "{},Nowhere Land", COUNTRIES.len() + 2)?;
    writeln!(w, "{},Neverland", COUNTRIES.len() + 2)?;
    Ok(rows + 4)
}

/// The CustomerNo of the customer at `index`.
fn customer_no(index: u64) -> String {
    format!("{}", 12346 + index)
}

/// The ProductNo of the product at `index`.
fn product_no(index: u64) -> String {
    let letters = ["", "A", "B", "C"];
    format!("{}{}", 20000 + index / 4 * 7, letters[(index % 4) as usize])
}

fn write_customers(rng: &mut Rng, sizes: &Sizes, w: &mut dyn Write) -> std::io::Result<u64> {
    writeln!(w, "CustomerNo,FirstName,LastName,Email,CountryID")?;
    let countries = COUNTRIES.len() as u64;
    let mut rows = 0;
    for index in 0..sizes.customers {
        let no = customer_no(index);
        let first = rng.pick(FIRST_NAMES);
        let last = rng.pick(LAST_NAMES);
        let email_user = format!("{}.{}{}", first, last, index)
            .to_lowercase()
            .replace([' ', '\''], "");
        let email = format!("{email_user}@example.com");
        let country = 1 + rng.skewed(countries);
        let line = match rng.below(1000) {
            0..=4 => format!("{no},{first},{last},{email_user}.example.com,{country}"),
            5..=7 => format!("{no},{first},{last},{email_user}@@example.com,{country}"),
            8..=10 => format!("{no},{first},{last},,{country}"),
            11..=13 => format!("{no},{first},{last},{email},999"),
            14..=15 => format!("{no},{first},{last},{email},"),
            16..=17 => format!("{no},,,{email},{country}"),
            18 => format!("{no},\"{first}\"x,{last},{email},{country}"),
            19 => format!("{no},{first},{last},{email}"),
            20..=30 => format!(" {no} , \"{last}, {first}\" ,{last},{email},\" {country}\""),
            _ => format!("{no},{},{},{email},{country}", csv(first), csv(last)),
        };
        writeln!(w, "{line}")?;
        rows += 1;
        // A customer that moves: a later row of the same key wins.
        if rng.chance(5) {
            let moved = 1 + rng.below(countries);
            writeln!(w, "{no},{first},{last},{email},{moved}")?;
            rows += 1;
        }
    }
    // A later duplicate with a bad email is rejected and does not displace.
    writeln!(w, "{},Late,Duplicate,not-an-email,1", customer_no(0))?;
    Ok(rows + 1)
}

fn write_products(rng: &mut Rng, sizes: &Sizes, w: &mut dyn Write) -> std::io::Result<u64> {
    writeln!(w, "ProductNo,ProductName")?;
    let mut rows = 0;
    for index in 0..sizes.products {
        let no = product_no(index);
        let name = format!("{} {}", rng.pick(ADJECTIVES), rng.pick(NOUNS));
        let line = match rng.below(1000) {
            0..=3 => format!("{no},"),
            4..=5 => format!("{no},\"{name}\" extra"),
            6..=40 => format!("{no},\"{name}, \"\"Set of {}\"\"\"", 2 + rng.below(10)),
            41..=50 => format!("{no},{name},surplus"),
            _ => format!("{no},{}", csv(&name)),
        };
        writeln!(w, "{line}")?;
        rows += 1;
        if rng.chance(4) {
            writeln!(w, "{no},{name} (new edition)")?;
            rows += 1;
        }
    }
    Ok(rows)
}

fn write_transactions(rng: &mut Rng, sizes: &Sizes, w: &mut dyn Write) -> std::io::Result<u64> {
    // The seed's column order, with its two extra columns.
    writeln!(
        w,
        "TransactionNo,Date,ProductNo,ProductName,Price,Quantity,CustomerNo,Country"
    )?;
    let days = 730u64;
    let start = chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or_default();
    let mut written = 0;
    let mut transaction = 536_365u64;
    let mut previous: Option<String> = None;
    while written < sizes.transactions {
        transaction += 1;
        let lines = 1 + rng.below(6);
        let day =
            start + chrono::Duration::days((written * days / sizes.transactions.max(1)) as i64);
        let customer = customer_no(rng.skewed(sizes.customers));
        let cancelled = rng.chance(15);
        for _ in 0..lines {
            if written >= sizes.transactions {
                break;
            }
            let product_index = rng.skewed(sizes.products);
            let product = product_no(product_index);
            let base_cents = 50 + (product_index * 7919 % 2000);
            let price = format!("{}.{:02}", base_cents / 100, base_cents % 100);
            let quantity = 1 + rng.skewed(24);
            let no = if cancelled {
                format!("C{transaction}")
            } else {
                transaction.to_string()
            };
            let quantity = if cancelled {
                format!("-{quantity}")
            } else {
                quantity.to_string()
            };
            let date = format!(
                "{}/{}/{}",
                chrono::Datelike::month(&day),
                chrono::Datelike::day(&day),
                chrono::Datelike::year(&day)
            );
            let fields = dirty(rng, [no, date, product, customer.clone(), quantity, price]);
            let [no, date, product, customer, quantity, price] = &fields;
            let line = match rng.below(2000) {
                0..=1 => {
                    format!("{no},{date},{product},\"Name\"x,{price},{quantity},{customer},UK")
                }
                2..=3 => format!("{no},{date},{product},{price},{quantity},{customer},UK"),
                4..=5 => previous.clone().unwrap_or_default(),
                6 => String::new(),
                7..=60 => format!(
                    " {no} ,\" {date}\",{product},\"Mug, \"\"Tea\"\"\",{price}, {quantity} ,{customer}, United Kingdom "
                ),
                _ => format!(
                    "{no},{date},{product},Item,{price},{quantity},{customer},United Kingdom"
                ),
            };
            writeln!(w, "{line}")?;
            previous = Some(line);
            written += 1;
        }
    }
    Ok(written)
}

/// Spoils about 1.5% of lines, each with one kind of dirt the silver rules reject.
fn dirty(rng: &mut Rng, mut fields: [String; 6]) -> [String; 6] {
    let [no, date, product, customer, quantity, price] = &mut fields;
    match rng.below(1000) {
        0 => *date = "2023-01-05".into(),
        1 => *date = format!("{}/29/2023", 2),
        2 => *date = format!("{} 10:26", date),
        3 => *quantity = "2.5".into(),
        4 => *quantity = "1e3".into(),
        5 => *price = format!("${price}"),
        6 => *price = format!("{price}5"),
        7 => *price = ".5".into(),
        8 => *quantity = "0".into(),
        9 => *price = "0.00".into(),
        10 => *product = "99999Z".into(),
        11 => *customer = "99999".into(),
        12 => *customer = String::new(),
        13 => *price = "-1.50".into(),
        14 => *quantity = "99999999999".into(),
        15 => *date = String::new(),
        _ => {}
    }
    let _ = no;
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_bounded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
            assert!(a.skewed(5) < 5);
            b.skewed(5);
        }
    }

    #[test]
    fn generation_is_deterministic() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        generate(one.path(), 500, 3).unwrap();
        generate(two.path(), 500, 3).unwrap();
        for file in [
            "countries.csv",
            "customers.csv",
            "products.csv",
            "transactions.csv",
        ] {
            let a = std::fs::read(one.path().join(file)).unwrap();
            let b = std::fs::read(two.path().join(file)).unwrap();
            assert_eq!(a, b, "{file}");
        }
        let transactions = std::fs::read_to_string(one.path().join("transactions.csv")).unwrap();
        // Header plus 500 lines.
        assert_eq!(transactions.lines().count(), 501);
    }
}
