use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "archive_file")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub job_id: Uuid,
    pub task_id: Option<i64>,
    pub storage_backend_id: i64,
    pub storage_key: String,
    pub file_name: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub media_type: String,
    pub retention_until: Option<DateTimeUtc>,
    /// The file's own legal hold; its job's hold (`archive_job.legal_hold`) covers it too.
    pub legal_hold: bool,
    pub deleted_at: Option<DateTimeUtc>,
    /// `domain::DeletionReason` as text.
    pub deletion_reason: Option<String>,
    pub created_at: DateTimeUtc,
    /// When the object was stored and verified; `None`: an intent recorded before the put, which
    /// is not (yet) an archive file for anyone but the engine and the sweeper.
    pub stored_at: Option<DateTimeUtc>,
    /// A token subject, or `system:<task>` for what the server deleted on its own.
    pub deleted_by: Option<String>,
    /// The reason a person gave for the deletion.
    pub deletion_note: Option<String>,
    pub legal_hold_reason: Option<String>,
    pub legal_hold_since: Option<DateTimeUtc>,
    pub legal_hold_by: Option<String>,
    /// Approval mode: since when the file's retention has ended and it waits for a decision.
    pub deletion_pending_since: Option<DateTimeUtc>,
    /// `domain::DeletionDecision` as text.
    pub deletion_decision: Option<String>,
    pub deletion_decided_by: Option<String>,
    pub deletion_decided_at: Option<DateTimeUtc>,
    pub deletion_decision_reason: Option<String>,
    /// When the stored object was last re-read and compared with `size_bytes` and `sha256` (a
    /// fixity check); `None`: never since it was stored.
    pub last_verified_at: Option<DateTimeUtc>,
    /// `domain::FixityResult` as text: the outcome of that check.
    pub last_verification: Option<String>,
    /// What the check found when it was not OK (sizes, hashes, the read error).
    pub last_verification_detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::archive_job::Entity", from = "Column::JobId", to = "super::archive_job::Column::Id")]
    ArchiveJob,
}

impl Related<super::archive_job::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ArchiveJob.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
