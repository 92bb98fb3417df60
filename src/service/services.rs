//! The application's use cases as one value: what the API layers (GraphQL, HTTP) are handed
//! instead of a database connection. Scoped reads and every write take the caller's [`Access`];
//! the unscoped batch lookups (`*_related`, `*_of`) exist only to walk from objects the caller
//! already reached through a scoped read to their parts, and are what the data loaders call.
use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::{catalog, downloads, jobs, overview, policy, storage_backends, Access, Page, PageArgs};
use crate::{
    domain::PolicyValues,
    engine::Engine,
    entity::{
        activity, archive_file, archive_job, archive_job_transition, archive_task, course, course_category, job_log,
        storage_backend, timestamp_token,
    },
    domain::LogLevel,
    error::{AppError, AppResult},
};

#[derive(Clone)]
pub struct Services {
    engine: Engine,
}

impl Services {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    fn db(&self) -> &sea_orm::DatabaseConnection {
        &self.engine.db
    }

    // ---------- catalog: scoped ----------

    pub async fn categories(&self, access: &Access, parent: Option<i64>, args: &PageArgs) -> AppResult<Page<course_category::Model>> {
        catalog::categories(self.db(), access, parent, args).await
    }

    pub async fn categories_visible(&self, access: &Access, ids: &[i64]) -> AppResult<HashMap<i64, course_category::Model>> {
        catalog::categories_visible(self.db(), access, ids).await
    }

    /// The visible children of each parent category.
    pub async fn children_of(&self, access: &Access, parents: &[i64]) -> AppResult<HashMap<i64, Vec<course_category::Model>>> {
        catalog::children_of(self.db(), access, parents).await
    }

    pub async fn courses(
        &self,
        access: &Access,
        filter: &catalog::CourseFilter,
        order: catalog::CourseOrder,
        descending: bool,
        args: &PageArgs,
    ) -> AppResult<Page<course::Model>> {
        catalog::courses(self.db(), access, filter, order, descending, args).await
    }

    pub async fn course(&self, access: &Access, id: i64) -> AppResult<course::Model> {
        catalog::course(self.db(), access, id).await
    }

    pub async fn course_by_lms_id(&self, access: &Access, lms_id: &str) -> AppResult<course::Model> {
        catalog::course_by_lms_id(self.db(), access, lms_id).await
    }

    pub async fn courses_visible(&self, access: &Access, ids: &[i64]) -> AppResult<HashMap<i64, course::Model>> {
        catalog::courses_visible(self.db(), access, ids).await
    }

    pub async fn activities(&self, access: &Access, filter: &catalog::ActivityFilter, args: &PageArgs) -> AppResult<Page<activity::Model>> {
        catalog::activities(self.db(), access, filter, args).await
    }

    pub async fn activities_visible(&self, access: &Access, ids: &[i64]) -> AppResult<HashMap<i64, activity::Model>> {
        catalog::activities_visible(self.db(), access, ids).await
    }

    // ---------- catalog: parts of what the caller already sees ----------

    pub async fn categories_related(&self, ids: &[i64]) -> AppResult<HashMap<i64, course_category::Model>> {
        catalog::categories_by_id(self.db(), ids).await
    }

    /// Whether archiving is enabled in each category (inheritance applied), by category id.
    pub async fn archiving_enabled_of(&self, category_ids: &[i64]) -> AppResult<HashMap<i64, bool>> {
        let cats: Vec<_> = catalog::categories_by_id(self.db(), category_ids).await?.into_values().collect();
        catalog::archiving_enabled(self.db(), &cats).await
    }

    pub async fn courses_related(&self, ids: &[i64]) -> AppResult<HashMap<i64, course::Model>> {
        catalog::courses_by_id(self.db(), ids).await
    }

    pub async fn activities_related(&self, ids: &[i64]) -> AppResult<HashMap<i64, activity::Model>> {
        catalog::activities_by_id(self.db(), ids).await
    }

    /// The activities of each course, in order.
    pub async fn activities_of(&self, course_ids: &[i64]) -> AppResult<HashMap<i64, Vec<activity::Model>>> {
        catalog::activities_of(self.db(), course_ids).await
    }

    /// Archive state and last archive time of each activity.
    pub async fn archive_stats_of(&self, activity_ids: &[i64]) -> AppResult<HashMap<i64, catalog::ArchiveStats>> {
        catalog::archive_stats(self.db(), activity_ids).await
    }

    // ---------- jobs ----------

    pub async fn jobs(&self, access: &Access, filter: &jobs::JobFilter, args: &PageArgs) -> AppResult<Page<archive_job::Model>> {
        jobs::list(self.db(), access, filter, args).await
    }

    pub async fn job(&self, access: &Access, id: Uuid) -> AppResult<archive_job::Model> {
        jobs::get(self.db(), access, id).await
    }

