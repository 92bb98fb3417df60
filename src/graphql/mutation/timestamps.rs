//! Mutations of RFC 3161 timestamps: manual signing and re-timestamping of stored files.
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};

use crate::graphql::{
    context::ContextExt,
    ids::{self, NodeType},
    types::*,
};

#[derive(InputObject)]
pub struct SignArchiveFileInput {
    /// An `ArchiveFile` id.
    file_id: ID,
}

#[derive(SimpleObject)]
pub struct SignArchiveFilePayload {
    /// The file with all its tokens, the new one last; `null` on `userErrors`.
    file: Option<ArchiveFile>,
    /// The token just obtained and verified.
    timestamp: Option<TimestampToken>,
    user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct TimestampMutations;

#[Object]
impl TimestampMutations {
    /// Timestamps a stored file now with the configured Time-Stamp Authority: a file left
    /// unsigned (TSA outage, COMPLETE_UNSIGNED), or one whose TSA certificate nears its expiry
    /// (re-timestamping; the older tokens are kept). The reply is verified before it is stored.
    /// Needs `MANAGE`; audit-logged. TSA_NOT_CONFIGURED without a TSA, TIMESTAMP_FAILED when the
    /// TSA cannot be reached or its reply fails a check (nothing is stored then).
    async fn sign_archive_file(&self, ctx: &Context<'_>, input: SignArchiveFileInput) -> Result<SignArchiveFilePayload> {
        let id = ids::decode(&input.file_id, NodeType::ArchiveFile)?;
        ctx.loaders().clear();
        Ok(match ctx.services().sign_file(ctx.access()?, id).await? {
            Ok((f, t)) => {
                let job_id = f.job_id;
                SignArchiveFilePayload { file: Some(ArchiveFile::new(f)), timestamp: Some(TimestampToken(t, job_id)), user_errors: vec![] }
            }
            Err(es) => SignArchiveFilePayload { file: None, timestamp: None, user_errors: es.into_iter().map(Into::into).collect() },
        })
    }
}
