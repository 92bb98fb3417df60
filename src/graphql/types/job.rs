use async_graphql::{Context, Object, Result, SimpleObject, ID};

use super::{connection, enums, Activity, Conn, Course, StorageBackend};
use crate::{
    domain::{self, JobSettings, LogLevel},
    entity::{archive_file, archive_job, archive_job_transition, archive_task, job_log, timestamp_token},
    error::AppError,
    events::{JobEvent, JobEventKind},
    service::downloads::TokenPart,
    graphql::{
        context::ContextExt,
        ids::{self, NodeType},
        scalars::{BigInt, DateTime},
    },
};

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T> {
    s.parse().map_err(|_| AppError::internal(format!("unknown {what} {s:?}")).into())
}

/// An archive job: one course, one task per activity.
#[derive(Clone)]
pub struct ArchiveJob {
    pub model: archive_job::Model,
}

impl ArchiveJob {
    pub fn new(model: archive_job::Model) -> Self {
        Self { model }
    }
}

/// The settings a job runs with: the policy's, with what the job was allowed to override.
#[derive(SimpleObject)]
pub struct JobSettingsView {
    format: enums::ArchiveFormat,
    filename_pattern: String,
    /// Days the archive is kept; `null`: until deleted by hand.
    retention_days: Option<u32>,
    /// Names of the storage backends each package goes to.
    storage_backends: Vec<String>,
    timestamping: bool,
    job_timeout_seconds: u32,
    /// Log entries of the job below this level are not stored; `null` for jobs created before
    /// the level was kept per job (they follow the server setting).
    log_level: Option<enums::LogLevel>,
    /// What the job's reports contain.
    report_options: super::ReportOptions,
}

#[Object]
impl ArchiveJob {
    pub async fn id(&self) -> ID {
        ids::encode(NodeType::ArchiveJob, self.model.id)
    }
    async fn status(&self) -> Result<enums::ArchiveJobStatus> {
        Ok(parse::<domain::JobStatus>(&self.model.status, "job status")?.into())
    }
    /// 0–100; never goes backwards within one attempt.
    async fn progress(&self) -> i32 {
        self.model.progress
    }
    async fn origin(&self) -> Result<enums::JobOrigin> {
        Ok(parse::<domain::JobOrigin>(&self.model.origin, "job origin")?.into())
    }
    /// The subject of the token that created the job.
    async fn requested_by(&self) -> &str {
        &self.model.requested_by
    }
    async fn settings(&self) -> Result<JobSettingsView> {
        let s: JobSettings = serde_json::from_value(self.model.settings.clone()).map_err(|e| AppError::internal(format!("job settings: {e}")))?;
        Ok(JobSettingsView {
            format: s.format.into(),
            filename_pattern: s.filename_pattern,
            retention_days: s.retention_days,
            storage_backends: s.storage_backends,
            timestamping: s.timestamping,
            job_timeout_seconds: s.job_timeout_seconds,
            log_level: s.log_level.map(Into::into),
            report_options: s.report_options.into(),
        })
    }
    async fn course(&self, ctx: &Context<'_>) -> Result<Course> {
        let m = ctx.loaders().course.load_one(self.model.course_id).await?;
        m.map(Course::new).ok_or_else(|| AppError::internal("job without course").into())
    }
    async fn tasks(&self, ctx: &Context<'_>) -> Result<Vec<ArchiveTask>> {
        Ok(ctx.loaders().job_tasks.load_one(self.model.id).await?.unwrap_or_default().into_iter().map(ArchiveTask::new).collect())
    }
    /// The stored archive files, deleted ones included (see `deletedAt`).
    async fn files(&self, ctx: &Context<'_>) -> Result<Vec<ArchiveFile>> {
        Ok(ctx.loaders().job_files.load_one(self.model.id).await?.unwrap_or_default().into_iter().map(ArchiveFile::new).collect())
    }
    /// Why the job failed (or last failed, while it is retried).
    async fn error(&self) -> Option<&str> {
        self.model.error.as_deref()
    }
    async fn created_at(&self) -> DateTime {
        DateTime(self.model.created_at)
    }
    /// When the current attempt started.
    async fn started_at(&self) -> Option<DateTime> {
        self.model.started_at.map(DateTime)
    }
    async fn finished_at(&self) -> Option<DateTime> {
        self.model.finished_at.map(DateTime)
    }
    /// When the current attempt times out.
    async fn deadline(&self) -> Option<DateTime> {
        self.model.deadline.map(DateTime)
    }
    /// 1 for the first run; each retryArchiveJob starts a new attempt.
    async fn attempt(&self) -> i32 {
        self.model.attempt
    }
    /// Automatic retries of the current attempt after transient errors.
    async fn retries(&self) -> i32 {
        self.model.retries
    }
    async fn next_retry_at(&self) -> Option<DateTime> {
        self.model.next_retry_at.map(DateTime)
    }
    async fn cancel_requested(&self) -> bool {
        self.model.cancel_requested
    }
    /// Increases with every change of the job; events carry it too.
    async fn sequence(&self) -> i64 {
        self.model.sequence
    }
    /// Under legal hold: none of the job's files is deleted, by hand or by retention, until
    /// released. Files can be held on their own too (`ArchiveFile.legalHold`).
    async fn legal_hold(&self) -> bool {
        self.model.legal_hold
    }
    async fn legal_hold_reason(&self) -> Option<&str> {
        self.model.legal_hold_reason.as_deref()
    }
    async fn legal_hold_since(&self) -> Option<DateTime> {
        self.model.legal_hold_since.map(DateTime)
    }
    /// The token subject that set the hold.
    async fn legal_hold_by(&self) -> Option<&str> {
        self.model.legal_hold_by.as_deref()
    }
    /// Every status change of the job, oldest first, with its time and attempt.
    async fn transitions(&self, ctx: &Context<'_>) -> Result<Vec<JobTransition>> {
        Ok(ctx.loaders().job_transitions.load_one(self.model.id).await?.unwrap_or_default().into_iter().map(JobTransition).collect())
    }
    /// The job's log, oldest first; with `minLevel`, only entries at or above it.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn logs(&self, ctx: &Context<'_>, first: Option<i32>, after: Option<String>, min_level: Option<enums::LogLevel>) -> Result<Conn<JobLogEntry>> {
        let min = min_level.map(LogLevel::from).unwrap_or(LogLevel::Trace);
        let page = ctx.services().job_logs(self.model.id, min, &ctx.page(first, after)?).await?;
        Ok(connection(page, JobLogEntry)?)
    }
}

