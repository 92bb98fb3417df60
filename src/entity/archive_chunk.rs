use sea_orm::entity::prelude::*;

/// One chunk of a large activity task: records `first_record .. first_record + records` (in the
/// LMS's order), rendered by one queue task into `staging/<job>/<task>/chunks/<idx>/`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "archive_chunk")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub task_id: i64,
    pub idx: i32,
    pub first_record: i32,
    pub records: i32,
    pub records_done: i32,
    /// `QUEUED`, `RUNNING`, `FINISHED` or `FAILED` ([`ChunkStatus`]).
    pub status: String,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    /// The process (`Engine::process_id`) that finished the chunk.
    pub worker: Option<String>,
    pub error: Option<String>,
    pub failure_transient: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::archive_task::Entity", from = "Column::TaskId", to = "super::archive_task::Column::Id")]
    ArchiveTask,
}

impl Related<super::archive_task::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ArchiveTask.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// The states of a chunk, as stored in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::EnumString, strum::AsRefStr)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ChunkStatus {
    Queued,
    Running,
    Finished,
    Failed,
}
