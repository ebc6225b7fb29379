//! `workflow-engine export DIR` and `workflow-engine apply DIR [--plan] [--draft]`:
//! workflows kept in Git, moved to and from a running engine through its HTTP API (never
//! its database), so drafts, approvals, scopes and the audit log apply to them as to any
//! client. The folder's form and the plan are [`crate::folder`]'s; this module reads and
//! writes files and talks to the engine (awc, already the engine's HTTP client).
//!
//! `apply` checks the whole folder before it changes anything: every file must parse,
//! name its workflow by its file name, and pass the engine's own validation
//! (POST /api/v1/workflows/validate, against the engine's statuses and fields). One bad
//! file and nothing is changed; each problem is printed as `file:pointer: message`. Then
//! it creates, updates and deactivates (never deletes) through the API, in that order,
//! and stops at the first change the engine refuses (a concurrent save, a missing
//! approval), saying which.

use crate::folder::{self, Plan};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why an export or apply stopped.
#[derive(Debug, thiserror::Error)]
pub enum GitopsError {
    #[error("cannot reach the engine at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{what}: the engine answered {status}: {body}")]
    Refused { what: String, status: u16, body: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("workflow id {0:?} cannot be a file name")]
    BadId(String),
    /// The folder holds invalid files; nothing was changed.
    #[error("{0}nothing was changed")]
    Invalid(String),
}

/// The engine's HTTP API.
pub struct Engine {
    base: String,
    token: Option<String>,
    http: awc::Client,
}

impl Engine {
    /// `url` is the engine's base (`http://127.0.0.1:8080`); `token` its bearer token.
    /// Must be made inside an actix system (awc's connector runs on it).
    pub fn new(url: &str, token: Option<String>) -> Engine {
        Engine {
            base: url.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            http: awc::Client::builder().timeout(Duration::from_secs(60)).finish(),
        }
    }

    async fn call(
        &self,
        method: awc::http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), GitopsError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let unreachable = |e: &dyn std::fmt::Display| GitopsError::Unreachable {
            url: url.clone(),
            message: e.to_string(),
        };
        let mut response = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        }
        .map_err(|e| unreachable(&e))?;
        let bytes = response.body().limit(64 << 20).await.map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// Every workflow on the engine, by id, as the API shows it.
    async fn workflows(&self) -> Result<BTreeMap<String, Value>, GitopsError> {
        let (status, body) = self
            .call(awc::http::Method::GET, "/api/v1/workflows?limit=1000", None)
            .await?;
        if status != 200 {
            return Err(refused("listing workflows", status, &body));
        }
        let listed = body["workflows"].as_array().cloned().unwrap_or_default();
        Ok(listed
            .into_iter()
            .filter_map(|w| Some((w.get("id")?.as_str()?.to_owned(), w)))
            .collect())
    }
}

fn refused(what: &str, status: u16, body: &Value) -> GitopsError {
    GitopsError::Refused {
        what: what.to_owned(),
        status,
        body: body.to_string(),
    }
}

/// Writes one file per workflow of the engine into `dir` (made if missing), in the
/// stable form. Returns how many files were written.
pub async fn export(engine: &Engine, dir: &Path) -> Result<usize, GitopsError> {
    let workflows = engine.workflows().await?;
    std::fs::create_dir_all(dir).map_err(|source| GitopsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    for (id, workflow) in &workflows {
        let name = folder::file_name(id).ok_or_else(|| GitopsError::BadId(id.clone()))?;
        let path = dir.join(name);
        std::fs::write(&path, folder::stable_text(workflow)).map_err(|source| GitopsError::Write { path, source })?;
    }
    Ok(workflows.len())
}

/// A folder's workflows by id, each with the path of its file.
type Files = BTreeMap<String, (String, Value)>;

/// The `*.json` files of `dir`, by name, each parsed and checked to name its workflow by
/// its file name; problems as `file:pointer: message` lines.
fn read_folder(dir: &Path) -> Result<(Files, String), GitopsError> {
    let read_error = |source| GitopsError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    let mut files = BTreeMap::new();
    let mut problems = String::new();
    for path in names {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| GitopsError::Read {
            path: path.clone(),
            source,
        })?;
        let value = match crate::validate::parse_json(&text) {
            Ok(value) => value,
            Err(invalid) => {
                for p in invalid.problems {
                    let _ = writeln!(problems, "{file}:{}: {}", pointer(&p.path), p.message);
                }
                continue;
            }
        };
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        match value.get("id").and_then(Value::as_str) {
            Some(id) if id == stem => {
                files.insert(stem, (file, value));
            }
            other => {
                let _ = writeln!(
                    problems,
                    "{file}:/id: expected the id {stem:?} (the file's name), got {}",
                    other.map_or("none".to_owned(), |id| format!("{id:?}"))
                );
            }
        }
    }
    Ok((files, problems))
}

