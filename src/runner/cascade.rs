//! Where an event stands in a cascade of events the engine emitted, and what the runner
//! does with one past its depth or its budget of runs (the rules are guards::cascade's).

use super::{Runner, Stopped};
use crate::envelope::EventEnvelope;
use crate::guards::cascade::{self, Budget, Limit, Lineage};
use crate::metrics::Metrics;
use crate::storage::ownership::Fence;
use crate::storage::{outbox, runs};

impl Runner {
    /// Where `event` stands in a cascade. Its cause is trusted only when the outbox holds
    /// the event as the engine emitted it with that cause (guards::cascade); otherwise it is
    /// an outside event as deep as it claims, and names no run the engine may touch.
    pub(super) async fn lineage(&self, event: &EventEnvelope, fence: Fence) -> Result<Lineage, Stopped> {
        let Some(cause) = &event.cause else {
            return Ok(Lineage::outside(&event.id, None));
        };
        let emitted_by = self
            .db("vouch_cause", fence, || outbox::emitted_by(self.db.connection(), event))
            .await?;
        Ok(match emitted_by {
            Some(run_id) => Lineage::emitted(cause, run_id),
            None => {
                Metrics::global().causes_untrusted.inc();
                tracing::warn!(
                    event_id = %event.id,
                    trigger = %event.event_type,
                    customer_id = event.customer_id,
                    cause_event_id = %cause.event_id,
                    workflow_id = %cause.workflow_id,
                    depth = cause.depth,
                    "the event's cause is not an event the engine emitted: it counts for the depth only"
                );
                Lineage::outside(&event.id, Some(cause))
            }
        })
    }

    /// An event past the cascade's depth: no runs, counted, logged, and noted on the run
    /// that emitted it (`reason`), where an operator looking at that run sees it. Only a
    /// run the outbox names: a forged cause must not write another run's record.
    pub(super) async fn stop_cascade(
        &self,
        event: &EventEnvelope,
        lineage: &Lineage,
        fence: Fence,
    ) -> Result<(), Stopped> {
        Metrics::global()
            .cascades_stopped
            .with_label_values(&[Limit::Depth.label()])
            .inc();
        tracing::warn!(
            event_id = %event.id,
            trigger = %event.event_type,
            customer_id = event.customer_id,
            depth = lineage.depth,
            max_depth = self.max_cascade_depth,
            root_event_id = %lineage.root,
            emitted_by_run = lineage.emitted_by,
            "cascade stopped: the event is past the maximum depth and starts no runs"
        );
        let Some(run_id) = lineage.emitted_by else {
            return Ok(());
        };
        let reason = cascade::depth_reason(&event.event_type, &event.id, lineage.depth, self.max_cascade_depth);
        self.db("note_cascade", fence, || {
            self.db
                .fenced(fence, async |txn| runs::note_reason(txn, run_id, &reason).await)
        })
        .await
    }
}

/// An emitted event the cascade's budget stopped (recorded, with the reason on the run that
/// emitted it, by [`runs::record_runs_in`]): counted and logged as the depth limit's are.
pub(super) fn cascade_over_budget(event: &EventEnvelope, budget: &Budget) {
    Metrics::global()
        .cascades_stopped
        .with_label_values(&[Limit::Runs.label()])
        .inc();
    tracing::warn!(
        event_id = %event.id,
        trigger = %event.event_type,
        customer_id = event.customer_id,
        depth = budget.lineage.depth,
        root_event_id = %budget.lineage.root,
        max_runs = budget.max_runs,
        emitted_by_run = budget.lineage.emitted_by,
        "cascade stopped: the event would take its cascade past the maximum of runs and starts no runs"
    );
}
