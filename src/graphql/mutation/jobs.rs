//! Mutations of archive jobs: create, cancel, retry, delete.
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};

use crate::graphql::{
    context::ContextExt,
    ids::{self, NodeType},
    types::*,
};
use crate::{
    domain::{self, SettingsOverrides},
    error::UserErrorCode as Code,
    service::jobs,
};

#[derive(InputObject)]
pub struct CreateArchiveJobInput {
    /// Activities of one course; one task each.
    activity_ids: Vec<ID>,
    /// Container format; default: the policy's.
    format: Option<ArchiveFormat>,
    /// Package name pattern with `${variable}` placeholders; default: the policy's.
    filename_pattern: Option<String>,
    /// Days to keep the archive; default: the policy's. See `keepForever`.
    retention_days: Option<u32>,
    /// Keep the archive until deleted by hand (overrides `retentionDays`).
    keep_forever: Option<bool>,
    /// Store each package on these backends; default: the policy's, else the default backend.
    storage_backend_ids: Option<Vec<ID>>,
    timestamping: Option<bool>,
    /// Seconds the job may run from its start before it ends in TIMEOUT.
    job_timeout_seconds: Option<u32>,
    /// What the reports contain; an omitted option is the policy's.
    report_options: Option<ReportOptionsInput>,
    /// MANUAL (a person, the default) or API (another system).
    origin: Option<JobOrigin>,
}

#[derive(SimpleObject)]
pub struct ArchiveJobPayload {
    /// The job; `null` when `userErrors` says why not.
    job: Option<ArchiveJob>,
    user_errors: Vec<UserError>,
}

impl ArchiveJobPayload {
    fn from(outcome: jobs::Outcome<crate::entity::archive_job::Model>) -> Self {
        match outcome {
            Ok(j) => Self { job: Some(ArchiveJob::new(j)), user_errors: vec![] },
            Err(es) => Self { job: None, user_errors: es.into_iter().map(Into::into).collect() },
        }
    }
}

#[derive(InputObject)]
pub struct ArchiveJobIdInput {
    id: ID,
}

#[derive(InputObject)]
pub struct DeleteArchiveJobInput {
    id: ID,
    /// Remove the job's stored files too (the job stays, as DELETED). Without, only a job that
    /// stored nothing can be deleted, and its record goes.
    #[graphql(default = true)]
    delete_files: bool,
}

#[derive(SimpleObject)]
pub struct DeleteArchiveJobPayload {
    /// The job, now DELETED; `null` when its record was removed or on `userErrors`.
    job: Option<ArchiveJob>,
    deleted_job_id: Option<ID>,
    user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct JobMutations;

#[Object]
impl JobMutations {
    /// Starts archiving activities of one course.
    async fn create_archive_job(&self, ctx: &Context<'_>, input: CreateArchiveJobInput) -> Result<ArchiveJobPayload> {
        let activity_ids = input.activity_ids.iter().map(|id| ids::decode(id, NodeType::Activity)).collect::<Result<Vec<_>, _>>()?;
        let storage_backend_ids = input
            .storage_backend_ids
            .map(|v| v.iter().map(|id| ids::decode(id, NodeType::StorageBackend)).collect::<Result<Vec<_>, _>>())
            .transpose()?;
        let origin = match input.origin.map(domain::JobOrigin::from).unwrap_or(domain::JobOrigin::Manual) {
            o @ (domain::JobOrigin::Manual | domain::JobOrigin::Api) => o,
            _ => {
                let e = crate::error::UserError { field: vec!["origin".into()], code: Code::Invalid, message: "SCHEDULE and SIGNAL are set by automation".into() };
                return Ok(ArchiveJobPayload { job: None, user_errors: vec![e.into()] });
            }
        };
        let retention_days = match (input.keep_forever, input.retention_days) {
            (Some(true), _) => Some(None),
            (_, Some(d)) => Some(Some(d)),
            _ => None,
        };
        let overrides = SettingsOverrides {
            format: input.format.map(Into::into),
            filename_pattern: input.filename_pattern,
            retention_days,
            storage_backends: None,
            timestamping: input.timestamping,
            job_timeout_seconds: input.job_timeout_seconds,
            report_options: input.report_options.map(Into::into),
        };
        let create = jobs::CreateJob { activity_ids, overrides, storage_backend_ids, origin };
        ctx.loaders().clear();
        let outcome = ctx.services().create_job(ctx.access()?, create).await?;
        Ok(ArchiveJobPayload::from(outcome))
    }

    /// Cancels a job: at once when it has not started, else within seconds, between two steps.
    async fn cancel_archive_job(&self, ctx: &Context<'_>, input: ArchiveJobIdInput) -> Result<ArchiveJobPayload> {
        let id = ids::decode_uuid(&input.id, NodeType::ArchiveJob)?;
        ctx.loaders().clear();
        Ok(ArchiveJobPayload::from(ctx.services().cancel_job(ctx.access()?, id).await?))
    }

    /// Runs a FAILURE or TIMEOUT job again as a new attempt, from the stage that failed.
    async fn retry_archive_job(&self, ctx: &Context<'_>, input: ArchiveJobIdInput) -> Result<ArchiveJobPayload> {
        let id = ids::decode_uuid(&input.id, NodeType::ArchiveJob)?;
        ctx.loaders().clear();
        Ok(ArchiveJobPayload::from(ctx.services().retry_job(ctx.access()?, id).await?))
    }

    /// Deletes a finished job (COMPLETED, FAILURE, TIMEOUT, CANCELED).
    async fn delete_archive_job(&self, ctx: &Context<'_>, input: DeleteArchiveJobInput) -> Result<DeleteArchiveJobPayload> {
        let id = ids::decode_uuid(&input.id, NodeType::ArchiveJob)?;
        ctx.loaders().clear();
        Ok(match ctx.services().delete_job(ctx.access()?, id, input.delete_files).await? {
            Ok(j) => DeleteArchiveJobPayload { job: j.map(ArchiveJob::new), deleted_job_id: Some(input.id), user_errors: vec![] },
            Err(es) => DeleteArchiveJobPayload { job: None, deleted_job_id: None, user_errors: es.into_iter().map(Into::into).collect() },
        })
    }
}
