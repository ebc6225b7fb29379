//! A workflow's stats over a large history: `WFE_BENCH_RUNS` (1,000,000) runs of one
//! workflow over a week, a tenth held out, the rest split 50/50 with a step on each path,
//! a fifth reaching the goal, answered as GET /api/v1/workflows/{id}/stats reads them
//! (`stats::read`: counts, series, split paths and funnel), by hour and by day, over the
//! whole week up to now (so both ends cut an hour: those parts are read from the runs).
//!
//! ```sh
//! cargo bench --bench stats
//! WFE_BENCH_RUNS=100000 cargo bench --bench stats
//! WFE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench stats
//! ```
//!
//! The runs and their steps are written once before measuring (not measured), 1,000 rows
//! a statement, through the database's triggers as the engine's writes go (migration
//! 000024), and the deltas those wrote are folded into the rollup (`stats::compact_all`,
//! timed and printed, not measured by criterion): the state of a database whose
//! compaction keeps up.

#[path = "common/database.rs"]
mod database;

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use sea_orm::ConnectionTrait;
use std::time::Instant;
use workflow_engine::storage::stats::{self, Bucket};
use workflow_engine::storage::Database;

const WORKFLOW: &str = "win-back";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Writes `runs` runs created over the week before `end`, ids 1..=runs, and their steps.
async fn fill(db: &Database, runs: u64, end: chrono::DateTime<Utc>) {
    let start = end - Duration::days(7);
    let spacing = (7 * 86_400 * 1000 / runs.max(1)) as i64;
    for first in (1..=runs).step_by(1000) {
        let last = (first + 999).min(runs);
        let mut run_rows = Vec::with_capacity(1000);
        let mut step_rows = Vec::with_capacity(2000);
        for id in first..=last {
            let created = start + Duration::milliseconds(spacing * id as i64);
            let at = created.to_rfc3339();
            let held_out = id % 10 == 0;
            let status = match id % 10 {
                0 => "held_out",
                1 => "failed",
                _ => "done",
            };
            let goal = if id % 5 == 0 {
                format!("'{}'", (created + Duration::hours(1)).to_rfc3339())
            } else {
                "NULL".to_owned()
            };
            run_rows.push(format!(
                "('bench-{id}', '{WORKFLOW}', 1, {id}, 'customer.status_changed', 0, '{{}}', '{status}', 2, '{at}', '{at}', {goal})"
            ));
            if !held_out {
                let path = id % 2;
                step_rows.push(format!("({id}, 0, 'split', 'done', 1, '0', '{{\"path\": {path}}}')"));
                step_rows.push(format!("({id}, 1, 'add_note', 'done', 1, '0.paths.{path}.0', NULL)"));
            }
        }
        db.execute_unprepared(&format!(
            "INSERT INTO runs (event_id, workflow_id, workflow_version, customer_id, trigger, partition, event, \
             status, next_step, created_at, updated_at, goal_reached_at) VALUES {}",
            run_rows.join(", ")
        ))
        .await
        .expect("runs");
        db.execute_unprepared(&format!(
            "INSERT INTO run_steps (run_id, step_index, action_type, status, attempts, path, result) VALUES {}",
            step_rows.join(", ")
        ))
        .await
        .expect("steps");
    }
    // What a database that has lived with this history knows of its tables: statistics,
    // and on PostgreSQL the visibility map autovacuum keeps, without which an index-only
    // scan still visits every row.
    let settle: &[&str] = match db.connection().get_database_backend() {
        sea_orm::DbBackend::Postgres => &["VACUUM ANALYZE runs", "VACUUM ANALYZE run_steps"],
        _ => &["ANALYZE"],
    };
    for statement in settle {
        db.execute_unprepared(statement).await.expect("settle");
    }
}

/// Folds the deltas the seeding wrote into the rollup, and says how long that took.
async fn compact(db: &Database) {
    let started = Instant::now();
    let folded = stats::compact_all(db, 100_000).await.expect("compact");
    println!("stats: {folded} deltas folded in {:.1?}", started.elapsed());
    let settle: &[&str] = match db.connection().get_database_backend() {
        sea_orm::DbBackend::Postgres => &["VACUUM ANALYZE stats_rollup", "VACUUM ANALYZE stats_deltas"],
        _ => &["ANALYZE"],
    };
    for statement in settle {
        db.execute_unprepared(statement).await.expect("settle");
    }
}

fn bench(c: &mut Criterion) {
    let runs = env("WFE_BENCH_RUNS", 1_000_000);
    let runtime = actix_rt::Runtime::new().expect("runtime");
    let end = Utc::now();
    let (db, scratch) = runtime.block_on(async {
        let (db, scratch) = database::fresh_database("stats", 10).await;
        let started = Instant::now();
        fill(&db, runs, end).await;
        println!(
            "stats: {runs} runs written through the triggers in {:.1?}",
            started.elapsed()
        );
        compact(&db).await;
        (db, scratch)
    });
    let range = (end - Duration::days(7), end + Duration::seconds(1));
    let mut group = c.benchmark_group("stats");
    group.sample_size(10);
    for bucket in [Bucket::Hour, Bucket::Day] {
        group.bench_function(format!("{runs}_runs_full_read_by_{bucket:?}").to_lowercase(), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let (counted, steps) = stats::read(db.connection(), WORKFLOW, range, bucket)
                        .await
                        .expect("stats");
                    assert_eq!(counted.counts.entered, runs);
                    assert_eq!(steps.paths.len(), 2);
                    (counted, steps)
                })
            })
        });
    }
    group.finish();
    runtime.block_on(database::drop_database(db, scratch));
}

criterion_group!(benches, bench);
criterion_main!(benches);
