//! Job state in the database: transitions (checked against `domain`, conditional on the state
//! they leave), monotonic progress and job logs. Every change is written together with its log
//! line and its event row in one transaction, so the event log never misses a change and never
//! tells of one that did not commit. Used by the service layer and the engine alike.
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};
use uuid::Uuid;

use crate::{
    config::Settings,
    domain::{JobStatus, LogLevel, TaskStatus},
    entity::{archive_job, archive_job_transition, archive_task, job_event, job_log},
    events::{EventBus, JobEventKind},
    faults,
};

/// The job store: the one writer of job and task state, their logs and their events.
#[derive(Clone)]
pub struct JobStore {
    pub db: DatabaseConnection,
    pub events: EventBus,
    settings: Arc<Settings>,
}

/// Fields a transition may set besides the status.
#[derive(Debug, Default, Clone)]
pub struct Patch {
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub deadline: Option<Option<DateTime<Utc>>>,
    pub error: Option<Option<String>>,
    /// Raise progress to at least this.
    pub progress_at_least: Option<i32>,
    /// Set progress to exactly this (a new attempt starts over).
    pub progress_reset: Option<i32>,
    pub completed_stage: Option<Option<String>>,
    pub failed_stage: Option<Option<String>>,
    pub next_retry_at: Option<Option<DateTime<Utc>>>,
    pub retries: Option<i32>,
    pub attempt: Option<i32>,
    pub cancel_requested: Option<bool>,
}

fn progress_expr(at_least: i32) -> Expr {
    Expr::case(Expr::col(archive_job::Column::Progress).lt(at_least), Expr::val(at_least))
        .finally(Expr::col(archive_job::Column::Progress))
        .into()
}

impl JobStore {
    pub fn new(db: DatabaseConnection, events: EventBus, settings: Arc<Settings>) -> Self {
        Self { db, events, settings }
    }

    /// Moves a job from `from` to `to` if it is still in `from`. Returns the job after the change,
    /// or `None` when another worker (or a user) moved it first.
    pub async fn transition(&self, job_id: Uuid, from: JobStatus, to: JobStatus, patch: Patch, note: &str) -> anyhow::Result<Option<archive_job::Model>> {
        self.transition_within(job_id, from, to, patch, note, None).await
    }

    /// As `transition`, and only while fewer than `slots` jobs are active (`JobStatus::is_active`).
    /// The count is part of the conditional UPDATE; on PostgreSQL an advisory lock serializes
    /// claimers, because concurrent statements could each see the last free slot.
    pub async fn transition_within(
        &self,
        job_id: Uuid,
        from: JobStatus,
        to: JobStatus,
        patch: Patch,
        note: &str,
        slots: Option<u32>,
    ) -> anyhow::Result<Option<archive_job::Model>> {
        let txn = self.db.begin().await?;
        let Some(job) = self.transition_in(&txn, job_id, from, to, patch, note, slots).await? else {
            txn.rollback().await?;
            return Ok(None);
        };
        txn.commit().await?;
        self.transitioned(&job, from, to);
        Ok(Some(job))
    }

