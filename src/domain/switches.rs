//! Archiving switches: whether archiving is on in a category (for everything in it) and whether
//! one activity kind is archived there, each inherited by sub-categories unless one overrides it.
//! Kind switches also exist globally, below every category's. Nothing set anywhere: on.
//!
//! The two dimensions are independent and both must allow: a category switched off archives no
//! kind, whatever its kind switches say; a kind switched off is not archived in a category
//! switched on.
use std::collections::HashMap;

use super::ActivityKind;

/// Who decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchOrigin {
    /// No switch is set: archiving is on.
    Default,
    /// The global switch of the activity kind.
    Global,
    /// The object's own category (for a category: itself).
    Category,
    /// An ancestor of the object's category.
    Inherited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    pub enabled: bool,
    pub origin: SwitchOrigin,
    /// The category whose switch decided (with `Category` and `Inherited`).
    pub category_id: Option<i64>,
    /// Set when a kind switch decided.
    pub kind: Option<ActivityKind>,
}

impl Default for Decision {
    fn default() -> Self {
        Self { enabled: true, origin: SwitchOrigin::Default, category_id: None, kind: None }
    }
}

/// The switches that matter for some categories (those on their paths) and the global ones.
#[derive(Debug, Clone, Default)]
pub struct Switches {
    pub categories: HashMap<i64, bool>,
    pub kinds: HashMap<(i64, ActivityKind), bool>,
    pub global: HashMap<ActivityKind, bool>,
}

/// The category ids of a materialized path (`/1/5/9/`), from the top-level one down.
pub fn path_ids(path: &str) -> Vec<i64> {
    path.split('/').filter_map(|s| s.parse().ok()).collect()
}

impl Switches {
    /// The nearest set switch on `path` (top-level down to the object's category).
    fn nearest(path: &[i64], get: impl Fn(i64) -> Option<bool>) -> Option<Decision> {
        let own = path.last().copied();
        path.iter().rev().find_map(|id| {
            get(*id).map(|enabled| Decision {
                enabled,
                origin: if Some(*id) == own { SwitchOrigin::Category } else { SwitchOrigin::Inherited },
                category_id: Some(*id),
                kind: None,
            })
        })
    }

    /// Archiving in the category at the end of `path`, as a whole.
    pub fn category(&self, path: &[i64]) -> Decision {
        Self::nearest(path, |id| self.categories.get(&id).copied()).unwrap_or_default()
    }

    /// Archiving of `kind` in the category at the end of `path`, by the kind switches alone.
    pub fn kind(&self, path: &[i64], kind: ActivityKind) -> Decision {
        let d = Self::nearest(path, |id| self.kinds.get(&(id, kind)).copied())
            .or_else(|| self.global.get(&kind).map(|&enabled| Decision { enabled, origin: SwitchOrigin::Global, category_id: None, kind: None }));
        match d {
            Some(d) => Decision { kind: Some(kind), ..d },
            None => Decision::default(),
        }
    }

    /// Whether an activity of `kind` in the category at the end of `path` may be archived, and
    /// which switch says so: one that is off wins (the category's first); when all are on, the
    /// most specific one that is set.
    pub fn activity(&self, path: &[i64], kind: ActivityKind) -> Decision {
        let (c, k) = (self.category(path), self.kind(path, kind));
        match (c.enabled, k.enabled) {
            (false, _) => c,
            (true, false) => k,
            (true, true) if k.origin == SwitchOrigin::Default => c,
            (true, true) => k,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ActivityKind::*;
    use SwitchOrigin::*;

    #[test]
    fn the_nearest_switch_decides() {
        let mut s = Switches::default();
        let path = path_ids("/1/5/9/");
        assert_eq!(path, [1, 5, 9]);
        assert_eq!(s.category(&path), Decision::default());
        s.categories.insert(1, false);
        assert_eq!(s.category(&path), Decision { enabled: false, origin: Inherited, category_id: Some(1), kind: None });
        assert_eq!(s.category(&[1]).origin, Category);
        s.categories.insert(5, true);
        assert_eq!(s.category(&path), Decision { enabled: true, origin: Inherited, category_id: Some(5), kind: None });
        s.categories.insert(9, false);
        assert_eq!(s.category(&path), Decision { enabled: false, origin: Category, category_id: Some(9), kind: None });
    }

    #[test]
    fn kinds_fall_back_to_the_global_switch() {
        let mut s = Switches::default();
        let path = [1, 5];
        s.global.insert(Quiz, false);
        assert_eq!(s.kind(&path, Quiz), Decision { enabled: false, origin: Global, category_id: None, kind: Some(Quiz) });
        assert_eq!(s.kind(&path, Assign), Decision::default());
        s.kinds.insert((1, Quiz), true);
        assert_eq!(s.kind(&path, Quiz), Decision { enabled: true, origin: Inherited, category_id: Some(1), kind: Some(Quiz) });
    }

    #[test]
    fn an_activity_needs_both_switches_on() {
        let mut s = Switches::default();
        let path = [1, 5];
        assert_eq!(s.activity(&path, Quiz), Decision::default());
        s.categories.insert(5, true);
        assert_eq!(s.activity(&path, Quiz).origin, Category, "the category decided when no kind switch is set");
        s.kinds.insert((1, Quiz), false);
        assert_eq!(s.activity(&path, Quiz), Decision { enabled: false, origin: Inherited, category_id: Some(1), kind: Some(Quiz) });
        assert!(s.activity(&path, Assign).enabled);
        s.categories.insert(5, false);
        assert_eq!(s.activity(&path, Assign), Decision { enabled: false, origin: Category, category_id: Some(5), kind: None });
    }
}
