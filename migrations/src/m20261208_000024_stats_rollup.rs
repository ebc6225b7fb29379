//! The stats rollup (issue 26): what `GET /api/v1/workflows/{id}/stats` counts, kept per
//! workflow and hour by database triggers, so a million runs are answered from a few
//! thousand rows instead of the runs and their steps.
//!
//! - `stats_rollup`: one row per (workflow, hour, kind, key), what is counted.
//! - `stats_deltas`: on PostgreSQL, one row per change of something counted (+1 or -1),
//!   written by the triggers below and nothing else. Triggers only ever INSERT there, so
//!   two transactions counting the same workflow and hour never wait for each other (no
//!   hot row); `storage::stats::compact` folds them into the rollup (run periodically by
//!   every node; safe side by side). On SQLite, where one writer at a time is all there
//!   is, the triggers add to the rollup directly and this table stays empty: deltas and
//!   their compaction cost SQLite's hot path about a quarter of its events per second,
//!   adding directly about an eighth (docs/performance.md).
//!
//! A stats read sums rollup and pending deltas for its whole hours, so it is exact at
//! every moment, folded or not. What is counted (`kind`, `key`, `n`, `goals`):
//! - `run`, the run's status (`pending` and `running` as `other`): runs, and of them those
//!   that reached the goal;
//! - `step`, the step's path (`COALESCE(path, step_index)`): step rows that were reached
//!   (done, failed, waiting or skipped), the funnel;
//! - `path`, `"<step path>:<index>"`: reached split steps by the path they took, and of
//!   them those whose run reached the goal.
//!
//! The hour is the run's `created_at` hour in UTC, written as the stats read it (SQLite
//! keeps times as RFC 3339 text, whose first 13 characters are the hour; PostgreSQL a
//! `timestamp` truncated to the hour).
//!
//! Every way a row changes is covered because the triggers are on the tables: inserts,
//! updates of what is counted (a run's status or goal, a step's status, result, path), and
//! deletes (retention deletes steps first, then runs: a step's delete looks its run up,
//! which is still there; a run deleted with steps left subtracts them itself, BEFORE the
//! delete, and the steps' later delete then finds no run and subtracts nothing).
//!
//! Existing rows are folded into the rollup by this migration, in its transaction, after
//! the triggers exist: on PostgreSQL creating a trigger locks the table against writes
//! until the migration commits, so no change is counted twice or missed.
//!
//! The hourly index of migration 000023 is dropped: whole hours are read from the rollup
//! now, the parts of an hour at either end of a range from `ix_runs_workflow_stats`, so
//! the index only cost every run's insert and status change.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Run statuses counted apart; the others (pending, running) count as `other`.
const COUNTED_STATUSES: &str = "'done', 'failed', 'cancelled', 'waiting', 'held_out'";
/// Step statuses that mean the run reached the step.
const REACHED: &str = "'done', 'failed', 'waiting', 'skipped'";

/// Which of a step's counted items.
#[derive(Clone, Copy)]
enum Kinds {
    Funnel,
    Paths,
    Both,
}

/// The SQL fragments, per backend, that say what a row contributes.
struct Sql(DbBackend);

impl Sql {
    fn pg(&self) -> bool {
        self.0 == DbBackend::Postgres
    }

    fn hour(&self, created_at: &str) -> String {
        if self.pg() {
            format!("date_trunc('hour', {created_at} AT TIME ZONE 'UTC')")
        } else {
            format!("substr({created_at}, 1, 13)")
        }
    }

    /// `a` and `b` differ, NULLs compared as values.
    fn differ(&self, a: &str, b: &str) -> String {
        if self.pg() {
            format!("({a}) IS DISTINCT FROM ({b})")
        } else {
            format!("({a}) IS NOT ({b})")
        }
    }

    fn bucket(&self, status: &str) -> String {
        format!("CASE WHEN {status} IN ({COUNTED_STATUSES}) THEN {status} ELSE 'other' END")
    }