    /// The transition of `transition_within`, written in `txn` with its record, log line and
    /// event; the caller commits, then calls [`JobStore::transitioned`].
    #[allow(clippy::too_many_arguments)]
    pub async fn transition_in(
        &self,
        txn: &DatabaseTransaction,
        job_id: Uuid,
        from: JobStatus,
        to: JobStatus,
        patch: Patch,
        note: &str,
        slots: Option<u32>,
    ) -> anyhow::Result<Option<archive_job::Model>> {
        anyhow::ensure!(from.can_become(to), "illegal job transition {from} -> {to}");
        let now = Utc::now();
        let slot_condition = match slots {
            None => None,
            Some(n) => {
                let backend = self.db.get_database_backend();
                if backend == sea_orm::DbBackend::Postgres {
                    txn.execute_raw(sea_orm::Statement::from_string(backend, "SELECT pg_advisory_xact_lock(7340431)")).await?;
                }
                use strum::IntoEnumIterator;
                let active: Vec<String> = JobStatus::iter().filter(|s| s.is_active()).map(|s| format!("'{s}'")).collect();
                Some(Expr::cust(format!("(SELECT COUNT(*) FROM archive_job a WHERE a.status IN ({})) < {n}", active.join(","))))
            }
        };
        let mut q = archive_job::Entity::update_many()
            .col_expr(archive_job::Column::Status, Expr::val(to.to_string()).into())
            .col_expr(archive_job::Column::Sequence, Expr::col(archive_job::Column::Sequence).add(1))
            .col_expr(archive_job::Column::UpdatedAt, Expr::val(now).into());
        let p = &patch;
        if let Some(v) = p.started_at {
            q = q.col_expr(archive_job::Column::StartedAt, Expr::val(Some(v)).into());
        }
        if let Some(v) = p.finished_at {
            q = q.col_expr(archive_job::Column::FinishedAt, Expr::val(Some(v)).into());
        }
        if let Some(v) = p.deadline {
            q = q.col_expr(archive_job::Column::Deadline, Expr::val(v).into());
        }
        if let Some(v) = &p.error {
            q = q.col_expr(archive_job::Column::Error, Expr::val(v.clone()).into());
        }
        if let Some(v) = p.progress_reset {
            q = q.col_expr(archive_job::Column::Progress, Expr::val(v).into());
        } else if let Some(v) = p.progress_at_least {
            q = q.col_expr(archive_job::Column::Progress, progress_expr(v));
        }
        if let Some(v) = &p.completed_stage {
            q = q.col_expr(archive_job::Column::CompletedStage, Expr::val(v.clone()).into());
        }
        if let Some(v) = &p.failed_stage {
            q = q.col_expr(archive_job::Column::FailedStage, Expr::val(v.clone()).into());
        }
        if let Some(v) = p.next_retry_at {
            q = q.col_expr(archive_job::Column::NextRetryAt, Expr::val(v).into());
        }
        if let Some(v) = p.retries {
            q = q.col_expr(archive_job::Column::Retries, Expr::val(v).into());
        }
        if let Some(v) = p.attempt {
            q = q.col_expr(archive_job::Column::Attempt, Expr::val(v).into());
        }
        if let Some(v) = p.cancel_requested {
            q = q.col_expr(archive_job::Column::CancelRequested, Expr::val(v).into());
        }
        q = q.filter(archive_job::Column::Id.eq(job_id)).filter(archive_job::Column::Status.eq(from.to_string()));
        if let Some(c) = slot_condition {
            q = q.filter(c);
        }
        // RETURNING: the job as changed comes back with the update, one statement instead of two.
        let Some(job) = q.exec_with_returning(txn).await?.into_iter().next() else {
            return Ok(None);
        };
        archive_job_transition::ActiveModel {
            job_id: Set(job_id),
            from_status: Set(Some(from.to_string())),
            to_status: Set(to.to_string()),
            attempt: Set(job.attempt),
            at: Set(now),
            ..Default::default()
        }
        .insert(txn)
        .await?;
        let level = match to {
            JobStatus::Failure | JobStatus::Timeout => LogLevel::Error,
            JobStatus::RecoverableError | JobStatus::ErrorHandling => LogLevel::Warn,
            _ => LogLevel::Info,
        };
        let msg = if note.is_empty() { format!("{from} → {to}") } else { format!("{from} → {to}: {note}") };
        self.log_in(txn, job_id, None, level, &msg).await?;
        self.append_event(txn, &job, JobEventKind::StatusChanged, None, false).await?;
        Ok(Some(job))
    }

    /// After a transition written by `transition_in` committed: subscribers and the log learn of it.
    pub fn transitioned(&self, job: &archive_job::Model, from: JobStatus, to: JobStatus) {
        self.events.committed();
        tracing::info!(job = %job.id, %from, %to, "job transition");
        faults::point(|| format!("job:{to}"));
    }

