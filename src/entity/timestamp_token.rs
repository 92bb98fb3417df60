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
    pub policy_oid: Option<String>,
    pub tsa_name: Option<String>,
    /// The imprint the token asserts, hex (the package's SHA-256).
    pub message_imprint: Option<String>,
    /// When the token last passed verification (`verified` says the outcome).
    pub verified_at: Option<DateTimeUtc>,
    /// The certificate path it was verified against, signer first, PEM.
    pub chain_pem: Option<String>,
    /// When the TSA's certificate expires: re-timestamp before.
    pub signer_not_after: Option<DateTimeUtc>,
    /// Who asked: a token subject, or `system:engine` for the SIGN stage.
    pub requested_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::archive_file::Entity", from = "Column::FileId", to = "super::archive_file::Column::Id")]
    File,
}

impl Related<super::archive_file::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::File.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
