use sea_orm::entity::prelude::*;

/// Whether one activity kind is archived in a category and below it (unless a sub-category
/// overrides it). No row: inherited.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "category_kind_policy")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub category_id: i64,
    /// `domain::ActivityKind` as text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    pub archiving_enabled: bool,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
