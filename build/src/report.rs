//! Phase timings, printed at the end of a run.

use crate::scenario::BootReport;
use std::fmt::Write;
use std::time::Duration;

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
    use super::*;

    #[test]
    fn table_lists_phases() {
        let mut t = Timings::default();
        t.add("fetch", Duration::from_millis(1500));
        let s = t.table(Duration::from_secs(2));
        assert!(s.contains("fetch") && s.contains("1.5s") && s.contains("total"));
    }
}