fn pointer(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// What an apply did or, with `plan_only`, would do.
#[derive(Debug)]
pub struct Applied {
    pub plan: Plan,
    /// The lines printed for each change made.
    pub done: Vec<String>,
}

/// Makes the engine's workflows match `dir` (or, with `plan_only`, only says how). With
/// `draft`, every change is saved as a draft, for another token to approve and publish
/// (`changes.require_approval`).
pub async fn apply(engine: &Engine, dir: &Path, plan_only: bool, draft: bool) -> Result<Applied, GitopsError> {
    let (files, mut problems) = read_folder(dir)?;
    // Every file against the engine's own validation before anything changes.
    for (file, workflow) in files.values() {
        let (status, body) = engine
            .call(awc::http::Method::POST, "/api/v1/workflows/validate", Some(workflow))
            .await?;
        match status {
            200 => {}
            422 => {
                let error = &body["error"];
                let details = error["details"].as_array().cloned().unwrap_or_default();
                if details.is_empty() {
                    let _ = writeln!(
                        problems,
                        "{file}:{}: {}",
                        pointer(error["path"].as_str().unwrap_or_default()),
                        error["message"].as_str().unwrap_or_default()
                    );
                }
                for d in details {
                    let _ = writeln!(
                        problems,
                        "{file}:{}: {}",
                        pointer(d["path"].as_str().unwrap_or_default()),
                        d["message"].as_str().unwrap_or_default()
                    );
                }
            }
            other => return Err(refused(&format!("validating {file}"), other, &body)),
        }
    }
    if !problems.is_empty() {
        return Err(GitopsError::Invalid(problems));
    }
    let live = engine.workflows().await?;
    let wanted: BTreeMap<String, Value> = files.into_iter().map(|(id, (_, w))| (id, w)).collect();
    let plan = Plan::new(&wanted, &live);
    let mut done = Vec::new();
    if plan_only {
        return Ok(Applied { plan, done });
    }
    let status = |mut body: Value| {
        if draft {
            body["status"] = json!("draft");
        }
        body
    };
    // The version a PUT replaces: the newest saved, a draft included.
    let newest = |id: &str| {
        let shown = &live[id];
        shown["draft_version"].as_i64().or_else(|| shown["version"].as_i64())
    };
    for (id, file) in &plan.creates {
        let (code, body) = engine
            .call(
                awc::http::Method::POST,
                "/api/v1/workflows",
                Some(&status(file.clone())),
            )
            .await?;
        if code != 201 {
            return Err(refused(&format!("creating {id}"), code, &body));
        }
        done.push(format!("created {id}"));
    }
    for (id, _, file) in &plan.updates {
        let mut body = status(file.clone());
        body["version"] = json!(newest(id));
        let path = format!("/api/v1/workflows/{id}");
        let (code, answer) = engine.call(awc::http::Method::PUT, &path, Some(&body)).await?;
        if code != 200 {
            return Err(refused(&format!("updating {id}"), code, &answer));
        }
        done.push(format!("updated {id}"));
    }
    for (id, shown) in &plan.deactivations {
        let mut body = status(shown.clone());
        body["active"] = json!(false);
        body["version"] = json!(newest(id));
        let path = format!("/api/v1/workflows/{id}");
        let (code, answer) = engine.call(awc::http::Method::PUT, &path, Some(&body)).await?;
        if code != 200 {
            return Err(refused(&format!("deactivating {id}"), code, &answer));
        }
        done.push(format!("deactivated {id}"));
    }
    Ok(Applied { plan, done })
}
