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

impl Loaders {
    pub fn new(db: &DatabaseConnection, access: Option<Access>) -> Self {
        Self {
            category: DataLoader::new(CategoryLoader(db.clone()), tokio::spawn),
            course: DataLoader::new(CourseLoader(db.clone()), tokio::spawn),
            course_activities: DataLoader::new(CourseActivitiesLoader(db.clone()), tokio::spawn),
            children: DataLoader::new(ChildrenLoader(db.clone(), access), tokio::spawn),
            archive_stats: DataLoader::new(ArchiveStatsLoader(db.clone()), tokio::spawn),
            archiving_enabled: DataLoader::new(ArchivingEnabledLoader(db.clone()), tokio::spawn),
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
