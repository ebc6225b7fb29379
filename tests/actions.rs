//! The internal actions through their public entry point, on the demo data: each effect,
//! each failure (nothing applied, clear message), replays that repeat nothing, and the
//! round-robin and counter guarantees under concurrency (PostgreSQL).

mod common;

use common::{fresh, t0, TestDb};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use workflow_engine::actions::{is_internal, run_internal_step, ActionError, StepContext, StepOutcome};
use workflow_engine::catalogue::{Action, ActionKind, StatusRef};
use workflow_engine::conditions::Facts;
use workflow_engine::duration::Duration;
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::storage::entities::{agents, customers, manager_counters, notes, outbox, tasks, teams};
use workflow_engine::storage::runs::{self, PlannedRun};
use workflow_engine::storage::{customers as customer_repo, seed, Database};
use workflow_engine::template;

async fn demo() -> TestDb {
    let test = fresh().await;
    seed::load_demo(&test.db, "http://127.0.0.1:9/hook").await.unwrap();
    test
}

/// Records a one-step run of `action` for `customer_id` and returns its id.
async fn run_of(db: &Database, customer_id: i64, action: &Action) -> i64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let event = EventEnvelope::from_value(json!({
        "id": format!("evt-{}", SEQ.fetch_add(1, Ordering::Relaxed)),
        "type": "customer.deposited",
        "customer_id": customer_id,
        "data": {"amount": 1500},
    }))
    .unwrap();
    let planned = [PlannedRun {
        workflow_id: "wf-test".into(),
        workflow_version: 1,
        steps: vec![action.kind()],
        paths: Vec::new(),
        limit: None,
        held_out: false,
        goal: None,
    }];
    let fence = common::fence(db, 0).await;
    let recorded = runs::record_runs(db, fence, &event, &planned, t0()).await.unwrap();
    recorded.runs[0].run.id
}

/// Runs `action` as step 0 of a fresh run for `customer_id`, with the customer's snapshot
/// as template context.
async fn exec(db: &Database, customer_id: i64, action: &Action) -> (i64, Result<StepOutcome, ActionError>) {
    let run_id = run_of(db, customer_id, action).await;
    (run_id, exec_step(db, run_id, customer_id, action).await)
}

async fn exec_step(db: &Database, run_id: i64, customer_id: i64, action: &Action) -> Result<StepOutcome, ActionError> {
    let event = EventEnvelope::from_value(
        json!({"id": "x", "type": "customer.deposited", "customer_id": customer_id, "data": {"amount": 1500}}),
    )
    .unwrap();
    let customer = customer_repo::snapshot(db, customer_id)
        .await
        .unwrap()
        .unwrap_or_default();
    let context = template::context(&Facts::new(&event, &customer));
    let ctx = StepContext {
        fence: common::fence(db, 0).await,
        run_id,
        step_index: 0,
        next_step: 1,
        customer_id,
        workflow_id: "wf-test",
        facts_context: &context,
        now: t0(),
    };
    run_internal_step(db, &ctx, action).await
}

fn result(outcome: Result<StepOutcome, ActionError>) -> Value {
    match outcome {
        Ok(StepOutcome::Done { result }) => result,
        other => panic!("expected done, got {other:?}"),
    }
}

