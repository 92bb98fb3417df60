//! The application's use cases as one value: what the API layers (GraphQL, HTTP) are handed
//! instead of a database connection. Scoped reads and every write take the caller's [`Access`];
//! the unscoped batch lookups (`*_related`, `*_of`) exist only to walk from objects the caller
//! already reached through a scoped read to their parts, and are what the data loaders call.
use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::{audit, catalog, downloads, fixity, jobs, overview, policy, retention, storage_backends, switches, timestamps, Access, Page, PageArgs};
use crate::{
    domain::{switches::Decision, PolicyValues},
    engine::Engine,
    entity::{
        activity, archive_file, archive_job, audit_log, archive_job_transition, archive_task, course, course_category, job_log,
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

    /// What the server takes as now (injectable: tests travel in time).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.engine.clock.now()
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

    /// Whether archiving is enabled in each category as a whole (inheritance applied), and which
    /// switch decided, by category id.
    pub async fn archiving_enabled_of(&self, category_ids: &[i64]) -> AppResult<HashMap<i64, Decision>> {
        let cats: Vec<_> = catalog::categories_by_id(self.db(), category_ids).await?.into_values().collect();
        switches::categories(self.db(), &cats).await
    }

    /// The activity kind switches of each category.
    pub async fn kind_archiving_of(&self, category_ids: &[i64]) -> AppResult<HashMap<i64, Vec<switches::KindSwitch>>> {
        let cats: Vec<_> = catalog::categories_by_id(self.db(), category_ids).await?.into_values().collect();
        switches::kinds_in(self.db(), &cats).await
    }

    /// Whether each activity may be archived (the rule job creation applies), by activity id.
    pub async fn activity_archiving_of(&self, activity_ids: &[i64]) -> AppResult<HashMap<i64, Decision>> {
        let acts: Vec<_> = catalog::activities_by_id(self.db(), activity_ids).await?.into_values().collect();
        switches::activities(self.db(), &acts).await
    }

    /// As `activity_archiving_of`, for activities already loaded.
    pub async fn activity_archiving_for(&self, acts: &[activity::Model]) -> AppResult<HashMap<i64, Decision>> {
        switches::activities(self.db(), acts).await
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

    // ---------- retention, legal hold, deletion ----------

    pub async fn delete_file(&self, access: &Access, id: i64, reason: &str) -> AppResult<jobs::Outcome<archive_file::Model>> {
        retention::delete_file(&self.engine, access, id, reason).await
    }

    pub async fn set_legal_hold(
        &self,
        access: &Access,
        target: retention::HoldTarget,
        hold: bool,
        reason: Option<&str>,
    ) -> AppResult<jobs::Outcome<retention::HoldSubject>> {
        retention::set_legal_hold(&self.engine, access, target, hold, reason).await
    }

    pub async fn pending_deletions(&self, access: &Access, args: &PageArgs) -> AppResult<Page<archive_file::Model>> {
        retention::pending(self.db(), access, args).await
    }

    pub async fn decide_pending_deletions(&self, access: &Access, ids: &[i64], approve: bool, reason: Option<&str>) -> AppResult<retention::Decided> {
        retention::decide(&self.engine, access, ids, approve, reason).await
    }

    // ---------- fixity ----------

    /// Re-reads one stored file now and records the verdict (`verifyArchiveFile`).
    pub async fn verify_file(&self, access: &Access, id: i64) -> AppResult<jobs::Outcome<archive_file::Model>> {
        fixity::verify_file(&self.engine, access, id).await
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

    /// What applies where the policy leaves a value to the server's configuration: max
    /// concurrent jobs and the job log level.
    /// The configured Time-Stamp Authority as the policy shows it (never its credentials).
    pub fn timestamp_authority(&self) -> timestamps::AuthorityView {
        timestamps::AuthorityView::of(&self.engine)
    }

    /// `signArchiveFile`: timestamps a stored file now (needs `MANAGE`).
    pub async fn sign_file(&self, access: &Access, id: i64) -> AppResult<jobs::Outcome<(archive_file::Model, timestamp_token::Model)>> {
        timestamps::sign_file(&self.engine, access, id).await
    }

    /// Re-verifies every token of `file` against `sha256` (the hash just read from storage) and
    /// persists the outcomes: for `verifyArchiveFile`.
    pub async fn reverify_tokens(&self, file: &archive_file::Model, sha256: &[u8; 32]) -> AppResult<Vec<timestamp_token::Model>> {
        timestamps::reverify_tokens(&self.engine, file, sha256).await
    }

    /// Files whose TSA certificates expire within `within_days`: to re-timestamp.
    pub async fn files_to_retimestamp(&self, access: &Access, within_days: i64, args: &PageArgs) -> AppResult<Page<archive_file::Model>> {
        timestamps::expiring(self.db(), access, within_days, self.now(), args).await
    }

    pub fn server_policy_defaults(&self) -> (u32, LogLevel) {
        (self.engine.settings.max_concurrent_jobs, self.engine.settings.job_log_level)
    }

    pub async fn update_policy(&self, access: &Access, update: policy::PolicyUpdate) -> AppResult<jobs::Outcome<PolicyValues>> {
        policy::update(self.db(), access, self.now(), update).await
    }

    /// The global activity kind switches (needs `view`).
    pub async fn global_kind_archiving(&self, access: &Access) -> AppResult<Vec<switches::KindSwitch>> {
        access.require(crate::auth::Capability::View)?;
        switches::global_kinds(self.db()).await
    }

    /// Sets a category's archiving switch (`None`: inherit); `global_id` names it in the audit log.
    pub async fn set_category_archiving(&self, access: &Access, category_id: i64, global_id: &str, enabled: Option<bool>) -> AppResult<course_category::Model> {
        switches::set_category(self.db(), access, self.now(), category_id, global_id, enabled).await
    }

    /// Sets an activity kind's switch in a category, or globally with `None` for the category.
    pub async fn set_kind_archiving(
        &self,
        access: &Access,
        category: Option<(i64, &str)>,
        kind: crate::domain::ActivityKind,
        enabled: Option<bool>,
    ) -> AppResult<Option<course_category::Model>> {
        switches::set_kind(self.db(), access, self.now(), category, kind, enabled).await
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
        storage_backends::create(self.db(), access, self.now(), new).await
    }

    pub async fn update_storage_backend(
        &self,
        access: &Access,
        id: i64,
        changes: storage_backends::BackendChanges,
    ) -> AppResult<Result<storage_backend::Model, Vec<crate::error::UserError>>> {
        storage_backends::update(self.db(), access, self.now(), id, changes).await
    }

    pub async fn delete_storage_backend(&self, access: &Access, id: i64) -> AppResult<Result<storage_backend::Model, Vec<crate::error::UserError>>> {
        storage_backends::delete(self.db(), access, self.now(), id).await
    }

    pub async fn check_storage_backend(&self, access: &Access, id: i64) -> AppResult<storage_backend::Model> {
        storage_backends::check(self.db(), access, self.now(), id).await
    }

    /// Counts across the caller's scope, or one course of it (NOT_FOUND when out of scope).
    pub async fn audit_log(&self, access: &Access, filter: &audit::AuditFilter, args: &PageArgs) -> AppResult<Page<audit_log::Model>> {
        audit::list(self.db(), access, filter, args).await
    }

    pub async fn overview(&self, access: &Access, course_id: Option<i64>) -> AppResult<overview::Overview> {
        if let Some(c) = course_id {
            catalog::course(self.db(), access, c).await?;
        }
        overview::overview(self.db(), access, course_id).await
    }
}

/// The services as the API layers use them, without GraphQL: on a fresh SQLite database with the
/// demo LMS synced, counting the statements each call costs.
#[cfg(test)]
mod tests {
    use chrono::Utc;
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

    use super::*;
    use crate::{
        app::AppState,
        auth::{Principal, Role},
        config::Settings,
    };

    struct Fixture {
        state: AppState,
        services: Services,
        _dir: tempfile::TempDir,
    }

    async fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.data_dir = dir.path().to_path_buf();
        settings.database_url = Some(format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()));
        settings.jwt_secret = Some("unit-test-secret-0123456789-0123456789".to_string().into());
        let state = AppState::init(settings).await.unwrap();
        let services = Services::new(state.engine.clone());
        Fixture { state, services, _dir: dir }
    }

    fn access(role: Role, courses: &[&str]) -> Access {
        Access::new(Principal { subject: "t".into(), roles: vec![role], courses: courses.iter().map(|c| c.to_string()).collect(), categories: vec![] })
    }

    /// A completed job of the course with `lms_id`, with one transition and one stored file with
    /// one timestamp.
    async fn job_in(f: &Fixture, lms_id: &str) -> (Uuid, i64) {
        let db = &f.state.db;
        let c = course::Entity::find().filter(course::Column::LmsId.eq(lms_id)).one(db).await.unwrap().unwrap();
        let backend = storage_backend::Entity::find().one(db).await.unwrap().unwrap();
        let now = Utc::now();
        let job = crate::fixtures::completed_job(c.id, now)
        .insert(db)
        .await
        .unwrap();
        archive_job_transition::ActiveModel {
            job_id: Set(job.id),
            from_status: Set(None),
            to_status: Set("COMPLETED".into()),
            attempt: Set(1),
            at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        let file = crate::fixtures::stored_file(job.id, backend.id, format!("{}.zip", job.id), "a.zip".into(), 1, now)
        .insert(db)
        .await
        .unwrap();
        timestamp_token::ActiveModel {
            file_id: Set(file.id),
            tsa_url: Set("https://tsa.invalid".into()),
            hash_algorithm: Set("SHA-256".into()),
            query_der: Set(vec![]),
            reply_der: Set(vec![]),
            gen_time: Set(None),
            serial: Set(None),
            verified: Set(false),
            verification_error: Set(None),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        (job.id, file.id)
    }

    /// Runs `f` and returns its result with the statements it cost.
    async fn counted<T>(fx: &Fixture, f: impl std::future::Future<Output = T>) -> (T, u64) {
        let before = fx.state.statements.get();
        let out = f.await;
        (out, fx.state.statements.get() - before)
    }

    #[tokio::test]
    async fn services_download_permission_is_one_statement_for_any_number_of_jobs() {
        let fx = start().await;
        let (in_101, _) = job_in(&fx, "101").await;
        let (in_103, _) = job_in(&fx, "103").await;
        let both = [in_101, in_103];

        let (ok, n) = counted(&fx, fx.services.downloadable_jobs(&access(Role::Teacher, &["101"]), &both)).await;
        assert_eq!(ok.unwrap(), HashSet::from([in_101]));
        assert_eq!(n, 1, "one statement for a scoped caller");

        let (ok, n) = counted(&fx, fx.services.downloadable_jobs(&access(Role::Admin, &[]), &both)).await;
        assert_eq!(ok.unwrap(), HashSet::from(both));
        assert_eq!(n, 0, "no statement when download holds everywhere");

        let (ok, n) = counted(&fx, fx.services.downloadable_jobs(&access(Role::Reporter, &[]), &both)).await;
        assert!(ok.unwrap().is_empty(), "a reporter views but does not download");
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn services_batch_transitions_and_timestamps_per_call() {
        let fx = start().await;
        let mut jobs = Vec::new();
        let mut files = Vec::new();
        for lms in ["101", "102", "103"] {
            let (j, f) = job_in(&fx, lms).await;
            jobs.push(j);
            files.push(f);
        }
        let (t, n) = counted(&fx, fx.services.transitions_of(&jobs)).await;
        let t = t.unwrap();
        assert_eq!(n, 1);
        assert!(jobs.iter().all(|j| t[j].len() == 1 && t[j][0].job_id == *j));
        let (s, n) = counted(&fx, fx.services.timestamps_of(&files)).await;
        let s = s.unwrap();
        assert_eq!(n, 1);
        assert!(files.iter().all(|f| s[f].len() == 1 && s[f][0].file_id == *f));
    }

    #[tokio::test]
    async fn services_sign_download_urls_with_one_key_load() {
        let fx = start().await;
        let signer = fx.services.download_signer().await.unwrap();
        let (urls, n) = counted(&fx, async { (1..=50).map(|id| signer.url(id, Utc::now())).collect::<Vec<_>>() }).await;
        assert_eq!(n, 0);
        let key = downloads::signing_key(&fx.state.db).await.unwrap();
        for (id, url) in (1..=50).zip(&urls) {
            let path = url.strip_prefix(&fx.state.settings.public_url()).expect("absolute URL on the public address");
            let (p, q) = path.split_once('?').unwrap();
            assert_eq!(p, format!("/downloads/{id}"));
            let params: HashMap<_, _> = q.split('&').filter_map(|kv| kv.split_once('=')).collect();
            assert!(downloads::verify(&key, id, params["expires"].parse().unwrap(), params["sig"], Utc::now()));
        }
    }

    #[tokio::test]
    async fn services_scope_the_overview_and_policy_backends() {
        let fx = start().await;
        let teacher = access(Role::Teacher, &["101"]);
        let other = course::Entity::find().filter(course::Column::LmsId.eq("103")).one(&fx.state.db).await.unwrap().unwrap();
        assert!(matches!(fx.services.overview(&teacher, Some(other.id)).await, Err(AppError::NotFound)), "another course is not found");
        let own = course::Entity::find().filter(course::Column::LmsId.eq("101")).one(&fx.state.db).await.unwrap().unwrap();
        job_in(&fx, "101").await;
        job_in(&fx, "103").await;
        let o = fx.services.overview(&teacher, Some(own.id)).await.unwrap();
        assert_eq!(o.stored_files, 1, "only the file of the teacher's course");
        let o = fx.services.overview(&access(Role::Admin, &[]), None).await.unwrap();
        assert_eq!(o.stored_files, 2);

        let names = vec!["missing".to_string(), "local".to_string()];
        let found = fx.services.storage_backends_named(&teacher, &names).await.unwrap();
        assert_eq!(found.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["local"]);
        let nobody = Access::new(Principal { subject: "t".into(), roles: vec![], courses: vec![], categories: vec![] });
        assert!(matches!(fx.services.storage_backends_named(&nobody, &names).await, Err(AppError::Forbidden)));
    }

    #[tokio::test]
    async fn services_audit_log_is_for_auditors_and_filters_newest_first() {
        use crate::{domain::AuditAction, service::audit::{self, Actor, AuditFilter, Target}};
        let fx = start().await;
        let admin = access(Role::Admin, &[]).with_origin("192.0.2.7");
        let at = fx.services.now();
        audit::record(&fx.state.db, at, &Actor::of(&admin), AuditAction::PolicyUpdated, Target::global("Policy"), serde_json::json!({"before": 1, "after": 2})).await.unwrap();
        audit::record(&fx.state.db, at, &Actor::system("retention"), AuditAction::FileDeleted, Target::new("ArchiveFile", "f1"), serde_json::json!({})).await.unwrap();

        let all = fx.services.audit_log(&access(Role::Auditor, &[]), &AuditFilter::default(), &PageArgs::new(None, None, true).unwrap()).await.unwrap();
        assert_eq!(all.total, Some(2));
        let (first, second) = (&all.items[0].1, &all.items[1].1);
        assert_eq!((first.action.as_str(), first.actor.as_str(), first.origin.as_deref()), ("FILE_DELETED", "system", Some("periodic:retention")), "newest first");
        assert_eq!((second.actor.as_str(), second.actor_roles.as_str(), second.origin.as_deref()), ("t", "admin", Some("192.0.2.7")));

        let only = AuditFilter { actions: vec![AuditAction::PolicyUpdated], ..Default::default() };
        let page = fx.services.audit_log(&admin, &only, &PageArgs::new(None, None, false).unwrap()).await.unwrap();
        assert_eq!(page.items.len(), 1);
        let by_target = AuditFilter { target_type: Some("ArchiveFile".into()), target_id: Some("f1".into()), ..Default::default() };
        assert_eq!(fx.services.audit_log(&admin, &by_target, &PageArgs::new(None, None, false).unwrap()).await.unwrap().items.len(), 1);

        for role in [Role::Teacher, Role::Manager, Role::Reporter] {
            assert!(matches!(fx.services.audit_log(&access(role, &["101"]), &AuditFilter::default(), &PageArgs::default()).await, Err(AppError::Forbidden)), "{role}");
        }
    }
}
