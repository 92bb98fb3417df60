//! File name patterns with `${variable}` placeholders, e.g. the package name
//! `${courseShortName}_${activityKind}_${activityId}_${date}_${time}`.
//!
//! A pattern is checked when it is set ([`FilenamePattern::parse`] / [`FilenamePattern::parse_for`]):
//! an unknown variable, an unterminated `${`, a forbidden character in the literal text or an empty
//! pattern is an error that says what and where. Values are sanitized when rendered, and the
//! result is always one safe path component: no separator, no `.`/`..`, no leading dot (hidden
//! files), no control or bidi-control character, no trailing dot or space (Windows), not a Windows
//! device name, not empty, and at most [`MAX_NAME_BYTES`] bytes. No pattern and no value can
//! escape the folder the name is used in.
//!
//! Pure: no I/O.
use std::fmt;

use chrono::{DateTime, Utc};

/// Longest rendered name in bytes (UTF-8). Leaves room for an extension within the usual 255-byte
/// limit of file systems.
pub const MAX_NAME_BYTES: usize = 200;

/// Characters that may not appear in literal pattern text; in values they become `_`.
pub const FORBIDDEN: &[char] = &['/', '\\', ':', '*', '?', '"', '<', '>', '|'];

/// Where a variable has a value: for the whole package, or only per attempt/submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Package,
    Record,
}

macro_rules! vars {
    ($( $v:ident = $name:literal, $scope:ident, $doc:literal; )*) => {
        /// A variable a pattern may use as `${name}`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Var { $( #[doc = $doc] $v, )* }
        impl Var {
            pub const ALL: &'static [Var] = &[$(Var::$v),*];
            /// The name used inside `${…}`.
            pub fn name(self) -> &'static str { match self { $(Var::$v => $name,)* } }
            pub fn scope(self) -> Scope { match self { $(Var::$v => Scope::$scope,)* } }
            pub fn from_name(name: &str) -> Option<Var> { match name { $($name => Some(Var::$v),)* _ => None } }
        }
    };
}

vars! {
    CourseId = "courseId", Package, "The course's LMS id.";
    CourseShortName = "courseShortName", Package, "The course's short name.";
    CourseFullName = "courseFullName", Package, "The course's full name.";
    ActivityId = "activityId", Package, "The activity's LMS id.";
    ActivityKind = "activityKind", Package, "QUIZ, ASSIGN, …";
    ActivityName = "activityName", Package, "The activity's name.";
    JobId = "jobId", Package, "The archive job's UUID.";
    Date = "date", Package, "Archive date, `YYYY-MM-DD` (UTC).";
    Time = "time", Package, "Archive time, `HH-MM-SS` (UTC).";
    Timestamp = "timestamp", Package, "Archive time in Unix seconds.";
    Username = "username", Record, "The person's LMS user name.";
    FirstName = "firstName", Record, "The person's first name.";
    LastName = "lastName", Record, "The person's last name.";
    IdNumber = "idNumber", Record, "The person's ID number (e.g. matriculation number).";
    AttemptId = "attemptId", Record, "The attempt's or submission's LMS id.";
    AttemptStartedAt = "attemptStartedAt", Record, "Start time, `YYYY-MM-DD_HH-MM-SS` (UTC).";
    AttemptFinishedAt = "attemptFinishedAt", Record, "Finish/submission time, `YYYY-MM-DD_HH-MM-SS` (UTC).";
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}}}", self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("the file name pattern is empty")]
    Empty,
    #[error("unterminated `${{` at position {position}: close the variable with `}}`")]
    Unterminated { position: usize },
    #[error("empty variable `${{}}` at position {position}")]
    EmptyVariable { position: usize },
    #[error("unknown variable `${{{name}}}` at position {position}; known variables: {known}")]
    UnknownVariable { name: String, position: usize, known: String },
    #[error("forbidden character {character:?} at position {position}: file names may not contain / \\ : * ? \" < > | or control characters")]
    ForbiddenCharacter { character: char, position: usize },
    #[error("variable `{var}` is only available per attempt/submission, not for the package name")]
    NotAvailable { var: Var },
    #[error("variable `{var}` has no value here")]
    MissingValue { var: Var },
    #[error("the file name pattern renders to an empty name")]
    EmptyResult,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A checked file name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilenamePattern {
    source: String,
    parts: Vec<Part>,
}

