use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};

use super::{enums, CourseCategory, StorageBackend};
use crate::{
    domain::{self, switches::Decision, PolicyValues},
    graphql::context::ContextExt,
    service::switches::KindSwitch,
};

/// The global archiving defaults. A locked field cannot be overridden when a job is created.
pub struct Policy {
    pub values: PolicyValues,
}

#[Object]
impl Policy {
    async fn format(&self) -> enums::ArchiveFormat {
        self.values.format.into()
    }
    /// Pattern of package file names, with `${variable}` placeholders.
    async fn filename_pattern(&self) -> &str {
        &self.values.filename_pattern
    }
    /// Days an archive is kept; `null`: kept until deleted by hand.
    async fn retention_days(&self) -> Option<u32> {
        self.values.retention_days
    }
    /// Whether packages are timestamped by a Time-Stamp Authority (RFC 3161).
    async fn timestamping(&self) -> bool {
        self.values.timestamping
    }
    /// Seconds a job may run before it ends in TIMEOUT.
    async fn job_timeout_seconds(&self) -> u32 {
        self.values.job_timeout_seconds
    }
    /// Whether files past their retention are deleted without a person starting it.
    async fn auto_delete(&self) -> bool {
        self.values.auto_delete
    }
    /// With `autoDelete`: expired files wait for approval in the list of pending deletions.
    async fn deletion_approval(&self) -> bool {
        self.values.deletion_approval
    }
    /// Where packages are stored, one copy on each; empty: the default backend.
    async fn storage_backends(&self, ctx: &Context<'_>) -> Result<Vec<StorageBackend>> {
        let rows = ctx.services().storage_backends_visible(ctx.access()?, &self.values.storage_backends).await?;
        Ok(self.values.storage_backends.iter().filter_map(|id| rows.iter().find(|b| b.id == *id).cloned()).map(StorageBackend::new).collect())
    }
    /// Archive jobs active at once across all processes (the rest wait in QUEUED): the policy's
    /// value, else the server setting `max_concurrent_jobs`.
    async fn max_concurrent_jobs(&self, ctx: &Context<'_>) -> u32 {
        self.values.max_concurrent_jobs.unwrap_or(ctx.services().server_policy_defaults().0)
    }
    /// Whether `maxConcurrentJobs` is the policy's own (else the server setting's).
    async fn max_concurrent_jobs_set(&self) -> bool {
        self.values.max_concurrent_jobs.is_some()
    }
    /// Job log entries below this level are not stored (for jobs created from now on): the
    /// policy's level, else the server setting `job_log_level`.
    async fn job_log_level(&self, ctx: &Context<'_>) -> enums::LogLevel {
        self.values.job_log_level.unwrap_or(ctx.services().server_policy_defaults().1).into()
    }
    /// Whether `jobLogLevel` is the policy's own (else the server setting's).
    async fn job_log_level_set(&self) -> bool {
        self.values.job_log_level.is_some()
    }
    /// What the reports in the packages contain besides the JSON report.
    async fn report_options(&self) -> ReportOptions {
        self.values.report_options.into()
    }
    /// The fields a job cannot override.
    async fn locked(&self) -> Vec<enums::PolicyField> {
        self.values.locked.iter().map(|f| (*f).into()).collect()
    }
    /// The Time-Stamp Authority that timestamps packages when `timestamping` is on (server
    /// configuration, read-only here).
    async fn timestamp_authority(&self, ctx: &Context<'_>) -> TimestampAuthority {
        TimestampAuthority(ctx.services().timestamp_authority())
    }
    /// The global switch of each activity kind; a category's switch overrides it below the category.
    async fn activity_kinds(&self, ctx: &Context<'_>) -> Result<Vec<ActivityKindArchiving>> {
        Ok(ctx.services().global_kind_archiving(ctx.access()?).await?.into_iter().map(ActivityKindArchiving).collect())
    }
}

/// What the reports of a package contain besides the JSON report, which is always there. Each
/// package records its options in `bag-info.txt` (`Archive-Report-Options`) and
/// `data/metadata.json` (`package.reportOptions`).
#[derive(SimpleObject, Clone, Copy)]
pub struct ReportOptions {
    /// A static HTML page beside each JSON report.
    pub html: bool,
    /// Quiz: the right answer of each question.
    pub right_answers: bool,
    /// Quiz: the feedback of each question; assignment: the graders' feedback comment and files.
    pub feedback: bool,
    /// Quiz: the steps of each answer.
    pub answer_history: bool,
}

