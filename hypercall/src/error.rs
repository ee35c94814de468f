//! Xen's error codes (`xen/include/public/errno.h`) as a Rust enum.
//!
//! Hypercalls return `-errno` in `rax`; [`XenError::from_ret`] turns that into
//! a `Result` so callers never compare against bare negatives.

use core::fmt;

/// An error a hypercall returned. Values are Xen's, which match Linux's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XenError {
    /// Operation not permitted
    EPERM,
    /// No such file or directory
    ENOENT,
    /// No such process
    ESRCH,
    /// Interrupted system call
    EINTR,
    /// I/O error
    EIO,
    /// No such device or address
    ENXIO,
    /// Arg list too long
    E2BIG,
    /// Exec format error
    ENOEXEC,
    /// Bad file number
    EBADF,
    /// No child processes
    ECHILD,
    /// Try again
    EAGAIN,
    /// Out of memory
    ENOMEM,
    /// Permission denied
    EACCES,
    /// Bad address
    EFAULT,
    /// Device or resource busy
    EBUSY,
    /// File exists
    EEXIST,
    /// Cross-device link
    EXDEV,
    /// No such device
    ENODEV,
    /// Not a directory
    ENOTDIR,
    /// Is a directory
    EISDIR,
    /// Invalid argument
    EINVAL,
    /// File table overflow
    ENFILE,
    /// Too many open files
    EMFILE,
    /// No space left on device
    ENOSPC,
    /// Read-only file system
    EROFS,
    /// Too many links
    EMLINK,
    /// Math argument out of domain of func
    EDOM,
    /// Math result not representable
    ERANGE,
    /// Resource deadlock would occur
    EDEADLK,
    /// File name too long
    ENAMETOOLONG,
    /// No record locks available
    ENOLCK,
    /// Function not implemented
    ENOSYS,
    /// Directory not empty
    ENOTEMPTY,
    /// No data available
    ENODATA,
    /// Timer expired
    ETIME,
    /// Not a data message
    EBADMSG,
    /// Value too large for defined data type
    EOVERFLOW,
    /// Illegal byte sequence
    EILSEQ,
    /// Interrupted system call should be restarted
    ERESTART,
    /// Socket operation on non-socket
    ENOTSOCK,
    /// Message too large
    EMSGSIZE,
    /// Operation not supported on transport endpoint
    EOPNOTSUPP,
    /// Address already in use
    EADDRINUSE,
    /// Cannot assign requested address
    EADDRNOTAVAIL,
    /// No buffer space available
    ENOBUFS,
    /// Transport endpoint is already connected
    EISCONN,
    /// Transport endpoint is not connected
    ENOTCONN,
    /// Connection timed out
    ETIMEDOUT,
    /// Connection refused
    ECONNREFUSED,
    /// A negative return that `errno.h` does not name.
    Unknown(i64),
}

/// The result of a hypercall that returns a non-negative value on success.
pub type XenResult<T = u64> = Result<T, XenError>;

impl XenError {
    /// Maps a raw hypercall return value: negative values are errors, the
    /// rest is the successful result.
    pub fn from_ret(ret: i64) -> XenResult<u64> {
        if ret >= 0 {
            Ok(ret as u64)
        } else {
            Err(Self::from_errno(ret.unsigned_abs() as i64))
        }
    }

    /// The error for a positive errno value.
    pub fn from_errno(errno: i64) -> Self {
        use XenError::*;
        match errno {
            1 => EPERM,
            2 => ENOENT,
            3 => ESRCH,
            4 => EINTR,
            5 => EIO,
            6 => ENXIO,
            7 => E2BIG,
            8 => ENOEXEC,
            9 => EBADF,
            10 => ECHILD,
            11 => EAGAIN,
            12 => ENOMEM,
            13 => EACCES,
            14 => EFAULT,
            16 => EBUSY,
            17 => EEXIST,
            18 => EXDEV,
            19 => ENODEV,
            20 => ENOTDIR,
            21 => EISDIR,
            22 => EINVAL,
            23 => ENFILE,
            24 => EMFILE,
            28 => ENOSPC,
            30 => EROFS,
            31 => EMLINK,
            33 => EDOM,
            34 => ERANGE,
            35 => EDEADLK,
            36 => ENAMETOOLONG,
            37 => ENOLCK,
            38 => ENOSYS,
            39 => ENOTEMPTY,
            61 => ENODATA,
            62 => ETIME,
            74 => EBADMSG,
            75 => EOVERFLOW,
            84 => EILSEQ,
            85 => ERESTART,
            88 => ENOTSOCK,
            90 => EMSGSIZE,
            95 => EOPNOTSUPP,
            98 => EADDRINUSE,
            99 => EADDRNOTAVAIL,
            105 => ENOBUFS,
            106 => EISCONN,
            107 => ENOTCONN,
            110 => ETIMEDOUT,
            111 => ECONNREFUSED,
            other => Unknown(other),
        }
    }

