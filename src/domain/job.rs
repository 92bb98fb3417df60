//! Job and task states, origins and log levels (DESIGN §5). The names are part of the API.
use strum::{AsRefStr, Display, EnumIter, EnumString, FromRepr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Uninitialized,
    Queued,
    PreProcessing,
    ActivityArchiving,
    PostProcessing,
    Store,
    Sign,
    Cleanup,
    Completed,
    RecoverableError,
    ErrorHandling,
    Failure,
    Timeout,
    Canceled,
    Deleted,
}

/// The stages of the happy path, in order. A job resumes at the stage after its last completed one.
pub const STAGES: [JobStatus; 6] = [
    JobStatus::PreProcessing,
    JobStatus::ActivityArchiving,
    JobStatus::PostProcessing,
    JobStatus::Store,
    JobStatus::Sign,
    JobStatus::Cleanup,
];

impl JobStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failure | Self::Timeout | Self::Canceled | Self::Deleted)
    }

    /// A stage of the pipeline (work is being done or is due).
    pub fn is_stage(self) -> bool {
        STAGES.contains(&self)
    }

    /// Holds one of the `max_concurrent_jobs` slots.
    pub fn is_active(self) -> bool {
        self.is_stage() || matches!(self, Self::RecoverableError | Self::ErrorHandling)
    }

    /// The stage after this one on the happy path (`Completed` after `Cleanup`).
    pub fn next_stage(self) -> Option<JobStatus> {
        match self {
            Self::Uninitialized => Some(Self::Queued),
            Self::Queued => Some(Self::PreProcessing),
            Self::Cleanup => Some(Self::Completed),
            s => STAGES.iter().position(|x| *x == s).and_then(|i| STAGES.get(i + 1).copied()),
        }
    }

    /// The progress range a stage covers: progress moves from its start to its end while it runs.
    pub fn progress_range(self) -> (i32, i32) {
        match self {
            Self::PreProcessing => (0, 5),
            Self::ActivityArchiving => (5, 80),
            Self::PostProcessing => (80, 85),
            Self::Store => (85, 95),
            Self::Sign => (95, 98),
            Self::Cleanup => (98, 100),
            Self::Completed => (100, 100),
            _ => (0, 0),
        }
    }

    /// The legal transitions of DESIGN §5.
    pub fn can_become(self, to: JobStatus) -> bool {
        use JobStatus::*;
        match (self, to) {
            (Uninitialized, Queued | Canceled | Failure) => true,
            // Queued → a later stage: a retried attempt resumes where the last one failed.
            (Queued, s) if s.is_stage() => true,
            (Queued, Canceled) => true,
            (s, t) if s.is_stage() && Some(t) == s.next_stage() => true,
            (s, RecoverableError | ErrorHandling | Canceled | Timeout) if s.is_stage() => true,
            (RecoverableError, s) if s.is_stage() => true,
            (RecoverableError, ErrorHandling | Canceled | Timeout) => true,
            (ErrorHandling, Failure | Canceled | Timeout) => true,
            // A new attempt of a failed or timed-out job.
            (Failure | Timeout, Queued) => true,
            (Completed | Failure | Timeout | Canceled, Deleted) => true,
            _ => false,
        }
    }
}

/// Delay before retry number `retry` (1-based): exponential from `base`, capped, with up to ±20 %
/// jitter from `jitter` in [0, 1) so that many failing jobs do not retry in lockstep.
pub fn retry_delay(base: std::time::Duration, cap: std::time::Duration, retry: u32, jitter: f64) -> std::time::Duration {
    let exp = base.as_secs_f64() * 2f64.powi(retry.saturating_sub(1).min(30) as i32);
    let capped = exp.min(cap.as_secs_f64());
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    std::time::Duration::from_secs_f64(capped * factor)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    Created,
    Queued,
    Running,
    Finalizing,
    Finished,
    Canceled,
    Failed,
    Timeout,
}

impl TaskStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Finished | Self::Canceled | Self::Failed | Self::Timeout)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum JobOrigin {
    Manual,
    Schedule,
    Signal,
    Api,
}

/// Stored as its number so that "at least WARN" is a range on an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Display, EnumString, AsRefStr, EnumIter, FromRepr)]
#[derive(serde::Serialize, serde::Deserialize)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(i16)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Fatal = 5,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_match_the_api() {
        assert_eq!(JobStatus::ActivityArchiving.as_ref(), "ACTIVITY_ARCHIVING");
        assert_eq!("RECOVERABLE_ERROR".parse::<JobStatus>().unwrap(), JobStatus::RecoverableError);
        assert!(JobStatus::Deleted.is_final() && !JobStatus::Queued.is_final());
    }

    #[test]
    fn the_happy_path_is_legal_in_order() {
        let mut s = JobStatus::Uninitialized;
        let mut seen = vec![s];
        while let Some(n) = s.next_stage() {
            assert!(s.can_become(n), "{s} -> {n}");
            s = n;
            seen.push(s);
        }
        assert_eq!(seen.last(), Some(&JobStatus::Completed));
        assert_eq!(seen.len(), 9);
    }

    #[test]
    fn final_states_stay_final() {
        use strum::IntoEnumIterator;
        for to in JobStatus::iter() {
            assert!(!JobStatus::Deleted.can_become(to));
            // TIMEOUT and FAILURE only become a new attempt (QUEUED) or DELETED.
            for from in [JobStatus::Timeout, JobStatus::Failure] {
                assert_eq!(from.can_become(to), matches!(to, JobStatus::Queued | JobStatus::Deleted), "{from} -> {to}");
            }
            assert_eq!(JobStatus::Completed.can_become(to), to == JobStatus::Deleted);
            assert_eq!(JobStatus::Canceled.can_become(to), to == JobStatus::Deleted);
        }
    }

    #[test]
    fn stages_cannot_be_skipped_or_reversed() {
        assert!(!JobStatus::PreProcessing.can_become(JobStatus::Store));
        assert!(!JobStatus::Store.can_become(JobStatus::PostProcessing));
        assert!(!JobStatus::Queued.can_become(JobStatus::Completed));
        assert!(JobStatus::Store.can_become(JobStatus::RecoverableError));
        assert!(JobStatus::RecoverableError.can_become(JobStatus::Store));
        assert!(!JobStatus::RecoverableError.can_become(JobStatus::Completed));
    }

    #[test]
    fn progress_ranges_rise_along_the_stages() {
        let mut last = 0;
        for s in STAGES {
            let (a, b) = s.progress_range();
            assert!(a >= last && b > a, "{s}");
            last = b;
        }
        assert_eq!(last, 100);
    }

    #[test]
    fn retry_delays_grow_exponentially_within_jitter_and_cap() {
        use std::time::Duration;
        let base = Duration::from_secs(10);
        let cap = Duration::from_secs(600);
        for (retry, nominal) in [(1u32, 10.0), (2, 20.0), (3, 40.0), (4, 80.0)] {
            let lo = retry_delay(base, cap, retry, 0.0).as_secs_f64();
            let hi = retry_delay(base, cap, retry, 0.999).as_secs_f64();
            assert!((lo - nominal * 0.8).abs() < 1e-6 && hi <= nominal * 1.2 && hi > nominal * 1.19, "{retry}: {lo}..{hi}");
        }
        assert!(retry_delay(base, cap, 20, 0.5) <= cap);
    }

    #[test]
    fn log_levels_are_ordered_numbers() {
        assert!(LogLevel::Warn > LogLevel::Info);
        assert_eq!(LogLevel::from_repr(5), Some(LogLevel::Fatal));
        assert_eq!(LogLevel::from_repr(6), None);
    }
}
