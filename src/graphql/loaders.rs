//! Data loaders: the lookups of one query level in one statement each, so a query's statement
//! count does not grow with page size. They live for one request and cache within it (each
//! mutation starts with empty caches, so a payload never shows what an earlier mutation of the
//! same request saw).
//!
//! Two ways a level gets loaded:
//! - **Preloaded by the list above it** (`preload_*`): a list resolver knows all its rows at once
//!   and looks at the selection, so it loads the next levels (a course page's activities, their
//!   archive states, …) right away and feeds the caches; the fields below then answer from the
//!   cache without waiting. This is the path of every connection at the root of a query.
//! - **Batched in a short window** otherwise (a field reached through `node`, a mutation payload,
//!   a subscription event): the loader waits `BATCH_WINDOW` for the siblings' keys.
use std::{collections::HashMap, hash::Hash};

use async_graphql::{
    dataloader::{DataLoader, HashMapCache, Loader},
    Context, Lookahead,
};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::{
    domain::switches::Decision,
    entity::{
        activity, archive_file, archive_job, archive_job_transition, archive_task, course, course_category, storage_backend,
        timestamp_token,
    },
    error::{AppError, AppResult},
    service::{catalog::ArchiveStats, downloads::Signer, switches::KindSwitch, Access, Services},
};

type Cached<L> = DataLoader<L, HashMapCache>;

pub struct Loaders {
    services: Services,
    access: Option<Access>,
    pub category: Cached<CategoryLoader>,
    pub course: Cached<CourseLoader>,
    pub course_activities: Cached<CourseActivitiesLoader>,
    pub children: Cached<ChildrenLoader>,
    pub archive_stats: Cached<ArchiveStatsLoader>,
    pub archiving_enabled: Cached<ArchivingEnabledLoader>,
    pub kind_archiving: Cached<KindArchivingLoader>,
    pub activity_archiving: Cached<ActivityArchivingLoader>,
    pub activity: Cached<ActivityLoader>,
    pub job_tasks: Cached<JobTasksLoader>,
    pub job_files: Cached<JobFilesLoader>,
    pub job_transitions: Cached<JobTransitionsLoader>,
    pub file_timestamps: Cached<FileTimestampsLoader>,
    pub downloadable: Cached<DownloadableLoader>,
    pub storage_backend: Cached<StorageBackendLoader>,
    /// Jobs by id, in the caller's scope (from a file to its job).
    pub job: Cached<JobLoader>,
    signer: OnceCell<Signer>,
    /// False for a WebSocket connection, whose loaders live as long as it does: each event must
    /// read the current state, not what an earlier one loaded.
    cached: bool,
}

/// How long a loader that was not preloaded waits for more keys before it queries. The default
/// 1 ms splits one level of a list into several batches when the machine is busy.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

fn loader<K: Send + Sync + Hash + Eq + Clone + 'static, L: Loader<K>>(l: L) -> Cached<L> {
    DataLoader::with_cache(l, tokio::spawn, HashMapCache::default()).delay(BATCH_WINDOW)
}

impl Loaders {
    pub fn new(services: &Services, access: Option<Access>) -> Self {
        let s = || services.clone();
        Self {
            category: loader(CategoryLoader(s())),
            course: loader(CourseLoader(s())),
            course_activities: loader(CourseActivitiesLoader(s())),
            children: loader(ChildrenLoader(s(), access.clone())),
            archive_stats: loader(ArchiveStatsLoader(s())),
            archiving_enabled: loader(ArchivingEnabledLoader(s())),
            kind_archiving: loader(KindArchivingLoader(s())),
            activity_archiving: loader(ActivityArchivingLoader(s())),
            activity: loader(ActivityLoader(s())),
            job_tasks: loader(JobTasksLoader(s())),
            job_files: loader(JobFilesLoader(s())),
            job_transitions: loader(JobTransitionsLoader(s())),
            file_timestamps: loader(FileTimestampsLoader(s())),
            downloadable: loader(DownloadableLoader(s(), access.clone())),
            storage_backend: loader(StorageBackendLoader(s())),
            job: loader(JobLoader(s(), access.clone())),
            services: services.clone(),
            access,
            signer: OnceCell::new(),
            cached: true,
        }
    }

