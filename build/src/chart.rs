//! The hypercall benchmark's chart: one panel per CPU model, a pair of
//! horizontal bars per measurement (Rust guest, Linux PV DomU), median ns
//! on a log scale with the min-max across runs as a whisker.

use crate::bench::{across, Across, CpuResult, EXPECTED};
use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

/// The font plotters draws text with (Debian's `fonts-dejavu-core`).
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers [`FONT`] with plotters (once).
pub fn register_font() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(FONT).map_err(|e| {
            format!("cannot read {FONT} ({e}): `apt-get install fonts-dejavu-core`")
        })?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{FONT} is not a usable font"))
    })
    .clone()
    .map_err(|e| anyhow::anyhow!(e))
}

const RUST: RGBColor = RGBColor(0xd3, 0x5f, 0x1f);
const LINUX: RGBColor = RGBColor(0x2a, 0x6f, 0xb8);

/// Draws the chart into `path` (PNG).
pub fn draw(results: &[CpuResult], path: &Path) -> Result<()> {
    if results.iter().all(|r| r.ours.is_empty() && r.linux.is_empty()) {
        bail!("nothing measured");
    }
    register_font()?;
    let rows: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|n| *n != "tsc_timer_pair" && *n != "function_call")
        .collect();
    let panel_w = 820u32;
    let h = 90 + rows.len() as u32 * 46;
    let w = panel_w * results.len() as u32;
    {
        let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let panels = root.split_evenly((1, results.len()));
        for (r, area) in results.iter().zip(panels.iter()) {
            panel(r, &rows, area).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    std::fs::metadata(path).with_context(|| format!("{} not written", path.display()))?;
    Ok(())
}

fn panel(
    r: &CpuResult,
    rows: &[&str],
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let vals: Vec<(Option<Across>, Option<Across>)> =
        rows.iter().map(|n| (across(&r.ours, n), across(&r.linux, n))).collect();
    let max = vals
        .iter()
        .flat_map(|(a, b)| [a.map(|x| x.ns.max), b.map(|x| x.ns.max)])
        .flatten()
        .max()
        .unwrap_or(1000)
        .max(10) as f64;
    let xpti = match r.xpti_domu {
        Some(true) => "XPTI on",
        Some(false) => "XPTI off",
        None => "XPTI ?",
    };
    let title = format!("{}: {} ({xpti}), Xen {}", r.key, r.cpu, r.xen);
    let n = rows.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(260)
        .build_cartesian_2d((1f64..max * 2.0).log_scale(), 0f64..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len() * 2 + 1)
        .y_label_formatter(&|y| {
            let i = (n - y - 0.5).round();
            if (n - y - 0.5 - i).abs() < 0.01 && i >= 0.0 && (i as usize) < rows.len() {
                rows[i as usize].to_string()
            } else {
                String::new()
            }
        })
        .x_label_formatter(&|x| {
            let v = *x;
            if v >= 1e6 {
                format!("{:.0}ms", v / 1e6)
            } else if v >= 1e3 {
                format!("{:.0}us", v / 1e3)
            } else {
                format!("{v:.0}ns")
            }
        })
        .x_desc("median ns per operation (log scale; whisker: min-max across runs)")
        .label_style(("sans-serif", 13))
        .draw()?;
    for (i, (ours, linux)) in vals.iter().enumerate() {
        let top = n - i as f64;
        for (k, (a, color)) in [(ours, RUST), (linux, LINUX)].into_iter().enumerate() {
            let Some(a) = a else { continue };
            let y0 = top - 0.12 - 0.38 * (k as f64 + 1.0);
            let y1 = y0 + 0.34;
            let v = (a.ns.median as f64).max(1.0);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(1.0, y0), (v, y1)],
                color.filled(),
            )))?;
            let ym = (y0 + y1) / 2.0;
            let (lo, hi) = ((a.ns.min as f64).max(1.0), (a.ns.max as f64).max(1.0));
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(lo, ym), (hi, ym)], BLACK)))?;
        }
    }
    chart
        .draw_series(std::iter::once(Rectangle::new([(1.0, -1.0), (1.0, -1.0)], RUST.filled())))?
        .label("Rust guest (app=bench)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], RUST.filled()));
    chart
        .draw_series(std::iter::once(Rectangle::new([(1.0, -1.0), (1.0, -1.0)], LINUX.filled())))?
        .label("Linux PV DomU (kernel module)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], LINUX.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{parse_figure, SuiteRun};

    #[test]
    fn draws_a_png() {
        if !Path::new(FONT).is_file() {
            return; // fonts-dejavu-core not installed: the chart is optional
        }
        let fig = |name: &str, ns: u64| {
            parse_figure(&format!(
                "BENCH name={name} iters=1 per=1 cycles=1/{ns}/1/1 ns=1/{ns}/{ns}/{ns}"
            ))
            .unwrap()
        };
        let run = |k: u64| SuiteRun {
            figures: EXPECTED.iter().map(|n| fig(n, 100 * k + n.len() as u64)).collect(),
            ..SuiteRun::default()
        };
        let r = CpuResult {
            key: "amd".into(),
            cpu: "Test CPU".into(),
            ours: vec![run(1), run(2)],
            linux: vec![run(3)],
            ..CpuResult::default()
        };
        let dir = std::env::temp_dir().join(format!("xtask-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.png");
        draw(&[r], &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
