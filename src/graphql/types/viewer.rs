use async_graphql::Object;

use super::enums;
use crate::service::Access;

/// The caller, as its token describes it.
pub struct Viewer(pub Access);

#[Object]
impl Viewer {
    /// The token's subject.
    async fn subject(&self) -> &str {
        &self.0.principal.subject
    }
    async fn roles(&self) -> Vec<enums::Role> {
        self.0.principal.roles.iter().map(|r| (*r).into()).collect()
    }
    /// Capabilities that hold somewhere (possibly only within the scopes below).
    async fn capabilities(&self) -> Vec<enums::Capability> {
        self.0.principal.capabilities().into_iter().map(Into::into).collect()
    }
    /// LMS ids of the courses a teacher role is scoped to.
    async fn course_scopes(&self) -> &[String] {
        &self.0.principal.courses
    }
    /// LMS ids of the categories a manager role is scoped to.
    async fn category_scopes(&self) -> &[String] {
        &self.0.principal.categories
    }
}
