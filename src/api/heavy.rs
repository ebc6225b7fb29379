//! The pool heavy requests run in: the backtest, the dry run, validation with its
//! save-time analysis, and saves (which validate and analyse the same way).
//!
//! Why: their cost grows with what the caller sends (workflows, rules, regexes) and with
//! the archive, and a read token is enough to ask. Run on an HTTP worker, one such request
//! held the worker for tens of seconds, /healthz timed out behind it and two at once could
//! exhaust the process. So each request first takes a permit ([`Heavy::admit`]): at most
//! `api.heavy_concurrency` run at once and the rest are answered 429 with `Retry-After`
//! at once, never queued. Its CPU-bound parts run on tokio's blocking threads
//! ([`Admitted::cpu`]), never on the worker, with a [`Deadline`] checked between workflows
//! and between events; its database reads stay on the worker as short queries, a page at
//! a time, so it never holds a connection across the run.

use super::ApiError;
use crate::budget::{BudgetError, Deadline, WorkBudget};
use crate::clock::SharedClock;
use crate::envelope::EventEnvelope;
use crate::problem::{Problem, Severity};
use actix_web::http::StatusCode;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Called on the blocking thread at the start of each CPU-bound part, before the deadline
/// is checked: tests hold the pool busy or move the clock with it.
pub type Probe = Arc<dyn Fn() + Send + Sync>;

/// The bounded pool, shared by every worker (clones share the permits).
#[derive(Clone)]
pub struct Heavy {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Arc<Semaphore>,
    /// Customer imports read at once ([`MAX_CONCURRENT_IMPORTS`]): each may buffer
    /// [`MAX_IMPORT_BYTES`]. Held by the pool, not the process, so each server (and each
    /// test's) counts its own.
    ///
    /// [`MAX_CONCURRENT_IMPORTS`]: super::customers::MAX_CONCURRENT_IMPORTS
    /// [`MAX_IMPORT_BYTES`]: super::customers::MAX_IMPORT_BYTES
    imports: Arc<Semaphore>,
    concurrency: usize,
    timeout: Duration,
    budget: WorkBudget,
    clock: SharedClock,
    probe: Option<Probe>,
}

impl fmt::Debug for Heavy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heavy")
            .field("concurrency", &self.inner.concurrency)
            .field("available", &self.inner.permits.available_permits())
            .field("timeout", &self.inner.timeout)
            .field("budget", &self.inner.budget)
            .finish()
    }
}

impl Heavy {
    /// A pool from the `[api]` settings, timed by `clock`. A concurrency of 0 is taken as 1:
    /// the endpoints exist, so at least one request must be able to run.
    pub fn new(settings: &crate::settings::Api, clock: SharedClock) -> Self {
        let concurrency = settings.heavy_concurrency.max(1);
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(concurrency)),
                imports: Arc::new(Semaphore::new(super::customers::MAX_CONCURRENT_IMPORTS)),
                concurrency,
                timeout: Duration::from_millis(settings.heavy_timeout_ms.max(1)),
                budget: WorkBudget {
                    max_rules: settings.heavy_max_rules,
                    max_regex_bytes: settings.heavy_max_regex_bytes,
                    max_events: settings.heavy_max_events,
                },
                clock,
                probe: None,
            }),
        }
    }

    /// The same pool with a test hook run at the start of every CPU-bound part (see
    /// [`Probe`]). Build it before the pool is shared: the clones made before do not see it.
    #[doc(hidden)]
    pub fn with_probe(self, probe: impl Fn() + Send + Sync + 'static) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                permits: inner.permits.clone(),
                imports: inner.imports.clone(),
                concurrency: inner.concurrency,
                timeout: inner.timeout,
                budget: inner.budget,
                clock: inner.clock.clone(),
                probe: Some(Arc::new(probe)),
            }),
        }
    }

    /// A permit to read a customer import, or `None` when as many are being read as allowed.
    pub(super) fn import_permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.inner.imports).try_acquire_owned().ok()
    }

    /// Requests running now.
    pub fn running(&self) -> usize {
        self.inner.concurrency - self.inner.permits.available_permits()
    }

    /// A permit and a deadline, or 429 when `api.heavy_concurrency` requests already run.
    /// `Retry-After` is the time budget: by then every running request has ended.
    pub(super) fn admit(&self, what: &'static str) -> Result<Admitted, ApiError> {
        let Ok(permit) = self.inner.permits.clone().try_acquire_owned() else {
            crate::metrics::Metrics::global()
                .api_heavy
                .with_label_values(&[what, "busy"])
                .inc();
            tracing::info!(
                what,
                running = self.inner.concurrency,
                "heavy request refused: the pool is full"
            );
            let retry_after = self.inner.timeout.as_secs_f64().ceil().max(1.0) as u64;
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                format!(
                    "{} heavy requests (backtest, dry run, validation, saves) already run; retry in {retry_after} s",
                    self.inner.concurrency
                ),
            )
            .retry_after(retry_after));
        };
        crate::metrics::Metrics::global()
            .api_heavy
            .with_label_values(&[what, "admitted"])
            .inc();
        Ok(Admitted {
            permit: Arc::new(permit),
            deadline: Deadline::after(self.inner.clock.clone(), self.inner.timeout),
            budget: self.inner.budget,
            probe: self.inner.probe.clone(),
        })
    }
}

