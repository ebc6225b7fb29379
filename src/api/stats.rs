//! GET /api/v1/workflows/{id}/stats: does the workflow work? Its runs by outcome over a
//! time range, per hour or day, each split's paths, the steps' funnel, and the lift over
//! its holdout with a 95% interval (crate::experiment::lift). Exact against the runs table
//! at the moment of the request, read from the rollup the database keeps (storage::stats).

use super::input::{bad_param, param_time};
use super::{ApiError, AppState, ErrorBody};
use crate::clock::rfc3339;
use crate::experiment::lift::{self, Lift, Side};
use crate::storage::stats::{self, Bucket, Counts};
use crate::storage::workflows;
use actix_web::{web, HttpResponse};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The range when `since` is not given: the last week.
const DEFAULT_DAYS: i64 = 7;
/// Most buckets one answer holds: a year by day, six weeks by hour.
const MAX_BUCKETS: i64 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Runs created at or after this time (RFC 3339); a week before `until` by default.
    since: Option<String>,
    /// Runs created before this time (RFC 3339); now by default.
    until: Option<String>,
    /// The series' buckets: `hour` or `day` (the default).
    bucket: Option<String>,
}

/// The answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowStats {
    pub entered: u64,
    pub done: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub waiting: u64,
    pub held_out: u64,
    /// Runs that reached the goal, held-out ones included.
    pub goal_reached: u64,
    /// Each split's paths by `"<step path>:<path index>"`.
    pub paths: BTreeMap<String, PathStats>,
    /// Runs that reached each step, by the step's path: the funnel.
    pub steps: BTreeMap<String, u64>,
    /// The goal rate of treated runs against held-out ones; null with too few runs, or
    /// without a holdout or a goal (`lift_note` says which).
    pub lift: Option<LiftStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lift_note: Option<String>,
    pub series: Vec<Point>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PathStats {
    pub entered: u64,
    pub goal_reached: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiftStats {
    pub treated_rate: f64,
    pub holdout_rate: f64,
    /// `treated_rate - holdout_rate`.
    pub difference: f64,
    /// The 95% interval of the difference (Wald; docs/experiments.md).
    pub ci95: [f64; 2],
}

impl From<Lift> for LiftStats {
    fn from(l: Lift) -> Self {
        Self {
            treated_rate: l.treated_rate,
            holdout_rate: l.holdout_rate,
            difference: l.difference,
            ci95: l.ci95,
        }
    }
}

/// One bucket of the series.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// The bucket's start (RFC 3339, UTC).
    pub at: String,
    pub entered: u64,
    pub done: u64,
    pub failed: u64,
    pub goal_reached: u64,
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}/stats", operation_id = "workflow_stats", tag = "workflows",
    params(("id" = String, Path, description = "workflow id"), StatsQuery),
    responses(
        (status = 200, description = "the workflow's runs by outcome, per bucket, per split path and step, and its lift over its holdout", body = WorkflowStats),
        (status = 400, description = "a bad time, bucket or range", body = ErrorBody),
        (status = 404, description = "no such workflow", body = ErrorBody)))]
pub async fn workflow_stats(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let until = param_time(q.until.as_deref(), "until")?.unwrap_or_else(Utc::now);
    let since = param_time(q.since.as_deref(), "since")?.unwrap_or(until - Duration::days(DEFAULT_DAYS));
    let bucket = match q.bucket.as_deref() {
        None => Bucket::Day,
        Some(name) => {
            Bucket::from_name(name).ok_or_else(|| bad_param("bucket", format!("expected hour or day, got {name:?}")))?
        }
    };
    if since >= until {
        return Err(bad_param("since", "must be before until".to_owned()));
    }
    if (until - since).num_seconds() / bucket.seconds() > MAX_BUCKETS {
        return Err(bad_param(
            "since",
            format!("the range holds more than {MAX_BUCKETS} buckets: narrow it or use bucket=day"),
        ));
    }
    let conn = state.db.connection();
    let Some(stored) = workflows::get(conn, &id).await? else {
        return Err(ApiError::not_found(format!("workflow {:?} not found", id.as_str())));
    };
    let (counted, found) = stats::read(conn, &id, (since, until), bucket).await?;
    let c = counted.counts;
    let has_goal = stored.definition.get("goal").is_some_and(|g| !g.is_null());
    let (lift, lift_note) = if !has_goal && c.goal_reached == 0 {
        (
            None,
            Some("the workflow has no goal: give it one to measure its lift".to_owned()),
        )
    } else {
        let treated = Side {
            runs: c.entered - c.held_out,
            reached: c.goal_reached - c.held_out_goal_reached,
        };
        let holdout = Side {
            runs: c.held_out,
            reached: c.held_out_goal_reached,
        };
        match lift::lift(treated, holdout) {
            Ok(l) => (Some(LiftStats::from(l)), None),
            Err(why) => (None, Some(why)),
        }
    };
    let point = |at, counts: &Counts| Point {
        at: rfc3339(at),
        entered: counts.entered,
        done: counts.done,
        failed: counts.failed,
        goal_reached: counts.goal_reached,
    };
    Ok(HttpResponse::Ok().json(WorkflowStats {
        entered: c.entered,
        done: c.done,
        failed: c.failed,
        cancelled: c.cancelled,
        waiting: c.waiting,
        held_out: c.held_out,
        goal_reached: c.goal_reached,
        paths: found
            .paths
            .into_iter()
            .map(|(key, (entered, goal_reached))| (key, PathStats { entered, goal_reached }))
            .collect(),
        steps: found.steps,
        lift,
        lift_note,
        series: counted.series.iter().map(|(at, counts)| point(*at, counts)).collect(),
    }))
}
