//! Job state in the database: transitions (checked against `domain`, conditional on the state
//! they leave, logged, emitted), monotonic progress, job logs, and leases that let one worker at a
//! time work on a job or a task. Used by the service layer and the pipeline alike.
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::Engine;
use crate::{
    domain::{JobStatus, LogLevel, TaskStatus},
    entity::{archive_job, archive_job_transition, archive_task, job_log},
    events::{JobEvent, JobEventKind},
};

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

impl Engine {
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
        anyhow::ensure!(from.can_become(to), "illegal job transition {from} -> {to}");
        let now = Utc::now();
        let txn = self.db.begin().await?;
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
        let res = q.exec(&txn).await?;
        if res.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let job = archive_job::Entity::find_by_id(job_id).one(&txn).await?.ok_or_else(|| anyhow::anyhow!("job {job_id} vanished"))?;
        archive_job_transition::ActiveModel {
            job_id: Set(job_id),
            from_status: Set(Some(from.to_string())),
            to_status: Set(to.to_string()),
            attempt: Set(job.attempt),
            at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        let level = match to {
            JobStatus::Failure | JobStatus::Timeout => LogLevel::Error,
            JobStatus::RecoverableError | JobStatus::ErrorHandling => LogLevel::Warn,
            _ => LogLevel::Info,
        };
        let msg = if note.is_empty() { format!("{from} → {to}") } else { format!("{from} → {to}: {note}") };
        self.log_in(&txn, job_id, None, level, &msg).await?;
        let pending = self.bus.emit(&txn, JobEvent { kind: JobEventKind::StatusChanged, job: job.clone(), task_id: None }).await?;
        txn.commit().await?;
        self.bus.deliver(pending);
        tracing::info!(job = %job_id, %from, %to, "job transition");
        Ok(Some(job))
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
        let res = update
            .col_expr(archive_job::Column::Sequence, Expr::col(archive_job::Column::Sequence).add(1))
            .filter(archive_job::Column::Id.eq(job_id))
            .exec(&txn)
            .await?;
        let job = match res.rows_affected {
            0 => None,
            _ => archive_job::Entity::find_by_id(job_id).one(&txn).await?,
        };
        let Some(job) = job else {
            txn.rollback().await?;
            return Ok(None);
        };
        if let Some(note) = note {
            self.log_in(&txn, job_id, None, LogLevel::Info, note).await?;
        }
        let pending = self.bus.emit(&txn, JobEvent { kind, job: job.clone(), task_id }).await?;
        txn.commit().await?;
        self.bus.deliver(pending);
        Ok(Some(job))
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

    /// Moves a task from one of `from` to `to`; returns whether it moved.
    pub async fn task_transition(
        &self,
        task: &archive_task::Model,
        from: &[TaskStatus],
        to: TaskStatus,
        set: impl FnOnce(&mut archive_task::ActiveModel),
    ) -> anyhow::Result<bool> {
        let mut am: archive_task::ActiveModel = task.clone().into();
        am.status = Set(to.to_string());
        am.updated_at = Set(Utc::now());
        set(&mut am);
        // Conditional on the old status, like job transitions.
        let mut q = archive_task::Entity::update_many().set(am).filter(archive_task::Column::Id.eq(task.id));
        q = q.filter(archive_task::Column::Status.is_in(from.iter().map(|s| s.to_string())));
        let moved = q.exec(&self.db).await?.rows_affected > 0;
        if moved {
            self.log(task.job_id, Some(task.id), if to == TaskStatus::Failed { LogLevel::Error } else { LogLevel::Info }, &format!("task {} {} → {to}", task.id, task.status))
                .await?;
            self.task_changed(task.job_id, task.id).await?;
        }
        Ok(moved)
    }

    /// Appends to a job's log, if `level` reaches the configured minimum.
    pub async fn log(&self, job_id: Uuid, task_id: Option<i64>, level: LogLevel, message: &str) -> anyhow::Result<()> {
        self.log_in(&self.db, job_id, task_id, level, message).await
    }

    async fn log_in<C: ConnectionTrait>(&self, conn: &C, job_id: Uuid, task_id: Option<i64>, level: LogLevel, message: &str) -> anyhow::Result<()> {
        if level < self.settings.job_log_level {
            return Ok(());
        }
        job_log::ActiveModel {
            job_id: Set(job_id),
            task_id: Set(task_id),
            level: Set(level as i16),
            message: Set(message.to_string()),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(conn)
        .await?;
        Ok(())
    }
}

/// A lease on a job, task or chunk row: who works on it, until when. Taking it succeeds when it is
/// free, expired, or already ours; holders renew it by taking it again while they work.
pub struct Lease;

impl Lease {
    /// Takes the lease kept in the `owner`/`until` columns of the row `target` selects, setting
    /// `also` in the same statement.
    pub async fn take<E: EntityTrait>(
        db: &DatabaseConnection,
        target: Condition,
        (owner_col, until_col): (E::Column, E::Column),
        owner: &str,
        ttl: Duration,
        also: Vec<(E::Column, Expr)>,
    ) -> anyhow::Result<bool> {
        let now = Utc::now();
        let mut q = E::update_many()
            .col_expr(owner_col, Expr::val(Some(owner.to_string())).into())
            .col_expr(until_col, Expr::val(Some(now + ttl)).into());
        for (col, value) in also {
            q = q.col_expr(col, value);
        }
        let free = Condition::any().add(until_col.is_null()).add(until_col.lt(now)).add(owner_col.eq(owner));
        Ok(q.filter(target).filter(free).exec(db).await?.rows_affected > 0)
    }

    /// Lets go of a lease we hold, setting `also` in the same statement.
    pub async fn release<E: EntityTrait>(
        db: &DatabaseConnection,
        target: Condition,
        (owner_col, until_col): (E::Column, E::Column),
        owner: &str,
        also: Vec<(E::Column, Expr)>,
    ) -> anyhow::Result<()> {
        let mut q = E::update_many()
            .col_expr(owner_col, Expr::val(None::<String>).into())
            .col_expr(until_col, Expr::val(None::<DateTime<Utc>>).into());
        for (col, value) in also {
            q = q.col_expr(col, value);
        }
        q.filter(target).filter(owner_col.eq(owner)).exec(db).await?;
        Ok(())
    }

    pub async fn take_job(db: &DatabaseConnection, job_id: Uuid, owner: &str, ttl: Duration) -> anyhow::Result<bool> {
        let cols = (archive_job::Column::LeaseOwner, archive_job::Column::LeaseUntil);
        Self::take::<archive_job::Entity>(db, Condition::all().add(archive_job::Column::Id.eq(job_id)), cols, owner, ttl, vec![]).await
    }

    pub async fn release_job(db: &DatabaseConnection, job_id: Uuid, owner: &str) -> anyhow::Result<()> {
        let cols = (archive_job::Column::LeaseOwner, archive_job::Column::LeaseUntil);
        Self::release::<archive_job::Entity>(db, Condition::all().add(archive_job::Column::Id.eq(job_id)), cols, owner, vec![]).await
    }

    pub async fn take_task(db: &DatabaseConnection, task_id: i64, owner: &str, ttl: Duration) -> anyhow::Result<bool> {
        let cols = (archive_task::Column::LeaseOwner, archive_task::Column::LeaseUntil);
        Self::take::<archive_task::Entity>(db, Condition::all().add(archive_task::Column::Id.eq(task_id)), cols, owner, ttl, vec![]).await
    }

    pub async fn release_task(db: &DatabaseConnection, task_id: i64, owner: &str) -> anyhow::Result<()> {
        let cols = (archive_task::Column::LeaseOwner, archive_task::Column::LeaseUntil);
        Self::release::<archive_task::Entity>(db, Condition::all().add(archive_task::Column::Id.eq(task_id)), cols, owner, vec![]).await
    }
}
