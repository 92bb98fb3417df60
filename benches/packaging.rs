//! Packaging throughput of one large activity against `tar | zstd -3 | sha256sum` on the same files.
//!
//! ```text
//! cargo bench -p archiving-manager-benches --bench packaging -- [--attempts N] [--file-mib M]
//! ```
//!
//! Builds the demo's large assignment (N submissions, default 10,000, rounded up to a multiple of
//! 100) with one extra generated file per submission so that the files total about M MiB (default
//! 1024), as TAR_ZST, in a child process (so that its peak RSS, VmHWM, is the packaging's own).
//! Then unpacks the package (not timed) and times the baseline `tar -cf - BAG | zstd -3 | sha256sum`
//! over the very same files. Prints both throughputs (MB/s of bag bytes: every file of the bag,
//! as tar reads them), their ratio and the peak RSS. The packaging time includes reading from the
//! demo LMS, which generates the records and file bytes on the fly; the baseline reads the files
//! from the page cache.
//!
//! Figures (2 vCPUs with SHA-NI/AVX2, shared with concurrent compiles — load average ~6, so expect
//! noise of ±25 %; release profile):
//!
//! | run | bag | archive_activity | baseline | ratio | peak RSS |
//! |---|---|---|---|---|---|
//! | default: 10,000 submissions, 1 GiB extra files | 1180 MB, 49,993 files | 7.2 s = 165 MB/s (CPU 7.4 s) | 7.1 s = 167 MB/s (CPU 7.2 s) | 0.99 | 29.4 MiB |
//! | `--attempts 1000 --file-mib 64` | 78 MB, 5,011 files | 0.55 s = 142 MB/s | 0.71 s = 109 MB/s | 1.30 | 11.5 MiB |
//! | `--attempts 100 --file-mib 2048` (21 MB files) | 2149 MB, 504 files | 16.1 s = 133 MB/s | 9.9 s = 216 MB/s | 0.62 | 14.7 MiB |
//!
//! Peak RSS does not grow with the payload (2 GiB of files: 14.7 MiB); what grows with the number
//! of records is metadata (the returned content list, the person map, the unique-name set: about
//! 2 KiB per record). On 2 CPUs the extra work (SHA-256 and SHA-512 of every file besides the
//! SHA-256 of the package, and the demo's data generation) competes with zstd; with more cores the
//! pipeline's three threads run in parallel.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use archiving_manager::{
    domain::{ActivityKind, ArchiveFormat},
    engine::drivers::{archive_activity, ActivityInfo, ArchiveRequest, CourseInfo, NoProgress},
    lms::{demo::DemoLms, LmsSource},
};

