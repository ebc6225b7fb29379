//! Fan-out into itself: a workflow whose own actions emit its trigger more than once per
//! run. Each run then starts several runs of the same workflow, and those start several
//! more: `b` such actions give `b`^depth runs before `engine.max_cascade_depth` stops them
//! (five actions gave 3,906 runs from one event, issue 22). That is an error at save time,
//! not a warning: nothing an operator means needs a workflow to multiply itself, and one
//! such action (a chain, not a tree) is still allowed, the depth limit bounding it.
//!
//! An action counts when the event it emits could start the workflow again: same trigger,
//! and the workflow's conditions not provably false for what is known of that event
//! ([`super::overlap`]), as for cycles. Workflows stored before this check keep running;
//! the run-time budget (`engine.max_cascade_runs`) bounds them.

use super::emits::emitted;
use super::overlap::Requirements;
use crate::problem::{Problem, Severity};
use crate::workflow::Workflow;

/// An error at the second action of `workflow` that emits its own trigger, if there is one.
pub fn check(workflow: &Workflow) -> Option<Problem> {
    let requirements = Requirements::of(workflow.conditions.as_ref());
    if requirements.impossible() {
        return None;
    }
    // Steps on different paths of a branch or outcomes of a wait never run in one run.
    let flow = workflow.flow();
    let retriggering = flow.most_on_one_path(|slot| {
        emitted(&slot.step.action)
            .is_some_and(|e| e.trigger == workflow.trigger_event && requirements.disjoint_from(&e.facts).is_none())
    });
    let pointer = |i: usize| flow.get(*retriggering.get(i)?).map(|slot| slot.pointer.clone());
    let (first, second) = (pointer(0)?, pointer(1)?);
    let count = retriggering.len();
    Some(Problem {
        path: second,
        message: format!(
            "{count} actions (the first at {first}) emit {}, this workflow's own trigger: \
             every run would start {count} more of it, {count} times more each generation; keep at \
             most one such action, or trigger another workflow",
            workflow.trigger_event
        ),
        severity: Severity::Error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::workflow;
    use serde_json::json;

    fn freezes(n: usize, conditions: serde_json::Value) -> Workflow {
        let freeze = json!({"type": "freeze_account", "params": {"reason": "r"}});
        workflow(json!({"name": "f", "trigger_event": "compliance.freeze_requested",
            "conditions": conditions, "actions": vec![freeze; n]}))
    }

    #[test]
    fn two_actions_that_retrigger_the_workflow_are_an_error_at_the_second() {
        let problem = check(&freezes(3, json!(null))).expect("a fan-out of three");
        assert_eq!(problem.path, "/actions/1");
        assert_eq!(problem.severity, Severity::Error);
        assert!(
            problem
                .message
                .starts_with("3 actions (the first at /actions/0) emit compliance.freeze_requested"),
            "{}",
            problem.message
        );
        assert!(
            check(&freezes(1, json!(null))).is_none(),
            "one is a chain the depth bounds"
        );
    }

    #[test]
    fn status_changes_count_only_when_the_conditions_let_them_back_in() {
        let flips = |conditions: serde_json::Value| {
            workflow(
                json!({"name": "s", "trigger_event": "customer.status_changed", "conditions": conditions,
                "actions": [{"type": "set_status", "params": {"type": "sales", "status": "a"}},
                            {"type": "add_note", "params": {"body": "x"}},
                            {"type": "set_status", "params": {"type": "sales", "status": "b"}}]}),
            )
        };
        let problem = check(&flips(json!(null))).expect("both changes start it again");
        assert_eq!(problem.path, "/actions/2");
        // Only status "x" starts it: neither change leads back.
        assert!(check(&flips(
            json!({"field": "event.new_status", "operator": "eq", "value": "x"})
        ))
        .is_none());
        // Only "a" starts it: one of the two leads back, a chain.
        assert!(check(&flips(
            json!({"field": "event.new_status", "operator": "eq", "value": "a"})
        ))
        .is_none());
    }

    /// A run takes one path of a branch and one outcome of a wait: actions on different
    /// ones never fan out together, actions on one path do, wherever they are nested.
    #[test]
    fn only_actions_one_run_can_meet_count_in_a_journey() {
        let freeze = json!({"type": "freeze_account", "params": {"reason": "r"}});
        let journey = |on_event: serde_json::Value| {
            workflow(
                json!({"name": "j", "trigger_event": "compliance.freeze_requested", "actions": [
                    {"type": "branch", "params": {"paths": [{"when": {"field": "event.reason", "operator": "eq", "value": "a"},
                                                             "actions": [freeze]}],
                                                  "otherwise": [freeze]}},
                    {"type": "wait_for_event", "name": "w", "params": {"event": "customer.deposited",
                        "timeout": {"days": 1}, "on_event": on_event, "on_timeout": [freeze]}}
                ]}),
            )
        };
        let problem = check(&journey(json!([]))).expect("a path through the branch and the timeout meets two");
        assert_eq!(problem.path, "/actions/1/params/on_timeout/0");
        assert!(
            problem
                .message
                .starts_with("2 actions (the first at /actions/0/params/paths/0/actions/0)"),
            "{}",
            problem.message
        );
        let problem = check(&journey(json!([freeze, freeze]))).expect("the event's outcome meets three");
        assert_eq!(problem.path, "/actions/1/params/on_event/0");
        assert!(problem.message.starts_with("3 actions"), "{}", problem.message);

        let apart = workflow(
            json!({"name": "k", "trigger_event": "compliance.freeze_requested", "actions": [
                {"type": "branch", "params": {"paths": [{"when": {"field": "event.reason", "operator": "eq", "value": "a"},
                                                         "actions": [freeze]}],
                                              "otherwise": [freeze]}}
            ]}),
        );
        assert!(check(&apart).is_none(), "two paths of one branch never both run");
    }
}
