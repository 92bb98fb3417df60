//! Fixity: whether a stored file is still the file that was stored. The verdicts, and the
//! arithmetic of the byte-rate limit the periodic audit reads with.
use std::time::Duration;

use strum::{AsRefStr, Display, EnumIter, EnumString};

/// The outcome of one fixity check (stored as text in `archive_file.last_verification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum FixityResult {
    /// Size and SHA-256 are the recorded ones.
    Ok,
    /// The object is there, but its size or SHA-256 differs: it was changed or damaged.
    Mismatch,
    /// The backend answers, but the object is not there.
    Missing,
    /// The backend answers (its health probe passes), but this object cannot be read.
    Unreadable,
}

impl FixityResult {
    /// Whether the verdict is a problem: raised as an event on the file's job and kept in the
    /// audit log.
    pub fn is_failure(self) -> bool {
        self != Self::Ok
    }
}

/// Compares what was read with what was recorded: `None` when both agree, otherwise the
/// MISMATCH detail. Hashes are compared case-insensitively (both are hex).
pub fn compare(expected_size: u64, expected_sha256: &str, size: u64, sha256: &str) -> Option<String> {
    let mut differs = Vec::new();
    if size != expected_size {
        differs.push(format!("size {size} bytes, recorded {expected_size}"));
    }
    if !sha256.eq_ignore_ascii_case(expected_sha256) {
        differs.push(format!("SHA-256 {sha256}, recorded {expected_sha256}"));
    }
    (!differs.is_empty()).then(|| differs.join("; "))
}

/// A token bucket: lets `rate` bytes per second through on average, with bursts of up to one
/// second's worth. Pure arithmetic over an elapsed time the caller passes in, so it is tested
/// without a clock or sleeping; the reader sleeps for what [`TokenBucket::take`] returns.
///
/// A chunk larger than the bucket is let through at once and paid off afterwards (the balance
/// goes negative and the next chunk waits longer): readers cannot choose their chunk sizes, and
/// the average is what a storage backend feels.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Bytes per second; 0 = unlimited.
    rate: u64,
    /// Bytes available now; negative = owed.
    balance: f64,
    /// When the balance was last brought up to date (time since the reader started).
    at: Duration,
}

impl TokenBucket {
    /// A full bucket for `rate` bytes per second (0 = unlimited) at time zero.
    pub fn new(rate: u64) -> Self {
        Self { rate, balance: rate as f64, at: Duration::ZERO }
    }

    pub fn unlimited(&self) -> bool {
        self.rate == 0
    }

    /// Takes `bytes` at `now` (time since the reader started; never earlier than a previous
    /// call's) and returns how long the reader waits before passing them on.
    pub fn take(&mut self, bytes: u64, now: Duration) -> Duration {
        if self.unlimited() {
            return Duration::ZERO;
        }
        let rate = self.rate as f64;
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.balance = (self.balance + elapsed * rate).min(rate) - bytes as f64;
        if self.balance >= 0.0 {
            return Duration::ZERO;
        }
        // The debt is paid off at `rate`; the wait is counted as elapsed by the next call's `now`.
        Duration::from_secs_f64(-self.balance / rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(f64) -> Duration = Duration::from_secs_f64;

    #[test]
    fn fixity_results_round_trip_as_text() {
        use strum::IntoEnumIterator;
        for r in FixityResult::iter() {
            assert_eq!(r.to_string().parse::<FixityResult>().unwrap(), r);
        }
        assert_eq!(FixityResult::Unreadable.to_string(), "UNREADABLE");
        assert!(!FixityResult::Ok.is_failure() && FixityResult::Missing.is_failure());
    }

    #[test]
    fn fixity_compares_size_and_hash() {
        let h = "ab".repeat(32);
        assert_eq!(compare(3, &h, 3, &h.to_uppercase()), None);
        assert_eq!(compare(3, &h, 4, &h).unwrap(), "size 4 bytes, recorded 3");
        let other = "cd".repeat(32);
        assert!(compare(3, &h, 3, &other).unwrap().starts_with("SHA-256 cdcd"));
    }

    #[test]
    fn fixity_unlimited_bucket_never_waits() {
        let mut b = TokenBucket::new(0);
        assert_eq!(b.take(u64::MAX, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn fixity_bucket_lets_one_second_burst_through_then_holds_the_rate() {
        let mut b = TokenBucket::new(1000);
        // The full bucket: one second's worth passes at once.
        assert_eq!(b.take(600, Duration::ZERO), Duration::ZERO);
        assert_eq!(b.take(400, Duration::ZERO), Duration::ZERO);
        // Empty now: 500 more bytes wait half a second.
        assert_eq!(b.take(500, Duration::ZERO), S(0.5));
        // The reader slept that half second: the debt is paid, the next 250 wait 0.25 s.
        assert_eq!(b.take(250, S(0.5)), S(0.25));
        // A long pause refills only up to one second's worth, not more.
        assert_eq!(b.take(1000, S(100.0)), Duration::ZERO);
        assert_eq!(b.take(1, S(100.0)), S(0.001));
    }

    #[test]
    fn fixity_bucket_pays_off_chunks_larger_than_itself() {
        let mut b = TokenBucket::new(100);
        // 1000 bytes at once: let through, 9 seconds owed (100 were in the bucket).
        assert_eq!(b.take(1000, Duration::ZERO), S(9.0));
        // Whoever sleeps what it is told reads at the rate on average: 1100 bytes in 10 s, 100
        // from the full bucket and 1000 at 100 bytes per second.
        let mut now = S(9.0);
        let mut total = 1000u64;
        for _ in 0..10 {
            now += b.take(10, now);
            total += 10;
        }
        assert_eq!(total, 1100);
        assert!((now.as_secs_f64() - 10.0).abs() < 1e-9, "{now:?}");
    }

    #[test]
    fn fixity_bucket_ignores_a_clock_going_backwards() {
        let mut b = TokenBucket::new(10);
        assert_eq!(b.take(10, S(5.0)), Duration::ZERO);
        // An earlier `now` adds nothing to the balance.
        assert_eq!(b.take(10, S(1.0)), S(1.0));
    }
}
