//! A caller's scopes as SQL conditions. Every read path filters through these, so a caller out of
//! scope gets the same answer as for something that does not exist.
use sea_orm::{
    sea_query::{Alias, Expr, ExprTrait, JoinType, Query, SelectStatement},
    ColumnTrait, Condition, EntityName,
};

use crate::{
    auth::{Capability, Principal, Scope},
    entity::{course, course_category},
    error::{AppError, AppResult},
};

#[derive(Debug, Clone)]
pub struct Access {
    pub principal: Principal,
    /// Where the call came from, for the audit log: the client's address for an API call.
    pub origin: String,
}

/// A condition no row meets.
fn nothing() -> Condition {
    Condition::all().add(Expr::cust("1 = 0"))
}

impl Access {
    pub fn new(principal: Principal) -> Self {
        Self { principal, origin: "api".into() }
    }

    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    pub fn scope(&self, cap: Capability) -> Scope {
        self.principal.scope(cap)
    }

    /// Fails with FORBIDDEN unless `cap` holds somewhere.
    pub fn require(&self, cap: Capability) -> AppResult<()> {
        match self.scope(cap) {
            Scope::Nowhere => Err(AppError::Forbidden),
            _ => Ok(()),
        }
    }

    /// The ids of the courses where `cap` holds; `None` means every course.
    fn course_ids(&self, cap: Capability) -> Option<Option<SelectStatement>> {
        match self.scope(cap) {
            Scope::Everywhere => None,
            Scope::Nowhere => Some(None),
            Scope::Within { courses, categories } => {
                let mut any = Condition::any();
                if !courses.is_empty() {
                    any = any.add(Expr::col((course::Entity, course::Column::LmsId)).is_in(courses));
                }
                if !categories.is_empty() {
                    // Every category at or below a scoped one, by materialized path.
                    let below = Query::select()
                        .column((Alias::new("d"), course_category::Column::Id))
                        .from_as(course_category::Entity.table_ref(), Alias::new("d"))
                        .join_as(JoinType::InnerJoin, course_category::Entity.table_ref(), Alias::new("s"), Expr::cust("d.path LIKE s.path || '%'"))
                        .and_where(Expr::col((Alias::new("s"), course_category::Column::LmsId)).is_in(categories))
                        .to_owned();
                    any = any.add(Expr::col((course::Entity, course::Column::CategoryId)).in_subquery(below));
                }
                Some(Some(Query::select().column((course::Entity, course::Column::Id)).from(course::Entity).cond_where(any).to_owned()))
            }
        }
    }

    /// Restricts rows whose `course_col` names a course to those where `cap` holds.
    pub fn filter_by_course<C: ColumnTrait>(&self, course_col: C, cap: Capability) -> Condition {
        match self.course_ids(cap) {
            None => Condition::all(),
            Some(None) => nothing(),
            Some(Some(ids)) => Condition::all().add(course_col.in_subquery(ids)),
        }
    }

    /// Categories a viewer may see: with `view` everywhere, all; otherwise those at or below a
    /// scoped category and the ancestors of every visible course and scoped category, so the tree
    /// can be walked down to what is in scope.
    pub fn filter_categories(&self) -> Condition {
        match self.scope(Capability::View) {
            Scope::Everywhere => Condition::all(),
            Scope::Nowhere => nothing(),
            Scope::Within { courses, categories } => {
                let mut any = Condition::any();
                if !categories.is_empty() {
                    let related = Query::select()
                        .expr(Expr::val(1))
                        .from_as(course_category::Entity.table_ref(), Alias::new("s"))
                        .and_where(Expr::col((Alias::new("s"), course_category::Column::LmsId)).is_in(categories))
                        .and_where(Expr::cust(
                            "(course_category.path LIKE s.path || '%' OR s.path LIKE course_category.path || '%')",
                        ))
                        .to_owned();
                    any = any.add(Expr::exists(related));
                }
                if !courses.is_empty() {
                    let holds = Query::select()
                        .expr(Expr::val(1))
                        .from_as(course::Entity.table_ref(), Alias::new("co"))
                        .join_as(
                            JoinType::InnerJoin,
                            course_category::Entity.table_ref(),
                            Alias::new("d"),
                            Expr::cust("co.category_id = d.id"),
                        )
                        .and_where(Expr::col((Alias::new("co"), course::Column::LmsId)).is_in(courses))
                        .and_where(Expr::cust("d.path LIKE course_category.path || '%'"))
                        .to_owned();
                    any = any.add(Expr::exists(holds));
                }
                any
            }
        }
    }
}
