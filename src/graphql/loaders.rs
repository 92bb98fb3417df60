//! Data loaders: batch the lookups of one query level into one statement each, so a query's
//! statement count does not grow with page size. No caching: every request sees fresh data.
use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::DatabaseConnection;

use crate::{
    entity::{activity, course, course_category},
    error::AppError,
    service::{catalog, catalog::ArchiveStats, Access},
};

pub struct Loaders {
    pub category: DataLoader<CategoryLoader>,
    pub course: DataLoader<CourseLoader>,
    pub course_activities: DataLoader<CourseActivitiesLoader>,
    pub children: DataLoader<ChildrenLoader>,
    pub archive_stats: DataLoader<ArchiveStatsLoader>,
    pub archiving_enabled: DataLoader<ArchivingEnabledLoader>,
}

/// How long a loader waits for more keys before it queries. The default 1 ms splits one level of a
/// list into several batches when the machine is busy; a few ms more keeps it one statement.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

fn loader<L: Loader<i64>>(l: L) -> DataLoader<L> {
    DataLoader::new(l, tokio::spawn).delay(BATCH_WINDOW)
}

impl Loaders {
    pub fn new(db: &DatabaseConnection, access: Option<Access>) -> Self {
        Self {
            category: loader(CategoryLoader(db.clone())),
            course: loader(CourseLoader(db.clone())),
            course_activities: loader(CourseActivitiesLoader(db.clone())),
            children: loader(ChildrenLoader(db.clone(), access)),
            archive_stats: loader(ArchiveStatsLoader(db.clone())),
            archiving_enabled: loader(ArchivingEnabledLoader(db.clone())),
        }
    }
}

type LoadResult<V> = Result<HashMap<i64, V>, async_graphql::Error>;

fn gql(e: AppError) -> async_graphql::Error {
    e.into()
}

/// Categories by id, for walking up from visible objects.
pub struct CategoryLoader(DatabaseConnection);
impl Loader<i64> for CategoryLoader {
    type Value = course_category::Model;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        catalog::categories_by_id(&self.0, keys).await.map_err(gql)
    }
}

/// Courses by id, for walking up from visible activities.
pub struct CourseLoader(DatabaseConnection);
impl Loader<i64> for CourseLoader {
    type Value = course::Model;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        catalog::courses_by_id(&self.0, keys).await.map_err(gql)
    }
}

pub struct CourseActivitiesLoader(DatabaseConnection);
impl Loader<i64> for CourseActivitiesLoader {
    type Value = Vec<activity::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        catalog::activities_of(&self.0, keys).await.map_err(gql)
    }
}

/// Visible child categories of each parent.
pub struct ChildrenLoader(DatabaseConnection, Option<Access>);
impl Loader<i64> for ChildrenLoader {
    type Value = Vec<course_category::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        match &self.1 {
            Some(access) => catalog::children_of(&self.0, access, keys).await.map_err(gql),
            None => Ok(HashMap::new()),
        }
    }
}

pub struct ArchiveStatsLoader(DatabaseConnection);
impl Loader<i64> for ArchiveStatsLoader {
    type Value = ArchiveStats;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        catalog::archive_stats(&self.0, keys).await.map_err(gql)
    }
}

/// Effective "archiving enabled" of categories, inheritance applied.
pub struct ArchivingEnabledLoader(DatabaseConnection);
impl Loader<i64> for ArchivingEnabledLoader {
    type Value = bool;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        let cats: Vec<_> = catalog::categories_by_id(&self.0, keys).await.map_err(gql)?.into_values().collect();
        catalog::archiving_enabled(&self.0, &cats).await.map_err(gql)
    }
}