    /// Loaders that batch but never cache nor preload, for a connection that outlives a request.
    pub fn uncached(services: &Services, access: Option<Access>) -> Self {
        let l = Self { cached: false, ..Self::new(services, access) };
        l.category.enable_all_cache(false);
        l.course.enable_all_cache(false);
        l.course_activities.enable_all_cache(false);
        l.children.enable_all_cache(false);
        l.archive_stats.enable_all_cache(false);
        l.archiving_enabled.enable_all_cache(false);
        l.kind_archiving.enable_all_cache(false);
        l.activity_archiving.enable_all_cache(false);
        l.activity.enable_all_cache(false);
        l.job_tasks.enable_all_cache(false);
        l.job_files.enable_all_cache(false);
        l.job_transitions.enable_all_cache(false);
        l.file_timestamps.enable_all_cache(false);
        l.downloadable.enable_all_cache(false);
        l.storage_backend.enable_all_cache(false);
        l.job.enable_all_cache(false);
        l
    }

    /// Forgets everything loaded so far in this request (before a mutation changes things).
    pub fn clear(&self) {
        self.category.clear::<i64>();
        self.course.clear::<i64>();
        self.course_activities.clear::<i64>();
        self.children.clear::<i64>();
        self.archive_stats.clear::<i64>();
        self.archiving_enabled.clear::<i64>();
        self.kind_archiving.clear::<i64>();
        self.activity_archiving.clear::<i64>();
        self.activity.clear::<i64>();
        self.job_tasks.clear::<Uuid>();
        self.job_files.clear::<Uuid>();
        self.job_transitions.clear::<Uuid>();
        self.file_timestamps.clear::<i64>();
        self.downloadable.clear::<Uuid>();
        self.storage_backend.clear::<i64>();
        self.job.clear::<Uuid>();
    }

    /// The download URL signer, loaded once per request however many files ask for it.
    pub async fn signer(&self) -> AppResult<&Signer> {
        self.signer.get_or_try_init(|| self.services.download_signer()).await
    }
}

/// The selection of a connection's nodes.
pub fn nodes<'a>(look: &Lookahead<'a>) -> Lookahead<'a> {
    look.field("edges").field("node")
}

/// Feeds `values` for every key, with `empty` where the load found nothing, so that no field
/// below falls back to a query of its own.
async fn feed<K, L, V>(dl: &Cached<L>, keys: impl IntoIterator<Item = K>, mut found: HashMap<K, V>, empty: impl Fn() -> V)
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    L: Loader<K, Value = V>,
    V: Send + Sync + Clone + 'static,
{
    let all: Vec<(K, V)> = keys.into_iter().map(|k| {
        let v = found.remove(&k).unwrap_or_else(&empty);
        (k, v)
    }).collect();
    dl.feed_many(all).await;
}

fn dedup<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

/// Loads what `look` (the selection of a list of categories) needs one level below them.
pub async fn preload_categories(ctx: &Context<'_>, look: &Lookahead<'_>, cats: &[course_category::Model]) -> AppResult<()> {
    if cats.is_empty() || !ctx_loaders(ctx).cached {
        return Ok(());
    }
    let l = ctx_loaders(ctx);
    let s = &l.services;
    let ids: Vec<i64> = cats.iter().map(|c| c.id).collect();
    let parents = dedup(cats.iter().filter_map(|c| c.parent_id).collect());
    let want_switch = ["archivingEnabled", "archivingEnabledSource", "archivingSetting"].iter().any(|f| look.field(f).exists());
    let (children, enabled, kinds, parents) = tokio::try_join!(
        async {
            match (&l.access, look.field("children").exists()) {
                (Some(a), true) => s.children_of(a, &ids).await.map(Some),
                _ => Ok(None),
            }
        },
        async { if want_switch { s.archiving_enabled_of(&ids).await.map(Some) } else { Ok(None) } },
        async { if look.field("activityKinds").exists() { s.kind_archiving_of(&ids).await.map(Some) } else { Ok(None) } },
        async { if look.field("parent").exists() && !parents.is_empty() { s.categories_related(&parents).await.map(Some) } else { Ok(None) } },
    )?;
    if let Some(children) = children {
        feed(&l.children, ids.iter().copied(), children, Vec::new).await;
    }
    if let Some(enabled) = enabled {
        feed(&l.archiving_enabled, ids.iter().copied(), enabled, Decision::default).await;
    }
    if let Some(kinds) = kinds {
        feed(&l.kind_archiving, ids.iter().copied(), kinds, Vec::new).await;
    }
    if let Some(parents) = parents {
        l.category.feed_many(parents).await;
    }
    Ok(())
}