/// Values for the variables of a pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    values: std::collections::BTreeMap<Var, String>,
}

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&mut self, var: Var, value: impl Into<String>) -> &mut Self {
        self.values.insert(var, value.into());
        self
    }

    pub fn with(mut self, var: Var, value: impl Into<String>) -> Self {
        self.set(var, value);
        self
    }

    pub fn get(&self, var: Var) -> Option<&str> {
        self.values.get(&var).map(String::as_str)
    }

    /// Sets `date`, `time` and `timestamp` from the archive time.
    pub fn with_archive_time(self, at: DateTime<Utc>) -> Self {
        self.with(Var::Date, at.format("%Y-%m-%d").to_string())
            .with(Var::Time, at.format("%H-%M-%S").to_string())
            .with(Var::Timestamp, at.timestamp().to_string())
    }
}

/// The format of per-attempt times (`attemptStartedAt`, `attemptFinishedAt`).
pub fn record_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d_%H-%M-%S").to_string()
}

/// A character that may not appear in a name: separators, reserved characters, control
/// characters, and the invisible characters that can disguise a name (bidi controls, line
/// separators, zero-width characters, byte order mark).
fn is_forbidden(c: char) -> bool {
    FORBIDDEN.contains(&c)
        || c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Replaces every forbidden character of a value by `_`.
pub fn sanitize_value(value: &str) -> String {
    value.chars().map(|c| if is_forbidden(c) { '_' } else { c }).collect()
}

const DEVICE_NAMES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2",
    "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Makes any text one safe path component (see the module doc), or `None` if nothing is left.
/// Used for rendered patterns and for names that come from the LMS (e.g. submitted file names).
pub fn safe_component(raw: &str) -> Option<String> {
    let s = sanitize_value(raw);
    let trim_end = |s: &str| s.trim_end_matches(|c: char| c == '.' || c.is_whitespace()).to_string();
    let mut s = trim_end(s.trim_start_matches(|c: char| c == '.' || c.is_whitespace()));
    let stem = s.split('.').next().unwrap_or_default();
    if DEVICE_NAMES.iter().any(|d| d.eq_ignore_ascii_case(stem)) {
        s.insert(0, '_');
    }
    if s.len() > MAX_NAME_BYTES {
        let mut end = MAX_NAME_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s = trim_end(&s[..end]);
    }
    (!s.is_empty()).then_some(s)
}

impl FilenamePattern {
    /// Parses and checks a pattern; any known variable is accepted.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.trim().is_empty() {
            return Err(PatternError::Empty);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        // Positions in errors count characters, as a person reading the pattern would.
        let mut chars = pattern.chars().enumerate().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '$' && chars.peek().map(|&(_, n)| n) == Some('{') {
                chars.next();
                let mut name = String::new();
                let mut closed = false;
                for (_, n) in chars.by_ref() {
                    if n == '}' {
                        closed = true;
                        break;
                    }
                    name.push(n);
                }
                if !closed {
                    return Err(PatternError::Unterminated { position: i });
                }
                let name = name.trim();
                if name.is_empty() {
                    return Err(PatternError::EmptyVariable { position: i });
                }
                let var = Var::from_name(name).ok_or_else(|| PatternError::UnknownVariable {
                    name: name.to_string(),
                    position: i,
                    known: Var::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
                })?;
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Var(var));
            } else if is_forbidden(c) {
                return Err(PatternError::ForbiddenCharacter { character: c, position: i });
            } else {
                literal.push(c);
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        // Without a variable the name is fixed: one that renders to nothing (`.`, `..`, ` . `)
        // is refused now, not when a job renders it.
        if let [Part::Literal(l)] = parts.as_slice() {
            safe_component(l).ok_or(PatternError::EmptyResult)?;
        }
        Ok(Self { source: pattern.to_string(), parts })
    }

    /// Parses a pattern for a use where only the variables of `scope` have values: a package name
    /// (`Scope::Package`) may not use per-attempt variables.
    pub fn parse_for(pattern: &str, scope: Scope) -> Result<Self, PatternError> {
        let p = Self::parse(pattern)?;
        if scope == Scope::Package {
            if let Some(var) = p.variables().find(|v| v.scope() == Scope::Record) {
                return Err(PatternError::NotAvailable { var });
            }
        }
        Ok(p)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The variables the pattern uses, in order of appearance.
    pub fn variables(&self) -> impl Iterator<Item = Var> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(*v),
            Part::Literal(_) => None,
        })
    }

    /// Renders the pattern into one safe path component (see the module doc).
    pub fn render(&self, vars: &Vars) -> Result<String, PatternError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Var(v) => out.push_str(&sanitize_value(vars.get(*v).ok_or(PatternError::MissingValue { var: *v })?)),
            }
        }
        safe_component(&out).ok_or(PatternError::EmptyResult)
    }
}

