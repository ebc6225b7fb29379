//! The `workflow-engine` command line: serve (the default), migrate, demo, check.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use workflow_engine::check::check_text;
use workflow_engine::conditions::Limits;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { no_migrate: false });
    if let Command::Check { file } = &command {
        return check(file);
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
                Command::Check { .. } => Ok(()),
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
