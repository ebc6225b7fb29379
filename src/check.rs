//! `workflow-engine check FILE.json`: validates a workflow file (one definition or an array
//! of them) without a database or a broker, and reports every problem with its path.

use crate::conditions::Limits;
use crate::problem::{Pointer, Problem, Severity};
use crate::schema::FieldSchema;
use crate::validate::{parse_json, Validator};
use serde_json::Value;
use std::fmt::Write;

/// The outcome of checking one file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// Workflows found in the file.
    pub workflows: usize,
    /// Names (or pointers) of the valid ones.
    pub valid: Vec<String>,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The report as printed: one line per problem, `file:pointer: message`, then a summary.
    pub fn render(&self, file: &str) -> String {
        let mut out = String::new();
        for p in &self.problems {
            let path = if p.path.is_empty() { "/" } else { &p.path };
            let level = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = writeln!(out, "{file}:{path}: {level}: {}", p.message);
        }
        let errors = self.problems.iter().filter(|p| p.severity == Severity::Error).count();
        let warnings = self.problems.len() - errors;
        let _ = writeln!(
            out,
            "{file}: {} of {} workflow(s) valid, {errors} error(s), {warnings} warning(s)",
            self.valid.len(),
            self.workflows
        );
        out
    }
}

/// Checks the text of a workflow file.
pub fn check_text(text: &str, schema: &FieldSchema, limits: Limits) -> Report {
    let value = match parse_json(text) {
        Ok(v) => v,
        Err(invalid) => {
            return Report {
                problems: invalid.problems,
                ..Report::default()
            }
        }
    };
    let validator = Validator::new(schema, limits);
    let items: Vec<(&Value, Pointer)> = match &value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (v, Pointer::root().index(i)))
            .collect(),
        other => vec![(other, Pointer::root())],
    };
    let mut report = Report {
        workflows: items.len(),
        ..Report::default()
    };
    for (item, at) in items {
        match validator.at(item, &at) {
            Ok(validated) => {
                report.problems.extend(validated.warnings);
                // What a save refuses (a fan-out into itself) is no valid workflow here either.
                match crate::analysis::fanout::check(&validated.workflow) {
                    Some(mut problem) => {
                        problem.path = format!("{}{}", at.as_str(), problem.path);
                        report.problems.push(problem);
                    }
                    None => report.valid.push(validated.workflow.name.clone()),
                }
            }
            Err(invalid) => report.problems.extend(invalid.problems),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fan_out_into_itself_is_an_error_at_its_pointer_in_the_file() {
        let freeze = r#"{"type": "freeze_account", "params": {"reason": "r"}}"#;
        let text = format!(
            r#"[{{"name": "one", "trigger_event": "compliance.freeze_requested", "actions": [{freeze}]}},
                {{"name": "two", "trigger_event": "compliance.freeze_requested", "actions": [{freeze}, {freeze}]}}]"#
        );
        let report = check_text(&text, &FieldSchema::default(), Limits::default());
        assert_eq!(report.valid, ["one"]);
        assert!(report.has_errors());
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].path, "/1/actions/1");
    }
}