/// Loads what `look` (the selection of a list of courses) needs below the courses, all levels
/// at once: categories, their archiving setting, the activities and their archive states.
pub async fn preload_courses(ctx: &Context<'_>, look: &Lookahead<'_>, courses: &[course::Model]) -> AppResult<()> {
    if courses.is_empty() || !ctx_loaders(ctx).cached {
        return Ok(());
    }
    let l = ctx_loaders(ctx);
    let s = &l.services;
    let categories = dedup(courses.iter().map(|c| c.category_id).collect());
    let course_ids: Vec<i64> = courses.iter().map(|c| c.id).collect();
    let want_acts = look.field("activities").exists();
    let acts_look = nodes(&look.field("activities"));
    // Each branch goes down as far as it can without waiting for the others.
    tokio::try_join!(
        async {
            if look.field("category").exists() {
                l.category.feed_many(s.categories_related(&categories).await?).await;
            }
            Ok::<_, AppError>(())
        },
        async {
            if look.field("archivingEnabled").exists() || look.field("archivingEnabledSource").exists() {
                feed(&l.archiving_enabled, categories.iter().copied(), s.archiving_enabled_of(&categories).await?, Decision::default).await;
            }
            Ok(())
        },
        async {
            if want_acts {
                let acts = s.activities_of(&course_ids).await?;
                let all: Vec<activity::Model> = acts.values().flatten().cloned().collect();
                feed(&l.course_activities, course_ids.iter().copied(), acts, Vec::new).await;
                preload_activities(ctx, &acts_look, &all, Some(courses)).await?;
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Loads what `look` (the selection of a list of activities) needs below them: archive states
/// and, unless the caller already has them, the courses.
pub async fn preload_activities(ctx: &Context<'_>, look: &Lookahead<'_>, acts: &[activity::Model], courses: Option<&[course::Model]>) -> AppResult<()> {
    if acts.is_empty() || !ctx_loaders(ctx).cached {
        return Ok(());
    }
    let l = ctx_loaders(ctx);
    let ids: Vec<i64> = acts.iter().map(|a| a.id).collect();
    if look.field("archiveState").exists() || look.field("lastArchivedAt").exists() {
        let stats = l.services.archive_stats_of(&ids).await?;
        l.archive_stats.feed_many(stats).await;
    }
    if look.field("archivingEnabled").exists() || look.field("archivingEnabledSource").exists() {
        let decisions = l.services.activity_archiving_for(acts).await?;
        feed(&l.activity_archiving, ids.iter().copied(), decisions, Decision::default).await;
    }
    if look.field("course").exists() {
        match courses {
            Some(cs) => l.course.feed_many(cs.iter().map(|c| (c.id, c.clone()))).await,
            None => {
                let found = l.services.courses_related(&dedup(acts.iter().map(|a| a.course_id).collect())).await?;
                l.course.feed_many(found).await;
            }
        }
    }
    Ok(())
}

/// Loads what `look` (the selection of a list of jobs) needs below them: courses, tasks and their
/// activities, transitions, files with their timestamps, backends and download permission.
pub async fn preload_jobs(ctx: &Context<'_>, look: &Lookahead<'_>, jobs: &[archive_job::Model]) -> AppResult<()> {
    if jobs.is_empty() || !ctx_loaders(ctx).cached {
        return Ok(());
    }
    let l = ctx_loaders(ctx);
    let s = &l.services;
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let course_ids = dedup(jobs.iter().map(|j| j.course_id).collect());
    let (tasks, files, transitions, courses) = tokio::try_join!(
        async { if look.field("tasks").exists() { s.tasks_of(&ids).await.map(Some) } else { Ok(None) } },
        async { if look.field("files").exists() { s.files_of(&ids).await.map(Some) } else { Ok(None) } },
        async { if look.field("transitions").exists() { s.transitions_of(&ids).await.map(Some) } else { Ok(None) } },
        async { if look.field("course").exists() { s.courses_related(&course_ids).await.map(Some) } else { Ok(None) } },
    )?;
    if let Some(courses) = courses {
        l.course.feed_many(courses).await;
    }
    if let Some(transitions) = transitions {
        feed(&l.job_transitions, ids.iter().copied(), transitions, Vec::new).await;
    }
    if let Some(tasks) = tasks {
        let task_look = look.field("tasks");
        if task_look.field("activity").exists() {
            let act_ids = dedup(tasks.values().flatten().map(|t| t.activity_id).collect());
            let acts = s.activities_related(&act_ids).await?;
            let all: Vec<activity::Model> = acts.values().cloned().collect();
            l.activity.feed_many(acts).await;
            preload_activities(ctx, &task_look.field("activity"), &all, None).await?;
        }
        feed(&l.job_tasks, ids.iter().copied(), tasks, Vec::new).await;
    }
    if let Some(files) = files {
        let all: Vec<archive_file::Model> = files.values().flatten().cloned().collect();
        feed(&l.job_files, ids.iter().copied(), files, Vec::new).await;
        preload_files(ctx, &look.field("files"), &all).await?;
    }
    Ok(())
}

/// Loads what `look` (the selection of a list of archive files) needs below them.
pub async fn preload_files(ctx: &Context<'_>, look: &Lookahead<'_>, files: &[archive_file::Model]) -> AppResult<()> {
    if files.is_empty() || !ctx_loaders(ctx).cached {
        return Ok(());
    }
    let l = ctx_loaders(ctx);
    let s = &l.services;
    let ids: Vec<i64> = files.iter().map(|f| f.id).collect();
    let job_ids = dedup(files.iter().map(|f| f.job_id).collect());
    let backend_ids = dedup(files.iter().map(|f| f.storage_backend_id).collect());
    let want_url = look.field("downloadUrl").exists() && files.iter().any(|f| f.deleted_at.is_none());
    let (stamps, backends, downloadable, _) = tokio::try_join!(
        async { if look.field("timestamps").exists() { s.timestamps_of(&ids).await.map(Some) } else { Ok(None) } },
        async { if look.field("storageBackend").exists() { s.storage_backends_related(&backend_ids).await.map(Some) } else { Ok(None) } },
        async {
            match (&l.access, want_url) {
                (Some(a), true) => s.downloadable_jobs(a, &job_ids).await.map(Some),
                _ => Ok(None),
            }
        },
        async { if want_url { l.signer().await.map(|_| ()) } else { Ok(()) } },
    )?;
    if let Some(stamps) = stamps {
        feed(&l.file_timestamps, ids.iter().copied(), stamps, Vec::new).await;
    }
    if let Some(backends) = backends {
        l.storage_backend.feed_many(backends).await;
    }
    if let Some(ok) = downloadable {
        l.downloadable.feed_many(job_ids.iter().map(|j| (*j, ok.contains(j)))).await;
    }
    Ok(())
}

fn ctx_loaders<'a>(ctx: &'a Context<'_>) -> &'a Loaders {
    ctx.data_unchecked::<Loaders>()
}

type LoadResult<V, K = i64> = Result<HashMap<K, V>, async_graphql::Error>;

fn gql(e: AppError) -> async_graphql::Error {
    e.into()
}

/// Categories by id, for walking up from visible objects.
pub struct CategoryLoader(Services);
impl Loader<i64> for CategoryLoader {
    type Value = course_category::Model;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        self.0.categories_related(keys).await.map_err(gql)
    }
}

/// Courses by id, for walking up from visible activities.
pub struct CourseLoader(Services);
impl Loader<i64> for CourseLoader {
    type Value = course::Model;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        self.0.courses_related(keys).await.map_err(gql)
    }
}

pub struct CourseActivitiesLoader(Services);
impl Loader<i64> for CourseActivitiesLoader {
    type Value = Vec<activity::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        self.0.activities_of(keys).await.map_err(gql)
    }
}

/// Visible child categories of each parent.
pub struct ChildrenLoader(Services, Option<Access>);
impl Loader<i64> for ChildrenLoader {
    type Value = Vec<course_category::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        match &self.1 {
            Some(access) => self.0.children_of(access, keys).await.map_err(gql),
            None => Ok(HashMap::new()),
        }
    }
}

