//! Structure-aware fuzzing on stable Rust, as plain `#[test]`s.
//!
//! cargo-fuzz needs nightly; this project is stable-only. A target is a
//! closure that builds its input from an [`arbitrary::Unstructured`] (so
//! inputs have the shape the code under test expects: ring indices,
//! responses, XenStore messages, settings) and checks what must hold. Each
//! run of [`fuzz`]:
//!
//! 1. replays every file of `fuzz/regressions/<target>/` (inputs that once
//!    failed: kept for ever) and `fuzz/corpus/<target>/` (seeds);
//! 2. then feeds new inputs: mutations of the seeds and fresh random bytes,
//!    from a fixed seed, for a fixed number of inputs (the default, what
//!    `cargo test` and `cargo xtask test` run: deterministic, a second or
//!    so a target), or for `XENPV_FUZZ_SECS` seconds from a seed taken
//!    from the clock (`cargo xtask fuzz --secs N`; `XENPV_FUZZ_SEED`
//!    replays a seed).
//!
//! An input that panics is written to `target/fuzz-crashes/<target>/` and
//! the test fails naming the file: move it to `fuzz/regressions/<target>/`
//! with the fix, and it is replayed by every run after.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use arbitrary::{self, Arbitrary, Unstructured};

/// Inputs per target in the default (deterministic) mode, unless the
/// target asks for fewer ([`fuzz_n`]: targets whose one input costs a
/// whole handshake).
pub const DEFAULT_INPUTS: u64 = 1_000;

/// The workspace root (where `fuzz/` lives).
fn root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.pop();
    dir
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| std::fs::read(e.path()).ok().map(|b| (e.path(), b)))
        .collect();
    out.sort();
    out
}

/// xorshift64*: the input generator (no dependency, reproducible).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// One new input: random bytes, or a seed mutated (bytes flipped,
/// replaced, inserted, removed, or two seeds spliced).
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if seeds.is_empty() || rng.below(4) == 0 {
        let n = rng.below(512) as usize;
        return rng.bytes(n);
    }
    let mut v = seeds[rng.below(seeds.len() as u64) as usize].clone();
    for _ in 0..=rng.below(8) {
        let at = rng.below(v.len() as u64 + 1) as usize;
        match rng.below(6) {
            0 if at < v.len() => v[at] ^= 1 << rng.below(8),
            1 if at < v.len() => v[at] = rng.next_u64() as u8,
            2 => v.insert(at, rng.next_u64() as u8),
            3 if at < v.len() => {
                v.remove(at);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len() as u64) as usize];
                let from = rng.below(other.len() as u64 + 1) as usize;
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
            _ => {
                let n = rng.below(16) as usize;
                let extra = rng.bytes(n);
                v.splice(at..at, extra);
            }
        }
    }
    v
}

/// Runs `target` on one input; `Err` with the panic message if it panicked.
fn run_one(
    target: &impl Fn(&mut Unstructured<'_>) -> arbitrary::Result<()>,
    input: &[u8],
) -> Result<(), String> {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut u = Unstructured::new(input);
        // Running out of bytes or an unusable shape is not a failure.
        let _ = target(&mut u);
    }));
    r.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Fuzzes `target` (see the crate docs). Panics, naming the saved input,
/// if any input makes `target` panic.
pub fn fuzz(name: &str, target: impl Fn(&mut Unstructured<'_>) -> arbitrary::Result<()>) {
    fuzz_n(name, DEFAULT_INPUTS, target)
}

/// [`fuzz`] with `inputs` new inputs in the default mode.
pub fn fuzz_n(
    name: &str,
    inputs_default: u64,
    target: impl Fn(&mut Unstructured<'_>) -> arbitrary::Result<()>,
) {
    let fuzz_dir = root().join("fuzz");
    let regressions = files(&fuzz_dir.join("regressions").join(name));
    let seeds: Vec<Vec<u8>> =
        files(&fuzz_dir.join("corpus").join(name)).into_iter().map(|(_, b)| b).collect();
    for (path, input) in &regressions {
        if let Err(msg) = run_one(&target, input) {
            panic!("fuzz {name}: regression input {} fails again: {msg}", path.display());
        }
    }
    for input in &seeds {
        if let Err(msg) = run_one(&target, input) {
            panic!("fuzz {name}: a seed of fuzz/corpus/{name} fails: {msg}");
        }
    }
    let secs = env_u64("XENPV_FUZZ_SECS");
    let seed = env_u64("XENPV_FUZZ_SEED").unwrap_or_else(|| match secs {
        // A long run explores from a new seed each time (printed, so it
        // can be replayed); the default run is always the same.
        Some(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        None => 0x5eed_0000 ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b)),
    }) | 1;
    let mut rng = Rng(seed);
    let deadline = secs.map(|s| Instant::now() + Duration::from_secs(s));
    let mut inputs = 0u64;
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if inputs >= inputs_default => break,
            _ => {}
        }
        let input = mutate(&mut rng, &seeds);
        inputs += 1;
        if let Err(msg) = run_one(&target, &input) {
            let dir = root().join("target").join("fuzz-crashes").join(name);
            let _ = std::fs::create_dir_all(&dir);
            let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            let path = dir.join(format!("{hash:016x}"));
            let _ = std::fs::write(&path, &input);
            panic!(
                "fuzz {name}: input {inputs} (seed {seed:#x}) panicked: {msg}\n  saved as {}\n  \
                 fix it, then move the file to fuzz/regressions/{name}/ so every run replays it",
                path.display()
            );
        }
    }
    eprintln!(
        "fuzz {name}: {} regression(s), {} seed(s), {inputs} new inputs (seed {seed:#x}), no failure",
        regressions.len(),
        seeds.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_target_is_caught_and_saved() {
        let r = std::panic::catch_unwind(|| {
            fuzz("fuzzkit-selftest", |u| {
                let x = u8::arbitrary(u)?;
                assert!(x != 0x42, "found it");
                Ok(())
            })
        });
        let msg = r.unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(msg.contains("found it") && msg.contains("fuzz-crashes"), "{msg}");
    }

    #[test]
    fn a_sound_target_passes() {
        fuzz("fuzzkit-sound", |u| {
            let v = Vec::<u16>::arbitrary(u)?;
            assert!(v.len() <= u16::MAX as usize * 100);
            Ok(())
        });
    }
}