/// The archiving of one activity within a job.
#[derive(Clone)]
pub struct ArchiveTask {
    pub model: archive_task::Model,
}

impl ArchiveTask {
    pub fn new(model: archive_task::Model) -> Self {
        Self { model }
    }
}

#[Object]
impl ArchiveTask {
    pub async fn id(&self) -> ID {
        ids::encode(NodeType::ArchiveTask, self.model.id)
    }
    async fn activity(&self, ctx: &Context<'_>) -> Result<Activity> {
        let m = ctx.loaders().activity.load_one(self.model.activity_id).await?;
        m.map(Activity::new).ok_or_else(|| AppError::internal("task without activity").into())
    }
    async fn status(&self) -> Result<enums::ArchiveTaskStatus> {
        Ok(parse::<domain::TaskStatus>(&self.model.status, "task status")?.into())
    }
    async fn progress(&self) -> i32 {
        self.model.progress
    }
    async fn records_done(&self) -> i32 {
        self.model.records_done
    }
    async fn records_total(&self) -> i32 {
        self.model.records_total
    }
    /// The activity's state fingerprint the finished archive holds.
    async fn fingerprint(&self) -> Option<&str> {
        self.model.fingerprint.as_deref()
    }
    async fn error(&self) -> Option<&str> {
        self.model.error.as_deref()
    }
    async fn created_at(&self) -> DateTime {
        DateTime(self.model.created_at)
    }
    async fn started_at(&self) -> Option<DateTime> {
        self.model.started_at.map(DateTime)
    }
    async fn finished_at(&self) -> Option<DateTime> {
        self.model.finished_at.map(DateTime)
    }
}

/// A stored archive package.
#[derive(Clone)]
pub struct ArchiveFile {
    pub model: archive_file::Model,
}

impl ArchiveFile {
    pub fn new(model: archive_file::Model) -> Self {
        Self { model }
    }
}