pub struct ArchiveStatsLoader(Services);
impl Loader<i64> for ArchiveStatsLoader {
    type Value = ArchiveStats;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        self.0.archive_stats_of(keys).await.map_err(gql)
    }
}

/// Effective "archiving enabled" of categories as a whole, inheritance applied.
pub struct ArchivingEnabledLoader(Services);
impl Loader<i64> for ArchivingEnabledLoader {
    type Value = Decision;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        self.0.archiving_enabled_of(keys).await.map_err(gql)
    }
}

/// The activity kind switches of categories.
pub struct KindArchivingLoader(Services);
impl Loader<i64> for KindArchivingLoader {
    type Value = Vec<KindSwitch>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        self.0.kind_archiving_of(keys).await.map_err(gql)
    }
}

/// Whether each activity may be archived: the rule job creation applies.
pub struct ActivityArchivingLoader(Services);
impl Loader<i64> for ActivityArchivingLoader {
    type Value = Decision;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        self.0.activity_archiving_of(keys).await.map_err(gql)
    }
}

/// Activities by id, for walking from a visible job to its tasks' activities.
pub struct ActivityLoader(Services);
impl Loader<i64> for ActivityLoader {
    type Value = activity::Model;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        self.0.activities_related(keys).await.map_err(gql)
    }
}

