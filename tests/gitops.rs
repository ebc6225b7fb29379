//! Issue 28, workflows in Git: the built binary's `export` and `apply` against the API
//! served in process on a free port (a fresh SQLite file, or PostgreSQL with
//! WFE_TEST_DATABASE_URL), with a scoped token in WFE_API_TOKEN.
//!
//! What must hold: export writes one stable file per workflow (the same bytes every time);
//! `apply --plan` prints exactly the edit and changes nothing; `apply` makes it through
//! the API (the audit names the token); exporting again gives the same files but for the
//! edit; a folder with an invalid file changes nothing and names the file and pointer.

mod common;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;
use workflow_engine::api::{self, Auth};
use workflow_engine::settings::{Scope, TokenConfig};
use workflow_engine::storage::{audit, workflows, Database};

fn definition(id: &str, body: &str) -> Value {
    json!({"id": id, "name": id, "trigger_event": "customer.registered",
           "actions": [{"type": "add_note", "params": {"body": body}}]})
}

async fn add(db: &Database, workflow: Value) {
    let schema = workflow_engine::storage::statuses::field_schema(db).await.unwrap();
    let validated = workflow_engine::validate::Validator::new(&schema, Default::default())
        .workflow(&workflow)
        .unwrap();
    workflows::create(db, &validated.workflow, "seed").await.unwrap();
}

async fn serve(db: &Database) -> (String, actix_web::dev::ServerHandle) {
    let token = TokenConfig {
        name: "ci".into(),
        token: Some("t-ci".into()),
        token_sha256: None,
        scopes: vec![Scope::Read, Scope::Write],
    };
    let auth = Auth::new("", &[token], false).unwrap();
    let state = common::api_state(db);
    let server = actix_web::HttpServer::new(move || {
        let (state, auth) = (state.clone(), auth.clone());
        actix_web::App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, auth))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (url, handle)
}

