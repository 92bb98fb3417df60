//! Archiving switches per activity kind (issue 10): per category (inherited by sub-categories
//! unless overridden) and global. A missing row means "inherit" (globally: on), so switching back
//! to inherit deletes the row. The category-wide switch stays in `category_policy`.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("category_kind_policy")
                .col(big_integer("category_id"))
                // `domain::ActivityKind` as text.
                .col(string("kind"))
                .col(boolean("archiving_enabled"))
                .col(timestamp_with_time_zone("updated_at"))
                .col(string_null("updated_by"))
                .primary_key(Index::create().col("category_id").col("kind"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_category_kind_policy_category_id")
                        .from("category_kind_policy", "category_id")
                        .to("course_category", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("kind_policy")
                .col(string("kind").primary_key())
                .col(boolean("archiving_enabled"))
                .col(timestamp_with_time_zone("updated_at"))
                .col(string_null("updated_by"))
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("kind_policy").to_owned()).await?;
        m.drop_table(Table::drop().table("category_kind_policy").to_owned()).await?;
        Ok(())
    }
}