impl From<domain::ReportOptions> for ReportOptions {
    fn from(o: domain::ReportOptions) -> Self {
        Self { html: o.html, right_answers: o.right_answers, feedback: o.feedback, answer_history: o.answer_history }
    }
}

/// Report options to set; an omitted option stays as it is (a job: the policy's).
#[derive(InputObject, Clone, Copy)]
pub struct ReportOptionsInput {
    pub html: Option<bool>,
    pub right_answers: Option<bool>,
    pub feedback: Option<bool>,
    pub answer_history: Option<bool>,
}

impl From<ReportOptionsInput> for domain::ReportOptionsPatch {
    fn from(i: ReportOptionsInput) -> Self {
        Self { html: i.html, right_answers: i.right_answers, feedback: i.feedback, answer_history: i.answer_history }
    }
}

/// What a job does when its packages cannot be timestamped once its retries are used up.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::config::TimestampFailurePolicy")]
pub enum TimestampFailurePolicy {
    /// The job fails.
    Fail,
    /// The job completes; its files stay without token, with a warning in its log and a
    /// TIMESTAMP_FAILED event (sign them later with `signArchiveFile`).
    CompleteUnsigned,
}

/// The server's Time-Stamp Authority settings (without credentials).
pub struct TimestampAuthority(pub crate::service::timestamps::AuthorityView);

#[Object]
impl TimestampAuthority {
    /// Whether a TSA is configured; without one, packages are not timestamped (jobs complete
    /// with a warning in their log) and `signArchiveFile` answers TSA_NOT_CONFIGURED.
    async fn configured(&self) -> bool {
        self.0.url.is_some()
    }
    async fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }
    /// Subjects of the certificates a TSA's signer must chain to.
    async fn trust_anchor_subjects(&self) -> &[String] {
        &self.0.trust_anchor_subjects
    }
    async fn failure_policy(&self) -> TimestampFailurePolicy {
        self.0.failure_policy.into()
    }
    /// Whether requests carry HTTP basic auth (the credentials are never shown).
    async fn basic_auth(&self) -> bool {
        self.0.basic_auth
    }
    async fn connect_timeout_seconds(&self) -> u32 {
        self.0.connect_timeout_seconds
    }
    async fn timeout_seconds(&self) -> u32 {
        self.0.timeout_seconds
    }
    /// Retries of the SIGN stage (with backoff) before the failure policy applies.
    async fn max_retries(&self) -> u32 {
        self.0.max_retries
    }
}

/// What decided whether archiving is on.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::switches::SwitchOrigin")]
pub enum ArchivingSwitchOrigin {
    /// No switch is set anywhere above: archiving is on.
    Default,
    /// The global switch of the activity kind (`Policy.activityKinds`).
    Global,
    /// The switch of the object's own category (for a category: its own).
    Category,
    /// The switch of an ancestor of the object's category.
    Inherited,
}

/// The switch that decided `archivingEnabled`.
pub struct ArchivingSwitchSource(pub Decision);

#[Object]
impl ArchivingSwitchSource {
    async fn origin(&self) -> ArchivingSwitchOrigin {
        self.0.origin.into()
    }
    /// The category whose switch decided (with CATEGORY and INHERITED).
    async fn category(&self, ctx: &Context<'_>) -> Result<Option<CourseCategory>> {
        match self.0.category_id {
            // An ancestor of something the caller sees: visible by construction.
            Some(id) => Ok(ctx.loaders().category.load_one(id).await?.map(CourseCategory::new)),
            None => Ok(None),
        }
    }
    /// Set when an activity kind's switch decided; `null` when the category's switch for
    /// everything did (or none did).
    async fn activity_kind(&self) -> Option<enums::ActivityKind> {
        self.0.kind.map(Into::into)
    }
}

/// One activity kind's switch somewhere (a category, or globally).
pub struct ActivityKindArchiving(pub KindSwitch);

#[Object]
impl ActivityKindArchiving {
    async fn kind(&self) -> enums::ActivityKind {
        self.0.kind.into()
    }
    /// Whether activities of this kind are archived here, by the kind switches alone (a category
    /// switched off as a whole archives no kind: see `archivingEnabled` of the category).
    async fn enabled(&self) -> bool {
        self.0.decision.enabled
    }
    /// The switch set right here; `null`: inherited.
    async fn setting(&self) -> Option<bool> {
        self.0.setting
    }
    async fn source(&self) -> ArchivingSwitchSource {
        ArchivingSwitchSource(self.0.decision)
    }
}
