//! Data loaders: batch the lookups of one query level into one statement each, so a query's
//! statement count does not grow with page size. No caching: every request sees fresh data.
use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::DatabaseConnection;

use std::hash::Hash;

use uuid::Uuid;

use crate::{
    entity::{activity, archive_file, archive_task, course, course_category, storage_backend},
    error::AppError,
    service::{catalog, catalog::ArchiveStats, jobs, Access},
};

pub struct Loaders {
    pub category: DataLoader<CategoryLoader>,
    pub course: DataLoader<CourseLoader>,
    pub course_activities: DataLoader<CourseActivitiesLoader>,
    pub children: DataLoader<ChildrenLoader>,
    pub archive_stats: DataLoader<ArchiveStatsLoader>,
    pub archiving_enabled: DataLoader<ArchivingEnabledLoader>,
    pub activity: DataLoader<ActivityLoader>,
    pub job_tasks: DataLoader<JobTasksLoader>,
    pub job_files: DataLoader<JobFilesLoader>,
    pub storage_backend: DataLoader<StorageBackendLoader>,
}

/// How long a loader waits for more keys before it queries. The default 1 ms splits one level of a
/// list into several batches when the machine is busy; a few ms more keeps it one statement.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

fn loader<K: Send + Sync + Hash + Eq + Clone + 'static, L: Loader<K>>(l: L) -> DataLoader<L> {
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
            activity: loader(ActivityLoader(db.clone())),
            job_tasks: loader(JobTasksLoader(db.clone())),
            job_files: loader(JobFilesLoader(db.clone())),
            storage_backend: loader(StorageBackendLoader(db.clone())),
        }
    }
}

type LoadResult<V, K = i64> = Result<HashMap<K, V>, async_graphql::Error>;

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

/// Activities by id, for walking from a visible job to its tasks' activities.
pub struct ActivityLoader(DatabaseConnection);
impl Loader<i64> for ActivityLoader {
    type Value = activity::Model;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let rows = activity::Entity::find().filter(activity::Column::Id.is_in(keys.to_vec())).all(&self.0).await.map_err(|e| gql(e.into()))?;
        Ok(rows.into_iter().map(|m| (m.id, m)).collect())
    }
}

pub struct JobTasksLoader(DatabaseConnection);
impl Loader<Uuid> for JobTasksLoader {
    type Value = Vec<archive_task::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value, Uuid> {
        jobs::tasks_of(&self.0, keys).await.map_err(gql)
    }
}

pub struct JobFilesLoader(DatabaseConnection);
impl Loader<Uuid> for JobFilesLoader {
    type Value = Vec<archive_file::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value, Uuid> {
        jobs::files_of(&self.0, keys).await.map_err(gql)
    }
}

pub struct StorageBackendLoader(DatabaseConnection);
impl Loader<i64> for StorageBackendLoader {
    type Value = storage_backend::Model;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let rows = storage_backend::Entity::find().filter(storage_backend::Column::Id.is_in(keys.to_vec())).all(&self.0).await.map_err(|e| gql(e.into()))?;
        Ok(rows.into_iter().map(|m| (m.id, m)).collect())
    }
}
