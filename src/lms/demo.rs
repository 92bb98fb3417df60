//! A deterministic demo LMS: the same scale always yields the same categories, courses, activities,
//! persons, attempts, submissions and file bytes. Records are generated one at a time from a seed
//! derived from their identity, so streaming a 10,000-attempt activity keeps memory flat.
use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::{stream, stream::BoxStream, StreamExt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::*;

/// Persons shared by the small courses; the large lecture enrols 100 × scale more.
const SMALL_POOL: usize = 40;
const PER_SMALL_COURSE: usize = 12;

const FIRST: &[&str] = &["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Niklaus", "Radia", "Ken", "Sophie", "Tim", "Hedy", "Linus", "Katherine", "Claude", "Karen", "Dennis"];
const LAST: &[&str] = &["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "McCarthy", "Hamilton", "Wirth", "Perlman", "Thompson", "Wilson", "Berners-Lee", "Lamarr", "Torvalds", "Johnson", "Shannon", "Spärck Jones", "Ritchie"];

/// (name, question text, right answer, a wrong answer)
const QUESTIONS: &[(&str, &str, &str, &str)] = &[
    ("Q-capital", "<p>What is the capital of France?</p>", "Paris", "Lyon"),
    ("Q-prime", "<p>Is 97 a prime number?</p>", "True", "False"),
    ("Q-derivative", "<p>What is the derivative of <em>x</em>²?</p>", "2x", "x"),
    ("Q-year", "<p>In which year did the Berlin Wall fall?</p>", "1989", "1991"),
    ("Q-complexity", "<p>What is the time complexity of binary search?</p>", "O(log n)", "O(n)"),
    ("Q-essay", "<p>Explain the difference between a process and a thread.</p>", "A thread shares its process's address space.", "They are the same."),
];

struct CourseSpec {
    lms_id: &'static str,
    category: &'static str,
    short: &'static str,
    full: &'static str,
    visible: bool,
}

const CATEGORIES: &[(&str, Option<&str>, &str)] = &[
    ("1", None, "Faculty of Science"),
    ("2", Some("1"), "Mathematics"),
    ("3", Some("1"), "Computer Science"),
    ("4", Some("3"), "Graduate Programs"),
    ("5", None, "Faculty of Humanities"),
    ("6", Some("5"), "History"),
    ("7", Some("6"), "Medieval Studies"),
    ("8", Some("5"), "Languages"),
    ("9", None, "Miscellaneous"),
];

const COURSES: &[CourseSpec] = &[
    CourseSpec { lms_id: "101", category: "2", short: "MATH101", full: "Linear Algebra I", visible: true },
    CourseSpec { lms_id: "102", category: "2", short: "MATH201", full: "Analysis II", visible: true },
    CourseSpec { lms_id: "103", category: "3", short: "CS101", full: "Introduction to Programming", visible: true },
    CourseSpec { lms_id: "104", category: "4", short: "CS510", full: "Distributed Systems", visible: true },
    CourseSpec { lms_id: "105", category: "6", short: "HIST110", full: "World History", visible: true },
    CourseSpec { lms_id: "106", category: "7", short: "HIST320", full: "Medieval Europe", visible: true },
    CourseSpec { lms_id: "107", category: "8", short: "LANG105", full: "German for Beginners", visible: true },
    CourseSpec { lms_id: "108", category: "9", short: "SANDBOX", full: "Teachers' Sandbox", visible: false },
    CourseSpec { lms_id: "109", category: "2", short: "STAT100", full: "Large Lecture: Statistics", visible: true },
];
const LARGE_COURSE: &str = "109";

/// What the demo knows about an activity besides its LMS data.
#[derive(Debug, Clone)]
struct ActivitySpec {
    activity: LmsActivity,
    /// Indexes into `persons`.
    enrolled: std::ops::Range<usize>,
    open: bool,
}

pub struct DemoLms {
    persons: Vec<LmsPerson>,
    courses: Vec<LmsCourse>,
    activities: Vec<ActivitySpec>,
    /// See [`DemoLms::with_file_size`].
    bulk_file_size: Option<u64>,
    /// See [`DemoLms::with_record_delay`].
    record_delay: std::time::Duration,
    /// See [`DemoLms::with_changes_file`].
    changes: Option<std::path::PathBuf>,
}

/// Changes made to the demo LMS after its generation (`archiving-manager demo add-attempt`),
/// kept in a file so that every process of a deployment sees them.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct DemoChanges {
    /// Activity LMS id → attempts added.
    extra_attempts: std::collections::BTreeMap<String, u32>,
}

impl DemoChanges {
    fn read(path: &std::path::Path) -> Self {
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 9, 0, 0).single().expect("valid literal date")
}

/// A seed derived from a record's identity, so each record can be generated on its own.
fn seed(parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

impl DemoLms {
    pub fn new(scale: u32) -> Self {
        let large = 100 * scale as usize;
        let persons = (0..SMALL_POOL + large)
            .map(|k| LmsPerson {
                lms_id: (10_000 + k).to_string(),
                username: format!("student{k:05}"),
                first_name: FIRST[k % FIRST.len()].to_string(),
                last_name: LAST[(k / FIRST.len() + k) % LAST.len()].to_string(),
                email: Some(format!("student{k:05}@demo.invalid")),
                id_number: Some(format!("S{:07}", 2_400_000 + k)),
            })
            .collect();
        let courses: Vec<LmsCourse> = COURSES
            .iter()
            .map(|c| LmsCourse {
                lms_id: c.lms_id.into(),
                category_lms_id: c.category.into(),
                short_name: c.short.into(),
                full_name: c.full.into(),
                visible: c.visible,
                start_date: Some(at(2025, 10, 1)),
                end_date: Some(at(2026, 3, 31)),
            })
            .collect();
        let mut activities = Vec::new();
        let mut next_id = 1000;
        for (i, c) in COURSES.iter().enumerate() {
            let enrolled = if c.lms_id == LARGE_COURSE {
                SMALL_POOL..SMALL_POOL + large
            } else {
                let start = (i * 5) % (SMALL_POOL - PER_SMALL_COURSE);
                start..start + PER_SMALL_COURSE
            };
            // (kind, name, open)
            let mut specs = vec![
                (ActivityKind::Quiz, "Midterm exam", false),
                (ActivityKind::Quiz, "Final exam", i % 2 == 1),
                (ActivityKind::Assign, "Term paper", false),
            ];
            if i % 3 == 0 {
                specs.push((ActivityKind::Assign, "Lab report", true));
            }
            for (kind, name, open) in specs {
                next_id += 1;
                activities.push(ActivitySpec {
                    activity: LmsActivity {
                        lms_id: next_id.to_string(),
                        course_lms_id: c.lms_id.into(),
                        kind,
                        name: name.into(),
                        opens_at: Some(at(2025, 11, 1)),
                        // Open activities have no close date: they stay open whenever the demo runs.
                        closes_at: (!open).then(|| at(2025, 12, 15)),
                        modified_at: at(2025, 10, 20),
                    },
                    enrolled: enrolled.clone(),
                    open,
                });
            }
        }
        Self { persons, courses, activities, bulk_file_size: None, record_delay: std::time::Duration::ZERO, changes: None }
    }

    /// Adds `n` generated courses after the fixed ones (LMS ids 100001, 100002, …, short names
    /// `GEN0001`, …), spread over the categories, each with the activities a small course has: a
    /// data set of any size for benchmarks, the same for every process that generates it.
    pub fn with_extra_courses(mut self, n: u32) -> Self {
        let mut next_id = self.activities.iter().filter_map(|a| a.activity.lms_id.parse::<u64>().ok()).max().unwrap_or(1000);
        for k in 1..=n as usize {
            let category = CATEGORIES[k % CATEGORIES.len()].0;
            let course = LmsCourse {
                lms_id: (100_000 + k).to_string(),
                category_lms_id: category.into(),
                short_name: format!("GEN{k:04}"),
                full_name: format!("Generated Course {k}"),
                visible: true,
                start_date: Some(at(2025, 10, 1)),
                end_date: Some(at(2026, 3, 31)),
            };
            let start = (k * 5) % (SMALL_POOL - PER_SMALL_COURSE);
            for (kind, name) in [(ActivityKind::Quiz, "Midterm exam"), (ActivityKind::Quiz, "Final exam"), (ActivityKind::Assign, "Term paper")] {
                next_id += 1;
                self.activities.push(ActivitySpec {
                    activity: LmsActivity {
                        lms_id: next_id.to_string(),
                        course_lms_id: course.lms_id.clone(),
                        kind,
                        name: name.into(),
                        opens_at: Some(at(2025, 11, 1)),
                        closes_at: Some(at(2025, 12, 15)),
                        modified_at: at(2025, 10, 20),
                    },
                    enrolled: start..start + PER_SMALL_COURSE,
                    open: false,
                });
            }
            self.courses.push(course);
        }
        self
    }

    /// Gives every assignment submission one more file, `attachment.bin`, of `bytes` bytes (for
    /// benchmarks: 10,000 submissions × 107 KB ≈ 1 GiB). Its content is pseudo-random text that
    /// compresses to about three quarters, generated while it is read, so even huge files cost
    /// no memory.
    pub fn with_file_size(mut self, bytes: u64) -> Self {
        self.bulk_file_size = Some(bytes);
        self
    }

    /// Makes reading each record take `delay`, like a slow LMS: lets tests and demos act on a job
    /// while it runs.
    pub fn with_record_delay(mut self, delay: std::time::Duration) -> Self {
        self.record_delay = delay;
        self
    }

    /// Reads later changes (added attempts) from `path`, on every access.
    pub fn with_changes_file(mut self, path: std::path::PathBuf) -> Self {
        self.changes = Some(path);
        self
    }

    /// Simulates a new attempt in an activity, as if a student had just made one: the activity's
    /// fingerprint changes, so an archived activity becomes CHANGED after the next sync.
    pub fn add_attempt(&self, activity_lms_id: &str) -> anyhow::Result<u32> {
        self.spec(activity_lms_id)?;
        let path = self.changes.as_ref().ok_or_else(|| anyhow::anyhow!("the demo LMS has no changes file"))?;
        let mut c = DemoChanges::read(path);
        let n = c.extra_attempts.entry(activity_lms_id.to_string()).or_default();
        *n += 1;
        let n = *n;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&c)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(n)
    }

    fn extra_attempts(&self, activity_lms_id: &str) -> u32 {
        self.changes.as_ref().map_or(0, |p| DemoChanges::read(p).extra_attempts.get(activity_lms_id).copied().unwrap_or(0))
    }

    fn spec(&self, activity_lms_id: &str) -> anyhow::Result<&ActivitySpec> {
        self.activities
            .iter()
            .find(|a| a.activity.lms_id == activity_lms_id)
            .ok_or_else(|| anyhow::anyhow!("demo LMS has no activity {activity_lms_id}"))
    }

    /// (person index, attempt number) of every record of an activity, in order.
    fn record_keys(spec: &ActivitySpec, extra: u32) -> impl Iterator<Item = (usize, u32)> + '_ {
        // Added attempts belong to the first enrolled person, numbered after the at most two
        // generated ones.
        let added = (1..=extra).map(move |k| (spec.enrolled.start, 2 + k));
        spec.enrolled.clone().flat_map(move |p| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed(&[&spec.activity.lms_id, &p.to_string()]));
            let attempts = match spec.activity.kind {
                ActivityKind::Quiz => rng.random_range(1..=2),
                ActivityKind::Assign => 1,
            };
            (1..=attempts).map(move |n| (p, n))
        })
        .chain(added)
    }

    fn record(&self, spec: &ActivitySpec, person: usize, n: u32) -> LmsRecord {
        let a = &spec.activity;
        let p = &self.persons[person];
        let id = format!("{}-{}-{}", a.lms_id, p.lms_id, n);
        let mut rng = ChaCha8Rng::seed_from_u64(seed(&[&id]));
        let started = at(2025, 11, 10) + Duration::minutes(rng.random_range(0..60 * 24 * 20)) + Duration::days(n as i64);
        match a.kind {
            ActivityKind::Quiz => {
                let in_progress = spec.open && n == 2;
                let count = rng.random_range(3..=QUESTIONS.len());
                let mut t = started;
                let questions: Vec<QuestionAttempt> = (0..count)
                    .map(|slot| {
                        let (name, text, right, wrong) = QUESTIONS[slot];
                        let correct = rng.random_bool(0.7);
                        let answered = !in_progress || slot + 1 < count;
                        let answer = answered.then(|| if correct { right } else { wrong }.to_string());
                        let mut history = vec![AnswerStep { sequence: 0, state: "todo".into(), answer: None, at: t }];
                        t += Duration::seconds(rng.random_range(30..600));
                        if let Some(ans) = &answer {
                            history.push(AnswerStep { sequence: 1, state: "complete".into(), answer: Some(ans.clone()), at: t });
                        }
                        QuestionAttempt {
                            slot: slot as u32 + 1,
                            name: name.into(),
                            text: text.into(),
                            answer,
                            right_answer: right.into(),
                            feedback: (!in_progress).then(|| if correct { "Well done." } else { "Review chapter 3." }.to_string()),
                            mark: (!in_progress).then_some(if correct { 1.0 } else { 0.0 }),
                            max_mark: 1.0,
                            history,
                        }
                    })
                    .collect();
                let finished = (!in_progress).then_some(t);
                let mut questions = questions;
                if let Some(f) = finished {
                    for q in &mut questions {
                        let graded = if q.mark == Some(1.0) { "gradedright" } else { "gradedwrong" };
                        let seq = q.history.len() as u32;
                        q.history.push(AnswerStep { sequence: seq, state: graded.into(), answer: q.answer.clone(), at: f });
                    }
                }
                let grade = finished.map(|_| questions.iter().filter_map(|q| q.mark).sum::<f64>());
                LmsRecord::QuizAttempt(QuizAttempt {
                    id,
                    person_lms_id: p.lms_id.clone(),
                    attempt_number: n,
                    state: if in_progress { "inprogress" } else { "finished" }.into(),
                    started_at: started,
                    finished_at: finished,
                    modified_at: t,
                    grade,
                    max_grade: count as f64,
                    questions,
                })
            }
            ActivityKind::Assign => {
                let submitted = !spec.open || rng.random_bool(0.5);
                let submitted_at = submitted.then(|| started + Duration::hours(rng.random_range(1..72)));
                let file_count = if submitted { rng.random_range(1..=2) } else { 0 };
                let mut files: Vec<LmsFile> = (0..file_count)
                    .map(|i| {
                        let (name, media, size) = if i == 0 {
                            ("essay.txt", "text/plain", rng.random_range(800..4000))
                        } else {
                            ("data.csv", "text/csv", rng.random_range(200..1500))
                        };
                        LmsFile { id: format!("{id}:{i}:{size}"), name: name.into(), media_type: media.into(), size }
                    })
                    .collect();
                if let Some(size) = self.bulk_file_size {
                    files.push(LmsFile { id: format!("{id}:bulk:{size}"), name: "attachment.bin".into(), media_type: "application/octet-stream".into(), size });
                }
                let graded = submitted && !spec.open;
                let graded_at = submitted_at.filter(|_| graded).map(|s| s + Duration::days(7));
                let feedback_files = if graded && rng.random_bool(0.5) {
                    let size = rng.random_range(300..900);
                    vec![LmsFile { id: format!("{id}:fb:{size}"), name: "feedback.txt".into(), media_type: "text/plain".into(), size }]
                } else {
                    Vec::new()
                };
                LmsRecord::AssignSubmission(AssignSubmission {
                    id,
                    person_lms_id: p.lms_id.clone(),
                    status: if submitted { "submitted" } else { "draft" }.into(),
                    submitted_at,
                    modified_at: graded_at.or(submitted_at).unwrap_or(started),
                    online_text: submitted.then(|| format!("<p>Submission of {} {} for {}.</p>", p.first_name, p.last_name, a.name)),
                    files,
                    grade: graded.then(|| rng.random_range(40..=100) as f64),
                    max_grade: 100.0,
                    graded_at,
                    feedback_comment: graded.then(|| "<p>Clear structure; cite your sources.</p>".to_string()),
                    feedback_files,
                })
            }
        }
    }

    /// The bytes of a demo file: readable text lines, derived from the file's id and size.
    fn file_bytes(file: &LmsFile) -> Vec<u8> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed(&[&file.id]));
        let mut out = Vec::with_capacity(file.size as usize);
        let words = ["archive", "exam", "student", "answer", "retention", "integrity", "proof", "data"];
        while out.len() < file.size as usize {
            let w = words[rng.random_range(0..words.len())];
            out.extend_from_slice(w.as_bytes());
            out.push(if rng.random_bool(0.1) { b'\n' } else { b' ' });
        }
        out.truncate(file.size as usize);
        out
    }
}

