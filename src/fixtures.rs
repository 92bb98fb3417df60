//! Rows of finished work for tests (unit tests here and the integration suites): a completed job,
//! a finished task, a stored file. One builder each, so that a new column is added in one place.
//! Not used by the server itself.
use chrono::{DateTime, Utc};
use sea_orm::Set;
use uuid::Uuid;

use crate::entity::{activity, archive_file, archive_job, archive_task};

/// A manual job of `course_id` that COMPLETED at `at`.
pub fn completed_job(course_id: i64, at: DateTime<Utc>) -> archive_job::ActiveModel {
    archive_job::ActiveModel {
        id: Set(Uuid::new_v4()),
        course_id: Set(course_id),
        status: Set("COMPLETED".into()),
        progress: Set(100),
        origin: Set("MANUAL".into()),
        requested_by: Set("test".into()),
        settings: Set(serde_json::json!({})),
        attempt: Set(1),
        completed_stage: Set(None),
        error: Set(None),
        cancel_requested: Set(false),
        sequence: Set(1),
        created_at: Set(at),
        started_at: Set(Some(at)),
        finished_at: Set(Some(at)),
        deadline: Set(None),
        next_retry_at: Set(None),
        updated_at: Set(at),
        lease_owner: Set(None),
        lease_until: Set(None),
        retries: Set(0),
        failed_stage: Set(None),
        legal_hold: Set(false),
        legal_hold_reason: Set(None),
        legal_hold_since: Set(None),
        legal_hold_by: Set(None),
    }
}

/// A FINISHED task of `job_id` that archived `activity` with `fingerprint`.
pub fn finished_task(job_id: Uuid, activity: &activity::Model, fingerprint: Option<String>, at: DateTime<Utc>) -> archive_task::ActiveModel {
    archive_task::ActiveModel {
        job_id: Set(job_id),
        activity_id: Set(activity.id),
        driver: Set(activity.kind.to_lowercase()),
        status: Set("FINISHED".into()),
        progress: Set(100),
        fingerprint: Set(fingerprint),
        error: Set(None),
        created_at: Set(at),
        started_at: Set(Some(at)),
        finished_at: Set(Some(at)),
        updated_at: Set(at),
        ..Default::default()
    }
}

/// A ZIP package of `job_id` stored under `key` on `backend_id`.
pub fn stored_file(job_id: Uuid, backend_id: i64, key: String, name: String, size: i64, at: DateTime<Utc>) -> archive_file::ActiveModel {
    archive_file::ActiveModel {
        job_id: Set(job_id),
        task_id: Set(None),
        storage_backend_id: Set(backend_id),
        storage_key: Set(key),
        file_name: Set(name),
        size_bytes: Set(size),
        sha256: Set("0".repeat(64)),
        media_type: Set("application/zip".into()),
        retention_until: Set(None),
        legal_hold: Set(false),
        deleted_at: Set(None),
        deletion_reason: Set(None),
        created_at: Set(at),
        stored_at: Set(Some(at)),
        ..Default::default()
    }
}
