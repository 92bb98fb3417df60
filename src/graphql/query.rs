//! The query root. Resolvers decode arguments, call a service, wrap the result: nothing more.
use async_graphql::{Context, InputObject, Object, Result, ID};

use super::{
    context::ContextExt,
    ids::{self, NodeType},
    loaders,
    types::*,
};
use crate::{
    domain,
    error::AppError,
    service::{audit, catalog, jobs},
};

#[derive(InputObject, Default)]
pub struct ArchiveJobFilter {
    statuses: Option<Vec<ArchiveJobStatus>>,
    course_id: Option<ID>,
    /// Jobs that archive this activity.
    activity_id: Option<ID>,
    origins: Option<Vec<JobOrigin>>,
    created_after: Option<crate::graphql::scalars::DateTime>,
    created_before: Option<crate::graphql::scalars::DateTime>,
}

#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    actions: Option<Vec<AuditAction>>,
    /// A token subject, or `system`.
    actor: Option<String>,
    /// A GraphQL type name: `ArchiveFile`, `ArchiveJob`, `StorageBackend`, `CourseCategory`, `Policy`.
    target_type: Option<String>,
    /// The global id of the object acted on.
    target_id: Option<ID>,
    /// Entries at or after this instant.
    since: Option<crate::graphql::scalars::DateTime>,
    /// Entries before this instant.
    until: Option<crate::graphql::scalars::DateTime>,
}

#[derive(InputObject, Default)]
pub struct CourseFilter {
    /// Only courses in this category.
    category_id: Option<ID>,
    /// With `categoryId`: also courses in its sub-categories (default true).
    #[graphql(default = true)]
    include_subcategories: bool,
    /// Case-insensitive text in the short or full name.
    search: Option<String>,
}

#[derive(InputObject, Default)]
pub struct CourseOrder {
    #[graphql(default)]
    field: CourseOrderField,
    #[graphql(default)]
    direction: OrderDirection,
}

