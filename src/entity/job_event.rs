use sea_orm::entity::prelude::*;

/// One change of a job in the durable event log (`jobs::events`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_event")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub job_id: Uuid,
    pub course_id: i64,
    pub task_id: Option<i64>,
    /// `events::JobEventKind` as text.
    pub kind: String,
    /// The job's sequence number after the change.
    pub sequence: i64,
    /// The job's status and progress after the change.
    pub status: String,
    pub progress: i32,
    /// The whole job as it was, kept only when its record is gone (DELETED).
    pub snapshot: Option<Json>,
    pub created_at: DateTimeUtc,
}

/// The job an event is about; no foreign key in the database (events outlive their job), so a
/// join finds none for a removed job.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::archive_job::Entity", from = "Column::JobId", to = "super::archive_job::Column::Id")]
    Job,
}

impl Related<super::archive_job::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Job.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
