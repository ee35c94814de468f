//! The RustPV guest image: its main, the apps `app=NAME` selects, the
//! self-test and the hypercall benchmark, all over the `kernel` library.
//!
//! Xen enters the `platform` crate (`_start`), which calls [`kmain`]
//! (named by `platform::entry!`); `kernel::start` brings the unikernel up
//! and `kernel::exit` ends the domain with the app's outcome.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]
// On the host only the pure modules are built, and only their tests use them.
#![cfg_attr(
    all(not(target_os = "none"), not(test)),
    expect(dead_code, reason = "host builds keep only the pure modules, for their tests")
)]

extern crate alloc;

mod apps;
mod bench;
#[cfg(target_os = "none")]
mod selftest;

#[cfg(target_os = "none")]
platform::entry!(kmain);

#[cfg(target_os = "none")]
fn kmain() -> ! {
    let cmd = kernel::start();
    let app = cmd.app();
    kernel::kprintln!("running app={app}");
    kernel::exit(app, apps::run(app, &cmd))
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel runs as a Xen guest: build it with `cargo xtask build`, boot it with `cargo xtask run`");
    std::process::exit(2);
}