fn error(outcome: Result<StepOutcome, ActionError>) -> String {
    match outcome {
        Err(e) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn customer(db: &Database, id: i64) -> customers::Model {
    customers::Entity::find_by_id(id).one(db).await.unwrap().unwrap()
}

async fn step_status(db: &Database, run_id: i64) -> (String, i32, i32) {
    let run = runs::get(db, run_id).await.unwrap().unwrap();
    (run.steps[0].status.clone(), run.steps[0].attempts, run.run.next_step)
}

#[tokio::test]
async fn assign_to_team_round_robins_over_the_team_and_its_sub_teams() {
    let t = demo().await;
    let db = &t.db;
    // Team 1 has agents 1, 2 and, through its sub-team 2, agent 3.
    let mut picked = Vec::new();
    for _ in 0..4 {
        let (_, outcome) = exec(db, 5, &Action::AssignToTeam { team_id: 1 }).await;
        picked.push(result(outcome)["agent_id"].as_i64().unwrap());
    }
    assert_eq!(picked, [1, 2, 3, 1]);
    let c = customer(db, 5).await;
    assert_eq!((c.agent_id, c.team_id, c.desk.as_str()), (Some(1), Some(1), "sales"));

    let (_, outcome) = exec(db, 5, &Action::AssignToTeam { team_id: 2 }).await;
    assert_eq!(result(outcome)["agent_id"], 3);
    assert_eq!(customer(db, 5).await.team_id, Some(2));
    t.finish().await;
}

#[tokio::test]
async fn assign_to_team_failures_change_nothing() {
    let t = demo().await;
    let db = &t.db;
    let before = customer(db, 2).await;
    let (run_id, outcome) = exec(db, 2, &Action::AssignToTeam { team_id: 99 }).await;
    assert_eq!(error(outcome), "no team 99");
    assert_eq!(step_status(db, run_id).await, ("pending".into(), 0, 0));

    // Team 3 and its sub-team lose their active agents.
    agents::Entity::update_many()
        .col_expr(agents::Column::Active, sea_orm::sea_query::Expr::value(false))
        .filter(agents::Column::TeamId.is_in([3, 4]))
        .exec(db)
        .await
        .unwrap();
    let (_, outcome) = exec(db, 2, &Action::AssignToTeam { team_id: 3 }).await;
    assert_eq!(error(outcome), "team 3 has no active agent");
    let (_, outcome) = exec(db, 2, &Action::HandoverToRetention { team_id: None }).await;
    assert_eq!(error(outcome), "team 3 has no active agent");
    assert_eq!(customer(db, 2).await, before);
    let cursor = teams::Entity::find_by_id(3).one(db).await.unwrap().unwrap().rr_cursor;
    assert_eq!(cursor, 0, "a failed assignment takes no turn");

    let (_, outcome) = exec(db, 42, &Action::AssignToTeam { team_id: 1 }).await;
    assert_eq!(error(outcome), "customer 42 not found");
    t.finish().await;
}

#[tokio::test]
async fn a_failure_is_recorded_by_the_caller_and_a_retry_can_succeed() {
    let t = demo().await;
    let db = &t.db;
    let (run_id, outcome) = exec(db, 2, &Action::AssignToAgent { agent_id: 77 }).await;
    let message = error(outcome);
    assert_eq!(message, "no agent 77");
    runs::mark_step_failed(db, run_id, 0, &message, t0()).await.unwrap();
    let run = runs::get(db, run_id).await.unwrap().unwrap();
    assert_eq!(run.steps[0].status, "failed");
    assert_eq!(run.steps[0].attempts, 1);
    assert_eq!(run.steps[0].error.as_deref(), Some("no agent 77"));
    assert_eq!(run.run.error.as_deref(), Some("no agent 77"));

    let outcome = exec_step(db, run_id, 2, &Action::AssignToAgent { agent_id: 5 }).await;
    assert_eq!(result(outcome)["agent_id"], 5);
    assert_eq!(step_status(db, run_id).await, ("done".into(), 2, 1));
    t.finish().await;
}

#[tokio::test]
async fn assign_to_agent_needs_an_active_agent() {
    let t = demo().await;
    let db = &t.db;
    let (_, outcome) = exec(db, 5, &Action::AssignToAgent { agent_id: 6 }).await;
    assert_eq!(
        result(outcome),
        json!({"agent_id": 6, "team_id": 4, "desk": "retention"})
    );
    let c = customer(db, 5).await;
    assert_eq!(
        (c.agent_id, c.team_id, c.desk.as_str()),
        (Some(6), Some(4), "retention")
    );

    agents::Entity::update_many()
        .col_expr(agents::Column::Active, sea_orm::sea_query::Expr::value(false))
        .filter(agents::Column::Id.eq(2))
        .exec(db)
        .await
        .unwrap();
    let (_, outcome) = exec(db, 5, &Action::AssignToAgent { agent_id: 2 }).await;
    assert_eq!(error(outcome), "agent 2 is not active");
    let (_, outcome) = exec(db, 5, &Action::AssignToAgent { agent_id: 99 }).await;
    assert_eq!(error(outcome), "no agent 99");
    assert_eq!(customer(db, 5).await.agent_id, Some(6));
    t.finish().await;
}

#[tokio::test]
async fn reassign_round_robin_never_keeps_the_current_agent() {
    let t = demo().await;
    let db = &t.db;
    // Customer 1 is with agent 1 in team 1 (agents 1, 2 and, in sub-team 2, agent 3). The
    // first turn would be agent 1 again: it is skipped.
    let (_, outcome) = exec(db, 1, &Action::ReassignRoundRobin).await;
    assert_eq!(result(outcome)["agent_id"], 2);
    let (_, outcome) = exec(db, 1, &Action::ReassignRoundRobin).await;
    assert_eq!(result(outcome)["agent_id"], 3);
    // The customer now belongs to agent 3's team, Sales LatAm, where agent 3 is alone: a
    // team with one active agent keeps that agent.
    let c = customer(db, 1).await;
    assert_eq!((c.agent_id, c.team_id), (Some(3), Some(2)));
    let (_, outcome) = exec(db, 1, &Action::ReassignRoundRobin).await;
    assert_eq!(result(outcome)["agent_id"], 3);

    // Customer 2 (agent 2, team 1): turns go on from the team's cursor, never to agent 2.
    for _ in 0..4 {
        let before = customer(db, 2).await.agent_id;
        let (_, outcome) = exec(db, 2, &Action::ReassignRoundRobin).await;
        assert_ne!(result(outcome)["agent_id"].as_i64(), before);
        // Back to team 1 for the next round.
        customers::Entity::update_many()
            .col_expr(customers::Column::TeamId, sea_orm::sea_query::Expr::value(1))
            .filter(customers::Column::Id.eq(2))
            .exec(db)
            .await
            .unwrap();
    }

    // Customer 5 has no team.
    let (_, outcome) = exec(db, 5, &Action::ReassignRoundRobin).await;
    assert_eq!(error(outcome), "customer 5 has no team");

    t.finish().await;
}

#[tokio::test]
async fn handover_to_retention_moves_desk_and_notes_it() {
    let t = demo().await;
    let db = &t.db;
    let (_, outcome) = exec(db, 2, &Action::HandoverToRetention { team_id: None }).await;
    let r = result(outcome);
    // The root retention team is 3: agents 4, 5 and, through team 4, agent 6.
    assert_eq!(r["agent_id"], 4);
    let c = customer(db, 2).await;
    assert_eq!(
        (c.agent_id, c.team_id, c.desk.as_str()),
        (Some(4), Some(3), "retention")
    );
    let feed = notes::Entity::find()
        .filter(notes::Column::CustomerId.eq(2))
        .all(db)
        .await
        .unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].body, "Handed over to retention: Rita Retention");
    assert_eq!(feed[0].author, "workflow:wf-test");

    let (_, outcome) = exec(db, 2, &Action::HandoverToRetention { team_id: Some(4) }).await;
    assert_eq!(result(outcome)["agent_id"], 6);
    let (_, outcome) = exec(db, 2, &Action::HandoverToRetention { team_id: Some(1) }).await;
    assert_eq!(error(outcome), "team 1 is not on the retention desk");
    let (_, outcome) = exec(db, 2, &Action::HandoverToRetention { team_id: Some(99) }).await;
    assert_eq!(error(outcome), "no team 99");
    t.finish().await;
}

