//! `workflow-engine demo`: the seed's three use cases end to end on the embedded
//! defaults. A fresh SQLite file and the embedded broker, the demo data and the seed's
//! workflows (plus one with a delay and the registration journey, their waits shortened to
//! `demo.delay_seconds`), a local HTTP listener standing in for the email service, the SMS
//! provider and Slack; then sample events through Kafka, and what each did.

use crate::actors::topology::Topology;
use crate::envelope::EventEnvelope;
use crate::kafka;
use crate::schema::FieldSchema;
use crate::settings::Settings;
use crate::storage::runs::{self, RunFilter};
use crate::storage::{seed, workflows, Database};
use crate::validate::Validator;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context as _;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the stand-in integration services received.
type Inbox = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

/// A workflow only the demo adds, to show a persisted delay resuming.
fn delayed_follow_up() -> Value {
    json!({
        "id": "demo-follow-up",
        "name": "Deposit follow-up after a pause",
        "trigger_event": "customer.deposited",
        "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": 1000}]},
        "actions": [
            {"type": "delay", "params": {"hours": 1}},
            {"type": "add_note", "params": {"body": "Follow-up: deposit of {{event.amount}} {{event.currency}} an hour ago"}}
        ],
        "priority": 50
    })
}

/// The registration journey of docs/workflow-language.md: wait up to 3 days for the first
/// deposit; a big one goes to the VIP desk, a small one gets a thank-you, none a call.
fn first_deposit_journey() -> Value {
    json!({
        "id": "demo-first-deposit",
        "name": "First deposit journey",
        "trigger_event": "customer.registered",
        "actions": [
            {"type": "wait_for_event", "name": "deposit", "params": {
                "event": "customer.deposited", "timeout": {"days": 3},
                "conditions": {"field": "event.amount", "operator": "gt", "value": 0},
                "on_event": [
                    {"type": "branch", "name": "size", "params": {
                        "paths": [{"when": {"field": "steps.deposit.event.amount", "operator": "gte", "value": 10000},
                                   "actions": [{"type": "add_note", "params": {"body": "VIP desk: first deposit of {{steps.deposit.event.amount}}"}}]}],
                        "otherwise": [{"type": "send_email", "params": {"subject": "Thank you for your first deposit, {{customer.first_name}}"}}]
                    }}
                ],
                "on_timeout": [{"type": "add_note", "params": {"body": "No deposit within 3 days: call {{customer.first_name}}"}}]
            }}
        ],
        "priority": 40
    })
}

fn events() -> Vec<(&'static str, Value)> {
    vec![
        (
            "Churning customer rescue: Ana's retention status turned churning",
            json!({"id": "demo-1", "type": "customer.retention_changed", "customer_id": 1,
                   "data": {"status_type": "retention", "old_status": "active", "new_status": "churning"}}),
        ),
        (
            "New depositor onboarding: Bruno (BR) deposits 1,500",
            json!({"id": "demo-2", "type": "customer.deposited", "customer_id": 2,
                   "data": {"amount": 1500, "currency": "USD", "transaction": {"type": "deposit"}}}),
        ),
        (
            "High-value deposit alert: Ana (BR, churning) deposits 12,000",
            json!({"id": "demo-3", "type": "customer.deposited", "customer_id": 1,
                   "data": {"amount": 12000, "currency": "USD", "transaction": {"type": "deposit"}}}),
        ),
        (
            "First deposit journey: Felipe registers; his journey waits for a deposit",
            json!({"id": "demo-4", "type": "customer.registered", "customer_id": 6,
                   "data": {"first_name": "Felipe", "email": "felipe@example.com", "country": "BR"}}),
        ),
        (
            "First deposit journey: Felipe deposits 1,500, which ends his wait (the thank-you path)",
            json!({"id": "demo-5", "type": "customer.deposited", "customer_id": 6,
                   "data": {"amount": 1500, "currency": "USD", "transaction": {"type": "deposit"}}}),
        ),
        (
            "First deposit journey: Greta registers and never deposits (the timeout path)",
            json!({"id": "demo-6", "type": "customer.registered", "customer_id": 7,
                   "data": {"first_name": "Greta", "email": "greta@example.com", "country": "DE"}}),
        ),
    ]
}

async fn receive(req: HttpRequest, inbox: web::Data<Inbox>, body: web::Json<Value>) -> HttpResponse {
    let key = req
        .headers()
        .get(crate::outbound::IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Ok(mut inbox) = inbox.lock() {
        inbox.push((req.path().to_owned(), key, body.into_inner()));
    }
    HttpResponse::Ok().json(json!({"ok": true}))
}

pub fn run(mut settings: Settings) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("workflow-engine-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the demo directory")?;
    settings.database.url = format!("sqlite://{}", dir.join("demo.db").display());
    settings.kafka.brokers = "embedded".into();
    settings.scheduler.delay_override_secs = settings.demo.delay_seconds.max(1);
    settings.delivery.webhook_allowlist.push("127.0.0.1".into());
    settings.delivery.max_attempts = 2;
    settings.engine.workflow_poll_ms = 200;
    let runner = actix_rt::System::new();
    let result = runner.block_on(demo(settings));
    // The embedded broker goes last, once the runtime and its Kafka clients are gone.
    drop(runner);
    let _ = std::fs::remove_dir_all(&dir);
    result.map(drop)
}

