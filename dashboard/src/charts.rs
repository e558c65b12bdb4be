//! Chart geometry: scales, "nice" axis ticks, label formatting of money and months,
//! and the laid-out shapes of the four charts. Pure functions of their inputs (no
//! I/O, no clock), so the templates only place what this module computed and the
//! unit tests can check every edge (no data, one point, huge, tiny and negative
//! values).

use chrono::{Datelike, NaiveDate};

use aurum_gold::Money;

/// Width of every chart's SVG view box, in user units (the SVG scales to its box).
pub const VIEW_WIDTH: f64 = 640.0;

/// Room on the left of a plot for axis labels.
const LEFT_AXIS: f64 = 64.0;
/// Room on the right of a plot (last tick label, point labels).
const RIGHT_PAD: f64 = 16.0;
/// Room at the top of a plot.
const TOP_PAD: f64 = 12.0;
/// Room at the bottom of a plot for the x axis labels.
const BOTTOM_AXIS: f64 = 28.0;

/// Rounds a coordinate to 0.1 user units: plenty for a screen, and short in the SVG.
fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A linear map from a data domain onto a pixel range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearScale {
    /// Data value mapped onto `range.0`.
    pub domain_min: f64,
    /// Data value mapped onto `range.1`.
    pub domain_max: f64,
    /// Start of the pixel range.
    pub range_start: f64,
    /// End of the pixel range.
    pub range_end: f64,
}

impl LinearScale {
    /// A scale of `[domain_min, domain_max]` onto `[range_start, range_end]`. An empty
    /// domain (min == max) maps everything to the middle of the range.
    pub fn new(domain_min: f64, domain_max: f64, range_start: f64, range_end: f64) -> Self {
        LinearScale {
            domain_min,
            domain_max,
            range_start,
            range_end,
        }
    }

    /// The pixel position of `v` (not clamped: values outside the domain land outside).
    pub fn map(&self, v: f64) -> f64 {
        let span = self.domain_max - self.domain_min;
        if span == 0.0 || !span.is_finite() {
            return (self.range_start + self.range_end) / 2.0;
        }
        self.range_start + (v - self.domain_min) / span * (self.range_end - self.range_start)
    }
}

/// Axis ticks: round values covering a data range.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    /// The first tick (<= the data minimum).
    pub min: f64,
    /// The last tick (>= the data maximum).
    pub max: f64,
    /// Distance between ticks: 1, 2 or 5 times a power of ten.
    pub step: f64,
    /// The tick values, from `min` to `max`.
    pub values: Vec<f64>,
}

/// The "nice" number closest to `x`: 1, 2, 5 or 10 times a power of ten
/// (Heckbert, "Nice numbers for graph labels", Graphics Gems, 1990).
fn nice_number(x: f64) -> f64 {
    let exponent = x.log10().floor();
    let base = 10f64.powf(exponent);
    let fraction = x / base;
    let nice = if fraction < 1.5 {
        1.0
    } else if fraction < 3.0 {
        2.0
    } else if fraction < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * base
}

/// About `target` round ticks covering `[lo, hi]`. A single value (lo == hi) gets a
/// range around it (from zero for positive values); non-finite input gives `[0, 1]`.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Ticks {
    let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if !lo.is_finite() || !hi.is_finite() {
        lo = 0.0;
        hi = 1.0;
    }
    if lo == hi {
        // One value: show it against zero, or a unit band when it is zero.
        if lo > 0.0 {
            lo = 0.0;
        } else if lo < 0.0 {
            hi = 0.0;
        } else {
            hi = 1.0;
        }
    }
    let target = target.max(2);
    // The step from the raw range (not Heckbert's niced range), for tighter axes.
    let step = nice_number((hi - lo) / (target - 1) as f64);
    let min = (lo / step).floor() * step;
    let max = (hi / step).ceil() * step;
    let count = ((max - min) / step).round() as usize;
    let values = (0..=count)
        .map(|i| {
            let v = min + i as f64 * step;
            // Snap float noise (0.30000000000000004) to the step's precision.
            let decimals = (-step.log10().floor()).max(0.0) as i32;
            let p = 10f64.powi(decimals.min(12));
            (v * p).round() / p
        })
        .collect();
    Ticks {
        min,
        max,
        step,
        values,
    }
}

