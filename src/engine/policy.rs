//! The policy as stored: settings over the defaults in code. The one place it is read from the
//! database, by the service layer (for jobs to come) and by workers (for the limits they apply).
use sea_orm::{ConnectionTrait, EntityTrait};

use super::Engine;
use crate::{
    domain::{PolicyField, PolicyValues},
    entity::policy_setting,
};

fn parse_field(key: &str) -> anyhow::Result<PolicyField> {
    key.parse().map_err(|_| anyhow::anyhow!("unknown policy setting {key:?} in the database"))
}

pub async fn load<C: ConnectionTrait>(db: &C) -> anyhow::Result<PolicyValues> {
    let mut p = PolicyValues::default();
    for row in policy_setting::Entity::find().all(db).await? {
        p.apply(parse_field(&row.key)?, row.value, row.locked).map_err(anyhow::Error::msg)?;
    }
    Ok(p)
}

impl Engine {
    /// Archive jobs active at once across all processes: the policy's limit, else the server
    /// setting. Read at each use, so a policy change holds at once on every process.
    pub async fn max_concurrent_jobs(&self) -> anyhow::Result<u32> {
        let field = PolicyField::MaxConcurrentJobs;
        let mut p = PolicyValues::default();
        if let Some(row) = policy_setting::Entity::find_by_id(field.to_string()).one(&self.db).await? {
            p.apply(field, row.value, row.locked).map_err(anyhow::Error::msg)?;
        }
        Ok(p.max_concurrent_jobs.unwrap_or(self.settings.max_concurrent_jobs))
    }
}