    /// Runs `update` (narrowed to the job, its sequence raised) in a transaction; when it changed
    /// the job, logs `note`, emits `kind` with the job as it now is, and returns that job.
    async fn change_and_emit(
        &self,
        job_id: Uuid,
        update: sea_orm::UpdateMany<archive_job::Entity>,
        kind: JobEventKind,
        task_id: Option<i64>,
        note: Option<&str>,
    ) -> anyhow::Result<Option<archive_job::Model>> {
        let txn = self.db.begin().await?;
        let job = self.change_in(&txn, job_id, update).await?;
        let Some(job) = job else {
            txn.rollback().await?;
            return Ok(None);
        };
        if let Some(note) = note {
            self.log_in(&txn, job_id, None, LogLevel::Info, note).await?;
        }
        self.commit_with_event(txn, &job, kind, task_id, false).await?;
        Ok(Some(job))
    }

    /// Runs `update` on the job within `txn`, raising its sequence; the job after it, if it changed.
    async fn change_in(&self, txn: &DatabaseTransaction, job_id: Uuid, update: sea_orm::UpdateMany<archive_job::Entity>) -> anyhow::Result<Option<archive_job::Model>> {
        let changed = update
            .col_expr(archive_job::Column::Sequence, Expr::col(archive_job::Column::Sequence).add(1))
            .filter(archive_job::Column::Id.eq(job_id))
            .exec_with_returning(txn)
            .await?;
        Ok(changed.into_iter().next())
    }

    /// Writes the event of a change to `job` (as it now is) and commits the change with it.
    async fn commit_with_event(&self, txn: DatabaseTransaction, job: &archive_job::Model, kind: JobEventKind, task_id: Option<i64>, keep_snapshot: bool) -> anyhow::Result<()> {
        self.append_event(&txn, job, kind, task_id, keep_snapshot).await?;
        txn.commit().await?;
        self.events.committed();
        Ok(())
    }

