use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "timestamp_token")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub file_id: i64,
    pub tsa_url: String,
    pub hash_algorithm: String,
    pub query_der: Vec<u8>,
    pub reply_der: Vec<u8>,
    pub gen_time: Option<DateTimeUtc>,
    pub serial: Option<String>,
    pub verified: bool,
    pub verification_error: Option<String>,
    pub created_at: DateTimeUtc,
    /// When the DER data was cleared because the file was deleted; the row stays as the record.
    pub data_removed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
