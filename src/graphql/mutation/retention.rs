//! Mutations of retention and deletion: delete one file, legal holds, decisions on pending
//! deletions.
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};

use crate::graphql::{
    context::ContextExt,
    ids::{self, NodeType},
    types::*,
};
use crate::{
    error::AppError,
    service::retention::{HoldSubject, HoldTarget},
};

#[derive(InputObject)]
pub struct DeleteArchiveFileInput {
    /// An `ArchiveFile` id.
    id: ID,
    /// Why the file is deleted before (or regardless of) its retention; recorded on the file and
    /// in the audit log. Required.
    reason: String,
}

#[derive(SimpleObject)]
pub struct DeleteArchiveFilePayload {
    /// The file, now deleted (`deletedAt`, `deletionReason: MANUAL`); `null` on `userErrors`.
    file: Option<ArchiveFile>,
    user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct SetLegalHoldInput {
    /// An `ArchiveJob` id (holds every file of the job) or an `ArchiveFile` id.
    id: ID,
    /// `true` sets the hold, `false` releases it.
    hold: bool,
    /// Why; required when setting.
    reason: Option<String>,
}

#[derive(SimpleObject)]
pub struct SetLegalHoldPayload {
    /// The job, when `id` named a job.
    job: Option<ArchiveJob>,
    /// The file, when `id` named a file.
    file: Option<ArchiveFile>,
    user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct DecidePendingDeletionsInput {
    /// `ArchiveFile` ids from `pendingDeletions` (at most 100).
    file_ids: Vec<ID>,
    /// `true` deletes them now; `false` keeps them for good (retention does not propose them again).
    approve: bool,
    /// Why; required when denying.
    reason: Option<String>,
}

#[derive(SimpleObject)]
pub struct DecidePendingDeletionsPayload {
    /// The files decided, as they are now.
    files: Vec<ArchiveFile>,
    user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct RetentionMutations;

#[Object]
impl RetentionMutations {
    /// Deletes one stored file now (needs `DELETE` in its course). Refused under legal hold
    /// (`LEGAL_HOLD`); the file's record stays, with who deleted it and why.
    async fn delete_archive_file(&self, ctx: &Context<'_>, input: DeleteArchiveFileInput) -> Result<DeleteArchiveFilePayload> {
        let id = ids::decode(&input.id, NodeType::ArchiveFile)?;
        ctx.loaders().clear();
        Ok(match ctx.services().delete_file(ctx.access()?, id, &input.reason).await? {
            Ok(f) => DeleteArchiveFilePayload { file: Some(ArchiveFile::new(f)), user_errors: vec![] },
            Err(es) => DeleteArchiveFilePayload { file: None, user_errors: es.into_iter().map(Into::into).collect() },
        })
    }

    /// Sets or releases a legal hold on a job or a file. Setting needs `DELETE` in the object's
    /// course; releasing needs `MANAGE`.
    async fn set_legal_hold(&self, ctx: &Context<'_>, input: SetLegalHoldInput) -> Result<SetLegalHoldPayload> {
        let target = match ids::decode_any(&input.id)?.0 {
            NodeType::ArchiveJob => HoldTarget::Job(ids::decode_uuid(&input.id, NodeType::ArchiveJob)?),
            NodeType::ArchiveFile => HoldTarget::File(ids::decode(&input.id, NodeType::ArchiveFile)?),
            _ => return Err(AppError::bad_input("legal holds apply to an ArchiveJob or an ArchiveFile").into()),
        };
        ctx.loaders().clear();
        Ok(match ctx.services().set_legal_hold(ctx.access()?, target, input.hold, input.reason.as_deref()).await? {
            Ok(HoldSubject::Job(j)) => SetLegalHoldPayload { job: Some(ArchiveJob::new(j)), file: None, user_errors: vec![] },
            Ok(HoldSubject::File(f)) => SetLegalHoldPayload { job: None, file: Some(ArchiveFile::new(f)), user_errors: vec![] },
            Err(es) => SetLegalHoldPayload { job: None, file: None, user_errors: es.into_iter().map(Into::into).collect() },
        })
    }

    /// Approves (deletes now) or denies (keeps) pending deletions, each recorded with who and why.
    /// Needs `DELETE` in each file's course. When a file cannot be decided, none is.
    async fn decide_pending_deletions(&self, ctx: &Context<'_>, input: DecidePendingDeletionsInput) -> Result<DecidePendingDeletionsPayload> {
        let ids = input.file_ids.iter().map(|id| ids::decode(id, NodeType::ArchiveFile)).collect::<Result<Vec<_>, _>>()?;
        ctx.loaders().clear();
        let d = ctx.services().decide_pending_deletions(ctx.access()?, &ids, input.approve, input.reason.as_deref()).await?;
        Ok(DecidePendingDeletionsPayload { files: d.files.into_iter().map(ArchiveFile::new).collect(), user_errors: d.errors.into_iter().map(Into::into).collect() })
    }
}
