//! Database migrations. Every migration must run on SQLite and PostgreSQL alike; the integration
//! tests apply them to both.
pub use sea_orm_migration::prelude::*;

mod m20261124_000001_initial;
mod m20261124_000002_job_engine;
mod m20261124_000003_chunks;
mod m20261203_000004_liveness;
mod m20261203_000005_audit;
mod m20261203_000006_retention;
mod m20261203_000007_policy;
mod m20261203_000008_storage_health;
mod m20261203_000009_timestamps;
mod m20261203_000010_fixity;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_initial::Migration),
            Box::new(m20261124_000002_job_engine::Migration),
            Box::new(m20261124_000003_chunks::Migration),
            Box::new(m20261203_000004_liveness::Migration),
            Box::new(m20261203_000005_audit::Migration),
            Box::new(m20261203_000006_retention::Migration),
            Box::new(m20261203_000007_policy::Migration),
            Box::new(m20261203_000008_storage_health::Migration),
            Box::new(m20261203_000009_timestamps::Migration),
            Box::new(m20261203_000010_fixity::Migration),
        ]
    }
}
