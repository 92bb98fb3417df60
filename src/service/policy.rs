//! The global archiving policy: defaults in code, overridden by stored settings.
use sea_orm::{DatabaseConnection, EntityTrait};

use crate::{
    auth::Capability,
    domain::{PolicyField, PolicyValues},
    entity::policy_setting,
    error::{AppError, AppResult},
    service::Access,
};

pub async fn load(db: &DatabaseConnection) -> AppResult<PolicyValues> {
    let mut p = PolicyValues::default();
    for row in policy_setting::Entity::find().all(db).await? {
        let field: PolicyField = row
            .key
            .parse()
            .map_err(|_| AppError::Internal(anyhow::anyhow!("unknown policy setting {:?} in the database", row.key)))?;
        p.apply(field, row.value, row.locked).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
    }
    Ok(p)
}

pub async fn get(db: &DatabaseConnection, access: &Access) -> AppResult<PolicyValues> {
    access.require(Capability::View)?;
    load(db).await
}
