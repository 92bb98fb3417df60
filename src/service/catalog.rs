//! Categories, courses and activities as a caller in scope sees them.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder,
    QuerySelect, RelationTrait,
};

use super::{
    pagination::{paginate, Key, Ordering},
    Access, Page, PageArgs,
};
use crate::{
    auth::Capability,
    domain::{ActivityArchiveState, ActivityKind, JobStatus, TaskStatus},
    entity::{activity, archive_job, archive_task, course, course_category},
    error::{AppError, AppResult},
};

/// `LIKE` pattern for a case-insensitive "contains", with the user's `%`, `_` and `\` taken literally.
fn contains(text: &str) -> LikeExpr {
    let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

/// The longest search text: longer is bad input (SQLite refuses very long LIKE patterns, and no
/// course or activity name is that long).
pub const MAX_SEARCH: usize = 200;

/// The condition that one of `cols` contains `text` (a non-empty, trimmed search), if any.
fn text_matches<C: ColumnTrait>(cols: &[C], text: Option<&str>) -> AppResult<Option<Condition>> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
    if text.chars().count() > MAX_SEARCH {
        return Err(AppError::bad_input(format!("`search` must be at most {MAX_SEARCH} characters")));
    }
    Ok(Some(cols.iter().fold(Condition::any(), |c, col| c.add(Expr::expr(Func::lower(Expr::col(*col))).like(contains(text))))))
}

// ---------- categories ----------

pub async fn categories(db: &DatabaseConnection, access: &Access, parent: Option<i64>, args: &PageArgs) -> AppResult<Page<course_category::Model>> {
    access.require(Capability::View)?;
    let level = match parent {
        Some(p) => course_category::Column::ParentId.eq(p),
        None => course_category::Column::ParentId.is_null(),
    };
    let q = course_category::Entity::find().filter(level).filter(access.filter_categories());
    let order = Ordering::<course_category::Entity> {
        key: course_category::Column::SortOrder,
        tie: course_category::Column::Id,
        descending: false,
        key_of: |m| (Key::I(m.sort_order as i64), Key::I(m.id)),
    };
    paginate(db, q, &order, args).await
}

pub async fn category(db: &DatabaseConnection, access: &Access, id: i64) -> AppResult<course_category::Model> {
    access.require(Capability::View)?;
    course_category::Entity::find_by_id(id).filter(access.filter_categories()).one(db).await?.ok_or(AppError::NotFound)
}

