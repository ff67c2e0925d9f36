//! The control thread's blocking waits on what the reactors report through
//! the core's shared state. The core only says whether a thing has happened
//! ([`Shared::keys_applied`], [`KeySweeps::poll`]); waiting for it, with a
//! clock and a timeout, is the runtime's (the core reads no clock).

use std::time::{Duration, Instant};

use crate::engine::risk::{KeySweeps, Sweep};
use crate::session::Shared;

/// Waiting for every reactor to use a new key generation.
pub trait KeysAppliedWait {
    /// Waits until reactors `0..reactors` all use generation `epoch`, up to
    /// `timeout`. Returns how long it took from the call, or None on
    /// timeout.
    fn wait_keys_applied(&self, reactors: usize, epoch: u64, timeout: Duration)
    -> Option<Duration>;
}

impl KeysAppliedWait for Shared {
    fn wait_keys_applied(
        &self,
        reactors: usize,
        epoch: u64,
        timeout: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if self.keys_applied(reactors, epoch) {
                return Some(start.elapsed());
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::hint::spin_loop();
        }
    }
}

/// Waiting for a kill switch's sweep.
pub trait SweepWait {
    /// Waits until `reactors` reports for `key_id` are in (then returns the
    /// orders they canceled) or `timeout` passes (None), and stops
    /// collecting for it either way.
    fn wait(&self, key_id: u64, reactors: usize, timeout: Duration) -> Option<u64>;
}

impl SweepWait for KeySweeps {
    fn wait(&self, key_id: u64, reactors: usize, timeout: Duration) -> Option<u64> {
        let start = Instant::now();
        loop {
            match self.poll(key_id, reactors) {
                Sweep::Done(canceled) => return Some(canceled),
                Sweep::NotOpen => return None,
                Sweep::Pending if start.elapsed() > timeout => {
                    self.close(key_id);
                    return None;
                }
                Sweep::Pending => std::thread::sleep(Duration::from_micros(50)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_sums_reports_of_later_generations_only() {
        let sweeps = KeySweeps::default();
        sweeps.open(7, 10);
        sweeps.record(7, 10, 5); // an older sweep of the same key
        sweeps.record(8, 11, 5); // another key
        sweeps.record(7, 11, 2);
        sweeps.record(7, 12, 1);
        assert_eq!(sweeps.wait(7, 2, Duration::from_secs(1)), Some(3));
        // Closed: later reports are dropped, waiting again finds nothing.
        sweeps.record(7, 12, 1);
        assert_eq!(sweeps.wait(7, 1, Duration::ZERO), None);
    }

    #[test]
    fn a_tally_times_out_without_every_report() {
        let sweeps = KeySweeps::default();
        sweeps.open(7, 1);
        sweeps.record(7, 2, 4);
        assert_eq!(sweeps.wait(7, 2, Duration::from_millis(1)), None);
    }
}
