use async_graphql::{Context, Object, Result, ID};
use chrono::Utc;

use super::{enums, ArchivingSwitchSource, Course};
use crate::{
    domain,
    entity::activity,
    error::AppError,
    graphql::{context::ContextExt, ids, scalars::DateTime},
};

/// An archivable activity of a course (a quiz, an assignment, …).
#[derive(Clone)]
pub struct Activity {
    pub model: activity::Model,
}

impl Activity {
    pub fn new(model: activity::Model) -> Self {
        Self { model }
    }
}

#[Object]
impl Activity {
    pub async fn id(&self) -> ID {
        ids::encode(ids::NodeType::Activity, self.model.id)
    }
    async fn lms_id(&self) -> &str {
        &self.model.lms_id
    }
    async fn kind(&self) -> Result<enums::ActivityKind> {
        let k: domain::ActivityKind = self.model.kind.parse().map_err(|_| AppError::Internal(anyhow::anyhow!("unknown activity kind {:?}", self.model.kind)))?;
        Ok(k.into())
    }
    async fn name(&self) -> &str {
        &self.model.name
    }
    async fn opens_at(&self) -> Option<DateTime> {
        self.model.opens_at.map(DateTime)
    }
    async fn closes_at(&self) -> Option<DateTime> {
        self.model.closes_at.map(DateTime)
    }
    /// Whether attempts/submissions are still possible (no close date, or one in the future).
    async fn is_open(&self) -> bool {
        self.model.closes_at.is_none_or(|c| c > Utc::now())
    }
    /// SHA-256 over what defines the activity's current state in the LMS.
    async fn fingerprint(&self) -> Option<&str> {
        self.model.fingerprint.as_deref()
    }
    async fn course(&self, ctx: &Context<'_>) -> Result<Course> {
        let m = ctx.loaders().course.load_one(self.model.course_id).await?;
        m.map(Course::new).ok_or_else(|| AppError::internal("activity without course").into())
    }
    async fn archive_state(&self, ctx: &Context<'_>) -> Result<enums::ActivityArchiveState> {
        let s = ctx.loaders().archive_stats.load_one(self.model.id).await?;
        Ok(s.map_or(domain::ActivityArchiveState::NeverArchived, |s| s.state).into())
    }
    /// Whether a job may archive this activity now: its category's switch and its kind's
    /// switches (in the category, inherited, or global) must all be on.
    async fn archiving_enabled(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(ctx.loaders().activity_archiving.load_one(self.model.id).await?.unwrap_or_default().enabled)
    }
    /// Which switch decided `archivingEnabled` (one that is off, when any is).
    async fn archiving_enabled_source(&self, ctx: &Context<'_>) -> Result<ArchivingSwitchSource> {
        Ok(ArchivingSwitchSource(ctx.loaders().activity_archiving.load_one(self.model.id).await?.unwrap_or_default()))
    }
    /// When the last finished archive of this activity was made.
    async fn last_archived_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime>> {
        let s = ctx.loaders().archive_stats.load_one(self.model.id).await?;
        Ok(s.and_then(|s| s.last_archived_at).map(DateTime))
    }
}