    fn goal(&self, goal_reached_at: &str) -> String {
        format!("CASE WHEN {goal_reached_at} IS NULL THEN 0 ELSE 1 END")
    }

    fn reached(&self, step: &str) -> String {
        format!("{step}.status IN ({REACHED})")
    }

    fn key(&self, step: &str) -> String {
        format!("COALESCE({step}.path, CAST({step}.step_index AS TEXT))")
    }

    /// The path index a split step took (its result's `path`, a non-negative integer),
    /// as text; NULL for any other step. Never fails on a result that is not JSON.
    fn taken(&self, step: &str) -> String {
        if self.pg() {
            format!(
                "CASE WHEN {step}.action_type = 'split' AND jsonb_typeof({step}.result -> 'path') = 'number' \
                 AND ({step}.result ->> 'path') ~ '^[0-9]+$' THEN {step}.result ->> 'path' END"
            )
        } else {
            format!(
                "CASE WHEN {step}.action_type = 'split' AND json_valid({step}.result) THEN \
                 CASE WHEN json_type({step}.result, '$.path') = 'integer' AND json_extract({step}.result, '$.path') >= 0 \
                 THEN CAST(json_extract({step}.result, '$.path') AS TEXT) END END"
            )
        }
    }

    /// The run row `run` as a counted item, times `sign`; `from` names it when it is a
    /// table alias (empty for a trigger's NEW or OLD).
    fn run_item(&self, run: &str, sign: i32, from: &str) -> String {
        format!(
            "SELECT {run}.workflow_id AS workflow_id, {} AS hour, 'run' AS kind, {} AS key, {sign} AS n, \
             {sign} * {} AS goals {from}",
            self.hour(&format!("{run}.created_at")),
            self.bucket(&format!("{run}.status")),
            self.goal(&format!("{run}.goal_reached_at")),
        )
    }

    /// The step rows `step` of the run `run` that `from_where` selects, as counted items
    /// times `sign`: the funnel's and the split paths', as `kinds` says.
    fn step_items(&self, step: &str, run: &str, from_where: &str, sign: i32, kinds: Kinds) -> String {
        let hour = self.hour(&format!("{run}.created_at"));
        let (key, reached, taken) = (self.key(step), self.reached(step), self.taken(step));
        let goal = self.goal(&format!("{run}.goal_reached_at"));
        let funnel = format!("SELECT {run}.workflow_id, {hour}, 'step', {key}, {sign}, 0 {from_where} AND {reached}");
        let paths = format!(
            "SELECT {run}.workflow_id, {hour}, 'path', {key} || ':' || {taken}, {sign}, {sign} * {goal} \
             {from_where} AND {reached} AND {taken} IS NOT NULL"
        );
        match kinds {
            Kinds::Funnel => funnel,
            Kinds::Paths => paths,
            Kinds::Both => format!("{funnel} UNION ALL {paths}"),
        }
    }

    /// The run moved to another workflow or hour (never, today; counted right if it does).
    fn moved(&self) -> String {
        format!(
            "{} OR {}",
            self.differ("OLD.workflow_id", "NEW.workflow_id"),
            self.differ(&self.hour("OLD.created_at"), &self.hour("NEW.created_at"))
        )
    }

    fn goal_changed(&self) -> String {
        self.differ(&self.goal("OLD.goal_reached_at"), &self.goal("NEW.goal_reached_at"))
    }

