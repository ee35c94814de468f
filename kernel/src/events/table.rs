//! Which handler runs for which port.

use hypercall::EvtchnPort;

/// A handler gets its port and the word it was registered with.
pub type Handler = fn(EvtchnPort, usize);

/// Why a handler could not be registered or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The port is beyond the ports this kernel handles.
    OutOfRange(EvtchnPort),
    /// The port already has a handler.
    AlreadyBound(EvtchnPort),
    /// The port has no handler.
    NotBound(EvtchnPort),
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TableError::OutOfRange(p) => write!(f, "port {p} is beyond the handler table"),
            TableError::AlreadyBound(p) => write!(f, "port {p} already has a handler"),
            TableError::NotBound(p) => write!(f, "port {p} has no handler"),
        }
    }
}

#[derive(Clone, Copy)]
struct Slot {
    handler: Handler,
    data: usize,
    delivered: u64,
}

/// A fixed table of `N` ports (no heap needed this early).
pub struct HandlerTable<const N: usize> {
    slots: [Option<Slot>; N],
    /// Events on ports nobody registered: counted, then masked by the caller.
    pub unknown: u64,
}

impl<const N: usize> HandlerTable<N> {
    pub const fn new() -> Self {
        Self { slots: [None; N], unknown: 0 }
    }

    /// Forgets every handler (a restored domain has none of the old ports).
    pub fn clear(&mut self) {
        for s in self.slots.iter_mut() {
            *s = None;
        }
    }

    fn slot(&mut self, port: EvtchnPort) -> Result<&mut Option<Slot>, TableError> {
        self.slots.get_mut(port.0 as usize).ok_or(TableError::OutOfRange(port))
    }

    pub fn register(
        &mut self,
        port: EvtchnPort,
        handler: Handler,
        data: usize,
    ) -> Result<(), TableError> {
        let slot = self.slot(port)?;
        if slot.is_some() {
            return Err(TableError::AlreadyBound(port));
        }
        *slot = Some(Slot { handler, data, delivered: 0 });
        Ok(())
    }

    /// Gives `port`'s handler another `data` (in one step: no event
    /// finds the port without a handler meanwhile).
    pub fn set_data(&mut self, port: EvtchnPort, data: usize) -> Result<(), TableError> {
        let slot = self.slot(port)?.as_mut().ok_or(TableError::NotBound(port))?;
        slot.data = data;
        Ok(())
    }

    pub fn unregister(&mut self, port: EvtchnPort) -> Result<(), TableError> {
        self.slot(port)?.take().map(drop).ok_or(TableError::NotBound(port))
    }

    /// The handler for `port`, counting the delivery; `None` counts an
    /// unknown event.
    pub fn lookup(&mut self, port: EvtchnPort) -> Option<(Handler, usize)> {
        match self.slots.get_mut(port.0 as usize).and_then(Option::as_mut) {
            Some(slot) => {
                slot.delivered += 1;
                Some((slot.handler, slot.data))
            }
            None => {
                self.unknown += 1;
                None
            }
        }
    }

    /// Ports with a handler.
    /// The ports with a handler.
    pub fn ports(&self) -> impl Iterator<Item = EvtchnPort> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| EvtchnPort(i as u32))
    }

    pub fn bound(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Events delivered to `port`'s handler so far.
    pub fn delivered(&self, port: EvtchnPort) -> u64 {
        self.slots.get(port.0 as usize).and_then(|s| s.as_ref()).map_or(0, |s| s.delivered)
    }
}

impl<const N: usize> Default for HandlerTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nop(_: EvtchnPort, _: usize) {}

    #[test]
    fn double_binding_and_unknown_ports_are_errors() {
        let mut t = HandlerTable::<8>::new();
        t.register(EvtchnPort(3), nop, 7).unwrap();
        assert_eq!(t.register(EvtchnPort(3), nop, 0), Err(TableError::AlreadyBound(EvtchnPort(3))));
        assert_eq!(t.register(EvtchnPort(8), nop, 0), Err(TableError::OutOfRange(EvtchnPort(8))));
        assert_eq!(t.unregister(EvtchnPort(4)), Err(TableError::NotBound(EvtchnPort(4))));
        assert_eq!(t.delivered(EvtchnPort(3)), 0);
        assert_eq!(t.bound(), 1);
        t.unregister(EvtchnPort(3)).unwrap();
        assert!(t.lookup(EvtchnPort(3)).is_none());
    }

    #[test]
    fn lookups_count_deliveries_and_unknown_events() {
        let mut t = HandlerTable::<8>::new();
        t.register(EvtchnPort(1), nop, 42).unwrap();
        assert_eq!(t.lookup(EvtchnPort(1)).map(|(_, d)| d), Some(42));
        assert_eq!(t.lookup(EvtchnPort(1)).map(|(_, d)| d), Some(42));
        assert!(t.lookup(EvtchnPort(2)).is_none());
        assert!(t.lookup(EvtchnPort(999)).is_none());
        assert_eq!(t.delivered(EvtchnPort(1)), 2);
        assert_eq!(t.unknown, 2);
    }
}