#[tokio::test]
async fn set_status_by_name_and_id_emits_the_right_event() {
    let t = demo().await;
    let db = &t.db;
    let (run_id, outcome) = exec(
        db,
        2,
        &Action::SetStatus {
            status_type: "sales".into(),
            status: StatusRef::Name("vip".into()),
        },
    )
    .await;
    let r = result(outcome);
    assert_eq!(r["new_status"], "vip");
    assert_eq!(r["changed"], true);
    let snap = customer_repo::snapshot(db, 2).await.unwrap().unwrap();
    assert_eq!(snap["sales_status"], "vip");
    assert_eq!(snap["sales_status_id"], r["new_status_id"]);

    let key = format!("run-{run_id}-0-status");
    let msg = outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.eq(key.as_str()))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.kind, "event");
    assert_eq!(msg.payload["id"], key);
    assert_eq!(msg.payload["type"], "customer.status_changed");
    assert_eq!(msg.payload["customer_id"], 2);
    assert_eq!(msg.payload["occurred_at"], "2026-11-25T10:00:00Z");
    assert_eq!(msg.payload["data"]["old_status"], "new");
    assert_eq!(msg.payload["data"]["new_status"], "vip");
    assert_eq!(msg.payload["data"]["status_type"], "sales");

    // By id, on the retention type, which customer 2 had none of.
    let churning = snap_status_id(db, "retention", "churning").await;
    let (run_id, outcome) = exec(
        db,
        2,
        &Action::SetStatus {
            status_type: "retention".into(),
            status: StatusRef::Id(churning),
        },
    )
    .await;
    assert_eq!(result(outcome)["new_status"], "churning");
    let msg = outbox::Entity::find()
        .filter(outbox::Column::RunId.eq(run_id))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.payload["type"], "customer.retention_changed");
    assert_eq!(msg.payload["data"]["old_status_id"], Value::Null);
    assert_eq!(msg.payload["data"]["old_status"], Value::Null);

    // The same status again changes nothing and announces nothing.
    let (run_id, outcome) = exec(
        db,
        2,
        &Action::SetStatus {
            status_type: "retention".into(),
            status: StatusRef::Name("churning".into()),
        },
    )
    .await;
    assert_eq!(result(outcome)["changed"], false);
    let none = outbox::Entity::find()
        .filter(outbox::Column::RunId.eq(run_id))
        .one(db)
        .await
        .unwrap();
    assert!(none.is_none());
    t.finish().await;
}

