//! Copies what the LMS knows (categories, courses, activities, persons) into the database.
//! Idempotent: rows are matched by LMS id and updated in place, so running it twice changes nothing.
use std::collections::HashMap;

use anyhow::Context;
use chrono::Utc;
use sea_orm::{sea_query::OnConflict, ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use crate::{
    entity::{activity, course, course_category, person},
    lms::LmsSource,
};

/// Rows per INSERT: well below SQLite's and PostgreSQL's bind-parameter limits.
const BATCH: usize = 500;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    pub categories: usize,
    pub courses: usize,
    pub activities: usize,
    pub persons: usize,
}

pub async fn sync_from_lms(db: &DatabaseConnection, lms: &dyn LmsSource) -> anyhow::Result<SyncReport> {
    let now = Utc::now();
    // It reads (what exists) before it writes, and may run beside the server (`demo add-attempt`).
    let txn = crate::db::begin_write(db).await?;

    // Categories one at a time, parents first: a child's path needs its parent's id.
    let cats = lms.categories().await.context("listing LMS categories")?;
    let mut ids: HashMap<String, (i64, String, i32)> = HashMap::new();
    for c in &cats {
        let parent = match &c.parent_lms_id {
            Some(p) => Some(ids.get(p).cloned().with_context(|| format!("category {} is listed before its parent {p}", c.lms_id))?),
            None => None,
        };
        let existing = course_category::Entity::find().filter(course_category::Column::LmsId.eq(&c.lms_id)).one(&txn).await?;
        let mut am: course_category::ActiveModel = match existing {
            Some(m) => m.into(),
            None => course_category::ActiveModel { lms_id: Set(c.lms_id.clone()), path: Set(String::new()), ..Default::default() },
        };
        am.parent_id = Set(parent.as_ref().map(|p| p.0));
        am.name = Set(c.name.clone());
        am.depth = Set(parent.as_ref().map_or(0, |p| p.2 + 1));
        am.sort_order = Set(c.sort_order);
        am.synced_at = Set(now);
        let saved = am.save(&txn).await?;
        let id = saved.id.clone().unwrap();
        let path = format!("{}{id}/", parent.as_ref().map_or("/", |p| p.1.as_str()));
        if saved.path.as_ref() != &path {
            let mut am = saved;
            am.path = Set(path.clone());
            am.update(&txn).await?;
        }
        ids.insert(c.lms_id.clone(), (id, path, parent.map_or(0, |p| p.2 + 1)));
    }

    let courses = lms.courses().await.context("listing LMS courses")?;
    for chunk in courses.chunks(BATCH) {
        let rows = chunk
            .iter()
            .map(|c| {
                let cat = ids.get(&c.category_lms_id).with_context(|| format!("course {} names unknown category {}", c.lms_id, c.category_lms_id))?;
                Ok(course::ActiveModel {
                    lms_id: Set(c.lms_id.clone()),
                    category_id: Set(cat.0),
                    short_name: Set(c.short_name.clone()),
                    full_name: Set(c.full_name.clone()),
                    visible: Set(c.visible),
                    start_date: Set(c.start_date),
                    end_date: Set(c.end_date),
                    synced_at: Set(now),
                    ..Default::default()
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        course::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(course::Column::LmsId)
                    .update_columns([
                        course::Column::CategoryId,
                        course::Column::ShortName,
                        course::Column::FullName,
                        course::Column::Visible,
                        course::Column::StartDate,
                        course::Column::EndDate,
                        course::Column::SyncedAt,
                    ])
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
    }
    let course_ids: HashMap<String, i64> =
        course::Entity::find().all(&txn).await?.into_iter().map(|c| (c.lms_id, c.id)).collect();

    let activities = lms.activities().await.context("listing LMS activities")?;
    let mut rows = Vec::with_capacity(activities.len());
    for a in &activities {
        let course_id = *course_ids.get(&a.course_lms_id).with_context(|| format!("activity {} names unknown course {}", a.lms_id, a.course_lms_id))?;
        rows.push(activity::ActiveModel {
            lms_id: Set(a.lms_id.clone()),
            course_id: Set(course_id),
            kind: Set(a.kind.to_string()),
            name: Set(a.name.clone()),
            opens_at: Set(a.opens_at),
            closes_at: Set(a.closes_at),
            // The state fingerprint as the activity's archiving driver defines it.
            fingerprint: Set(Some(crate::engine::drivers::fingerprint(lms, &a.lms_id, a.kind, a.modified_at).await?)),
            synced_at: Set(now),
            ..Default::default()
        });
    }
    for chunk in rows.chunks(BATCH) {
        activity::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(activity::Column::LmsId)
                    .update_columns([
                        activity::Column::CourseId,
                        activity::Column::Kind,
                        activity::Column::Name,
                        activity::Column::OpensAt,
                        activity::Column::ClosesAt,
                        activity::Column::Fingerprint,
                        activity::Column::SyncedAt,
                    ])
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
    }

    let persons = lms.persons().await.context("listing LMS persons")?;
    for chunk in persons.chunks(BATCH) {
        let rows = chunk.iter().map(|p| person::ActiveModel {
            lms_id: Set(p.lms_id.clone()),
            username: Set(p.username.clone()),
            first_name: Set(p.first_name.clone()),
            last_name: Set(p.last_name.clone()),
            email: Set(p.email.clone()),
            id_number: Set(p.id_number.clone()),
            synced_at: Set(now),
            ..Default::default()
        });
        person::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(person::Column::LmsId)
                    .update_columns([
                        person::Column::Username,
                        person::Column::FirstName,
                        person::Column::LastName,
                        person::Column::Email,
                        person::Column::IdNumber,
                        person::Column::SyncedAt,
                    ])
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(SyncReport { categories: cats.len(), courses: courses.len(), activities: activities.len(), persons: persons.len() })
}
