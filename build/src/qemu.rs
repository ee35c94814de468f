//! QEMU: which QEMU runs (the host's, Debian 13's, or a named binary), the
//! command line that boots Xen with dom0, and a reader that delivers QEMU's
//! stdout (Xen's serial console) line by line with arrival times and
//! explicit deadlines.

use crate::cmd;
use anyhow::{bail, Result};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// Environment variable picking the QEMU: unset (the host's
/// `qemu-system-x86_64`), [`DEBIAN13`], or the path of a QEMU binary or a
/// wrapper script.
pub const QEMU_ENV: &str = "XENPV_QEMU";

/// The [`QEMU_ENV`] value that selects Debian 13's QEMU 10.0 (see
/// [`crate::qemudeb`]).
pub const DEBIAN13: &str = "debian13";

/// Which QEMU boots the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QemuChoice {
    /// `qemu-system-x86_64` from `$PATH` (Debian 12's 7.2 on this
    /// project's machines; installed by the harness if missing).
    Host,
    /// Debian 13's QEMU 10.0, fetched into the lab cache and run through
    /// Debian 13's own dynamic loader: nothing is installed.
    Debian13,
    /// A QEMU binary or a wrapper script (which gets QEMU's arguments).
    Binary(PathBuf),
}

impl QemuChoice {
    /// The choice a [`QEMU_ENV`] value names (`None` or empty: the host's).
    /// A path must name an existing file: a typo is an error, never the
    /// host's QEMU instead.
    pub fn from_env_value(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(Self::Host),
            Some(v) if v.eq_ignore_ascii_case(DEBIAN13) => Ok(Self::Debian13),
            Some(v) if std::path::Path::new(v).is_file() => Ok(Self::Binary(v.into())),
            Some(v) => Err(format!(
                "{QEMU_ENV}={v:?} is neither `{DEBIAN13}` (Debian 13's QEMU 10.0, fetched into \
                 the lab cache) nor an existing QEMU binary or wrapper script"
            )),
        }
    }

    /// The choice `$XENPV_QEMU` names (see [`Self::from_env_value`]).
    pub fn from_env() -> Result<Self, String> {
        let v = std::env::var_os(QEMU_ENV).map(|v| v.to_string_lossy().into_owned());
        Self::from_env_value(v.as_deref())
    }

    /// Whether the host's `qemu-system-x86` package is needed.
    pub fn needs_host_qemu(&self) -> bool {
        *self == Self::Host
    }
}

/// How to start a QEMU: the program, the arguments that come before the
/// machine's, and environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuProgram {
    /// What is executed (QEMU itself, a wrapper, or a dynamic loader).
    pub program: PathBuf,
    /// Arguments before the machine's (the loader's, the binary, `-L`).
    pub args: Vec<OsString>,
    /// Environment variables set for it.
    pub env: Vec<(OsString, OsString)>,
    /// For messages: `qemu-system-x86_64 (host)`, `Debian 13's QEMU 10.0`.
    pub name: String,
}

impl QemuProgram {
    /// A binary or wrapper run as it is.
    pub fn binary(path: PathBuf, name: &str) -> Self {
        Self { program: path, args: Vec::new(), env: Vec::new(), name: name.to_string() }
    }

    /// A command that starts this QEMU, before the machine's arguments.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }
}