async fn snap_status_id(db: &Database, type_name: &str, name: &str) -> i64 {
    let types = workflow_engine::storage::statuses::status_types(db).await.unwrap();
    types
        .iter()
        .find(|t| t.name == type_name)
        .and_then(|t| t.statuses.iter().find(|s| s.name == name))
        .map(|s| s.id)
        .unwrap()
}

#[tokio::test]
async fn set_status_failures() {
    let t = demo().await;
    let db = &t.db;
    let before = customer_repo::snapshot(db, 1).await.unwrap();
    let set = |status_type: &str, status: StatusRef| Action::SetStatus {
        status_type: status_type.into(),
        status,
    };
    let (_, outcome) = exec(db, 1, &set("sales", StatusRef::Name("gold".into()))).await;
    assert_eq!(error(outcome), "no sales status named \"gold\"");
    let approved = snap_status_id(db, "kyc", "approved").await;
    let (_, outcome) = exec(db, 1, &set("sales", StatusRef::Id(approved))).await;
    assert_eq!(error(outcome), format!("status {approved} is not a sales status"));
    let (_, outcome) = exec(db, 1, &set("sales", StatusRef::Id(9999))).await;
    assert_eq!(error(outcome), "no status 9999");
    let (_, outcome) = exec(db, 1, &set("mood", StatusRef::Name("happy".into()))).await;
    assert_eq!(error(outcome), "no status type \"mood\"");
    let (_, outcome) = exec(db, 42, &set("sales", StatusRef::Name("vip".into()))).await;
    assert_eq!(error(outcome), "customer 42 not found");
    assert_eq!(customer_repo::snapshot(db, 1).await.unwrap(), before);
    assert!(outbox::Entity::find().one(db).await.unwrap().is_none());
    t.finish().await;
}

