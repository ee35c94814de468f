//! Reports: every benchmark's files (`target/xen/bench/NAME.txt`, the
//! table a person reads, and `NAME.json`, the same figures for programs,
//! written from `serde` types), the table writer they share, the median
//! and spread they report, and the phase timings `run` prints.
//!
//! A new benchmark builds a [`Table`] for its text, a `#[derive(Serialize)]`
//! value for its JSON, and hands both to [`write`].

use crate::scenario::BootReport;
use anyhow::{Context, Result};
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes `dir/NAME.txt` (`text`) and `dir/NAME.json` (`json`, pretty
/// printed), and says where; returns the JSON's path.
pub fn write<T: Serialize>(dir: &Path, name: &str, text: &str, json: &T) -> Result<PathBuf> {
    crate::cmd::mkdir(dir)?;
    let txt = dir.join(format!("{name}.txt"));
    std::fs::write(&txt, text).with_context(|| format!("cannot write {}", txt.display()))?;
    let path = dir.join(format!("{name}.json"));
    let mut body = serde_json::to_string_pretty(json).context("cannot serialise the report")?;
    body.push('\n');
    std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))?;
    println!("JSON:  {}", path.display());
    Ok(path)
}

/// `x` rounded to `decimals` places: what a JSON report carries of a
/// measured ratio or rate (the text shows fewer).
pub fn round(x: f64, decimals: i32) -> f64 {
    let k = 10f64.powi(decimals);
    (x * k).round() / k
}

/// `x` with `decimals` places, or `-` when there is none.
pub fn cell(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{x:.decimals$}"))
}

/// The host's 1-minute load average over a boot (`/proc/loadavg`, sampled
/// every 5 s): what every benchmark prints beside its figures, since on a
/// shared machine QEMU's share of the CPU moves them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Load {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub samples: usize,
}

impl Load {
    /// Of `v` (`None` if empty).
    pub fn of(v: &[f64]) -> Option<Load> {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        Some(Load {
            min: *s.first()?,
            median: s[(s.len() - 1) / 2],
            max: s[s.len() - 1],
            samples: s.len(),
        })
    }
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} median [{:.1}-{:.1}]", self.median, self.min, self.max)
    }
}

/// The 1-minute load average now.
pub fn load_now() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Samples [`load_now`] every 5 s on a thread of its own until
/// [`finish`](Self::finish).
pub struct LoadSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    samples: std::sync::Arc<std::sync::Mutex<Vec<f64>>>,
    thread: std::thread::JoinHandle<()>,
}

impl LoadSampler {
    /// Starts sampling: the first sample now, on the caller's thread (so
    /// even a short boot has one), then every 5 s.
    pub fn start() -> LoadSampler {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let samples = std::sync::Arc::new(std::sync::Mutex::new(
            load_now().into_iter().collect::<Vec<f64>>(),
        ));
        let (s, w) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            let mut last = std::time::Instant::now();
            while !s.load(Ordering::Relaxed) {
                if last.elapsed() >= Duration::from_secs(5) {
                    if let (Some(l), Ok(mut w)) = (load_now(), w.lock()) {
                        w.push(l);
                    }
                    last = std::time::Instant::now();
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        LoadSampler { stop, samples, thread }
    }

    /// Stops sampling; the spread of the samples.
    pub fn finish(self) -> Option<Load> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.thread.join();
        self.samples.lock().ok().and_then(|v| Load::of(&v))
    }
}

/// The median of a set of values and its spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spread {
    /// Median (nearest rank, lower middle for an even count).
    pub median: u64,
    /// Smallest.
    pub min: u64,
    /// Largest.
    pub max: u64,
}

impl Spread {
    /// Of `v` (`None` if empty).
    pub fn of(v: &[u64]) -> Option<Spread> {
        let mut s = v.to_vec();
        s.sort_unstable();
        Some(Spread { median: *s.get((s.len().max(1) - 1) / 2)?, min: s[0], max: s[s.len() - 1] })
    }
}

/// How a [`Table`] is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Columns separated by a space, or ` | ` where [`Table::bar`] asks.
    Plain,
    /// A Markdown table (`| a | b |` and a rule under the header).
    Markdown,
}

#[derive(Debug, Clone)]
struct Column {
    title: String,
    right: bool,
    width: usize,
    bar_before: bool,
}

/// A text table: columns at least as wide as asked (wider if a cell is),
/// left- or right-aligned.
#[derive(Debug, Clone)]
pub struct Table {
    style: Style,
    cols: Vec<Column>,
    rows: Vec<Vec<String>>,
    bar_next: bool,
}

impl Table {
    pub fn new(style: Style) -> Self {
        Table { style, cols: Vec::new(), rows: Vec::new(), bar_next: false }
    }

    fn col(mut self, title: &str, width: usize, right: bool) -> Self {
        let bar_before = std::mem::take(&mut self.bar_next);
        self.cols.push(Column { title: title.into(), right, width, bar_before });
        self
    }

    /// A left-aligned column.
    pub fn left(self, title: &str, width: usize) -> Self {
        self.col(title, width, false)
    }

    /// A right-aligned column.
    pub fn right(self, title: &str, width: usize) -> Self {
        self.col(title, width, true)
    }

    /// ` | ` before the next column ([`Style::Plain`]; Markdown has it
    /// everywhere).
    pub fn bar(mut self) -> Self {
        self.bar_next = true;
        self
    }

