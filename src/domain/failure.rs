//! The one transient/permanent classification of failures. A stage, a task, a chunk and a storage
//! driver all fail with a [`Failure`]; the job's retry policy reads only its class.
use std::io;

/// Whether trying again may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Worth retrying with backoff: the network, a full or read-only disk, a missing permission,
    /// the database, the LMS being down. An operator may fix it while the job waits.
    Transient,
    /// Retrying the same work gives the same result: bad settings, invalid input, a conflict.
    Permanent,
}

/// Why some work failed: its class and a message for the job log and the API (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Self {
        Self { class: FailureClass::Transient, message: message.into() }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self { class: FailureClass::Permanent, message: message.into() }
    }

    pub fn is_transient(&self) -> bool {
        self.class == FailureClass::Transient
    }

    /// The same failure, its message prefixed with where it happened.
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        Self { message: format!("{what}: {}", self.message), ..self }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Unexpected errors (the database, the file system) are assumed to pass: they are retried, and
/// become final only when the retries run out.
impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<Failure>() {
            Ok(f) => f,
            Err(e) => Failure::transient(format!("{e:#}")),
        }
    }
}

/// Classifies an I/O error and says what an operator can do about it. A full disk, a read-only
/// file system and a missing permission are transient: they are what operators fix while a job
/// waits for its retry. What retrying cannot change (a missing source, a path that is a file,
/// an invalid name, an unsupported operation) is permanent.
pub fn io_failure(context: &str, e: &io::Error) -> Failure {
    io_kind_failure(format!("{context}: {e}"), e.kind())
}

/// The failure of an I/O error of `kind` whose whole text is `message`, with the hint for
/// operators appended.
pub fn io_kind_failure(message: String, kind: io::ErrorKind) -> Failure {
    use io::ErrorKind::*;
    let hint = match kind {
        StorageFull | QuotaExceeded => Some("the disk is full: free space or enlarge the volume"),
        ReadOnlyFilesystem => Some("the file system is read-only: remount it read-write"),
        PermissionDenied => Some("permission denied: let the server's user write there"),
        _ => None,
    };
    let message = match hint {
        Some(h) => format!("{message} ({h})"),
        None => message,
    };
    match kind {
        NotFound | NotADirectory | IsADirectory | InvalidInput | InvalidFilename | FileTooLarge | Unsupported => Failure::permanent(message),
        _ => Failure::transient(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_failures_are_transient_with_a_hint() {
        for (kind, hint) in [
            (io::ErrorKind::StorageFull, "disk is full"),
            (io::ErrorKind::ReadOnlyFilesystem, "read-only"),
            (io::ErrorKind::PermissionDenied, "permission denied"),
        ] {
            let f = io_failure("writing x", &io::Error::from(kind));
            assert!(f.is_transient(), "{kind:?}");
            assert!(f.message.contains(hint), "{}", f.message);
            assert!(f.message.starts_with("writing x: "), "{}", f.message);
        }
        assert!(!io_failure("x", &io::Error::from(io::ErrorKind::IsADirectory)).is_transient());
        assert!(io_failure("x", &io::Error::from(io::ErrorKind::ConnectionReset)).is_transient());
    }

    #[test]
    fn a_failure_survives_anyhow() {
        let e: anyhow::Error = Failure::permanent("bad").into();
        assert_eq!(Failure::from(e), Failure::permanent("bad"));
        assert!(Failure::from(anyhow::anyhow!("db down")).is_transient());
    }
}