#[tokio::test]
async fn create_task_renders_its_title_and_goes_to_the_agent() {
    let t = demo().await;
    let db = &t.db;
    let action = Action::CreateTask {
        title: "Call {{customer.first_name}} about {{event.amount}}".into(),
        task_type: Some("call".into()),
        due_in: Duration::Days(2),
    };
    let (run_id, outcome) = exec(db, 1, &action).await;
    let r = result(outcome);
    let task = tasks::Entity::find_by_id(r["task_id"].as_i64().unwrap())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task.title, "Call Ana about 1500");
    assert_eq!(task.task_type.as_deref(), Some("call"));
    assert_eq!(task.due_at, t0() + chrono::Duration::days(2));
    assert_eq!(task.assignee_id, Some(1));
    assert_eq!(
        (task.run_id, task.step_index, task.done),
        (Some(run_id), Some(0), false)
    );

    // A customer with no agent gets an unassigned task.
    let (_, outcome) = exec(db, 5, &action).await;
    assert_eq!(result(outcome)["assignee_id"], Value::Null);
    let (_, outcome) = exec(db, 42, &action).await;
    assert_eq!(error(outcome), "customer 42 not found");
    t.finish().await;
}

#[tokio::test]
async fn add_note_is_signed_by_the_workflow() {
    let t = demo().await;
    let db = &t.db;
    let (_, outcome) = exec(
        db,
        3,
        &Action::AddNote {
            body: "Deposit of {{event.amount}} by {{customer.first_name}} ({{customer.country}})".into(),
        },
    )
    .await;
    let id = result(outcome)["note_id"].as_i64().unwrap();
    let note = notes::Entity::find_by_id(id).one(db).await.unwrap().unwrap();
    assert_eq!(note.body, "Deposit of 1500 by Carla (MX)");
    assert_eq!((note.customer_id, note.author.as_str()), (3, "workflow:wf-test"));
    let (_, outcome) = exec(db, 42, &Action::AddNote { body: "x".into() }).await;
    assert_eq!(error(outcome), "customer 42 not found");
    t.finish().await;
}

#[tokio::test]
async fn increment_manager_counter_adds_to_the_agents_manager() {
    let t = demo().await;
    let db = &t.db;
    let inc = |by| Action::IncrementManagerCounter {
        counter: "ftd".into(),
        by,
    };
    // Customer 3's agent 3 reports to manager 1; customer 4's agent 4 to manager 4.
    let (_, outcome) = exec(db, 3, &inc(1)).await;
    assert_eq!(result(outcome)["value"], 1);
    let (_, outcome) = exec(db, 3, &inc(5)).await;
    assert_eq!(
        result(outcome),
        json!({"manager_id": 1, "counter": "ftd", "by": 5, "value": 6})
    );
    let (_, outcome) = exec(db, 4, &inc(-2)).await;
    assert_eq!(result(outcome)["value"], -2);
    let counters = manager_counters::Entity::find()
        .order_by_asc(manager_counters::Column::ManagerId)
        .all(db)
        .await
        .unwrap();
    let values: Vec<(i64, i64)> = counters.iter().map(|c| (c.manager_id, c.value)).collect();
    assert_eq!(values, [(1, 6), (4, -2)]);

    let (_, outcome) = exec(db, 5, &inc(1)).await;
    assert_eq!(error(outcome), "customer 5 has no agent");
    agents::Entity::update_many()
        .col_expr(
            agents::Column::ManagerId,
            sea_orm::sea_query::Expr::value(Option::<i64>::None),
        )
        .filter(agents::Column::Id.eq(2))
        .exec(db)
        .await
        .unwrap();
    let (_, outcome) = exec(db, 2, &inc(1)).await;
    assert_eq!(error(outcome), "agent 2 has no manager");
    t.finish().await;
}