/// One admitted request: its permit (released when the request and any CPU part still
/// running have both ended), its deadline and its budget.
pub(super) struct Admitted {
    permit: Arc<OwnedSemaphorePermit>,
    deadline: Deadline,
    budget: WorkBudget,
    probe: Option<Probe>,
}

impl Admitted {
    pub fn budget(&self) -> WorkBudget {
        self.budget
    }

    /// Between the request's database reads, on the worker: cheap, one clock read.
    pub fn check(&self) -> Result<(), ApiError> {
        self.deadline.check().map_err(ApiError::from)
    }

    /// Hands every archived event `pages` reads to `observe` on `judge` (a backtest, an
    /// impact): one short query per page on the worker, then the page judged on a
    /// blocking thread, the deadline checked between events.
    pub async fn judge_archive<T: Send + 'static>(
        &self,
        conn: &sea_orm::DatabaseConnection,
        mut pages: crate::storage::archive::Replay,
        mut judge: T,
        observe: fn(&mut T, &EventEnvelope, &Map<String, Value>),
    ) -> Result<T, ApiError> {
        while let Some(page) = pages.next(conn).await? {
            self.check()?;
            judge = self
                .cpu(move |deadline| {
                    for (event, customer) in page.iter() {
                        deadline.check()?;
                        observe(&mut judge, event, customer);
                    }
                    Ok(judge)
                })
                .await?;
        }
        Ok(judge)
    }

    /// Runs `work` on a blocking thread, off the HTTP worker. `work` gets the deadline
    /// and must check it between workflows and between events. The permit goes with it:
    /// if the client goes away, the thread still counts against the pool until it ends,
    /// which the deadline bounds.
    pub async fn cpu<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Deadline) -> Result<T, ApiError> + Send + 'static,
    {
        let (permit, deadline, probe) = (self.permit.clone(), self.deadline.clone(), self.probe.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if let Some(probe) = probe {
                probe();
            }
            deadline.check()?;
            work(&deadline)
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(error = %e, "heavy request failed on its blocking thread");
                Err(ApiError::internal("the request failed while it ran"))
            }
        }
    }
}

impl From<BudgetError> for ApiError {
    /// A time budget is the server's limit under its load: 503, worth retrying with less.
    /// A work budget is the request's size: 422 naming what crossed it.
    fn from(e: BudgetError) -> Self {
        match &e {
            BudgetError::Time { .. } => {
                tracing::info!(error = %e, "heavy request stopped");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "time_budget_exceeded", e.to_string())
            }
            _ => {
                let path = e.path().unwrap_or_default().to_owned();
                let mut error = ApiError::invalid(vec![Problem {
                    path,
                    message: e.to_string(),
                    severity: Severity::Error,
                }]);
                error.code = "work_budget_exceeded";
                error
            }
        }
    }
}
