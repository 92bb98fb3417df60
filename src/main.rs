//! The `archiving-manager` command line.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use archiving_manager::{
    app::{self, AppState},
    auth::{JwtKeys, Principal, Role},
    config::{JwtAlgorithm, LogFormat, Settings},
    db, graphql,
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "archiving-manager", version, about = "Archives LMS exam data for legal long-term retention")]
struct Cli {
    /// TOML config file; `ARCHIVING_*` environment variables override it.
    #[arg(long, global = true, env = "ARCHIVING_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the workers in one process.
    Serve {
        /// Run the API only (workers run in `worker` processes; PostgreSQL).
        #[arg(long)]
        no_workers: bool,
    },
    /// Run workers only, without the API (scale-out on PostgreSQL).
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Change the demo LMS, to see how the archiver reacts.
    Demo {
        #[command(subcommand)]
        action: DemoAction,
    },
    /// Print a JWT signed with the configured key, for bootstrap and scripts.
    Token {
        /// admin, manager, teacher, auditor or reporter (repeatable).
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
        /// LMS id of a course a teacher role is scoped to (repeatable).
        #[arg(long = "course")]
        courses: Vec<String>,
        /// LMS id of a category a manager role is scoped to (repeatable).
        #[arg(long = "category")]
        categories: Vec<String>,
        /// How long the token is valid, e.g. 30m, 12h, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The token's subject.
        #[arg(long, default_value = "cli")]
        subject: String,
    },
}

#[derive(Subcommand)]
enum DemoAction {
    /// Simulate a new attempt in an activity, then sync: an archived activity becomes CHANGED.
    AddAttempt {
        /// The activity's LMS id (`Activity.lmsId`).
        #[arg(long)]
        activity: String,
    },
}

/// jemalloc instead of glibc's malloc: with glibc, the server's RSS kept growing after each large
/// job (37 → 84 → 109 → 123 MB after three 10,000-record jobs) although its live heap did not —
/// freed memory stayed in per-thread arenas and above a mmap threshold that rises with the
/// largest block freed (a package's ZIP central directory is several MiB). See the README.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|_| format!("unknown role {s:?}: use admin, manager, teacher, auditor or reporter"))
}

fn init_tracing(filter: &str, format: LogFormat) {
    let builder = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Schema = cli.command {
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings.log, settings.log_format);
    match run(cli.command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Schema => unreachable!("handled before settings are loaded"),
        Command::Token { roles, courses, categories, ttl, subject } => {
            let keys = JwtKeys::from_settings(&settings)?;
            println!("{}", keys.mint(&Principal { subject, roles, courses, categories }, ttl)?);
        }
        Command::Demo { action: DemoAction::AddAttempt { activity } } => {
            let lms = app::demo_lms(&settings);
            let n = lms.add_attempt(&activity)?;
            let (conn, _) = db::connect(&settings.database_url()).await?;
            db::migrate(&conn).await?;
            archiving_manager::service::sync::sync_from_lms(&conn, &lms).await?;
            println!("added attempt {n} to activity {activity}; the LMS data was synced");
        }
        Command::Migrate => {
            let (conn, _) = db::connect(&settings.database_url()).await?;
            db::migrate(&conn).await?;
            eprintln!("migrations applied to {}", db::redact_url(&settings.database_url()));
        }
        Command::Serve { no_workers } => {
            // Only with the embedded defaults (a secret generated in the data dir) is a bootstrap
            // admin token printed; a configured deployment mints its tokens deliberately.
            let bootstrap = settings.jwt_algorithm == JwtAlgorithm::HS256 && settings.jwt_secret.is_none();
            let state = AppState::init(settings).await?;
            let listener = tokio::net::TcpListener::bind(state.settings.listen).await?;
            let addr = listener.local_addr()?;
            println!("Archiving Manager listening on http://{addr}");
            println!("GraphiQL: http://{addr}/");
            if bootstrap {
                let admin = Principal { subject: "bootstrap-admin".into(), roles: vec![Role::Admin], courses: vec![], categories: vec![] };
                println!("Admin token (12h; send as `Authorization: Bearer <token>`):\n{}", state.jwt.mint(&admin, Duration::from_secs(12 * 3600))?);
            }
            if no_workers {
                app::serve(state, listener, app::shutdown_signal()).await?;
            } else {
                app::serve_with_workers(state, listener, app::shutdown_signal()).await?;
            }
        }
        Command::Worker => {
            let state = AppState::init(settings).await?;
            tracing::info!(process = %state.engine.process_id, "worker started");
            archiving_manager::engine::worker::run(state.engine.clone(), state.liveness.clone(), app::shutdown_signal()).await?;
        }
    }
    Ok(())
}
