//! The audit log gains who-as-what and where-from (issue 10): `actor_roles` (the token's roles,
//! comma-separated, as they were when the action was taken) and `origin` (the client address of
//! an API call, `cli`, or the periodic task that acted on its own). Filters run by action, by
//! object and by actor, newest first.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite adds no more at once.
        m.alter_table(Table::alter().table("audit_log").add_column(string("actor_roles").default("")).take()).await?;
        m.alter_table(Table::alter().table("audit_log").add_column(string_null("origin")).take()).await?;
        m.create_index(Index::create().name("ix_audit_log_action").table("audit_log").col("action").col("id").take()).await?;
        m.create_index(Index::create().name("ix_audit_log_target").table("audit_log").col("target_type").col("target_id").take()).await?;
        m.create_index(Index::create().name("ix_audit_log_actor").table("audit_log").col("actor").col("id").take()).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for ix in ["ix_audit_log_actor", "ix_audit_log_target", "ix_audit_log_action"] {
            m.drop_index(Index::drop().name(ix).table("audit_log").to_owned()).await?;
        }
        m.alter_table(Table::alter().table("audit_log").drop_column("origin").take()).await?;
        m.alter_table(Table::alter().table("audit_log").drop_column("actor_roles").take()).await?;
        Ok(())
    }
}
