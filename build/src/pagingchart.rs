//! The paging benchmark's chart: one group of horizontal bars per row of
//! the table (null hypercall, event round trip, PTE update, fault, CR3,
//! walks), one bar per column (our guest as PV, PVH and PVH with shadow
//! paging; Linux as PV and PVH), median ns on a log scale with the
//! min-max across runs as a whisker. A refused or absent column has no bar.

use crate::chart::register_font;
use crate::pagingbench::{figure, Paging, ROWS};
use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use std::path::Path;

const COLORS: [RGBColor; 5] = [
    RGBColor(0xd3, 0x5f, 0x1f),
    RGBColor(0xe8, 0xa2, 0x3c),
    RGBColor(0x8a, 0x5a, 0x9e),
    RGBColor(0x2a, 0x6f, 0xb8),
    RGBColor(0x5f, 0xa8, 0xd8),
];

/// The rows the chart draws (the raw PV hypercall rows are in the table).
const DRAWN: &[&str] = &[
    "null_hypercall",
    "event_roundtrip",
    "pte_update",
    "mmu_update_512",
    "page_fault",
    "cr3_reload",
    "walk_4k",
    "walk_2m",
];

/// Draws the chart into `path` (PNG).
pub fn draw(p: &Paging, path: &Path) -> Result<()> {
    if p.columns.iter().all(|c| c.runs.is_empty()) {
        bail!("nothing measured");
    }
    register_font()?;
    let rows: Vec<_> = ROWS.iter().filter(|r| DRAWN.contains(&r.key)).collect();
    let k = p.columns.len() as f64;
    let (w, h) = (1100u32, 110 + rows.len() as u32 * (16 * p.columns.len() as u32 + 22));
    {
        let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let max = rows
            .iter()
            .flat_map(|r| p.columns.iter().filter_map(move |c| figure(c, r)))
            .map(|a| a.ns.max)
            .max()
            .unwrap_or(1000)
            .max(10) as f64;
        let n = rows.len() as f64;
        let labels: Vec<&str> = rows.iter().map(|r| r.label).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Paging, Xen {} ({}): our guest and Linux, PV and PVH", p.xen, p.cpu),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(280)
            .build_cartesian_2d((1f64..max * 2.0).log_scale(), 0f64..n)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows.len() * 2 + 1)
            .y_label_formatter(&|y| {
                let i = (n - y - 0.5).round();
                if (n - y - 0.5 - i).abs() < 0.01 && i >= 0.0 && (i as usize) < labels.len() {
                    labels[i as usize].to_string()
                } else {
                    String::new()
                }
            })
            .x_label_formatter(&|x| crate::bench::fmt_ns(*x as u64))
            .x_desc("median ns (log scale; whisker: min-max across runs)")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (i, row) in rows.iter().enumerate() {
            let top = n - i as f64;
            for (j, c) in p.columns.iter().enumerate() {
                let Some(a) = figure(c, row) else { continue };
                let y0 = top - 0.08 - 0.84 * (j as f64 + 1.0) / k;
                let y1 = y0 + 0.84 / k * 0.85;
                let v = (a.ns.median as f64).max(1.0);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(1.0, y0), (v, y1)],
                        COLORS[j % COLORS.len()].filled(),
                    )))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let ym = (y0 + y1) / 2.0;
                let (lo, hi) = ((a.ns.min as f64).max(1.0), (a.ns.max as f64).max(1.0));
                chart
                    .draw_series(std::iter::once(PathElement::new(vec![(lo, ym), (hi, ym)], BLACK)))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        for (j, c) in p.columns.iter().enumerate() {
            let color = COLORS[j % COLORS.len()];
            let label = match &c.refused {
                Some(_) => format!("{} (refused by this Xen)", c.column.label),
                None => c.column.label.to_string(),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(1.0, -1.0), (1.0, -1.0)],
                    color.filled(),
                )))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            // The walks' bars are short: the lower right stays clear.
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    std::fs::metadata(path).with_context(|| format!("{} not written", path.display()))?;
    Ok(())
}
