//! A session's transmit buffer: encoded frames waiting for the socket.
//!
//! One linear buffer of `TX_BUFFER_SIZE` bytes, allocated when the session
//! slot is created and reused for every session in that slot.
//!
//! ```text
//!  0            head          sent_end         tail                  len
//!  ├─────────────┼───────────────┼───────────────┼─────────────────────┤
//!  │  consumed   │ in flight     │ waiting        │ free                │
//! ```
//!
//! Frames are appended whole at `tail`. The reactor takes `[head, tail)` with
//! [`TxBuffer::begin_send`], which marks it in flight: the kernel owns those
//! bytes until the send completes, so while anything is in flight the buffer
//! never moves data (no compaction). When nothing is in flight and a frame
//! does not fit at the end, the waiting bytes are moved to the front.
//!
//! **Free space is exact.** `begin_send` first moves the waiting bytes to
//! the front when `head > 0` (nothing is in flight then), so a flight always
//! starts at 0 and `free() = capacity − len()` holds in every state: the
//! session's back-pressure arithmetic (room reserved for answers it owes)
//! can never be undone by a send beginning. The move costs a copy of the
//! bytes about to be sent, and only after a short send or when frames were
//! queued behind the previous flight.
//!
//! `sent_total` counts every byte a completed send took: the session's
//! stall timer compares it across a window to tell a client that reads
//! slowly from one that does not read at all.

use crate::constants::TX_BUFFER_SIZE;

pub struct TxBuffer {
    buf: Box<[u8]>,
    /// First byte not yet acknowledged by a completed send. `head <= sent_end`.
    head: usize,
    /// End of the bytes handed to the kernel. `sent_end <= tail`.
    sent_end: usize,
    /// End of the encoded bytes. `tail <= buf.len()`.
    tail: usize,
    /// Bytes completed sends took since the slot was created (never reset:
    /// only differences are looked at).
    sent_total: u64,
}

impl Default for TxBuffer {
    fn default() -> Self {
        TxBuffer::new(TX_BUFFER_SIZE)
    }
}

impl TxBuffer {
    pub fn new(size: usize) -> TxBuffer {
        TxBuffer {
            buf: vec![0u8; size].into_boxed_slice(),
            head: 0,
            sent_end: 0,
            tail: 0,
            sent_total: 0,
        }
    }

    /// Forgets everything (a new session in the slot). Must not be called
    /// while a send is in flight.
    pub fn clear(&mut self) {
        debug_assert!(!self.in_flight());
        self.head = 0;
        self.sent_end = 0;
        self.tail = 0;
    }

    /// Bytes encoded and not yet acknowledged.
    pub fn len(&self) -> usize {
        self.tail - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.tail == self.head
    }

    pub fn in_flight(&self) -> bool {
        self.sent_end > self.head
    }

    /// Bytes that can still be appended, now and whatever sends begin
    /// before then (a flight always starts at offset 0, see the module
    /// docs).
    #[inline]
    pub fn free(&self) -> usize {
        self.buf.len() - self.len()
    }

    /// Whether a frame of `n` bytes can be appended now.
    #[inline]
    pub fn has_room(&self, n: usize) -> bool {
        self.free() >= n
    }

    /// Bytes completed sends have taken, ever (see the module docs).
    #[inline]
    pub fn sent_total(&self) -> u64 {
        self.sent_total
    }

    /// Appends a frame of `N` bytes and returns it for encoding, or `None`
    /// if it does not fit.
    #[inline]
    pub fn frame<const N: usize>(&mut self) -> Option<&mut [u8; N]> {
        if self.buf.len() - self.tail < N {
            if self.in_flight() || self.buf.len() - self.len() < N {
                return None;
            }
            self.compact();
        }
        let start = self.tail;
        self.tail += N;
        Some(
            (&mut self.buf[start..start + N])
                .try_into()
                .expect("N bytes"),
        )
    }

    /// The bytes waiting to be sent (not yet in flight).
    pub fn waiting(&self) -> &[u8] {
        &self.buf[self.sent_end..self.tail]
    }

    /// Moves the unacknowledged bytes to the front. Only with nothing in
    /// flight.
    fn compact(&mut self) {
        debug_assert!(!self.in_flight());
        self.buf.copy_within(self.head..self.tail, 0);
        self.tail -= self.head;
        self.sent_end -= self.head;
        self.head = 0;
    }

    /// Marks every waiting byte in flight and returns them. The slice must
    /// stay valid until [`complete_send`](Self::complete_send): the buffer
    /// does not move data while anything is in flight. A flight that is the
    /// only one starts at offset 0 (moved there first if need be), so that
    /// [`free`](Self::free) stays exact while it is out.
    pub fn begin_send(&mut self) -> &[u8] {
        if self.head > 0 && !self.in_flight() {
            self.compact();
        }
        let start = self.sent_end;
        self.sent_end = self.tail;
        &self.buf[start..self.tail]
    }

    /// The kernel sent `n` bytes of the flight. Bytes of the flight it did
    /// not send go back to waiting (a short send).
    pub fn complete_send(&mut self, n: usize) {
        assert!(
            self.head + n <= self.sent_end,
            "more bytes sent than were in flight"
        );
        self.head += n;
        self.sent_end = self.head;
        self.sent_total += n as u64;
        if self.head == self.tail {
            self.head = 0;
            self.sent_end = 0;
            self.tail = 0;
        }
    }

    /// Sans-I/O shortcut: takes every waiting byte as sent at once (tests,
    /// and callers that copy the bytes out).
    pub fn take_all(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.begin_send());
        let n = self.sent_end - self.head;
        self.complete_send(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_append_and_compaction_waits_for_the_flight() {
        let mut tx = TxBuffer::new(100);
        *tx.frame::<40>().unwrap() = [1; 40];
        *tx.frame::<40>().unwrap() = [2; 40];
        assert!(tx.frame::<40>().is_none(), "80 + 40 > 100");
        assert_eq!(tx.begin_send().len(), 80);
        tx.complete_send(40); // short send: the second frame goes back to waiting
        assert_eq!(tx.waiting(), &[2; 40][..]);
        assert!(tx.has_room(40));
        let f = tx.frame::<40>().unwrap(); // compacts: nothing in flight
        *f = [3; 40];
        let sent = tx.begin_send().to_vec();
        assert_eq!(&sent[..40], &[2; 40][..]);
        assert_eq!(&sent[40..], &[3; 40][..]);
        // While 80 bytes are in flight, 20 bytes at the end are free, no more.
        assert!(tx.has_room(20));
        assert!(!tx.has_room(21));
        assert!(tx.frame::<21>().is_none());
        tx.complete_send(80);
        assert!(tx.is_empty());
        assert!(tx.has_room(100));
        assert_eq!(tx.sent_total(), 120);
    }

    #[test]
    fn a_send_beginning_never_shrinks_the_free_space() {
        let mut tx = TxBuffer::new(100);
        *tx.frame::<40>().unwrap() = [1; 40];
        assert_eq!(tx.begin_send().len(), 40);
        *tx.frame::<30>().unwrap() = [2; 30]; // queued behind the flight
        tx.complete_send(40);
        // 30 bytes wait at offset 40: 70 bytes are free, and stay free when
        // the next send begins (it starts at 0).
        assert_eq!(tx.free(), 70);
        assert_eq!(tx.begin_send(), &[2; 30][..]);
        assert_eq!(tx.free(), 70);
        assert!(tx.frame::<70>().is_some());
        assert_eq!(tx.free(), 0);
        tx.complete_send(30);
        assert_eq!(tx.waiting().len(), 70);
        assert_eq!(tx.free(), 30);
    }
}
