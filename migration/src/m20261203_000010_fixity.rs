//! Fixity audits (issue 11, point 7): the result of the last check of each stored file.
//!
//! - `last_verified_at`: when the file was last re-read and compared (by the engine's clock);
//!   `NULL` = never checked since it was stored.
//! - `last_verification`: `OK`, `MISMATCH`, `MISSING` or `UNREADABLE` (`domain::FixityResult`).
//! - `last_verification_detail`: what was found when it was not OK (sizes, hashes, the error).
//!
//! The periodic audit picks, per backend, never-checked files first and then those checked
//! longest ago; the partial index serves both (live files only, as the audit reads no other).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite adds no more at once.
        m.alter_table(Table::alter().table("archive_file").add_column(timestamp_with_time_zone_null("last_verified_at")).take()).await?;
        m.alter_table(Table::alter().table("archive_file").add_column(string_null("last_verification")).take()).await?;
        m.alter_table(Table::alter().table("archive_file").add_column(text_null("last_verification_detail")).take()).await?;
        // A partial index: the same statement on SQLite and PostgreSQL.
        m.get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_archive_file_fixity ON archive_file (storage_backend_id, last_verified_at, id) WHERE deleted_at IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("ix_archive_file_fixity").table("archive_file").to_owned()).await?;
        for c in ["last_verification_detail", "last_verification", "last_verified_at"] {
            m.alter_table(Table::alter().table("archive_file").drop_column(c).take()).await?;
        }
        Ok(())
    }
}
