//! The audit log: who did what to which object, when, from where. Append-only — there is no
//! update or delete of its rows anywhere in the code. Entries are written in the transaction of
//! the action they record where there is one, so an action is never without its entry.
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};
use serde_json::Value;

use crate::{
    auth::Capability,
    domain::AuditAction,
    entity::audit_log,
    error::AppResult,
    service::{
        pagination::{paginate, Key, Ordering},
        Access, Page, PageArgs,
    },
};

/// Who acted.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The token's subject, or `system`.
    pub subject: String,
    pub roles: Vec<String>,
    /// The client's address, `cli`, or `periodic:<task>`.
    pub origin: String,
}

impl Actor {
    pub fn of(access: &Access) -> Self {
        Self {
            subject: access.principal.subject.clone(),
            roles: access.principal.roles.iter().map(|r| r.to_string()).collect(),
            origin: access.origin.clone(),
        }
    }

    /// The server acting on its own, in the periodic task `task`.
    pub fn system(task: &str) -> Self {
        Self { subject: "system".into(), roles: Vec::new(), origin: format!("periodic:{task}") }
    }
}

/// The object an entry is about: its type (a GraphQL type name) and id (its global id where it
/// has one, so an auditor can look it up).
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: &'static str,
    pub id: Option<String>,
}

impl Target {
    pub fn new(kind: &'static str, id: impl Into<String>) -> Self {
        Self { kind, id: Some(id.into()) }
    }

    pub fn global(kind: &'static str) -> Self {
        Self { kind, id: None }
    }
}

/// Appends one entry. `details` must hold no secret: callers pass settings through their
/// redaction first.
pub async fn record<C: ConnectionTrait>(c: &C, at: DateTime<Utc>, actor: &Actor, action: AuditAction, target: Target, details: Value) -> Result<(), DbErr> {
    audit_log::Entity::insert(audit_log::ActiveModel {
        actor: Set(actor.subject.clone()),
        actor_roles: Set(actor.roles.join(",")),
        origin: Set(Some(actor.origin.clone())),
        action: Set(action.to_string()),
        target_type: Set(target.kind.to_string()),
        target_id: Set(target.id),
        details: Set(details),
        created_at: Set(at),
        ..Default::default()
    })
    .exec_without_returning(c)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actions: Vec<AuditAction>,
    pub actor: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Entries, newest first (needs `AUDIT`).
pub async fn list(db: &DatabaseConnection, access: &Access, f: &AuditFilter, args: &PageArgs) -> AppResult<Page<audit_log::Model>> {
    access.require(Capability::Audit)?;
    let mut q = audit_log::Entity::find();
    if !f.actions.is_empty() {
        q = q.filter(audit_log::Column::Action.is_in(f.actions.iter().map(|a| a.to_string())));
    }
    if let Some(a) = &f.actor {
        q = q.filter(audit_log::Column::Actor.eq(a.as_str()));
    }
    if let Some(t) = &f.target_type {
        q = q.filter(audit_log::Column::TargetType.eq(t.as_str()));
    }
    if let Some(t) = &f.target_id {
        q = q.filter(audit_log::Column::TargetId.eq(t.as_str()));
    }
    if let Some(s) = f.since {
        q = q.filter(audit_log::Column::CreatedAt.gte(s));
    }
    if let Some(u) = f.until {
        q = q.filter(audit_log::Column::CreatedAt.lt(u));
    }
    // By id: entries are appended in order, and the id is unique, so it is its own tie-break.
    let order = Ordering::<audit_log::Entity> { key: audit_log::Column::Id, tie: audit_log::Column::Id, descending: true, key_of: |m| (Key::I(m.id), Key::I(m.id)) };
    paginate(db, q, &order, args).await
}
