//! workflow-engine: an event-driven workflow engine for brokerage CRMs.
//!
//! Platform events arrive on Kafka; every active workflow whose trigger matches has its
//! condition tree evaluated against the event and the customer; the matching workflows'
//! actions run in priority order.
//!
//! # Layout
//!
//! Layers from the bottom up; a module uses only the layers below it, and nothing in
//! `src/` uses the actors (docs/architecture.md has the rules and one event's path).
//!
//! What the engine knows (pure: no I/O, no actors, no database):
//! - [`envelope`]: the event envelope on the topic.
//! - [`workflow`], [`validate`], [`problem`]: the workflow definition, its validation with
//!   JSON-pointer paths, and the problems it reports; [`flow`]: its actions (a journey's
//!   branches and waits included) laid out flat, as runs walk them.
//! - [`conditions`]: the condition tree, its 16 operators, the compiler, the evaluator and
//!   the fast form plans run (specialised checks, one-step-per-rule programs).
//! - [`schema`]: the fields each trigger offers, with types, labels and status options.
//! - [`catalogue`], [`duration`], [`template`]: the 17 actions with their param schemas.
//! - [`plan`]: the compiled workflow set, indexed by trigger, and the plan of an event.
//!   [`verdict`]: what planning decided for each workflow of an event's trigger, recorded
//!   with the plan for the event inspector.
//! - [`guards`]: per-customer limits, send windows, consent, exit on event and cascade
//!   depth: the decisions a real run and the dry run share.
//! - [`check`]: `workflow-engine check FILE.json`.
//! - [`folder`]: workflows as a folder of stable JSON files, and the plan that makes an
//!   engine match one (`export` and `apply`).
//! - [`analysis`]: save-time warnings (cycles of cascading events, contradicting workflows)
//!   and the one error, a workflow that fans out into itself.
//! - [`backtest`]: workflows judged against archived events, with no side effects; and
//!   [`impact`], a version judged against the live one over them, event by event.
//! - [`budget`]: what one user-sized request (backtest, dry run, validation) may spend:
//!   its work counted before anything compiles, its time checked as it runs.
//! - [`clock`], [`retry`], [`trace`], [`metrics`]: time as a dependency, the one retry
//!   policy, the W3C `traceparent`, and the Prometheus registry every layer counts into.
//! - [`redact`]: URLs as shown and logged, without credentials.
//! - [`sealing`]: integration secrets encrypted at rest (AES-256-GCM under
//!   `security.secret_key`).
//!
//! Where it keeps its state:
//! - [`storage`]: the sea-orm connection (SQLite or PostgreSQL), one entity per table and
//!   one repository per concept: workflows with their versions, statuses, customer
//!   snapshots, runs, step transitions, scheduled continuations, workflow entries (the
//!   per-customer limits), the outbox, emitted time-based events, tasks and a customer's
//!   activity feed (the operator's view), demo seed data. It is the only module that
//!   writes SQL; the others below reach the database through it, or, for [`actions`],
//!   [`outbound::build`] and [`runner::batch`], through a transaction storage opened for
//!   them.
//! - [`actions`]: the ten internal actions, each applied in one transaction with its step.
//! - [`settings`] (with the API's token scopes, [`settings::tokens`]): the configuration,
//!   naming the defaults and limits of the layers below.
//! - [`live`]: the live workflow set: the active rows, validated and compiled.
//! - [`outbound`]: what an outbound request is ([`outbound::build`]: from a step and the
//!   endpoints in the database) and how one is sent ([`outbound::send`]: one attempt,
//!   its retry policy and `Retry-After`).
//! - [`kafka`]: the clients' configuration, the embedded broker, and what a consumer of
//!   the engine needs ([`kafka::consumer`]: its context, rebalances, dead letters).
//!
//! How it runs and how it is reached:
//! - [`runner`]: what the executors do (plan, record, resume, run chains), fenced by
//!   partition ownership; plain async code with an injected clock, sending through a
//!   trait rather than an actor.
//! - [`retention`]: the pruning job; [`rollup`]: the stats rollup's compaction job.
//! - [`actors`] (the `actors/` folder): one actor per file, wired in `actors::topology`;
//!   they use everything above and nothing uses them but the edges below.
//! - [`api`]: the HTTP API (its heavy requests on a bounded pool, `api::heavy`); [`service`]: `serve` and `migrate`; [`demo`]: `demo`;
//!   [`telemetry`]: logs (and span export over OTLP with the `otlp` feature);
//!   [`gitops`]: `export` and `apply`, a client of a running engine's API.
//!
//! The schema migrations live in the `migrations` crate.

/// mimalloc instead of glibc's malloc, for every binary, test and bench that links the
/// engine: the writing path allocates and frees many small, short-lived buffers across
/// threads (rows, JSON values, statements handed to the database driver's thread), and a
/// profile of `cargo bench --bench throughput` spent about a fifth of its CPU time in
/// glibc's malloc, free and arena consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod actions;
#[path = "../actors/mod.rs"]
pub mod actors;
pub mod analysis;
pub mod api;
pub mod backtest;
pub mod budget;
pub mod catalogue;
pub mod check;
pub mod clock;
pub mod conditions;
pub mod demo;
pub mod duration;
pub mod envelope;
pub mod experiment;
pub mod flow;
pub mod folder;
pub mod gitops;
pub mod guards;
pub mod impact;
pub mod kafka;
pub mod live;
pub mod metrics;
pub mod outbound;
pub mod plan;
pub mod problem;
pub mod redact;
pub mod retention;
pub mod retry;
pub mod rollup;
pub mod runner;
pub mod schema;
pub mod sealing;
pub mod service;
pub mod settings;
pub mod storage;
pub mod telemetry;
pub mod template;
pub mod trace;
pub mod validate;
pub mod verdict;
pub mod workflow;