/// The built binary with `args`, off the test's thread (the server answers meanwhile).
async fn binary(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_workflow-engine"))
            .args(&args)
            .env("WFE_API_TOKEN", "t-ci")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[actix_rt::test]
async fn export_edit_plan_apply_and_export_again() {
    let test = common::fresh().await;
    let db = &test.db;
    add(db, definition("greet", "hi")).await;
    add(db, definition("welcome", "welcome")).await;
    add(db, definition("old", "old")).await;
    let (url, server) = serve(db).await;
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let arg = |p: &Path| p.display().to_string();

    let out = binary(vec!["export".into(), arg(&first), "--url".into(), url.clone()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(names(&first), ["greet.json", "old.json", "welcome.json"]);
    let greet = read(&first, "greet.json");
    assert!(
        greet.starts_with("{\n  \"actions\": [\n") && greet.ends_with("}\n"),
        "{greet}"
    );
    for server_key in [
        "\"version\"",
        "created_at",
        "updated_at",
        "live_version",
        "draft_version",
    ] {
        assert!(!greet.contains(server_key), "{server_key} in {greet}");
    }
    let out = binary(vec!["export".into(), arg(&second), "--url".into(), url.clone()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in names(&first) {
        assert_eq!(read(&first, &name), read(&second, &name), "{name} is stable");
    }

    // The edit: one note's text; a new workflow (a copy of another's file); one file gone.
    let edited = greet.replace("\"body\": \"hi\"", "\"body\": \"hello\"");
    assert_ne!(edited, greet);
    std::fs::write(first.join("greet.json"), &edited).unwrap();
    let fresh = read(&first, "welcome.json").replace("\"welcome\"", "\"fresh\"");
    std::fs::write(first.join("fresh.json"), &fresh).unwrap();
    std::fs::remove_file(first.join("old.json")).unwrap();
    let rows_before = audit::page(db, None, None, 1000).await.unwrap().len();

    let out = binary(vec![
        "apply".into(),
        arg(&first),
        "--plan".into(),
        "--url".into(),
        url.clone(),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines.contains(&"create fresh"), "{printed}");
    assert!(lines.contains(&"update greet"), "{printed}");
    assert!(lines.contains(&"deactivate old (not in the folder)"), "{printed}");
    let changed: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("- ") || l.starts_with("+ "))
        .collect();
    assert_eq!(
        changed,
        ["-         \"body\": \"hi\"", "+         \"body\": \"hello\""],
        "{printed}"
    );
    assert!(
        printed.contains("1 to create, 1 to update, 1 to deactivate"),
        "{printed}"
    );
    assert_eq!(
        audit::page(db, None, None, 1000).await.unwrap().len(),
        rows_before,
        "--plan changed nothing"
    );
    assert!(workflows::get(db, "fresh").await.unwrap().is_none());

    let out = binary(vec!["apply".into(), arg(&first), "--url".into(), url.clone()]).await;
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let rows = audit::page(db, None, None, 1000).await.unwrap();
    let made: Vec<(&str, &str, &str)> = rows[rows_before..]
        .iter()
        .map(|r| (r.action.as_str(), r.subject_id.as_str(), r.actor.as_str()))
        .collect();
    assert_eq!(
        made,
        [
            ("workflow.create", "fresh", "ci"),
            ("workflow.update", "greet", "ci"),
            ("workflow.update", "old", "ci"),
        ]
    );
    let old = workflows::get(db, "old")
        .await
        .unwrap()
        .expect("deactivated, not deleted");
    assert!(!old.active);

    // Exported again: the same bytes as the folder, but for the workflow deactivated.
    let third = dir.path().join("third");
    let out = binary(vec!["export".into(), arg(&third), "--url".into(), url.clone()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(read(&third, "greet.json"), edited);
    assert_eq!(read(&third, "fresh.json"), fresh);
    assert_eq!(read(&third, "welcome.json"), read(&second, "welcome.json"));
    assert_eq!(
        read(&third, "old.json"),
        read(&second, "old.json").replace("\"active\": true", "\"active\": false")
    );
    // And applying it is a plan with nothing in it.
    let out = binary(vec![
        "apply".into(),
        arg(&third),
        "--plan".into(),
        "--url".into(),
        url.clone(),
    ])
    .await;
    assert!(
        text(&out.stdout).contains("0 to create, 0 to update, 0 to deactivate"),
        "{}",
        text(&out.stdout)
    );
    server.stop(true).await;
    test.finish().await;
}

#[actix_rt::test]
async fn a_folder_with_an_invalid_file_changes_nothing_and_names_file_and_pointer() {
    let test = common::fresh().await;
    let db = &test.db;
    add(db, definition("greet", "hi")).await;
    let (url, server) = serve(db).await;
    let dir = tempfile::tempdir().unwrap();
    let arg = dir.path().display().to_string();
    let out = binary(vec!["export".into(), arg.clone(), "--url".into(), url.clone()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Good changes (an edit, a new workflow that sorts, and would be created, first) beside
    // two bad files: an unknown action, and an id that is not the file's name.
    std::fs::write(dir.path().join("aaa.json"), definition("aaa", "new").to_string()).unwrap();
    let greet = read(dir.path(), "greet.json").replace("\"body\": \"hi\"", "\"body\": \"changed\"");
    std::fs::write(dir.path().join("greet.json"), greet).unwrap();
    let mut bad = definition("bad", "x");
    bad["actions"][0]["type"] = json!("no_such_action");
    std::fs::write(dir.path().join("bad.json"), bad.to_string()).unwrap();
    std::fs::write(dir.path().join("misnamed.json"), definition("other", "x").to_string()).unwrap();
    let before = audit::page(db, None, None, 1000).await.unwrap().len();

    let out = binary(vec!["apply".into(), arg.clone(), "--url".into(), url.clone()]).await;
    assert!(!out.status.success());
    let errors = text(&out.stderr);
    assert!(errors.contains("bad.json:/actions/0/type: "), "{errors}");
    assert!(
        errors.contains("misnamed.json:/id: expected the id \"misnamed\""),
        "{errors}"
    );
    assert!(errors.contains("nothing was changed"), "{errors}");
    assert_eq!(audit::page(db, None, None, 1000).await.unwrap().len(), before);
    let stored = workflows::get(db, "greet").await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert!(workflows::get(db, "bad").await.unwrap().is_none());
    assert!(workflows::get(db, "aaa").await.unwrap().is_none());
    server.stop(true).await;
    test.finish().await;
}
