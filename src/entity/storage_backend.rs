use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "storage_backend")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    /// `domain::StorageDriverKind` as text.
    pub driver: String,
    /// `domain::StorageTier` as text.
    pub tier: String,
    /// Driver settings, secrets included. Never serialized to a client.
    pub settings: Json,
    pub enabled: bool,
    pub is_default: bool,
    pub created_at: DateTimeUtc,
    pub health_checked_at: Option<DateTimeUtc>,
    pub health_reachable: Option<bool>,
    pub health_free_bytes: Option<i64>,
    pub health_used_bytes: Option<i64>,
    pub health_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
