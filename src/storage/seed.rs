//! Demo data: teams, agents, statuses, SMS providers, a webhook endpoint, five customers
//! and the seed's workflows, so `workflow-engine demo` and a fresh install have something
//! to run on. Loading it again changes nothing (except the webhook URL, which follows the
//! `webhook_url` given, so the demo can point it at its own listener).

use super::entities::{agents, customer_statuses, customers, sms_providers, teams, webhook_endpoints};
use super::{statuses, workflows, Database, StorageError};
use crate::conditions::Limits;
use crate::schema::FieldType;
use crate::validate::Validator;
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::{json, Value};

/// The seed's workflows (tests/fixtures/seed_workflows.json), compiled in so the binary
/// carries them.
pub const SEED_WORKFLOWS: &str = include_str!("../../tests/fixtures/seed_workflows.json");

/// The ids the seed workflows get, in the file's order.
pub const SEED_WORKFLOW_IDS: [&str; 4] = ["seed-example", "seed-onboarding", "seed-churning", "seed-high-value"];

/// Who the seed's workflow versions name as their author.
const SEED_AUTHOR: &str = "seed";

const STATUS_TYPES: [(&str, &[&str]); 3] = [
    ("sales", &["new", "contacted", "interested", "vip"]),
    ("kyc", &["pending", "approved", "rejected"]),
    ("retention", &["active", "churning", "dormant"]),
];

/// (id, name, parent, desk)
const TEAMS: [(i64, &str, Option<i64>, &str); 4] = [
    (1, "Sales", None, "sales"),
    (2, "Sales LatAm", Some(1), "sales"),
    (3, "Retention", None, "retention"),
    (4, "Retention VIP", Some(3), "retention"),
];

/// (id, name, team, manager)
const AGENTS: [(i64, &str, i64, i64); 6] = [
    (1, "Sofia Sales", 1, 1),
    (2, "Pedro Sales", 1, 1),
    (3, "Lucia LatAm", 2, 1),
    (4, "Rita Retention", 3, 4),
    (5, "Omar Retention", 3, 4),
    (6, "Vera VIP", 4, 4),
];

struct DemoCustomer {
    id: i64,
    first_name: &'static str,
    last_name: &'static str,
    country: &'static str,
    language: &'static str,
    balance: f64,
    agent: Option<(i64, i64)>,
    desk: &'static str,
    statuses: &'static [(&'static str, &'static str)],
    custom: fn() -> Value,
}

const CUSTOMERS: [DemoCustomer; 5] = [
    DemoCustomer {
        id: 1,
        first_name: "Ana",
        last_name: "Souza",
        country: "BR",
        language: "pt",
        balance: 2500.0,
        agent: Some((1, 1)),
        desk: "sales",
        statuses: &[("sales", "interested"), ("kyc", "approved"), ("retention", "churning")],
        custom: || json!({"source": "google", "vip_tier": "silver"}),
    },
    DemoCustomer {
        id: 2,
        first_name: "Bruno",
        last_name: "Lima",
        country: "BR",
        language: "pt",
        balance: 0.0,
        agent: Some((2, 1)),
        desk: "sales",
        statuses: &[("sales", "new"), ("kyc", "pending")],
        custom: || json!({"source": "affiliate"}),
    },
    DemoCustomer {
        id: 3,
        first_name: "Carla",
        last_name: "Ruiz",
        country: "MX",
        language: "es",
        balance: 800.0,
        agent: Some((3, 2)),
        desk: "sales",
        statuses: &[("sales", "contacted"), ("kyc", "approved"), ("retention", "active")],
        custom: || json!({}),
    },
    DemoCustomer {
        id: 4,
        first_name: "Dieter",
        last_name: "Braun",
        country: "DE",
        language: "de",
        balance: 42000.0,
        agent: Some((4, 3)),
        desk: "retention",
        statuses: &[("sales", "vip"), ("kyc", "approved"), ("retention", "dormant")],
        custom: || json!({"vip_tier": "gold"}),
    },
    DemoCustomer {
        id: 5,
        first_name: "Emma",
        last_name: "Clark",
        country: "GB",
        language: "en",
        balance: 0.0,
        agent: None,
        desk: "sales",
        statuses: &[("sales", "new")],
        custom: || json!({}),
    },
];

/// What a demo load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// Seed workflows saved by this call (0 when they were already there).
    pub workflows_created: usize,
}

/// [`load_demo`] with every integration pointed at one local stand-in at `base`: the
/// webhook endpoint at `{base}/slack`, the active SMS provider at `{base}/sms` (the demo,
/// benches and tests answer them themselves).
pub async fn load_demo_against(db: &Database, base: &str) -> Result<SeedReport, StorageError> {
    let report = load_demo(db, &format!("{base}/slack")).await?;
    sms_providers::Entity::update_many()
        .col_expr(
            sms_providers::Column::Url,
            sea_orm::sea_query::Expr::value(format!("{base}/sms")),
        )
        .filter(sms_providers::Column::Active.eq(true))
        .exec(db.connection())
        .await?;
    Ok(report)
}

