//! The digest's charts as PNG: email clients show neither SVG nor scripts. plotters draws into an
//! in-memory RGB buffer with the embedded DejaVu Sans (no system font lookup), `png` encodes it.
//! Drawn at twice the size the email shows ([`WIDTH`] × [`HEIGHT`] shown at 600 × 300), so text
//! stays sharp on high-density screens. No data draws a chart that says so, not an error.

use std::{error::Error, sync::OnceLock};

use plotters::{
    coord::{
        Shift,
        types::{RangedCoordf64, RangedCoordu64},
    },
    prelude::*,
    style::{
        FontStyle, register_font,
        text_anchor::{HPos, Pos, VPos},
    },
};

use patchwatch_fleet::{digest::ClassificationCount, trends::ConfigurationTrend};

use super::thousands;
use crate::RenderError;

/// Pixel width of a chart (shown at half: 600).
pub const WIDTH: u32 = 1200;
/// Pixel height of a chart (shown at half: 300).
pub const HEIGHT: u32 = 600;
/// Most bars in the pending chart; the smallest classifications beyond are summed as `Other`.
const MAX_CLASSIFICATIONS: usize = 10;
/// Most configurations in the failures chart (those with the most failed and no-show machines).
const MAX_CONFIGURATIONS: usize = 8;
/// Most runs shown per configuration (the latest).
const MAX_RUNS: usize = 6;

/// DejaVu Sans 2.37 (fonts/LICENSE-DejaVu.txt): about 740 KiB, linked only into binaries that draw charts.
const FONT: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");
const FAMILY: &str = "DejaVu Sans";

const INK: RGBColor = RGBColor(0x1f, 0x23, 0x28);
const MUTED: RGBColor = RGBColor(0x57, 0x60, 0x6a);
const GRID: RGBColor = RGBColor(0xe5, 0xe7, 0xeb);
const FAILED: RGBColor = RGBColor(0xb3, 0x26, 0x1e);
const NO_SHOW: RGBColor = RGBColor(0x6b, 0x4f, 0xa0);
const SECURITY: RGBColor = RGBColor(0xc5, 0x5a, 0x11);
const OTHER: RGBColor = RGBColor(0x1f, 0x4e, 0x79);

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn Error + Send + Sync>>;

/// Pending patches per classification, as bars (critical red, security orange, the rest blue).
pub fn pending_by_classification(counts: &[ClassificationCount]) -> Result<Vec<u8>, RenderError> {
    let bars = top_classifications(counts);
    png("pending patches", |root| {
        let body = header(root, "Pending patches by classification", "", &[])?;
        if bars.is_empty() {
            return empty(&body, "No pending patches");
        }
        let labels: Vec<String> = bars.iter().map(|(label, _)| label.clone()).collect();
        let values: Vec<u64> = bars.iter().map(|(_, n)| *n).collect();
        let colors: Vec<RGBColor> = labels.iter().map(|l| classification_color(l)).collect();
        let width = labels.len() as f64;
        let mut chart = plot(&body, width, nice_max(values.iter().copied().max().unwrap_or(1)), "Patches")?;
        chart.draw_series(
            values
                .iter()
                .zip(&colors)
                .enumerate()
                .map(|(i, (v, c))| Rectangle::new([(i as f64 + 0.18, 0), (i as f64 + 0.82, *v)], c.filled())),
        )?;
        value_labels(&mut chart, values.iter().enumerate().map(|(i, v)| (i as f64 + 0.5, *v)))?;
        category_labels(&mut chart, labels.iter().enumerate().map(|(i, l)| (i as f64 + 0.5, 1.0, l.as_str())))?;
        Ok(())
    })
}

/// Failed and no-show machines in each configuration's last runs: one stacked bar per run,
/// oldest to latest, grouped by configuration.
pub fn failed_and_no_show(trends: &[ConfigurationTrend]) -> Result<Vec<u8>, RenderError> {
    let groups = worst_configurations(trends);
    png("failed and no-show", |root| {
        let shown = groups.len();
        let with_runs = trends.iter().filter(|t| !t.runs.is_empty()).count();
        let mut note = "One bar per run, oldest to latest".to_owned();
        if with_runs > shown {
            note.push_str(&format!("; the {shown} of {with_runs} configurations with the most"));
        }
        let legend = [("Failed", FAILED), ("No-show", NO_SHOW)];
        let body = header(root, "Failed and no-show machines in the last runs", &note, &legend)?;
        if groups.iter().all(|g| g.bars.is_empty()) {
            return empty(&body, "No runs in the period");
        }
        if groups.iter().all(|g| g.bars.iter().all(|(f, n)| f + n == 0)) {
            return empty(&body, "No failed or no-show machines in the last runs");
        }
        grouped_bars(&body, &groups)
    })
}

/// One configuration's bars: (failed, no-show) per run, oldest first.
struct Group {
    label: String,
    bars: Vec<(u64, u64)>,
}

