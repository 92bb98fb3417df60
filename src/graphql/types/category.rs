use async_graphql::{Context, Object, Result, ID};

use super::{connection, ActivityKindArchiving, ArchivingSwitchSource, Conn};
use crate::{
    domain::switches::{Decision, SwitchOrigin},
    entity::course_category,
    graphql::{context::ContextExt, ids},
    service::Page,
};

/// A course category of the LMS; categories form a tree.
#[derive(Clone)]
pub struct CourseCategory {
    pub model: course_category::Model,
}

impl CourseCategory {
    pub fn new(model: course_category::Model) -> Self {
        Self { model }
    }
}

#[Object]
impl CourseCategory {
    pub async fn id(&self) -> ID {
        ids::encode(ids::NodeType::CourseCategory, self.model.id)
    }
    /// The LMS's own id of the category; tokens scope by it.
    async fn lms_id(&self) -> &str {
        &self.model.lms_id
    }
    async fn name(&self) -> &str {
        &self.model.name
    }
    /// 0 for a top-level category.
    async fn depth(&self) -> i32 {
        self.model.depth
    }
    async fn parent(&self, ctx: &Context<'_>) -> Result<Option<CourseCategory>> {
        match self.model.parent_id {
            Some(p) => Ok(ctx.loaders().category.load_one(p).await?.map(CourseCategory::new)),
            None => Ok(None),
        }
    }
    /// The ancestors from the top-level category down to the parent.
    async fn ancestors(&self, ctx: &Context<'_>) -> Result<Vec<CourseCategory>> {
        let ids: Vec<i64> = self.model.path.split('/').filter_map(|s| s.parse().ok()).filter(|id| *id != self.model.id).collect();
        let found = ctx.loaders().category.load_many(ids.iter().copied()).await?;
        Ok(ids.iter().filter_map(|id| found.get(id).cloned().map(CourseCategory::new)).collect())
    }
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn children(&self, ctx: &Context<'_>, first: Option<i32>, after: Option<String>) -> Result<Conn<CourseCategory>> {
        let args = ctx.page(first, after)?;
        let rows = ctx.loaders().children.load_one(self.model.id).await?.unwrap_or_default();
        Ok(connection(Page::from_vec(rows, &args)?, CourseCategory::new)?)
    }
    /// Whether archiving is enabled here as a whole: this category's own switch, else the
    /// nearest ancestor's, else on. Activity kinds can be switched off besides (`activityKinds`).
    async fn archiving_enabled(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(self.switch(ctx).await?.enabled)
    }
    /// Which switch decided `archivingEnabled`.
    async fn archiving_enabled_source(&self, ctx: &Context<'_>) -> Result<ArchivingSwitchSource> {
        Ok(ArchivingSwitchSource(self.switch(ctx).await?))
    }
    /// This category's own switch; `null`: inherited (what `setCategoryArchiving` sets).
    async fn archiving_setting(&self, ctx: &Context<'_>) -> Result<Option<bool>> {
        let d = self.switch(ctx).await?;
        Ok((d.origin == SwitchOrigin::Category).then_some(d.enabled))
    }
    /// Each activity kind's switch here (set here, inherited, or global).
    async fn activity_kinds(&self, ctx: &Context<'_>) -> Result<Vec<ActivityKindArchiving>> {
        let kinds = ctx.loaders().kind_archiving.load_one(self.model.id).await?.unwrap_or_default();
        Ok(kinds.into_iter().map(ActivityKindArchiving).collect())
    }
}

impl CourseCategory {
    async fn switch(&self, ctx: &Context<'_>) -> Result<Decision> {
        Ok(ctx.loaders().archiving_enabled.load_one(self.model.id).await?.unwrap_or_default())
    }
}
