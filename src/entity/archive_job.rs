use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "archive_job")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub course_id: i64,
    /// `domain::JobStatus` as text.
    pub status: String,
    pub progress: i32,
    /// `domain::JobOrigin` as text.
    pub origin: String,
    pub requested_by: String,
    pub settings: Json,
    pub attempt: i32,
    pub completed_stage: Option<String>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub sequence: i64,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub deadline: Option<DateTimeUtc>,
    pub next_retry_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
    /// Which worker works on the job's current stage, and until when (it renews while working).
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    /// Retries of the current attempt after RECOVERABLE_ERROR.
    pub retries: i32,
    /// The stage that failed last, where a retry resumes.
    pub failed_stage: Option<String>,
    /// A legal hold on the job stops the deletion of each of its files. Defaults keep event
    /// snapshots written before these fields readable.
    #[serde(default)]
    pub legal_hold: bool,
    #[serde(default)]
    pub legal_hold_reason: Option<String>,
    #[serde(default)]
    pub legal_hold_since: Option<DateTimeUtc>,
    #[serde(default)]
    pub legal_hold_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::course::Entity", from = "Column::CourseId", to = "super::course::Column::Id")]
    Course,
    #[sea_orm(has_many = "super::archive_task::Entity")]
    ArchiveTask,
}

impl Related<super::course::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Course.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
