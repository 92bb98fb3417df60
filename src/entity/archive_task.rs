use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "archive_task")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub job_id: Uuid,
    pub activity_id: i64,
    pub driver: String,
    /// `domain::TaskStatus` as text.
    pub status: String,
    pub progress: i32,
    pub fingerprint: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub records_total: i32,
    pub records_done: i32,
    pub failure_transient: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::archive_job::Entity", from = "Column::JobId", to = "super::archive_job::Column::Id")]
    ArchiveJob,
    #[sea_orm(belongs_to = "super::activity::Entity", from = "Column::ActivityId", to = "super::activity::Column::Id")]
    Activity,
}

impl Related<super::archive_job::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ArchiveJob.def()
    }
}

impl Related<super::activity::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Activity.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
