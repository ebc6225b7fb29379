//! Issue 14 end to end, through the built binary: CRM data written through the HTTP API
//! alone (customers, teams, agents, statuses, webhook endpoints, SMS providers), the seed's
//! three use cases run from an empty database to done runs, a failed webhook run retried
//! once its endpoint is fixed, and the engine's own events (task.overdue,
//! customer.inactive_days) fed by the customer sync from events.
//!
//! As in tests/e2e.rs: the binary is a child process on a temporary SQLite file, pointed at
//! a mock Kafka cluster held by the test; waits poll with deadlines and assert no timing.

#[path = "common/mod.rs"]
mod common;
#[path = "common/process.rs"]
mod process;

use awc::http::Method;
use chrono::{Duration as Days, SecondsFormat, Utc};
use process::{eventually, Api, Broker, Engine, Listener, Scratch};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use std::time::Duration;
use workflow_engine::storage::seed::{SEED_WORKFLOWS, SEED_WORKFLOW_IDS};
use workflow_engine::storage::Database;

const READY: Duration = Duration::from_secs(45);
const SETTLE: Duration = Duration::from_secs(60);

/// The engine's database: a SQLite file in the scratch directory, or, when
/// WFE_TEST_DATABASE_URL is set, a fresh PostgreSQL database (dropped by `finish`).
struct TestStore {
    url: String,
    pg: Option<common::TestDb>,
}

impl TestStore {
    async fn new(scratch: &Scratch) -> Self {
        if std::env::var(common::PG_ENV).is_ok_and(|u| !u.is_empty()) {
            let pg = common::fresh().await;
            TestStore {
                url: pg.url.clone(),
                pg: Some(pg),
            }
        } else {
            TestStore {
                url: format!("sqlite://{}/e2e.db", scratch.path().display()),
                pg: None,
            }
        }
    }

    async fn finish(self) {
        if let Some(pg) = self.pg {
            pg.finish().await;
        }
    }
}

async fn engine(scratch: &Scratch, broker: &Broker, name: &str, extra: &[(&str, &str)]) -> (Engine, TestStore) {
    let store = TestStore::new(scratch).await;
    let mut env = process::base_env(scratch.path(), &broker.bootstrap_servers());
    env.push(("WFE__DATABASE__URL".to_owned(), store.url.clone()));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    (Engine::start(scratch.path(), name, &env).await, store)
}

