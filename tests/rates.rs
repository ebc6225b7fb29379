//! Provider rate limits (issue 27): `rate_per_sec` on webhook endpoints, SMS providers and
//! the email service, held across the whole cluster in any one-second window.
//!
//! What must hold: sends beyond the rate wait their turn (none dropped, none failed, each
//! sent once, each customer's in order), on any number of nodes and while partitions
//! move; a limited destination's queue holds up neither other destinations nor other
//! customers; the reservations that make it so put `r + 1` consecutive slots at least a
//! window apart whatever the interleaving of the nodes; bad rates are refused with the
//! pointer.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;

use actix_web::{test as web_test, App};
use chrono::Duration as ChronoDuration;
use common::{fresh, t0};
use engine::{runs_where, Engine};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use workflow_engine::actors::topology::Topology;
use workflow_engine::storage::endpoints::{self, EndpointInput};
use workflow_engine::storage::rates::{self, Rate, Slot, WINDOW};
use workflow_engine::storage::runs::RunFilter;

fn rate(key: &str, per_sec: u32) -> Rate {
    Rate {
        key: key.to_owned(),
        per_sec,
    }
}

/// The most arrivals in any window of `width` (half-open, starting at an arrival).
fn busiest(arrivals: &[Instant], width: Duration) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|t| t.duration_since(sorted[i]) < width)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Two nodes (two connection pools) reserve at once, all at the same instant: the slots
/// come in groups of the rate, a window apart, none lost, on both databases.
#[actix_rt::test]
async fn reservations_from_two_nodes_keep_every_window_within_the_rate() {
    let test = fresh().await;
    let (a, b) = (test.connect_again().await, test.connect_again().await);
    let limit = rate("webhook_endpoint:1", 5);
    let far = t0() + ChronoDuration::days(1);
    let reserve = |db: workflow_engine::storage::Database, limit: Rate| async move {
        let mut slots = Vec::new();
        for _ in 0..20 {
            match rates::reserve(&db, &limit, t0(), far).await.unwrap() {
                Slot::At(at) => slots.push(at),
                Slot::Beyond(at) => panic!("nothing was beyond a day: {at}"),
            }
        }
        slots
    };
    let (from_a, from_b) = tokio::join!(reserve(a, limit.clone()), reserve(b, limit.clone()));
    let mut slots: Vec<_> = from_a.into_iter().chain(from_b).collect();
    slots.sort();
    assert_eq!(slots.len(), 40);
    let window = ChronoDuration::from_std(WINDOW).unwrap();
    for (i, at) in slots.iter().enumerate() {
        // Five per window, back to back: the 40 slots fill 8 windows exactly.
        assert_eq!(*at, t0() + window * (i as i32 / 5), "slot {i}: {slots:?}");
    }
    test.finish().await;
}

/// A slot past the latest time asked for is not taken, and a new rate starts a window
/// after the old rate's last slot, so the two never share a window.
#[actix_rt::test]
async fn a_slot_beyond_the_lease_is_not_taken_and_a_new_rate_waits_a_window() {
    let test = fresh().await;
    let db = &test.db;
    let window = ChronoDuration::from_std(WINDOW).unwrap();
    let at = |s: Slot| match s {
        Slot::At(at) => at,
        Slot::Beyond(at) => panic!("beyond: {at}"),
    };
    for _ in 0..2 {
        assert_eq!(
            at(rates::reserve(db, &rate("email", 2), t0(), t0()).await.unwrap()),
            t0()
        );
    }
    // The third slot is a window on: beyond a lease that ends now, so not reserved...
    assert_eq!(
        rates::reserve(db, &rate("email", 2), t0(), t0()).await.unwrap(),
        Slot::Beyond(t0() + window)
    );
    // ...and still free for whoever asks with room.
    let later = t0() + window * 10;
    assert_eq!(
        at(rates::reserve(db, &rate("email", 2), t0(), later).await.unwrap()),
        t0() + window
    );
    // The rate goes up to 100: its first slot is a window after the last one at 2/s.
    assert_eq!(
        at(rates::reserve(db, &rate("email", 100), t0(), later).await.unwrap()),
        t0() + window * 2
    );
    // Another destination has slots of its own.
    assert_eq!(
        at(rates::reserve(db, &rate("sms_provider:1", 1), t0(), later)
            .await
            .unwrap()),
        t0()
    );
    test.finish().await;
}

/// Creates the endpoint `partner` at the engine's listener, limited to `rate` per second,
/// and a workflow calling it on each deposit; registrations call `/other`, unlimited.
async fn limited_and_unlimited(engine: &Engine, rate: i32) {
    endpoints::create(
        engine.db(),
        EndpointInput {
            name: "partner".into(),
            url: engine.listener.url("/partner"),
            secret: None,
            auth: None,
            rate_per_sec: Some(rate),
        },
    )
    .await
    .unwrap();
    engine
        .add_workflow(
            json!({"name": "limited", "trigger_event": "customer.deposited", "actions": [
            {"type": "webhook", "params": {"endpoint": "partner"}}]}),
        )
        .await;
    engine
        .add_workflow(
            json!({"name": "unlimited", "trigger_event": "customer.registered", "actions": [
            {"type": "webhook", "params": {"url": engine.listener.url("/other")}}]}),
        )
        .await;
}

fn deposits(n: usize, customers: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("dep-{i}"), "type": "customer.deposited", "customer_id": 1 + i % customers, "data": {"amount": i}}))
        .collect()
}

