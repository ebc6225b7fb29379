//! The `workflow-engine` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use workflow_engine::check::check_text;
use workflow_engine::conditions::Limits;
use workflow_engine::schema::FieldSchema;

#[derive(Parser)]
#[command(
    name = "workflow-engine",
    version,
    about = "Event-driven workflow engine for brokerage CRMs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a workflow file (one definition or an array) and print every problem with
    /// its JSON pointer; exits non-zero when any definition is invalid.
    Check {
        /// The JSON file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => check(&file),
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