#[Object]
impl ArchiveFile {
    pub async fn id(&self) -> ID {
        ids::encode(NodeType::ArchiveFile, self.model.id)
    }
    async fn file_name(&self) -> &str {
        &self.model.file_name
    }
    async fn size_bytes(&self) -> BigInt {
        BigInt(self.model.size_bytes.max(0) as u64)
    }
    /// SHA-256 (hex) of the whole file.
    async fn sha256(&self) -> &str {
        &self.model.sha256
    }
    async fn media_type(&self) -> &str {
        &self.model.media_type
    }
    async fn storage_backend(&self, ctx: &Context<'_>) -> Result<StorageBackend> {
        let m = ctx.loaders().storage_backend.load_one(self.model.storage_backend_id).await?;
        m.map(StorageBackend::new).ok_or_else(|| AppError::internal("file without storage backend").into())
    }
    /// When the retention ends and the file is deleted; `null`: kept until deleted by hand.
    async fn retention_until(&self) -> Option<DateTime> {
        self.model.retention_until.map(DateTime)
    }
    /// The job the file belongs to.
    async fn job(&self, ctx: &Context<'_>) -> Result<ArchiveJob> {
        let m = ctx.loaders().job.load_one(self.model.job_id).await?;
        m.map(ArchiveJob::new).ok_or_else(|| AppError::NotFound.into())
    }
    /// The file's own legal hold (`setLegalHold` on the file). Its job can be held as well: see
    /// `underLegalHold`.
    async fn legal_hold(&self) -> bool {
        self.model.legal_hold
    }
    /// Held by its own hold or its job's. A held file is never deleted, by hand or by retention,
    /// until every hold on it is released.
    async fn under_legal_hold(&self, ctx: &Context<'_>) -> Result<bool> {
        if self.model.legal_hold {
            return Ok(true);
        }
        Ok(ctx.loaders().job.load_one(self.model.job_id).await?.is_some_and(|j| j.legal_hold))
    }
    /// Why the file itself is held (its job's hold is on the job).
    async fn legal_hold_reason(&self) -> Option<&str> {
        self.model.legal_hold_reason.as_deref()
    }
    async fn legal_hold_since(&self) -> Option<DateTime> {
        self.model.legal_hold_since.map(DateTime)
    }
    /// The token subject that set the file's hold.
    async fn legal_hold_by(&self) -> Option<&str> {
        self.model.legal_hold_by.as_deref()
    }
    /// When the file was deleted from storage; the record stays.
    async fn deleted_at(&self) -> Option<DateTime> {
        self.model.deleted_at.map(DateTime)
    }
    async fn deletion_reason(&self) -> Option<enums::FileDeletionReason> {
        self.model.deletion_reason.as_deref().and_then(|r| r.parse::<domain::DeletionReason>().ok()).map(Into::into)
    }
    /// The token subject that deleted it, or `system:<task>` (e.g. `system:retention`).
    async fn deleted_by(&self) -> Option<&str> {
        self.model.deleted_by.as_deref()
    }
    /// The reason a person gave for the deletion.
    async fn deletion_note(&self) -> Option<&str> {
        self.model.deletion_note.as_deref()
    }
    /// Approval mode: since when the retention has ended and the file waits for a decision.
    async fn deletion_pending_since(&self) -> Option<DateTime> {
        self.model.deletion_pending_since.map(DateTime)
    }
    /// The decision on its pending deletion, if one was taken.
    async fn deletion_decision(&self) -> Option<DeletionDecisionView> {
        let decision = self.model.deletion_decision.as_deref()?.parse::<domain::DeletionDecision>().ok()?;
        Some(DeletionDecisionView {
            decision: decision.into(),
            by: self.model.deletion_decided_by.clone().unwrap_or_default(),
            at: self.model.deletion_decided_at.map(DateTime),
            reason: self.model.deletion_decision_reason.clone(),
        })
    }
    async fn created_at(&self) -> DateTime {
        DateTime(self.model.created_at)
    }
    /// When the stored object was last re-read and compared with `sizeBytes` and `sha256` (by the
    /// periodic fixity audit or `verifyArchiveFile`); `null`: not yet.
    async fn last_verified_at(&self) -> Option<DateTime> {
        self.model.last_verified_at.map(DateTime)
    }
    /// The outcome of that check; `null`: not checked yet.
    async fn last_verification(&self) -> Option<enums::FixityResult> {
        self.model.last_verification.as_deref().and_then(|r| r.parse::<domain::FixityResult>().ok()).map(Into::into)
    }
    /// What that check found when it was not `OK`: the sizes and hashes that differ, or why the
    /// object could not be read.
    async fn last_verification_detail(&self) -> Option<&str> {
        self.model.last_verification_detail.as_deref()
    }
    /// A signed URL to download the file, valid for 10 minutes from this answer: fetch it right
    /// before downloading, do not cache it. `null` for a deleted file or a caller without the
    /// `download` capability in the file's course.
    async fn download_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if self.model.deleted_at.is_some() {
            return Ok(None);
        }
        ctx.access()?;
        let loaders = ctx.loaders();
        if !loaders.downloadable.load_one(self.model.job_id).await?.unwrap_or(false) {
            return Ok(None);
        }
        Ok(Some(loaders.signer().await?.url(self.model.id, chrono::Utc::now())))
    }
    /// RFC 3161 timestamps of the file, oldest first (re-timestamping adds one, keeping the older).
    async fn timestamps(&self, ctx: &Context<'_>) -> Result<Vec<TimestampToken>> {
        let job_id = self.model.job_id;
        Ok(ctx.loaders().file_timestamps.load_one(self.model.id).await?.unwrap_or_default().into_iter().map(|t| TimestampToken(t, job_id)).collect())
    }
}