/// Money with thousands separators, for templates: `{{ amount.grouped() }}`.
pub trait Grouped {
    /// The amount as [`format_money`] writes it.
    fn grouped(&self) -> String;
}

impl Grouped for Money {
    fn grouped(&self) -> String {
        format_money(*self)
    }
}

/// A money amount with thousands separators and two decimals: `-1,234,567.50`.
pub fn format_money(m: Money) -> String {
    let cents = m.cents();
    let negative = cents < 0;
    let abs = cents.unsigned_abs();
    let units = (abs / 100).to_string();
    let mut grouped = String::with_capacity(units.len() + units.len() / 3 + 4);
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!(
        "{}{}.{:02}",
        if negative { "-" } else { "" },
        grouped,
        abs % 100
    )
}

/// A short axis label for an amount: `0`, `950`, `1.5k`, `12M`, `3.2B`, `0.05`.
pub fn format_short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let abs = v.abs();
    let (scaled, suffix) = if abs >= 1e12 {
        (v / 1e12, "T")
    } else if abs >= 1e9 {
        (v / 1e9, "B")
    } else if abs >= 1e6 {
        (v / 1e6, "M")
    } else if abs >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = if scaled.abs() >= 100.0 || scaled.fract().abs() < 1e-9 {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 1.0 || !suffix.is_empty() {
        trim_zeros(format!("{scaled:.1}"))
    } else {
        // Tiny values: enough decimals to tell neighbouring ticks apart.
        let decimals = (-abs.log10().floor()) as usize + 1;
        trim_zeros(format!("{scaled:.decimals$}"))
    };
    format!("{text}{suffix}")
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A percentage with a sign: `+12.50 %`, `-3.00 %`.
pub fn format_percent(m: Money) -> String {
    let sign = if m.cents() > 0 { "+" } else { "" };
    format!("{sign}{m} %")
}

/// A month as a label: `Jan 2024`.
pub fn format_month(month: NaiveDate) -> String {
    const NAMES: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!("{} {}", NAMES[month.month0() as usize], month.year())
}

/// The rectangle a chart plots into, inside its view box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotArea {
    /// Left edge.
    pub left: f64,
    /// Right edge.
    pub right: f64,
    /// Top edge.
    pub top: f64,
    /// Bottom edge.
    pub bottom: f64,
}

impl PlotArea {
    /// The plot of a chart with a value axis on the left: the full width right of
    /// that axis, `height` tall from `top`.
    fn beside_left_axis(top: f64, height: f64) -> PlotArea {
        PlotArea {
            left: LEFT_AXIS,
            right: VIEW_WIDTH - RIGHT_PAD,
            top,
            bottom: top + height,
        }
    }
}

/// An axis tick: its position and label.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// Position along the axis, in user units.
    pub pos: f64,
    /// The label.
    pub label: String,
}

/// The ticks of `ticks` placed by `scale`, labelled by `label`.
fn place_ticks(ticks: &Ticks, scale: &LinearScale, label: impl Fn(f64) -> String) -> Vec<Tick> {
    ticks
        .values
        .iter()
        .map(|v| Tick {
            pos: round1(scale.map(*v)),
            label: label(*v),
        })
        .collect()
}

/// The smallest and largest of `values` and zero: a value axis that always shows
/// its zero line, whatever the sign of the data.
fn range_with_zero(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    values
        .into_iter()
        .fold((0.0, 0.0), |(lo, hi), v| (f64::min(lo, v), f64::max(hi, v)))
}

/// Labels for at most about `most` of `count` slots along an axis, every n-th from
/// the first, `label(i)` for slot `i`: every slot keeps its label in the table view.
fn thinned_labels(count: usize, most: usize, label: impl Fn(usize) -> Tick) -> Vec<Tick> {
    let every = count.div_ceil(most).max(1);
    (0..count).step_by(every).map(label).collect()
}

/// One horizontal bar of a bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct HBar {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width (>= 0).
    pub width: f64,
    /// Height.
    pub height: f64,
    /// The category (e.g. a product name).
    pub label: String,
    /// The exact value, formatted.
    pub value_label: String,
    /// Baseline of the text rows of this bar.
    pub text_y: f64,
}

