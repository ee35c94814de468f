//! QEMU: the command line that boots Xen with dom0, and a reader that
//! delivers QEMU's stdout (Xen's serial console) line by line with arrival
//! times and explicit deadlines.

use crate::cmd;
use anyhow::{bail, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// Environment variable naming another QEMU binary.
pub const QEMU_ENV: &str = "XENPV_QEMU";

/// The QEMU binary to run: `$XENPV_QEMU` or `qemu-system-x86_64` from `$PATH`.
pub fn qemu_binary() -> Result<PathBuf> {
    match std::env::var_os(QEMU_ENV).filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            if p.is_file() {
                Ok(p)
            } else {
                bail!("{QEMU_ENV}={} does not exist", p.display())
            }
        }
        None => cmd::require_tool(QEMU),
    }
}

/// CPU model for TCG. Without SMAP/SMEP Xen can deliver dom0's exceptions.
/// Without XSAVE, Xen switches FPU state with FXSAVE: with XSAVE (QEMU 7.2
/// TCG), dom0's processes crash at random (glibc segfaults, several per
/// thousand process starts) whenever a DomU runs; with `-xsave`, none.
pub const TCG_CPU: &str = "max,-smap,-smep,-pku,-la57,-xsave";

/// The `-cpu` model: `$XENPV_QEMU_CPU` or [`TCG_CPU`] (under KVM without
/// `arch-capabilities`: QEMU 7.2 aborts setting MSR 0x10a otherwise).
pub fn cpu_model(kvm: bool) -> String {
    match std::env::var("XENPV_QEMU_CPU").ok().filter(|v| !v.is_empty()) {
        Some(m) => m,
        None if kvm => format!("{TCG_CPU},-arch-capabilities"),
        None => TCG_CPU.to_string(),
    }
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// The Xen ELF (`-kernel`).
    pub xen: PathBuf,
    /// Xen's command line.
    pub xen_cmdline: String,
    /// dom0's kernel (first module).
    pub dom0_kernel: PathBuf,
    /// dom0's command line.
    pub dom0_cmdline: String,
    /// dom0's initramfs (second module).
    pub initrd: PathBuf,
    /// Machine memory, MiB.
    pub memory_mib: u32,
    /// CPUs.
    pub smp: u32,
    /// Use KVM instead of TCG.
    pub kvm: bool,
    /// The `-cpu` model; `None`: [`cpu_model`].
    pub cpu: Option<String>,
}

impl QemuConfig {
    /// The full command.
    pub fn command(&self) -> Result<Command> {
        for p in [&self.xen, &self.dom0_kernel, &self.initrd] {
            let s = p.to_string_lossy();
            if s.contains([',', ' ']) {
                bail!("QEMU module paths cannot contain ',' or ' ': {s}");
            }
        }
        let mut c = Command::new(qemu_binary()?);
        let accel = if self.kvm { "kvm" } else { "tcg" };
        c.args(["-machine", &format!("q35,accel={accel}")])
            .args(["-cpu", &self.cpu.clone().unwrap_or_else(|| cpu_model(self.kvm))])
            .args(["-m", &self.memory_mib.to_string()])
            .args(["-smp", &self.smp.to_string()])
            .args(["-nographic", "-no-reboot", "-nic", "none", "-monitor", "none"])
            .args(["-serial", "stdio"])
            .arg("-kernel")
            .arg(&self.xen)
            .args(["-append", &self.xen_cmdline])
            .arg("-initrd")
            .arg(format!(
                "{} {},{}",
                self.dom0_kernel.display(),
                self.dom0_cmdline,
                self.initrd.display()
            ));
        Ok(c)
    }
}

/// What the reader produced.
#[derive(Debug)]
pub enum Next {
    /// A line (without `\n`) and when it arrived.
    Line(Instant, String),
    /// QEMU closed its stdout (it exited).
    Eof,
    /// The deadline passed first.
    Timeout,
}

/// A running QEMU.
#[derive(Debug)]
pub struct Running {
    child: Child,
    lines: Receiver<(Instant, String)>,
    stderr: Receiver<String>,
    /// When QEMU was started.
    pub started: Instant,
}

impl Running {
    /// Starts QEMU (fails with an install hint if it is missing).
    pub fn start(cfg: &QemuConfig) -> Result<Self> {
        let mut c = cfg.command()?;
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = c.spawn().map_err(|e| anyhow::anyhow!("cannot start {QEMU}: {e}"))?;
        let (tx, lines) = channel();
        let Some(out) = child.stdout.take() else {
            bail!("no stdout pipe from QEMU");
        };
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let s = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\n', '\r'])
                            .to_string();
                        if tx.send((Instant::now(), s)).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let (etx, stderr) = channel();
        if let Some(mut err) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                let _ = etx.send(s);
            });
        }
        Ok(Self { child, lines, stderr, started })
    }

    /// The next line, or EOF, or `Timeout` once `deadline` passes.
    pub fn next(&mut self, deadline: Instant) -> Next {
        let now = Instant::now();
        if now >= deadline {
            return Next::Timeout;
        }
        match self.lines.recv_timeout(deadline - now) {
            Ok((t, l)) => Next::Line(t, l),
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => Next::Eof,
        }
    }

    /// Waits up to `grace` for QEMU to exit, then kills it. Returns its exit
    /// status (if it exited by itself) and its stderr.
    pub fn finish(&mut self, grace: Duration) -> (Option<ExitStatus>, String) {
        let end = Instant::now() + grace;
        let mut status = None;
        while Instant::now() < end {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => break,
            }
        }
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let err = self.stderr.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
        (status, err)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