/// A decision on a pending deletion.
#[derive(SimpleObject)]
#[graphql(name = "DeletionDecision")]
pub struct DeletionDecisionView {
    decision: enums::DeletionDecisionKind,
    /// The token subject that decided.
    by: String,
    at: Option<DateTime>,
    reason: Option<String>,
}

/// An RFC 3161 timestamp of a file from a Time-Stamp Authority. To check it yourself:
/// `openssl ts -verify -data <package> -in <package>.tsr -CAfile <tsa-ca.pem>` (see `tsrUrl`).
pub struct TimestampToken(pub timestamp_token::Model, pub uuid::Uuid);

impl TimestampToken {
    /// A signed URL of one part of the token, for callers with `download` in the file's course
    /// while the token still has its data.
    async fn part_url(&self, ctx: &Context<'_>, part: TokenPart) -> Result<Option<String>> {
        if self.0.data_removed_at.is_some() || (part == TokenPart::Chain && self.0.chain_pem.is_none()) {
            return Ok(None);
        }
        ctx.access()?;
        let loaders = ctx.loaders();
        if !loaders.downloadable.load_one(self.1).await?.unwrap_or(false) {
            return Ok(None);
        }
        Ok(Some(loaders.signer().await?.token_url(self.0.id, part, chrono::Utc::now())))
    }
}

#[Object]
impl TimestampToken {
    /// The TSA the token came from.
    async fn tsa_url(&self) -> &str {
        &self.0.tsa_url
    }
    /// The TSA's name: the token's `tsa` field, else its signing certificate's subject.
    async fn tsa_name(&self) -> Option<&str> {
        self.0.tsa_name.as_deref()
    }
    /// The hash of the message imprint: `SHA-256`.
    async fn hash_algorithm(&self) -> &str {
        &self.0.hash_algorithm
    }
    /// The imprint the token asserts (hex): the package's SHA-256.
    async fn message_imprint(&self) -> Option<&str> {
        self.0.message_imprint.as_deref()
    }
    /// The time the TSA asserts.
    async fn gen_time(&self) -> Option<DateTime> {
        self.0.gen_time.map(DateTime)
    }
    /// The token's serial number (hex), unique per TSA.
    async fn serial_number(&self) -> Option<&str> {
        self.0.serial.as_deref()
    }
    /// The token's serial number (hex).
    #[graphql(deprecation = "use serialNumber")]
    async fn serial(&self) -> Option<&str> {
        self.0.serial.as_deref()
    }
    /// The TSA policy under which the token was issued (an OID).
    async fn policy_oid(&self) -> Option<&str> {
        self.0.policy_oid.as_deref()
    }
    /// Whether the token passed every check when last verified (`verifiedAt`): status, imprint,
    /// nonce, CMS signature, timeStamping certificate, signing-certificate attribute and chain to
    /// the configured trust anchors.
    async fn verified(&self) -> bool {
        self.0.verified
    }
    /// When the token was last verified (when it was obtained, or re-verified since).
    async fn verified_at(&self) -> Option<DateTime> {
        self.0.verified_at.map(DateTime)
    }
    /// Why the last verification failed; `null` when it passed.
    async fn failure_reason(&self) -> Option<&str> {
        self.0.verification_error.as_deref()
    }
    /// Why the last verification failed.
    #[graphql(deprecation = "use failureReason")]
    async fn verification_error(&self) -> Option<&str> {
        self.0.verification_error.as_deref()
    }
    /// When the TSA's signing certificate expires: re-timestamp the file before then (see
    /// `filesToRetimestamp`).
    async fn tsa_certificate_expires_at(&self) -> Option<DateTime> {
        self.0.signer_not_after.map(DateTime)
    }
    /// Who asked for the token: a token subject, or `system:engine` for the job's SIGN stage.
    async fn requested_by(&self) -> Option<&str> {
        self.0.requested_by.as_deref()
    }
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    /// When the token's data was removed because its file was deleted; the record stays.
    async fn data_removed_at(&self) -> Option<DateTime> {
        self.0.data_removed_at.map(DateTime)
    }
    /// A signed URL of the TimeStampReq as sent (DER, `.tsq`), valid for 10 minutes; `null`
    /// without `download` in the file's course or once the data was removed.
    async fn tsq_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        self.part_url(ctx, TokenPart::Query).await
    }
    /// A signed URL of the TimeStampResp as received (DER, `.tsr`), as `tsqUrl`.
    async fn tsr_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        self.part_url(ctx, TokenPart::Reply).await
    }
    /// A signed URL of the certificate path the token was verified against (PEM, signer first,
    /// trust anchor last), as `tsqUrl`.
    async fn certificate_chain_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        self.part_url(ctx, TokenPart::Chain).await
    }
}

