//! Activities and whether their current state is archived.
use sha2::{Digest, Sha256};
use strum::{AsRefStr, Display, EnumIter, EnumString};

/// The kinds of LMS activity the archiver knows; each has an archiving driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ActivityKind {
    Quiz,
    Assign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ActivityArchiveState {
    /// No finished archive task exists for the activity.
    NeverArchived,
    /// A finished archive task holds the activity's current fingerprint.
    Archived,
    /// Archived before, but the data changed since.
    Changed,
}

impl ActivityArchiveState {
    /// `has_archive`: a finished task of a job that still has its files exists;
    /// `has_current`: one of them holds the activity's current fingerprint.
    pub fn derive(has_archive: bool, has_current: bool) -> Self {
        match (has_archive, has_current) {
            (false, _) => Self::NeverArchived,
            (true, true) => Self::Archived,
            (true, false) => Self::Changed,
        }
    }
}

/// SHA-256 (hex) over the parts that define an activity's state. Parts are length-prefixed so that
/// ("ab","c") and ("a","bc") differ.
pub fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_state_is_derived_from_tasks() {
        assert_eq!(ActivityArchiveState::derive(false, false), ActivityArchiveState::NeverArchived);
        assert_eq!(ActivityArchiveState::derive(true, true), ActivityArchiveState::Archived);
        assert_eq!(ActivityArchiveState::derive(true, false), ActivityArchiveState::Changed);
    }

    #[test]
    fn fingerprint_separates_parts() {
        assert_ne!(fingerprint(["ab", "c"]), fingerprint(["a", "bc"]));
        assert_eq!(fingerprint(["x", "y"]), fingerprint(["x", "y"]));
        assert_eq!(fingerprint(["x"]).len(), 64);
    }

    #[test]
    fn kinds_round_trip_as_text() {
        assert_eq!(ActivityKind::Quiz.as_ref(), "QUIZ");
        assert_eq!("ASSIGN".parse::<ActivityKind>().unwrap(), ActivityKind::Assign);
        assert!("quiz".parse::<ActivityKind>().is_err());
    }
}
