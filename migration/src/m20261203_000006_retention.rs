//! Retention, legal hold and approval of deletions (issue 10).
//!
//! - `archive_file`: who or what deleted a file (`deleted_by`: a token subject or `system:<task>`)
//!   and the reason a person gave (`deletion_note`; `deletion_reason` becomes a fixed code such as
//!   `RETENTION_EXPIRED`); the legal hold's reason, holder and start; approval mode's
//!   `deletion_pending_since` and the decision on it (`APPROVED` / `DENIED`, by whom, when, why).
//! - `archive_job`: a legal hold of its own, covering every file of the job.
//! - `timestamp_token`: `data_removed_at`: the token's DER data was cleared when its file was
//!   deleted; the row stays as the record that the timestamp existed.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const FILE_COLUMNS: &[&str] = &[
    "deleted_by", "deletion_note", "legal_hold_reason", "legal_hold_since", "legal_hold_by", "deletion_pending_since",
    "deletion_decision", "deletion_decided_by", "deletion_decided_at", "deletion_decision_reason",
];
const JOB_COLUMNS: &[&str] = &["legal_hold", "legal_hold_reason", "legal_hold_since", "legal_hold_by"];

fn column(name: &'static str) -> ColumnDef {
    match name {
        "legal_hold" => boolean(name).default(false).take(),
        n if n.ends_with("_since") || n.ends_with("_at") => timestamp_with_time_zone_null(n),
        n if n.ends_with("_note") || n.ends_with("_reason") => text_null(n),
        n => string_null(n),
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite adds no more at once.
        for c in FILE_COLUMNS {
            m.alter_table(Table::alter().table("archive_file").add_column(column(c)).take()).await?;
        }
        for c in JOB_COLUMNS {
            m.alter_table(Table::alter().table("archive_job").add_column(column(c)).take()).await?;
        }
        m.alter_table(Table::alter().table("timestamp_token").add_column(timestamp_with_time_zone_null("data_removed_at")).take()).await?;
        // Reasons were free text until now: keep the text as the note, and classify it.
        let db = m.get_connection();
        db.execute_unprepared("UPDATE archive_file SET deletion_note = deletion_reason WHERE deletion_reason IS NOT NULL").await?;
        db.execute_unprepared(
            "UPDATE archive_file SET deletion_reason = CASE WHEN deletion_reason LIKE 'job deleted by%' THEN 'JOB_DELETED' ELSE 'JOB_DISCARDED' END \
             WHERE deletion_reason IS NOT NULL",
        )
        .await?;
        // The retention sweep and the list of pending deletions look for undeleted files by these.
        m.create_index(Index::create().name("ix_archive_file_pending").table("archive_file").col("deletion_pending_since").col("id").take()).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("ix_archive_file_pending").table("archive_file").to_owned()).await?;
        m.alter_table(Table::alter().table("timestamp_token").drop_column("data_removed_at").take()).await?;
        for c in JOB_COLUMNS.iter().rev() {
            m.alter_table(Table::alter().table("archive_job").drop_column(*c).take()).await?;
        }
        let db = m.get_connection();
        db.execute_unprepared("UPDATE archive_file SET deletion_reason = COALESCE(deletion_note, deletion_reason) WHERE deletion_reason IS NOT NULL").await?;
        for c in FILE_COLUMNS.iter().rev() {
            m.alter_table(Table::alter().table("archive_file").drop_column(*c).take()).await?;
        }
        Ok(())
    }
}
