//! blkif entries as ring slots: how a request or response of
//! `hypercall::abi::blkif` sits in the 32-bit words of a slot, and how the
//! segments of an indirect request sit in an indirect page.

use crate::ring::RingEntry;
use core::sync::atomic::{AtomicU32, Ordering};
use hypercall::abi::blkif::{
    DiscardFlags, Operation, Request, RequestDiscard, RequestIndirect, Response, Segment,
    MAX_INDIRECT_PAGES_PER_REQUEST, MAX_SEGMENTS_PER_REQUEST,
};
use hypercall::abi::grant_table::GrantRef;

/// What a request slot holds: the three request layouts of `blkif.h`,
/// told apart by the operation byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingRequest {
    /// Read, write, barrier or flush with inline segments.
    Rw(Request),
    Indirect(RequestIndirect),
    Discard(RequestDiscard),
    /// A slot whose operation byte (or an indirect request's
    /// `indirect_op`) `blkif.h` does not define: only a backend's view
    /// decodes one (this frontend never writes it), and answers it as a
    /// backend does, `BLKIF_RSP_EOPNOTSUPP` echoing the byte.
    Unknown {
        operation: u8,
        id: u64,
    },
}

impl RingRequest {
    pub fn id(&self) -> u64 {
        match self {
            RingRequest::Rw(r) => r.id,
            RingRequest::Indirect(r) => r.id,
            RingRequest::Discard(r) => r.id,
            RingRequest::Unknown { id, .. } => *id,
        }
    }

    /// The operation a response to this request must echo: for an
    /// indirect request, the operation it carries (blkback answers with
    /// `indirect_op`, and Linux's blkfront checks exactly that).
    pub fn operation(&self) -> Option<Operation> {
        match self {
            RingRequest::Rw(r) => Some(r.operation),
            RingRequest::Indirect(r) => Some(r.indirect_op),
            RingRequest::Discard(_) => Some(Operation::Discard),
            RingRequest::Unknown { .. } => None,
        }
    }

    /// The operation byte a response echoes.
    pub fn operation_byte(&self) -> u8 {
        match self {
            RingRequest::Unknown { operation, .. } => *operation,
            _ => self.operation().map_or(0, Operation::as_u8),
        }
    }
}

fn put_u64(out: &mut [u32], at: usize, v: u64) {
    out[at] = v as u32;
    out[at + 1] = (v >> 32) as u32;
}

fn get_u64(w: &[u32], at: usize) -> u64 {
    u64::from(w[at]) | (u64::from(w[at + 1]) << 32)
}

/// A segment as two words (gref; first_sect | last_sect << 8).
pub fn segment_words(s: &Segment) -> [u32; 2] {
    [s.gref.0, u32::from(s.first_sect) | (u32::from(s.last_sect) << 8)]
}

pub fn segment_from_words(w: [u32; 2]) -> Segment {
    Segment { gref: GrantRef(w[0]), first_sect: w[1] as u8, last_sect: (w[1] >> 8) as u8 }
}

/// Writes segment `i` of an indirect page (seen as words).
pub fn put_indirect_segment(page: &[AtomicU32], i: usize, s: &Segment) {
    let [a, b] = segment_words(s);
    page[2 * i].store(a, Ordering::Relaxed);
    page[2 * i + 1].store(b, Ordering::Relaxed);
}

/// Reads segment `i` of an indirect page (the backend's view, for fakes).
pub fn get_indirect_segment(page: &[AtomicU32], i: usize) -> Segment {
    segment_from_words([
        page[2 * i].load(Ordering::Relaxed),
        page[2 * i + 1].load(Ordering::Relaxed),
    ])
}

impl RingEntry for RingRequest {
    const BYTES: usize = core::mem::size_of::<Request>();

    fn encode(&self, out: &mut [u32]) {
        out.fill(0);
        match self {
            RingRequest::Rw(r) => {
                out[0] = u32::from(r.operation.as_u8())
                    | (u32::from(r.nr_segments) << 8)
                    | (u32::from(r.handle) << 16);
                put_u64(out, 2, r.id);
                put_u64(out, 4, r.sector_number);
                for (i, s) in r.seg.iter().enumerate() {
                    let [a, b] = segment_words(s);
                    out[6 + 2 * i] = a;
                    out[7 + 2 * i] = b;
                }
            }
            RingRequest::Indirect(r) => {
                out[0] = u32::from(Operation::Indirect.as_u8())
                    | (u32::from(r.indirect_op.as_u8()) << 8)
                    | (u32::from(r.nr_segments) << 16);
                put_u64(out, 2, r.id);
                put_u64(out, 4, r.sector_number);
                out[6] = u32::from(r.handle);
                for (i, g) in r.indirect_grefs.iter().enumerate() {
                    out[7 + i] = g.0;
                }
            }
            RingRequest::Discard(r) => {
                out[0] = u32::from(Operation::Discard.as_u8())
                    | (u32::from(r.flag.bits()) << 8)
                    | (u32::from(r.handle) << 16);
                put_u64(out, 2, r.id);
                put_u64(out, 4, r.sector_number);
                put_u64(out, 6, r.nr_sectors);
            }
            RingRequest::Unknown { operation, id } => {
                out[0] = u32::from(*operation);
                put_u64(out, 2, *id);
            }
        }
    }

