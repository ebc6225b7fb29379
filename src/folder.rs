//! Workflows as a folder of files, for `workflow-engine export` and `apply` (issue 28):
//! one file per workflow, `<id>.json`, in a stable form, so a Git diff shows only what a
//! person changed. Pure: reading and writing the folder and talking to the engine are the
//! commands' ([`crate::gitops`]).
//!
//! The stable form is the workflow as the API shows it, without what the server assigns
//! or derives: `version`, `created_at`, `updated_at`, `live_version`, `draft_version`,
//! `draft` and `warnings` change with every save and would make every export a diff. Keys
//! are sorted at every depth, indented by two spaces, and the file ends with a newline.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Keys the server assigns or derives, left out of an exported file.
pub const SERVER_KEYS: [&str; 7] = [
    "version",
    "created_at",
    "updated_at",
    "live_version",
    "draft_version",
    "draft",
    "warnings",
];

/// `workflow` without the keys the server assigns.
pub fn strip(workflow: &Value) -> Value {
    let mut workflow = workflow.clone();
    if let Value::Object(map) = &mut workflow {
        for key in SERVER_KEYS {
            map.remove(key);
        }
    }
    workflow
}

/// `value` with the keys of every object sorted (whatever order the map kept them in).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let keys: BTreeMap<&String, Value> = map.iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(keys.into_iter().map(|(k, v)| (k.clone(), v)).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The file's text for `workflow`: stripped, keys sorted, two-space indent, a trailing
/// newline. The same workflow always gives the same bytes.
pub fn stable_text(workflow: &Value) -> String {
    let value = sorted(&strip(workflow));
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// The file name of workflow `id`, or `None` for an id that cannot be a file name (a
/// path separator, a leading dot, empty).
pub fn file_name(id: &str) -> Option<String> {
    let safe =
        !id.is_empty() && !id.starts_with('.') && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    safe.then(|| format!("{id}.json"))
}

/// What `apply` would do to make the engine match the folder.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    /// Workflows in the folder and not on the engine: (id, the file's workflow).
    pub creates: Vec<(String, Value)>,
    /// Workflows whose file differs from the engine's live version: (id, the engine's
    /// stable form, the file's).
    pub updates: Vec<(String, Value, Value)>,
    /// Active workflows on the engine with no file: deactivated (never deleted), as
    /// (id, the engine's stable form).
    pub deactivations: Vec<(String, Value)>,
}

impl Plan {
    /// `folder` (id → the file's workflow) against `engine` (id → the workflow as the
    /// API shows it); both compared in their stable form.
    pub fn new(folder: &BTreeMap<String, Value>, engine: &BTreeMap<String, Value>) -> Plan {
        let mut plan = Plan::default();
        for (id, file) in folder {
            let file = sorted(&strip(file));
            match engine.get(id) {
                None => plan.creates.push((id.clone(), file)),
                Some(live) => {
                    let live = sorted(&strip(live));
                    if live != file {
                        plan.updates.push((id.clone(), live, file));
                    }
                }
            }
        }
        for (id, live) in engine {
            if !folder.contains_key(id) && live.get("active") != Some(&Value::Bool(false)) {
                plan.deactivations.push((id.clone(), sorted(&strip(live))));
            }
        }
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.creates.is_empty() && self.updates.is_empty() && self.deactivations.is_empty()
    }

    /// The plan as `apply --plan` prints it: each create, each update with a line diff of
    /// the two files, each deactivation, then a count.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (id, _) in &self.creates {
            let _ = writeln!(out, "create {id}");
        }
        for (id, live, file) in &self.updates {
            let _ = writeln!(out, "update {id}");
            out.push_str(&diff(&stable_text(live), &stable_text(file)));
        }
        for (id, _) in &self.deactivations {
            let _ = writeln!(out, "deactivate {id} (not in the folder)");
        }
        let _ = writeln!(
            out,
            "{} to create, {} to update, {} to deactivate",
            self.creates.len(),
            self.updates.len(),
            self.deactivations.len()
        );
        out
    }
}

/// A line diff of `before` and `after` (longest common subsequence): removed lines as
/// `- `, added as `+ `, and the unchanged lines within two of a change as `  `. Files are
/// a workflow each, so the quadratic table stays small (a workflow is bounded by the
/// engine's limits on steps and rules).
pub fn diff(before: &str, after: &str) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut lines: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as `diff` prints them.
            lines.push(('-', a[i]));
            i += 1;
        } else {
            lines.push(('+', b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 2;
    let changed: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].0 != ' ').collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= CONTEXT);
    let mut out = String::new();
    let mut skipped = false;
    for (k, (mark, line)) in lines.iter().enumerate() {
        if *mark != ' ' || near(k) {
            if skipped {
                out.push_str("  ...\n");
                skipped = false;
            }
            let _ = writeln!(out, "{mark} {line}");
        } else {
            skipped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_stable_text_is_sorted_stripped_and_ends_with_a_newline() {
        let shown = json!({"version": 3, "name": "A", "id": "a", "updated_at": "x",
                           "actions": [{"type": "add_note", "params": {"body": "hi"}}], "active": true});
        let text = stable_text(&shown);
        assert_eq!(
            text,
            "{\n  \"actions\": [\n    {\n      \"params\": {\n        \"body\": \"hi\"\n      },\n      \"type\": \"add_note\"\n    }\n  ],\n  \"active\": true,\n  \"id\": \"a\",\n  \"name\": \"A\"\n}\n"
        );
    }

    #[test]
    fn a_plan_names_creates_updates_and_deactivations() {
        let folder = BTreeMap::from([
            ("a".to_owned(), json!({"id": "a", "name": "A", "active": true})),
            ("b".to_owned(), json!({"id": "b", "name": "B2", "active": true})),
            ("c".to_owned(), json!({"id": "c", "name": "C", "active": true})),
        ]);
        let engine = BTreeMap::from([
            (
                "b".to_owned(),
                json!({"id": "b", "name": "B", "active": true, "version": 4}),
            ),
            (
                "c".to_owned(),
                json!({"id": "c", "name": "C", "active": true, "version": 9}),
            ),
            ("d".to_owned(), json!({"id": "d", "name": "D", "active": true})),
            ("e".to_owned(), json!({"id": "e", "name": "E", "active": false})),
        ]);
        let plan = Plan::new(&folder, &engine);
        assert_eq!(plan.creates.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(plan.updates.iter().map(|u| u.0.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(
            plan.deactivations.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
            ["d"]
        );
        let text = plan.render();
        assert!(text.contains("-   \"name\": \"B\"\n+   \"name\": \"B2\"\n"), "{text}");
        assert!(text.ends_with("1 to create, 1 to update, 1 to deactivate\n"), "{text}");
    }

    #[test]
    fn ids_that_cannot_be_file_names_are_refused() {
        assert_eq!(file_name("kyc-freeze").as_deref(), Some("kyc-freeze.json"));
        assert_eq!(file_name("../x"), None);
        assert_eq!(file_name(".hidden"), None);
        assert_eq!(file_name(""), None);
    }
}
