//! Tokens as the database keeps them: written by the SIGN stage and `signArchiveFile`, checked
//! again by re-verification. The DER of query and reply is kept as received, so anyone can check
//! a token with their own tools later (the `.tsq`/`.tsr` downloads).
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{request, verify_reply, Stamp, TrustAnchors};
use crate::entity::timestamp_token;

/// Stores `stamp` for each of `file_ids` (copies of one package share its token), in `conn`'s
/// transaction so that a crash leaves all or none.
pub async fn insert<C: ConnectionTrait>(conn: &C, file_ids: &[i64], tsa_url: &str, stamp: &Stamp, requested_by: &str, now: DateTime<Utc>) -> anyhow::Result<Vec<timestamp_token::Model>> {
    let v = &stamp.verified;
    let mut rows = Vec::new();
    for file_id in file_ids {
        let row = timestamp_token::ActiveModel {
            file_id: Set(*file_id),
            tsa_url: Set(tsa_url.to_string()),
            hash_algorithm: Set(v.hash_algorithm.to_string()),
            query_der: Set(stamp.query.der.clone()),
            reply_der: Set(stamp.reply_der.clone()),
            gen_time: Set(Some(v.gen_time)),
            serial: Set(Some(v.serial.clone())),
            verified: Set(true),
            verification_error: Set(None),
            created_at: Set(now),
            data_removed_at: Set(None),
            policy_oid: Set(Some(v.policy_oid.clone())),
            tsa_name: Set(Some(v.tsa_name.clone())),
            message_imprint: Set(Some(v.message_imprint.clone())),
            verified_at: Set(Some(now)),
            chain_pem: Set(Some(v.chain_pem.clone())),
            signer_not_after: Set(Some(v.signer_not_after)),
            requested_by: Set(Some(requested_by.to_string())),
            ..Default::default()
        }
        .insert(conn)
        .await?;
        rows.push(row);
    }
    Ok(rows)
}

/// The ids among `file_ids` that already hold a verified token (the SIGN stage skips them, so a
/// re-run after a crash adds none twice).
pub async fn signed_files<C: ConnectionTrait>(conn: &C, file_ids: &[i64]) -> anyhow::Result<std::collections::HashSet<i64>> {
    let rows = timestamp_token::Entity::find()
        .filter(timestamp_token::Column::FileId.is_in(file_ids.to_vec()))
        .filter(timestamp_token::Column::Verified.eq(true))
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.file_id).collect())
}

/// The outcome of checking a stored token again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recheck {
    pub token_id: i64,
    pub verified: bool,
    pub failure_reason: Option<String>,
}

/// Checks the stored token `token` again, against the package hash `sha256` (as read now from
/// storage by the caller, or as recorded) and `anchors`; returns the outcome without writing.
pub fn recheck(token: &timestamp_token::Model, sha256: &[u8; 32], anchors: &TrustAnchors) -> Recheck {
    let outcome = if token.data_removed_at.is_some() {
        Err("the token's data was removed with its file".to_string())
    } else {
        request::expected_of(&token.query_der).and_then(|expected| {
            if expected.sha256 != *sha256 {
                return Err("the file's SHA-256 is no longer the one the token was issued for".to_string());
            }
            verify_reply(&token.reply_der, &expected, anchors).map(|_| ()).map_err(|r| r.to_string())
        })
    };
    Recheck { token_id: token.id, verified: outcome.is_ok(), failure_reason: outcome.err() }
}

/// Re-verifies every token of `file_id` against `sha256`, persisting each outcome with
/// `verifiedAt` = `now`; returns the tokens as they now are. `anchors` is `Err(why)` when there
/// are none to check against: every token is then marked unverified for that reason.
pub async fn reverify_file<C: ConnectionTrait>(conn: &C, file_id: i64, sha256: &[u8; 32], anchors: Result<&TrustAnchors, &str>, now: DateTime<Utc>) -> anyhow::Result<Vec<timestamp_token::Model>> {
    let tokens = timestamp_token::Entity::find().filter(timestamp_token::Column::FileId.eq(file_id)).order_by_asc(timestamp_token::Column::Id).all(conn).await?;
    let mut out = Vec::new();
    for t in tokens {
        if t.data_removed_at.is_some() {
            out.push(t); // nothing left to check; the record stays as it was
            continue;
        }
        let r = match anchors {
            Ok(a) => recheck(&t, sha256, a),
            Err(why) => Recheck { token_id: t.id, verified: false, failure_reason: Some(why.to_string()) },
        };
        let mut am: timestamp_token::ActiveModel = t.into();
        am.verified = Set(r.verified);
        am.verification_error = Set(r.failure_reason);
        am.verified_at = Set(Some(now));
        out.push(am.update(conn).await?);
    }
    Ok(out)
}