    /// A row, one cell per column.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let r: Vec<String> = cells.into_iter().map(Into::into).collect();
        assert_eq!(
            r.len(),
            self.cols.len(),
            "a row of {} cells in a table of {}",
            r.len(),
            self.cols.len()
        );
        self.rows.push(r);
    }

    /// The table, header first, one line per row.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = self
            .cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let cells = self.rows.iter().map(|r| r[i].chars().count());
                cells.chain([c.width, c.title.chars().count()]).max().unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut s = String::new();
            for (i, (c, text)) in self.cols.iter().zip(cells).enumerate() {
                let w = widths[i];
                match (self.style, i) {
                    (Style::Markdown, 0) => s.push_str("| "),
                    (Style::Markdown, _) => s.push_str(" | "),
                    (Style::Plain, 0) => {}
                    (Style::Plain, _) => s.push_str(if c.bar_before { " | " } else { " " }),
                }
                let _ = if c.right { write!(s, "{text:>w$}") } else { write!(s, "{text:<w$}") };
            }
            if self.style == Style::Markdown {
                s.push_str(" |");
            }
            s.trim_end().to_string()
        };
        let mut out = line(self.cols.iter().map(|c| c.title.as_str()).collect());
        out.push('\n');
        if self.style == Style::Markdown {
            out.push('|');
            for w in &widths {
                out.push_str(&"-".repeat(w + 2));
                out.push('|');
            }
            out.push('\n');
        }
        for r in &self.rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
            out.push('\n');
        }
        out
    }
}

/// Named phase durations in order.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    /// (phase, duration)
    pub phases: Vec<(String, Duration)>,
}

impl Timings {
    /// Adds a phase.
    pub fn add(&mut self, name: &str, d: Duration) {
        self.phases.push((name.to_string(), d));
    }

    /// Adds the phases of a boot: initramfs, boot to dom0 ready, and for
    /// each guest its `xl create` and run time.
    pub fn add_boot(&mut self, r: &BootReport) {
        self.add("initramfs", r.initramfs_time);
        if let Some(t) = r.dom0_ready_at {
            self.add("QEMU+Xen+dom0 boot to dom0 ready", t);
        }
        for g in &r.runs {
            if let Some(t) = g.create_time() {
                self.add(&format!("xl create {}", g.name), t);
            }
            if let Some(t) = g.run_time() {
                self.add(&format!("guest {} run until {}", g.name, g.result), t);
            }
        }
        self.add("QEMU total", r.qemu_time);
    }

    /// A table, one phase a line.
    pub fn table(&self, total: Duration) -> String {
        let w = self.phases.iter().map(|(n, _)| n.len()).max().unwrap_or(5).max(5);
        let mut s = String::new();
        for (n, d) in &self.phases {
            let _ = writeln!(s, "  {n:<w$}  {:>7.1}s", d.as_secs_f64());
        }
        let _ = writeln!(s, "  {:<w$}  {:>7.1}s", "total", total.as_secs_f64());
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn load_spread() {
        let l = super::Load::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((l.min, l.median, l.max, l.samples), (1.0, 2.0, 3.0, 3));
        assert_eq!(l.to_string(), "2.0 median [1.0-3.0]");
        assert!(super::Load::of(&[]).is_none());
        assert!(super::LoadSampler::start().finish().is_some_and(|l| l.samples >= 1));
    }

    use super::*;

    #[test]
    fn tables_align_grow_and_draw_bars_and_rules() {
        let mut t = Table::new(Style::Plain).left("test", 6).right("ours", 6).bar().right("x", 3);
        t.row(["seq", "1.5", "2"]);
        t.row(["a-long-name", "-", "300"]);
        let s = t.render();
        assert_eq!(
            s,
            "test          ours |   x\nseq            1.5 |   2\na-long-name      - | 300\n"
        );
        let mut m = Table::new(Style::Markdown).left("phase", 5).right("ms", 4);
        m.row(["boot", "12"]);
        assert_eq!(m.render(), "| phase |   ms |\n|-------|------|\n| boot  |   12 |\n");
    }

    #[test]
    #[should_panic(expected = "a row of 1 cells in a table of 2")]
    fn a_short_row_is_a_bug() {
        Table::new(Style::Plain).left("a", 1).left("b", 1).row(["x"]);
    }

    #[test]
    fn reports_are_written_as_text_and_json() {
        #[derive(Serialize)]
        struct R {
            ratio: f64,
            spread: Option<Spread>,
        }
        let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
        let r = R { ratio: round(2.0 / 3.0, 3), spread: Spread::of(&[5, 1, 3]) };
        let p = write(&dir, "t", "table\n", &r).unwrap();
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(j["ratio"], 0.667);
        assert_eq!(j["spread"]["median"], 3);
        assert_eq!(std::fs::read_to_string(dir.join("t.txt")).unwrap(), "table\n");
        assert_eq!((cell(Some(1.234), 1), cell(None, 2)), ("1.2".to_string(), "-".to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn table_lists_phases() {
        let mut t = Timings::default();
        t.add("fetch", Duration::from_millis(1500));
        let s = t.table(Duration::from_secs(2));
        assert!(s.contains("fetch") && s.contains("1.5s") && s.contains("total"));
    }
}
