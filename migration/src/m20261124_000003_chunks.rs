//! Chunks of an activity task: a large activity's records are fetched and rendered by several
//! queue tasks (any worker may run any of them) and then assembled into the task's one package.
//! One row per chunk: which records, its state, its lease (like a task's) and who finished it.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("archive_chunk")
                .col(big_pk_auto("id"))
                .col(big_integer("task_id"))
                .col(integer("idx"))
                .col(integer("first_record"))
                .col(integer("records"))
                // Progress within the chunk: the task's records_done is the sum over its chunks.
                .col(integer("records_done").default(0))
                .col(string("status"))
                .col(string_null("lease_owner"))
                .col(timestamp_with_time_zone_null("lease_until"))
                // The process that finished the chunk.
                .col(string_null("worker"))
                .col(text_null("error"))
                .col(boolean("failure_transient").default(false))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_archive_chunk_task_id")
                        .from("archive_chunk", "task_id")
                        .to("archive_task", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(Index::create().name("ux_archive_chunk_task_id_idx").table("archive_chunk").col("task_id").col("idx").unique().take()).await?;
        m.create_index(Index::create().name("ix_archive_chunk_status").table("archive_chunk").col("status").take()).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("archive_chunk").take()).await?;
        Ok(())
    }
}
