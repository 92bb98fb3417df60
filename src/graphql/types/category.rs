use async_graphql::{Context, Object, Result, ID};

use super::{connection, Conn};
use crate::{
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
    /// Whether archiving is enabled here: this category's own setting, else the nearest ancestor's, else on.
    async fn archiving_enabled(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(ctx.loaders().archiving_enabled.load_one(self.model.id).await?.unwrap_or(true))
    }
}
