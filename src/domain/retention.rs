//! Retention and deletion rules: why a stored file was deleted, what was decided about a file
//! whose retention ended in approval mode, and what the retention sweep does with an expired file
//! under the current policy.
use chrono::{DateTime, Utc};
use strum::{AsRefStr, Display, EnumIter, EnumString};

use super::PolicyValues;

/// Why a stored file was deleted (stored as text in `archive_file.deletion_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum DeletionReason {
    /// The retention sweep: the retention ended and the policy deletes without approval.
    RetentionExpired,
    /// Approval mode: a person approved the pending deletion.
    DeletionApproved,
    /// `deleteArchiveFile`.
    Manual,
    /// `deleteArchiveJob` with its files.
    JobDeleted,
    /// What a job that ended without completing had stored (cancel, timeout, failure).
    JobDiscarded,
}

impl DeletionReason {
    /// Whether deleting the last remaining file of a finished job for this reason makes the job
    /// DELETED. Job deletion moves the job itself (after all its files, with its own audit
    /// entry); a discarded partial archive leaves the job in the state it ended in.
    pub fn closes_job(self) -> bool {
        matches!(self, Self::RetentionExpired | Self::DeletionApproved | Self::Manual)
    }
}

/// A decision on a pending deletion (stored as text in `archive_file.deletion_decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum DeletionDecision {
    Approved,
    /// The file stays. The sweep never proposes or deletes it again (its retention date is fixed
    /// when it is stored); a person can still delete it by hand.
    Denied,
}

/// What the retention sweep does with files whose retention ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryAction {
    /// `auto_delete` off: nothing; files stay until deleted by hand.
    Keep,
    /// `auto_delete` with `deletion_approval`: list them for a decision.
    AskForApproval,
    Delete,
}

impl ExpiryAction {
    pub fn of(policy: &PolicyValues) -> Self {
        match (policy.auto_delete, policy.deletion_approval) {
            (false, _) => Self::Keep,
            (true, true) => Self::AskForApproval,
            (true, false) => Self::Delete,
        }
    }
}

/// Whether a file kept until `retention_until` is due for deletion at `now`: from that instant
/// on, not one tick before. No date: kept until deleted by hand.
pub fn is_expired(retention_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    retention_until.is_some_and(|t| t <= now)
}

/// How the server names itself as the one who deleted: `system:<task>`.
pub fn system_actor(task: &str) -> String {
    format!("system:{task}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_at_the_instant_not_before() {
        let t = Utc::now();
        assert!(!is_expired(Some(t), t - chrono::Duration::seconds(1)));
        assert!(is_expired(Some(t), t));
        assert!(is_expired(Some(t), t + chrono::Duration::seconds(1)));
        assert!(!is_expired(None, t + chrono::Duration::days(100_000)));
    }

    #[test]
    fn the_policy_decides_what_expiry_does() {
        let mut p = PolicyValues::default();
        assert_eq!(ExpiryAction::of(&p), ExpiryAction::Delete);
        p.deletion_approval = true;
        assert_eq!(ExpiryAction::of(&p), ExpiryAction::AskForApproval);
        p.auto_delete = false;
        assert_eq!(ExpiryAction::of(&p), ExpiryAction::Keep);
        p.deletion_approval = false;
        assert_eq!(ExpiryAction::of(&p), ExpiryAction::Keep);
    }

    #[test]
    fn reasons_round_trip_as_text() {
        use strum::IntoEnumIterator;
        for r in DeletionReason::iter() {
            assert_eq!(r.to_string().parse::<DeletionReason>().unwrap(), r);
        }
        assert_eq!(DeletionReason::RetentionExpired.to_string(), "RETENTION_EXPIRED");
        assert!(!DeletionReason::JobDiscarded.closes_job() && !DeletionReason::JobDeleted.closes_job());
    }
}
