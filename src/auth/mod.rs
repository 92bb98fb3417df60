//! Who is calling and what they may do (DESIGN §9): JWT verification, principals, capabilities,
//! course/category scopes. Scopes name the LMS's own ids, since tokens are usually minted by the LMS.
pub mod jwt;

use strum::{AsRefStr, Display, EnumIter, EnumString, IntoEnumIterator};

pub use jwt::{Claims, JwtKeys};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "lowercase")]
pub enum Role {
    Admin,
    /// Scoped to course categories (and everything below them).
    Manager,
    /// Scoped to courses.
    Teacher,
    Auditor,
    Reporter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Capability {
    View,
    Create,
    Delete,
    Download,
    Manage,
    Privacy,
    /// Read the audit log.
    Audit,
}

/// Where a capability holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Nowhere,
    Everywhere,
    /// In these courses and in every course below these categories (LMS ids).
    Within { courses: Vec<String>, categories: Vec<String> },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub roles: Vec<Role>,
    pub courses: Vec<String>,
    pub categories: Vec<String>,
}

impl Role {
    /// The table of DESIGN §9: where this role grants `cap`, before scopes are applied.
    fn grants(self, cap: Capability) -> Grant {
        use Capability::*;
        use Role::*;
        match (self, cap) {
            (Admin, _) => Grant::All,
            (Manager | Teacher, View | Create | Delete | Download) => Grant::Scoped,
            (Auditor, View | Download | Privacy | Audit) => Grant::All,
            (Reporter, View) => Grant::All,
            _ => Grant::No,
        }
    }
}

#[derive(PartialEq)]
enum Grant {
    No,
    Scoped,
    All,
}

impl Principal {
    pub fn scope(&self, cap: Capability) -> Scope {
        let grants: Vec<(Role, Grant)> = self.roles.iter().map(|r| (*r, r.grants(cap))).collect();
        if grants.iter().any(|(_, g)| *g == Grant::All) {
            return Scope::Everywhere;
        }
        let mut courses = Vec::new();
        let mut categories = Vec::new();
        for (role, g) in grants {
            match (role, g) {
                (Role::Teacher, Grant::Scoped) => courses.extend(self.courses.iter().cloned()),
                (Role::Manager, Grant::Scoped) => categories.extend(self.categories.iter().cloned()),
                _ => {}
            }
        }
        courses.sort();
        courses.dedup();
        categories.sort();
        categories.dedup();
        if courses.is_empty() && categories.is_empty() {
            Scope::Nowhere
        } else {
            Scope::Within { courses, categories }
        }
    }

    /// Capabilities that hold somewhere.
    pub fn capabilities(&self) -> Vec<Capability> {
        Capability::iter().filter(|c| self.scope(*c) != Scope::Nowhere).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::*;

    fn p(roles: &[Role], courses: &[&str], categories: &[&str]) -> Principal {
        Principal {
            subject: "s".into(),
            roles: roles.to_vec(),
            courses: courses.iter().map(|s| s.to_string()).collect(),
            categories: categories.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_design_table_holds() {
        let all = |r: Role| p(&[r], &["c1"], &["k1"]);
        let within = |courses: &[&str], cats: &[&str]| Scope::Within {
            courses: courses.iter().map(|s| s.to_string()).collect(),
            categories: cats.iter().map(|s| s.to_string()).collect(),
        };
        for cap in Capability::iter() {
            assert_eq!(all(Role::Admin).scope(cap), Scope::Everywhere);
        }
        for cap in [View, Create, Delete, Download] {
            assert_eq!(all(Role::Manager).scope(cap), within(&[], &["k1"]));
            assert_eq!(all(Role::Teacher).scope(cap), within(&["c1"], &[]));
        }
        for cap in [Manage, Privacy, Audit] {
            assert_eq!(all(Role::Manager).scope(cap), Scope::Nowhere);
            assert_eq!(all(Role::Teacher).scope(cap), Scope::Nowhere);
        }
        assert_eq!(all(Role::Auditor).capabilities(), vec![View, Download, Privacy, Audit]);
        assert_eq!(all(Role::Reporter).capabilities(), vec![View]);
    }

    #[test]
    fn a_scoped_role_without_scopes_grants_nothing() {
        assert_eq!(p(&[Role::Teacher], &[], &["k1"]).scope(View), Scope::Nowhere);
        assert!(p(&[], &["c1"], &[]).capabilities().is_empty());
    }

    #[test]
    fn roles_combine() {
        let both = p(&[Role::Teacher, Role::Reporter], &["c1"], &[]);
        assert_eq!(both.scope(View), Scope::Everywhere);
        assert_eq!(both.scope(Create), Scope::Within { courses: vec!["c1".into()], categories: vec![] });
    }
}