struct Args {
    attempts: u64,
    file_mib: u64,
    child: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args { attempts: 10_000, file_mib: 1024, child: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match arg.as_str() {
            "--attempts" => a.attempts = value("--attempts").parse().expect("--attempts N"),
            "--file-mib" => a.file_mib = value("--file-mib").parse().expect("--file-mib M"),
            "--child" => a.child = Some(PathBuf::from(value("--child"))),
            "--bench" => {} // added by `cargo bench`
            other => panic!("unknown argument {other}; usage: cargo bench -p archiving-manager-benches --bench packaging -- [--attempts N] [--file-mib M]"),
        }
    }
    a
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// CPU seconds (user + system, all threads) of this process so far.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    // Fields 14 and 15 of stat(5) (utime, stime) are at 11 and 12 after the command name; USER_HZ = 100.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The child: builds the package and prints `key=value` lines.
fn child(args: &Args, out: &Path) {
    let scale = args.attempts.div_ceil(100) as u32;
    let submissions = 100 * scale as u64;
    let file_size = args.file_mib * 1024 * 1024 / submissions;
    let lms = DemoLms::new(scale).with_file_size(file_size);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rss_before = proc_status_kib("VmRSS:");
    let (pkg, secs, cpu) = rt.block_on(async {
        let a = lms
            .activities()
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.course_lms_id == "109" && a.kind == ActivityKind::Assign && a.closes_at.is_some())
            .expect("the large lecture's assignment");
        let req = ArchiveRequest {
            job_id: uuid::Uuid::nil(),
            course: CourseInfo { lms_id: "109".into(), short_name: "STAT100".into(), full_name: "Large Lecture: Statistics".into() },
            activity: ActivityInfo { id: 1, lms_id: a.lms_id.clone(), kind: a.kind, name: a.name.clone(), closes_at: a.closes_at },
            origin: "MANUAL".into(),
            requested_by: "bench".into(),
            archived_at: chrono::Utc::now(),
            retention_until: None,
            format: ArchiveFormat::TarZst,
            filename_pattern: "bench_${activityId}".into(),
            report_options: Default::default(),
        };
        let (start, cpu) = (Instant::now(), cpu_secs());
        let pkg = archive_activity(&lms, &req, out, &NoProgress).await.expect("packaging");
        (pkg, start.elapsed().as_secs_f64(), cpu_secs() - cpu)
    });
    println!("secs={secs}");
    println!("cpu={cpu}");
    println!("path={}", pkg.path.display());
    println!("bag={}", pkg.file_name.trim_end_matches(".tar.zst"));
    println!("size={}", pkg.size);
    println!("records={}", pkg.records);
    println!("payload_bytes={}", pkg.payload_bytes);
    println!("payload_files={}", pkg.payload_files);
    println!("file_size={file_size}");
    println!("rss_before_kib={rss_before}");
    println!("hwm_kib={}", proc_status_kib("VmHWM:"));
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

fn main() {
    let args = args();
    if let Some(out) = &args.child {
        return child(&args, out);
    }
    let work = std::env::temp_dir().join(format!("archiving-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let out = work.join("out");
    println!("packaging: {} attempts, ~{} MiB of files, TAR_ZST (work dir {})", args.attempts, args.file_mib, work.display());

    let result = Command::new(std::env::current_exe().unwrap())
        .args(["--child", out.to_str().unwrap(), "--attempts", &args.attempts.to_string(), "--file-mib", &args.file_mib.to_string()])
        .output()
        .expect("running the packaging child");
    assert!(result.status.success(), "packaging failed: {}", String::from_utf8_lossy(&result.stderr));
    let text = String::from_utf8(result.stdout).unwrap();
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_else(|| panic!("child did not report {k}")).to_string();
    let num = |k: &str| get(k).parse::<f64>().unwrap();

    // Materialize the same files (not timed), then time the baseline over them.
    let unpacked = work.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let st = Command::new("tar").args(["--zstd", "-xf", &get("path"), "-C", unpacked.to_str().unwrap()]).status().expect("tar (apt-get install tar zstd)");
    assert!(st.success(), "unpacking failed");
    let bag_bytes = dir_bytes(&unpacked) as f64;
    let baseline_cmd = format!("tar -cf - -C '{}' '{}' | zstd -3 -q -c | sha256sum", unpacked.display(), get("bag"));
    let start = Instant::now();
    // `times` prints the CPU time of the pipeline's processes (second line: children user, system).
    let b = Command::new("bash").args(["-o", "pipefail", "-c", &format!("{baseline_cmd} >/dev/null; times")]).output().expect("bash");
    let baseline_secs = start.elapsed().as_secs_f64();
    assert!(b.status.success(), "baseline failed: {}", String::from_utf8_lossy(&b.stderr));
    let times = String::from_utf8_lossy(&b.stdout);
    let baseline_cpu: f64 = times
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|t| {
            let (m, s) = t.trim_end_matches('s').split_once('m')?;
            Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
        })
        .sum();

    let mb = |bytes: f64| bytes / 1e6;
    let (secs, ours) = (num("secs"), mb(bag_bytes) / num("secs"));
    let base = mb(bag_bytes) / baseline_secs;
    println!("records:            {}", get("records"));
    println!("bag:                {:.1} MB in {} payload files ({:.1} MB payload; extra file {} bytes per submission)", mb(bag_bytes), get("payload_files"), mb(num("payload_bytes")), get("file_size"));
    println!("package:            {:.1} MB (tar.zst, ratio {:.2})", mb(num("size")), num("size") / bag_bytes);
    println!("archive_activity:   {secs:.2} s  = {ours:.0} MB/s   (CPU {:.2} s: SHA-256 + SHA-512 of every file, tar, zstd -3, SHA-256 of the package, demo data generation)", num("cpu"));
    println!("baseline:           {baseline_secs:.2} s  = {base:.0} MB/s   (CPU {baseline_cpu:.2} s: {baseline_cmd})");
    println!("CPUs available:     {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("ratio:              {:.2} x baseline throughput", ours / base);
    println!("peak RSS (VmHWM):   {:.1} MiB (RSS before packaging {:.1} MiB)", num("hwm_kib") / 1024.0, num("rss_before_kib") / 1024.0);
    std::fs::remove_dir_all(&work).unwrap();
}