#[async_trait]
impl LmsSource for DemoLms {
    fn name(&self) -> &str {
        "demo"
    }

    async fn categories(&self) -> anyhow::Result<Vec<LmsCategory>> {
        Ok(CATEGORIES
            .iter()
            .enumerate()
            .map(|(i, (id, parent, name))| LmsCategory {
                lms_id: id.to_string(),
                parent_lms_id: parent.map(str::to_string),
                name: name.to_string(),
                sort_order: i as i32,
            })
            .collect())
    }

    async fn courses(&self) -> anyhow::Result<Vec<LmsCourse>> {
        Ok(self.courses.clone())
    }

    async fn activities(&self) -> anyhow::Result<Vec<LmsActivity>> {
        Ok(self.activities.iter().map(|a| a.activity.clone()).collect())
    }

    async fn persons(&self) -> anyhow::Result<Vec<LmsPerson>> {
        Ok(self.persons.clone())
    }

    async fn record_versions(&self, activity_lms_id: &str) -> anyhow::Result<Vec<RecordVersion>> {
        let spec = self.spec(activity_lms_id)?;
        Ok(Self::record_keys(spec, self.extra_attempts(activity_lms_id))
            .map(|(p, n)| {
                let r = self.record(spec, p, n);
                let (id, modified_at) = match r {
                    LmsRecord::QuizAttempt(q) => (q.id, q.modified_at),
                    LmsRecord::AssignSubmission(s) => (s.id, s.modified_at),
                };
                RecordVersion { id, modified_at }
            })
            .collect())
    }