    /// Appends an event row for `job` within `conn`'s transaction and announces it.
    async fn append_event<C: ConnectionTrait>(&self, conn: &C, job: &archive_job::Model, kind: JobEventKind, task_id: Option<i64>, keep_snapshot: bool) -> anyhow::Result<i64> {
        let row = job_event::ActiveModel {
            job_id: Set(job.id),
            course_id: Set(job.course_id),
            task_id: Set(task_id),
            kind: Set(kind.to_string()),
            sequence: Set(job.sequence),
            status: Set(job.status.clone()),
            progress: Set(job.progress),
            snapshot: Set(if keep_snapshot { Some(serde_json::to_value(job)?) } else { None }),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(conn)
        .await?;
        self.events.announce(conn, row.id).await?;
        Ok(row.id)
    }

    /// Records a job just inserted in `txn`: its CREATED event. The caller commits.
    pub async fn created_in(&self, txn: &DatabaseTransaction, job: &archive_job::Model) -> anyhow::Result<()> {
        self.append_event(txn, job, JobEventKind::Created, None, false).await?;
        Ok(())
    }

    /// Records that a job's record was removed: the last event of the job, one past its last
    /// sequence number, keeps what the job was.
    pub async fn record_removed(&self, job: &archive_job::Model) -> anyhow::Result<()> {
        let txn = self.db.begin().await?;
        self.removed_in(&txn, job).await?;
        txn.commit().await?;
        self.events.committed();
        Ok(())
    }

    /// The removal of `record_removed` within `txn` (with other writes that must commit with
    /// it, such as its audit entry); the caller commits, then calls `events.committed()`.
    pub async fn removed_in(&self, txn: &DatabaseTransaction, job: &archive_job::Model) -> anyhow::Result<()> {
        let job = archive_job::Model { sequence: job.sequence + 1, ..job.clone() };
        archive_job::Entity::delete_by_id(job.id).exec(txn).await?;
        self.append_event(txn, &job, JobEventKind::Deleted, None, true).await?;
        Ok(())
    }

    /// A change of the job (`update`, narrowed to it, its sequence raised) or of one of its parts
    /// (an empty update), written within `txn` with its log line (`note`) and its `kind` event.
    /// Returns the job as changed, `None` when `update` matched nothing. The caller commits, then
    /// calls `events.committed()`.
    pub async fn change_in_txn(
        &self,
        txn: &DatabaseTransaction,
        job_id: Uuid,
        update: sea_orm::UpdateMany<archive_job::Entity>,
        kind: JobEventKind,
        note: &str,
    ) -> anyhow::Result<Option<archive_job::Model>> {
        let Some(job) = self.change_in(txn, job_id, update.col_expr(archive_job::Column::UpdatedAt, Expr::val(Utc::now()).into())).await? else {
            return Ok(None);
        };
        self.log_in(txn, job_id, None, LogLevel::Info, note).await?;
        self.append_event(txn, &job, kind, None, false).await?;
        Ok(Some(job))
    }

    /// An event about the job that changes none of its fields (e.g. TIMESTAMP_FAILED): its log
    /// line at `level` and the event, committed together.
    pub async fn notice(&self, job_id: Uuid, kind: JobEventKind, level: LogLevel, note: &str) -> anyhow::Result<()> {
        let txn = self.db.begin().await?;
        let touch = archive_job::Entity::update_many().col_expr(archive_job::Column::UpdatedAt, Expr::val(Utc::now()).into());
        let Some(job) = self.change_in(&txn, job_id, touch).await? else {
            txn.rollback().await?;
            return Ok(());
        };
        self.log_in(&txn, job_id, None, level, note).await?;
        self.commit_with_event(txn, &job, kind, None, false).await
    }

    /// Raises a job's progress (never lowers it) while it is in `status`, and emits it.
    pub async fn raise_progress(&self, job_id: Uuid, status: JobStatus, progress: i32) -> anyhow::Result<()> {
        let progress = progress.clamp(0, 100);
        let update = archive_job::Entity::update_many()
            .col_expr(archive_job::Column::Progress, Expr::val(progress).into())
            .col_expr(archive_job::Column::UpdatedAt, Expr::val(Utc::now()).into())
            .filter(archive_job::Column::Status.eq(status.to_string()))
            .filter(archive_job::Column::Progress.lt(progress));
        self.change_and_emit(job_id, update, JobEventKind::Progress, None, None).await?;
        Ok(())
    }

    /// Asks a running job to stop; its workers see it between two steps. Emitted as UPDATED.
    pub async fn request_cancel(&self, job_id: Uuid, by: &str) -> anyhow::Result<()> {
        let update = archive_job::Entity::update_many()
            .col_expr(archive_job::Column::CancelRequested, Expr::val(true).into())
            .col_expr(archive_job::Column::UpdatedAt, Expr::val(Utc::now()).into())
            .filter(archive_job::Column::CancelRequested.eq(false));
        let note = format!("cancel requested by {by}");
        self.change_and_emit(job_id, update, JobEventKind::Updated, None, Some(&note)).await?;
        Ok(())
    }

    /// Emits a change of one of the job's tasks (its status or progress) to subscribers.
    pub async fn task_changed(&self, job_id: Uuid, task_id: i64) -> anyhow::Result<()> {
        self.change_and_emit(job_id, archive_job::Entity::update_many(), JobEventKind::TaskChanged, Some(task_id), None).await?;
        Ok(())
    }

    /// Moves a task from one of `from` to `to`; returns the task as moved, `None` when it was not
    /// in `from`. The move, its log line and the job's TASK_CHANGED event commit together.
    pub async fn task_transition(
        &self,
        task: &archive_task::Model,
        from: &[TaskStatus],
        to: TaskStatus,
        set: impl FnOnce(&mut archive_task::ActiveModel),
    ) -> anyhow::Result<Option<archive_task::Model>> {
        let mut am: archive_task::ActiveModel = task.clone().into();
        am.status = Set(to.to_string());
        am.updated_at = Set(Utc::now());
        set(&mut am);
        let txn = self.db.begin().await?;
        // Conditional on the old status, like job transitions.
        let q = archive_task::Entity::update_many().set(am).filter(archive_task::Column::Id.eq(task.id)).filter(archive_task::Column::Status.is_in(from.iter().map(|s| s.to_string())));
        // RETURNING: the caller goes on with the task as moved instead of reading it again.
        let Some(moved) = q.exec_with_returning(&txn).await?.into_iter().next() else {
            txn.rollback().await?;
            return Ok(None);
        };
        let level = if to == TaskStatus::Failed { LogLevel::Error } else { LogLevel::Info };
        self.log_in(&txn, task.job_id, Some(task.id), level, &format!("task {} {} → {to}", task.id, task.status)).await?;
        match self.change_in(&txn, task.job_id, archive_job::Entity::update_many()).await? {
            Some(job) => self.commit_with_event(txn, &job, JobEventKind::TaskChanged, Some(task.id), false).await?,
            None => txn.commit().await?,
        }
        faults::point(|| format!("task:{to}"));
        Ok(Some(moved))
    }

    /// Ends every open task of a job in `txn` (with a log line each), so that the job's final
    /// state and its tasks' commit together: nobody ever sees a CANCELED job with a RUNNING task.
    pub async fn end_open_tasks_in(&self, txn: &DatabaseTransaction, job_id: Uuid, to: TaskStatus) -> anyhow::Result<()> {
        let open = [TaskStatus::Created, TaskStatus::Queued, TaskStatus::Running, TaskStatus::Finalizing];
        let tasks = archive_task::Entity::find()
            .filter(archive_task::Column::JobId.eq(job_id))
            .filter(archive_task::Column::Status.is_in(open.iter().map(|s| s.to_string())))
            .all(txn)
            .await?;
        let now = Utc::now();
        for t in tasks {
            let moved = archive_task::Entity::update_many()
                .col_expr(archive_task::Column::Status, Expr::val(to.to_string()).into())
                .col_expr(archive_task::Column::UpdatedAt, Expr::val(now).into())
                .col_expr(archive_task::Column::FinishedAt, Expr::val(Some(now)).into())
                .filter(archive_task::Column::Id.eq(t.id))
                .filter(archive_task::Column::Status.eq(t.status.clone()))
                .exec(txn)
                .await?;
            if moved.rows_affected > 0 {
                self.log_in(txn, job_id, Some(t.id), LogLevel::Info, &format!("task {} {} → {to}", t.id, t.status)).await?;
            }
        }
        Ok(())
    }

    /// Appends to a job's log, if `level` reaches the job's minimum.
    pub async fn log(&self, job_id: Uuid, task_id: Option<i64>, level: LogLevel, message: &str) -> anyhow::Result<()> {
        self.log_in(&self.db, job_id, task_id, level, message).await
    }

    /// The minimum is the job's own (`JobSettings::log_level`, fixed from the policy when the
    /// job was created), else the server setting. It is checked by the INSERT itself, reading
    /// the job's row, so a log line still costs one statement.
    pub async fn log_in<C: ConnectionTrait>(&self, conn: &C, job_id: Uuid, task_id: Option<i64>, level: LogLevel, message: &str) -> anyhow::Result<()> {
        use sea_orm::sea_query::Query;
        use strum::IntoEnumIterator;
        let backend = conn.get_database_backend();
        let job_level = match backend {
            sea_orm::DbBackend::Postgres => "(archive_job.settings ->> 'logLevel')",
            _ => "json_extract(archive_job.settings, '$.logLevel')",
        };
        // Literal SQL from the enum's names only: no input goes in.
        let reached: Vec<String> = LogLevel::iter().filter(|l| *l <= level).map(|l| format!("'{l}'")).collect();
        let cond = format!("COALESCE({job_level}, '{}') IN ({})", self.settings.job_log_level, reached.join(", "));
        let select = Query::select()
            .column((archive_job::Entity, archive_job::Column::Id))
            .expr(Expr::val(task_id))
            .expr(Expr::val(level as i16))
            .expr(Expr::val(message))
            .expr(Expr::val(Utc::now()))
            .from(archive_job::Entity)
            .and_where(Expr::col((archive_job::Entity, archive_job::Column::Id)).eq(job_id))
            .and_where(Expr::cust(cond))
            .to_owned();
        let insert = Query::insert()
            .into_table(job_log::Entity)
            .columns([job_log::Column::JobId, job_log::Column::TaskId, job_log::Column::Level, job_log::Column::Message, job_log::Column::CreatedAt])
            .select_from(select)?
            .to_owned();
        conn.execute_raw(backend.build(&insert)).await?;
        Ok(())
    }
}