/// The configurations with the most failed and no-show machines in their last runs, worst first.
fn worst_configurations(trends: &[ConfigurationTrend]) -> Vec<Group> {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let mut groups: Vec<Group> = trends
        .iter()
        .filter(|t| !t.runs.is_empty())
        .map(|t| Group {
            label: t.configuration.clone(),
            bars: t.runs[t.runs.len().saturating_sub(MAX_RUNS)..]
                .iter()
                .map(|r| (count(r.failed), count(r.no_show)))
                .collect(),
        })
        .collect();
    let total = |g: &Group| g.bars.iter().map(|(f, n)| f + n).sum::<u64>();
    groups.sort_by(|a, b| total(b).cmp(&total(a)).then_with(|| a.label.cmp(&b.label)));
    groups.truncate(MAX_CONFIGURATIONS);
    groups
}

fn grouped_bars(body: &Area<'_>, groups: &[Group]) -> DrawResult {
    const GAP: f64 = 0.9;
    let units: f64 = groups.iter().map(|g| g.bars.len() as f64).sum::<f64>() + GAP * (groups.len() - 1) as f64;
    let max = groups.iter().flat_map(|g| g.bars.iter().map(|(f, n)| f + n)).max().unwrap_or(1);
    let mut chart = plot(body, units, nice_max(max), "Machines")?;
    let mut stacks = Vec::new();
    let mut labels = Vec::new();
    let mut x = 0.0;
    for g in groups {
        // A label may also take most of the gaps on either side.
        labels.push((x + g.bars.len() as f64 / 2.0, g.bars.len() as f64 + GAP * 0.8, g.label.as_str()));
        for (failed, no_show) in &g.bars {
            stacks.push((x, *failed, *no_show));
            x += 1.0;
        }
        x += GAP;
    }
    chart
        .draw_series(stacks.iter().map(|(x, f, _)| Rectangle::new([(x + 0.14, 0), (x + 0.86, *f)], FAILED.filled())))?;
    chart.draw_series(
        stacks.iter().map(|(x, f, n)| Rectangle::new([(x + 0.14, *f), (x + 0.86, f + n)], NO_SHOW.filled())),
    )?;
    if stacks.len() <= 36 {
        value_labels(&mut chart, stacks.iter().filter(|(_, f, n)| f + n > 0).map(|(x, f, n)| (x + 0.5, f + n)))?;
    }
    category_labels(&mut chart, labels.into_iter())?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordu64>>;

/// A plot area with a light horizontal grid, an integer y axis named `y_desc`, and no x labels
/// (categories are drawn by [`category_labels`]).
fn plot<'a, 'b>(
    body: &'a Area<'b>,
    width: f64,
    y_max: u64,
    y_desc: &str,
) -> Result<Chart<'a, 'b>, Box<dyn Error + Send + Sync>> {
    let mut chart = ChartBuilder::on(body)
        .margin_left(24)
        .margin_right(40)
        .margin_top(16)
        .x_label_area_size(64)
        .y_label_area_size(110)
        .build_cartesian_2d(0f64..width, 0u64..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .y_label_formatter(&|v| thousands(usize::try_from(*v).unwrap_or(usize::MAX)))
        .y_desc(y_desc)
        .axis_desc_style((FAMILY, 24).into_font().color(&MUTED))
        .label_style((FAMILY, 22).into_font().color(&MUTED))
        .bold_line_style(GRID.stroke_width(2))
        .light_line_style(TRANSPARENT)
        .axis_style(MUTED.stroke_width(2))
        .set_all_tick_mark_size(6)
        .draw()?;
    Ok(chart)
}

/// Numbers just above the bars' tops.
fn value_labels(chart: &mut Chart<'_, '_>, tops: impl Iterator<Item = (f64, u64)>) -> DrawResult {
    let style = (FAMILY, 22).into_font().color(&INK).pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(tops.map(|(x, v)| {
        EmptyElement::at((x, v))
            + Text::new(thousands(usize::try_from(v).unwrap_or(usize::MAX)), (0, -6), style.clone())
    }))?;
    Ok(())
}

/// Category names centred under the x axis, each cut to the width it has (`span` units).
fn category_labels<'s>(chart: &mut Chart<'_, '_>, labels: impl Iterator<Item = (f64, f64, &'s str)>) -> DrawResult {
    let style = (FAMILY, 22).into_font().color(&INK).pos(Pos::new(HPos::Center, VPos::Top));
    let (x_range, pixels) = (chart.x_range(), chart.plotting_area().dim_in_pixel().0);
    let unit_px = f64::from(pixels) / (x_range.end - x_range.start);
    chart.draw_series(labels.map(|(x, span, label)| {
        // DejaVu Sans at 22 px averages about 12 px a character.
        let fits = ((span * unit_px - 8.0) / 12.5).max(3.0) as usize;
        EmptyElement::at((x, 0)) + Text::new(shorten(label, fits), (0, 14), style.clone())
    }))?;
    Ok(())
}