fn registrations(customers: std::ops::RangeInclusive<i64>) -> Vec<Value> {
    customers
        .map(|c| json!({"id": format!("reg-{c}"), "type": "customer.registered", "customer_id": c, "data": {}}))
        .collect()
}

/// Two engines share one broker and one database; the second joins while the first has
/// sends queued for their slots, so partitions move while they wait. An endpoint limited
/// to 10 per second gets 60 requests from 30 customers: the receiver sees no second with
/// more than 10, every request once, each customer's in event order.
#[actix_rt::test]
async fn a_rate_limit_holds_across_two_engines_while_partitions_move() {
    const RATE: usize = 10;
    let mut a = Engine::new(|s| s.delivery.timeout_ms = 10_000).await;
    a.add_customers(1..=30).await;
    limited_and_unlimited(&a, RATE as i32).await;
    a.start().await;
    let deposits = deposits(60, 30);
    a.publish_all(&deposits[..30]).await;

    let mut settings_b = a.settings.clone();
    settings_b.engine.node_id = format!("{}-b", settings_b.engine.node_id);
    let b = Topology::start(&settings_b, a.test.connect_again().await, &a.brokers).unwrap();
    a.publish_all(&deposits[30..]).await;
    eventually!(
        "the second engine to own partitions",
        Duration::from_secs(90),
        b.consuming().then_some(())
    );
    let db = a.test.connect_again().await;
    eventually!("every run to finish", Duration::from_secs(120), {
        let runs = runs_where(&db, RunFilter::default()).await;
        (runs.len() == 60 && runs.iter().all(|r| r.run.status == "done")).then_some(())
    });
    b.shutdown().await;

    let limited = a.listener.received("/partner");
    let arrivals: Vec<Instant> = limited.iter().map(|r| r.at).collect();
    let busiest = busiest(&arrivals, Duration::from_secs(1));
    assert!(busiest <= RATE, "{busiest} requests in one second");
    let mut sends: HashMap<String, usize> = HashMap::new();
    for r in &limited {
        *sends.entry(r.idempotency_key.clone().unwrap_or_default()).or_default() += 1;
    }
    assert_eq!(sends.len(), 60, "every request arrived");
    assert!(sends.values().all(|n| *n == 1), "a request arrived twice: {sends:?}");
    let mut order: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for r in &limited {
        let event = &r.body["event"];
        let n: i64 = event["id"].as_str().unwrap()[4..].parse().unwrap();
        order.entry(event["customer_id"].as_i64().unwrap()).or_default().push(n);
    }
    for (customer, ids) in order {
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "customer {customer}: requests out of event order");
    }
    a.finish().await;
}

/// A queue for a limited endpoint holds none of the process's request slots: with two
/// slots and ten sends queued at 2 per second, other customers' requests to another
/// endpoint leave at once, before the queue's third request.
#[actix_rt::test]
async fn a_limited_queue_holds_up_no_other_destination() {
    let mut a = Engine::new(|s| s.delivery.concurrency = 2).await;
    a.add_customers(1..=15).await;
    limited_and_unlimited(&a, 2).await;
    a.start().await;
    a.publish_all(&deposits(10, 10)).await;
    a.publish_all(&registrations(11..=15)).await;
    eventually!("the queue to drain", engine::PATIENCE, {
        (a.listener.received("/partner").len() == 10).then_some(())
    });
    let limited: Vec<Instant> = a.listener.received("/partner").iter().map(|r| r.at).collect();
    let others = a.listener.received("/other");
    assert_eq!(others.len(), 5);
    let last_other = others.iter().map(|r| r.at).max().unwrap();
    let before = limited.iter().filter(|at| **at < last_other).count();
    assert!(
        before <= 2,
        "the other endpoint waited behind {before} limited requests"
    );
    a.finish().await;
}

/// `rate_per_sec` is shown, and a rate of 0, a negative one, a fraction or one above
/// the ceiling is refused with the pointer.
#[actix_rt::test]
async fn bad_rates_are_refused_with_the_pointer() {
    let test = fresh().await;
    let app =
        web_test::init_service(App::new().configure(|cfg| {
            workflow_engine::api::configure(cfg, common::api_state(&test.db), 1 << 20, None::<String>)
        }))
        .await;
    for (path, extra) in [
        ("/api/v1/webhook-endpoints", json!({})),
        ("/api/v1/sms-providers", json!({"active": true})),
    ] {
        for bad in [json!(0), json!(-5), json!(2.5), json!("10"), json!(10_001)] {
            let mut body = json!({"name": "p", "url": "https://provider.example/send", "rate_per_sec": bad});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let req = web_test::TestRequest::post().uri(path).set_json(&body).to_request();
            let res = web_test::call_service(&app, req).await;
            assert_eq!(res.status(), 422, "{path} {bad}");
            let problem: Value = web_test::read_body_json(res).await;
            assert_eq!(problem["error"]["details"][0]["path"], "/rate_per_sec", "{problem}");
        }
        let mut body = json!({"name": "p", "url": "https://provider.example/send", "rate_per_sec": 50});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let req = web_test::TestRequest::post().uri(path).set_json(&body).to_request();
        let created: Value = web_test::call_and_read_body_json(&app, req).await;
        assert_eq!(created["rate_per_sec"], 50, "{created}");
    }
    test.finish().await;
}