/// The QEMU `choice` names, ready to start; Debian 13's is fetched (or
/// reused from `cache`) first.
pub fn resolve(
    choice: &QemuChoice,
    cache: &std::path::Path,
    log: &mut dyn FnMut(&str),
) -> Result<QemuProgram> {
    match choice {
        QemuChoice::Host => {
            Ok(QemuProgram::binary(cmd::require_tool(QEMU)?, &format!("{QEMU} from $PATH")))
        }
        QemuChoice::Binary(p) => {
            if !p.is_file() {
                bail!("{QEMU_ENV}={} does not exist", p.display());
            }
            Ok(QemuProgram::binary(p.clone(), &p.display().to_string()))
        }
        QemuChoice::Debian13 => crate::qemudeb::fetch(cache, log),
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
    /// Which QEMU.
    pub qemu: QemuProgram,
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
        let mut c = self.qemu.command();
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

/// `c`, run through util-linux's `setpriv --pdeathsig KILL`: the kernel
/// kills the child when the thread that started it ends, so a test process
/// killed from outside (a CI timeout, `kill -9`, Ctrl-C) does not leave its
/// Xen machine running on the cores the next run needs. `setpriv` execs the
/// program, so the child's pid and command line stay QEMU's. The thread is
/// the right owner: [`Running`] lives on the thread that starts it (the
/// lab's boot loop), and its `Drop` kills QEMU first anyway. Without
/// `setpriv` (util-linux is essential on Debian, so only on other hosts) `c`
/// is returned as it is: the same run, without the safety net.
pub fn dies_with_this_thread(c: Command) -> Command {
    match cmd::which("setpriv") {
        Some(setpriv) => wrapped_in(&setpriv, c),
        None => c,
    }
}

fn wrapped_in(setpriv: &std::path::Path, c: Command) -> Command {
    let mut w = Command::new(setpriv);
    w.args(["--pdeathsig", "KILL", "--"]).arg(c.get_program()).args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => w.env(k, v),
            None => w.env_remove(k),
        };
    }
    if let Some(d) = c.get_current_dir() {
        w.current_dir(d);
    }
    w
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
        let mut c = dies_with_this_thread(cfg.command()?);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child =
            c.spawn().map_err(|e| anyhow::anyhow!("cannot start {}: {e}", cfg.qemu.name))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_from_env_value() {
        assert_eq!(QemuChoice::from_env_value(None), Ok(QemuChoice::Host));
        assert_eq!(QemuChoice::from_env_value(Some(" ")), Ok(QemuChoice::Host));
        assert_eq!(QemuChoice::from_env_value(Some("debian13")), Ok(QemuChoice::Debian13));
        assert_eq!(QemuChoice::from_env_value(Some("Debian13 ")), Ok(QemuChoice::Debian13));
        let me = std::env::current_exe().unwrap();
        assert_eq!(QemuChoice::from_env_value(me.to_str()), Ok(QemuChoice::Binary(me.clone())));
        let err = QemuChoice::from_env_value(Some("debian-13")).unwrap_err();
        assert!(err.contains("XENPV_QEMU=\"debian-13\"") && err.contains("debian13"), "{err}");
        assert!(QemuChoice::Host.needs_host_qemu());
        assert!(!QemuChoice::Debian13.needs_host_qemu());
        assert!(!QemuChoice::Binary(me).needs_host_qemu());
    }

    #[test]
    fn the_wrapper_keeps_the_command() {
        let mut c = Command::new("/t/qemu");
        c.args(["-m", "896"]).env("A", "1").env_remove("B").current_dir("/t");
        let w = wrapped_in(std::path::Path::new("/usr/bin/setpriv"), c);
        assert_eq!(w.get_program(), "/usr/bin/setpriv");
        let args: Vec<_> = w.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["--pdeathsig", "KILL", "--", "/t/qemu", "-m", "896"]);
        let envs: Vec<_> = w.get_envs().collect();
        assert_eq!(
            envs,
            [(std::ffi::OsStr::new("A"), Some(std::ffi::OsStr::new("1"))), ("B".as_ref(), None)]
        );
        assert_eq!(w.get_current_dir(), Some(std::path::Path::new("/t")));
    }

    /// The safety net itself: a child started through the wrapper by a
    /// thread that then ends, without killing it, is killed by the kernel.
    #[test]
    fn a_child_dies_with_the_thread_that_started_it() {
        use std::os::unix::process::ExitStatusExt;
        if cmd::which("setpriv").is_none() {
            panic!("this host has no setpriv (util-linux): the lab cannot tie QEMU to its test");
        }
        let mut child = std::thread::spawn(|| {
            let mut c = Command::new("sleep");
            c.arg("60");
            let child = dies_with_this_thread(c).spawn().expect("spawn sleep through setpriv");
            // setpriv arms the signal, then execs: a thread that ended
            // before that would have no child to signal (QEMU's thread
            // lives for the whole boot). Wait for the exec.
            let comm = format!("/proc/{}/comm", child.id());
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::fs::read_to_string(&comm).map_or(true, |c| c.trim() != "sleep") {
                assert!(Instant::now() < deadline, "setpriv did not exec sleep in 10 s");
                std::thread::sleep(Duration::from_millis(5));
            }
            child
        })
        .join()
        .expect("the starting thread");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child outlived the thread that started it by 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }

    #[test]
    fn the_program_comes_before_the_machine() {
        let q = QemuProgram {
            program: "/t/ld.so".into(),
            args: vec!["--library-path".into(), "/t/lib".into(), "/t/qemu".into()],
            env: vec![("QEMU_MODULE_DIR".into(), "/t/mod".into())],
            name: "test".into(),
        };
        let cfg = QemuConfig {
            xen: "/x/xen.elf".into(),
            xen_cmdline: "console=com1".into(),
            dom0_kernel: "/x/vmlinuz".into(),
            dom0_cmdline: "console=hvc0".into(),
            initrd: "/x/initrd".into(),
            memory_mib: 896,
            smp: 2,
            kvm: false,
            cpu: Some("max".into()),
            qemu: q,
        };
        let c = cfg.command().unwrap();
        assert_eq!(c.get_program(), "/t/ld.so");
        let args: Vec<_> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args[..5], ["--library-path", "/t/lib", "/t/qemu", "-machine", "q35,accel=tcg"]);
        let envs: Vec<_> = c.get_envs().collect();
        assert_eq!(
            envs,
            [(std::ffi::OsStr::new("QEMU_MODULE_DIR"), Some(std::ffi::OsStr::new("/t/mod")))]
        );
    }
}