    fn decode(w: &[u32]) -> Self {
        let byte = w[0] as u8;
        let unknown = RingRequest::Unknown { operation: byte, id: get_u64(w, 2) };
        let Some(op) = Operation::from_u8(byte) else { return unknown };
        match op {
            Operation::Indirect => {
                let mut indirect_grefs = [GrantRef(0); MAX_INDIRECT_PAGES_PER_REQUEST];
                for (i, g) in indirect_grefs.iter_mut().enumerate() {
                    *g = GrantRef(w[7 + i]);
                }
                let Some(indirect_op) = Operation::from_u8((w[0] >> 8) as u8) else {
                    return unknown;
                };
                RingRequest::Indirect(RequestIndirect {
                    operation: op,
                    indirect_op,
                    nr_segments: (w[0] >> 16) as u16,
                    id: get_u64(w, 2),
                    sector_number: get_u64(w, 4),
                    handle: w[6] as u16,
                    indirect_grefs,
                })
            }
            Operation::Discard => RingRequest::Discard(RequestDiscard {
                operation: op,
                flag: DiscardFlags::from_bits_retain((w[0] >> 8) as u8),
                handle: (w[0] >> 16) as u16,
                id: get_u64(w, 2),
                sector_number: get_u64(w, 4),
                nr_sectors: get_u64(w, 6),
            }),
            _ => {
                let mut seg = [Segment::default(); MAX_SEGMENTS_PER_REQUEST];
                for (i, s) in seg.iter_mut().enumerate() {
                    *s = segment_from_words([w[6 + 2 * i], w[7 + 2 * i]]);
                }
                RingRequest::Rw(Request {
                    operation: op,
                    nr_segments: (w[0] >> 8) as u8,
                    handle: (w[0] >> 16) as u16,
                    id: get_u64(w, 2),
                    sector_number: get_u64(w, 4),
                    seg,
                })
            }
        }
    }
}

impl RingEntry for Response {
    const BYTES: usize = core::mem::size_of::<Response>();

    fn encode(&self, out: &mut [u32]) {
        put_u64(out, 0, self.id);
        out[2] = u32::from(self.operation) | (u32::from(self.status as u16) << 16);
        out[3] = 0;
    }

    fn decode(w: &[u32]) -> Self {
        Response { id: get_u64(w, 0), operation: w[2] as u8, status: (w[2] >> 16) as u16 as i16 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(r: RingRequest) {
        let mut w = [0u32; 28];
        r.encode(&mut w);
        assert_eq!(RingRequest::decode(&w), r);
    }

    #[test]
    fn requests_round_trip_through_slot_words() {
        let mut seg = [Segment::default(); MAX_SEGMENTS_PER_REQUEST];
        for (i, s) in seg.iter_mut().enumerate() {
            *s = Segment { gref: GrantRef(100 + i as u32), first_sect: i as u8 % 8, last_sect: 7 };
        }
        round_trip(RingRequest::Rw(Request {
            operation: Operation::Write,
            nr_segments: 11,
            handle: 51712,
            id: 0x1234_5678_9abc,
            sector_number: u64::MAX - 3,
            seg,
        }));
        round_trip(RingRequest::Indirect(RequestIndirect {
            operation: Operation::Indirect,
            indirect_op: Operation::Write,
            nr_segments: 300,
            id: 7,
            sector_number: 99,
            handle: 3,
            indirect_grefs: [GrantRef(9); 8],
        }));
        round_trip(RingRequest::Discard(RequestDiscard {
            operation: Operation::Discard,
            flag: DiscardFlags::SECURE,
            handle: 2,
            id: 5,
            sector_number: 6,
            nr_sectors: 1 << 40,
        }));
        round_trip(RingRequest::Unknown { operation: 4, id: 77 });
    }

    #[test]
    fn undefined_operation_bytes_decode_as_unknown() {
        let mut w = [0u32; 28];
        w[0] = 0x77;
        w[2] = 9;
        assert_eq!(RingRequest::decode(&w), RingRequest::Unknown { operation: 0x77, id: 9 });
        // An indirect request carrying an undefined operation.
        w[0] = u32::from(Operation::Indirect.as_u8()) | (0x42 << 8);
        let r = RingRequest::decode(&w);
        assert_eq!(r, RingRequest::Unknown { operation: 6, id: 9 });
        assert_eq!((r.operation(), r.operation_byte()), (None, 6));
    }

    #[test]
    fn response_words_match_the_c_layout() {
        let r = Response { id: 0x0102_0304_0506_0708, operation: 3, status: -2 };
        let mut w = [0u32; 4];
        r.encode(&mut w);
        // id at 0, operation at byte 8, status at byte 10 (little-endian).
        assert_eq!(w, [0x0506_0708, 0x0102_0304, 0xfffe_0003, 0]);
        assert_eq!(Response::decode(&w), r);
    }
}
