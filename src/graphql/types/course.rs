use async_graphql::{Context, Object, Result, ID};

use super::{connection, enums, Activity, ArchivingSwitchSource, Conn, CourseCategory};
use crate::{
    entity::course,
    error::AppError,
    graphql::{context::ContextExt, ids, scalars::DateTime},
    service::Page,
};

/// A course of the LMS.
#[derive(Clone)]
pub struct Course {
    pub model: course::Model,
}

impl Course {
    pub fn new(model: course::Model) -> Self {
        Self { model }
    }
}

#[Object]
impl Course {
    pub async fn id(&self) -> ID {
        ids::encode(ids::NodeType::Course, self.model.id)
    }
    /// The LMS's own id of the course; tokens scope by it.
    async fn lms_id(&self) -> &str {
        &self.model.lms_id
    }
    async fn short_name(&self) -> &str {
        &self.model.short_name
    }
    async fn full_name(&self) -> &str {
        &self.model.full_name
    }
    /// Whether the course is visible to students in the LMS.
    async fn visible(&self) -> bool {
        self.model.visible
    }
    async fn start_date(&self) -> Option<DateTime> {
        self.model.start_date.map(DateTime)
    }
    async fn end_date(&self) -> Option<DateTime> {
        self.model.end_date.map(DateTime)
    }
    async fn category(&self, ctx: &Context<'_>) -> Result<CourseCategory> {
        let m = ctx.loaders().category.load_one(self.model.category_id).await?;
        m.map(CourseCategory::new).ok_or_else(|| AppError::internal("course without category").into())
    }
    /// Whether archiving is enabled for this course as a whole (its category's switch,
    /// inherited). Activity kinds can be switched off besides (`Activity.archivingEnabled`).
    async fn archiving_enabled(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(ctx.loaders().archiving_enabled.load_one(self.model.category_id).await?.unwrap_or_default().enabled)
    }
    /// Which switch decided `archivingEnabled`: CATEGORY is the course's own category.
    async fn archiving_enabled_source(&self, ctx: &Context<'_>) -> Result<ArchivingSwitchSource> {
        Ok(ArchivingSwitchSource(ctx.loaders().archiving_enabled.load_one(self.model.category_id).await?.unwrap_or_default()))
    }
    /// The course's archivable activities.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn activities(
        &self,
        ctx: &Context<'_>,
        kinds: Option<Vec<enums::ActivityKind>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Activity>> {
        let args = ctx.page(first, after)?;
        let all = ctx.loaders().course_activities.load_one(self.model.id).await?.unwrap_or_default();
        let kinds: Vec<crate::domain::ActivityKind> = kinds.unwrap_or_default().into_iter().map(Into::into).collect();
        let rows = all.into_iter().filter(|a| kinds.is_empty() || kinds.iter().any(|k| k.as_ref() == a.kind)).collect();
        Ok(connection(Page::from_vec(rows, &args)?, Activity::new)?)
    }
}
