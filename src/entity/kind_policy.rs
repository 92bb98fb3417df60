use sea_orm::entity::prelude::*;

/// Whether one activity kind is archived anywhere a category does not decide otherwise. No row: on.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "kind_policy")]
pub struct Model {
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