    fn records<'a>(&'a self, activity_lms_id: &'a str) -> BoxStream<'a, anyhow::Result<LmsRecord>> {
        self.records_from(activity_lms_id, 0, u64::MAX)
    }

    /// Pages without generating (or waiting for) the records before `offset`, like an LMS that
    /// can page.
    fn records_from<'a>(&'a self, activity_lms_id: &'a str, offset: u64, limit: u64) -> BoxStream<'a, anyhow::Result<LmsRecord>> {
        let (skip, take) = (usize::try_from(offset).unwrap_or(usize::MAX), usize::try_from(limit).unwrap_or(usize::MAX));
        match self.spec(activity_lms_id) {
            Ok(spec) => stream::iter(Self::record_keys(spec, self.extra_attempts(activity_lms_id)).skip(skip).take(take))
                .then(move |(p, n)| async move {
                    if !self.record_delay.is_zero() {
                        tokio::time::sleep(self.record_delay).await;
                    }
                    Ok(self.record(spec, p, n))
                })
                .boxed(),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn open_file(&self, file: &LmsFile) -> anyhow::Result<FileReader> {
        if file.id.contains(":bulk:") {
            return Ok(Box::new(BulkReader { rng: ChaCha8Rng::seed_from_u64(seed(&[&file.id])), remaining: file.size, column: 0 }));
        }
        Ok(Box::new(std::io::Cursor::new(Self::file_bytes(file))))
    }
}

/// The content of a [`DemoLms::with_file_size`] file: lines of 76 characters from a 64-character
/// alphabet (like base64), generated as it is read.
struct BulkReader {
    rng: ChaCha8Rng,
    remaining: u64,
    column: u8,
}

impl tokio::io::AsyncRead for BulkReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let n = (buf.remaining() as u64).min(self.remaining) as usize;
        let mut out = vec![0u8; n];
        self.rng.fill(&mut out[..]);
        for b in out.iter_mut() {
            if self.column == 76 {
                *b = b'\n';
                self.column = 0;
            } else {
                *b = ALPHABET[(*b & 63) as usize];
                self.column += 1;
            }
        }
        self.remaining -= n as u64;
        buf.put_slice(&out);
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_same_scale_yields_the_same_data() {
        let (a, b) = (DemoLms::new(1), DemoLms::new(1));
        let act = a.activities().await.unwrap();
        assert_eq!(act, b.activities().await.unwrap());
        let id = &act[0].lms_id;
        let ra: Vec<_> = a.records(id).map(|r| r.unwrap()).collect().await;
        let rb: Vec<_> = b.records(id).map(|r| r.unwrap()).collect().await;
        assert!(!ra.is_empty());
        assert_eq!(ra, rb);
    }

    #[tokio::test]
    async fn extra_courses_are_generated_the_same_each_time() {
        let (a, b) = (DemoLms::new(1).with_extra_courses(50), DemoLms::new(1).with_extra_courses(50));
        let base = DemoLms::new(1);
        assert_eq!(a.courses().await.unwrap().len(), base.courses().await.unwrap().len() + 50);
        assert_eq!(a.activities().await.unwrap(), b.activities().await.unwrap());
        let acts = a.activities().await.unwrap();
        assert_eq!(acts.len(), base.activities().await.unwrap().len() + 150);
        let mut ids: Vec<_> = acts.iter().map(|x| x.lms_id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), acts.len(), "activity LMS ids are unique");
        let last = acts.last().unwrap();
        let ra: Vec<_> = a.records(&last.lms_id).map(|r| r.unwrap()).collect().await;
        assert!(!ra.is_empty(), "generated activities have records");
    }

