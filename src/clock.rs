//! The time that time-driven policy reads: retention, storage health checks, schedules, the
//! periodic runner's idea of when a task is due.
//!
//! Production runs on the system clock. Tests move it forward ([`Clock::advance`]) or pin it
//! ([`Clock::set`]) instead of waiting, and every part that shares the engine's clock sees the
//! same time. Liveness (leases, the sweeper's staleness checks, HTTP timeouts) stays on real time
//! on purpose: a test that travels ten years ahead must not make every lease look expired.
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// System time plus an offset (zero in production): time keeps running after a jump.
    Offset(Duration),
    /// Stopped at one instant until moved.
    Fixed(DateTime<Utc>),
}

/// A cheap, shared handle: clones see the same time.
#[derive(Debug, Clone)]
pub struct Clock(Arc<Mutex<Mode>>);

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(Mutex::new(Mode::Offset(Duration::zero()))))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match *self.0.lock().expect("clock lock") {
            Mode::Offset(d) => Utc::now() + d,
            Mode::Fixed(t) => t,
        }
    }

    /// Moves time forward (or back, with a negative duration), keeping it running or pinned.
    pub fn advance(&self, by: Duration) {
        let mut m = self.0.lock().expect("clock lock");
        *m = match *m {
            Mode::Offset(d) => Mode::Offset(d + by),
            Mode::Fixed(t) => Mode::Fixed(t + by),
        };
    }

    /// Pins time at `at` until it is moved again.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = Mode::Fixed(at);
    }

    /// Lets time run again from where it is now.
    pub fn resume(&self) {
        let mut m = self.0.lock().expect("clock lock");
        if let Mode::Fixed(t) = *m {
            *m = Mode::Offset(t - Utc::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_travel_and_pinning() {
        let c = Clock::system();
        let other = c.clone();
        c.advance(Duration::days(3650));
        assert!(other.now() > Utc::now() + Duration::days(3649));
        let at = Utc::now() + Duration::days(1);
        other.set(at);
        assert_eq!(c.now(), at);
        c.advance(Duration::seconds(1));
        assert_eq!(other.now(), at + Duration::seconds(1));
        c.resume();
        assert!(other.now() >= at + Duration::seconds(1));
    }
}
