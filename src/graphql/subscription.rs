//! Live job progress over graphql-transport-ws, read from the durable event log. A subscription
//! starts with the current state (taken after it began listening, so nothing falls in between) —
//! or, when the client passes back where it was (`afterSequence`, `after`), with the logged
//! events it missed — then delivers each change in order with the job's sequence number. Status
//! changes are never dropped; runs of progress events are coalesced to the latest, so a slow
//! client gets the newest state and memory stays bounded. A client too slow even for that gets
//! the current state again.
use std::{
    borrow::Cow,
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use async_graphql::{
    parser::types::Field, registry::Registry, Context, ContextSelectionSet, OutputType, Positioned, Result, ServerResult, Subscription,
    Value, ID,
};
use futures::Stream;
use sha2::{Digest, Sha256};
use tokio::sync::{
    broadcast::error::{RecvError, TryRecvError},
    OnceCell,
};
use uuid::Uuid;

use super::{
    context::ContextExt,
    ids::{self, NodeType},
    types::ArchiveJobEvent,
};
use crate::{
    entity::archive_job,
    events::{JobEvent, JobEventKind},
    service::{
        jobs::Resume,
        subscriptions::{Subscriptions, Watch},
        Access,
    },
};

pub struct SubscriptionRoot;

/// What subscriptions share in a process: the service's budget and counters, and the payloads
/// of recent events, so that an event is resolved once per selection and caller's rights
/// however many subscribers receive it.
pub struct Feed {
    subs: Arc<Subscriptions>,
    payloads: Payloads,
}

impl Feed {
    pub fn new(subs: Arc<Subscriptions>) -> Self {
        Self { subs, payloads: Payloads::default() }
    }
}

/// How many unfinished jobs a multi-job subscription starts with.
const SNAPSHOT_LIMIT: u64 = 100;

/// A snapshot event; `cursor` is the newest logged event it covers.
fn snapshot(job: archive_job::Model, cursor: i64) -> ArchiveJobEvent {
    ArchiveJobEvent { event: JobEvent { id: cursor, kind: JobEventKind::StatusChanged, job, task_id: None }, snapshot: true }
}

/// The most missed events a resuming subscriber is sent; one further behind starts over from
/// the current state.
const REPLAY_LIMIT: u64 = 1000;

/// Resolved payloads kept for subscribers that receive the same event a little later. Only a
/// short window matters: subscribers of one event receive it together, or else they lag and
/// coalesce. The bound keeps the memory at a few hundred payloads whatever the clients do.
const PAYLOADS_KEPT: usize = 256;
const PAYLOAD_TTL: Duration = Duration::from_secs(5);

type PayloadKey = [u8; 32];

/// One event's payload for one selection and rights: resolved once, serialized once.
struct Resolved {
    value: Value,
    /// `value` as JSON, spliced into each WebSocket subscriber's `next` frame.
    json: Arc<str>,
    /// What the payload's subscribers resolve to on a WebSocket, replaced by `json` on the way
    /// out (see [`OutgoingPayloads`]).
    marker: Arc<str>,
}

/// Single-flight memo of resolved event payloads: the first subscriber to need one resolves it
/// (within the database budget), the others wait for it and share it.
#[derive(Default)]
struct Payloads {
    entries: Mutex<HashMap<PayloadKey, (Instant, Arc<OnceCell<Arc<Resolved>>>)>>,
}

/// A random per-process part of every marker, so that no text a resolver returns (a course
/// name, an error message) can be taken for one.
fn marker_nonce() -> &'static str {
    static NONCE: OnceLock<String> = OnceLock::new();
    NONCE.get_or_init(|| Uuid::new_v4().simple().to_string())
}