    /// Each trigger: (name, table, timing and event, WHEN condition, the rows it counts).
    fn triggers(&self) -> Vec<(&'static str, &'static str, &'static str, String, String)> {
        // What each trigger counts, as rows; `counting` says where they go.
        let insert = "";
        let moved = self.moved();
        let step_of_old = "FROM runs r WHERE r.id = OLD.run_id";
        let step_of_new = "FROM runs r WHERE r.id = NEW.run_id";
        let steps_of = |run: &str, only_moved: bool| {
            let also = if only_moved {
                format!(" AND ({moved})")
            } else {
                String::new()
            };
            format!("FROM run_steps s WHERE s.run_id = {run}.id{also}")
        };
        let step_changed = format!(
            "({} OR {}) AND ({} OR {} OR {} OR OLD.run_id <> NEW.run_id)",
            self.reached("OLD"),
            self.reached("NEW"),
            self.differ(&self.reached("OLD"), &self.reached("NEW")),
            self.differ(&self.key("OLD"), &self.key("NEW")),
            self.differ(&self.taken("OLD"), &self.taken("NEW")),
        );
        vec![
            (
                "stats_runs_insert",
                "runs",
                "AFTER INSERT",
                "TRUE".to_owned(),
                format!("{insert}{}", self.run_item("NEW", 1, "")),
            ),
            (
                "stats_runs_update",
                "runs",
                "AFTER UPDATE OF status, goal_reached_at, workflow_id, created_at",
                format!(
                    "{} OR {} OR {moved}",
                    self.differ(&self.bucket("OLD.status"), &self.bucket("NEW.status")),
                    self.goal_changed()
                ),
                format!(
                    "{insert}{} UNION ALL {}",
                    self.run_item("OLD", -1, ""),
                    self.run_item("NEW", 1, "")
                ),
            ),
            (
                // A goal reached after the split step was recorded moves that path's
                // goal count; the funnel moves only with the run's workflow or hour.
                "stats_runs_steps",
                "runs",
                "AFTER UPDATE OF goal_reached_at, workflow_id, created_at",
                format!("{} OR {moved}", self.goal_changed()),
                format!(
                    "{insert}{} UNION ALL {} UNION ALL {} UNION ALL {}",
                    self.step_items("s", "OLD", &steps_of("OLD", false), -1, Kinds::Paths),
                    self.step_items("s", "NEW", &steps_of("NEW", false), 1, Kinds::Paths),
                    self.step_items("s", "OLD", &steps_of("OLD", true), -1, Kinds::Funnel),
                    self.step_items("s", "NEW", &steps_of("NEW", true), 1, Kinds::Funnel),
                ),
            ),
            (
                // Before: the run's steps are still there to subtract when it goes first.
                "stats_runs_delete",
                "runs",
                "BEFORE DELETE",
                "TRUE".to_owned(),
                format!(
                    "{insert}{} UNION ALL {}",
                    self.run_item("OLD", -1, ""),
                    self.step_items("s", "OLD", &steps_of("OLD", false), -1, Kinds::Both)
                ),
            ),
            (
                "stats_steps_insert",
                "run_steps",
                "AFTER INSERT",
                self.reached("NEW"),
                format!("{insert}{}", self.step_items("NEW", "r", step_of_new, 1, Kinds::Both)),
            ),
            (
                "stats_steps_update",
                "run_steps",
                "AFTER UPDATE OF status, result, path, action_type, step_index, run_id",
                step_changed,
                format!(
                    "{insert}{} UNION ALL {}",
                    self.step_items("OLD", "r", step_of_old, -1, Kinds::Both),
                    self.step_items("NEW", "r", step_of_new, 1, Kinds::Both)
                ),
            ),
            (
                // After: a step deleted with its run already gone was subtracted by the
                // run's delete; its run is not found here and nothing more is.
                "stats_steps_delete",
                "run_steps",
                "AFTER DELETE",
                self.reached("OLD"),
                format!("{insert}{}", self.step_items("OLD", "r", step_of_old, -1, Kinds::Both)),
            ),
        ]
    }