/// The title (and a note under it) at the top left, a legend at the top right; returns the rest.
fn header<'a>(
    root: &Area<'a>,
    title: &str,
    note: &str,
    legend: &[(&str, RGBColor)],
) -> Result<Area<'a>, Box<dyn Error + Send + Sync>> {
    let (top, body) = root.split_vertically(if note.is_empty() { 76 } else { 104 });
    top.draw(&Text::new(title.to_owned(), (32, 24), (FAMILY, 34).into_font().color(&INK)))?;
    if !note.is_empty() {
        top.draw(&Text::new(note.to_owned(), (32, 70), (FAMILY, 22).into_font().color(&MUTED)))?;
    }
    let mut x = i32::try_from(WIDTH).unwrap_or(1200) - 40;
    for (label, color) in legend.iter().rev() {
        let style = (FAMILY, 24).into_font().color(&INK);
        let (w, _) = top.estimate_text_size(label, &style)?;
        x -= i32::try_from(w).unwrap_or(80);
        top.draw(&Text::new((*label).to_owned(), (x, 28), style))?;
        top.draw(&Rectangle::new([(x - 30, 28), (x - 10, 48)], color.filled()))?;
        x -= 60;
    }
    Ok(body)
}

/// A framed message where the chart would be.
fn empty(body: &Area<'_>, message: &str) -> DrawResult {
    let (w, h) = body.dim_in_pixel();
    let (w, h) = (i32::try_from(w).unwrap_or(0), i32::try_from(h).unwrap_or(0));
    body.draw(&Rectangle::new([(32, 8), (w - 40, h - 40)], GRID.stroke_width(2)))?;
    let style = (FAMILY, 30).into_font().color(&MUTED).pos(Pos::new(HPos::Center, VPos::Center));
    body.draw(&Text::new(message.to_owned(), ((w - 8) / 2, (h - 32) / 2), style))?;
    Ok(())
}

/// Draws on a white canvas and encodes it as PNG.
fn png(name: &'static str, draw: impl FnOnce(&Area<'_>) -> DrawResult) -> Result<Vec<u8>, RenderError> {
    let fail = |message: String| RenderError::Chart { name, message };
    font_registered().map_err(fail)?;
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root).and_then(|()| Ok(root.present()?)).map_err(|e| fail(e.to_string()))?;
    }
    encode(&rgb).map_err(|e| fail(e.to_string()))
}

fn encode(rgb: &[u8]) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// Registers the embedded font with plotters once per process.
fn font_registered() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        Err("the embedded font could not be read".to_owned())
    }
}

/// The classifications with pending patches, largest first, the smallest beyond
/// [`MAX_CLASSIFICATIONS`] summed as `Other`.
fn top_classifications(counts: &[ClassificationCount]) -> Vec<(String, u64)> {
    let mut bars: Vec<(String, u64)> =
        counts.iter().filter(|c| c.patches > 0).map(|c| (c.classification.clone(), c.patches)).collect();
    bars.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if bars.len() > MAX_CLASSIFICATIONS {
        let rest: u64 = bars.drain(MAX_CLASSIFICATIONS - 1..).map(|(_, n)| n).sum();
        bars.push(("Other".to_owned(), rest));
    }
    bars
}

fn classification_color(label: &str) -> RGBColor {
    match label.to_ascii_lowercase().as_str() {
        "critical" => FAILED,
        "security" => SECURITY,
        _ => OTHER,
    }
}

/// A y axis top with some headroom for the value labels, on a 1-2-5 step.
fn nice_max(max: u64) -> u64 {
    let target = max + max / 6 + 1;
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let s = step.saturating_mul(m);
            if target.div_ceil(s) <= 6 {
                return target.div_ceil(s) * s;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// `label` in at most `max` characters, cut with an ellipsis.
fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        return label.to_owned();
    }
    let mut s: String = label.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_leave_headroom_on_round_steps() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(5), 6);
        assert_eq!(nice_max(96), 120);
        assert_eq!(nice_max(164), 200);
        assert_eq!(nice_max(1_000), 1_200);
    }

    #[test]
    fn labels_are_cut_with_an_ellipsis() {
        assert_eq!(shorten("Ring2-Production-Weekly", 10), "Ring2-Pro…");
        assert_eq!(shorten("Ring0", 10), "Ring0");
    }

    #[test]
    fn many_classifications_fold_into_other() {
        let counts: Vec<ClassificationCount> =
            (0..14).map(|i| ClassificationCount { classification: format!("C{i:02}"), patches: 100 - i }).collect();
        let bars = top_classifications(&counts);
        assert_eq!(bars.len(), MAX_CLASSIFICATIONS);
        assert_eq!(bars[0], ("C00".to_owned(), 100));
        assert_eq!(bars.last(), Some(&("Other".to_owned(), (9..14).map(|i| 100 - i).sum())));
    }
}
