//! The delivery outbox: emails, SMS, webhooks and events to publish, written in the
//! transaction of the step that wants them, delivered afterwards at least once.
//!
//! The idempotency key (run id + step) is unique, so a replayed step cannot queue a
//! message twice, and it travels with the message so receivers can drop duplicates.

use super::entities::outbox;
use super::sql::statement;
use super::StorageError;
use crate::envelope::{Cause, EventEnvelope};
use crate::trace::TraceParent;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A queued message.
pub type OutboxMessage = outbox::Model;

/// An email, SMS or webhook request as the outbox keeps it (built when its step runs, by
/// `outbound::build`). `body` is the exact JSON text sent (and signed),
/// kept as text so a database's JSON normalisation cannot change its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundRequest {
    /// email, sms or webhook: a metric label.
    pub kind: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// The keyring id (`outbound::signing::Keyring`) of the secrets that sign this request when it is sent;
    /// `None` = unsigned. A reference, never the secret: the outbox row stores this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// The keyring id of the target's `auth` credentials, applied when sent; `None` =
    /// none. A reference, for the same reason as `signing_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<String>,
    /// The destination is one the engine's configuration file names (`delivery.email_url`),
    /// not one an API caller or a workflow chose: the sender trusts it past the outbound
    /// guard while the configuration still names that URL ([`DeliveryPolicy::trusts`]).
    ///
    /// [`DeliveryPolicy::trusts`]: crate::outbound::send::DeliveryPolicy::trusts
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub configured: bool,
    /// Keep the 2xx answer's body (JSON, at most 64 KiB): a journey's step reads it as
    /// `steps.<name>.response`, or saves fields of it (`"save"`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_response: bool,
    /// The destination's rate limit as it was when the step was queued; `None` = none.
    /// Every attempt waits for a slot under it ([`super::rates`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<super::rates::Rate>,
}

/// What the delivery pool does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    Email,
    Sms,
    Webhook,
    /// An event envelope to publish on the topic (e.g. customer.status_changed).
    Event,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Email => "email",
            OutboxKind::Sms => "sms",
            OutboxKind::Webhook => "webhook",
            OutboxKind::Event => "event",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            OutboxKind::Email,
            OutboxKind::Sms,
            OutboxKind::Webhook,
            OutboxKind::Event,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

/// Message statuses, as stored.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const DELIVERED: &str = "delivered";
    pub const FAILED: &str = "failed";
}

/// Where a message comes from, for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub run_id: Option<i64>,
    pub step_index: Option<i32>,
    pub customer_id: i64,
    /// The partition of the run that queued it: its owner's relay publishes it. `None`
    /// for messages any process may publish.
    pub partition: Option<i32>,
}

