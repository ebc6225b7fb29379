//! Cycles: a workflow whose actions emit an event that starts workflows whose actions,
//! in turn, lead back to it. At run time the cascade stops at `engine.max_cascade_depth`;
//! at save time the operator is told which workflows form the loop.
//!
//! The graph has an edge from A to B when an action of A emits B's trigger and B's
//! conditions are not provably false for what is known of that event
//! ([`super::overlap`]): `event.new_status eq "B"` cannot be started by a `set_status` to
//! "A". A workflow that only re-triggers itself through `set_status` is no cycle:
//! setting the status a customer already has announces nothing.

use super::emits::emitted;
use super::overlap::Requirements;
use crate::problem::{Problem, Severity};
use crate::workflow::Workflow;
use std::collections::VecDeque;

/// A workflow in the analysis, with the name it is shown by.
pub struct Node<'w> {
    pub id: &'w str,
    pub workflow: &'w Workflow,
    pub requirements: Requirements,
}

/// The shortest cycle through `nodes[0]` (the workflow being saved), as node indexes from
/// it back to it, with the slot of the step of `nodes[0]` that starts it (any step of a
/// journey's tree: some run may take its path).
fn shortest_cycle(nodes: &[Node<'_>]) -> Option<(usize, Vec<usize>)> {
    // Edges from node `from`: (slot, to).
    let edges = |from: usize| -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (i, slot) in nodes[from].workflow.flow().slots().iter().enumerate() {
            let Some(emitted) = emitted(&slot.step.action) else {
                continue;
            };
            for (to, node) in nodes.iter().enumerate() {
                if to == from && emitted.only_on_change {
                    continue;
                }
                if node.workflow.trigger_event == emitted.trigger
                    && !node.requirements.impossible()
                    && node.requirements.disjoint_from(&emitted.facts).is_none()
                {
                    out.push((i, to));
                }
            }
        }
        out
    };
    // Breadth-first from node 0; the first edge back into 0 closes the shortest cycle.
    let mut parent: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut first_action: Vec<usize> = vec![0; nodes.len()];
    let mut seen = vec![false; nodes.len()];
    let mut queue = VecDeque::from([0usize]);
    seen[0] = true;
    while let Some(at) = queue.pop_front() {
        for (action, to) in edges(at) {
            let start = if at == 0 { action } else { first_action[at] };
            if to == 0 {
                let mut path = vec![at];
                let mut cur = at;
                while let Some(p) = parent[cur] {
                    path.push(p);
                    cur = p;
                }
                path.reverse();
                if path.first() != Some(&0) {
                    path.insert(0, 0);
                }
                path.push(0);
                return Some((start, path));
            }
            if !seen[to] {
                seen[to] = true;
                parent[to] = Some(at);
                first_action[to] = start;
                queue.push_back(to);
            }
        }
    }
    None
}

/// A warning when `nodes[0]` closes a cycle, at the pointer of the action that starts it.
pub fn check(nodes: &[Node<'_>]) -> Option<Problem> {
    if nodes.is_empty() || nodes[0].requirements.impossible() {
        return None;
    }
    let (slot, path) = shortest_cycle(nodes)?;
    let names: Vec<String> = path
        .iter()
        .map(|&i| format!("{:?} ({})", nodes[i].workflow.name, nodes[i].id))
        .collect();
    Some(Problem {
        path: nodes[0].workflow.flow().get(slot)?.pointer.clone(),
        message: format!(
            "closes a cycle: {}; each one's actions emit an event that starts the next, so they \
             can set each other off until engine.max_cascade_depth stops the cascade",
            names.join(" -> ")
        ),
        severity: Severity::Warning,
    })
}