#[derive(InputObject, Default)]
pub struct ActivityFilter {
    course_id: Option<ID>,
    kinds: Option<Vec<ActivityKind>>,
    archive_states: Option<Vec<ActivityArchiveState>>,
    /// Case-insensitive text in the name.
    search: Option<String>,
}

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The caller.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        Ok(Viewer(ctx.access()?.clone()))
    }

    /// Any object by its global id. Out of scope answers NOT_FOUND, like a missing object.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let (t, _) = ids::decode_any(&id)?;
        let found = load_nodes(ctx, t, &[id]).await?.pop().flatten();
        Ok(Some(found.ok_or(AppError::NotFound)?))
    }

    /// Objects by global id, in the order asked; `null` where missing or out of scope.
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Node>>> {
        ctx.access()?;
        if ids.len() > 100 {
            return Err(AppError::bad_input("at most 100 ids at once").into());
        }
        // One statement per type asked for, whatever the number of ids.
        let mut out: Vec<Option<Node>> = (0..ids.len()).map(|_| None).collect();
        for t in [
            NodeType::Course,
            NodeType::CourseCategory,
            NodeType::Activity,
            NodeType::StorageBackend,
            NodeType::ArchiveJob,
            NodeType::ArchiveTask,
            NodeType::ArchiveFile,
        ] {
            let (pos, of_type): (Vec<usize>, Vec<ID>) =
                ids.iter().enumerate().filter(|(_, id)| matches!(ids::decode_any(id), Ok((x, _)) if x == t)).map(|(i, id)| (i, id.clone())).unzip();
            if of_type.is_empty() {
                continue;
            }
            for (p, n) in pos.into_iter().zip(load_nodes(ctx, t, &of_type).await?) {
                out[p] = n;
            }
        }
        Ok(out)
    }

    /// Categories at one level of the tree: top-level ones, or the children of `parentId`.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn categories(&self, ctx: &Context<'_>, parent_id: Option<ID>, first: Option<i32>, after: Option<String>) -> Result<Conn<CourseCategory>> {
        let parent = parent_id.map(|p| ids::decode(&p, NodeType::CourseCategory)).transpose()?;
        let page = ctx.services().categories(ctx.access()?, parent, &ctx.page(first, after)?).await?;
        let rows: Vec<_> = page.items.iter().map(|(_, m)| m.clone()).collect();
        loaders::preload_categories(ctx, &loaders::nodes(&ctx.look_ahead()), &rows).await?;
        Ok(connection(page, CourseCategory::new)?)
    }

    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn courses(
        &self,
        ctx: &Context<'_>,
        filter: Option<CourseFilter>,
        order_by: Option<CourseOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Course>> {
        let f = filter.unwrap_or(CourseFilter { include_subcategories: true, ..Default::default() });
        let o = order_by.unwrap_or_default();
        let filter = catalog::CourseFilter {
            category_id: f.category_id.map(|c| ids::decode(&c, NodeType::CourseCategory)).transpose()?,
            include_subcategories: f.include_subcategories,
            search: f.search,
        };
        let order = match o.field {
            CourseOrderField::ShortName => catalog::CourseOrder::ShortName,
            CourseOrderField::FullName => catalog::CourseOrder::FullName,
            CourseOrderField::Id => catalog::CourseOrder::Id,
        };
        let page = ctx.services().courses(ctx.access()?, &filter, order, o.direction == OrderDirection::Desc, &ctx.page(first, after)?).await?;
        let rows: Vec<_> = page.items.iter().map(|(_, m)| m.clone()).collect();
        loaders::preload_courses(ctx, &loaders::nodes(&ctx.look_ahead()), &rows).await?;
        Ok(connection(page, Course::new)?)
    }

    /// One course, by global `id` or by the LMS's `lmsId` (exactly one of them).
    async fn course(&self, ctx: &Context<'_>, id: Option<ID>, lms_id: Option<String>) -> Result<Option<Course>> {
        let access = ctx.access()?;
        let m = match (id, lms_id) {
            (Some(id), None) => ctx.services().course(access, ids::decode(&id, NodeType::Course)?).await?,
            (None, Some(lms)) => ctx.services().course_by_lms_id(access, &lms).await?,
            _ => return Err(AppError::bad_input("give exactly one of `id` and `lmsId`").into()),
        };
        Ok(Some(Course::new(m)))
    }

    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn activities(&self, ctx: &Context<'_>, filter: Option<ActivityFilter>, first: Option<i32>, after: Option<String>) -> Result<Conn<Activity>> {
        let f = filter.unwrap_or_default();
        let filter = catalog::ActivityFilter {
            course_id: f.course_id.map(|c| ids::decode(&c, NodeType::Course)).transpose()?,
            kinds: f.kinds.unwrap_or_default().into_iter().map(domain::ActivityKind::from).collect(),
            archive_states: f.archive_states.unwrap_or_default().into_iter().map(domain::ActivityArchiveState::from).collect(),
            search: f.search,
        };
        let page = ctx.services().activities(ctx.access()?, &filter, &ctx.page(first, after)?).await?;
        let rows: Vec<_> = page.items.iter().map(|(_, m)| m.clone()).collect();
        loaders::preload_activities(ctx, &loaders::nodes(&ctx.look_ahead()), &rows, None).await?;
        Ok(connection(page, Activity::new)?)
    }

    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn storage_backends(&self, ctx: &Context<'_>, first: Option<i32>, after: Option<String>) -> Result<Conn<StorageBackend>> {
        let page = ctx.services().storage_backends(ctx.access()?, &ctx.page(first, after)?).await?;
        Ok(connection(page, StorageBackend::new)?)
    }

    /// Archive jobs in scope, newest first.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn archive_jobs(&self, ctx: &Context<'_>, filter: Option<ArchiveJobFilter>, first: Option<i32>, after: Option<String>) -> Result<Conn<ArchiveJob>> {
        let f = filter.unwrap_or_default();
        let filter = jobs::JobFilter {
            statuses: f.statuses.unwrap_or_default().into_iter().map(domain::JobStatus::from).collect(),
            course_id: f.course_id.map(|c| ids::decode(&c, NodeType::Course)).transpose()?,
            activity_id: f.activity_id.map(|a| ids::decode(&a, NodeType::Activity)).transpose()?,
            origins: f.origins.unwrap_or_default().into_iter().map(domain::JobOrigin::from).collect(),
            created_after: f.created_after.map(|d| d.0),
            created_before: f.created_before.map(|d| d.0),
        };
        let page = ctx.services().jobs(ctx.access()?, &filter, &ctx.page(first, after)?).await?;
        let rows: Vec<_> = page.items.iter().map(|(_, m)| m.clone()).collect();
        loaders::preload_jobs(ctx, &loaders::nodes(&ctx.look_ahead()), &rows).await?;
        Ok(connection(page, ArchiveJob::new)?)
    }

    async fn archive_job(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ArchiveJob>> {
        let id = ids::decode_uuid(&id, NodeType::ArchiveJob)?;
        Ok(Some(ArchiveJob::new(ctx.services().job(ctx.access()?, id).await?)))
    }

    /// The global archiving defaults.
    async fn policy(&self, ctx: &Context<'_>) -> Result<Policy> {
        Ok(Policy { values: ctx.services().policy(ctx.access()?).await? })
    }

    /// Destructive and policy actions, newest first (needs `AUDIT`: admins and auditors).
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn audit_log(&self, ctx: &Context<'_>, filter: Option<AuditLogFilter>, first: Option<i32>, after: Option<String>) -> Result<Conn<AuditLogEntry>> {
        let f = filter.unwrap_or_default();
        let filter = audit::AuditFilter {
            actions: f.actions.unwrap_or_default().into_iter().map(domain::AuditAction::from).collect(),
            actor: f.actor,
            target_type: f.target_type,
            target_id: f.target_id.map(|i| i.to_string()),
            since: f.since.map(|d| d.0),
            until: f.until.map(|d| d.0),
        };
        let page = ctx.services().audit_log(ctx.access()?, &filter, &ctx.page(first, after)?).await?;
        Ok(connection(page, |model| AuditLogEntry { model })?)
    }

    /// Files whose retention ended and that wait for a decision (approval mode of the policy),
    /// oldest first, in the caller's `DELETE` scope; decide with `decidePendingDeletions`. Files
    /// under legal hold are left out until released.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn pending_deletions(&self, ctx: &Context<'_>, first: Option<i32>, after: Option<String>) -> Result<Conn<ArchiveFile>> {
        let page = ctx.services().pending_deletions(ctx.access()?, &ctx.page(first, after)?).await?;
        Ok(connection(page, ArchiveFile::new)?)
    }

    /// Stored files whose RFC 3161 tokens all rest on TSA certificates that expire within
    /// `withinDays` days (0–36500), oldest first: re-timestamp them with `signArchiveFile` while
    /// the old token still verifies. In the caller's `VIEW` scope.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn files_to_retimestamp(&self, ctx: &Context<'_>, within_days: i32, first: Option<i32>, after: Option<String>) -> Result<Conn<ArchiveFile>> {
        let page = ctx.services().files_to_retimestamp(ctx.access()?, within_days.into(), &ctx.page(first, after)?).await?;
        Ok(connection(page, ArchiveFile::new)?)
    }

    /// Counts across everything in the caller's scope, or one course.
    async fn archiving_overview(&self, ctx: &Context<'_>, course_id: Option<ID>) -> Result<ArchivingOverview> {
        let course = course_id.map(|c| ids::decode(&c, NodeType::Course)).transpose()?;
        Ok(ctx.services().overview(ctx.access()?, course).await?.into())
    }
}

