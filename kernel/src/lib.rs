//! RustPV's unikernel library: everything a guest app stands on above the
//! platform (memory services, event channels, timers, the console,
//! XenStore/xenbus glue, the toolstack's requests, grants, the network and
//! block services, the balloon). An app is a crate that depends on this
//! one: its main calls [`start`], runs, and ends with [`exit`]; see the
//! `guest` crate (the image: apps, self-test, benchmark). Nothing here
//! imports an app.
//!
//! Xen enters the `platform` crate (its `_start`); the platform maps what
//! Xen shares and calls the image's main (named by `platform::entry!`).
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

// The platform's pure modules, under the names the kernel has always used.
#[cfg(target_os = "none")]
pub use platform::{fmtbuf, memory, time};

pub mod app;
pub mod balloon;
pub mod cmdline;
pub mod console;
pub mod events;
pub mod fault;
pub mod smp;
pub mod source_stream;
pub mod timeline;
pub mod timer_queue;
pub mod trace;
pub mod xenbus;

#[cfg(target_os = "none")]
pub mod banner;
#[cfg(target_os = "none")]
pub mod blk;
#[cfg(target_os = "none")]
pub mod devices;
#[cfg(target_os = "none")]
pub mod diag;
#[cfg(target_os = "none")]
pub mod driver_env;
#[cfg(target_os = "none")]
pub mod grants;
#[cfg(target_os = "none")]
pub mod net;
#[cfg(target_os = "none")]
pub mod suspend;
#[cfg(target_os = "none")]
pub mod timer;
#[cfg(target_os = "none")]
pub mod toolstack;

/// Brings the unikernel up: registers the kernel's hooks with the
/// platform, starts the console and memory, prints the banner, then event
/// channels, the timer, grant tables and XenStore. Returns the command
/// line. The image's main calls it first.
#[cfg(target_os = "none")]
pub fn start() -> cmdline::Cmdline<'static> {
    platform::set_hooks(platform::Hooks {
        emergency_print: console::emergency_print,
        before_shutdown: || {
            trace::summary();
            let _ = console::flush();
        },
        fault: fault::handle,
        upcall: events::handle_upcall,
    });
    match platform::console_page() {
        Some((ring, port)) => console::init_ring(ring, port),
        None => console::init_hypervisor(),
    }
    timeline::mark("console");
    platform::stack_depth::paint();
    // Before memory: `trace=hypercalls` shows the page tables being built.
    trace::init(&cmdline::Cmdline::new(platform::cmdline()));
    let memory = platform::init_memory();
    kprintln!("memory: {memory}");
    timeline::mark("memory");

    let cmd = cmdline::Cmdline::new(platform::cmdline());
    let level = cmd.get_or_default("loglevel").and_then(console::logger::parse_level);
    console::logger::init(level.unwrap_or(log::LevelFilter::Info));
    banner::print(&cmd);
    timeline::mark("banner");
    // Every setting is checked before anything reads one and before any
    // device is touched: a bad one stops the boot with one line naming it.
    if let Err(e) = cmd.validate() {
        kprintln!("bad command line: {e}; stopping the boot");
        platform::shutdown(hypercall::abi::sched::ShutdownReason::Crash);
    }

    start_events(&cmd);
    timeline::mark("events");
    grants::init();
    timeline::mark("grants");
    match xenbus::init() {
        Ok(Some(id)) => kprintln!("domain: id {}, name {:?}, vm {}", id.domid, id.name, id.vm),
        Ok(None) => kprintln!("domain: initial domain, no XenStore"),
        Err(e) => log::error!("xenstore: cannot connect: {e:?}"),
    }
    balloon::size_for_static_max();
    timeline::mark("xenstore");
    timeline::print();
    diag::footprint();

    cmd
}

/// Ends the domain after an app: powered off if it finished, crashed if
/// it failed.
#[cfg(target_os = "none")]
pub fn exit<E: core::fmt::Display>(app: &str, result: Result<(), E>) -> ! {
    use hypercall::abi::sched::ShutdownReason;
    match result {
        Ok(()) => {
            kprintln!("app {app} finished; powering off");
            platform::shutdown(ShutdownReason::Poweroff)
        }
        Err(e) => {
            kprintln!("app {app} failed: {e}; crashing the domain");
            platform::shutdown(ShutdownReason::Crash)
        }
    }
}

/// Entry points, the event channel ABI, the timer, then upcalls on.
#[cfg(target_os = "none")]
fn start_events(cmd: &cmdline::Cmdline<'_>) {
    use events::Abi;
    use hypercall::abi::sched::ShutdownReason;

    if let Err(e) = platform::install_entry_points() {
        kprintln!("cannot install trap table and callbacks: {e}");
        platform::shutdown(ShutdownReason::Crash);
    }
    // Validated at boot: every word cmdline accepts is an ABI.
    let want = Abi::parse(cmd.choice("evtchn")).unwrap_or(Abi::Fifo);
    match events::init(want) {
        (abi, None) => log::info!("event channels: {} ABI", abi.name()),
        (abi, Some(e)) => {
            log::warn!("event channels: FIFO refused by Xen ({e}); using {}", abi.name())
        }
    }
    if let Some(port) = console::port() {
        // The console waits on its port with SCHEDOP_poll, which sees a
        // masked port's events too; masked, xenconsoled's "I read your
        // output" notifications never wake a blocked guest. The handler
        // only says the port is expected.
        trace::label(port, "console");
        if let Err(e) = events::register(port, |_, _| {}, 0) {
            log::warn!("console port {port}: {e}");
        }
        events::mask(port);
    }
    if let Err(e) = timer::init() {
        kprintln!("cannot bind the timer VIRQ: {e}");
        platform::shutdown(ShutdownReason::Crash);
    }
    if let Err(e) =
        events::bind_virq(hypercall::abi::event_channel::virq::DEBUG, diag::on_debug_virq, 0)
    {
        log::warn!("cannot bind the debug VIRQ: {e}");
    }
    events::enable_upcalls();
}
