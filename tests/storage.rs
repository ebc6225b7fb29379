//! The storage layer through its public API: migrations, workflows and their versions,
//! customer snapshots, runs, scheduled continuations, the outbox and the demo seed.

mod common;

use chrono::Duration;
use common::{fresh, t0};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};
use workflow_engine::catalogue::ActionKind;
use workflow_engine::conditions::Limits;
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::guards::identity::Mismatch;
use workflow_engine::schema::FieldSchema;
use workflow_engine::storage::entities::{
    agents, customer_statuses, customers, sms_providers, statuses as status_rows, teams, webhook_endpoints,
};
use workflow_engine::storage::outbox::{self, Origin, OutboxKind};
use workflow_engine::storage::runs::{self, PlannedRun, RunFilter};
use workflow_engine::storage::{changes, customers as customer_repo, scheduled, seed, statuses, workflows, Database};
use workflow_engine::validate::Validator;
use workflow_engine::workflow::Workflow;

fn workflow(definition: Value) -> Workflow {
    let schema = FieldSchema::default();
    Validator::new(&schema, Limits::default())
        .workflow(&definition)
        .unwrap()
        .workflow
}

fn event(id: &str, customer_id: i64) -> EventEnvelope {
    EventEnvelope::from_value(
        json!({"id": id, "type": "customer.deposited", "customer_id": customer_id, "data": {"amount": 10}}),
    )
    .unwrap()
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_again_as_a_no_op() {
    let t = fresh().await;
    t.db.migrate().await.unwrap();
    let other = t.connect_again().await;
    other.migrate().await.unwrap();
    other.close().await.unwrap();
    assert_eq!(workflows::list(&t.db).await.unwrap().len(), 0);
    // A fresh database has the status types of shared/design.md, each without statuses.
    let types = statuses::status_types(&t.db).await.unwrap();
    let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["sales", "kyc", "retention"]);
    assert!(types.iter().all(|t| t.statuses.is_empty()));
    assert_eq!(t.db.backend(), if t.is_postgres() { "postgres" } else { "sqlite" });
    t.finish().await;
}

#[tokio::test]
async fn only_one_sms_provider_can_be_active() {
    let t = fresh().await;
    let insert = |name: &str, active: bool| sms_providers::ActiveModel {
        name: sea_orm::Set(name.into()),
        url: sea_orm::Set("http://x".into()),
        active: sea_orm::Set(active),
        ..Default::default()
    };
    sms_providers::Entity::insert(insert("a", true))
        .exec(&t.db)
        .await
        .unwrap();
    sms_providers::Entity::insert(insert("b", false))
        .exec(&t.db)
        .await
        .unwrap();
    sms_providers::Entity::insert(insert("c", false))
        .exec(&t.db)
        .await
        .unwrap();
    assert!(sms_providers::Entity::insert(insert("d", true))
        .exec(&t.db)
        .await
        .is_err());
    t.finish().await;
}

#[tokio::test]
async fn workflows_keep_every_version_and_bump_the_change_counter() {
    let t = fresh().await;
    let db = &t.db;
    let draft = json!({"name": "Greet", "trigger_event": "customer.registered",
                       "actions": [{"type": "add_note", "params": {"body": "hi"}}]});
    let created = workflows::create(db, &workflow(draft.clone()), "alice").await.unwrap();
    assert!(
        created.id.starts_with("wf_") && created.id.len() == 15,
        "{}",
        created.id
    );
    assert_eq!(created.version, 1);
    assert_eq!(created.definition["id"], created.id.as_str());
    assert_eq!(created.definition["version"], 1);
    assert_eq!(changes::current(db).await.unwrap(), 1);

    let mut changed = draft.clone();
    changed["name"] = json!("Greet warmly");
    changed["priority"] = json!(5);
    let updated = workflows::update(db, &created.id, &workflow(changed), None, "bob")
        .await
        .unwrap();
    assert_eq!(
        (updated.version, updated.name.as_str(), updated.priority),
        (2, "Greet warmly", 5)
    );

    let with_id = json!({"id": "fixed-id", "name": "Other", "trigger_event": "customer.ftd", "active": false,
                         "actions": [{"type": "add_note", "params": {"body": "x"}}]});
    workflows::create(db, &workflow(with_id.clone()), "alice")
        .await
        .unwrap();
    let dup = workflows::create(db, &workflow(with_id), "alice").await.unwrap_err();
    assert_eq!(dup.to_string(), "workflow \"fixed-id\" already exists");

    let names: Vec<String> = workflows::list(db).await.unwrap().into_iter().map(|w| w.name).collect();
    assert_eq!(names, ["Greet warmly", "Other"]);
    let active: Vec<String> = workflows::list_active(db)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(active, [created.id.as_str()]);

    workflows::delete(db, &created.id, "carol").await.unwrap();
    assert!(workflows::get(db, &created.id).await.unwrap().is_none());
    assert_eq!(workflows::list(db).await.unwrap().len(), 1);
    let err = workflows::update(db, &created.id, &workflow(draft), None, "bob")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), format!("workflow {:?} not found", created.id));

    let history = workflows::versions(db, &created.id).await.unwrap();
    let summary: Vec<(i64, &str, &str)> = history
        .iter()
        .map(|v| (v.version, v.change.as_str(), v.changed_by.as_str()))
        .collect();
    assert_eq!(
        summary,
        [(1, "created", "alice"), (2, "updated", "bob"), (3, "deleted", "carol")]
    );
    assert_eq!(history[0].definition["name"], "Greet");
    assert_eq!(history[1].definition["name"], "Greet warmly");
    // The newest few and one by its number, each read in SQL.
    let newest: Vec<i64> = workflows::newest_versions(db, &created.id, 2)
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(newest, [2, 3]);
    let second = workflows::version(db, &created.id, 2).await.unwrap().unwrap();
    assert_eq!(second.definition["name"], "Greet warmly");
    assert!(workflows::version(db, &created.id, 9).await.unwrap().is_none());
    assert_eq!(changes::current(db).await.unwrap(), 4);

    // A stored definition validates back into the same workflow.
    let stored = workflows::get(db, "fixed-id").await.unwrap().unwrap();
    let again = workflow(stored.definition.clone());
    assert_eq!(again.id.as_deref(), Some("fixed-id"));
    assert_eq!(again.version, Some(1));
    t.finish().await;
}

