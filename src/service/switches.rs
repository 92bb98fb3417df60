//! Archiving switches (per category, per activity kind in a category, per kind globally): reading
//! them with inheritance applied, and setting them. [`activities`] is the one function that
//! decides whether an activity may be archived; job creation (manual, API, and automation when it
//! comes) asks it, and so does the API when it shows `archivingEnabled`.
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::OnConflict, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TransactionTrait,
};
use serde_json::json;
use strum::IntoEnumIterator;

use super::{
    audit::{self, Actor, Target},
    catalog, Access,
};
use crate::{
    auth::Capability,
    domain::{
        switches::{path_ids, Decision, Switches},
        ActivityKind, AuditAction,
    },
    entity::{activity, category_kind_policy, category_policy, course, course_category, kind_policy},
    error::{AppError, AppResult},
};

/// The switches set on any of `category_ids` and the global ones: three statements.
async fn load<C: ConnectionTrait>(db: &C, category_ids: &[i64]) -> AppResult<Switches> {
    let ids: Vec<i64> = category_ids.iter().copied().collect::<HashSet<_>>().into_iter().collect();
    let (cats, kinds, global) = if ids.is_empty() {
        (Vec::new(), Vec::new(), kind_policy::Entity::find().all(db).await?)
    } else {
        (
            category_policy::Entity::find().filter(category_policy::Column::CategoryId.is_in(ids.clone())).all(db).await?,
            category_kind_policy::Entity::find().filter(category_kind_policy::Column::CategoryId.is_in(ids)).all(db).await?,
            kind_policy::Entity::find().all(db).await?,
        )
    };
    let kind = |k: &str| k.parse::<ActivityKind>().map_err(|_| AppError::internal(format!("unknown activity kind {k:?} in a switch")));
    let mut s = Switches::default();
    s.categories = cats.into_iter().filter_map(|c| c.archiving_enabled.map(|e| (c.category_id, e))).collect();
    for k in kinds {
        s.kinds.insert((k.category_id, kind(&k.kind)?), k.archiving_enabled);
    }
    for g in global {
        s.global.insert(kind(&g.kind)?, g.archiving_enabled);
    }
    Ok(s)
}

fn ancestors(cats: &[&course_category::Model]) -> Vec<i64> {
    cats.iter().flat_map(|c| path_ids(&c.path)).collect()
}

/// Archiving of each category as a whole (its own switch, else its nearest ancestor's, else on).
pub async fn categories(db: &DatabaseConnection, cats: &[course_category::Model]) -> AppResult<HashMap<i64, Decision>> {
    let refs: Vec<&course_category::Model> = cats.iter().collect();
    let s = load(db, &ancestors(&refs)).await?;
    Ok(cats.iter().map(|c| (c.id, s.category(&path_ids(&c.path)))).collect())
}

/// Each activity kind's switch in each category, by kind switches alone (what a category's page
/// shows per kind), with the category's own setting of it (`None`: inherited).
pub async fn kinds_in(db: &DatabaseConnection, cats: &[course_category::Model]) -> AppResult<HashMap<i64, Vec<KindSwitch>>> {
    let refs: Vec<&course_category::Model> = cats.iter().collect();
    let s = load(db, &ancestors(&refs)).await?;
    Ok(cats
        .iter()
        .map(|c| {
            let path = path_ids(&c.path);
            let kinds = ActivityKind::iter().map(|k| KindSwitch { kind: k, setting: s.kinds.get(&(c.id, k)).copied(), decision: s.kind(&path, k) }).collect();
            (c.id, kinds)
        })
        .collect())
}

