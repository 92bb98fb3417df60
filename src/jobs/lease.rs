//! Leases: which worker works on a job, task or chunk row, until when. A lease is held by a
//! [`LeaseGuard`] that the future doing the work owns: the guard renews it in the background and
//! stops renewing when it is dropped — when the work ends, is dropped (a restarted consumer), or
//! panics; when the process dies nothing renews it either. Either way the lease expires within
//! `lease_seconds` and another worker takes the work over. A holder that cannot renew in time
//! (the database is unreachable) learns it from [`LeaseGuard::lost`] and stops at its next step,
//! since another worker may have taken over by then.
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sea_orm::{sea_query::Expr, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::entity::{archive_job, archive_task};

/// Takes and lets go of the lease kept in a row's `lease_owner`/`lease_until` columns. Taking
/// succeeds when the lease is free, expired, or already ours (that is how holders renew it).
pub struct Lease;

impl Lease {
    /// Takes the lease of the row `target` selects, setting `also` in the same statement.
    pub async fn take<E: EntityTrait>(
        db: &DatabaseConnection,
        target: Condition,
        (owner_col, until_col): (E::Column, E::Column),
        owner: &str,
        ttl: chrono::Duration,
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

    const JOB: (archive_job::Column, archive_job::Column) = (archive_job::Column::LeaseOwner, archive_job::Column::LeaseUntil);
    const TASK: (archive_task::Column, archive_task::Column) = (archive_task::Column::LeaseOwner, archive_task::Column::LeaseUntil);

    pub async fn take_job(db: &DatabaseConnection, job_id: Uuid, owner: &str, ttl: chrono::Duration) -> anyhow::Result<bool> {
        Self::take::<archive_job::Entity>(db, Condition::all().add(archive_job::Column::Id.eq(job_id)), Self::JOB, owner, ttl, vec![]).await
    }

    /// As [`Lease::take_job`], returning the job as it is once taken (`None`: not taken), so
    /// that the holder need not read it again.
    pub async fn claim_job(db: &DatabaseConnection, job_id: Uuid, owner: &str, ttl: chrono::Duration) -> anyhow::Result<Option<archive_job::Model>> {
        let now = Utc::now();
        let (owner_col, until_col) = Self::JOB;
        let free = Condition::any().add(until_col.is_null()).add(until_col.lt(now)).add(owner_col.eq(owner));
        let taken = archive_job::Entity::update_many()
            .col_expr(owner_col, Expr::val(Some(owner.to_string())).into())
            .col_expr(until_col, Expr::val(Some(now + ttl)).into())
            .filter(archive_job::Column::Id.eq(job_id))
            .filter(free)
            .exec_with_returning(db)
            .await?;
        Ok(taken.into_iter().next())
    }

    /// Lets go of a job's lease we hold; returns the job as it is then (`None` when the lease
    /// was no longer ours), so that whoever looks at it next need not read it again.
    pub async fn release_job(db: &DatabaseConnection, job_id: Uuid, owner: &str) -> anyhow::Result<Option<archive_job::Model>> {
        let (owner_col, until_col) = Self::JOB;
        let released = archive_job::Entity::update_many()
            .col_expr(owner_col, Expr::val(None::<String>).into())
            .col_expr(until_col, Expr::val(None::<DateTime<Utc>>).into())
            .filter(archive_job::Column::Id.eq(job_id))
            .filter(owner_col.eq(owner))
            .exec_with_returning(db)
            .await?;
        Ok(released.into_iter().next())
    }

    pub async fn take_task(db: &DatabaseConnection, task_id: i64, owner: &str, ttl: chrono::Duration) -> anyhow::Result<bool> {
        Self::take::<archive_task::Entity>(db, Condition::all().add(archive_task::Column::Id.eq(task_id)), Self::TASK, owner, ttl, vec![]).await
    }

    pub async fn release_task(db: &DatabaseConnection, task_id: i64, owner: &str) -> anyhow::Result<()> {
        Self::release::<archive_task::Entity>(db, Condition::all().add(archive_task::Column::Id.eq(task_id)), Self::TASK, owner, vec![]).await
    }
}

/// Renews a lease every third of its time for as long as it lives; see the module comment.
pub struct LeaseGuard {
    renewal: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl LeaseGuard {
    /// Starts renewing a lease just taken. `renew` takes it again and says whether it is still
    /// ours (false: the row moved on or another worker has it).
    pub fn hold<R>(ttl: chrono::Duration, renew: R) -> Self
    where
        R: Fn() -> BoxFuture<'static, anyhow::Result<bool>> + Send + 'static,
    {
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        let ttl = ttl.to_std().unwrap_or(Duration::from_secs(30));
        let every = (ttl / 3).max(Duration::from_millis(200));
        let renewal = tokio::spawn(async move {
            let mut renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(every).await;
                match renew().await {
                    Ok(true) => renewed = tokio::time::Instant::now(),
                    Ok(false) => {
                        flag.store(true, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "renewing a lease failed");
                        // Past its time the lease may be someone else's: stop at the next step.
                        if renewed.elapsed() >= ttl {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
        Self { renewal, lost }
    }

    /// True once the lease may no longer be ours.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// The flag behind [`LeaseGuard::lost`], for code that polls it without the guard.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// A background task that ends with its owner: aborted when dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    //! Real time with a short lease (renewal every 200 ms): the bounds below are generous liveness
    //! bounds, not measurements. (Paused time would need tokio's `test-util`, which changes tokio's
    //! features for test builds and so rebuilds half the dependency tree.)
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn counting(result: fn() -> anyhow::Result<bool>) -> (Arc<AtomicUsize>, impl Fn() -> BoxFuture<'static, anyhow::Result<bool>> + Send + 'static) {
        let n = Arc::new(AtomicUsize::new(0));
        let c = n.clone();
        (n, move || {
            c.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { result() })
        })
    }

    const TTL_MS: i64 = 600;

    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn renewal_stops_when_the_guard_is_dropped() {
        let (n, renew) = counting(|| Ok(true));
        let guard = LeaseGuard::hold(chrono::Duration::milliseconds(TTL_MS), renew);
        until("renewed three times", || n.load(Ordering::SeqCst) >= 3).await;
        assert!(!guard.lost());
        // The work's future ends (or is dropped): nothing renews the lease any more.
        drop(guard);
        let renewed = n.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5 * TTL_MS as u64)).await;
        assert_eq!(n.load(Ordering::SeqCst), renewed);
    }

    #[tokio::test]
    async fn a_lease_that_cannot_be_renewed_in_time_is_lost() {
        let (n, renew) = counting(|| Err(anyhow::anyhow!("the database is unreachable")));
        let guard = LeaseGuard::hold(chrono::Duration::milliseconds(TTL_MS), renew);
        until("a failed renewal", || n.load(Ordering::SeqCst) >= 1).await;
        until("lost once past its time", || guard.lost()).await;
        assert!(n.load(Ordering::SeqCst) >= 3, "it kept trying until then");
    }

    #[tokio::test]
    async fn a_lease_taken_over_is_lost_at_once() {
        let (n, renew) = counting(|| Ok(false));
        let guard = LeaseGuard::hold(chrono::Duration::milliseconds(TTL_MS), renew);
        until("lost", || guard.lost()).await;
        tokio::time::sleep(Duration::from_millis(5 * TTL_MS as u64)).await;
        assert_eq!(n.load(Ordering::SeqCst), 1, "renewal stops once the lease is gone");
    }
}
