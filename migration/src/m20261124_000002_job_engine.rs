//! What running jobs needs beyond the data model: a lease per job and per task (one worker at a
//! time works on a stage; an expired lease means its worker died), the retry count of the current
//! attempt, and server-wide secrets shared by every process (e.g. the download URL signing key).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for col in [
            string_null("lease_owner"),
            timestamp_with_time_zone_null("lease_until"),
            integer("retries").default(0).take(),
            string_null("failed_stage"),
        ] {
            m.alter_table(Table::alter().table("archive_job").add_column(col).take()).await?;
        }
        for col in [
            string_null("lease_owner"),
            timestamp_with_time_zone_null("lease_until"),
            integer("records_total").default(0).take(),
            integer("records_done").default(0).take(),
            // Whether the task's failure is worth retrying (network, storage) or not (bad data).
            boolean("failure_transient").default(false).take(),
        ] {
            m.alter_table(Table::alter().table("archive_task").add_column(col).take()).await?;
        }
        m.create_table(
            Table::create()
                .table("server_secret")
                .col(string("name").primary_key())
                .col(text("value"))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("server_secret").take()).await?;
        for c in ["lease_owner", "lease_until", "records_total", "records_done", "failure_transient"] {
            m.alter_table(Table::alter().table("archive_task").drop_column(c).take()).await?;
        }
        for c in ["lease_owner", "lease_until", "retries", "failed_stage"] {
            m.alter_table(Table::alter().table("archive_job").drop_column(c).take()).await?;
        }
        Ok(())
    }
}