#[tokio::test]
async fn flags_set_active_and_freeze_with_a_compliance_event() {
    let t = demo().await;
    let db = &t.db;
    let (_, outcome) = exec(db, 4, &Action::SetCustomerActive { active: false }).await;
    assert_eq!(result(outcome), json!({"active": false, "was_active": true}));
    assert!(!customer(db, 4).await.active);

    let (run_id, outcome) = exec(
        db,
        4,
        &Action::FreezeAccount {
            reason: "Deposit of {{event.amount}} flagged".into(),
        },
    )
    .await;
    assert_eq!(result(outcome)["frozen"], true);
    assert!(customer(db, 4).await.frozen);
    let msg = outbox::Entity::find()
        .filter(outbox::Column::RunId.eq(run_id))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.idempotency_key, format!("run-{run_id}-0-freeze"));
    assert_eq!(msg.payload["type"], "compliance.freeze_requested");
    assert_eq!(msg.payload["data"]["reason"], "Deposit of 1500 flagged");
    let (_, outcome) = exec(db, 42, &Action::SetCustomerActive { active: true }).await;
    assert_eq!(error(outcome), "customer 42 not found");
    t.finish().await;
}

#[tokio::test]
async fn a_replayed_step_repeats_nothing() {
    let t = demo().await;
    let db = &t.db;
    let actions = [
        Action::AssignToTeam { team_id: 1 },
        Action::AddNote { body: "hello".into() },
        Action::IncrementManagerCounter {
            counter: "calls".into(),
            by: 1,
        },
        Action::FreezeAccount { reason: "r".into() },
        Action::CreateTask {
            title: "t".into(),
            task_type: None,
            due_in: Duration::Hours(1),
        },
    ];
    for action in &actions {
        let (run_id, outcome) = exec(db, 1, action).await;
        assert!(matches!(outcome, Ok(StepOutcome::Done { .. })));
        let snapshot = (
            customer(db, 1).await,
            notes::Entity::find().all(db).await.unwrap(),
            manager_counters::Entity::find().all(db).await.unwrap(),
            outbox::Entity::find().all(db).await.unwrap(),
            tasks::Entity::find().all(db).await.unwrap(),
            teams::Entity::find().all(db).await.unwrap(),
        );
        let again = exec_step(db, run_id, 1, action).await.unwrap();
        assert_eq!(again, StepOutcome::AlreadyDone);
        let after = (
            customer(db, 1).await,
            notes::Entity::find().all(db).await.unwrap(),
            manager_counters::Entity::find().all(db).await.unwrap(),
            outbox::Entity::find().all(db).await.unwrap(),
            tasks::Entity::find().all(db).await.unwrap(),
            teams::Entity::find().all(db).await.unwrap(),
        );
        assert_eq!(after, snapshot, "replay of {:?} changed something", action.kind());
        assert_eq!(step_status(db, run_id).await, ("done".into(), 1, 1));
    }
    t.finish().await;
}

#[tokio::test]
async fn only_internal_actions_run_here_and_only_on_recorded_steps() {
    let t = demo().await;
    let db = &t.db;
    let internal: Vec<&str> = ActionKind::ALL
        .into_iter()
        .filter(|k| is_internal(*k))
        .map(|k| k.name())
        .collect();
    assert_eq!(internal.len(), 10);
    assert!(!internal.contains(&"delay") && !internal.contains(&"send_email"));
    let (_, outcome) = exec(
        db,
        1,
        &Action::SendSms {
            template: None,
            text: Some("x".into()),
        },
    )
    .await;
    assert_eq!(error(outcome), "send_sms is not an internal action");
    let outcome = exec_step(db, 9999, 1, &Action::AddNote { body: "x".into() }).await;
    assert_eq!(error(outcome), "run 9999 has no step 0");
    t.finish().await;
}

