//! The mutation root, merged from one object per area so that each area's mutations live in a
//! file of their own. Each mutation takes one `input` and returns a payload with `userErrors` for
//! what the caller can fix; authentication, permission and not-found failures are top-level errors.
mod fixity;
mod jobs;
mod policy;
mod retention;
mod storage;
mod timestamps;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(jobs::JobMutations, policy::PolicyMutations, storage::StorageMutations, retention::RetentionMutations, fixity::FixityMutations, timestamps::TimestampMutations);
