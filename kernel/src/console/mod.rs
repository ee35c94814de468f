//! The guest's console: the PV console ring to `xenconsoled` for a domU,
//! Xen's own console (`console_io`) before the ring is known and for dom0.
//!
//! Lines end in `\r\n`, as on a Linux guest's `hvc0`, so `xl console` shows
//! them right on a raw terminal.

pub mod ring;

#[cfg(target_os = "none")]
mod global;
#[cfg(target_os = "none")]
pub mod logger;
#[cfg(target_os = "none")]
pub use global::{
    busy, emergency_print, flush, init_hypervisor, init_ring, port, print, println, resume,
    ring_state, stats,
};

/// Splits `bytes` into runs to send, with every `\n` becoming `\r\n`.
pub fn crlf_chunks(bytes: &[u8], mut send: impl FnMut(&[u8])) {
    let mut rest = bytes;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        if i > 0 {
            send(&rest[..i]);
        }
        send(b"\r\n");
        rest = &rest[i + 1..];
    }
    if !rest.is_empty() {
        send(rest);
    }
}

/// Prints to the console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::println(format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crlf(s: &str) -> String {
        let mut out = Vec::new();
        crlf_chunks(s.as_bytes(), |c| out.extend_from_slice(c));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn newlines_become_crlf() {
        assert_eq!(crlf("a\nb\n"), "a\r\nb\r\n");
        assert_eq!(crlf("\n\n"), "\r\n\r\n");
        assert_eq!(crlf("no newline"), "no newline");
        assert_eq!(crlf(""), "");
    }
}
