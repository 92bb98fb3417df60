//! Mutations of fixity audits: checking one stored file on demand.
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};

use crate::graphql::{
    context::ContextExt,
    ids::{self, NodeType},
    types::*,
};

#[derive(InputObject)]
pub struct VerifyArchiveFileInput {
    /// An `ArchiveFile` id.
    file_id: ID,
}

#[derive(SimpleObject)]
pub struct VerifyArchiveFilePayload {
    /// The file as checked now: `lastVerifiedAt`, `lastVerification` and its detail; `null` on
    /// `userErrors`.
    file: Option<ArchiveFile>,
    /// The outcome of this check (as `file.lastVerification`).
    result: Option<FixityResult>,
    user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct FixityMutations;

#[Object]
impl FixityMutations {
    /// Re-reads a stored file from its storage now and compares it with its recorded size and
    /// SHA-256, as the periodic fixity audit does; the result is stored on the file, a failure
    /// raises `FIXITY_FAILED` on its job, and the check is in the audit log. Needs `AUDIT`, and
    /// `VIEW` in the file's course. A storage backend that does not answer is a
    /// `STORAGE_UNAVAILABLE` user error, and nothing is recorded.
    async fn verify_archive_file(&self, ctx: &Context<'_>, input: VerifyArchiveFileInput) -> Result<VerifyArchiveFilePayload> {
        let id = ids::decode(&input.file_id, NodeType::ArchiveFile)?;
        ctx.loaders().clear();
        Ok(match ctx.services().verify_file(ctx.access()?, id).await? {
            Ok(f) => {
                let result = f.last_verification.as_deref().and_then(|r| r.parse::<crate::domain::FixityResult>().ok()).map(Into::into);
                VerifyArchiveFilePayload { file: Some(ArchiveFile::new(f)), result, user_errors: vec![] }
            }
            Err(es) => VerifyArchiveFilePayload { file: None, result: None, user_errors: es.into_iter().map(Into::into).collect() },
        })
    }
}