/// Two saves made from the same version: the first wins, the second is refused, even when
/// the second starts after the first committed (the check is in the saving transaction).
#[tokio::test]
async fn two_saves_from_one_version_cannot_both_succeed() {
    let t = fresh().await;
    let db = &t.db;
    let draft = json!({"name": "v", "trigger_event": "customer.ftd", "actions": [{"type": "add_note", "params": {"body": "x"}}]});
    let created = workflows::create(db, &workflow(draft.clone()), "alice").await.unwrap();
    let first = workflows::update(db, &created.id, &workflow(draft.clone()), Some(1), "bob")
        .await
        .unwrap();
    assert_eq!(first.version, 2);
    let second = workflows::update(db, &created.id, &workflow(draft), Some(1), "carol")
        .await
        .unwrap_err();
    assert!(
        matches!(
            second,
            workflow_engine::storage::StorageError::VersionConflict {
                current: 2,
                expected: 1,
                ..
            }
        ),
        "{second}"
    );
    assert_eq!(workflows::versions(db, &created.id).await.unwrap().len(), 2);
    t.finish().await;
}

/// Each process's outbox relay claims the emitted events of the partitions it owns (and
/// those of no partition): two processes never take the same row under a live claim.
#[tokio::test]
async fn relays_claim_emitted_events_of_their_own_partitions() {
    let t = fresh().await;
    let db = &t.db;
    let now = t0();
    for (key, partition) in [("e0", Some(0)), ("e1", Some(1)), ("e2", Some(0)), ("time", None)] {
        let origin = Origin {
            run_id: None,
            step_index: None,
            customer_id: 7,
            partition,
        };
        outbox::enqueue(db, OutboxKind::Event, origin, json!({"id": key}), key, now)
            .await
            .unwrap();
    }
    let lease = Duration::seconds(30);
    let keys = |rows: Vec<outbox::OutboxMessage>| rows.into_iter().map(|m| m.idempotency_key).collect::<Vec<_>>();
    let a = outbox::claim_events(db, "node-a", &[0], now, lease, 10).await.unwrap();
    assert_eq!(keys(a), ["e0", "e2", "time"]);
    let b = outbox::claim_events(db, "node-b", &[0, 1], now, lease, 10)
        .await
        .unwrap();
    assert_eq!(keys(b), ["e1"], "rows under node-a's claim are not taken");
    // node-a dies: after its lease, the new owner of partition 0 takes its rows.
    let later = now + lease + Duration::seconds(1);
    let b = outbox::claim_events(db, "node-b", &[0, 1], later, lease, 10)
        .await
        .unwrap();
    assert_eq!(keys(b), ["e0", "e1", "e2", "time"]);
    t.finish().await;
}

