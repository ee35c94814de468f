//! What the client needs from the connection to xenstored: whole messages
//! out, whole messages in, and a clock for deadlines.
//!
//! [`crate::RingTransport`] implements it over the shared store page; a
//! test can implement it over anything.

use crate::errors::{Error, RingError};
use crate::types::Instant;
use crate::wire::Message;

pub trait Transport {
    /// Sends one encoded message (header and payload), waiting for ring
    /// space until `deadline`. On [`Error::TimedOut`] the unsent rest must
    /// stay queued and go out before anything else, so the stream stays
    /// framed.
    fn send(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<(), Error>;

    /// Receives the next whole message, waiting until `deadline` (a
    /// deadline already passed means "only what is already there"). On
    /// [`Error::TimedOut`] a partly received message must be kept for the
    /// next call.
    fn recv(&mut self, deadline: Option<Instant>) -> Result<Message, Error>;

    /// The current time, in the clock deadlines are given in.
    fn now(&self) -> Instant;

    /// Whether the connection is beyond repair (every call fails) until
    /// [`Transport::reconnect`] succeeds.
    fn is_broken(&self) -> bool {
        false
    }

    /// Resets the connection (xenstored forgets its watches and
    /// transactions), waiting for xenstored until `deadline`. Transports
    /// that cannot refuse with [`RingError::NoReconnect`].
    fn reconnect(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let _ = deadline;
        Err(Error::Ring(RingError::NoReconnect))
    }
}