/// Queues a message, due at once. Returns false, changing nothing, when a message with
/// the same idempotency key exists.
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    kind: OutboxKind,
    origin: Origin,
    payload: Value,
    idempotency_key: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let inserted = outbox::Entity::insert(outbox::ActiveModel {
        kind: Set(kind.as_str().to_owned()),
        run_id: Set(origin.run_id),
        step_index: Set(origin.step_index),
        customer_id: Set(origin.customer_id),
        payload: Set(payload),
        idempotency_key: Set(idempotency_key.to_owned()),
        status: Set(status::PENDING.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        delivered_at: Set(None),
        created_at: Set(now),
        partition: Set(origin.partition),
        claimed_by: Set(None),
        claimed_until: Set(None),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(outbox::Column::IdempotencyKey)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(inserted > 0)
}

/// Pending messages whose next attempt is due, oldest first.
pub async fn due<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<OutboxMessage>, StorageError> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::Status.eq(status::PENDING))
        .filter(outbox::Column::NextAttemptAt.lte(now))
        .order_by_asc(outbox::Column::NextAttemptAt)
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

/// Claims up to `limit` pending events the engine emits (kind `event`), oldest first, for
/// `node`'s relay, for `lease`: those of `partitions` (the ones `node` owns) and those
/// of no partition, not under another live claim. So N processes publish each event once
/// (a second time only if a claim runs out before its event is marked delivered), and a
/// partition's events are published by one process, in order.
pub async fn claim_events<C: ConnectionTrait>(
    conn: &C,
    node: &str,
    partitions: &[i32],
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: u64,
) -> Result<Vec<OutboxMessage>, StorageError> {
    // Partition numbers are integers, so listing them inline is safe (see scheduled.rs).
    let owned = if partitions.is_empty() {
        String::new()
    } else {
        let list = partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
        format!(" OR partition IN ({list})")
    };
    let lock = match conn.get_database_backend() {
        sea_orm::DbBackend::Postgres => "FOR UPDATE SKIP LOCKED",
        _ => "",
    };
    // Pending events of this node's partitions (or of none), due, under no live claim, with
    // the status, kind and time as parameters $s, $k and $t.
    let claimable = |s: u8, k: u8, t: u8| {
        format!(
            "status = ${s} AND kind = ${k} AND next_attempt_at <= ${t} AND (partition IS NULL{owned}) \
             AND (claimed_until IS NULL OR claimed_until <= ${t})"
        )
    };
    // Look before claiming: the claim is a write, and on SQLite a write waits for (and
    // holds the one pooled connection through) any other process's write lock, so an idle
    // poll must not be one.
    let probe = format!("SELECT 1 AS one FROM outbox WHERE {} LIMIT 1", claimable(1, 2, 3));
    let values = vec![status::PENDING.into(), OutboxKind::Event.as_str().into(), now.into()];
    if conn.query_one(statement(conn, &probe, values)).await?.is_none() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE outbox SET claimed_by = $1, claimed_until = $2 \
         WHERE id IN (SELECT id FROM outbox WHERE {} \
           ORDER BY id LIMIT $6 {lock}) \
         RETURNING *",
        claimable(3, 4, 5)
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .query_all(statement(
            conn,
            &sql,
            vec![
                node.into(),
                (now + lease).into(),
                status::PENDING.into(),
                OutboxKind::Event.as_str().into(),
                now.into(),
                limit.into(),
            ],
        ))
        .await?;
    let mut claimed = rows
        .iter()
        .map(|row| OutboxMessage::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|m| m.id);
    Ok(claimed)
}

/// The trace contexts of the runs that queued `messages`, by run id: an emitted event
/// is published with its run's `traceparent` (see [`crate::trace`]). One query for a batch.
pub async fn run_traces<C: ConnectionTrait>(
    conn: &C,
    messages: &[OutboxMessage],
) -> Result<std::collections::HashMap<i64, TraceParent>, StorageError> {
    let mut ids: Vec<i64> = messages.iter().filter_map(|m| m.run_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    // Run ids are integers, so listing them inline is safe (see scheduled.rs).
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT id, traceparent FROM runs WHERE id IN ({list}) AND traceparent IS NOT NULL");
    let rows = conn.query_all(statement(conn, &sql, vec![])).await?;
    let mut traces = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("", "id")?;
        let text: String = row.try_get("", "traceparent")?;
        if let Ok(trace) = text.parse() {
            traces.insert(id, trace);
        }
    }
    Ok(traces)
}

/// The run that emitted `event`, when the engine did: the outbox holds an event under the
/// event's id (an emitted event's id is its idempotency key) for the same customer, of the
/// same type, with the same data and the same cause, queued by a run. `None` for an event
/// from outside, and for one whose cause was forged or altered: the cause is then a claim
/// nobody vouches for (guards::cascade).
pub async fn emitted_by<C: ConnectionTrait>(conn: &C, event: &EventEnvelope) -> Result<Option<i64>, StorageError> {
    let Some(claimed) = &event.cause else {
        return Ok(None);
    };
    let Some(row) = by_key(conn, &event.id).await? else {
        return Ok(None);
    };
    let payload = &row.payload;
    let stored_cause = payload
        .get("cause")
        .cloned()
        .and_then(|c| serde_json::from_value::<Cause>(c).ok());
    let same = row.kind == OutboxKind::Event.as_str()
        && row.customer_id == event.customer_id
        && payload.get("type").and_then(Value::as_str) == Some(event.event_type.as_str())
        && payload.get("data").and_then(Value::as_object) == Some(&event.data)
        && stored_cause.as_ref() == Some(claimed);
    Ok(row.run_id.filter(|_| same))
}

/// The message with this idempotency key.
pub async fn by_key<C: ConnectionTrait>(conn: &C, key: &str) -> Result<Option<OutboxMessage>, StorageError> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.eq(key))
        .one(conn)
        .await?)
}

/// Records a successful delivery.
pub async fn mark_delivered<C: ConnectionTrait>(conn: &C, id: i64, now: DateTime<Utc>) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "UPDATE outbox SET status = $1, attempts = attempts + 1, delivered_at = $2, last_error = NULL WHERE id = $3",
        vec![status::DELIVERED.into(), now.into(), id.into()],
    ))
    .await?;
    Ok(())
}

/// Records a failed attempt to be retried at `next_attempt_at`.
pub async fn mark_retry<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    error: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE id = $3",
        vec![error.into(), next_attempt_at.into(), id.into()],
    ))
    .await?;
    Ok(())
}

/// Queues a message that had failed again, due at once, with `payload` (the request as
/// built now) and its key and attempt count kept: a retried step's delivery.
pub async fn requeue<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    payload: &Value,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "UPDATE outbox SET status = $1, payload = $2, next_attempt_at = $3, claimed_by = NULL, claimed_until = NULL \
         WHERE id = $4",
        vec![status::PENDING.into(), payload.clone().into(), now.into(), id.into()],
    ))
    .await?;
    Ok(())
}

/// Gives up on a message after its last attempt.
pub async fn mark_failed<C: ConnectionTrait>(conn: &C, id: i64, error: &str) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "UPDATE outbox SET status = $1, attempts = attempts + 1, last_error = $2 WHERE id = $3",
        vec![status::FAILED.into(), error.into(), id.into()],
    ))
    .await?;
    Ok(())
}