/// Loads nodes of one type, keeping the order of `ids`; `None` where missing or out of scope.
async fn load_nodes(ctx: &Context<'_>, t: NodeType, ids: &[ID]) -> Result<Vec<Option<Node>>> {
    let access = ctx.access()?;
    let svc = ctx.services();
    if t == NodeType::ArchiveJob {
        let keys: Vec<Option<uuid::Uuid>> = ids.iter().map(|id| ids::decode_uuid(id, t).ok()).collect();
        let wanted: Vec<uuid::Uuid> = keys.iter().flatten().copied().collect();
        let found = svc.jobs_visible(access, &wanted).await?;
        return Ok(keys.iter().map(|k| k.and_then(|k| found.get(&k).cloned()).map(|m| Node::ArchiveJob(ArchiveJob::new(m)))).collect());
    }
    let keys: Vec<Option<i64>> = ids.iter().map(|id| ids::decode(id, t).ok()).collect();
    let wanted: Vec<i64> = keys.iter().flatten().copied().collect();
    let pick = |k: &Option<i64>| k.as_ref().copied();
    Ok(match t {
        NodeType::Course => {
            let found = svc.courses_visible(access, &wanted).await?;
            keys.iter().map(|k| pick(k).and_then(|k| found.get(&k).cloned()).map(|m| Node::Course(Course::new(m)))).collect()
        }
        NodeType::CourseCategory => {
            let found = svc.categories_visible(access, &wanted).await?;
            keys.iter().map(|k| pick(k).and_then(|k| found.get(&k).cloned()).map(|m| Node::CourseCategory(CourseCategory::new(m)))).collect()
        }
        NodeType::Activity => {
            let found = svc.activities_visible(access, &wanted).await?;
            keys.iter().map(|k| pick(k).and_then(|k| found.get(&k).cloned()).map(|m| Node::Activity(Activity::new(m)))).collect()
        }
        NodeType::StorageBackend => {
            let found = svc.storage_backends_visible(access, &wanted).await?;
            keys.iter()
                .map(|k| pick(k).and_then(|k| found.iter().find(|m| m.id == k).cloned()).map(|m| Node::StorageBackend(StorageBackend::new(m))))
                .collect()
        }
        NodeType::ArchiveTask => {
            let found = svc.tasks_visible(access, &wanted).await?;
            keys.iter().map(|k| pick(k).and_then(|k| found.get(&k).cloned()).map(|m| Node::ArchiveTask(ArchiveTask::new(m)))).collect()
        }
        NodeType::ArchiveFile => {
            let found = svc.files_visible(access, &wanted).await?;
            keys.iter().map(|k| pick(k).and_then(|k| found.get(&k).cloned()).map(|m| Node::ArchiveFile(ArchiveFile::new(m)))).collect()
        }
        NodeType::ArchiveJob => unreachable!("handled above"),
    })
}
