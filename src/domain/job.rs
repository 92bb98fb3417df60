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

impl JobStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failure | Self::Timeout | Self::Canceled | Self::Deleted)
    }
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
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
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
    fn log_levels_are_ordered_numbers() {
        assert!(LogLevel::Warn > LogLevel::Info);
        assert_eq!(LogLevel::from_repr(5), Some(LogLevel::Fatal));
        assert_eq!(LogLevel::from_repr(6), None);
    }
}