/// The global switches of each kind.
pub async fn global_kinds(db: &DatabaseConnection) -> AppResult<Vec<KindSwitch>> {
    let s = load(db, &[]).await?;
    Ok(ActivityKind::iter().map(|k| KindSwitch { kind: k, setting: s.global.get(&k).copied(), decision: s.kind(&[], k) }).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSwitch {
    pub kind: ActivityKind,
    /// The switch set right here (`None`: inherited).
    pub setting: Option<bool>,
    /// What holds here, and who decided.
    pub decision: Decision,
}

/// Whether each activity may be archived, and which switch decided: the one rule for every way
/// a job is created. Five statements for any number of activities.
pub async fn activities(db: &DatabaseConnection, acts: &[activity::Model]) -> AppResult<HashMap<i64, Decision>> {
    if acts.is_empty() {
        return Ok(HashMap::new());
    }
    let course_ids: Vec<i64> = acts.iter().map(|a| a.course_id).collect::<HashSet<_>>().into_iter().collect();
    let courses = catalog::courses_by_id(db, &course_ids).await?;
    let cat_ids: Vec<i64> = courses.values().map(|c| c.category_id).collect::<HashSet<_>>().into_iter().collect();
    let cats = catalog::categories_by_id(db, &cat_ids).await?;
    let refs: Vec<&course_category::Model> = cats.values().collect();
    let s = load(db, &ancestors(&refs)).await?;
    acts.iter()
        .map(|a| {
            let kind: ActivityKind = a.kind.parse().map_err(|_| AppError::internal(format!("activity {} has unknown kind", a.id)))?;
            let path = courses.get(&a.course_id).and_then(|c| cats.get(&c.category_id)).map(|c| path_ids(&c.path)).unwrap_or_default();
            Ok((a.id, s.activity(&path, kind)))
        })
        .collect()
}

/// Archiving of each course as a whole: its category's.
pub async fn courses(db: &DatabaseConnection, courses: &[course::Model]) -> AppResult<HashMap<i64, Decision>> {
    let cat_ids: Vec<i64> = courses.iter().map(|c| c.category_id).collect::<HashSet<_>>().into_iter().collect();
    let cats: Vec<course_category::Model> = catalog::categories_by_id(db, &cat_ids).await?.into_values().collect();
    let by_cat = categories(db, &cats).await?;
    Ok(courses.iter().map(|c| (c.id, by_cat.get(&c.category_id).copied().unwrap_or_default())).collect())
}

/// `on`/`off`/`inherit` as the audit log shows a switch.
fn shown(v: Option<bool>) -> serde_json::Value {
    match v {
        Some(true) => json!("ON"),
        Some(false) => json!("OFF"),
        None => json!("INHERIT"),
    }
}

/// Sets (or with `None` clears, to inherit) a category's switch. Needs `manage`.
pub async fn set_category(db: &DatabaseConnection, access: &Access, now: DateTime<Utc>, category_id: i64, global_id: &str, enabled: Option<bool>) -> AppResult<course_category::Model> {
    access.require(Capability::Manage)?;
    let cat = catalog::category(db, access, category_id).await?;
    let txn = db.begin().await?;
    let before = category_policy::Entity::find_by_id(category_id).one(&txn).await?.and_then(|p| p.archiving_enabled);
    if before != enabled {
        category_policy::Entity::insert(category_policy::ActiveModel {
            category_id: Set(category_id),
            archiving_enabled: Set(enabled),
            updated_at: Set(now),
            updated_by: Set(Some(access.principal.subject.clone())),
        })
        .on_conflict(
            OnConflict::column(category_policy::Column::CategoryId)
                .update_columns([category_policy::Column::ArchivingEnabled, category_policy::Column::UpdatedAt, category_policy::Column::UpdatedBy])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        let details = json!({ "category": { "id": global_id, "lmsId": cat.lms_id, "name": cat.name }, "before": shown(before), "after": shown(enabled) });
        audit::record(&txn, now, &Actor::of(access), AuditAction::CategoryArchivingSet, Target::new("CourseCategory", global_id), details).await?;
    }
    txn.commit().await?;
    Ok(cat)
}

/// Sets (or with `None` clears) one activity kind's switch in a category, or globally without
/// one. Needs `manage`. Returns the category.
pub async fn set_kind(
    db: &DatabaseConnection,
    access: &Access,
    now: DateTime<Utc>,
    category: Option<(i64, &str)>,
    kind: ActivityKind,
    enabled: Option<bool>,
) -> AppResult<Option<course_category::Model>> {
    access.require(Capability::Manage)?;
    let cat = match category {
        Some((id, _)) => Some(catalog::category(db, access, id).await?),
        None => None,
    };
    let by = Some(access.principal.subject.clone());
    let txn = db.begin().await?;
    let before = match &cat {
        Some(c) => category_kind_policy::Entity::find_by_id((c.id, kind.to_string())).one(&txn).await?.map(|p| p.archiving_enabled),
        None => kind_policy::Entity::find_by_id(kind.to_string()).one(&txn).await?.map(|p| p.archiving_enabled),
    };
    if before != enabled {
        match (&cat, enabled) {
            (Some(c), Some(e)) => {
                category_kind_policy::Entity::insert(category_kind_policy::ActiveModel {
                    category_id: Set(c.id),
                    kind: Set(kind.to_string()),
                    archiving_enabled: Set(e),
                    updated_at: Set(now),
                    updated_by: Set(by),
                })
                .on_conflict(
                    OnConflict::columns([category_kind_policy::Column::CategoryId, category_kind_policy::Column::Kind])
                        .update_columns([category_kind_policy::Column::ArchivingEnabled, category_kind_policy::Column::UpdatedAt, category_kind_policy::Column::UpdatedBy])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
            }
            (Some(c), None) => {
                category_kind_policy::Entity::delete_by_id((c.id, kind.to_string())).exec(&txn).await?;
            }
            (None, Some(e)) => {
                kind_policy::Entity::insert(kind_policy::ActiveModel { kind: Set(kind.to_string()), archiving_enabled: Set(e), updated_at: Set(now), updated_by: Set(by) })
                    .on_conflict(
                        OnConflict::column(kind_policy::Column::Kind)
                            .update_columns([kind_policy::Column::ArchivingEnabled, kind_policy::Column::UpdatedAt, kind_policy::Column::UpdatedBy])
                            .to_owned(),
                    )
                    .exec_without_returning(&txn)
                    .await?;
            }
            (None, None) => {
                kind_policy::Entity::delete_by_id(kind.to_string()).exec(&txn).await?;
            }
        }
        let (target, place) = match (&cat, category) {
            (Some(c), Some((_, gid))) => (Target::new("CourseCategory", gid), json!({ "id": gid, "lmsId": c.lms_id, "name": c.name })),
            _ => (Target::global("Policy"), serde_json::Value::Null),
        };
        let details = json!({ "category": place, "kind": kind.to_string(), "before": shown(before), "after": shown(enabled) });
        audit::record(&txn, now, &Actor::of(access), AuditAction::ActivityKindArchivingSet, target, details).await?;
    }
    txn.commit().await?;
    Ok(cat)
}

/// Which switch a decision came from, for a message: "in category X", "globally for QUIZ".
pub async fn describe(db: &DatabaseConnection, d: &Decision) -> AppResult<String> {
    use crate::domain::switches::SwitchOrigin;
    let what = d.kind.map(|k| format!(" for {k} activities")).unwrap_or_default();
    Ok(match (d.origin, d.category_id) {
        (SwitchOrigin::Global, _) => format!("globally{what}"),
        (_, Some(id)) => {
            let name = course_category::Entity::find_by_id(id).one(db).await?.map(|c| c.name).unwrap_or_else(|| format!("{id}"));
            format!("in category {name}{what}")
        }
        _ => String::new(),
    })
}