/// Visible categories by id, for `nodes`. Missing and out-of-scope ids are simply absent.
pub async fn categories_visible(db: &DatabaseConnection, access: &Access, ids: &[i64]) -> AppResult<HashMap<i64, course_category::Model>> {
    if ids.is_empty() || access.require(Capability::View).is_err() {
        return Ok(HashMap::new());
    }
    let rows = course_category::Entity::find()
        .filter(course_category::Column::Id.is_in(ids.to_vec()))
        .filter(access.filter_categories())
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

/// Visible children of each parent, in order, for `CourseCategory.children`.
pub async fn children_of(db: &DatabaseConnection, access: &Access, parents: &[i64]) -> AppResult<HashMap<i64, Vec<course_category::Model>>> {
    let rows = course_category::Entity::find()
        .filter(course_category::Column::ParentId.is_in(parents.to_vec()))
        .filter(access.filter_categories())
        .order_by_asc(course_category::Column::SortOrder)
        .order_by_asc(course_category::Column::Id)
        .all(db)
        .await?;
    let mut out: HashMap<i64, Vec<_>> = HashMap::new();
    for r in rows {
        out.entry(r.parent_id.unwrap_or_default()).or_default().push(r);
    }
    Ok(out)
}

/// Categories by id, unfiltered: only for walking up from something already visible (a visible
/// course's category and its ancestors are visible by construction).
pub async fn categories_by_id(db: &DatabaseConnection, ids: &[i64]) -> AppResult<HashMap<i64, course_category::Model>> {
    let rows = course_category::Entity::find().filter(course_category::Column::Id.is_in(ids.to_vec())).all(db).await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

// ---------- courses ----------

#[derive(Debug, Clone, Default)]
pub struct CourseFilter {
    pub category_id: Option<i64>,
    pub include_subcategories: bool,
    pub search: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CourseOrder {
    ShortName,
    FullName,
    Id,
}

pub async fn courses(
    db: &DatabaseConnection,
    access: &Access,
    filter: &CourseFilter,
    order: CourseOrder,
    descending: bool,
    args: &PageArgs,
) -> AppResult<Page<course::Model>> {
    access.require(Capability::View)?;
    let mut q = course::Entity::find().filter(access.filter_by_course(course::Column::Id, Capability::View));
    if let Some(cat) = filter.category_id {
        if filter.include_subcategories {
            let root = course_category::Entity::find_by_id(cat).one(db).await?;
            let path = root.map(|r| r.path).unwrap_or_else(|| "/-/".into());
            q = q.filter(
                course::Column::CategoryId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(course_category::Column::Id)
                        .from(course_category::Entity)
                        .and_where(Expr::col(course_category::Column::Path).like(LikeExpr::new(format!("{path}%"))))
                        .to_owned(),
                ),
            );
        } else {
            q = q.filter(course::Column::CategoryId.eq(cat));
        }
    }
    if let Some(c) = text_matches(&[course::Column::ShortName, course::Column::FullName], filter.search.as_deref())? {
        q = q.filter(c);
    }
    let ordering = match order {
        CourseOrder::ShortName => Ordering::<course::Entity> {
            key: course::Column::ShortName,
            tie: course::Column::Id,
            descending,
            key_of: |m| (Key::S(m.short_name.clone()), Key::I(m.id)),
        },
        CourseOrder::FullName => Ordering::<course::Entity> {
            key: course::Column::FullName,
            tie: course::Column::Id,
            descending,
            key_of: |m| (Key::S(m.full_name.clone()), Key::I(m.id)),
        },
        CourseOrder::Id => Ordering::<course::Entity> { key: course::Column::Id, tie: course::Column::Id, descending, key_of: |m| (Key::I(m.id), Key::I(m.id)) },
    };
    paginate(db, q, &ordering, args).await
}

pub async fn course(db: &DatabaseConnection, access: &Access, id: i64) -> AppResult<course::Model> {
    access.require(Capability::View)?;
    course::Entity::find_by_id(id)
        .filter(access.filter_by_course(course::Column::Id, Capability::View))
        .one(db)
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn course_by_lms_id(db: &DatabaseConnection, access: &Access, lms_id: &str) -> AppResult<course::Model> {
    access.require(Capability::View)?;
    course::Entity::find()
        .filter(course::Column::LmsId.eq(lms_id))
        .filter(access.filter_by_course(course::Column::Id, Capability::View))
        .one(db)
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn courses_visible(db: &DatabaseConnection, access: &Access, ids: &[i64]) -> AppResult<HashMap<i64, course::Model>> {
    if ids.is_empty() || access.require(Capability::View).is_err() {
        return Ok(HashMap::new());
    }
    let rows = course::Entity::find()
        .filter(course::Column::Id.is_in(ids.to_vec()))
        .filter(access.filter_by_course(course::Column::Id, Capability::View))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

/// Courses by id, unfiltered: only for navigation from an object already known to be visible.
pub async fn courses_by_id(db: &DatabaseConnection, ids: &[i64]) -> AppResult<HashMap<i64, course::Model>> {
    let rows = course::Entity::find().filter(course::Column::Id.is_in(ids.to_vec())).all(db).await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

// ---------- activities ----------

#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub course_id: Option<i64>,
    pub kinds: Vec<ActivityKind>,
    pub archive_states: Vec<ActivityArchiveState>,
    pub search: Option<String>,
}

/// SQL for "a finished task of a job that still has its files" for the outer `activity` row,
/// optionally holding the activity's current fingerprint. Literal SQL: no user input goes in.
fn archived_exists(current: bool) -> Expr {
    let sql = format!(
        "EXISTS (SELECT 1 FROM archive_task t JOIN archive_job j ON j.id = t.job_id \
         WHERE t.activity_id = activity.id AND t.status = '{}' AND j.status <> '{}'{})",
        TaskStatus::Finished,
        JobStatus::Deleted,
        if current { " AND t.fingerprint = activity.fingerprint" } else { "" }
    );
    Expr::cust(sql)
}

fn state_condition(state: ActivityArchiveState) -> Condition {
    match state {
        ActivityArchiveState::NeverArchived => Condition::all().add(archived_exists(false).not()),
        ActivityArchiveState::Archived => Condition::all().add(archived_exists(true)),
        ActivityArchiveState::Changed => Condition::all().add(archived_exists(false)).add(archived_exists(true).not()),
    }
}

pub async fn activities(db: &DatabaseConnection, access: &Access, filter: &ActivityFilter, args: &PageArgs) -> AppResult<Page<activity::Model>> {
    access.require(Capability::View)?;
    let mut q = activity::Entity::find().filter(access.filter_by_course(activity::Column::CourseId, Capability::View));
    if let Some(c) = filter.course_id {
        q = q.filter(activity::Column::CourseId.eq(c));
    }
    if !filter.kinds.is_empty() {
        q = q.filter(activity::Column::Kind.is_in(filter.kinds.iter().map(|k| k.to_string())));
    }
    if !filter.archive_states.is_empty() {
        q = q.filter(filter.archive_states.iter().fold(Condition::any(), |c, s| c.add(state_condition(*s))));
    }
    if let Some(c) = text_matches(&[activity::Column::Name], filter.search.as_deref())? {
        q = q.filter(c);
    }
    let order = Ordering::<activity::Entity> {
        key: activity::Column::Id,
        tie: activity::Column::Id,
        descending: false,
        key_of: |m| (Key::I(m.id), Key::I(m.id)),
    };
    paginate(db, q, &order, args).await
}

pub async fn activity(db: &DatabaseConnection, access: &Access, id: i64) -> AppResult<activity::Model> {
    access.require(Capability::View)?;
    activity::Entity::find_by_id(id)
        .filter(access.filter_by_course(activity::Column::CourseId, Capability::View))
        .one(db)
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn activities_visible(db: &DatabaseConnection, access: &Access, ids: &[i64]) -> AppResult<HashMap<i64, activity::Model>> {
    if ids.is_empty() || access.require(Capability::View).is_err() {
        return Ok(HashMap::new());
    }
    let rows = activity::Entity::find()
        .filter(activity::Column::Id.is_in(ids.to_vec()))
        .filter(access.filter_by_course(activity::Column::CourseId, Capability::View))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

/// Activities by id, unfiltered: only for navigation from an object already known to be visible
/// (a visible job's tasks).
pub async fn activities_by_id(db: &DatabaseConnection, ids: &[i64]) -> AppResult<HashMap<i64, activity::Model>> {
    let rows = activity::Entity::find().filter(activity::Column::Id.is_in(ids.to_vec())).all(db).await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

/// Activities of each course, in order, for `Course.activities`.
pub async fn activities_of(db: &DatabaseConnection, course_ids: &[i64]) -> AppResult<HashMap<i64, Vec<activity::Model>>> {
    let rows = activity::Entity::find()
        .filter(activity::Column::CourseId.is_in(course_ids.to_vec()))
        .order_by_asc(activity::Column::Id)
        .all(db)
        .await?;
    let mut out: HashMap<i64, Vec<_>> = HashMap::new();
    for r in rows {
        out.entry(r.course_id).or_default().push(r);
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveStats {
    pub state: ActivityArchiveState,
    pub last_archived_at: Option<DateTime<Utc>>,
}

#[derive(FromQueryResult)]
struct FinishedTask {
    activity_id: i64,
    fingerprint: Option<String>,
    finished_at: Option<DateTime<Utc>>,
    current: Option<String>,
}

/// Archive state and last archive time of each activity, in one statement.
pub async fn archive_stats(db: &DatabaseConnection, activity_ids: &[i64]) -> AppResult<HashMap<i64, ArchiveStats>> {
    let rows = archive_task::Entity::find()
        .select_only()
        .column(archive_task::Column::ActivityId)
        .column(archive_task::Column::Fingerprint)
        .column(archive_task::Column::FinishedAt)
        .column_as(activity::Column::Fingerprint, "current")
        .join(JoinType::InnerJoin, archive_task::Relation::Activity.def())
        .join(JoinType::InnerJoin, archive_task::Relation::ArchiveJob.def())
        .filter(archive_task::Column::ActivityId.is_in(activity_ids.to_vec()))
        .filter(archive_task::Column::Status.eq(TaskStatus::Finished.to_string()))
        .filter(archive_job::Column::Status.ne(JobStatus::Deleted.to_string()))
        .into_model::<FinishedTask>()
        .all(db)
        .await?;
    let mut acc: HashMap<i64, (bool, Option<DateTime<Utc>>)> = HashMap::new();
    for r in rows {
        let e = acc.entry(r.activity_id).or_insert((false, None));
        e.0 |= r.fingerprint.is_some() && r.fingerprint == r.current;
        e.1 = Ord::max(e.1, r.finished_at);
    }
    Ok(activity_ids
        .iter()
        .map(|id| {
            let (has_current, last) = acc.get(id).copied().unwrap_or((false, None));
            (*id, ArchiveStats { state: ActivityArchiveState::derive(acc.contains_key(id), has_current), last_archived_at: last })
        })
        .collect())
}

/// Counts of visible activities per archive state.
pub async fn count_activities_by_state(db: &DatabaseConnection, access: &Access, course_id: Option<i64>) -> AppResult<HashMap<ActivityArchiveState, u64>> {
    use sea_orm::PaginatorTrait;
    let base = || {
        let q = activity::Entity::find().filter(access.filter_by_course(activity::Column::CourseId, Capability::View));
        match course_id {
            Some(c) => q.filter(activity::Column::CourseId.eq(c)),
            None => q,
        }
    };
    let mut out = HashMap::new();
    for s in [ActivityArchiveState::NeverArchived, ActivityArchiveState::Archived, ActivityArchiveState::Changed] {
        out.insert(s, base().filter(state_condition(s)).count(db).await?);
    }
    Ok(out)
}