    /// The statement that counts `items`. PostgreSQL: appended to `stats_deltas`, never an
    /// update, so concurrent transactions of one workflow and hour never wait for one
    /// row. SQLite has one writer at a time, so there is no such wait to avoid: the items
    /// are added to the rollup at once, which costs the hot path less than a delta row
    /// to be folded later (and its compaction taking the write lock).
    fn counting(&self, items: &str) -> String {
        if self.pg() {
            format!("INSERT INTO stats_deltas (workflow_id, hour, kind, key, n, goals) {items}")
        } else {
            format!(
                "INSERT INTO stats_rollup (workflow_id, hour, kind, key, n, goals) SELECT * FROM ({items}) WHERE TRUE \
                 ON CONFLICT (workflow_id, hour, kind, key) DO UPDATE SET n = n + excluded.n, goals = goals + excluded.goals"
            )
        }
    }

    /// Everything the runs and their steps contribute, grouped: the backfill.
    fn backfill(&self) -> String {
        format!(
            "INSERT INTO stats_rollup (workflow_id, hour, kind, key, n, goals) \
             SELECT workflow_id, hour, kind, key, SUM(n), SUM(goals) FROM ({} UNION ALL {}) AS items \
             GROUP BY workflow_id, hour, kind, key",
            self.run_item("r", 1, "FROM runs r"),
            self.step_items(
                "s",
                "r",
                "FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE 1 = 1",
                1,
                Kinds::Both
            ),
        )
    }
}

const HOURLY_INDEX: &str = "ix_runs_workflow_hour";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let sql = Sql(backend);
        let db = manager.get_connection();
        let (hour_type, deltas_id) = if sql.pg() {
            // No key on PostgreSQL: compaction takes rows by ctid, so an insert maintains
            // no index at all.
            ("TIMESTAMP", "")
        } else {
            // SQLite's rowid: free, and it orders the rows for compaction's batches.
            ("TEXT", "id INTEGER PRIMARY KEY, ")
        };
        db.execute_unprepared(&format!(
            "CREATE TABLE IF NOT EXISTS stats_deltas ({deltas_id}workflow_id TEXT NOT NULL, \
             hour {hour_type} NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, n BIGINT NOT NULL, \
             goals BIGINT NOT NULL)"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "CREATE TABLE IF NOT EXISTS stats_rollup (workflow_id TEXT NOT NULL, hour {hour_type} NOT NULL, \
             kind TEXT NOT NULL, key TEXT NOT NULL, n BIGINT NOT NULL, goals BIGINT NOT NULL, \
             PRIMARY KEY (workflow_id, hour, kind, key))"
        ))
        .await?;
        for (name, table, event, when, items) in sql.triggers() {
            let body = sql.counting(&items);
            if sql.pg() {
                // A BEFORE trigger's result is the row to go on with.
                let result = if event.starts_with("BEFORE") { "OLD" } else { "NULL" };
                db.execute_unprepared(&format!(
                    "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $body$ \
                     BEGIN {body}; RETURN {result}; END $body$"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {name} {event} ON {table} FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION {name}()"
                ))
                .await?;
            } else {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER IF NOT EXISTS {name} {event} ON {table} FOR EACH ROW WHEN {when} \
                     BEGIN {body}; END"
                ))
                .await?;
            }
        }
        db.execute_unprepared(&sql.backfill()).await?;
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {HOURLY_INDEX}"))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = Sql(manager.get_database_backend());
        let db = manager.get_connection();
        for (name, table, ..) in sql.triggers() {
            if sql.pg() {
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {name} ON {table}"))
                    .await?;
                db.execute_unprepared(&format!("DROP FUNCTION IF EXISTS {name}()"))
                    .await?;
            } else {
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {name}")).await?;
            }
        }
        db.execute_unprepared("DROP TABLE IF EXISTS stats_deltas").await?;
        db.execute_unprepared("DROP TABLE IF EXISTS stats_rollup").await?;
        db.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS {HOURLY_INDEX} ON runs (workflow_id, ({}), status, goal_reached_at)",
            sql.hour("created_at")
        ))
        .await?;
        Ok(())
    }
}
