use async_graphql::SimpleObject;

use super::{enums, storage::StorageBackend};
use crate::{
    domain::{ActivityArchiveState as S, FixityResult as F},
    graphql::scalars::BigInt,
    service::overview::Overview,
};

/// Activities counted by archive state.
#[derive(SimpleObject)]
pub struct ActivityStateCounts {
    total: u64,
    never_archived: u64,
    archived: u64,
    changed: u64,
}

/// Stored files (not deleted) counted by the result of their last fixity check
/// (`ArchiveFile.lastVerification`).
#[derive(SimpleObject)]
pub struct FixityCounts {
    ok: u64,
    /// Changed or damaged since they were stored.
    mismatch: u64,
    /// Gone from their storage backend.
    missing: u64,
    /// Present, but could not be read although their backend answers.
    unreadable: u64,
    /// Not checked yet since they were stored.
    never_verified: u64,
}

#[derive(SimpleObject)]
pub struct JobStatusCount {
    status: enums::ArchiveJobStatus,
    count: u64,
}

/// What is archived, what runs and what is stored, within the caller's scope.
#[derive(SimpleObject)]
pub struct ArchivingOverview {
    activities: ActivityStateCounts,
    /// Jobs per status; statuses without jobs are left out.
    jobs: Vec<JobStatusCount>,
    /// Archive files not deleted.
    stored_files: u64,
    stored_bytes: BigInt,
    /// The stored files by the result of their last fixity check.
    fixity: FixityCounts,
    /// The storage backends (not deleted) with their last health check.
    storage_backends: Vec<StorageBackend>,
}

impl From<Overview> for ArchivingOverview {
    fn from(o: Overview) -> Self {
        let n = |s| o.activities.get(&s).copied().unwrap_or(0);
        let f = |r| o.fixity.get(&r).copied().unwrap_or(0);
        let fixity = FixityCounts { ok: f(Some(F::Ok)), mismatch: f(Some(F::Mismatch)), missing: f(Some(F::Missing)), unreadable: f(Some(F::Unreadable)), never_verified: f(None) };
        let jobs = o.jobs.iter().map(|(s, c)| JobStatusCount { status: (*s).into(), count: *c }).collect();
        Self {
            activities: ActivityStateCounts {
                total: n(S::NeverArchived) + n(S::Archived) + n(S::Changed),
                never_archived: n(S::NeverArchived),
                archived: n(S::Archived),
                changed: n(S::Changed),
            },
            jobs,
            stored_files: o.stored_files,
            stored_bytes: BigInt(o.stored_bytes),
            fixity,
            storage_backends: o.storage_backends.into_iter().map(StorageBackend::new).collect(),
        }
    }
}
