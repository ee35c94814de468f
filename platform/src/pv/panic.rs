//! A panic prints where and why, then ends the domain as crashed.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};
use hypercall::abi::sched::ShutdownReason;

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::SeqCst) {
        // A panic while reporting a panic: say so as simply as possible.
        let _ = hypercall::ops::console_io_write(b"double panic\r\n");
        crate::shutdown(ShutdownReason::Crash);
    }
    match info.location() {
        Some(loc) => crate::hooks::emergency_print(format_args!(
            "panicked at {}:{}:{}: {}\n",
            loc.file(),
            loc.line(),
            loc.column(),
            info.message()
        )),
        None => crate::hooks::emergency_print(format_args!("panicked: {}\n", info.message())),
    }
    crate::shutdown(ShutdownReason::Crash)
}
