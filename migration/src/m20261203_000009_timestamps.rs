//! RFC 3161 tokens as the API shows them (issue 11): what the token asserts (policy, TSA name,
//! imprint), when it was last verified, the certificate path it was verified against (kept so a
//! token can be shown and checked later even after the configured anchors change), when the
//! TSA certificate expires (files to re-timestamp) and who asked for it.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: &[&str] = &["policy_oid", "tsa_name", "message_imprint", "verified_at", "chain_pem", "signer_not_after", "requested_by"];

fn column(name: &'static str) -> ColumnDef {
    match name {
        "verified_at" | "signer_not_after" => timestamp_with_time_zone_null(name),
        _ => text_null(name),
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one change at a time.
        for c in COLUMNS {
            m.alter_table(Table::alter().table("timestamp_token").add_column(column(c)).take()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for c in COLUMNS.iter().rev() {
            m.alter_table(Table::alter().table("timestamp_token").drop_column(*c).take()).await?;
        }
        Ok(())
    }
}