fn marker(key: &PayloadKey) -> Arc<str> {
    let hex: String = key[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("am-shared-payload-{}-{hex}", marker_nonce()).into()
}

/// The shared payloads resolved for one WebSocket connection and not yet sent. async-graphql
/// serializes every `next` frame itself, for every subscriber; a shared payload instead
/// resolves to its marker (a short string) and the connection splices the payload's JSON,
/// serialized once for all its subscribers, in place of the marker. Resolution and the frame
/// follow each other in the connection's own task, so this holds one entry at a time or so.
#[derive(Clone, Default)]
pub struct OutgoingPayloads(Arc<Mutex<VecDeque<(Arc<str>, Arc<str>)>>>);

/// More would mean frames were resolved and never sent; the oldest are dropped.
const OUTGOING_KEPT: usize = 64;

impl OutgoingPayloads {
    fn push(&self, marker: Arc<str>, json: Arc<str>) {
        let mut q = self.0.lock().expect("outgoing payloads");
        if q.len() >= OUTGOING_KEPT {
            q.pop_front();
        }
        q.push_back((marker, json));
    }

    /// `frame` with a marker it holds (as a JSON string) replaced by its payload's JSON.
    pub fn splice(&self, frame: String) -> String {
        let mut q = self.0.lock().expect("outgoing payloads");
        if q.is_empty() {
            return frame;
        }
        let found = q.iter().enumerate().find_map(|(i, (marker, _))| {
            let start = frame.find(&**marker)?;
            let end = start + marker.len();
            let quoted = start > 0 && frame.as_bytes()[start - 1] == b'"' && frame.as_bytes().get(end) == Some(&b'"');
            quoted.then_some((i, start - 1, end + 1))
        });
        let Some((i, start, end)) = found else { return frame };
        let (_, json) = q.remove(i).expect("found above");
        let mut out = String::with_capacity(frame.len() - (end - start) + json.len());
        out.push_str(&frame[..start]);
        out.push_str(&json);
        out.push_str(&frame[end..]);
        out
    }
}

impl Payloads {
    fn cell(&self, key: PayloadKey) -> Arc<OnceCell<Arc<Resolved>>> {
        let mut entries = self.entries.lock().expect("payloads");
        if let Some((_, cell)) = entries.get(&key) {
            return cell.clone();
        }
        if entries.len() >= PAYLOADS_KEPT / 4 {
            entries.retain(|_, (at, _)| at.elapsed() < PAYLOAD_TTL);
        }
        if entries.len() >= PAYLOADS_KEPT {
            // Many selections at once: the oldest go first (waiters keep their cell).
            let mut by_age: Vec<_> = entries.iter().map(|(k, (at, _))| (*at, *k)).collect();
            by_age.sort();
            for (_, k) in by_age.into_iter().take(PAYLOADS_KEPT / 4) {
                entries.remove(&k);
            }
        }
        let cell = Arc::new(OnceCell::new());
        entries.insert(key, (Instant::now(), cell.clone()));
        cell
    }
}

/// What the events of one subscription have in common.
struct Subscriber {
    feed: Arc<Feed>,
    access: Access,
    /// The hash of the selection (operation, fragments, variables) and of the caller's rights:
    /// subscribers with equal ones get equal payloads for an event.
    shape: OnceLock<PayloadKey>,
}

impl Subscriber {
    fn shape(&self, ctx: &ContextSelectionSet<'_>) -> PayloadKey {
        *self.shape.get_or_init(|| {
            let env = &ctx.query_env;
            let mut h = Sha256::new();
            h.update(format!("{:?}", env.operation).as_bytes());
            let mut fragments: Vec<_> = env.fragments.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            fragments.sort();
            h.update(fragments.join("\n").as_bytes());
            h.update(format!("{:?}", env.variables).as_bytes());
            // The rights decide what a payload holds (e.g. `downloadUrl`); the subject does not.
            let p = &self.access.principal;
            h.update(format!("{:?}|{:?}|{:?}", p.roles, p.courses, p.categories).as_bytes());
            h.finalize().into()
        })
    }
}

/// An event on its way to one subscriber. In the schema it is an `ArchiveJobEvent`; its payload
/// is shared with every subscriber of the same shape (see [`Payloads`]).
pub struct SharedEvent {
    event: ArchiveJobEvent,
    subscriber: Arc<Subscriber>,
}

impl SharedEvent {
    fn key(&self, ctx: &ContextSelectionSet<'_>) -> PayloadKey {
        let e = &self.event.event;
        let mut h = Sha256::new();
        h.update(self.subscriber.shape(ctx));
        h.update(format!("{}|{}|{}|{}", e.id, self.event.snapshot, e.job.id, e.job.sequence).as_bytes());
        h.finalize().into()
    }
}

/// A payload resolved with field errors is this subscriber's alone: the errors go to it only.
enum Unshared {
    Failed(async_graphql::ServerError),
    WithErrors(Value),
}

impl OutputType for SharedEvent {
    fn type_name() -> Cow<'static, str> {
        <ArchiveJobEvent as OutputType>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <ArchiveJobEvent as OutputType>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        let feed = &self.subscriber.feed;
        feed.subs.record_delivered();
        let key = self.key(ctx);
        let cell = feed.payloads.cell(key);
        let resolved = cell
            .get_or_try_init(|| async {
                let _permit = feed.subs.db().await;
                let errors_before = ctx.query_env.errors.lock().expect("errors").len();
                let value = <ArchiveJobEvent as OutputType>::resolve(&self.event, ctx, field).await.map_err(Unshared::Failed)?;
                feed.subs.record_resolved();
                if ctx.query_env.errors.lock().expect("errors").len() > errors_before {
                    return Err(Unshared::WithErrors(value));
                }
                let json = serde_json::to_string(&value).map_err(|e| Unshared::Failed(async_graphql::ServerError::new(e.to_string(), Some(field.pos))))?;
                Ok(Arc::new(Resolved { value, json: json.into(), marker: marker(&key) }))
            })
            .await;
        match resolved {
            Ok(r) => match ctx.data_opt::<OutgoingPayloads>() {
                Some(out) => {
                    out.push(r.marker.clone(), r.json.clone());
                    Ok(Value::String(r.marker.to_string()))
                }
                None => Ok(r.value.clone()),
            },
            Err(Unshared::WithErrors(v)) => Ok(v),
            Err(Unshared::Failed(e)) => Err(e),
        }
    }
}