/// A horizontal bar chart laid out in a `VIEW_WIDTH` x `height` box.
#[derive(Debug, Clone, PartialEq)]
pub struct HBarChart {
    /// View box height.
    pub height: f64,
    /// The bars, top to bottom, in input order.
    pub bars: Vec<HBar>,
    /// Value axis ticks along the bottom.
    pub ticks: Vec<Tick>,
    /// Where the value axis and gridlines start and end vertically.
    pub plot_top: f64,
    /// Bottom of the plot area.
    pub plot_bottom: f64,
    /// x of the zero line.
    pub zero_x: f64,
}

/// Height of one bar row (a label line above a bar).
const HBAR_ROW: f64 = 34.0;

/// Lays out horizontal bars of `(label, value)`: one row per item, the label above
/// its bar, the value axis at the bottom. Negative values grow left of zero.
pub fn hbar_chart(items: &[(String, Money)]) -> HBarChart {
    let values: Vec<f64> = items.iter().map(|(_, v)| v.to_f64()).collect();
    let (lo, hi) = range_with_zero(values.iter().copied());
    let ticks = nice_ticks(lo, hi, 5);
    let left = 8.0;
    let scale = LinearScale::new(ticks.min, ticks.max, left, VIEW_WIDTH - RIGHT_PAD);
    let plot_top = TOP_PAD;
    let plot_bottom = plot_top + HBAR_ROW * items.len().max(1) as f64;
    let zero_x = round1(scale.map(0.0));
    let bars = items
        .iter()
        .zip(&values)
        .enumerate()
        .map(|(i, ((label, money), v))| {
            let row_top = plot_top + HBAR_ROW * i as f64;
            let end = scale.map(*v);
            HBar {
                x: round1(end.min(zero_x)),
                y: round1(row_top + 16.0),
                width: round1((end - zero_x).abs()),
                height: 14.0,
                label: label.clone(),
                value_label: format_money(*money),
                text_y: round1(row_top + 12.0),
            }
        })
        .collect();
    HBarChart {
        height: plot_bottom + BOTTOM_AXIS,
        bars,
        ticks: place_ticks(&ticks, &scale, format_short),
        plot_top,
        plot_bottom,
        zero_x,
    }
}

/// One point of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePoint {
    /// x position.
    pub x: f64,
    /// y position.
    pub y: f64,
    /// The category label (a month).
    pub label: String,
    /// The exact value, formatted.
    pub value_label: String,
    /// A short form of the value (`8.8k`) for the visible label above the point,
    /// which must fit a month's slot; the exact value is in the tooltip and table.
    pub short_label: String,
}

/// A vertical bar around a zero line (positive up, negative down).
#[derive(Debug, Clone, PartialEq)]
pub struct VBar {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height (>= 0).
    pub height: f64,
    /// True when the value is negative (drawn in the "loss" colour).
    pub negative: bool,
    /// The category label.
    pub label: String,
    /// The exact value, formatted.
    pub value_label: String,
}

/// Monthly sales: a line of totals and, below it, month-over-month growth bars.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// View box height.
    pub height: f64,
    /// The SVG path of the line (`M x y L x y ...`), empty without points.
    pub path: String,
    /// One point per month.
    pub points: Vec<LinePoint>,
    /// Left axis ticks (sales).
    pub y_ticks: Vec<Tick>,
    /// Labels along the bottom (a subset of months when there are many).
    pub x_labels: Vec<Tick>,
    /// Where the data is drawn (for the line chart: the line panel).
    pub plot: PlotArea,
    /// Month-over-month growth bars (months without a growth value have none).
    pub growth_bars: Vec<VBar>,
    /// y of the growth panel's zero line.
    pub growth_zero_y: f64,
    /// Top of the growth panel.
    pub growth_top: f64,
    /// Growth axis ticks (percent).
    pub growth_ticks: Vec<Tick>,
    /// Whether the exact values fit as visible labels above the points.
    pub show_point_labels: bool,
}

/// Height of the line panel's plot area.
const LINE_PLOT_HEIGHT: f64 = 200.0;
/// Height of the growth panel.
const GROWTH_HEIGHT: f64 = 90.0;