    /// The positive errno value.
    pub fn errno(self) -> i64 {
        use XenError::*;
        match self {
            EPERM => 1,
            ENOENT => 2,
            ESRCH => 3,
            EINTR => 4,
            EIO => 5,
            ENXIO => 6,
            E2BIG => 7,
            ENOEXEC => 8,
            EBADF => 9,
            ECHILD => 10,
            EAGAIN => 11,
            ENOMEM => 12,
            EACCES => 13,
            EFAULT => 14,
            EBUSY => 16,
            EEXIST => 17,
            EXDEV => 18,
            ENODEV => 19,
            ENOTDIR => 20,
            EISDIR => 21,
            EINVAL => 22,
            ENFILE => 23,
            EMFILE => 24,
            ENOSPC => 28,
            EROFS => 30,
            EMLINK => 31,
            EDOM => 33,
            ERANGE => 34,
            EDEADLK => 35,
            ENAMETOOLONG => 36,
            ENOLCK => 37,
            ENOSYS => 38,
            ENOTEMPTY => 39,
            ENODATA => 61,
            ETIME => 62,
            EBADMSG => 74,
            EOVERFLOW => 75,
            EILSEQ => 84,
            ERESTART => 85,
            ENOTSOCK => 88,
            EMSGSIZE => 90,
            EOPNOTSUPP => 95,
            EADDRINUSE => 98,
            EADDRNOTAVAIL => 99,
            ENOBUFS => 105,
            EISCONN => 106,
            ENOTCONN => 107,
            ETIMEDOUT => 110,
            ECONNREFUSED => 111,
            Unknown(v) => v,
        }
    }

    /// What the error means, in the words of Xen's header.
    pub fn description(self) -> &'static str {
        use XenError::*;
        match self {
            EPERM => "operation not permitted",
            ENOENT => "no such file or directory",
            ESRCH => "no such process",
            EINTR => "interrupted system call",
            EIO => "i/o error",
            ENXIO => "no such device or address",
            E2BIG => "arg list too long",
            ENOEXEC => "exec format error",
            EBADF => "bad file number",
            ECHILD => "no child processes",
            EAGAIN => "try again",
            ENOMEM => "out of memory",
            EACCES => "permission denied",
            EFAULT => "bad address",
            EBUSY => "device or resource busy",
            EEXIST => "file exists",
            EXDEV => "cross-device link",
            ENODEV => "no such device",
            ENOTDIR => "not a directory",
            EISDIR => "is a directory",
            EINVAL => "invalid argument",
            ENFILE => "file table overflow",
            EMFILE => "too many open files",
            ENOSPC => "no space left on device",
            EROFS => "read-only file system",
            EMLINK => "too many links",
            EDOM => "math argument out of domain of func",
            ERANGE => "math result not representable",
            EDEADLK => "resource deadlock would occur",
            ENAMETOOLONG => "file name too long",
            ENOLCK => "no record locks available",
            ENOSYS => "function not implemented",
            ENOTEMPTY => "directory not empty",
            ENODATA => "no data available",
            ETIME => "timer expired",
            EBADMSG => "not a data message",
            EOVERFLOW => "value too large for defined data type",
            EILSEQ => "illegal byte sequence",
            ERESTART => "interrupted system call should be restarted",
            ENOTSOCK => "socket operation on non-socket",
            EMSGSIZE => "message too large",
            EOPNOTSUPP => "operation not supported on transport endpoint",
            EADDRINUSE => "address already in use",
            EADDRNOTAVAIL => "cannot assign requested address",
            ENOBUFS => "no buffer space available",
            EISCONN => "transport endpoint is already connected",
            ENOTCONN => "transport endpoint is not connected",
            ETIMEDOUT => "connection timed out",
            ECONNREFUSED => "connection refused",
            Unknown(_) => "unknown error",
        }
    }
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenError::Unknown(v) => write!(f, "Xen error {v}"),
            e => write!(f, "{:?} ({})", e, e.description()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_returns_become_errors() {
        assert_eq!(XenError::from_ret(0), Ok(0));
        assert_eq!(XenError::from_ret(5), Ok(5));
        assert_eq!(XenError::from_ret(-38), Err(XenError::ENOSYS));
        assert_eq!(XenError::from_ret(-22), Err(XenError::EINVAL));
        assert_eq!(XenError::from_ret(-1000), Err(XenError::Unknown(1000)));
    }

    #[test]
    fn errno_round_trips() {
        for v in 1..200 {
            assert_eq!(XenError::from_errno(v).errno(), v);
        }
    }
}