async fn demo(mut settings: Settings) -> anyhow::Result<Option<crate::kafka::EmbeddedBroker>> {
    let inbox: Inbox = Arc::default();
    let listener = {
        let inbox = web::Data::new(Arc::clone(&inbox));
        HttpServer::new(move || {
            App::new()
                .app_data(inbox.clone())
                .default_service(web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .context("binding the demo listener")?
    };
    let base = listener
        .addrs()
        .first()
        .map(|a| format!("http://{a}"))
        .context("demo listener has no address")?;
    let listener = listener.run();
    let listener_handle = listener.handle();
    actix_rt::spawn(listener);
    settings.delivery.email_url = format!("{base}/email");

    let db = crate::service::database(&settings).await?;
    seed::load_demo_against(&db, &base).await.context("loading demo data")?;
    let conn = db.connection();
    let schema = FieldSchema::default();
    for definition in [delayed_follow_up(), first_deposit_journey()] {
        let valid = Validator::new(&schema, settings.limits)
            .workflow(&definition)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let id = valid.workflow.id.clone().unwrap_or_default();
        if workflows::get(conn, &id).await?.is_none() {
            workflows::create(&db, &valid.workflow, "demo").await?;
        }
    }

    let (broker, brokers) = crate::service::broker(&settings)?;
    let topology = Topology::start(&settings, db.clone(), &brokers)?;
    println!(
        "workflow-engine demo: embedded kafka at {brokers}, database {}",
        settings.database.url
    );
    wait_for("the consumer to join", Duration::from_secs(30), || {
        let consuming = topology.consuming();
        async move { consuming }
    })
    .await?;
    actix_rt::time::sleep(Duration::from_millis(500)).await;

    let producer = kafka::producer(&brokers)?;
    for (_, event) in events() {
        let key = event["customer_id"].to_string();
        kafka::publish(
            &producer,
            &settings.kafka.topic,
            &key,
            event.to_string().as_bytes(),
            None,
        )
        .await?;
    }
    kafka::publish(&producer, &settings.kafka.topic, "1", b"{not json", None).await?;

    let dead_lettered = || {
        crate::metrics::Metrics::global()
            .events
            .with_label_values(&["unknown", "dead_lettered"])
            .get()
    };
    let ids: Vec<String> = events()
        .iter()
        .map(|(_, e)| e["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let wait = Duration::from_secs(30 + settings.demo.delay_seconds * 2);
    wait_for("every run to finish", wait, || {
        let db = db.clone();
        let ids = ids.clone();
        async move { all_finished(&db, &ids).await }
    })
    .await?;
    wait_for(
        "the malformed event to be dead-lettered",
        Duration::from_secs(10),
        || {
            let n = dead_lettered();
            async move { n >= 1 }
        },
    )
    .await?;

    for (title, event) in events() {
        let envelope = EventEnvelope::from_value(event.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "\n== {title}\n   event {} {} customer {}",
            envelope.id, envelope.event_type, envelope.customer_id
        );
        let found = runs::list(
            conn,
            &RunFilter {
                customer_id: Some(envelope.customer_id),
                limit: Some(50),
                ..Default::default()
            },
        )
        .await?;
        let mut mine: Vec<_> = found.into_iter().filter(|r| r.run.event_id == envelope.id).collect();
        mine.sort_by_key(|r| r.run.id);
        if mine.is_empty() {
            println!("   no workflow matched");
        }
        for run in mine {
            let name = workflows::get(conn, &run.run.workflow_id)
                .await?
                .map(|w| w.name)
                .unwrap_or_default();
            println!("   -> {name} ({}): {}", run.run.workflow_id, run.run.status);
            for step in &run.steps {
                let detail = step
                    .error
                    .clone()
                    .or_else(|| step.result.as_ref().map(|r| r.to_string()))
                    .unwrap_or_default();
                // A journey's step shows its place in the tree (`0.on_event.0`).
                let place = match &step.path {
                    Some(path) if path.contains('.') => path.clone(),
                    _ => (step.step_index + 1).to_string(),
                };
                println!("      {place}. {:<26} {:<8} {detail}", step.action_type, step.status);
            }
        }
    }
    println!("\n== Requests received by the stand-in integrations");
    if let Ok(inbox) = inbox.lock() {
        for (path, key, body) in inbox.iter() {
            let summary = body
                .get("subject")
                .or_else(|| body.get("text"))
                .or_else(|| body.get("to"))
                .unwrap_or(body);
            println!(
                "   POST {path:<7} idempotency-key {:<18} {summary}",
                key.clone().unwrap_or_default()
            );
        }
    }
    println!(
        "\n== Dead-lettered to {}: {} malformed event(s); the others were processed",
        settings.kafka.dead_letter_topic,
        dead_lettered()
    );

    drop(producer);
    topology.shutdown().await;
    listener_handle.stop(true).await;
    Ok(broker)
}

async fn all_finished(db: &Database, ids: &[String]) -> bool {
    let Ok(found) = runs::list(
        db.connection(),
        &RunFilter {
            limit: Some(500),
            ..Default::default()
        },
    )
    .await
    else {
        return false;
    };
    let mine: Vec<_> = found.iter().filter(|r| ids.contains(&r.run.event_id)).collect();
    let events_seen = ids
        .iter()
        .filter(|id| mine.iter().any(|r| &r.run.event_id == *id))
        .count();
    events_seen == ids.len()
        && mine
            .iter()
            .all(|r| r.run.status == runs::status::DONE || r.run.status == runs::status::FAILED)
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        if start.elapsed() > limit {
            anyhow::bail!("timed out after {limit:?} waiting for {what}");
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