pub struct JobTasksLoader(Services);
impl Loader<Uuid> for JobTasksLoader {
    type Value = Vec<archive_task::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value, Uuid> {
        self.0.tasks_of(keys).await.map_err(gql)
    }
}

pub struct JobFilesLoader(Services);
impl Loader<Uuid> for JobFilesLoader {
    type Value = Vec<archive_file::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value, Uuid> {
        self.0.files_of(keys).await.map_err(gql)
    }
}

pub struct JobTransitionsLoader(Services);
impl Loader<Uuid> for JobTransitionsLoader {
    type Value = Vec<archive_job_transition::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value, Uuid> {
        self.0.transitions_of(keys).await.map_err(gql)
    }
}

pub struct FileTimestampsLoader(Services);
impl Loader<i64> for FileTimestampsLoader {
    type Value = Vec<timestamp_token::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        self.0.timestamps_of(keys).await.map_err(gql)
    }
}

/// Whether the caller may download the files of each job.
pub struct DownloadableLoader(Services, Option<Access>);
impl Loader<Uuid> for DownloadableLoader {
    type Value = bool;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value, Uuid> {
        let ok = match &self.1 {
            Some(access) => self.0.downloadable_jobs(access, keys).await.map_err(gql)?,
            None => Default::default(),
        };
        Ok(keys.iter().map(|k| (*k, ok.contains(k))).collect())
    }
}

pub struct StorageBackendLoader(Services);
impl Loader<i64> for StorageBackendLoader {
    type Value = storage_backend::Model;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        self.0.storage_backends_related(keys).await.map_err(gql)
    }
}

pub struct JobLoader(Services, Option<Access>);
impl Loader<Uuid> for JobLoader {
    type Value = archive_job::Model;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value, Uuid> {
        match &self.1 {
            Some(access) => self.0.jobs_visible(access, keys).await.map_err(gql),
            None => Ok(Default::default()),
        }
    }
}