impl fmt::Display for FilenamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn package_vars() -> Vars {
        Vars::new()
            .with(Var::CourseId, "101")
            .with(Var::CourseShortName, "MATH101")
            .with(Var::CourseFullName, "Linear Algebra I")
            .with(Var::ActivityId, "1001")
            .with(Var::ActivityKind, "QUIZ")
            .with(Var::ActivityName, "Midterm exam")
            .with(Var::JobId, "1b4e28ba-2fa1-11d2-883f-0016d3cca427")
            .with_archive_time(Utc.with_ymd_and_hms(2026, 1, 31, 14, 5, 9).unwrap())
    }

    #[test]
    fn the_default_pattern_parses_and_renders() {
        let p = FilenamePattern::parse_for("${courseShortName}_${activityKind}_${activityId}_${date}_${time}", Scope::Package).unwrap();
        assert_eq!(p.render(&package_vars()).unwrap(), "MATH101_QUIZ_1001_2026-01-31_14-05-09");
        let p = FilenamePattern::parse("${timestamp}-${jobId}").unwrap();
        assert_eq!(p.render(&package_vars()).unwrap(), "1769868309-1b4e28ba-2fa1-11d2-883f-0016d3cca427");
    }

    #[test]
    fn every_variable_is_known_by_name() {
        for v in Var::ALL {
            assert_eq!(Var::from_name(v.name()), Some(*v));
            assert!(FilenamePattern::parse(&format!("x${{{}}}", v.name())).is_ok());
        }
    }

    #[test]
    fn bad_patterns_are_clear_errors() {
        assert_eq!(FilenamePattern::parse(""), Err(PatternError::Empty));
        assert_eq!(FilenamePattern::parse("  "), Err(PatternError::Empty));
        for dots in [".", "..", "...", " . "] {
            assert_eq!(FilenamePattern::parse(dots), Err(PatternError::EmptyResult), "{dots:?}");
        }
        assert_eq!(FilenamePattern::parse("a_${date"), Err(PatternError::Unterminated { position: 2 }));
        assert_eq!(FilenamePattern::parse("a${}"), Err(PatternError::EmptyVariable { position: 1 }));
        let e = FilenamePattern::parse("${course}").unwrap_err();
        assert!(matches!(&e, PatternError::UnknownVariable { name, .. } if name == "course"));
        assert!(e.to_string().contains("courseShortName"), "{e}");
        for bad in ["a/b", "a\\b", "../x", "/abs", "C:x", "a*", "a?", "a\"", "a<", "a>", "a|", "a\0", "a\nb", "a\u{202E}b"] {
            assert!(
                matches!(FilenamePattern::parse(bad), Err(PatternError::ForbiddenCharacter { .. })),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(
            FilenamePattern::parse_for("${username}_${date}", Scope::Package),
            Err(PatternError::NotAvailable { var: Var::Username })
        );
        assert!(FilenamePattern::parse_for("${username}_${date}", Scope::Record).is_ok());
        let p = FilenamePattern::parse("${username}").unwrap();
        assert_eq!(p.render(&Vars::new()), Err(PatternError::MissingValue { var: Var::Username }));
        let p = FilenamePattern::parse("${activityName}").unwrap();
        assert_eq!(p.render(&Vars::new().with(Var::ActivityName, " .. ")), Err(PatternError::EmptyResult));
        // A lone `$` is literal text.
        assert_eq!(FilenamePattern::parse("a$b").unwrap().render(&Vars::new()).unwrap(), "a$b");
    }

    #[test]
    fn values_cannot_escape_their_folder() {
        let p = FilenamePattern::parse("${activityName}").unwrap();
        let r = |v: &str| p.render(&Vars::new().with(Var::ActivityName, v));
        assert_eq!(r("../../etc/passwd").unwrap(), "_.._etc_passwd");
        assert_eq!(r("/abs/path").unwrap(), "_abs_path");
        assert_eq!(r("..\\..\\win").unwrap(), "_.._win");
        assert_eq!(r(".hidden").unwrap(), "hidden");
        assert_eq!(r("a\0b\nc").unwrap(), "a_b_c");
        assert_eq!(r("trailing. ").unwrap(), "trailing");
        assert_eq!(r("con").unwrap(), "_con");
        assert_eq!(r("NUL.txt").unwrap(), "_NUL.txt");
        assert_eq!(r("Spärck Jones").unwrap(), "Spärck Jones");
        assert!(r(".").is_err() && r("..").is_err());
        let long = "é".repeat(300);
        let out = r(&long).unwrap();
        assert!(out.len() <= MAX_NAME_BYTES && out.chars().all(|c| c == 'é'));
    }

    /// Random text drawn from characters that matter: separators, dots, control characters,
    /// invisible characters, multi-byte characters, `${` fragments.
    fn random_text(rng: &mut ChaCha8Rng, max_len: usize) -> String {
        const POOL: &[&str] = &[
            "a", "Z", "0", "_", "-", " ", ".", "..", "../", "/", "\\", ":", "*", "?", "\"", "<", ">", "|", "\0", "\n", "\r",
            "\t", "\u{7f}", "\u{85}", "\u{202E}", "\u{2028}", "\u{200B}", "\u{FEFF}", "é", "ß", "中", "😀", "$", "{", "}",
            "${", "CON", "nul", "%", "~", "'",
        ];
        let len = rng.random_range(0..=max_len);
        let mut s = String::new();
        for _ in 0..len {
            if rng.random_bool(0.05) {
                // Any Unicode scalar value.
                if let Some(c) = char::from_u32(rng.random_range(0..0x11_0000)) {
                    s.push(c);
                }
            } else {
                s.push_str(POOL[rng.random_range(0..POOL.len())]);
            }
        }
        s
    }

    fn assert_safe(name: &str, context: &str) {
        assert!(!name.is_empty(), "{context}: empty");
        assert!(name.len() <= MAX_NAME_BYTES, "{context}: {} bytes", name.len());
        assert!(!name.starts_with('.'), "{context}: {name:?} starts with a dot");
        assert!(name != "." && name != "..", "{context}");
        assert!(!name.ends_with('.') && !name.ends_with(char::is_whitespace), "{context}: {name:?}");
        assert!(!name.chars().any(is_forbidden), "{context}: {name:?} has a forbidden character");
        assert!(!name.contains('/') && !name.contains('\\') && !name.contains('\0'), "{context}: {name:?}");
        let path = std::path::Path::new(name);
        assert_eq!(path.components().count(), 1, "{context}: {name:?} is not one component");
        assert!(matches!(path.components().next(), Some(std::path::Component::Normal(_))), "{context}: {name:?}");
    }

    #[test]
    fn property_rendered_names_are_always_one_safe_component() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5EED);
        let mut rendered = 0;
        for case in 0..20_000 {
            // A pattern: random literal pieces and random variables.
            let mut pattern = String::new();
            for _ in 0..rng.random_range(1..5) {
                if rng.random_bool(0.5) {
                    pattern.push_str(&format!("${{{}}}", Var::ALL[rng.random_range(0..Var::ALL.len())].name()));
                } else {
                    pattern.push_str(&random_text(&mut rng, 8));
                }
            }
            let long = rng.random_bool(0.05);
            let mut vars = Vars::new();
            for v in Var::ALL {
                vars.set(*v, random_text(&mut rng, if long { 400 } else { 12 }));
            }
            let Ok(p) = FilenamePattern::parse(&pattern) else { continue };
            match p.render(&vars) {
                Ok(name) => {
                    rendered += 1;
                    assert_safe(&name, &format!("case {case}: pattern {pattern:?}"));
                }
                Err(e) => assert_eq!(e, PatternError::EmptyResult, "case {case}: pattern {pattern:?}"),
            }
        }
        assert!(rendered > 5_000, "the generator should produce many valid patterns, got {rendered}");
    }

    #[test]
    fn property_parse_never_panics_and_accepts_only_clean_literals() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        for _ in 0..20_000 {
            let s = random_text(&mut rng, 30);
            if let Ok(p) = FilenamePattern::parse(&s) {
                for part in &p.parts {
                    if let Part::Literal(l) = part {
                        assert!(!l.chars().any(is_forbidden), "{s:?}");
                    }
                }
            }
            if let Some(c) = safe_component(&s) {
                assert_safe(&c, &format!("safe_component({s:?})"));
            }
        }
    }
}
