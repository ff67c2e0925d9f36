//! `ordergate admin sessions`: each reactor's logged-on sessions, gathered
//! on request.
//!
//! The admin side asks (a new generation in `asked`); each reactor, on its
//! next timer tick (not per message), sees the generation move, fills its
//! own board from its slab and acknowledges it. The reactor never waits and
//! never allocates: its board's capacity is its slab size, reserved at
//! start-up, and it only `try_lock`s the board (should the admin side hold
//! it, the reactor answers at the next tick). One question at a time: the
//! admin side serializes them (`one_at_a_time`), so a board acknowledged
//! for generation `g` holds exactly its answer to `g`. No clock here: the
//! caller (`GatewayControl::live_sessions`) bounds its wait.

use core::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::engine::{Nanos, SessionId};

/// One logged-on session as `admin sessions` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionRow {
    pub key_id: u64,
    /// Its id (the LogonAck's `session_id`; the reactor is in its top bits).
    pub session: SessionId,
    pub peer: IpAddr,
    /// When it logged on: the LogonAck's `server_time_ns` (Unix epoch).
    pub logon_ns: Nanos,
    /// The client's sequenced messages since its Logon (the last `seq`
    /// received).
    pub msgs_in: u64,
    /// The gateway's frames to it, LogonAck included (the last `seq` sent).
    pub msgs_out: u64,
    /// Its orders the engine holds, as the session was told: accepted, not
    /// yet filled in full or canceled.
    pub open_orders: u32,
}

struct Board {
    answered: AtomicU64,
    rows: Mutex<Vec<SessionRow>>,
}

/// The question and every reactor's answer (in `Shared`).
pub struct SessionListing {
    asked: AtomicU64,
    boards: Box<[Board]>,
    one_at_a_time: Mutex<()>,
}

impl SessionListing {
    /// Boards for reactors `0..reactors`, empty until [`Self::reserve`].
    pub fn new(reactors: usize) -> SessionListing {
        SessionListing {
            asked: AtomicU64::new(0),
            boards: (0..reactors)
                .map(|_| Board {
                    answered: AtomicU64::new(0),
                    rows: Mutex::new(Vec::new()),
                })
                .collect(),
            one_at_a_time: Mutex::new(()),
        }
    }

    /// Start-up: room on `reactor`'s board for its whole slab.
    pub fn reserve(&self, reactor: u16, sessions: usize) {
        let mut rows = lock(&self.boards[reactor as usize].rows);
        let more = sessions.saturating_sub(rows.len());
        rows.reserve_exact(more);
    }

    // ----- the reactor's side ---------------------------------------------

    /// Whether a question waits for `reactor`: two atomic loads.
    #[inline]
    pub fn wanted(&self, reactor: u16) -> bool {
        let board = &self.boards[reactor as usize];
        board.answered.load(Ordering::Relaxed) < self.asked.load(Ordering::Acquire)
    }

    /// Answers the waiting question with the rows `fill` pushes (at most
    /// the board's capacity: the rest are dropped, never allocated for).
    /// Returns false, answering nothing, if the board is busy (try again
    /// at the next tick).
    pub fn answer(&self, reactor: u16, fill: impl FnOnce(&mut Rows<'_>)) -> bool {
        let asked = self.asked.load(Ordering::Acquire);
        let board = &self.boards[reactor as usize];
        let Ok(mut rows) = board.rows.try_lock() else {
            return false;
        };
        rows.clear();
        fill(&mut Rows(&mut rows));
        drop(rows);
        board.answered.store(asked, Ordering::Release);
        true
    }

    // ----- the admin side --------------------------------------------------

    /// Held for the whole of one question.
    pub fn one_at_a_time(&self) -> MutexGuard<'_, ()> {
        lock(&self.one_at_a_time)
    }

    /// Asks every reactor: the question's generation.
    pub fn ask(&self) -> u64 {
        self.asked.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Whether reactors `0..reactors` all answered `asked`.
    pub fn answered(&self, reactors: usize, asked: u64) -> bool {
        self.boards[..reactors]
            .iter()
            .all(|b| b.answered.load(Ordering::Acquire) >= asked)
    }

    /// The rows of each of reactors `0..reactors` that answered `asked`,
    /// in (key, session) order, and the reactors that did not answer.
    pub fn collect(&self, reactors: usize, asked: u64) -> (Vec<SessionRow>, Vec<u16>) {
        let (mut all, mut silent) = (Vec::new(), Vec::new());
        for (i, board) in self.boards[..reactors].iter().enumerate() {
            let rows = lock(&board.rows);
            if board.answered.load(Ordering::Acquire) >= asked {
                all.extend_from_slice(&rows);
            } else {
                silent.push(i as u16);
            }
        }
        all.sort_unstable();
        (all, silent)
    }
}

/// A reactor's board while it answers: pushes never allocate.
pub struct Rows<'a>(&'a mut Vec<SessionRow>);

impl Rows<'_> {
    /// Adds `row` if the board has room (it always has for a slab's worth).
    #[inline]
    pub fn push(&mut self, row: SessionRow) {
        if self.0.len() < self.0.capacity() {
            self.0.push(row);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key_id: u64, session: u64) -> SessionRow {
        SessionRow {
            key_id,
            session: SessionId(session),
            peer: IpAddr::V4(core::net::Ipv4Addr::LOCALHOST),
            logon_ns: 1,
            msgs_in: 2,
            msgs_out: 3,
            open_orders: 4,
        }
    }

    #[test]
    fn each_reactor_answers_once_per_question_and_rows_come_sorted() {
        let l = SessionListing::new(3);
        l.reserve(0, 2);
        l.reserve(1, 1);
        assert!(!l.wanted(0), "nothing asked yet");
        let asked = l.ask();
        assert!(l.wanted(0) && l.wanted(1) && l.wanted(2));
        assert!(l.answer(1, |r| r.push(row(7, 1 << 56))));
        assert!(l.answer(0, |r| {
            r.push(row(9, 2));
            r.push(row(7, 3));
            // Over the slab: dropped, not allocated for.
            r.push(row(7, 4));
        }));
        assert!(!l.wanted(0) && !l.wanted(1) && l.wanted(2));
        assert!(!l.answered(3, asked) && l.answered(2, asked));
        let (rows, silent) = l.collect(3, asked);
        assert_eq!(rows, vec![row(7, 3), row(7, 1 << 56), row(9, 2)]);
        assert_eq!(silent, vec![2]);
        // A new question: the old answers do not count for it.
        let again = l.ask();
        assert_eq!(l.collect(2, again), (Vec::new(), vec![0, 1]));
    }

    #[test]
    fn a_busy_board_is_answered_at_the_next_try() {
        let l = SessionListing::new(1);
        l.reserve(0, 1);
        let asked = l.ask();
        let held = lock(&l.boards[0].rows);
        assert!(!l.answer(0, |r| r.push(row(1, 1))));
        drop(held);
        assert!(l.wanted(0));
        assert!(l.answer(0, |r| r.push(row(1, 1))));
        assert_eq!(l.collect(1, asked).0, vec![row(1, 1)]);
    }
}
