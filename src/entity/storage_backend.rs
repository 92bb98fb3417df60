use sea_orm::entity::prelude::*;

/// `Debug` is written by hand: it shows the settings with their secrets redacted, so a row in a
/// log line or a panic message never carries a credential.
#[derive(Clone, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "storage_backend")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique among the backends not deleted.
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
    /// Set when the backend was deleted; the row stays for the records of the files it held.
    pub deleted_at: Option<DateTimeUtc>,
}

impl Model {
    /// The settings fit for the audit log and logs: secrets redacted (an unknown driver's
    /// settings are hidden whole).
    pub fn redacted_settings(&self) -> Json {
        match self.driver.parse::<crate::domain::StorageDriverKind>() {
            Ok(kind) => crate::domain::storage::redact_settings(kind, &self.settings),
            Err(_) => Json::from(crate::domain::storage::REDACTED),
        }
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("driver", &self.driver)
            .field("tier", &self.tier)
            .field("settings", &self.redacted_settings())
            .field("enabled", &self.enabled)
            .field("is_default", &self.is_default)
            .field("created_at", &self.created_at)
            .field("health_checked_at", &self.health_checked_at)
            .field("health_reachable", &self.health_reachable)
            .field("health_free_bytes", &self.health_free_bytes)
            .field("health_used_bytes", &self.health_used_bytes)
            .field("health_error", &self.health_error)
            .field("deleted_at", &self.deleted_at)
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
