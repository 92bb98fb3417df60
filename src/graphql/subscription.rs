//! Live job progress over graphql-transport-ws, read from the durable event log. A subscription
//! starts with the current state (taken after it began listening, so nothing falls in between) —
//! or, when the client passes back where it was (`afterSequence`, `after`), with the logged
//! events it missed — then delivers each change in order with the job's sequence number. Status
//! changes are never dropped; runs of progress events are coalesced to the latest, so a slow
//! client gets the newest state and memory stays bounded. A client too slow even for that gets
//! the current state again.
use std::collections::HashSet;

use async_graphql::{Context, Result, Subscription, ID};
use futures::Stream;
use sea_orm::{DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use uuid::Uuid;

use super::{
    context::ContextExt,
    ids::{self, NodeType},
    types::ArchiveJobEvent,
};
use crate::{
    auth::{Capability, Scope},
    engine::Engine,
    entity::{archive_job, course},
    events::{JobEvent, JobEventKind},
    service::{jobs::{self, Resume}, Access},
};

pub struct SubscriptionRoot;

/// Which jobs a subscription passes on.
#[derive(Clone)]
enum Filter {
    Job(Uuid),
    /// Jobs of these courses; `None`: every course.
    Courses(Option<HashSet<i64>>),
}

impl Filter {
    fn wants(&self, job: &archive_job::Model) -> bool {
        match self {
            Filter::Job(id) => job.id == *id,
            Filter::Courses(None) => true,
            Filter::Courses(Some(c)) => c.contains(&job.course_id),
        }
    }
}

/// The courses a caller may view, for filtering events without a query per event.
async fn visible_courses(db: &DatabaseConnection, access: &Access) -> Result<Option<HashSet<i64>>> {
    if access.scope(Capability::View) == Scope::Everywhere {
        return Ok(None);
    }
    let rows = course::Entity::find().filter(access.filter_by_course(course::Column::Id, Capability::View)).all(db).await.map_err(crate::error::AppError::from)?;
    Ok(Some(rows.into_iter().map(|c| c.id).collect()))
}

/// How many unfinished jobs a multi-job subscription starts with.
const SNAPSHOT_LIMIT: u64 = 100;

/// The current state a subscription starts from (and falls back to when it lags).
async fn current(engine: &Engine, access: &Access, filter: &Filter) -> Vec<archive_job::Model> {
    let found = match filter {
        Filter::Job(id) => jobs::get(&engine.db, access, *id).await.map(|j| vec![j]),
        Filter::Courses(c) => jobs::unfinished(&engine.db, access, c.as_ref(), SNAPSHOT_LIMIT).await,
    };
    found.unwrap_or_default()
}

/// A snapshot event; `cursor` is the newest logged event it covers.
fn snapshot(job: archive_job::Model, cursor: i64) -> ArchiveJobEvent {
    ArchiveJobEvent { event: JobEvent { id: cursor, kind: JobEventKind::StatusChanged, job, task_id: None }, snapshot: true }
}

/// The most missed events a resuming subscriber is sent; one further behind starts over from
/// the current state.
const REPLAY_LIMIT: u64 = 1000;

fn stream(engine: Engine, access: Access, filter: Filter, resume: Option<Resume>) -> impl Stream<Item = ArchiveJobEvent> {
    async_stream::stream! {
        // Listen first, then read the state: a change in between arrives as an event.
        let mut rx = engine.jobs.events.subscribe();
        let mut last_seq: std::collections::HashMap<Uuid, i64> = Default::default();
        let courses = match &filter { Filter::Courses(c) => c.clone(), Filter::Job(_) => None };
        let missed = match resume {
            Some(r) => jobs::missed_events(&engine.db, &access, r, courses.as_ref(), REPLAY_LIMIT).await.ok().filter(|m| (m.len() as u64) < REPLAY_LIMIT),
            None => None,
        };
        match missed {
            Some(events) => {
                for e in events {
                    last_seq.insert(e.job.id, e.job.sequence);
                    yield ArchiveJobEvent { event: e, snapshot: false };
                }
            }
            None => {
                let cursor = jobs::latest_event_id(&engine.db).await.unwrap_or(0);
                for job in current(&engine, &access, &filter).await {
                    last_seq.insert(job.id, job.sequence);
                    yield snapshot(job, cursor);
                }
            }
        }
        loop {
            let first = match rx.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(_)) => {
                    // Too slow even for the buffer: send the current state and go on from there.
                    let cursor = jobs::latest_event_id(&engine.db).await.unwrap_or(0);
                    for job in current(&engine, &access, &filter).await {
                        if last_seq.get(&job.id).is_none_or(|s| *s < job.sequence) {
                            last_seq.insert(job.id, job.sequence);
                            yield snapshot(job, cursor);
                        }
                    }
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            // Take what is already waiting, so runs of progress can be coalesced.
            let mut batch = vec![first];
            loop {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(TryRecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
            let relevant: Vec<_> = batch.into_iter().filter(|e| filter.wants(&e.job)).collect();
            for (i, e) in relevant.iter().enumerate() {
                let seen = last_seq.get(&e.job.id).copied().unwrap_or(i64::MIN);
                if e.job.sequence <= seen {
                    continue; // already covered by the snapshot or a later event
                }
                let superseded = e.kind == JobEventKind::Progress
                    && relevant[i + 1..].iter().any(|n| n.job.id == e.job.id && n.kind == JobEventKind::Progress);
                if superseded {
                    continue;
                }
                last_seq.insert(e.job.id, e.job.sequence);
                yield ArchiveJobEvent { event: (**e).clone(), snapshot: false };
                if e.kind == JobEventKind::Deleted && matches!(filter, Filter::Job(_)) {
                    return;
                }
            }
        }
    }
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// One job: first its current state (kind SNAPSHOT), then every change. After a reconnect,
    /// pass the last `sequence` received as `afterSequence` to get the changes missed meanwhile
    /// instead of the snapshot (kept for `eventRetentionDays`; further behind, a snapshot comes).
    async fn archive_job_updated(&self, ctx: &Context<'_>, job_id: ID, after_sequence: Option<i64>) -> Result<impl Stream<Item = ArchiveJobEvent>> {
        let access = ctx.access()?.clone();
        let id = ids::decode_uuid(&job_id, NodeType::ArchiveJob)?;
        let engine = ctx.data_unchecked::<Engine>().clone();
        jobs::get(&engine.db, &access, id).await?;
        let resume = after_sequence.map(|s| Resume::JobAfterSequence(id, s));
        Ok(stream(engine, access, Filter::Job(id), resume))
    }

    /// Every change of every job the caller may see, or of one course's jobs (for dashboards):
    /// first the unfinished jobs as they are (kind SNAPSHOT, newest 100), then every change.
    /// After a reconnect, pass the last event's `cursor` as `after` to get the changes missed
    /// meanwhile instead of the snapshots.
    async fn archive_jobs_changed(&self, ctx: &Context<'_>, course_id: Option<ID>, after: Option<String>) -> Result<impl Stream<Item = ArchiveJobEvent>> {
        let access = ctx.access()?.clone();
        access.require(Capability::View)?;
        let engine = ctx.data_unchecked::<Engine>().clone();
        let visible = visible_courses(&engine.db, &access).await?;
        let courses = match course_id {
            Some(c) => {
                let c = ids::decode(&c, NodeType::Course)?;
                crate::service::catalog::course(&engine.db, &access, c).await?;
                Some(HashSet::from([c]))
            }
            None => visible,
        };
        let resume = match after {
            Some(c) => Some(Resume::AfterEvent(c.parse::<i64>().map_err(|_| crate::error::AppError::BadInput("`after` is not a cursor of this subscription".into()))?)),
            None => None,
        };
        Ok(stream(engine, access, Filter::Courses(courses), resume))
    }
}
