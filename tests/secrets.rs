//! Issue 22, finding 5: integration credentials are write-only. The engine in process (an
//! embedded broker, a local listener standing in for the SMS provider) with the API on it,
//! read and write tokens as an operator gives them: what a read token sees of a provider
//! or an endpoint, and of a failed send's step, holds no credential; a provider's `auth`
//! still reaches the provider on the wire.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;

use actix_web::dev::Service;
use actix_web::http::Method;
use actix_web::test as atest;
use engine::{all_ended, runs_of_event, Engine, PATIENCE};
use sea_orm::EntityTrait;
use serde_json::{json, Value};
use workflow_engine::api::{self, AppState, Auth};
use workflow_engine::outbound::signing::verify;
use workflow_engine::sealing::SealingKey;
use workflow_engine::settings::{Scope, TokenConfig};
use workflow_engine::storage::entities::{sms_providers, webhook_endpoints};
use workflow_engine::storage::secrets;

fn token(name: &str, scopes: &[Scope]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        token: Some(format!("t-{name}")),
        token_sha256: None,
        scopes: scopes.to_vec(),
    }
}

fn sms_workflow(id: &str, trigger: &str) -> Value {
    json!({"id": id, "name": format!("sms {id}"), "trigger_event": trigger,
           "actions": [{"type": "send_sms", "params": {"text": "hello"}}]})
}

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Every credential the test writes; none may appear in what is read back. The URL's
/// password `pass` is looked for with what surrounds it, as `password_set` is shown.
const SECRETS: [&str; 7] = [
    "user:",
    "pass@",
    ":pass",
    "SECRET",
    "hunter2",
    "tok-abc123",
    "key-xyz789",
];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
    }
}