/// Loads the demo data; safe to call on every start.
pub async fn load_demo(db: &Database, webhook_url: &str) -> Result<SeedReport, StorageError> {
    let now = Utc::now();
    let txn = db.begin().await?;
    for (type_name, names) in STATUS_TYPES {
        let type_id = statuses::ensure_status_type(&txn, type_name).await?;
        for name in names {
            statuses::ensure_status(&txn, type_id, name).await?;
        }
    }
    statuses::define_custom_field(&txn, "source", FieldType::String).await?;
    statuses::define_custom_field(&txn, "vip_tier", FieldType::String).await?;

    let team_rows = TEAMS.map(|(id, name, parent_id, desk)| teams::ActiveModel {
        id: Set(id),
        name: Set(name.to_owned()),
        parent_id: Set(parent_id),
        desk: Set(desk.to_owned()),
        rr_cursor: Set(0),
    });
    teams::Entity::insert_many(team_rows)
        .on_conflict(OnConflict::column(teams::Column::Id).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await?;
    let agent_rows = AGENTS.map(|(id, name, team_id, manager_id)| agents::ActiveModel {
        id: Set(id),
        name: Set(name.to_owned()),
        email: Set(format!(
            "{}@demo.example",
            name.split(' ').next().unwrap_or("agent").to_lowercase()
        )),
        team_id: Set(team_id),
        manager_id: Set(Some(manager_id)),
        active: Set(true),
    });
    agents::Entity::insert_many(agent_rows)
        .on_conflict(OnConflict::column(agents::Column::Id).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await?;

    // The active provider goes in only when no provider is active, as the partial unique
    // index allows one.
    let any_active = super::sms_providers::active(&txn).await?.is_some();
    for (name, url, active) in [
        ("demo-sms", "http://127.0.0.1:9/sms", !any_active),
        ("backup-sms", "http://127.0.0.1:9/backup-sms", false),
    ] {
        sms_providers::Entity::insert(sms_providers::ActiveModel {
            name: Set(name.to_owned()),
            url: Set(url.to_owned()),
            active: Set(active),
            ..Default::default()
        })
        .on_conflict(OnConflict::column(sms_providers::Column::Name).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await?;
    }
    webhook_endpoints::Entity::insert(webhook_endpoints::ActiveModel {
        name: Set("slack_notification".to_owned()),
        url: Set(webhook_url.to_owned()),
        secret: Set(None),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(webhook_endpoints::Column::Name)
            .update_column(webhook_endpoints::Column::Url)
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;

    let registered = at(2026, 11, 1);
    for c in &CUSTOMERS {
        let inserted = customers::Entity::insert(customers::ActiveModel {
            id: Set(c.id),
            first_name: Set(c.first_name.to_owned()),
            last_name: Set(c.last_name.to_owned()),
            email: Set(format!("{}.{}@example.com", c.first_name, c.last_name).to_lowercase()),
            phone: Set(format!("+1555000{:04}", c.id)),
            country: Set(c.country.to_owned()),
            language: Set(c.language.to_owned()),
            balance: Set(c.balance),
            registered_at: Set(Some(registered)),
            last_activity_at: Set(Some(registered)),
            agent_id: Set(c.agent.map(|(agent, _)| agent)),
            team_id: Set(c.agent.map(|(_, team)| team)),
            desk: Set(c.desk.to_owned()),
            active: Set(true),
            frozen: Set(false),
            custom_fields: Set((c.custom)()),
            updated_at: Set(now),
            // time zone UTC, no opt-outs: the columns' defaults
            ..Default::default()
        })
        .on_conflict(OnConflict::column(customers::Column::Id).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await?;
        if inserted == 0 {
            continue;
        }
        for (type_name, status) in c.statuses {
            let type_id = statuses::ensure_status_type(&txn, type_name).await?;
            let status_id = statuses::ensure_status(&txn, type_id, status).await?;
            customer_statuses::Entity::insert(customer_statuses::ActiveModel {
                customer_id: Set(c.id),
                status_type_id: Set(type_id),
                status_id: Set(status_id),
                updated_at: Set(now),
            })
            .on_conflict(
                OnConflict::columns([
                    customer_statuses::Column::CustomerId,
                    customer_statuses::Column::StatusTypeId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
    }
    txn.commit().await?;

    let mut report = SeedReport::default();
    let definitions: Vec<Value> = serde_json::from_str(SEED_WORKFLOWS).map_err(|e| StorageError::InvalidSeed {
        index: 0,
        message: e.to_string(),
    })?;
    let schema = statuses::field_schema(db).await?;
    let validator = Validator::new(&schema, Limits::default());
    for (index, (definition, id)) in definitions.into_iter().zip(SEED_WORKFLOW_IDS).enumerate() {
        if exists_ever(db, id).await? {
            continue;
        }
        let mut definition = definition;
        if let Value::Object(map) = &mut definition {
            map.insert("id".to_owned(), Value::from(id));
        }
        let validated = validator.workflow(&definition).map_err(|e| StorageError::InvalidSeed {
            index,
            message: e.to_string(),
        })?;
        workflows::create(db, &validated.workflow, SEED_AUTHOR).await?;
        report.workflows_created += 1;
    }
    Ok(report)
}

/// Whether a workflow with this id was ever saved: a seed workflow an operator deleted
/// stays deleted.
async fn exists_ever<C: ConnectionTrait>(conn: &C, id: &str) -> Result<bool, StorageError> {
    Ok(!workflows::newest_versions(conn, id, 1).await?.is_empty())
}

fn at(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 9, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}