/// Several processes sharing one PostgreSQL: 8 tasks with their own pools each assign 25
/// times over one team of 4 agents; every agent gets exactly 50 turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(wfe_postgres), ignore = "needs PostgreSQL in WFE_TEST_DATABASE_URL")]
async fn concurrent_round_robin_is_exact_on_postgres() {
    let t = demo().await;
    assert!(
        t.is_postgres(),
        "built for PostgreSQL but {} is not set",
        common::PG_ENV
    );
    // Team 3 plus sub-team 4 has agents 4, 5, 6; one more makes 4.
    agents::Entity::insert(agents::ActiveModel {
        id: sea_orm::Set(7),
        name: sea_orm::Set("Extra Retention".into()),
        email: sea_orm::Set("extra@demo.example".into()),
        team_id: sea_orm::Set(3),
        manager_id: sea_orm::Set(Some(4)),
        active: sea_orm::Set(true),
    })
    .exec(&t.db)
    .await
    .unwrap();
    let action = Action::AssignToTeam { team_id: 3 };
    // Spread over the five customers, so assigners meet at the team's cursor rather than
    // queueing on one customer's row.
    let mut runs_per_task = Vec::new();
    for task in 0..8 {
        let mut ids = Vec::new();
        for i in 0..25 {
            let customer_id = 1 + (task + i) % 5;
            ids.push((run_of(&t.db, customer_id, &action).await, customer_id));
        }
        runs_per_task.push(ids);
    }
    let mut handles = Vec::new();
    for ids in runs_per_task {
        let db = t.connect_again().await;
        let action = action.clone();
        handles.push(tokio::spawn(async move {
            let mut agents = Vec::new();
            for (run_id, customer_id) in ids {
                let r = result(exec_step(&db, run_id, customer_id, &action).await);
                agents.push(r["agent_id"].as_i64().unwrap());
            }
            db.close().await.unwrap();
            agents
        }));
    }
    let mut counts = std::collections::BTreeMap::new();
    for h in handles {
        for agent in h.await.unwrap() {
            *counts.entry(agent).or_insert(0) += 1;
        }
    }
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [(4, 50), (5, 50), (6, 50), (7, 50)]
    );
    let cursor = teams::Entity::find_by_id(3)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap()
        .rr_cursor;
    assert_eq!(cursor, 200);
    t.finish().await;
}

/// 200 concurrent increments from 8 pools add up to exactly 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(wfe_postgres), ignore = "needs PostgreSQL in WFE_TEST_DATABASE_URL")]
async fn concurrent_counter_increments_are_exact_on_postgres() {
    let t = demo().await;
    assert!(
        t.is_postgres(),
        "built for PostgreSQL but {} is not set",
        common::PG_ENV
    );
    let action = Action::IncrementManagerCounter {
        counter: "deposits".into(),
        by: 1,
    };
    let mut handles = Vec::new();
    for task in 0..8 {
        let mut ids = Vec::new();
        for i in 0..25 {
            // Customers 1..3 share manager 1.
            let customer_id = 1 + (task + i) % 3;
            ids.push((run_of(&t.db, customer_id, &action).await, customer_id));
        }
        let db = t.connect_again().await;
        let action = action.clone();
        handles.push(tokio::spawn(async move {
            for (run_id, customer_id) in ids {
                result(exec_step(&db, run_id, customer_id, &action).await);
            }
            db.close().await.unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let counter = manager_counters::Entity::find()
        .filter(manager_counters::Column::Counter.eq("deposits"))
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((counter.manager_id, counter.value), (1, 200));
    t.finish().await;
}