/// The `details[*].path` of a 422.
fn paths(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|p| p["path"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn created(api: &Api, method: Method, path: &str, body: Value) -> Value {
    let (status, answer) = api.send_raw(method.clone(), path, body.to_string()).await;
    assert!(status == 201 || status == 200, "{method} {path}: {status} {answer}");
    answer
}

/// Every id of a paged list, page by page with `limit`.
async fn all_pages(api: &Api, path: &str, key: &str, limit: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let query = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
        let (status, page) = api.get(&format!("{path}?limit={limit}{query}")).await;
        assert_eq!(status, 200, "{page}");
        let items = page[key].as_array().unwrap_or_else(|| panic!("{key} in {page}"));
        assert!(items.len() <= limit, "{page}");
        ids.extend(items.iter().map(|i| i["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
    panic!("paging {path} does not end");
}

/// The CRM data API: validation with JSON pointers, references and cycles, 409 on a
/// referenced delete, paging, write-only secrets, one active SMS provider, statuses that
/// reach the schema and workflow validation without a restart, customers with custom
/// fields and statuses, and the NDJSON import with its caps.
#[actix_rt::test]
async fn crm_data_through_the_api() {
    let scratch = Scratch::new("crm-api");
    let broker = Broker::start();
    let (engine, store) = engine(&scratch, &broker, "crm-api", &[]).await;
    let api = engine.api();

    // A fresh database has the three status types and no statuses.
    let (status, types) = api.get("/api/v1/status-types").await;
    assert_eq!(status, 200, "{types}");
    let names: Vec<&str> = types["status_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sales", "kyc", "retention"]);
    // A workflow naming a status nobody created: a warning, as before.
    created(
        &api,
        Method::POST,
        "/api/v1/status-types/kyc/statuses",
        json!({"name": "pending"}),
    )
    .await;
    let rule = json!({"name": "w", "trigger_event": "customer.deposited",
        "conditions": {"match": "all", "rules": [{"field": "customer.kyc_status", "operator": "eq", "value": "approved"}]},
        "actions": [{"type": "add_note", "params": {"body": "x"}}]});
    let (status, v) = api.post("/api/v1/workflows/validate", &rule).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "{v}");
    created(
        &api,
        Method::POST,
        "/api/v1/status-types/kyc/statuses",
        json!({"name": "approved"}),
    )
    .await;
    let (status, v) = api.post("/api/v1/workflows/validate", &rule).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["warnings"], json!([]), "the new status is known at once: {v}");
    let (_, schema) = api.get("/api/v1/schema").await;
    assert!(
        schema.to_string().contains("\"approved\""),
        "the schema offers the new status"
    );
    let (status, dup) = api
        .post("/api/v1/status-types/kyc/statuses", &json!({"name": "approved"}))
        .await;
    assert_eq!(status, 409, "{dup}");
    let (status, missing) = api
        .post("/api/v1/status-types/nope/statuses", &json!({"name": "x"}))
        .await;
    assert_eq!(status, 404, "{missing}");
    let (status, bad) = api.post("/api/v1/status-types", &json!({"name": "Has Space"})).await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(paths(&bad), ["/name"]);
    created(&api, Method::POST, "/api/v1/status-types", json!({"name": "vip_level"})).await;
    let (_, schema) = api.get("/api/v1/schema").await;
    assert!(
        schema.to_string().contains("customer.vip_level_status"),
        "a new type's fields at once"
    );
    let (status, listed) = api.get("/api/v1/status-types/kyc/statuses").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["statuses"][1]["name"], "approved", "{listed}");

    // Teams: a hierarchy without cycles, 409 while referenced, paging.
    created(
        &api,
        Method::PUT,
        "/api/v1/teams/1",
        json!({"name": "Sales", "desk": "sales"}),
    )
    .await;
    created(
        &api,
        Method::PUT,
        "/api/v1/teams/2",
        json!({"name": "Sales LatAm", "parent_id": 1}),
    )
    .await;
    let next = created(
        &api,
        Method::POST,
        "/api/v1/teams",
        json!({"name": "Retention", "desk": "retention"}),
    )
    .await;
    assert_eq!(next["id"], 3, "{next}");
    let (status, cycle) = api
        .put("/api/v1/teams/1", &json!({"name": "Sales", "parent_id": 2}))
        .await;
    assert_eq!(status, 422, "a cycle: {cycle}");
    assert_eq!(paths(&cycle), ["/parent_id"]);
    let (status, unknown) = api.put("/api/v1/teams/9", &json!({"name": "X", "parent_id": 99})).await;
    assert_eq!(status, 422, "{unknown}");
    assert_eq!(paths(&unknown), ["/parent_id"]);
    let (status, taken) = api.post("/api/v1/teams", &json!({"id": 1, "name": "Again"})).await;
    assert_eq!(status, 409, "{taken}");
    let (status, bad) = api.put("/api/v1/teams/5", &json!({"name": "", "colour": "red"})).await;
    assert_eq!(status, 422, "{bad}");
    let mut bad_paths = paths(&bad);
    bad_paths.sort();
    assert_eq!(bad_paths, ["/colour", "/name"]);
    assert_eq!(all_pages(&api, "/api/v1/teams", "teams", 2).await, [1, 2, 3]);

    // Agents: the team must exist.
    created(
        &api,
        Method::PUT,
        "/api/v1/agents/1",
        json!({"name": "Sofia", "email": "sofia@x.example", "team_id": 2}),
    )
    .await;
    let (status, bad) = api
        .put(
            "/api/v1/agents/2",
            &json!({"name": "Pedro", "team_id": 77, "manager_id": 55}),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(paths(&bad), ["/team_id", "/manager_id"]);
    let (status, agent) = api.get("/api/v1/agents/1").await;
    assert_eq!(
        (status, agent["team_id"].clone(), agent["active"].clone()),
        (200, json!(2), json!(true)),
        "{agent}"
    );
    let (status, refused) = api.delete("/api/v1/teams/2").await;
    assert_eq!(status, 409, "a team with agents: {refused}");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("1 agent"),
        "{refused}"
    );
    let (status, refused) = api.delete("/api/v1/teams/1").await;
    assert_eq!(status, 409, "a team with a sub-team: {refused}");
    let (status, _) = api.delete("/api/v1/agents/1").await;
    assert_eq!(status, 204);
    let (status, _) = api.delete("/api/v1/teams/2").await;
    assert_eq!(status, 204);
    let (status, _) = api.get("/api/v1/teams/2").await;
    assert_eq!(status, 404);

    // Webhook endpoints: the secret is never returned; internal URLs are refused.
    let endpoint = created(
        &api,
        Method::POST,
        "/api/v1/webhook-endpoints",
        json!({"name": "slack", "url": "https://hooks.example.com/x", "secret": "s3cret-value"}),
    )
    .await;
    assert_eq!(endpoint["has_secret"], true, "{endpoint}");
    assert!(!endpoint.to_string().contains("s3cret-value"), "{endpoint}");
    let id = endpoint["id"].as_i64().unwrap();
    let (_, listed) = api.get("/api/v1/webhook-endpoints").await;
    assert!(!listed.to_string().contains("s3cret-value"), "{listed}");
    let (status, kept) = api
        .put(
            &format!("/api/v1/webhook-endpoints/{id}"),
            &json!({"name": "slack", "url": "https://hooks.example.com/y"}),
        )
        .await;
    assert_eq!(
        (status, kept["has_secret"].clone()),
        (200, json!(true)),
        "no secret given keeps it: {kept}"
    );
    let (status, internal) = api
        .post(
            "/api/v1/webhook-endpoints",
            &json!({"name": "lan", "url": "http://10.1.2.3/hook"}),
        )
        .await;
    assert_eq!(status, 422, "{internal}");
    assert_eq!(paths(&internal), ["/url"]);
    let (status, dup) = api
        .post(
            "/api/v1/webhook-endpoints",
            &json!({"name": "slack", "url": "https://a.example.com"}),
        )
        .await;
    assert_eq!(status, 409, "{dup}");

    // SMS providers: activating one deactivates the other.
    let first = created(
        &api,
        Method::POST,
        "/api/v1/sms-providers",
        json!({"name": "one", "url": "https://sms1.example.com", "active": true}),
    )
    .await;
    let second = created(
        &api,
        Method::POST,
        "/api/v1/sms-providers",
        json!({"name": "two", "url": "https://sms2.example.com", "active": true}),
    )
    .await;
    let active = |list: &Value| -> Vec<String> {
        list["sms_providers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["active"] == true)
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, list) = api.get("/api/v1/sms-providers").await;
    assert_eq!(active(&list), ["two"], "{list}");
    let first_id = first["id"].as_i64().unwrap();
    created(
        &api,
        Method::PUT,
        &format!("/api/v1/sms-providers/{first_id}"),
        json!({"name": "one", "url": "https://sms1.example.com", "active": true}),
    )
    .await;
    let (_, list) = api.get("/api/v1/sms-providers").await;
    assert_eq!(active(&list), ["one"], "{list}");
    assert!(second["id"].as_i64().is_some());

    // Customers: upsert by the CRM's id, custom fields and statuses by name.
    let (status, c) = api
        .put(
            "/api/v1/customers/42",
            &json!({"first_name": "Ana", "country": "BR",
        "timezone": "America/Sao_Paulo", "sms_opt_out": true, "custom": {"vip_tier": "gold", "score": 7},
        "statuses": {"kyc": "approved"}}),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["statuses"], json!({"kyc": "approved"}), "{c}");
    assert_eq!(c["timezone"], "America/Sao_Paulo");
    let (status, c) = api.put("/api/v1/customers/42", &json!({"last_name": "Souza"})).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        (
            c["first_name"].clone(),
            c["last_name"].clone(),
            c["sms_opt_out"].clone()
        ),
        (json!("Ana"), json!("Souza"), json!(true)),
        "{c}"
    );
    let (_, schema) = api.get("/api/v1/schema").await;
    assert!(
        schema.to_string().contains("customer.score"),
        "a new custom field is in the schema at once"
    );
    let (status, bad) = api
        .put(
            "/api/v1/customers/42",
            &json!({"timezone": "Mars/Olympus", "statuses": {"kyc": "nope", "colour": "red"}}),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(paths(&bad), ["/timezone"]);
    let (status, bad) = api
        .put(
            "/api/v1/customers/42",
            &json!({"statuses": {"kyc": "nope", "colour": "red"}}),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(paths(&bad), ["/statuses/colour", "/statuses/kyc"]);
    // The caps on what one customer may carry, each named by its pointer.
    let too_many_fields: serde_json::Map<String, Value> = (0..=100).map(|i| (format!("f{i}"), json!(i))).collect();
    let too_many_statuses: serde_json::Map<String, Value> = (0..=50).map(|i| (format!("t{i}"), json!("x"))).collect();
    for (body, path) in [
        (json!({"custom": too_many_fields}), "/custom"),
        (json!({"custom": {"Not-A-Name": 1}}), "/custom/Not-A-Name"),
        (json!({"statuses": too_many_statuses}), "/statuses"),
    ] {
        let (status, bad) = api.put("/api/v1/customers/42", &body).await;
        assert_eq!(status, 422, "{bad}");
        assert_eq!(paths(&bad), [path], "{bad}");
    }
    let (_, kept) = api.get("/api/v1/customers/42").await;
    assert_eq!(
        kept["custom"]["vip_tier"], "gold",
        "a refused write changes nothing: {kept}"
    );
    let (status, _) = api.delete("/api/v1/customers/42").await;
    assert_eq!(status, 204);
    let (status, _) = api.get("/api/v1/customers/42").await;
    assert_eq!(status, 404);

    // Import: the good lines load, the bad ones are reported by number.
    let ndjson = [
        json!({"id": 100, "first_name": "A"}).to_string(),
        "{not json".to_owned(),
        String::new(),
        json!({"id": 101, "statuses": {"kyc": "missing"}}).to_string(),
        json!({"first_name": "no id"}).to_string(),
        json!({"id": 102, "first_name": "C", "statuses": {"kyc": "approved"}}).to_string(),
    ]
    .join("\n");
    let (status, report) = api.send_raw(Method::POST, "/api/v1/customers/import", ndjson).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["upserted"], 2, "{report}");
    let lines: Vec<i64> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [2, 4, 5], "{report}");
    let (status, c) = api.get("/api/v1/customers/102").await;
    assert_eq!((status, c["statuses"]["kyc"].clone()), (200, json!("approved")), "{c}");
    // Caps: too many lines, too many bytes; nothing of either is loaded.
    let many: String = (0..10_001).map(|i| format!("{{\"id\": {}}}\n", 10_000 + i)).collect();
    let (status, refused) = api.send_raw(Method::POST, "/api/v1/customers/import", many).await;
    assert_eq!(status, 413, "{refused}");
    assert_eq!(oversized_import(&engine), 413, "a body over 16 MiB");
    let (status, _) = api.get("/api/v1/customers/10000").await;
    assert_eq!(status, 404, "a refused import loads nothing");

    // Targets checked at save: unknown ones are warnings with the param's pointer.
    let targets = |team: i64, agent: i64, status: &str, endpoint: &str| {
        json!({"name": "targets", "trigger_event": "customer.deposited", "actions": [
            {"type": "assign_to_team", "params": {"team_id": team}},
            {"type": "assign_to_agent", "params": {"agent_id": agent}},
            {"type": "set_status", "params": {"type": "kyc", "status": status}},
            {"type": "webhook", "params": {"endpoint": endpoint}},
            {"type": "send_sms", "params": {"text": "hi"}}]})
    };
    let (status, v) = api
        .post("/api/v1/workflows/validate", &targets(999, 998, "nope", "missing"))
        .await;
    assert_eq!(status, 200, "{v}");
    let warned: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        warned,
        [
            "/actions/0/params/team_id",
            "/actions/1/params/agent_id",
            "/actions/2/params/status",
            "/actions/3/params/endpoint"
        ],
        "{v}"
    );
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["severity"] == "warning"),
        "{v}"
    );
    created(
        &api,
        Method::PUT,
        "/api/v1/agents/3",
        json!({"name": "Rita", "team_id": 3}),
    )
    .await;
    let (status, saved) = api.post("/api/v1/workflows", &targets(3, 3, "approved", "slack")).await;
    assert_eq!(status, 201, "{saved}");
    assert_eq!(saved["warnings"], json!([]), "{saved}");
    drop(engine);
    store.finish().await;
}

