//! Conflicts: two active workflows of one trigger that can match the same event and do
//! contradictory things to the customer, so the result depends on which runs last.
//!
//! Contradictions found: `set_status` of one status type to different statuses (both
//! named, or both by id), and ownership set to different owners (`assign_to_agent`,
//! `assign_to_team`, `handover_to_retention` with different targets; an agent and a team
//! always differ). "Can match the same event" is decided by [`super::overlap`]: assumed,
//! unless the two condition trees are proven disjoint. A pair where one workflow's
//! `stop_after` keeps the other from running (strictly lower priority number) is no
//! conflict.

use super::cycles::Node;
use crate::catalogue::{Action, StatusRef};
use crate::problem::{Problem, Severity};

/// What an action decides about the customer, when it is something another action can
/// contradict.
#[derive(Debug, Clone, PartialEq)]
enum Decision<'a> {
    Status(&'a str, &'a StatusRef),
    Owner(Owner),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Owner {
    Agent(i64),
    Team(i64),
    RetentionDesk(Option<i64>),
}

impl Owner {
    fn describe(self) -> String {
        match self {
            Owner::Agent(id) => format!("assigns agent {id}"),
            Owner::Team(id) => format!("assigns team {id}"),
            Owner::RetentionDesk(Some(id)) => format!("hands over to retention team {id}"),
            Owner::RetentionDesk(None) => "hands over to the retention desk".to_owned(),
        }
    }
}

fn decision(action: &Action) -> Option<Decision<'_>> {
    Some(match action {
        Action::SetStatus { status_type, status } => Decision::Status(status_type, status),
        Action::AssignToAgent { agent_id } => Decision::Owner(Owner::Agent(*agent_id)),
        Action::AssignToTeam { team_id } => Decision::Owner(Owner::Team(*team_id)),
        Action::HandoverToRetention { team_id } => Decision::Owner(Owner::RetentionDesk(*team_id)),
        _ => return None,
    })
}

fn status_text(s: &StatusRef) -> String {
    match s {
        StatusRef::Name(n) => format!("{n:?}"),
        StatusRef::Id(id) => format!("status id {id}"),
    }
}

/// How `a` and `b` contradict each other, if they do.
fn contradiction(a: &Decision<'_>, b: &Decision<'_>) -> Option<(String, String)> {
    match (a, b) {
        (Decision::Status(ta, sa), Decision::Status(tb, sb)) if ta == tb => {
            let differ = match (sa, sb) {
                (StatusRef::Name(x), StatusRef::Name(y)) => x != y,
                (StatusRef::Id(x), StatusRef::Id(y)) => x != y,
                // A name and an id may be the same status: not provably different.
                _ => false,
            };
            differ.then(|| {
                (
                    format!("sets the {ta} status to {}", status_text(sa)),
                    format!("to {}", status_text(sb)),
                )
            })
        }
        (Decision::Owner(x), Decision::Owner(y)) if x != y => {
            // A hand-over without a team goes to some retention team: it contradicts a
            // team or agent elsewhere, but not a hand-over to a named retention team.
            if matches!(
                (x, y),
                (Owner::RetentionDesk(None), Owner::RetentionDesk(_))
                    | (Owner::RetentionDesk(_), Owner::RetentionDesk(None))
            ) {
                return None;
            }
            Some((x.describe(), y.describe()))
        }
        _ => None,
    }
}

/// Whether one of the two keeps the other from running on every event both match.
fn stopped(a: &Node<'_>, b: &Node<'_>) -> bool {
    let (a, b) = (a.workflow, b.workflow);
    (a.stop_after && a.priority < b.priority) || (b.stop_after && b.priority < a.priority)
}

/// A warning for each active workflow of the same trigger that `nodes[0]` contradicts,
/// at the pointer of the first contradicting action of `nodes[0]`.
pub fn check(nodes: &[Node<'_>]) -> Vec<Problem> {
    let Some((me, others)) = nodes.split_first() else {
        return Vec::new();
    };
    if me.requirements.impossible() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for other in others {
        if other.workflow.trigger_event != me.workflow.trigger_event
            || other.requirements.impossible()
            || me.requirements.disjoint_from(&other.requirements).is_some()
            || stopped(me, other)
        {
            continue;
        }
        // Any step of either tree: some run may take its path.
        let found = me.workflow.flow().slots().iter().find_map(|mine| {
            let decided = decision(&mine.step.action)?;
            other.workflow.flow().slots().iter().find_map(|theirs| {
                let against = decision(&theirs.step.action)?;
                contradiction(&decided, &against).map(|(what, against)| (mine, theirs, what, against))
            })
        });
        if let Some((i, j, what, against)) = found {
            let (mp, op) = (me.workflow.priority, other.workflow.priority);
            let order = if mp == op {
                format!("both have priority {mp}, so the id decides which runs last and wins")
            } else {
                format!("the one that runs last (priority {} vs {}) wins", mp, op)
            };
            out.push(Problem {
                path: i.pointer.clone(),
                message: format!(
                    "contradicts workflow {:?} ({}): both can match the same {} events; this one {what}, \
                     that one (action {}) {against}; {order}",
                    other.workflow.name, other.id, me.workflow.trigger_event, j.path
                ),
                severity: Severity::Warning,
            });
        }
    }
    out
}