/// One status change of a job.
pub struct JobTransition(pub archive_job_transition::Model);

#[Object]
impl JobTransition {
    async fn from(&self) -> Result<Option<enums::ArchiveJobStatus>> {
        self.0.from_status.as_deref().map(|s| parse::<domain::JobStatus>(s, "job status").map(Into::into)).transpose()
    }
    async fn to(&self) -> Result<enums::ArchiveJobStatus> {
        Ok(parse::<domain::JobStatus>(&self.0.to_status, "job status")?.into())
    }
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }
    async fn at(&self) -> DateTime {
        DateTime(self.0.at)
    }
}

pub struct JobLogEntry(pub job_log::Model);

#[Object]
impl JobLogEntry {
    async fn level(&self) -> Result<enums::LogLevel> {
        LogLevel::from_repr(self.0.level).map(Into::into).ok_or_else(|| AppError::internal("unknown log level").into())
    }
    async fn message(&self) -> &str {
        &self.0.message
    }
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    /// The task the entry is about, if any.
    async fn task_id(&self) -> Option<ID> {
        self.0.task_id.map(|t| ids::encode(NodeType::ArchiveTask, t))
    }
}

/// A change of a job, as subscriptions deliver it.
pub struct ArchiveJobEvent {
    pub event: JobEvent,
    /// True for the first event of a subscription: the state when it started.
    pub snapshot: bool,
}

#[Object]
impl ArchiveJobEvent {
    /// The job's sequence number at this event; increases with every change of the job.
    async fn sequence(&self) -> i64 {
        self.event.job.sequence
    }
    async fn kind(&self) -> enums::ArchiveJobEventKind {
        if self.snapshot {
            return enums::ArchiveJobEventKind::Snapshot;
        }
        match self.event.kind {
            JobEventKind::Created => enums::ArchiveJobEventKind::Created,
            JobEventKind::StatusChanged => enums::ArchiveJobEventKind::StatusChanged,
            JobEventKind::Progress => enums::ArchiveJobEventKind::Progress,
            JobEventKind::TaskChanged => enums::ArchiveJobEventKind::TaskChanged,
            JobEventKind::Updated => enums::ArchiveJobEventKind::Updated,
            JobEventKind::Deleted => enums::ArchiveJobEventKind::Deleted,
            JobEventKind::FileDeleted => enums::ArchiveJobEventKind::FileDeleted,
            JobEventKind::FixityFailed => enums::ArchiveJobEventKind::FixityFailed,
            JobEventKind::TimestampFailed => enums::ArchiveJobEventKind::TimestampFailed,
        }
    }
    /// The job: its `status`, `progress` and `sequence` are those right after the change; its
    /// other fields and its lists (tasks, files, logs) are read when the event is delivered.
    async fn job(&self) -> ArchiveJob {
        ArchiveJob::new(self.event.job.clone())
    }
    /// Where this event stands in the event log: pass the last one received as
    /// `archiveJobsChanged(after:)` to resume after a reconnect. Opaque.
    async fn cursor(&self) -> String {
        self.event.id.to_string()
    }
    /// The task that changed, for TASK_CHANGED events.
    async fn task_id(&self) -> Option<ID> {
        self.event.task_id.map(|t| ids::encode(NodeType::ArchiveTask, t))
    }
}