/// Lays out a line of `(month, total)` with growth bars of `(month, growth %)`
/// below it (`None`: no previous month to compare with).
pub fn line_chart(points: &[(NaiveDate, Money, Option<Money>)]) -> LineChart {
    let plot = PlotArea::beside_left_axis(TOP_PAD + 8.0, LINE_PLOT_HEIGHT);
    let (lo, hi) = range_with_zero(points.iter().map(|p| p.1.to_f64()));
    let y_ticks = nice_ticks(lo, hi, 5);
    let y = LinearScale::new(y_ticks.min, y_ticks.max, plot.bottom, plot.top);
    let n = points.len();
    // Points sit in the middle of equal slots, so one point is centred.
    let slot = (plot.right - plot.left) / n.max(1) as f64;
    let x_of = |i: usize| plot.left + slot * (i as f64 + 0.5);
    let chart_points: Vec<LinePoint> = points
        .iter()
        .enumerate()
        .map(|(i, (month, total, _))| LinePoint {
            x: round1(x_of(i)),
            y: round1(y.map(total.to_f64())),
            label: format_month(*month),
            value_label: format_money(*total),
            short_label: format_short(total.to_f64()),
        })
        .collect();
    let path = chart_points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}{} {}", if i == 0 { "M" } else { "L" }, p.x, p.y))
        .collect::<Vec<_>>()
        .join(" ");
    let x_labels = thinned_labels(n, 8, |i| Tick {
        pos: chart_points[i].x,
        label: chart_points[i].label.clone(),
    });

    let growth_top = plot.bottom + BOTTOM_AXIS + 16.0;
    let growth_bottom = growth_top + GROWTH_HEIGHT;
    let (g_lo, g_hi) = range_with_zero(points.iter().filter_map(|p| p.2.map(|g| g.to_f64())));
    let g_ticks = nice_ticks(g_lo, g_hi, 3);
    let gy = LinearScale::new(g_ticks.min, g_ticks.max, growth_bottom, growth_top);
    let growth_zero_y = round1(gy.map(0.0));
    let bar_width = (slot * 0.6).clamp(1.0, 40.0);
    let growth_bars = points
        .iter()
        .enumerate()
        .filter_map(|(i, (month, _, g))| {
            let g = (*g)?;
            let end = gy.map(g.to_f64());
            Some(VBar {
                x: round1(x_of(i) - bar_width / 2.0),
                y: round1(end.min(growth_zero_y)),
                width: round1(bar_width),
                height: round1((end - growth_zero_y).abs()),
                negative: g.cents() < 0,
                label: format_month(*month),
                value_label: format_percent(g),
            })
        })
        .collect();
    LineChart {
        height: growth_bottom + 12.0,
        path,
        points: chart_points,
        y_ticks: place_ticks(&y_ticks, &y, format_short),
        x_labels,
        plot,
        growth_bars,
        growth_zero_y,
        growth_top,
        growth_ticks: place_ticks(&g_ticks, &gy, |v| format!("{}%", format_short(v))),
        show_point_labels: n <= 12,
    }
}

/// One bin of a histogram: values in `[lower, upper)` (the last bin includes its
/// upper edge).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramBin {
    /// Lower edge.
    pub lower: f64,
    /// Upper edge (for the open-ended tail bin: the largest value).
    pub upper: f64,
    /// How many values fall in the bin.
    pub count: u64,
    /// True for the last bin gathering a long tail ("`lower` and more").
    pub open_ended: bool,
}

/// Bins `values` into about `target` bins with round edges. No values: no bins.
///
/// Lifetime values have a long tail (a few customers buy far more than the rest):
/// when the largest value is more than twice the 95th percentile, the bins cover
/// the values up to that percentile and one last, open-ended bin gathers the tail,
/// so the bulk of the customers is not squeezed into the first bin.
pub fn histogram(values: &[f64], target: usize) -> Vec<HistogramBin> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return Vec::new();
    }
    sorted.sort_by(f64::total_cmp);
    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
    let p95 = sorted[((sorted.len() - 1) as f64 * 0.95).round() as usize];
    let tail = sorted.len() >= 20 && p95 > min && p95 > 0.0 && max > 2.0 * p95;
    let ticks = nice_ticks(min, if tail { p95 } else { max }, target + 1);
    let mut top = ticks.max;
    if top == ticks.min {
        top = ticks.min + ticks.step;
    }
    let bins = (((top - ticks.min) / ticks.step).round() as usize).max(1);
    let mut counts = vec![0u64; bins];
    let mut tail_count = 0u64;
    for v in sorted {
        if tail && v >= top {
            tail_count += 1;
            continue;
        }
        // A value right on the top edge stays in the last bin.
        let i = ((v - ticks.min) / ticks.step).floor() as usize;
        counts[i.min(bins - 1)] += 1;
    }
    let mut out: Vec<HistogramBin> = counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| HistogramBin {
            lower: ticks.min + ticks.step * i as f64,
            upper: ticks.min + ticks.step * (i + 1) as f64,
            count,
            open_ended: false,
        })
        .collect();
    if tail {
        out.push(HistogramBin {
            lower: top,
            upper: max,
            count: tail_count,
            open_ended: true,
        });
    }
    out
}

