//! Storage backends can be deleted (issue 10) while the records of the files they held stay:
//! a deleted backend stays as a row with `deleted_at` set (its secrets wiped), so every file
//! record still names where it was. Names are unique among the live backends only, so a name can
//! be used again after its backend is deleted.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("storage_backend").add_column(timestamp_with_time_zone_null("deleted_at")).take()).await?;
        m.drop_index(Index::drop().name("ux_storage_backend_name").table("storage_backend").to_owned()).await?;
        // A partial index: the same statement on SQLite and PostgreSQL.
        m.get_connection()
            .execute_unprepared("CREATE UNIQUE INDEX ux_storage_backend_live_name ON storage_backend (name) WHERE deleted_at IS NULL")
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("ux_storage_backend_live_name").table("storage_backend").to_owned()).await?;
        m.create_index(Index::create().name("ux_storage_backend_name").table("storage_backend").col("name").unique().take()).await?;
        m.alter_table(Table::alter().table("storage_backend").drop_column("deleted_at").take()).await?;
        Ok(())
    }
}
