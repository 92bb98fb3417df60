//! Mutations of the policy and of the archiving switches (needs `manage`).
//!
//! `updatePolicy` changes only the fields given. A field a job can override takes
//! `{ value, locked }`, each optional (`{ locked: true }` locks the current value); the others
//! take their value directly.
use async_graphql::{Context, InputObject, MaybeUndefined, Object, Result, SimpleObject, ID};

use crate::{
    domain,
    graphql::{
        context::ContextExt,
        ids::{self, NodeType},
        types::*,
    },
    service::policy::{Lockable, PolicyUpdate},
};

#[derive(InputObject)]
pub struct FormatSettingInput {
    value: Option<ArchiveFormat>,
    /// Whether jobs must use the policy's value; omitted: unchanged.
    locked: Option<bool>,
}

#[derive(InputObject)]
pub struct FilenamePatternSettingInput {
    /// A pattern with `${variable}` placeholders (see `docs/api.md`).
    value: Option<String>,
    locked: Option<bool>,
}

#[derive(InputObject)]
pub struct RetentionSettingInput {
    /// Days an archive is kept, from 1 to 36500.
    value: Option<i32>,
    /// Keep archives until deleted by hand (wins over `value`).
    keep_forever: Option<bool>,
    locked: Option<bool>,
}

#[derive(InputObject)]
pub struct StorageBackendsSettingInput {
    /// The backends each package is stored on, one copy on each; empty: the default backend.
    value: Option<Vec<ID>>,
    locked: Option<bool>,
}

#[derive(InputObject)]
pub struct BooleanSettingInput {
    value: Option<bool>,
    locked: Option<bool>,
}

#[derive(InputObject)]
pub struct JobTimeoutSettingInput {
    /// Seconds from a job's start to its TIMEOUT, from 1 to 2678400 (31 days).
    value: Option<i32>,
    locked: Option<bool>,
}

#[derive(InputObject)]
pub struct ReportOptionsSettingInput {
    /// The options to change; an omitted option stays as it is.
    value: Option<ReportOptionsInput>,
    locked: Option<bool>,
}

/// The fields to change; an omitted field stays as it is. Applies to jobs created afterwards.
#[derive(InputObject)]
pub struct UpdatePolicyInput {
    format: Option<FormatSettingInput>,
    filename_pattern: Option<FilenamePatternSettingInput>,
    retention_days: Option<RetentionSettingInput>,
    storage_backend_ids: Option<StorageBackendsSettingInput>,
    timestamping: Option<BooleanSettingInput>,
    job_timeout_seconds: Option<JobTimeoutSettingInput>,
    /// What the reports in the packages contain; locked as a whole.
    report_options: Option<ReportOptionsSettingInput>,
    /// Delete files past their retention without a person starting it.
    auto_delete: Option<bool>,
    /// With `autoDelete`: expired files wait for approval.
    deletion_approval: Option<bool>,
    /// Archive jobs active at once across all processes, from 1 to 1000; `null`: the server
    /// setting `max_concurrent_jobs`.
    max_concurrent_jobs: MaybeUndefined<i32>,
    /// Job log entries below this level are not stored; `null`: the server setting `job_log_level`.
    job_log_level: MaybeUndefined<LogLevel>,
}