#[tokio::test]
async fn snapshots_flatten_custom_fields_and_name_every_status_type() {
    let t = fresh().await;
    let db = &t.db;
    seed::load_demo(db, "http://127.0.0.1:9/hook").await.unwrap();
    // A broker-created status type shows up with no code change.
    let mood = statuses::ensure_status_type(db, "mood").await.unwrap();
    statuses::ensure_status(db, mood, "happy").await.unwrap();
    // A custom field named like a column never wins over the column.
    customers::Entity::update_many()
        .col_expr(
            customers::Column::CustomFields,
            sea_orm::sea_query::Expr::value(json!({"country": "XX", "vip_tier": "gold"})),
        )
        .filter(customers::Column::Id.eq(1))
        .exec(db)
        .await
        .unwrap();

    let snap = customer_repo::snapshot(db, 1).await.unwrap().unwrap();
    assert_eq!(snap["id"], 1);
    assert_eq!(snap["first_name"], "Ana");
    assert_eq!(snap["country"], "BR");
    assert_eq!(snap["vip_tier"], "gold");
    assert_eq!(snap["balance"], 2500.0);
    assert_eq!(snap["registered_at"], "2026-11-01T09:00:00Z");
    assert_eq!(
        (snap["agent_id"].clone(), snap["team_id"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        (snap["desk"].clone(), snap["active"].clone(), snap["frozen"].clone()),
        (json!("sales"), json!(true), json!(false))
    );
    assert_eq!(
        (
            snap["timezone"].clone(),
            snap["email_opt_out"].clone(),
            snap["sms_opt_out"].clone()
        ),
        (json!("UTC"), json!(false), json!(false))
    );
    assert_eq!(snap["sales_status"], "interested");
    assert_eq!(snap["kyc_status"], "approved");
    assert_eq!(snap["retention_status"], "churning");
    assert!(snap["retention_status_id"].is_i64());
    assert_eq!(snap["mood_status"], Value::Null);
    assert_eq!(snap["mood_status_id"], Value::Null);
    assert!(customer_repo::snapshot(db, 42).await.unwrap().is_none());

    let types = statuses::status_types(db).await.unwrap();
    let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["sales", "kyc", "retention", "mood"]);
    let sales: Vec<&str> = types[0].statuses.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(sales, ["new", "contacted", "interested", "vip"]);
    let fields = statuses::custom_fields(db).await.unwrap();
    assert_eq!(
        fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["source", "vip_tier"]
    );
    t.finish().await;
}

#[tokio::test]
async fn runs_are_unique_per_event_and_workflow_and_resume() {
    let t = fresh().await;
    let db = &t.db;
    let planned = vec![
        PlannedRun {
            workflow_id: "a".into(),
            workflow_version: 3,
            steps: vec![ActionKind::AddNote, ActionKind::Delay, ActionKind::SendEmail],
            paths: Vec::new(),
            limit: None,
            held_out: false,
            goal: None,
        },
        PlannedRun {
            workflow_id: "b".into(),
            workflow_version: 1,
            steps: vec![ActionKind::SetStatus],
            paths: Vec::new(),
            limit: None,
            held_out: false,
            goal: None,
        },
    ];
    let e = event("evt-1", 7);
    let fence = common::fence(db, 2).await;
    let first = runs::record_runs(db, fence, &e, &planned, t0()).await.unwrap();
    assert!(!first.replayed);
    let first = first.runs;
    assert_eq!(first.len(), 2);
    let a = &first[0];
    assert_eq!(
        (a.run.workflow_id.as_str(), a.run.workflow_version, a.run.partition),
        ("a", 3, 2)
    );
    assert_eq!(
        (a.run.status.as_str(), a.run.next_step, a.run.customer_id),
        ("pending", 0, 7)
    );
    assert_eq!(a.run.event["id"], "evt-1");
    let kinds: Vec<&str> = a.steps.iter().map(|s| s.action_type.as_str()).collect();
    assert_eq!(kinds, ["add_note", "delay", "send_email"]);

    // Progress, then the event is redelivered and planned differently (the customer or the
    // workflows changed): the recorded plan is replayed, the same runs come back with their
    // progress, and nothing new is recorded.
    runs::complete_step(db, a.run.id, 0, 1, &json!({"note_id": 1}), t0())
        .await
        .unwrap();
    runs::set_waiting(db, a.run.id, 1, 2, t0()).await.unwrap();
    let replanned = [
        planned[0].clone(),
        PlannedRun {
            workflow_id: "c".into(),
            workflow_version: 1,
            steps: vec![ActionKind::AddNote],
            paths: Vec::new(),
            limit: None,
            held_out: false,
            goal: None,
        },
    ];
    let again = runs::record_runs(db, fence, &e, &replanned, t0()).await.unwrap();
    assert!(again.replayed);
    let again = again.runs;
    assert_eq!(
        again.iter().map(|r| r.run.id).collect::<Vec<_>>(),
        first.iter().map(|r| r.run.id).collect::<Vec<_>>()
    );
    assert_eq!((again[0].run.status.as_str(), again[0].run.next_step), ("waiting", 2));
    let statuses: Vec<&str> = again[0].steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, ["done", "waiting", "pending"]);
    assert_eq!(again[0].steps[0].result, Some(json!({"note_id": 1})));
    assert_eq!(runs::list(db, &RunFilter::default()).await.unwrap().len(), 2);

    runs::resume(db, a.run.id, t0()).await.unwrap();
    runs::finish_run(db, a.run.id, None, t0()).await.unwrap();
    runs::finish_run(db, first[1].run.id, Some("no team 9"), t0())
        .await
        .unwrap();
    let done = runs::get(db, a.run.id).await.unwrap().unwrap();
    assert_eq!(done.run.status, "done");
    assert_eq!(done.steps[1].status, "done");

    // Another event for another customer, then the filters.
    runs::record_runs(db, common::fence(db, 1).await, &event("evt-2", 8), &planned[..1], t0())
        .await
        .unwrap();
    let by_customer = runs::list(
        db,
        &RunFilter {
            customer_id: Some(7),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(by_customer.len(), 2);
    assert!(by_customer.iter().all(|r| !r.steps.is_empty()));
    let by_workflow = runs::list(
        db,
        &RunFilter {
            workflow_id: Some("a".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(by_workflow.len(), 2);
    let failed = runs::list(
        db,
        &RunFilter {
            status: Some("failed".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].run.error.as_deref(), Some("no team 9"));
    let limited = runs::list(
        db,
        &RunFilter {
            limit: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(limited[0].run.customer_id, 8, "newest first");
    t.finish().await;
}

#[tokio::test]
async fn scheduled_rows_are_claimed_once_per_lease_and_per_partition() {
    let t = fresh().await;
    let db = &t.db;
    let now = t0();
    let txn = db.begin().await.unwrap();
    scheduled::schedule(&txn, 1, 10, 0, now - Duration::minutes(5), now)
        .await
        .unwrap();
    scheduled::schedule(&txn, 2, 11, 0, now - Duration::minutes(1), now)
        .await
        .unwrap();
    scheduled::schedule(&txn, 3, 12, 1, now - Duration::minutes(1), now)
        .await
        .unwrap();
    scheduled::schedule(&txn, 4, 10, 0, now + Duration::hours(1), now)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(scheduled::list(db, 10).await.unwrap().len(), 4);

    assert_eq!(
        scheduled::next_due(db, &[0], now).await.unwrap(),
        Some(now - Duration::minutes(5))
    );
    assert_eq!(scheduled::next_due(db, &[7], now).await.unwrap(), None);

    let lease = Duration::seconds(60);
    let claimed = scheduled::claim_due(db, "node-a", &[0], now, lease, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|s| s.run_id).collect::<Vec<_>>(), [1, 2]);
    assert!(claimed
        .iter()
        .all(|s| s.claimed_by.as_deref() == Some("node-a") && s.claimed_until == Some(now + lease)));
    // Under lease: nobody else gets them; the other partition is another node's.
    assert!(scheduled::claim_due(db, "node-b", &[0], now, lease, 10)
        .await
        .unwrap()
        .is_empty());
    let other = scheduled::claim_due(db, "node-b", &[1], now, lease, 10).await.unwrap();
    assert_eq!(other.iter().map(|s| s.run_id).collect::<Vec<_>>(), [3]);
    // The next thing partition 0 needs: the end of node-a's lease, before run 4's due time.
    assert_eq!(scheduled::next_due(db, &[0], now).await.unwrap(), Some(now + lease));

    // node-a finishes run 1 and dies holding run 2: after the lease, run 2 is free again.
    // Completing takes only what the node claimed and what is due: not another node's
    // claim, not a row that is not due or not claimed.
    let txn = db.begin().await.unwrap();
    assert!(scheduled::complete(&txn, 1, "node-a", now).await.unwrap());
    assert!(!scheduled::complete(&txn, 3, "node-a", now).await.unwrap());
    assert!(!scheduled::complete(&txn, 4, "node-a", now).await.unwrap());
    txn.commit().await.unwrap();
    let later = now + Duration::seconds(61);
    let retaken = scheduled::claim_due(db, "node-b", &[0, 1], later, lease, 1)
        .await
        .unwrap();
    // Runs 2 and 3 are due at the same time: the earlier row goes first.
    assert_eq!(
        retaken.iter().map(|s| s.run_id).collect::<Vec<_>>(),
        [2],
        "earliest first, limit 1"
    );
    let retaken = scheduled::claim_due(db, "node-b", &[0, 1], later, lease, 10)
        .await
        .unwrap();
    assert_eq!(retaken.iter().map(|s| s.run_id).collect::<Vec<_>>(), [3]);
    // node-a comes back with its stale claim of run 2: it completes nothing.
    assert!(!scheduled::complete(db, 2, "node-a", later).await.unwrap());
    assert!(scheduled::claim_due(db, "node-b", &[], later, lease, 10)
        .await
        .unwrap()
        .is_empty());

    // Rescheduling a run replaces its row and clears the claim.
    scheduled::schedule(db, 2, 11, 0, later + Duration::hours(2), later)
        .await
        .unwrap();
    let rows = scheduled::list(db, 10).await.unwrap();
    let row = rows.iter().find(|s| s.run_id == 2).unwrap();
    assert_eq!((row.claimed_by.clone(), row.due_at), (None, later + Duration::hours(2)));
    assert_eq!(rows.len(), 3);
    t.finish().await;
}

#[tokio::test]
async fn outbox_ignores_a_duplicate_key_and_tracks_delivery() {
    let t = fresh().await;
    let db = &t.db;
    let now = t0();
    let origin = Origin {
        run_id: Some(1),
        step_index: Some(2),
        customer_id: 7,
        partition: Some(0),
    };
    assert!(
        outbox::enqueue(db, OutboxKind::Email, origin, json!({"subject": "a"}), "run-1-2", now)
            .await
            .unwrap()
    );
    assert!(
        !outbox::enqueue(db, OutboxKind::Email, origin, json!({"subject": "b"}), "run-1-2", now)
            .await
            .unwrap()
    );
    assert!(
        outbox::enqueue(db, OutboxKind::Sms, origin, json!({"text": "c"}), "run-1-3", now)
            .await
            .unwrap()
    );
    let due = outbox::due(db, now, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due[0].payload, json!({"subject": "a"}));
    assert_eq!(OutboxKind::from_name(&due[1].kind), Some(OutboxKind::Sms));

    outbox::mark_retry(db, due[0].id, "timeout", now + Duration::seconds(30))
        .await
        .unwrap();
    outbox::mark_delivered(db, due[1].id, now).await.unwrap();
    assert!(outbox::due(db, now, 10).await.unwrap().is_empty());
    let retry = outbox::due(db, now + Duration::seconds(30), 10).await.unwrap();
    assert_eq!(
        (retry[0].attempts, retry[0].last_error.as_deref()),
        (1, Some("timeout"))
    );
    outbox::mark_failed(db, retry[0].id, "gave up").await.unwrap();
    let failed = outbox::by_key(db, "run-1-2").await.unwrap().unwrap();
    assert_eq!((failed.status.as_str(), failed.attempts), ("failed", 2));
    let delivered = outbox::by_key(db, "run-1-3").await.unwrap().unwrap();
    assert_eq!(
        (delivered.status.as_str(), delivered.delivered_at),
        ("delivered", Some(now))
    );
    t.finish().await;
}

#[tokio::test]
async fn the_demo_seed_loads_twice_without_duplicating() {
    let t = fresh().await;
    let db = &t.db;
    let first = seed::load_demo(db, "http://127.0.0.1:9/first").await.unwrap();
    assert_eq!(first.workflows_created, 4);
    let counts = |db: &Database| {
        let db = db.clone();
        async move {
            (
                teams::Entity::find().count(&db).await.unwrap(),
                agents::Entity::find().count(&db).await.unwrap(),
                customers::Entity::find().count(&db).await.unwrap(),
                status_rows::Entity::find().count(&db).await.unwrap(),
                customer_statuses::Entity::find().count(&db).await.unwrap(),
                sms_providers::Entity::find().count(&db).await.unwrap(),
                webhook_endpoints::Entity::find().count(&db).await.unwrap(),
                workflows::versions(&db, "seed-example").await.unwrap().len(),
            )
        }
    };
    let before = counts(db).await;
    assert_eq!(before, (4, 6, 5, 10, 12, 2, 1, 1));
    let second = seed::load_demo(db, "http://127.0.0.1:9/second").await.unwrap();
    assert_eq!(second.workflows_created, 0);
    assert_eq!(counts(db).await, before);

    let ids: Vec<String> = workflows::list(db).await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(
        ids,
        ["seed-high-value", "seed-churning", "seed-example", "seed-onboarding"],
        "by priority"
    );
    let onboarding = workflows::get(db, "seed-onboarding").await.unwrap().unwrap();
    assert_eq!(onboarding.name, "New depositor onboarding");
    assert_eq!(onboarding.definition["actions"][0]["params"]["agent_id"], 4);

    let hook = webhook_endpoints::Entity::find().one(db).await.unwrap().unwrap();
    assert_eq!(
        (hook.name.as_str(), hook.url.as_str()),
        ("slack_notification", "http://127.0.0.1:9/second")
    );
    let active: Vec<String> = sms_providers::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.active)
        .map(|p| p.name)
        .collect();
    assert_eq!(active, ["demo-sms"]);
    let retention = teams::Entity::find_by_id(4).one(db).await.unwrap().unwrap();
    assert_eq!((retention.parent_id, retention.desk.as_str()), (Some(3), "retention"));
    let managers: Vec<Option<i64>> = agents::Entity::find()
        .all(db)
        .await
        .unwrap()
        .iter()
        .map(|a| a.manager_id)
        .collect();
    assert_eq!(managers, [Some(1), Some(1), Some(1), Some(4), Some(4), Some(4)]);
    // The seed is plain SQL data: the engine's field schema sees its statuses.
    let schema = statuses::field_schema(db).await.unwrap();
    assert!(!schema.fields_for("customer.deposited").is_empty());
    let _ = db.execute_unprepared("SELECT 1").await.unwrap();
    t.finish().await;
}

/// Records one run of `workflow_id` for `event_id` with `steps`, on partition 0.
async fn one_run(db: &Database, event_id: &str, workflow_id: &str, steps: Vec<ActionKind>) -> runs::Run {
    let fence = common::fence(db, 0).await;
    let planned = [PlannedRun {
        workflow_id: workflow_id.into(),
        workflow_version: 1,
        steps,
        paths: Vec::new(),
        limit: None,
        held_out: false,
        goal: None,
    }];
    runs::record_runs(db, fence, &event(event_id, 7), &planned, t0())
        .await
        .unwrap()
        .runs
        .remove(0)
}

#[tokio::test]
async fn a_retried_run_waits_from_its_failed_step_with_a_continuation_due_now() {
    use workflow_engine::storage::recovery::{self, RecoveryError};
    use workflow_engine::storage::steps;
    let t = fresh().await;
    let db = &t.db;
    let fence = common::fence(db, 0).await;
    let run = one_run(
        db,
        "evt-r",
        "w",
        vec![ActionKind::AddNote, ActionKind::Webhook, ActionKind::AddNote],
    )
    .await;
    let id = run.run.id;
    runs::complete_step(db, id, 0, 1, &json!({"note_id": 1}), t0())
        .await
        .unwrap();
    // Only a failed run can be retried.
    assert!(matches!(
        recovery::retry(db, id, t0()).await,
        Err(RecoveryError::WrongStatus { .. })
    ));
    steps::fail(db, fence, id, 1, "http 500", t0()).await.unwrap();

    let later = t0() + Duration::minutes(5);
    recovery::retry(db, id, later).await.unwrap();
    let retried = runs::get(db, id).await.unwrap().unwrap();
    assert_eq!((retried.run.status.as_str(), retried.run.next_step), ("waiting", 1));
    assert_eq!(retried.run.error, None);
    let statuses: Vec<&str> = retried.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, ["done", "pending", "pending"], "the done step stays done");
    assert_eq!(retried.steps[1].attempts, 1, "the failed attempt stays counted");
    let due = scheduled::list(db, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].run_id, due[0].due_at, due[0].partition), (id, later, 0));
    // The owner's resume path takes it: claimed, due, the run waiting.
    let claimed = scheduled::claim_due(db, "node", &[0], later, Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(steps::resumed(db, fence, id, "node", later).await.unwrap());
    let resumed = runs::get(db, id).await.unwrap().unwrap();
    assert_eq!((resumed.run.status.as_str(), resumed.run.next_step), ("running", 1));
    // A second retry of a run no longer failed is refused; an unknown run is not found.
    assert!(matches!(
        recovery::retry(db, id, later).await,
        Err(RecoveryError::WrongStatus { .. })
    ));
    assert!(matches!(
        recovery::retry(db, id + 1000, later).await,
        Err(RecoveryError::NotFound(_))
    ));
    t.finish().await;
}

#[tokio::test]
async fn a_cancelled_run_loses_its_continuation_and_never_resumes() {
    use workflow_engine::storage::recovery::{self, RecoveryError};
    use workflow_engine::storage::steps;
    let t = fresh().await;
    let db = &t.db;
    let fence = common::fence(db, 0).await;
    let run = one_run(db, "evt-c", "w", vec![ActionKind::Delay, ActionKind::AddNote]).await;
    let id = run.run.id;
    // A running run cannot be cancelled (its owner is working on it).
    runs::advance(db, id, 0, runs::status::RUNNING, t0()).await.unwrap();
    assert!(matches!(
        recovery::cancel(db, id, "test", t0()).await,
        Err(RecoveryError::WrongStatus { .. })
    ));
    steps::delay(db, fence, id, 0, 1, 7, 0, t0(), t0()).await.unwrap();
    // The owner claimed the continuation just before the cancel.
    let claimed = scheduled::claim_due(db, "node", &[0], t0(), Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    recovery::cancel(db, id, "cancelled by test", t0()).await.unwrap();
    let cancelled = runs::get(db, id).await.unwrap().unwrap();
    assert_eq!(cancelled.run.status, "cancelled");
    assert_eq!(cancelled.run.error.as_deref(), Some("cancelled by test"));
    assert!(scheduled::list(db, 10).await.unwrap().is_empty());
    // The claimed resume finds nothing to resume, and nothing wakes a cancelled run.
    assert!(!steps::resumed(db, fence, id, "node", t0()).await.unwrap());
    assert!(!runs::resume(db, id, t0()).await.unwrap());
    assert!(steps::unfinished(db, 0).await.unwrap().is_empty());
    assert_eq!(runs::get(db, id).await.unwrap().unwrap().run.status, "cancelled");
    // Over is over: neither a retry nor a second cancel applies.
    assert!(recovery::retry(db, id, t0()).await.is_err());
    assert!(recovery::cancel(db, id, "again", t0()).await.is_err());
    t.finish().await;
}

#[tokio::test]
async fn bulk_recovery_is_bounded_and_runs_page_by_cursor_and_time() {
    use workflow_engine::storage::recovery;
    use workflow_engine::storage::steps;
    let t = fresh().await;
    let db = &t.db;
    let fence = common::fence(db, 0).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let fence = common::fence(db, 0).await;
        let planned = [PlannedRun {
            workflow_id: if n < 4 { "a".into() } else { "b".into() },
            workflow_version: 1,
            steps: vec![ActionKind::AddNote],
            paths: Vec::new(),
            limit: None,
            held_out: false,
            goal: None,
        }];
        let at = t0() + Duration::minutes(n);
        let run = runs::record_runs(db, fence, &event(&format!("evt-{n}"), 7), &planned, at)
            .await
            .unwrap()
            .runs
            .remove(0);
        steps::fail(db, fence, run.run.id, 0, "boom", at).await.unwrap();
        ids.push(run.run.id);
    }
    // Pages of two, newest first, by cursor; and a time window.
    let page = |before_id: Option<i64>| RunFilter {
        before_id,
        limit: Some(2),
        ..Default::default()
    };
    let first = runs::list(db, &page(None)).await.unwrap();
    let second = runs::list(db, &page(Some(first[1].run.id))).await.unwrap();
    let third = runs::list(db, &page(Some(second[1].run.id))).await.unwrap();
    let seen: Vec<i64> = first.iter().chain(&second).chain(&third).map(|r| r.run.id).collect();
    assert_eq!(seen, ids.iter().rev().copied().collect::<Vec<_>>());
    let window = RunFilter {
        since: Some(t0() + Duration::minutes(1)),
        until: Some(t0() + Duration::minutes(3)),
        ..Default::default()
    };
    let inside: Vec<i64> = runs::list(db, &window)
        .await
        .unwrap()
        .iter()
        .map(|r| r.run.id)
        .collect();
    assert_eq!(inside, [ids[2], ids[1]]);

    // Bulk retry of workflow a, at most 3 at a time: the 3 newest, then the last one.
    let of_a = RunFilter {
        workflow_id: Some("a".into()),
        ..Default::default()
    };
    assert_eq!(recovery::retry_matching(db, &of_a, 3, t0()).await.unwrap(), 3);
    assert_eq!(recovery::retry_matching(db, &of_a, 3, t0()).await.unwrap(), 1);
    assert_eq!(recovery::retry_matching(db, &of_a, 3, t0()).await.unwrap(), 0);
    assert_eq!(scheduled::list(db, 10).await.unwrap().len(), 4);
    // Bulk cancel takes waiting and failed runs alike, and drops their continuations.
    let everything = RunFilter::default();
    assert_eq!(
        recovery::cancel_matching(db, &everything, "spring cleaning", 1000, t0())
            .await
            .unwrap(),
        5
    );
    assert!(scheduled::list(db, 10).await.unwrap().is_empty());
    let _ = fence;
    t.finish().await;
}

#[tokio::test]
async fn a_failed_delivery_is_queued_again_with_its_key_and_the_request_as_built_now() {
    use workflow_engine::outbound::OutboundRequest;
    use workflow_engine::storage::steps;
    let t = fresh().await;
    let db = &t.db;
    let fence = common::fence(db, 0).await;
    let run = one_run(db, "evt-o", "w", vec![ActionKind::Webhook]).await;
    let key = steps::idempotency_key(run.run.id, 0);
    let request = |url: &str| -> OutboundRequest {
        serde_json::from_value(json!({"kind": "webhook", "url": url, "headers": {}, "body": "{}"})).expect("a request")
    };
    let lease = ("node-a", t0() + chrono::Duration::seconds(60));
    let queued = steps::begin_external(
        db,
        fence,
        &run.run,
        (0, 1),
        ActionKind::Webhook,
        &request("http://old/x"),
        &key,
        lease,
        (false, None),
        t0(),
    )
    .await
    .unwrap();
    let steps::Begun::Send(queued) = queued else {
        panic!("nothing else holds the delivery")
    };
    let failed: Result<u16, String> = Err("http 500".into());
    steps::finish_external(
        db,
        fence,
        run.run.id,
        (0, 1),
        queued.outbox_id,
        3,
        &failed,
        &Default::default(),
        false,
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(runs::get(db, run.run.id).await.unwrap().unwrap().run.status, "failed");

    let again = steps::begin_external(
        db,
        fence,
        &run.run,
        (0, 1),
        ActionKind::Webhook,
        &request("http://fixed/x"),
        &key,
        lease,
        (false, None),
        t0(),
    )
    .await
    .unwrap();
    let steps::Begun::Send(again) = again else {
        panic!("nothing else holds the delivery")
    };
    assert_eq!(again.outbox_id, queued.outbox_id, "the same message, the same key");
    assert_eq!(again.attempts, 3, "attempts count on");
    assert_eq!(again.request, request("http://fixed/x"));
    let stored = outbox::by_key(db, &key).await.unwrap().unwrap();
    assert_eq!(stored.status, "pending");
    t.finish().await;
}

/// The outbox relay and the scheduler poll for claims every second or so. With nothing to
/// claim, a poll must only read: on SQLite a claim is a write, which waits out the busy
/// timeout (holding the engine's one pooled connection, so every other query of the
/// engine waits too) while another process holds the write lock, and then fails.
#[tokio::test]
async fn an_idle_claim_reads_and_does_not_wait_for_the_write_lock() {
    let t = fresh().await;
    if t.is_postgres() {
        // Row locks: claims on PostgreSQL never wait for the whole database.
        t.finish().await;
        return;
    }
    let db = &t.db;
    let blocker = Database::connect_with_pool(&t.url, Some(1)).await.unwrap();
    blocker.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();
    let events = outbox::claim_events(db, "node-a", &[0, 1], t0(), Duration::seconds(30), 10).await;
    let due = scheduled::claim_due(db, "node-a", &[0, 1], t0(), Duration::seconds(60), 10).await;
    blocker.execute_unprepared("COMMIT").await.unwrap();
    assert!(
        events.unwrap().is_empty(),
        "the relay's idle poll waited for the write lock"
    );
    assert!(
        due.unwrap().is_empty(),
        "the scheduler's idle poll waited for the write lock"
    );
    blocker.close().await.unwrap();
    t.finish().await;
}

/// A plan recorded before the event's identity was kept (security issue 22) is judged by
/// what its runs say: another customer's or another type's event with its id is refused;
/// the content, never recorded, is not compared. A plan without runs replays nothing, so
/// any event with its id replays it (nothing).
#[tokio::test]
async fn a_plan_from_before_the_identity_is_judged_by_its_runs() {
    let t = fresh().await;
    let db = &t.db;
    let fence = common::fence(db, 0).await;
    let planned = [PlannedRun {
        workflow_id: "a".into(),
        workflow_version: 1,
        steps: vec![ActionKind::AddNote],
        paths: Vec::new(),
        limit: None,
        held_out: false,
        goal: None,
    }];
    runs::record_runs(db, fence, &event("old-1", 7), &planned, t0())
        .await
        .unwrap();
    runs::record_runs(db, fence, &event("old-empty", 7), &[], t0())
        .await
        .unwrap();
    db.connection()
        .execute_unprepared("UPDATE event_plans SET customer_id = NULL, event_type = NULL, digest = NULL")
        .await
        .unwrap();

    let other_customer = runs::record_runs(db, fence, &event("old-1", 8), &planned, t0())
        .await
        .unwrap();
    assert_eq!(other_customer.refused, Some(Mismatch::Customer));
    assert!(other_customer.runs.is_empty());
    let mut other_type = event("old-1", 7);
    other_type.event_type = "customer.registered".into();
    let refused = runs::record_runs(db, fence, &other_type, &planned, t0()).await.unwrap();
    assert_eq!(refused.refused, Some(Mismatch::Type));
    let mut other_data = event("old-1", 7);
    other_data.data.insert("amount".into(), json!(11));
    let replayed = runs::record_runs(db, fence, &other_data, &planned, t0()).await.unwrap();
    assert!(replayed.replayed && replayed.refused.is_none());
    assert_eq!(replayed.runs.len(), 1);

    let empty = runs::record_runs(db, fence, &event("old-empty", 8), &planned, t0())
        .await
        .unwrap();
    assert!(empty.replayed && empty.runs.is_empty() && empty.refused.is_none());
    assert_eq!(runs::list(db, &RunFilter::default()).await.unwrap().len(), 1);
    t.finish().await;
}

/// One statement moves many customers' activity, each only forward, and a customer named
/// twice keeps the later time whatever the order (PostgreSQL's `UPDATE ... FROM` takes
/// any one of several joined rows, so the rows are coalesced first).
#[actix_rt::test]
async fn activity_moves_forward_only_many_customers_at_once() {
    use workflow_engine::storage::sync::touch_many;
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, [31, 32, 33]).await;
    let day = |d: i64| t0() + Duration::days(d);
    touch_many(db.connection(), &[(31, day(5)), (32, day(3))])
        .await
        .unwrap();
    touch_many(
        db.connection(),
        &[(31, day(4)), (32, day(9)), (32, day(7)), (33, day(1)), (999, day(1))],
    )
    .await
    .unwrap();
    let activity = |id: i64| async move {
        workflow_engine::storage::entities::customers::Entity::find_by_id(id)
            .one(db.connection())
            .await
            .unwrap()
            .and_then(|c| c.last_activity_at)
    };
    let expected = |d: i64| Some(day(d));
    assert_eq!(activity(31).await, expected(5), "not moved back");
    assert_eq!(activity(32).await, expected(9), "the later of two");
    assert_eq!(activity(33).await, expected(1));
    t.finish().await;
}