#[actix_rt::test]
async fn provider_credentials_are_write_only_and_redacted_everywhere() {
    let mut engine = Engine::new(|s| {
        s.delivery.max_attempts = 2;
        s.security.secret_key = KEY.to_owned();
    })
    .await;
    engine.add_customers([9001, 9002, 9003]).await;
    engine.add_workflow(sms_workflow("sms-fails", "test.fails")).await;
    engine.add_workflow(sms_workflow("sms-basic", "test.basic")).await;
    engine.add_workflow(sms_workflow("sms-header", "test.header")).await;
    engine
        .add_workflow(
            json!({"id": "hook-signed", "name": "signed hook", "trigger_event": "test.hook",
                             "actions": [{"type": "webhook", "params": {"endpoint": "signed"}}]}),
        )
        .await;
    // Secrets sealed at rest, as with `security.secret_key` set.
    engine.test.db = engine.test.db.clone().with_sealing_key(SealingKey::parse(KEY).unwrap());
    engine.start().await;
    let db = engine.db().clone();

    let tokens = [
        token("reader", &[Scope::Read]),
        token("author", &[Scope::Read, Scope::Write]),
    ];
    let auth = Auth::new("", &tokens, false).unwrap();
    let state = AppState {
        db: db.clone(),
        limits: workflow_engine::conditions::Limits::default(),
        producer: engine.producer.clone(),
        topic: engine.topic().to_owned(),
        brokers: engine.brokers.clone(),
        embedded: false,
        node_id: "test".into(),
        matcher: None,
        readiness: Default::default(),
        webhook_allowlist: vec!["127.0.0.1".into()],
        heavy: workflow_engine::api::Heavy::new(&Default::default(), workflow_engine::clock::system()),
        changes: Default::default(),
    };
    let app =
        atest::init_service(actix_web::App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, auth)))
            .await;
    let call = |method: Method, path: String, token: &'static str, body: Option<Value>| {
        let mut req = atest::TestRequest::default()
            .method(method)
            .uri(&path)
            .insert_header(("Authorization", format!("Bearer t-{token}")));
        if let Some(body) = body {
            req = req.set_json(body);
        }
        let response = app.call(req.to_request());
        async move {
            let response = response.await.unwrap();
            let status = response.status().as_u16();
            let bytes = atest::read_body(response).await;
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };

    // An unreachable provider with credentials in its URL (the old way), active.
    let legacy = "http://user:pass@127.0.0.1:9/send?api_key=SECRET&to=x";
    let (status, body) = call(
        Method::POST,
        "/api/v1/sms-providers".into(),
        "author",
        Some(json!({"name": "legacy", "url": legacy, "active": true})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_no_secret("the created provider", &body);
    let created: Value = serde_json::from_str(&body).unwrap();
    assert!(created["url"].as_str().unwrap().starts_with("http://"), "{body}");
    assert!(created["url"].as_str().unwrap().contains("127.0.0.1:9/send"), "{body}");

    // A failed send's step error (and the run's) names the URL redacted.
    engine
        .publish(&json!({"id": "fails-1", "type": "test.fails", "customer_id": 9001, "data": {}}))
        .await;
    let run = eventually!("the failing sms run", PATIENCE, {
        let runs = runs_of_event(&db, "fails-1").await;
        (runs.len() == 1 && all_ended(&runs)).then(|| runs[0].clone())
    });
    let (status, body) = call(Method::GET, format!("/api/v1/runs/{}", run.run.id), "reader", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("127.0.0.1:9"), "the error still names the target: {body}");
    assert_no_secret("the failed run", &body);

    // Sent back as a read showed it (redacted URL), the provider keeps its working URL.
    let legacy_id = created["id"].as_i64().unwrap();
    let (status, body) = call(
        Method::PUT,
        format!("/api/v1/sms-providers/{legacy_id}"),
        "author",
        Some(json!({"name": "legacy", "url": created["url"], "active": false})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let row = sms_providers::Entity::find_by_id(legacy_id)
        .one(db.connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.url, legacy);

    // Providers with write-only auth: basic (active), then an API-key header.
    let (status, body) = call(
        Method::POST,
        "/api/v1/sms-providers".into(),
        "author",
        Some(
            json!({"name": "basic", "url": engine.listener.url("/sms-basic"), "active": true,
                    "auth": {"type": "basic", "username": "acme", "password": "hunter2"}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_no_secret("the created provider", &body);
    let basic: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(basic["auth"]["type"], "basic", "{body}");
    assert_eq!(basic["auth"]["username"], "acme", "{body}");
    assert_eq!(basic["auth"]["password_set"], true, "{body}");

    engine
        .publish(&json!({"id": "basic-1", "type": "test.basic", "customer_id": 9002, "data": {}}))
        .await;
    let got = eventually!("the basic-auth sms", PATIENCE, {
        let got = engine.listener.received("/sms-basic");
        (!got.is_empty()).then_some(got)
    });
    // base64("acme:hunter2")
    assert_eq!(got[0].authorization.as_deref(), Some("Basic YWNtZTpodW50ZXIy"));

    // PUT without `auth` keeps it; a new one with a header key replaces it.
    let basic_id = basic["id"].as_i64().unwrap();
    let (status, body) = call(
        Method::PUT,
        format!("/api/v1/sms-providers/{basic_id}"),
        "author",
        Some(
            json!({"name": "basic", "url": engine.listener.url("/sms-header"), "active": true,
                    "auth": {"type": "header", "name": "x-api-key", "value": "key-xyz789"}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_no_secret("the updated provider", &body);
    engine
        .publish(&json!({"id": "header-1", "type": "test.header", "customer_id": 9003, "data": {}}))
        .await;
    let got = eventually!("the api-key sms", PATIENCE, {
        let got = engine.listener.received("/sms-header");
        (!got.is_empty()).then_some(got)
    });
    assert_eq!(got[0].api_key.as_deref(), Some("key-xyz789"));
    assert_eq!(got[0].authorization, None);

    // A bearer token on a webhook endpoint, and an endpoint URL with credentials.
    let (status, body) = call(
        Method::POST,
        "/api/v1/webhook-endpoints".into(),
        "author",
        Some(
            json!({"name": "hook", "url": "https://u:pass@hooks.example/in?token=SECRET",
                    "auth": {"type": "bearer", "token": "tok-abc123"}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_no_secret("the created endpoint", &body);

    // At rest the credentials are sealed.
    for row in sms_providers::Entity::find().all(db.connection()).await.unwrap() {
        assert_no_secret("a provider row's auth", row.auth.as_deref().unwrap_or(""));
    }
    for row in webhook_endpoints::Entity::find().all(db.connection()).await.unwrap() {
        let auth = row.auth.unwrap();
        assert!(auth.starts_with("sealed:v1:") && !auth.contains("tok-abc123"), "{auth}");
    }

    // An endpoint whose signing secret and bearer token are both sealed: the request is
    // signed with the secret and carries the token.
    let (status, body) = call(
        Method::POST,
        "/api/v1/webhook-endpoints".into(),
        "author",
        Some(
            json!({"name": "signed", "url": engine.listener.url("/signed"), "secret": "whsec_c2VjcmV0LWtleQ==",
                    "auth": {"type": "bearer", "token": "tok-abc123"}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let row = webhook_endpoints::Entity::find().all(db.connection()).await.unwrap();
    let signed = row.iter().find(|e| e.name == "signed").unwrap();
    assert!(
        signed.secret.as_deref().unwrap().starts_with("sealed:v1:"),
        "{signed:?}"
    );
    engine
        .publish(&json!({"id": "hook-1", "type": "test.hook", "customer_id": 9001, "data": {}}))
        .await;
    let got = eventually!("the signed webhook", PATIENCE, {
        let got = engine.listener.received("/signed");
        (!got.is_empty()).then_some(got)
    });
    assert_eq!(got[0].authorization.as_deref(), Some("Bearer tok-abc123"));
    let (id, at, signature) = (
        got[0].webhook_id.as_deref().unwrap(),
        got[0].webhook_timestamp.unwrap(),
        got[0].signature.as_deref().unwrap(),
    );
    assert!(
        verify("whsec_c2VjcmV0LWtleQ==", id, at, got[0].raw.as_bytes(), signature),
        "{got:?}"
    );

    // What a read token sees: no credential anywhere.
    for path in ["/api/v1/sms-providers", "/api/v1/webhook-endpoints"] {
        let (status, body) = call(Method::GET, path.into(), "reader", None).await;
        assert_eq!(status, 200, "{body}");
        assert_no_secret(path, &body);
    }
    let (_, body) = call(Method::GET, "/api/v1/webhook-endpoints".into(), "reader", None).await;
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed["webhook_endpoints"][0]["auth"],
        json!({"type": "bearer", "token_set": true})
    );
    let (_, body) = call(Method::GET, format!("/api/v1/sms-providers/{basic_id}"), "reader", None).await;
    let provider: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        provider["auth"],
        json!({"type": "header", "name": "x-api-key", "value_set": true})
    );

    // A bad auth is refused with a pointer, and `null` removes it.
    let (status, body) = call(
        Method::PUT,
        format!("/api/v1/sms-providers/{basic_id}"),
        "author",
        Some(json!({"name": "basic", "url": engine.listener.url("/sms-header"),
                    "auth": {"type": "header", "name": "Idempotency-Key", "value": "x"}})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("/auth"), "{body}");
    let (status, body) = call(
        Method::PUT,
        format!("/api/v1/sms-providers/{basic_id}"),
        "author",
        Some(json!({"name": "basic", "url": engine.listener.url("/sms-header"), "auth": null})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["auth"],
        Value::Null,
        "{body}"
    );
    engine.finish().await;
}

/// Start-up with sealed secrets: a database holding them refuses to start without the key
/// (or with another one), and secrets written before a key was set are sealed by it.
#[actix_rt::test]
async fn start_up_needs_the_key_of_sealed_secrets_and_seals_old_ones() {
    let test = common::fresh().await;
    let plain = test.db.clone();
    let insert = |name: &str, auth: Option<String>| sms_providers::ActiveModel {
        name: sea_orm::Set(name.into()),
        url: sea_orm::Set("https://sms.example/send".into()),
        active: sea_orm::Set(false),
        auth: sea_orm::Set(auth),
        ..Default::default()
    };
    let credentials = r#"{"type":"bearer","token":"tok-abc123"}"#;
    sms_providers::Entity::insert(insert("old", Some(credentials.into())))
        .exec(plain.connection())
        .await
        .unwrap();
    // No key: kept as written, and counted for the warning.
    assert_eq!(secrets::prepare(&plain, None).await.unwrap().unsealed, 1);

    let sealed = plain.clone().with_sealing_key(SealingKey::parse(KEY).unwrap());
    assert_eq!(secrets::prepare(&sealed, None).await.unwrap().sealed_now, 1);
    let row = sms_providers::Entity::find()
        .one(plain.connection())
        .await
        .unwrap()
        .unwrap();
    let stored = row.auth.unwrap();
    assert!(
        stored.starts_with("sealed:v1:") && !stored.contains("tok-abc123"),
        "{stored}"
    );
    assert_eq!(
        secrets::open(&sealed, secrets::PROVIDER_AUTH, &stored).unwrap(),
        credentials
    );
    assert_eq!(secrets::prepare(&sealed, None).await.unwrap(), Default::default());

    let error = secrets::prepare(&plain, None).await.unwrap_err().to_string();
    assert!(error.contains("security.secret_key"), "{error}");
    let other = plain
        .clone()
        .with_sealing_key(SealingKey::parse(&"ab".repeat(32)).unwrap());
    let error = secrets::prepare(&other, None).await.unwrap_err().to_string();
    assert!(error.contains("does not open"), "{error}");

    // Rotation: started once with the new key and the old one as previous_secret_key,
    // what the old key sealed is sealed again with the new one; then the new key alone opens it.
    let old_key = SealingKey::parse(KEY).unwrap();
    let rotated = secrets::prepare(&other, Some(&old_key)).await.unwrap();
    assert_eq!(rotated.resealed, 1);
    assert_eq!(secrets::prepare(&other, None).await.unwrap(), Default::default());
    let row = sms_providers::Entity::find()
        .one(plain.connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        secrets::open(&other, secrets::PROVIDER_AUTH, &row.auth.unwrap()).unwrap(),
        credentials
    );
    assert!(
        secrets::prepare(&sealed, None).await.is_err(),
        "the old key no longer opens it"
    );
    test.finish().await;
}
