//! Save-time analysis of a workflow against the other active workflows: cycles of
//! cascading events ([`cycles`]) and contradicting actions ([`conflicts`]). Both report
//! warnings, never errors: the operator may mean it, and the run-time guard
//! (`engine.max_cascade_depth`) stops a cascade anyway. One check of the workflow alone is
//! an error: a workflow that fans out into itself ([`fanout`]), which no operator means
//! and which multiplies its runs each generation. Pure: the caller loads the workflows.

pub mod conflicts;
pub mod cycles;
pub mod emits;
pub mod fanout;
pub mod overlap;

use crate::problem::Problem;
use crate::workflow::Workflow;
use cycles::Node;
use overlap::Requirements;

/// The warnings for saving `candidate` (with the id it is or will be stored under) while
/// `others` are active. Entries of `others` with the candidate's id are its older version
/// and are left out. An inactive candidate runs nothing and gets no warning.
pub fn analyze(candidate: &Workflow, candidate_id: &str, others: &[Workflow]) -> Vec<Problem> {
    if !candidate.active {
        return Vec::new();
    }
    let mut nodes = vec![Node {
        id: candidate_id,
        workflow: candidate,
        requirements: Requirements::of(candidate.conditions.as_ref()),
    }];
    for w in others {
        let Some(id) = w.id.as_deref() else { continue };
        if id == candidate_id || !w.active {
            continue;
        }
        nodes.push(Node {
            id,
            workflow: w,
            requirements: Requirements::of(w.conditions.as_ref()),
        });
    }
    let mut out: Vec<Problem> = cycles::check(&nodes).into_iter().collect();
    out.extend(conflicts::check(&nodes));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::conditions::{ConditionNode, Limits};
    use crate::schema::FieldSchema;
    use crate::validate::Validator;
    use serde_json::{json, Value};

    pub(crate) fn workflow(value: Value) -> Workflow {
        let schema = FieldSchema::default();
        Validator::new(&schema, Limits::default())
            .workflow(&value)
            .unwrap_or_else(|e| panic!("{e}"))
            .workflow
    }

    pub(crate) fn node(conditions: Value) -> ConditionNode {
        workflow(
            json!({"name": "t", "trigger_event": "customer.deposited", "conditions": conditions,
            "actions": [{"type": "add_note", "params": {"body": "x"}}]}),
        )
        .conditions
        .unwrap()
    }

    fn status_flip(id: &str, from: &str, to: &str) -> Workflow {
        workflow(
            json!({"id": id, "name": format!("{from} to {to}"), "trigger_event": "customer.status_changed",
            "conditions": {"match": "all", "rules": [
                {"field": "event.status_type", "operator": "eq", "value": "sales"},
                {"field": "event.new_status", "operator": "eq", "value": from}]},
            "actions": [{"type": "add_note", "params": {"body": "flip"}},
                        {"type": "set_status", "params": {"type": "sales", "status": to}}]}),
        )
    }

    #[test]
    fn a_to_b_to_a_is_a_cycle_named_in_order() {
        let a_to_b = status_flip("wf_ab", "A", "B");
        let b_to_a = status_flip("wf_ba", "B", "A");
        let warnings = analyze(&b_to_a, "wf_ba", std::slice::from_ref(&a_to_b));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].path, "/actions/1");
        assert!(
            warnings[0]
                .message
                .contains(r#""B to A" (wf_ba) -> "A to B" (wf_ab) -> "B to A" (wf_ba)"#),
            "{}",
            warnings[0].message
        );
        // B -> C does not lead back.
        let b_to_c = status_flip("wf_bc", "B", "C");
        assert!(analyze(&b_to_c, "wf_bc", std::slice::from_ref(&a_to_b)).is_empty());
        // Re-setting its own status is no loop; an inactive partner is none either.
        let a_to_a = status_flip("wf_aa", "A", "A");
        assert!(analyze(&a_to_a, "wf_aa", &[]).is_empty());
        let mut off = a_to_b;
        off.active = false;
        assert!(analyze(&b_to_a, "wf_ba", &[off]).is_empty());
    }

    /// A step nested in a branch's path or a wait's outcome closes a cycle as well as one
    /// at the top: some run may take that path. The warning points into the tree.
    #[test]
    fn a_cycle_through_a_journeys_nested_step_points_into_the_tree() {
        let a_to_b = status_flip("wf_ab", "A", "B");
        let nested = workflow(
            json!({"id": "wf_ba", "name": "B to A, later", "trigger_event": "customer.status_changed",
            "conditions": {"match": "all", "rules": [
                {"field": "event.status_type", "operator": "eq", "value": "sales"},
                {"field": "event.new_status", "operator": "eq", "value": "B"}]},
            "actions": [{"type": "wait_for_event", "name": "w", "params": {"event": "customer.deposited",
                "timeout": {"days": 1}, "on_timeout": [
                    {"type": "branch", "params": {"paths": [
                        {"when": {"field": "customer.country", "operator": "eq", "value": "BR"},
                         "actions": [{"type": "set_status", "params": {"type": "sales", "status": "A"}}]}]}}]}}]}),
        );
        let warnings = analyze(&nested, "wf_ba", std::slice::from_ref(&a_to_b));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(
            warnings[0].path,
            "/actions/0/params/on_timeout/0/params/paths/0/actions/0"
        );
    }

    #[test]
    fn a_three_workflow_cycle_through_retention() {
        let ret = workflow(
            json!({"id": "r", "name": "churning to deposit watch", "trigger_event": "customer.retention_changed",
            "conditions": {"field": "event.new_status", "operator": "eq", "value": "churning"},
            "actions": [{"type": "set_status", "params": {"type": "sales", "status": "rescue"}}]}),
        );
        let sales = workflow(
            json!({"id": "s", "name": "rescue freezes", "trigger_event": "customer.status_changed",
            "conditions": {"field": "event.new_status", "operator": "eq", "value": "rescue"},
            "actions": [{"type": "freeze_account", "params": {"reason": "r"}}]}),
        );
        let freeze = workflow(
            json!({"id": "f", "name": "freeze marks churning", "trigger_event": "compliance.freeze_requested",
            "actions": [{"type": "set_status", "params": {"type": "retention", "status": "churning"}}]}),
        );
        let warnings = analyze(&freeze, "f", &[ret, sales]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].message.contains(
                "(f) -> \"churning to deposit watch\" (r) -> \"rescue freezes\" (s) -> \"freeze marks churning\" (f)"
            ),
            "{}",
            warnings[0].message
        );
    }

    fn deposit(id: &str, priority: i32, conditions: Value, action: Value) -> Workflow {
        workflow(
            json!({"id": id, "name": id, "trigger_event": "customer.deposited", "priority": priority,
            "conditions": conditions, "actions": [action]}),
        )
    }

    #[test]
    fn contradicting_actions_on_overlapping_events_are_named() {
        let big = json!({"field": "event.amount", "operator": "gte", "value": 1000});
        let br = json!({"field": "customer.country", "operator": "eq", "value": "BR"});
        let vip = deposit(
            "vip",
            10,
            big.clone(),
            json!({"type": "set_status", "params": {"type": "sales", "status": "vip"}}),
        );
        let brazil = deposit(
            "brazil",
            20,
            br,
            json!({"type": "set_status", "params": {"type": "sales", "status": "latam"}}),
        );
        let warnings = analyze(&brazil, "brazil", std::slice::from_ref(&vip));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].path, "/actions/0");
        assert!(
            warnings[0].message.contains("contradicts workflow \"vip\" (vip)"),
            "{}",
            warnings[0].message
        );
        assert!(warnings[0].message.contains("\"latam\"") && warnings[0].message.contains("\"vip\""));
        // Provably disjoint amounts: no conflict.
        let small = deposit(
            "small",
            20,
            json!({"field": "event.amount", "operator": "lt", "value": 500}),
            json!({"type": "set_status", "params": {"type": "sales", "status": "latam"}}),
        );
        assert!(analyze(&small, "small", std::slice::from_ref(&vip)).is_empty());
        // Same status, or another status type: no conflict.
        let same = deposit(
            "same",
            20,
            big.clone(),
            json!({"type": "set_status", "params": {"type": "sales", "status": "vip"}}),
        );
        assert!(analyze(&same, "same", std::slice::from_ref(&vip)).is_empty());
        let kyc = deposit(
            "kyc",
            20,
            big.clone(),
            json!({"type": "set_status", "params": {"type": "kyc", "status": "x"}}),
        );
        assert!(analyze(&kyc, "kyc", std::slice::from_ref(&vip)).is_empty());
        // A stop_after of higher priority keeps the other from running.
        let mut stopper = vip.clone();
        stopper.stop_after = true;
        assert!(analyze(&brazil, "brazil", &[stopper]).is_empty());
    }

    #[test]
    fn different_owners_conflict() {
        let always = json!(null);
        let a = deposit(
            "a",
            10,
            always.clone(),
            json!({"type": "assign_to_agent", "params": {"agent_id": 1}}),
        );
        let b = deposit(
            "b",
            10,
            always.clone(),
            json!({"type": "assign_to_agent", "params": {"agent_id": 2}}),
        );
        let t = deposit(
            "t",
            10,
            always.clone(),
            json!({"type": "assign_to_team", "params": {"team_id": 7}}),
        );
        let a_again = deposit(
            "a2",
            10,
            always,
            json!({"type": "assign_to_agent", "params": {"agent_id": 1}}),
        );
        assert_eq!(analyze(&b, "b", std::slice::from_ref(&a)).len(), 1);
        assert_eq!(analyze(&t, "t", std::slice::from_ref(&a)).len(), 1);
        assert!(analyze(&a_again, "a2", &[a]).is_empty());
    }
}