#[derive(SimpleObject)]
pub struct PolicyPayload {
    /// The policy after the change; `null` when `userErrors` says why nothing changed.
    policy: Option<Policy>,
    user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct SetCategoryArchivingInput {
    category_id: ID,
    /// On or off for the category and everything below it that does not decide otherwise;
    /// `null` (or omitted): inherit from the parent.
    enabled: Option<bool>,
}

#[derive(SimpleObject)]
pub struct CategoryArchivingPayload {
    category: Option<CourseCategory>,
    user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct SetActivityKindArchivingInput {
    /// The category (and everything below it that does not decide otherwise); `null`: the
    /// global switch of the kind.
    category_id: Option<ID>,
    kind: ActivityKind,
    /// `null` (or omitted): inherit (globally: on).
    enabled: Option<bool>,
}

#[derive(SimpleObject)]
pub struct ActivityKindArchivingPayload {
    /// The category; `null` for the global switch.
    category: Option<CourseCategory>,
    /// The kind's switch where it was set, as it holds now.
    activity_kind: Option<ActivityKindArchiving>,
    user_errors: Vec<UserError>,
}

fn lockable<T, U>(v: Option<T>, locked: Option<bool>, f: impl FnOnce(T) -> U) -> Lockable<U> {
    Lockable { value: v.map(f), locked }
}

fn maybe<T, U>(m: MaybeUndefined<T>, f: impl FnOnce(T) -> U) -> Option<Option<U>> {
    match m {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(f(v))),
    }
}

#[derive(Default)]
pub struct PolicyMutations;

#[Object]
impl PolicyMutations {
    /// Changes the global policy (needs `manage`). Invalid values come back as `userErrors`
    /// naming the field, and then nothing is changed. Jobs created before keep their settings.
    async fn update_policy(&self, ctx: &Context<'_>, input: UpdatePolicyInput) -> Result<PolicyPayload> {
        let backends = match input.storage_backend_ids {
            Some(s) => Some(Lockable {
                value: s.value.map(|v| v.iter().map(|id| ids::decode(id, NodeType::StorageBackend)).collect::<Result<Vec<_>, _>>()).transpose()?,
                locked: s.locked,
            }),
            None => None,
        };
        let retention = input.retention_days.map(|r| Lockable {
            value: match (r.keep_forever, r.value) {
                (Some(true), _) => Some(None),
                (_, Some(d)) => Some(Some(d as i64)),
                _ => None,
            },
            locked: r.locked,
        });
        let update = PolicyUpdate {
            format: input.format.map(|s| lockable(s.value, s.locked, domain::ArchiveFormat::from)),
            filename_pattern: input.filename_pattern.map(|s| lockable(s.value, s.locked, |v| v)),
            retention_days: retention,
            storage_backends: backends,
            timestamping: input.timestamping.map(|s| lockable(s.value, s.locked, |v| v)),
            job_timeout_seconds: input.job_timeout_seconds.map(|s| lockable(s.value, s.locked, i64::from)),
            report_options: input.report_options.map(|s| lockable(s.value, s.locked, domain::ReportOptionsPatch::from)),
            auto_delete: input.auto_delete,
            deletion_approval: input.deletion_approval,
            max_concurrent_jobs: maybe(input.max_concurrent_jobs, i64::from),
            job_log_level: maybe(input.job_log_level, domain::LogLevel::from),
        };
        ctx.loaders().clear();
        Ok(match ctx.services().update_policy(ctx.access()?, update).await? {
            Ok(values) => PolicyPayload { policy: Some(Policy { values }), user_errors: vec![] },
            Err(es) => PolicyPayload { policy: None, user_errors: es.into_iter().map(Into::into).collect() },
        })
    }

    /// Switches archiving on or off for a category and below, or back to inherit (needs `manage`).
    async fn set_category_archiving(&self, ctx: &Context<'_>, input: SetCategoryArchivingInput) -> Result<CategoryArchivingPayload> {
        let id = ids::decode(&input.category_id, NodeType::CourseCategory)?;
        ctx.loaders().clear();
        let cat = ctx.services().set_category_archiving(ctx.access()?, id, input.category_id.as_str(), input.enabled).await?;
        Ok(CategoryArchivingPayload { category: Some(CourseCategory::new(cat)), user_errors: vec![] })
    }

    /// Switches archiving of one activity kind on or off in a category and below, or globally,
    /// or back to inherit (needs `manage`).
    async fn set_activity_kind_archiving(&self, ctx: &Context<'_>, input: SetActivityKindArchivingInput) -> Result<ActivityKindArchivingPayload> {
        let category = input.category_id.as_ref().map(|c| ids::decode(c, NodeType::CourseCategory)).transpose()?;
        let kind = domain::ActivityKind::from(input.kind);
        ctx.loaders().clear();
        let s = ctx.services();
        let access = ctx.access()?;
        let cat = s.set_kind_archiving(access, category.zip(input.category_id.as_ref().map(|c| c.as_str())), kind, input.enabled).await?;
        let switches = match &cat {
            Some(c) => s.kind_archiving_of(&[c.id]).await?.remove(&c.id).unwrap_or_default(),
            None => s.global_kind_archiving(access).await?,
        };
        let activity_kind = switches.into_iter().find(|k| k.kind == kind).map(ActivityKindArchiving);
        Ok(ActivityKindArchivingPayload { category: cat.map(CourseCategory::new), activity_kind, user_errors: vec![] })
    }
}