    pub async fn jobs_visible(&self, access: &Access, ids: &[Uuid]) -> AppResult<HashMap<Uuid, archive_job::Model>> {
        jobs::visible(self.db(), access, ids).await
    }

    pub async fn tasks_visible(&self, access: &Access, ids: &[i64]) -> AppResult<HashMap<i64, archive_task::Model>> {
        jobs::tasks_visible(self.db(), access, ids).await
    }

    pub async fn files_visible(&self, access: &Access, ids: &[i64]) -> AppResult<HashMap<i64, archive_file::Model>> {
        jobs::files_visible(self.db(), access, ids).await
    }

    /// A visible job's log (the job was reached through a scoped read).
    pub async fn job_logs(&self, job_id: Uuid, min_level: LogLevel, args: &PageArgs) -> AppResult<Page<job_log::Model>> {
        jobs::logs(self.db(), job_id, min_level, args).await
    }

    pub async fn tasks_of(&self, job_ids: &[Uuid]) -> AppResult<HashMap<Uuid, Vec<archive_task::Model>>> {
        jobs::tasks_of(self.db(), job_ids).await
    }

    pub async fn files_of(&self, job_ids: &[Uuid]) -> AppResult<HashMap<Uuid, Vec<archive_file::Model>>> {
        jobs::files_of(self.db(), job_ids).await
    }

    pub async fn transitions_of(&self, job_ids: &[Uuid]) -> AppResult<HashMap<Uuid, Vec<archive_job_transition::Model>>> {
        jobs::transitions_of(self.db(), job_ids).await
    }

    pub async fn timestamps_of(&self, file_ids: &[i64]) -> AppResult<HashMap<i64, Vec<timestamp_token::Model>>> {
        jobs::timestamps_of(self.db(), file_ids).await
    }

    pub async fn create_job(&self, access: &Access, input: jobs::CreateJob) -> AppResult<jobs::Outcome<archive_job::Model>> {
        jobs::create(&self.engine, access, input).await
    }

    pub async fn cancel_job(&self, access: &Access, id: Uuid) -> AppResult<jobs::Outcome<archive_job::Model>> {
        jobs::cancel(&self.engine, access, id).await
    }

    pub async fn retry_job(&self, access: &Access, id: Uuid) -> AppResult<jobs::Outcome<archive_job::Model>> {
        jobs::retry(&self.engine, access, id).await
    }

    pub async fn delete_job(&self, access: &Access, id: Uuid, delete_files: bool) -> AppResult<jobs::Outcome<Option<archive_job::Model>>> {
        jobs::delete(&self.engine, access, id, delete_files).await
    }

    // ---------- downloads ----------

    /// The jobs among `job_ids` whose files the caller may download.
    pub async fn downloadable_jobs(&self, access: &Access, job_ids: &[Uuid]) -> AppResult<HashSet<Uuid>> {
        downloads::downloadable_jobs(self.db(), access, job_ids).await
    }

    /// What signs download URLs; load it once per request.
    pub async fn download_signer(&self) -> AppResult<downloads::Signer> {
        downloads::Signer::load(self.db(), self.engine.settings.public_url()).await.map_err(AppError::Internal)
    }

    // ---------- policy, storage, overview ----------

    pub async fn policy(&self, access: &Access) -> AppResult<PolicyValues> {
        policy::get(self.db(), access).await
    }

    pub async fn storage_backends(&self, access: &Access, args: &PageArgs) -> AppResult<Page<storage_backend::Model>> {
        storage_backends::list(self.db(), access, args).await
    }

    pub async fn storage_backends_visible(&self, access: &Access, ids: &[i64]) -> AppResult<Vec<storage_backend::Model>> {
        storage_backends::by_ids(self.db(), access, ids).await
    }

    pub async fn storage_backends_named(&self, access: &Access, names: &[String]) -> AppResult<Vec<storage_backend::Model>> {
        storage_backends::by_names(self.db(), access, names).await
    }

    pub async fn storage_backends_related(&self, ids: &[i64]) -> AppResult<HashMap<i64, storage_backend::Model>> {
        storage_backends::by_id_related(self.db(), ids).await
    }

    pub async fn create_storage_backend(
        &self,
        access: &Access,
        new: storage_backends::NewBackend,
    ) -> AppResult<Result<storage_backend::Model, Vec<crate::error::UserError>>> {
        storage_backends::create(self.db(), access, new).await
    }

    pub async fn check_storage_backend(&self, access: &Access, id: i64) -> AppResult<storage_backend::Model> {
        storage_backends::check(self.db(), access, id).await
    }

    /// Counts across the caller's scope, or one course of it (NOT_FOUND when out of scope).
    pub async fn overview(&self, access: &Access, course_id: Option<i64>) -> AppResult<overview::Overview> {
        if let Some(c) = course_id {
            catalog::course(self.db(), access, c).await?;
        }
        overview::overview(self.db(), access, course_id).await
    }
}