    #[tokio::test]
    async fn scale_grows_the_large_lecture_to_ten_thousand_attempts() {
        let lms = DemoLms::new(100);
        let acts = lms.activities().await.unwrap();
        let big = acts.iter().find(|a| a.course_lms_id == LARGE_COURSE && a.kind == ActivityKind::Assign).unwrap();
        assert_eq!(lms.record_versions(&big.lms_id).await.unwrap().len(), 10_000);
    }

    #[tokio::test]
    async fn bulk_files_stream_their_announced_size() {
        let lms = DemoLms::new(1).with_file_size(300_000);
        let acts = lms.activities().await.unwrap();
        let assign = acts.iter().find(|a| a.kind == ActivityKind::Assign).unwrap();
        let recs: Vec<_> = lms.records(&assign.lms_id).map(|r| r.unwrap()).collect().await;
        let LmsRecord::AssignSubmission(s) = &recs[0] else { panic!("expected a submission") };
        let f = s.files.iter().find(|f| f.name == "attachment.bin").unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        lms.open_file(f).await.unwrap().read_to_end(&mut a).await.unwrap();
        lms.open_file(f).await.unwrap().read_to_end(&mut b).await.unwrap();
        assert_eq!(a.len(), 300_000);
        assert_eq!(a, b, "the same bytes every time");
    }

    #[tokio::test]
    async fn data_has_open_and_closed_activities_and_files() {
        let lms = DemoLms::new(1);
        let acts = lms.activities().await.unwrap();
        assert!(acts.iter().any(|a| a.closes_at.is_none()) && acts.iter().any(|a| a.closes_at.is_some()));
        let assign = acts.iter().find(|a| a.kind == ActivityKind::Assign && a.closes_at.is_some()).unwrap();
        let recs: Vec<_> = lms.records(&assign.lms_id).map(|r| r.unwrap()).collect().await;
        let LmsRecord::AssignSubmission(s) = &recs[0] else { panic!("expected a submission") };
        let f = &s.files[0];
        let mut bytes = Vec::new();
        lms.open_file(f).await.unwrap().read_to_end(&mut bytes).await.unwrap();
        assert_eq!(bytes.len() as u64, f.size);
    }
}
