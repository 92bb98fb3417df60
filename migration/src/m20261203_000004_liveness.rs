//! Liveness and the durable event log (issue 7):
//! - `job_event`: every change a client, webhook, e-mail or audit must learn of, written in the
//!   same transaction as the change. Small rows: what happened to which job, with the job's
//!   sequence, status and progress of that moment (and its course, for filtering); the rest of the job is read from its row. No
//!   foreign key: a job's DELETED event outlives the job's record.
//! - `archive_file.stored_at`: a file row is written as an intent before its object is put, and
//!   confirmed after the object was read back and verified; NULL means "maybe stored", which the
//!   sweeper resolves. Existing rows were all confirmed.
//! - `periodic_run`: when each cluster-wide periodic task last ran, so that it runs once per
//!   interval across all processes and a missed tick after downtime runs once.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("job_event")
                .col(big_pk_auto("id"))
                .col(uuid("job_id"))
                .col(big_integer("course_id"))
                .col(big_integer_null("task_id"))
                .col(string("kind"))
                .col(big_integer("sequence"))
                .col(string("status"))
                .col(integer("progress"))
                // The job as it was, only where its record is gone (a DELETED event).
                .col(json_null("snapshot"))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;
        m.create_index(Index::create().name("ix_job_event_job_sequence").table("job_event").col("job_id").col("sequence").take()).await?;
        m.create_index(Index::create().name("ix_job_event_created_at").table("job_event").col("created_at").take()).await?;

        m.alter_table(Table::alter().table("archive_file").add_column(timestamp_with_time_zone_null("stored_at")).take()).await?;
        m.get_connection().execute_unprepared("UPDATE archive_file SET stored_at = created_at").await?;
        m.create_index(Index::create().name("ix_archive_file_stored_at").table("archive_file").col("stored_at").take()).await?;

        m.create_table(
            Table::create()
                .table("periodic_run")
                .col(string("name").primary_key())
                .col(timestamp_with_time_zone("started_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .col(string("process"))
                .col(text_null("error"))
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("periodic_run").take()).await?;
        m.drop_index(Index::drop().name("ix_archive_file_stored_at").table("archive_file").to_owned()).await?;
        m.alter_table(Table::alter().table("archive_file").drop_column("stored_at").take()).await?;
        m.drop_table(Table::drop().table("job_event").take()).await?;
        Ok(())
    }
}
