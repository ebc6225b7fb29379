//! The engine's own time-based events, queued in the outbox (the relay publishes them):
//! task.overdue once per task past its due time, and customer.inactive_days once per
//! customer, threshold and period of inactivity.

use super::entities::tasks;
use super::outbox::{self, Origin, OutboxKind};
use super::sql::statement;
use super::{Database, StorageError};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;

fn envelope(
    id: &str,
    event_type: &str,
    customer_id: i64,
    now: DateTime<Utc>,
    data: serde_json::Value,
) -> serde_json::Value {
    json!({"id": id, "type": event_type, "customer_id": customer_id, "occurred_at": now.to_rfc3339(), "data": data})
}

/// Queues task.overdue for up to `limit` open tasks past due that have not had it.
pub async fn overdue_tasks(db: &Database, now: DateTime<Utc>, limit: u64) -> Result<usize, StorageError> {
    let txn = db.begin().await?;
    let due = tasks::Entity::find()
        .filter(tasks::Column::Done.eq(false))
        .filter(tasks::Column::OverdueEmittedAt.is_null())
        .filter(tasks::Column::DueAt.lt(now))
        .order_by_asc(tasks::Column::DueAt)
        .limit(limit)
        .all(&txn)
        .await?;
    for task in &due {
        let id = format!("task-{}-overdue", task.id);
        let data = json!({"task": {"id": task.id, "type": task.task_type, "title": task.title,
            "due_at": task.due_at.to_rfc3339(), "assignee_id": task.assignee_id},
            "overdue_minutes": (now - task.due_at).num_minutes()});
        let origin = Origin {
            run_id: None,
            step_index: None,
            customer_id: task.customer_id,
            partition: None,
        };
        outbox::enqueue(
            &txn,
            OutboxKind::Event,
            origin,
            envelope(&id, "task.overdue", task.customer_id, now, data),
            &id,
            now,
        )
        .await?;
        txn.execute(statement(
            &txn,
            "UPDATE tasks SET overdue_emitted_at = $1 WHERE id = $2",
            vec![now.into(), task.id.into()],
        ))
        .await?;
    }
    txn.commit().await?;
    Ok(due.len())
}

#[derive(Debug, FromQueryResult)]
struct Idle {
    id: i64,
    last_activity_at: DateTime<Utc>,
}

/// Queues customer.inactive_days for customers whose last activity is at least `days` old,
/// once per threshold and period of inactivity: `inactivity_marks` remembers the last
/// activity time each threshold was emitted for, so new activity (written by the CRM)
/// starts a new period without the engine being told. The idempotency key holds both too,
/// so a rescan after a crash repeats nothing.
pub async fn inactive_customers(
    db: &Database,
    now: DateTime<Utc>,
    thresholds: &[u32],
    limit: u64,
) -> Result<usize, StorageError> {
    let mut queued = 0;
    let mut sorted = thresholds.to_vec();
    sorted.sort_unstable();
    for days in sorted {
        let cutoff = now - chrono::Duration::days(i64::from(days));
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        let txn = db.begin().await?;
        let idle = Idle::find_by_statement(statement(
            &txn,
            "SELECT c.id, c.last_activity_at FROM customers c \
             WHERE c.last_activity_at IS NOT NULL AND c.last_activity_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM inactivity_marks m \
                 WHERE m.customer_id = c.id AND m.days = $2 AND m.period_at = c.last_activity_at) \
             ORDER BY c.id LIMIT $3",
            vec![
                cutoff.into(),
                days.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .all(&txn)
        .await?;
        for customer in &idle {
            let last = customer.last_activity_at;
            let id = format!("customer-{}-inactive-{days}-{}", customer.id, last.timestamp());
            let data = json!({"days": days, "last_activity_at": last.to_rfc3339()});
            let origin = Origin {
                run_id: None,
                step_index: None,
                customer_id: customer.id,
                partition: None,
            };
            let envelope = envelope(&id, "customer.inactive_days", customer.id, now, data);
            if outbox::enqueue(&txn, OutboxKind::Event, origin, envelope, &id, now).await? {
                queued += 1;
            }
            txn.execute(statement(
                &txn,
                "INSERT INTO inactivity_marks (customer_id, days, period_at, emitted_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (customer_id, days) DO UPDATE SET period_at = excluded.period_at, emitted_at = excluded.emitted_at",
                vec![customer.id.into(), days.into(), last.into(), now.into()],
            ))
            .await?;
        }
        txn.commit().await?;
    }
    Ok(queued)
}
