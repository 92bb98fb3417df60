//! Live subscriptions' use of shared resources. The database pool is shared by API requests,
//! subscriptions and workers; subscriptions are the one user whose demand grows with clients
//! nobody controls (how many sockets, how many subscriptions, whether they read). So all of
//! their database work goes through one small budget ([`Subscriptions::db`]): when it is used up,
//! subscribers wait (and their events coalesce meanwhile), while requests and workers keep the
//! rest of the pool. WebSockets per caller are counted here too.
use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use sea_orm::{DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::{Semaphore, SemaphorePermit};
use uuid::Uuid;

use crate::{
    auth::{Capability, Principal, Scope},
    config::Settings,
    entity::{archive_job, course},
    error::{AppError, AppResult},
    events::{EventBus, JobEvent},
    service::{
        jobs::{self, Resume},
        Access,
    },
};

pub struct Subscriptions {
    db: DatabaseConnection,
    events: EventBus,
    permits: Semaphore,
    max_connections_per_caller: usize,
    connections: Arc<Mutex<HashMap<String, usize>>>,
    counters: Counters,
}

/// What subscriptions did, for tests and diagnostics.
#[derive(Default)]
pub struct Counters {
    /// Event payloads resolved (against the database); a shared payload counts once.
    pub resolved: AtomicU64,
    /// Event payloads delivered to subscribers, shared or not.
    pub delivered: AtomicU64,
    /// WebSockets closed because their client did not read.
    pub too_slow: AtomicU64,
}

impl Subscriptions {
    pub fn new(db: DatabaseConnection, events: EventBus, settings: &Settings) -> Self {
        Self {
            db,
            events,
            permits: Semaphore::new(settings.subscription_db_permits as usize),
            max_connections_per_caller: settings.ws_max_connections_per_token as usize,
            connections: Default::default(),
            counters: Counters::default(),
        }
    }

    /// Starts listening to committed job events; what arrives from here on is delivered.
    pub fn listen(&self) -> tokio::sync::broadcast::Receiver<Arc<JobEvent>> {
        self.events.subscribe()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn record_resolved(&self) {
        self.counters.resolved.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_too_slow(&self) {
        self.counters.too_slow.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_delivered(&self) {
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// A share of the subscription database budget; database work for subscribers is done while
    /// holding one. Waits while the budget is used up.
    pub async fn db(&self) -> SemaphorePermit<'_> {
        self.permits.acquire().await.expect("the subscription budget is never closed")
    }

    /// Counts one WebSocket of `caller` until the returned slot is dropped; refused beyond
    /// `ws_max_connections_per_token`.
    /// The error is the reason to show the client.
    pub fn connect(&self, caller: &Principal) -> Result<ConnectionSlot, String> {
        // A caller is its token's subject and claims: tokens minted alike count together.
        let caller = format!("{caller:?}");
        let mut open = self.connections.lock().expect("connection counts");
        let n = open.entry(caller.clone()).or_default();
        if *n >= self.max_connections_per_caller {
            return Err(format!("too many connections for this token (at most {})", self.max_connections_per_caller));
        }
        *n += 1;
        Ok(ConnectionSlot { connections: self.connections.clone(), caller })
    }

    /// Checks that `access` may watch job `id`.
    pub async fn check_job(&self, access: &Access, id: Uuid) -> AppResult<()> {
        let _permit = self.db().await;
        jobs::get(&self.db, access, id).await.map(|_| ())
    }

    /// The courses whose jobs a multi-job subscription passes on: `course` (after checking the
    /// caller sees it), or every course the caller may view (`None`: all), so that events are
    /// filtered without a query per event.
    pub async fn courses(&self, access: &Access, course: Option<i64>) -> AppResult<Option<HashSet<i64>>> {
        access.require(Capability::View)?;
        let _permit = self.db().await;
        if let Some(c) = course {
            crate::service::catalog::course(&self.db, access, c).await?;
            return Ok(Some(HashSet::from([c])));
        }
        if access.scope(Capability::View) == Scope::Everywhere {
            return Ok(None);
        }
        let rows = course::Entity::find().filter(access.filter_by_course(course::Column::Id, Capability::View)).all(&self.db).await?;
        Ok(Some(rows.into_iter().map(|c| c.id).collect()))
    }

    /// The current state of the watched jobs and the newest logged event it covers: what a
    /// subscription starts from, and falls back to when it lags. At most `limit` unfinished jobs
    /// when watching courses.
    pub async fn current(&self, access: &Access, watch: &Watch, limit: u64) -> AppResult<(i64, Vec<archive_job::Model>)> {
        let _permit = self.db().await;
        // The cursor first: a change after it is delivered again as an event, never lost.
        let cursor = jobs::latest_event_id(&self.db).await?;
        let found = match watch {
            Watch::Job(id) => match jobs::get(&self.db, access, *id).await {
                Ok(j) => vec![j],
                Err(AppError::NotFound) => vec![],
                Err(e) => return Err(e),
            },
            Watch::Courses(c) => jobs::unfinished(&self.db, access, c.as_ref(), limit).await?,
        };
        Ok((cursor, found))
    }

    /// The logged events after `resume` (at most `limit`).
    pub async fn missed(&self, access: &Access, resume: Resume, watch: &Watch, limit: u64) -> AppResult<Vec<JobEvent>> {
        let _permit = self.db().await;
        let courses = match watch {
            Watch::Courses(c) => c.as_ref(),
            Watch::Job(_) => None,
        };
        jobs::missed_events(&self.db, access, resume, courses, limit).await
    }
}

/// Which jobs a subscription passes on.
#[derive(Clone, Debug)]
pub enum Watch {
    Job(Uuid),
    /// Jobs of these courses; `None`: every course.
    Courses(Option<HashSet<i64>>),
}

impl Watch {
    pub fn wants(&self, job: &archive_job::Model) -> bool {
        match self {
            Watch::Job(id) => job.id == *id,
            Watch::Courses(None) => true,
            Watch::Courses(Some(c)) => c.contains(&job.course_id),
        }
    }
}

/// One open WebSocket of a caller; frees its place when dropped (the connection ended).
pub struct ConnectionSlot {
    connections: Arc<Mutex<HashMap<String, usize>>>,
    caller: String,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.connections.lock().expect("connection counts");
        if let Some(n) = open.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}
