use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The token's subject, or `system` for what the server does on its own.
    pub actor: String,
    /// The actor's roles when it acted, comma-separated.
    pub actor_roles: String,
    /// The client address of an API call, `cli`, or `periodic:<task>`.
    pub origin: Option<String>,
    /// `domain::AuditAction` as text.
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    /// What changed: object ids, before/after values. Never a secret.
    pub details: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
