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
    pub legal_hold: bool,
    pub deleted_at: Option<DateTimeUtc>,
    pub deletion_reason: Option<String>,
    pub created_at: DateTimeUtc,
    /// When the object was stored and verified; `None`: an intent recorded before the put, which
    /// is not (yet) an archive file for anyone but the engine and the sweeper.
    pub stored_at: Option<DateTimeUtc>,
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
