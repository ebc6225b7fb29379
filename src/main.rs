//! The `workflow-engine` command line: serve (the default), migrate, demo, check, export,
//! apply.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use workflow_engine::check::check_text;
use workflow_engine::conditions::Limits;
use workflow_engine::gitops;
use workflow_engine::schema::FieldSchema;
use workflow_engine::settings::Settings;

#[derive(Parser)]
#[command(
    name = "workflow-engine",
    version,
    about = "Event-driven workflow engine for brokerage CRMs"
)]
struct Cli {
    /// Directory holding the optional local.toml.
    #[arg(long, global = true, default_value = "config")]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: consume events, run workflows, serve the HTTP API (the default).
    Serve {
        /// Do not apply migrations at start-up (as `database.migrate = false`): refuse to
        /// start on a database that is behind instead. For teams that migrate separately.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Run the seed's three use cases end to end on the embedded defaults and print what
    /// happened.
    Demo,
    /// Validate a workflow file (one definition or an array) and print every problem with
    /// its JSON pointer; exits non-zero when any definition is invalid.
    Check {
        /// The JSON file to check.
        file: PathBuf,
    },
    /// Write every workflow of a running engine into DIR, one stable JSON file per
    /// workflow (`<id>.json`), through its HTTP API (the token from WFE_API_TOKEN).
    Export {
        dir: PathBuf,
        /// The engine's HTTP API.
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
    },
    /// Make a running engine's workflows match DIR through its HTTP API: create, update,
    /// and deactivate those with no file (never delete). Every file is validated by the
    /// engine first; one invalid file and nothing changes.
    Apply {
        dir: PathBuf,
        /// Print the creates, updates (with a diff) and deactivations; change nothing.
        #[arg(long)]
        plan: bool,
        /// Save every change as a draft, for another token to approve and publish.
        #[arg(long)]
        draft: bool,
        /// The engine's HTTP API.
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
    },
}

/// Where `export` and `apply` find the engine unless told.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { no_migrate: false });
    match &command {
        Command::Check { file } => return check(file),
        Command::Export { dir, url } => return export(dir, url),
        Command::Apply { dir, plan, draft, url } => return apply(dir, url, *plan, *draft),
        _ => {}
    }
    let result = Settings::load(&cli.config_dir)
        .context("loading configuration")
        .and_then(|settings| {
            let telemetry =
                workflow_engine::telemetry::init(&settings.log, &settings.telemetry).context("starting telemetry")?;
            let result = match command {
                Command::Serve { no_migrate } => {
                    let migrate = settings.database.migrate && !no_migrate;
                    workflow_engine::service::serve(settings, migrate)
                }
                Command::Migrate => workflow_engine::service::migrate(settings),
                Command::Demo => workflow_engine::demo::run(settings),
                Command::Check { .. } | Command::Export { .. } | Command::Apply { .. } => Ok(()),
            };
            // The spans of the last events are still queued: send them before exiting.
            telemetry.shutdown();
            result
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The engine client of `export` and `apply`, on its own actix system (awc runs on one).
fn with_engine<T>(url: &str, work: impl AsyncFnOnce(&gitops::Engine) -> T) -> T {
    let token = std::env::var("WFE_API_TOKEN").ok();
    actix_rt::System::new().block_on(async move {
        let engine = gitops::Engine::new(url, token);
        work(&engine).await
    })
}

fn export(dir: &Path, url: &str) -> ExitCode {
    match with_engine(url, async |engine| gitops::export(engine, dir).await) {
        Ok(n) => {
            println!("exported {n} workflow(s) to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn apply(dir: &Path, url: &str, plan: bool, draft: bool) -> ExitCode {
    match with_engine(url, async |engine| gitops::apply(engine, dir, plan, draft).await) {
        Ok(applied) => {
            print!("{}", applied.plan.render());
            for line in &applied.done {
                println!("{line}");
            }
            if plan {
                println!("--plan: nothing was changed");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("error: {e}");
            if !e.to_string().ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}

fn check(file: &PathBuf) -> ExitCode {
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{name}: cannot read: {e}");
            return ExitCode::from(2);
        }
    };
    let report = check_text(&text, &FieldSchema::default(), Limits::default());
    print!("{}", report.render(&name));
    if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