/// Announces a 17 MiB import and sends its first bytes only: the engine answers from the
/// announced length, before reading (and without holding) the body. Raw HTTP, since a
/// client that insists on sending the whole body first would see a reset, not the answer.
fn oversized_import(engine: &Engine) -> u16 {
    use std::io::{Read, Write};
    let base = engine.api_base();
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /api/v1/customers/import HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{\"id\": 1",
        17 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"))
}

/// Rows the internal actions write, read from the engine's database.
async fn counts(db: &Database) -> (i64, i64, i64) {
    let mut out = [0i64; 3];
    for (i, table) in ["notes", "tasks", "customer_statuses"].iter().enumerate() {
        let row = db
            .connection()
            .query_one(sea_orm::Statement::from_string(
                db.connection().get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        out[i] = row.try_get::<i64>("", "n").unwrap();
    }
    (out[0], out[1], out[2])
}

/// The proof: from an empty database, through the HTTP API alone, the seed's
/// teams, agents, statuses, webhook endpoint, SMS provider, customers and workflows; the
/// seed's events; every run of the three use cases done. The Slack endpoint starts out
/// broken: the high-value run fails at its webhook, the endpoint is fixed with a PUT, the
/// run is retried and ends done, and no internal step ran twice (notes, tasks and status
/// rows counted before and after).
#[actix_rt::test]
async fn seed_use_cases_from_an_empty_database_through_the_api() {
    let scratch = Scratch::new("crm-seed");
    let broker = Broker::start();
    let listener = Listener::start().await;
    let email = format!("{}/email", listener.base);
    let (engine, store) = engine(
        &scratch,
        &broker,
        "crm-seed",
        &[
            ("WFE__DELIVERY__EMAIL_URL", email.as_str()),
            ("WFE__DELIVERY__MAX_ATTEMPTS", "2"),
        ],
    )
    .await;
    let api = engine.api();

    for (type_name, names) in [
        ("sales", &["new", "contacted", "interested", "vip"][..]),
        ("kyc", &["pending", "approved", "rejected"]),
        ("retention", &["active", "churning", "dormant"]),
    ] {
        for name in names {
            created(
                &api,
                Method::POST,
                &format!("/api/v1/status-types/{type_name}/statuses"),
                json!({"name": name}),
            )
            .await;
        }
    }
    for (id, name, parent, desk) in [
        (1, "Sales", None, "sales"),
        (2, "Sales LatAm", Some(1), "sales"),
        (3, "Retention", None, "retention"),
        (4, "Retention VIP", Some(3), "retention"),
    ] {
        created(
            &api,
            Method::PUT,
            &format!("/api/v1/teams/{id}"),
            json!({"name": name, "parent_id": parent, "desk": desk}),
        )
        .await;
    }
    for (id, name, team, manager) in [
        (1, "Sofia Sales", 1, 1),
        (2, "Pedro Sales", 1, 1),
        (3, "Lucia LatAm", 2, 1),
        (4, "Rita Retention", 3, 4),
        (5, "Omar Retention", 3, 4),
        (6, "Vera VIP", 4, 4),
    ] {
        created(
            &api,
            Method::PUT,
            &format!("/api/v1/agents/{id}"),
            json!({"name": name, "team_id": team, "manager_id": manager}),
        )
        .await;
    }
    // Broken at first: nothing listens on port 9.
    let endpoint = created(
        &api,
        Method::POST,
        "/api/v1/webhook-endpoints",
        json!({"name": "slack_notification", "url": "http://127.0.0.1:9/slack"}),
    )
    .await;
    created(
        &api,
        Method::POST,
        "/api/v1/sms-providers",
        json!({"name": "demo-sms", "url": format!("{}/sms", listener.base), "active": true}),
    )
    .await;
    let customers = [
        json!({"id": 1, "first_name": "Ana", "last_name": "Souza", "email": "ana@example.com", "phone": "+15550000001", "country": "BR", "language": "pt", "balance": 2500.0, "agent_id": 1, "team_id": 1,
               "custom": {"source": "google", "vip_tier": "silver"}, "statuses": {"sales": "interested", "kyc": "approved", "retention": "churning"}}),
        json!({"id": 2, "first_name": "Bruno", "last_name": "Lima", "email": "bruno@example.com", "phone": "+15550000002", "country": "BR", "language": "pt", "agent_id": 2, "team_id": 1,
               "custom": {"source": "affiliate"}, "statuses": {"sales": "new", "kyc": "pending"}}),
    ];
    for c in &customers {
        created(&api, Method::PUT, &format!("/api/v1/customers/{}", c["id"]), c.clone()).await;
    }
    let definitions: Vec<Value> = serde_json::from_str(SEED_WORKFLOWS).unwrap();
    for (mut definition, id) in definitions.into_iter().zip(SEED_WORKFLOW_IDS) {
        definition["id"] = json!(id);
        let (status, saved) = api.post("/api/v1/workflows", &definition).await;
        assert_eq!(status, 201, "{saved}");
        // Every target the seed names exists; the only warnings left are the save-time
        // analysis's (the onboarding and high-value workflows can both match a deposit and
        // assign it differently, which the seed intends: the later one wins).
        let unexpected: Vec<&Value> = saved["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|w| !w["message"].as_str().unwrap_or("").starts_with("contradicts workflow"))
            .collect();
        assert!(unexpected.is_empty(), "every target the seed names exists: {saved}");
    }

    // The dry run renders each action and names the round-robin pick, moving nothing.
    let deposit = json!({"id": "preview", "type": "customer.deposited", "customer_id": 1, "data": {"amount": 12000, "currency": "USD"}});
    let mut picks = Vec::new();
    for _ in 0..2 {
        let (status, dry) = api.post("/api/v1/dry-run", &json!({"event": deposit})).await;
        assert_eq!(status, 200, "{dry}");
        let plan = dry["plan"].as_array().unwrap();
        let alert = plan
            .iter()
            .find(|p| p["workflow_id"] == "seed-high-value")
            .unwrap_or_else(|| panic!("{dry:#}"));
        let previews = alert["previews"].as_array().unwrap();
        assert_eq!(previews.len(), 3, "{alert:#}");
        assert_eq!(previews[0]["type"], "webhook");
        assert_eq!(
            previews[0]["rendered"]["body"],
            json!({"text": "High-value deposit: 12000 USD from customer 1"}).to_string(),
            "{alert:#}"
        );
        assert_eq!(
            previews[1]["agent"],
            json!({"id": 4, "name": "Rita Retention"}),
            "{alert:#}"
        );
        assert!(previews.iter().all(|p| p.get("error").is_none()), "{alert:#}");
        let onboarding = plan.iter().find(|p| p["workflow_id"] == "seed-onboarding").unwrap();
        assert_eq!(
            onboarding["previews"][1]["rendered"]["subject"], "Bem-vindo, Ana!",
            "{onboarding:#}"
        );
        picks.push(previews[1]["agent"].clone());
    }
    assert_eq!(picks[0], picks[1], "the dry run does not move the cursor");

    engine.ready(READY).await;
    for event in [
        json!({"id": "seed-1", "type": "customer.retention_changed", "customer_id": 1, "data": {"status_type": "retention", "old_status": "active", "new_status": "churning"}}),
        json!({"id": "seed-2", "type": "customer.deposited", "customer_id": 2, "data": {"amount": 1500, "currency": "USD", "transaction": {"type": "deposit"}}}),
        json!({"id": "seed-3", "type": "customer.deposited", "customer_id": 1, "data": {"amount": 12000, "currency": "USD", "transaction": {"type": "deposit"}}}),
    ] {
        let (status, body) = api.post("/api/v1/events", &event).await;
        assert_eq!(status, 202, "{body}");
    }
    let failed = eventually("the high-value run to fail at its webhook", SETTLE, || async {
        let runs = api.runs_of("seed-high-value").await;
        runs.into_iter().find(|r| r["status"] == "failed")
    })
    .await;
    assert_eq!(failed["steps"][0]["status"], "failed", "{failed:#}");
    process::finished_runs(&api, "seed-churning", 1, SETTLE).await;
    process::finished_runs(&api, "seed-onboarding", 2, SETTLE).await;
    process::finished_runs(&api, "seed-example", 1, SETTLE).await;

    let db = Database::connect(&store.url).await.unwrap();
    let before = counts(&db).await;
    let id = endpoint["id"].as_i64().unwrap();
    created(
        &api,
        Method::PUT,
        &format!("/api/v1/webhook-endpoints/{id}"),
        json!({"name": "slack_notification", "url": format!("{}/slack", listener.base)}),
    )
    .await;
    let run_id = failed["id"].as_i64().unwrap();
    let (status, retried) = api.post(&format!("/api/v1/runs/{run_id}/retry"), &json!({})).await;
    assert_eq!(status, 200, "{retried}");
    let done = process::finished_runs(&api, "seed-high-value", 1, SETTLE).await;
    let steps: Vec<&str> = done[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["done", "done", "done"], "{:#}", done[0]);
    let after = counts(&db).await;
    // The retried run ran only its last two steps: the hand-over (which notes the
    // reassignment) and set_status (which changes Ana's sales row in place).
    assert_eq!(
        after,
        (before.0 + 1, before.1, before.2),
        "no internal step ran twice (notes, tasks, status rows)"
    );
    let (_, ana) = api.get("/api/v1/customers/1").await;
    assert_eq!(
        ana["statuses"]["sales"], "vip",
        "the retried run went on past its webhook: {ana}"
    );
    let received = listener.received();
    let slack: Vec<_> = received.iter().filter(|r| r.path == "/slack").collect();
    assert_eq!(slack.len(), 1, "{received:#?}");
    assert_eq!(
        slack[0].idempotency_key.as_deref(),
        Some(format!("run-{run_id}-step-0").as_str())
    );
    assert!(
        received.iter().any(|r| r.path == "/sms"),
        "the churning rescue's SMS: {received:#?}"
    );
    assert!(
        received.iter().any(|r| r.path == "/email"),
        "the onboarding email: {received:#?}"
    );
    db.close().await.unwrap();
    drop(engine);
    store.finish().await;
}

fn at(days_ago: i64) -> String {
    (Utc::now() - Days::days(days_ago)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Sync from events and the engine's own events, with no other writer: customer.registered
/// creates its customer before the event is planned (its workflow creates a task for it);
/// the task, due at once, comes back as task.overdue; an old deposit moves
/// last_activity_at (an older one after it does not move it back), and
/// customer.inactive_days follows for the 30-day threshold without moving it either.
/// Time is not slept through: the events carry past times.
#[actix_rt::test]
async fn events_create_customers_and_the_engine_emits_overdue_and_inactivity() {
    let scratch = Scratch::new("crm-sync");
    let broker = Broker::start();
    let (engine, store) = engine(&scratch, &broker, "crm-sync", &[]).await;
    let api = engine.api();
    for (id, trigger, conditions, action) in [
        (
            "welcome",
            "customer.registered",
            json!(null),
            json!({"type": "create_task", "params": {"title": "Call {{customer.first_name}}", "due_in": {"minutes": 0}}}),
        ),
        (
            "overdue",
            "task.overdue",
            json!(null),
            json!({"type": "add_note", "params": {"body": "overdue: {{task.title}}"}}),
        ),
        (
            "inactive",
            "customer.inactive_days",
            json!({"match": "all", "rules": [{"field": "event.days", "operator": "eq", "value": 30}]}),
            json!({"type": "add_note", "params": {"body": "inactive for {{event.days}} days"}}),
        ),
    ] {
        let mut workflow = json!({"id": id, "name": id, "trigger_event": trigger, "actions": [action]});
        if !conditions.is_null() {
            workflow["conditions"] = conditions;
        }
        let (status, body) = api.post("/api/v1/workflows", &workflow).await;
        assert_eq!(status, 201, "{body}");
    }
    engine.ready(READY).await;
    let (status, _) = api.get("/api/v1/customers/7001").await;
    assert_eq!(status, 404, "no customer before the event");
    let registered = json!({"id": "reg-7001", "type": "customer.registered", "customer_id": 7001,
        "data": {"first_name": "Nina", "country": "PT", "timezone": "Europe/Lisbon", "email": "nina@example.com"}});
    broker.produce(&registered).await;
    broker.produce(&registered).await; // a redelivery changes nothing
    let welcome = process::finished_runs(&api, "welcome", 1, SETTLE).await;
    assert_eq!(welcome[0]["customer_id"], 7001);
    let (status, nina) = api.get("/api/v1/customers/7001").await;
    assert_eq!(status, 200, "{nina}");
    assert_eq!(
        (nina["first_name"].clone(), nina["timezone"].clone()),
        (json!("Nina"), json!("Europe/Lisbon")),
        "{nina}"
    );
    let overdue = process::finished_runs(&api, "overdue", 1, SETTLE).await;
    assert_eq!(
        (overdue[0]["customer_id"].clone(), overdue[0]["trigger"].clone()),
        (json!(7001), json!("task.overdue")),
        "{overdue:#?}"
    );

    created(
        &api,
        Method::PUT,
        "/api/v1/customers/7002",
        json!({"first_name": "Otto"}),
    )
    .await;
    let last = at(31);
    for (id, when) in [("dep-old", last.clone()), ("dep-older", at(40))] {
        broker.produce(&json!({"id": id, "type": "customer.deposited", "customer_id": 7002, "occurred_at": when, "data": {"amount": 5}})).await;
    }
    let inactive = process::finished_runs(&api, "inactive", 1, SETTLE).await;
    assert_eq!(inactive[0]["customer_id"], 7002, "{inactive:#?}");
    let (_, otto) = api.get("/api/v1/customers/7002").await;
    let seen = chrono::DateTime::parse_from_rfc3339(otto["last_activity_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        seen,
        chrono::DateTime::parse_from_rfc3339(&last).unwrap(),
        "forward only, and not moved by the engine's own events: {otto}"
    );
    // Every threshold fired once for this period, so nothing more comes for 7002.
    let (_, runs) = api.get("/api/v1/runs?workflow_id=inactive").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    drop(engine);
    store.finish().await;
}

/// README's "A five-minute tour", as written there: a workflow, a dry run, the customer
/// through the API, an event through the API, and its run done.
#[actix_rt::test]
async fn the_readme_tour_ends_in_a_done_run() {
    let scratch = Scratch::new("crm-tour");
    let broker = Broker::start();
    let (engine, store) = engine(&scratch, &broker, "crm-tour", &[]).await;
    let api = engine.api();
    let (status, workflow) = api
        .post(
            "/api/v1/workflows",
            &json!({
            "id": "big-deposit-alert", "name": "Big deposit alert", "trigger_event": "customer.deposited",
            "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": 1000}]},
            "actions": [{"type": "add_note", "params": {"body": "Deposit of {{event.amount}} {{event.currency}}"}}],
            "priority": 10}),
        )
        .await;
    assert_eq!(status, 201, "{workflow}");
    let (status, dry) = api
        .post("/api/v1/dry-run", &json!({
            "event": {"id": "t1", "type": "customer.deposited", "customer_id": 1, "data": {"amount": 1500, "currency": "USD"}},
            "customer": {"id": 1, "country": "BR"}}))
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        dry["plan"][0]["previews"][0]["rendered"]["body"], "Deposit of 1500 USD",
        "{dry:#}"
    );
    let (status, customer) = api
        .put(
            "/api/v1/customers/1",
            &json!({"first_name": "Ana", "country": "BR", "timezone": "America/Sao_Paulo"}),
        )
        .await;
    assert_eq!(status, 201, "{customer}");
    engine.ready(READY).await;
    let (status, published) = api
        .post("/api/v1/events", &json!({"id": "t2", "type": "customer.deposited", "customer_id": 1, "data": {"amount": 1500, "currency": "USD"}}))
        .await;
    assert_eq!(status, 202, "{published}");
    let runs = process::finished_runs(&api, workflow["id"].as_str().unwrap(), 1, SETTLE).await;
    assert_eq!(runs[0]["customer_id"], 1, "{runs:#?}");
    let (status, stats) = api.get("/api/v1/workflows/big-deposit-alert/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!((&stats["entered"], &stats["done"]), (&json!(1), &json!(1)), "{stats:#}");
    drop(engine);
    store.finish().await;
}