fn stream(feed: Arc<Feed>, access: Access, watch: Watch, resume: Option<Resume>) -> impl Stream<Item = SharedEvent> {
    let subscriber = Arc::new(Subscriber { feed: feed.clone(), access: access.clone(), shape: OnceLock::new() });
    let shared = move |event: ArchiveJobEvent| SharedEvent { event, subscriber: subscriber.clone() };
    let subs = feed.subs.clone();
    // Listen first (now, not when the stream is first polled), then read the state: a change in
    // between arrives as an event.
    let mut rx = subs.listen();
    async_stream::stream! {
        let mut last_seq: HashMap<Uuid, i64> = Default::default();
        let missed = match resume {
            Some(r) => subs.missed(&access, r, &watch, REPLAY_LIMIT).await.ok().filter(|m| (m.len() as u64) < REPLAY_LIMIT),
            None => None,
        };
        match missed {
            Some(events) => {
                for e in events {
                    last_seq.insert(e.job.id, e.job.sequence);
                    yield shared(ArchiveJobEvent { event: e, snapshot: false });
                }
            }
            None => {
                let (cursor, jobs) = subs.current(&access, &watch, SNAPSHOT_LIMIT).await.unwrap_or_default();
                for job in jobs {
                    last_seq.insert(job.id, job.sequence);
                    yield shared(snapshot(job, cursor));
                }
            }
        }
        loop {
            let first = match rx.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(_)) => {
                    // Too slow even for the buffer: send the current state and go on from there.
                    let (cursor, jobs) = subs.current(&access, &watch, SNAPSHOT_LIMIT).await.unwrap_or_default();
                    for job in jobs {
                        if last_seq.get(&job.id).is_none_or(|s| *s < job.sequence) {
                            last_seq.insert(job.id, job.sequence);
                            yield shared(snapshot(job, cursor));
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
            let relevant: Vec<_> = batch.into_iter().filter(|e| watch.wants(&e.job)).collect();
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
                yield shared(ArchiveJobEvent { event: (**e).clone(), snapshot: false });
                if e.kind == JobEventKind::Deleted && matches!(watch, Watch::Job(_)) {
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
    async fn archive_job_updated(&self, ctx: &Context<'_>, job_id: ID, after_sequence: Option<i64>) -> Result<impl Stream<Item = SharedEvent>> {
        let access = ctx.access()?.clone();
        let id = ids::decode_uuid(&job_id, NodeType::ArchiveJob)?;
        let feed = ctx.data_unchecked::<Arc<Feed>>().clone();
        feed.subs.check_job(&access, id).await?;
        let resume = after_sequence.map(|s| Resume::JobAfterSequence(id, s));
        Ok(stream(feed, access, Watch::Job(id), resume))
    }

    /// Every change of every job the caller may see, or of one course's jobs (for dashboards):
    /// first the unfinished jobs as they are (kind SNAPSHOT, newest 100), then every change.
    /// After a reconnect, pass the last event's `cursor` as `after` to get the changes missed
    /// meanwhile instead of the snapshots.
    async fn archive_jobs_changed(&self, ctx: &Context<'_>, course_id: Option<ID>, after: Option<String>) -> Result<impl Stream<Item = SharedEvent>> {
        let access = ctx.access()?.clone();
        let course = course_id.map(|c| ids::decode(&c, NodeType::Course)).transpose()?;
        let resume = match after {
            Some(c) => Some(Resume::AfterEvent(c.parse::<i64>().map_err(|_| crate::error::AppError::BadInput("`after` is not a cursor of this subscription".into()))?)),
            None => None,
        };
        let feed = ctx.data_unchecked::<Arc<Feed>>().clone();
        let courses = feed.subs.courses(&access, course).await?;
        Ok(stream(feed, access, Watch::Courses(courses), resume))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_payload_is_spliced_in_place_of_its_quoted_marker_only() {
        let out = OutgoingPayloads::default();
        let m = marker(&[7; 32]);
        out.push(m.clone(), r#"{"sequence":3,"job":{"name":"x"}}"#.into());
        // Unquoted (e.g. inside a longer string), the marker is not replaced.
        let inside = format!(r#"{{"type":"next","id":"2","payload":{{"data":{{"f":"see {m}"}}}}}}"#);
        assert_eq!(out.splice(inside.clone()), inside);
        let frame = format!(r#"{{"type":"next","id":"1","payload":{{"data":{{"archiveJobsChanged":"{m}"}}}}}}"#);
        assert_eq!(out.splice(frame.clone()), r#"{"type":"next","id":"1","payload":{"data":{"archiveJobsChanged":{"sequence":3,"job":{"name":"x"}}}}}"#);
        // Used once: the same marker again is left alone.
        assert_eq!(out.splice(frame.clone()), frame);
    }
}