/// A histogram laid out as vertical bars.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramChart {
    /// View box height.
    pub height: f64,
    /// One bar per bin.
    pub bars: Vec<VBar>,
    /// Count axis ticks.
    pub y_ticks: Vec<Tick>,
    /// Value labels along the bottom (bin edges).
    pub x_labels: Vec<Tick>,
    /// Where the bars are drawn.
    pub plot: PlotArea,
}

/// Lays out `bins` as adjacent vertical bars, the count on the y axis.
pub fn histogram_chart(bins: &[HistogramBin]) -> HistogramChart {
    let plot = PlotArea::beside_left_axis(TOP_PAD, 180.0);
    let max_count = bins.iter().map(|b| b.count).max().unwrap_or(0) as f64;
    let y_ticks = nice_ticks(0.0, max_count, 5);
    let y = LinearScale::new(y_ticks.min, y_ticks.max, plot.bottom, plot.top);
    let slot = (plot.right - plot.left) / bins.len().max(1) as f64;
    let bars = bins
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let top = y.map(b.count as f64);
            VBar {
                x: round1(plot.left + slot * i as f64 + 1.0),
                y: round1(top),
                width: round1((slot - 2.0).max(0.5)),
                height: round1(plot.bottom - top),
                negative: false,
                label: if b.open_ended {
                    format!("{} and more", format_short(b.lower))
                } else {
                    format!("{} to {}", format_short(b.lower), format_short(b.upper))
                },
                value_label: format!("{} customers", b.count),
            }
        })
        .collect();
    let x_labels = thinned_labels(bins.len(), 6, |i| Tick {
        pos: round1(plot.left + slot * i as f64),
        label: format_short(bins[i].lower),
    });
    HistogramChart {
        height: plot.bottom + BOTTOM_AXIS,
        bars,
        y_ticks: place_ticks(&y_ticks, &y, format_short),
        x_labels,
        plot,
    }
}

/// One cell of a heat map.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatCell {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
    /// Colour strength, 0.08 (smallest) to 1 (largest value).
    pub intensity: f64,
    /// Row (country).
    pub row: String,
    /// Column (year).
    pub column: String,
    /// The exact value, formatted.
    pub value_label: String,
    /// The short value printed inside the cell.
    pub short_label: String,
    /// Whether the label needs the light ink (dark cell).
    pub dark: bool,
}

/// A rows x columns heat map (countries x years).
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    /// View box height.
    pub height: f64,
    /// The cells that have a value (missing combinations stay blank).
    pub cells: Vec<HeatCell>,
    /// Row labels with their text baseline.
    pub row_labels: Vec<Tick>,
    /// Column labels with their centre x.
    pub column_labels: Vec<Tick>,
    /// Left edge of the grid.
    pub grid_left: f64,
}

/// Height of a heat map row.
const HEAT_ROW: f64 = 22.0;
/// Width of the row label column.
const HEAT_LABEL_WIDTH: f64 = 170.0;

