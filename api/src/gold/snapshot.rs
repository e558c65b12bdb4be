//! An immutable in-memory copy of one gold table, with rows pre-serialised to JSON
//! and every whitelisted order pre-sorted, so a page is a slice plus a memcpy.

use std::io::Write;

use chrono::{DateTime, Utc};

use super::params::PageRequest;
use super::tables::Datamart;

/// The `gold_runs` row that published the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    /// The job-runner's run id.
    pub run_id: String,
    /// When the run finished (and published the table).
    pub finished_at: DateTime<Utc>,
    /// The silver snapshot the table was built from.
    pub silver_snapshot_id: Option<String>,
}

/// 64-bit FNV-1a, for ETags (not for security).
pub fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Formats a timestamp as an HTTP date (RFC 9110 IMF-fixdate).
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// One loaded version of a datamart.
pub struct Snapshot<D: Datamart> {
    /// The rows, in the default order (first order column, then primary key), so
    /// that pages of the default order are contiguous in the JSON buffer.
    pub rows: Vec<D::Row>,
    json: Vec<u8>,
    offsets: Vec<usize>,
    orders: Vec<Vec<u32>>,
    /// The run that published this version, if `gold_runs` has one.
    pub run: Option<RunInfo>,
    /// Opaque version tag (hex), part of every ETag.
    pub tag: String,
    /// `Last-Modified` value: the run's finish time, else the load time.
    pub last_modified: String,
    /// When this snapshot was loaded.
    pub loaded_at: DateTime<Utc>,
}

/// The rows selected by a request: how many match, and the ids on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Rows matching the filters.
    pub total: u64,
    /// Row indexes of the requested page, in order.
    pub ids: Vec<u32>,
}

impl<D: Datamart> Snapshot<D> {
    /// Builds a snapshot: serialises each row, sorts every order. CPU-bound.
    pub fn build(mut rows: Vec<D::Row>, run: Option<RunInfo>) -> Result<Self, serde_json::Error> {
        rows.sort_by(|a, b| D::cmp_on(0, a, b).then_with(|| D::cmp_key(a, b)));
        let mut json = Vec::with_capacity(rows.len() * 200);
        let mut offsets = Vec::with_capacity(rows.len() + 1);
        offsets.push(0);
        for r in &rows {
            serde_json::to_writer(&mut json, r)?;
            offsets.push(json.len());
        }
        let n = rows.len() as u32;
        let mut orders = Vec::with_capacity(D::ORDER_COLUMNS.len() * 2);
        for c in 0..D::ORDER_COLUMNS.len() {
            let mut asc: Vec<u32> = (0..n).collect();
            asc.sort_by(|&a, &b| {
                let (ra, rb) = (&rows[a as usize], &rows[b as usize]);
                D::cmp_on(c, ra, rb).then_with(|| D::cmp_key(ra, rb))
            });
            let mut desc: Vec<u32> = (0..n).collect();
            desc.sort_by(|&a, &b| {
                let (ra, rb) = (&rows[a as usize], &rows[b as usize]);
                D::cmp_on(c, rb, ra).then_with(|| D::cmp_key(ra, rb))
            });
            orders.push(asc);
            orders.push(desc);
        }
        let loaded_at = Utc::now();
        let seed = run.as_ref().map_or(0, |r| {
            fnv1a(0, r.run_id.as_bytes()) ^ r.finished_at.timestamp_micros() as u64
        });
        let tag = format!("{:016x}", fnv1a(seed, &json));
        let last_modified = http_date(run.as_ref().map_or(loaded_at, |r| r.finished_at));
        Ok(Self {
            rows,
            json,
            offsets,
            orders,
            run,
            tag,
            last_modified,
            loaded_at,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Selects the page a request asks for.
    pub fn page(&self, filter: &D::Filter, req: &PageRequest) -> Page {
        let order = &self.orders[req.order_by * 2 + usize::from(req.descending)];
        let limit = req.limit as usize;
        if D::keeps_all(filter) {
            let n = order.len();
            let start = usize::try_from(req.offset).unwrap_or(usize::MAX).min(n);
            let end = start.saturating_add(limit).min(n);
            return Page {
                total: n as u64,
                ids: order[start..end].to_vec(),
            };
        }
        let mut total = 0u64;
        let mut ids = Vec::with_capacity(limit.min(1024));
        for &i in order {
            if D::matches(filter, &self.rows[i as usize]) {
                if total >= req.offset && ids.len() < limit {
                    ids.push(i);
                }
                total += 1;
            }
        }
        Page { total, ids }
    }

    /// The pre-serialised JSON of row `i`.
    pub fn row_json(&self, i: u32) -> &[u8] {
        let i = i as usize;
        &self.json[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Renders `{"items":[...],"total":..,"limit":..,"offset":..}`.
    pub fn render(&self, page: &Page, req: &PageRequest) -> Vec<u8> {
        let rows_len: usize = page
            .ids
            .iter()
            .map(|&i| self.offsets[i as usize + 1] - self.offsets[i as usize] + 1)
            .sum();
        let mut out = Vec::with_capacity(rows_len + 96);
        out.extend_from_slice(b"{\"items\":[");
        for (k, &i) in page.ids.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.row_json(i));
        }
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "],\"total\":{},\"limit\":{},\"offset\":{}}}",
            page.total, req.limit, req.offset
        );
        out
    }
}
