//! SIGN: every stored package of the job gets an RFC 3161 timestamp from the configured TSA
//! (DESIGN §7), verified before it is kept (`tsp::verify`).
//!
//! One TSA request per package: the copies of a package on several backends share its SHA-256,
//! so they share one token, stored on each file's row (each copy's record stands alone, and
//! deleting one copy clears only its own). Files that already hold a verified token are skipped,
//! so a re-run after a crash or a retry asks only for what is missing, and never stores a second
//! token for the same file in one job.
//!
//! A TSA that cannot be reached, or a reply that fails a check, is a transient failure: the
//! pipeline retries the stage with backoff. On the last attempt the failure policy
//! (`tsa_failure_policy`) decides: FAIL lets the job fail, COMPLETE_UNSIGNED completes it with a
//! warning and the files without token. Either way a TIMESTAMP_FAILED event is emitted.
//! Without a configured TSA nothing can be tried: the job completes unsigned with a warning.
use std::collections::BTreeMap;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};

use super::{job_settings, Outcome, Stage, StageResult, Tasks};
use crate::{
    config::TimestampFailurePolicy,
    domain::{Failure, LogLevel},
    engine::Engine,
    entity::{archive_file, archive_job},
    events::JobEventKind,
    tsp::{self, records},
};

pub struct Sign;

/// Who asked, as recorded on the tokens the stage stores.
const REQUESTED_BY: &str = "system:engine";

#[async_trait::async_trait]
impl Stage for Sign {
    async fn run(&self, engine: &Engine, job: &archive_job::Model, _tasks: &Tasks) -> StageResult {
        if !job_settings(job)?.timestamping {
            return Ok(Outcome::Done);
        }
        let Some(tsa) = engine.tsa.clone() else {
            let msg = "timestamping was requested, but no Time-Stamp Authority is configured (tsa_url): the packages are not timestamped";
            engine.jobs.log(job.id, None, LogLevel::Warn, msg).await?;
            return Ok(Outcome::Done);
        };
        let files = archive_file::Entity::find()
            .filter(archive_file::Column::JobId.eq(job.id))
            .filter(archive_file::Column::DeletedAt.is_null())
            .filter(archive_file::Column::StoredAt.is_not_null())
            .order_by_asc(archive_file::Column::Id)
            .all(&engine.db)
            .await
            .map_err(anyhow::Error::from)?;
        let ids: Vec<i64> = files.iter().map(|f| f.id).collect();
        let signed = records::signed_files(&engine.db, &ids).await?;
        // Packages still without token, by hash: one request each.
        let mut packages: BTreeMap<&str, Vec<&archive_file::Model>> = BTreeMap::new();
        for f in files.iter().filter(|f| !signed.contains(&f.id)) {
            packages.entry(f.sha256.as_str()).or_default().push(f);
        }
        for (sha_hex, copies) in packages {
            if engine.interrupted(job).await? {
                return Ok(Outcome::Again);
            }
            let name = &copies[0].file_name;
            let sha = tsp::sha256_of_hex(sha_hex).ok_or_else(|| Failure::permanent(format!("{name} has a malformed SHA-256 record")))?;
            match tsa.stamp(&sha).await {
                Ok(stamp) => {
                    let txn = engine.db.begin().await.map_err(anyhow::Error::from)?;
                    let ids: Vec<i64> = copies.iter().map(|f| f.id).collect();
                    records::insert(&txn, &ids, &tsa.url, &stamp, REQUESTED_BY, engine.clock.now()).await?;
                    txn.commit().await.map_err(anyhow::Error::from)?;
                    let v = &stamp.verified;
                    let msg = format!("{name} timestamped by {}: time {}, serial {}, verified", v.tsa_name, v.gen_time.to_rfc3339(), v.serial);
                    engine.jobs.log(job.id, copies[0].task_id, LogLevel::Info, &msg).await?;
                }
                Err(e) => return failed(engine, job, tsa.failure_policy, format!("timestamping {name} failed: {e}")).await,
            }
        }
        Ok(Outcome::Done)
    }
}

/// A package could not be timestamped: retried while the job has retries left, then the
/// failure policy decides.
async fn failed(engine: &Engine, job: &archive_job::Model, policy: TimestampFailurePolicy, why: String) -> StageResult {
    engine.jobs.log(job.id, None, LogLevel::Warn, &why).await?;
    if (job.retries as u32) < engine.settings.max_retries {
        return Err(Failure::transient(why));
    }
    let (note, outcome) = match policy {
        TimestampFailurePolicy::Fail => (format!("{why}; retries used up: the job fails (tsa_failure_policy FAIL)"), Err(Failure::transient(why))),
        TimestampFailurePolicy::CompleteUnsigned => (
            format!("{why}; retries used up: the job completes with packages that are not timestamped (tsa_failure_policy COMPLETE_UNSIGNED); sign them later with signArchiveFile"),
            Ok(Outcome::Done),
        ),
    };
    engine.jobs.notice(job.id, JobEventKind::TimestampFailed, LogLevel::Warn, &note).await?;
    outcome
}