/// Lays out `cells` of `(row, column, value)` on a grid whose rows and columns are
/// given in display order. Intensity is linear in the value, from the smallest to
/// the largest non-negative value.
pub fn heat_map(rows: &[String], columns: &[String], cells: &[(String, String, Money)]) -> HeatMap {
    let grid_left = HEAT_LABEL_WIDTH;
    let top = 28.0;
    let cell_width = (VIEW_WIDTH - RIGHT_PAD - grid_left) / columns.len().max(1) as f64;
    let max = cells
        .iter()
        .map(|c| c.2.to_f64())
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let laid: Vec<HeatCell> = cells
        .iter()
        .filter_map(|(row, column, value)| {
            let r = rows.iter().position(|x| x == row)?;
            let c = columns.iter().position(|x| x == column)?;
            let share = (value.to_f64() / max).clamp(0.0, 1.0);
            let intensity = round2(0.08 + 0.92 * share);
            Some(HeatCell {
                x: round1(grid_left + cell_width * c as f64 + 1.0),
                y: round1(top + HEAT_ROW * r as f64 + 1.0),
                width: round1(cell_width - 2.0),
                height: HEAT_ROW - 2.0,
                intensity,
                row: row.clone(),
                column: column.clone(),
                value_label: format_money(*value),
                short_label: format_short(value.to_f64()),
                dark: intensity > 0.55,
            })
        })
        .collect();
    HeatMap {
        height: top + HEAT_ROW * rows.len().max(1) as f64 + 8.0,
        cells: laid,
        row_labels: rows
            .iter()
            .enumerate()
            .map(|(i, r)| Tick {
                pos: round1(top + HEAT_ROW * i as f64 + 15.0),
                label: r.clone(),
            })
            .collect(),
        column_labels: columns
            .iter()
            .enumerate()
            .map(|(i, c)| Tick {
                pos: round1(grid_left + cell_width * (i as f64 + 0.5)),
                label: c.clone(),
            })
            .collect(),
        grid_left,
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        s.parse().unwrap()
    }

    fn month(y: i32, mo: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, 1).unwrap()
    }

    #[test]
    fn scale_maps_ends_and_middle_and_survives_an_empty_domain() {
        let s = LinearScale::new(0.0, 100.0, 10.0, 110.0);
        assert_eq!(s.map(0.0), 10.0);
        assert_eq!(s.map(100.0), 110.0);
        assert_eq!(s.map(50.0), 60.0);
        let inverted = LinearScale::new(0.0, 10.0, 200.0, 0.0);
        assert_eq!(inverted.map(10.0), 0.0);
        let empty = LinearScale::new(5.0, 5.0, 0.0, 100.0);
        assert_eq!(empty.map(5.0), 50.0);
    }

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        let t = nice_ticks(0.0, 97.3, 5);
        assert_eq!(t.values, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let t = nice_ticks(-37.0, 12.0, 5);
        assert!(t.min <= -37.0 && t.max >= 12.0);
        assert!(t.values.contains(&0.0));
        assert_eq!(t.step, 10.0);
    }

    #[test]
    fn ticks_of_one_value_and_of_nothing() {
        // One positive value is shown against zero.
        let t = nice_ticks(42.0, 42.0, 5);
        assert_eq!(t.min, 0.0);
        assert!(t.max >= 42.0);
        // One negative value likewise.
        let t = nice_ticks(-8.0, -8.0, 5);
        assert!(t.min <= -8.0 && t.max == 0.0);
        // Zero alone (an empty chart) gets a unit band.
        let t = nice_ticks(0.0, 0.0, 5);
        assert_eq!((t.min, t.max), (0.0, 1.0));
        let t = nice_ticks(f64::NAN, 3.0, 5);
        assert_eq!((t.min, t.max), (0.0, 1.0));
    }

    #[test]
    fn ticks_of_huge_and_tiny_ranges() {
        let t = nice_ticks(0.0, 9.2e15, 5);
        assert_eq!(t.step, 2e15);
        assert_eq!(*t.values.last().unwrap(), 1e16);
        let t = nice_ticks(0.0, 0.03, 4);
        assert_eq!(t.step, 0.01);
        assert_eq!(t.values, vec![0.0, 0.01, 0.02, 0.03]);
        // Float noise is snapped: 0.1 + 0.2 shows as 0.3.
        let t = nice_ticks(0.0, 0.3, 4);
        assert!(t.values.contains(&0.3), "{:?}", t.values);
    }

    #[test]
    fn money_labels() {
        assert_eq!(format_money(m("0")), "0.00");
        assert_eq!(format_money(m("1234.5")), "1,234.50");
        assert_eq!(format_money(m("-1234567.89")), "-1,234,567.89");
        assert_eq!(format_money(m("999.99")), "999.99");
        assert_eq!(
            format_money(m("9999999999999999.99")),
            "9,999,999,999,999,999.99"
        );
        assert_eq!(format_money(m("-0.05")), "-0.05");
    }

    #[test]
    fn short_labels() {
        assert_eq!(format_short(0.0), "0");
        assert_eq!(format_short(950.0), "950");
        assert_eq!(format_short(1500.0), "1.5k");
        assert_eq!(format_short(12_000_000.0), "12M");
        assert_eq!(format_short(-2_500_000.0), "-2.5M");
        assert_eq!(format_short(3.2e9), "3.2B");
        assert_eq!(format_short(1e16), "10000T");
        assert_eq!(format_short(0.05), "0.05");
        assert_eq!(format_short(0.001), "0.001");
        assert_eq!(format_short(2.5), "2.5");
    }

    #[test]
    fn month_and_percent_labels() {
        assert_eq!(format_month(month(2024, 1)), "Jan 2024");
        assert_eq!(format_month(month(2023, 12)), "Dec 2023");
        assert_eq!(format_percent(m("12.5")), "+12.50 %");
        assert_eq!(format_percent(m("-3")), "-3.00 %");
        assert_eq!(format_percent(m("0")), "0.00 %");
    }

    #[test]
    fn hbar_chart_empty_one_and_many() {
        let empty = hbar_chart(&[]);
        assert!(empty.bars.is_empty());
        assert!(empty.height > 0.0);
        let one = hbar_chart(&[("A".into(), m("10"))]);
        assert_eq!(one.bars.len(), 1);
        assert!(one.bars[0].width > 0.0);
        assert_eq!(one.bars[0].value_label, "10.00");
        let many = hbar_chart(&[
            ("A".into(), m("100")),
            ("B".into(), m("50")),
            ("C".into(), m("0.01")),
        ]);
        assert_eq!(many.bars.len(), 3);
        // Widths are proportional to the values.
        let ratio = many.bars[1].width / many.bars[0].width;
        assert!((ratio - 0.5).abs() < 0.01, "{ratio}");
        assert!(many.bars.windows(2).all(|w| w[0].y < w[1].y));
        for b in &many.bars {
            assert!(b.x >= 0.0 && b.x + b.width <= VIEW_WIDTH);
        }
    }

    #[test]
    fn hbar_chart_negative_values_grow_left_of_zero() {
        let c = hbar_chart(&[("up".into(), m("50")), ("down".into(), m("-25"))]);
        assert!(c.zero_x > 8.0);
        assert_eq!(c.bars[0].x, c.zero_x);
        assert!(c.bars[1].x < c.zero_x);
        assert!((c.bars[1].x + c.bars[1].width - c.zero_x).abs() < 0.2);
    }

    #[test]
    fn line_chart_empty_and_one_point() {
        let empty = line_chart(&[]);
        assert!(empty.points.is_empty());
        assert_eq!(empty.path, "");
        assert!(empty.growth_bars.is_empty());
        let one = line_chart(&[(month(2024, 3), m("1000"), None)]);
        assert_eq!(one.points.len(), 1);
        assert!(one.path.starts_with('M'));
        // A single point is centred horizontally.
        let centre = (one.plot.left + one.plot.right) / 2.0;
        assert!((one.points[0].x - centre).abs() < 0.2);
        assert!(one.growth_bars.is_empty());
    }

    #[test]
    fn line_chart_growth_bars_go_both_ways() {
        let c = line_chart(&[
            (month(2024, 1), m("100"), None),
            (month(2024, 2), m("150"), Some(m("50"))),
            (month(2024, 3), m("75"), Some(m("-50"))),
        ]);
        assert_eq!(c.points.len(), 3);
        assert_eq!(c.path.matches('L').count(), 2);
        assert_eq!(c.points[1].short_label, "150");
        assert_eq!(c.points[1].value_label, "150.00");
        // Higher sales are higher up (smaller y).
        assert!(c.points[1].y < c.points[0].y && c.points[2].y > c.points[0].y);
        assert_eq!(c.growth_bars.len(), 2);
        let (up, down) = (&c.growth_bars[0], &c.growth_bars[1]);
        assert!(!up.negative && down.negative);
        assert!((up.y + up.height - c.growth_zero_y).abs() < 0.2);
        assert!((down.y - c.growth_zero_y).abs() < 0.2);
        assert!((up.height - down.height).abs() < 0.2);
        assert_eq!(down.value_label, "-50.00 %");
    }

    #[test]
    fn line_chart_thins_axis_labels_for_many_months() {
        let months: Vec<_> = (0..36)
            .map(|i| (month(2021 + i / 12, (i % 12 + 1) as u32), m("1"), None))
            .collect();
        let c = line_chart(&months);
        assert_eq!(c.points.len(), 36);
        assert!(c.x_labels.len() <= 9);
        assert!(!c.show_point_labels);
    }

    #[test]
    fn histogram_bins_every_value_once() {
        assert!(histogram(&[], 10).is_empty());
        let one = histogram(&[5.0], 10);
        assert_eq!(one.iter().map(|b| b.count).sum::<u64>(), 1);
        let values: Vec<f64> = (0..1000).map(|i| i as f64 * 1.37).collect();
        let bins = histogram(&values, 10);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 1000);
        assert!(bins.len() >= 5 && bins.len() <= 15, "{}", bins.len());
        assert!(bins.windows(2).all(|w| w[0].upper == w[1].lower));
        assert!(bins[0].lower <= 0.0 && bins.last().unwrap().upper >= 999.0 * 1.37);
        // Huge and tiny values still bin.
        let huge = histogram(&[1e14, 5e15, 9.9e15], 10);
        assert_eq!(huge.iter().map(|b| b.count).sum::<u64>(), 3);
        let tiny = histogram(&[0.01, 0.02, 0.02], 10);
        assert_eq!(tiny.iter().map(|b| b.count).sum::<u64>(), 3);
        assert!(bins.iter().chain(&huge).chain(&tiny).all(|b| !b.open_ended));
    }

    #[test]
    fn histogram_gathers_a_long_tail_in_one_open_bin() {
        // 100 customers between 0 and 99, three far above.
        let mut values: Vec<f64> = (0..100).map(f64::from).collect();
        values.extend([5_000.0, 20_000.0, 44_000.0]);
        let bins = histogram(&values, 10);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 103);
        let last = bins.last().unwrap();
        assert!(last.open_ended);
        assert_eq!(last.upper, 44_000.0);
        assert!(last.lower <= 100.0 && last.lower >= 95.0, "{}", last.lower);
        assert!(last.count >= 3 && last.count <= 8, "{}", last.count);
        assert!(
            bins[..bins.len() - 1]
                .iter()
                .all(|b| !b.open_ended && b.upper <= last.lower)
        );
        let c = histogram_chart(&bins);
        assert!(c.bars.last().unwrap().label.ends_with("and more"));
    }

    #[test]
    fn histogram_chart_bars_match_counts() {
        let bins = histogram(&[1.0, 2.0, 2.0, 9.0], 4);
        let c = histogram_chart(&bins);
        assert_eq!(c.bars.len(), bins.len());
        let tallest = c.bars.iter().map(|b| b.height).fold(0.0, f64::max);
        let two = bins.iter().position(|b| b.count == 2).unwrap();
        assert_eq!(c.bars[two].height, tallest);
        assert!(histogram_chart(&[]).bars.is_empty());
    }

    #[test]
    fn heat_map_places_cells_and_scales_intensity() {
        let rows = vec!["France".to_string(), "Spain".to_string()];
        let cols = vec!["2023".to_string(), "2024".to_string()];
        let cells = vec![
            ("France".into(), "2023".into(), m("100")),
            ("Spain".into(), "2024".into(), m("50")),
            ("Nowhere".into(), "2024".into(), m("5")),
        ];
        let h = heat_map(&rows, &cols, &cells);
        assert_eq!(h.cells.len(), 2, "unknown rows are not drawn");
        assert_eq!(h.cells[0].intensity, 1.0);
        assert!(h.cells[1].intensity < 1.0 && h.cells[1].intensity > 0.08);
        assert!(h.cells[1].x > h.cells[0].x && h.cells[1].y > h.cells[0].y);
        assert!(heat_map(&[], &[], &[]).cells.is_empty());
    }
}
