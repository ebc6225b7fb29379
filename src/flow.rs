//! A workflow's actions laid out flat: the order a run walks its steps in, and where each
//! step goes next.
//!
//! A journey nests actions in `branch` and `split` paths and `wait_for_event` outcomes; a run still
//! keeps one step counter (`runs.next_step`) and one row per step (`run_steps.step_index`),
//! so the tree is laid out in pre-order and every slot says which slot follows it. A
//! branch's or a wait's nested lists ("blocks") come right after it, one after another;
//! the last slot of a block goes on after the whole branch or wait. A run therefore moves
//! through the same numbers whatever path it takes, and a step's index never changes
//! while its workflow version lives. A workflow without journeys lays out as its list:
//! slot `i` is action `i` and goes on to `i + 1`.
//!
//! Each slot also carries its `path` (`"2.paths.0.1"`: the step's place in the tree, used
//! in runs and idempotency keys) and its JSON pointer into the definition.

use crate::catalogue::Action;
use crate::workflow::Step;

/// The flat layout of a workflow's actions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Flow {
    slots: Vec<Slot>,
    /// Whether any step branches or waits; decided once here, since runs ask per event.
    journey: bool,
    /// Whether any step has a name; likewise.
    names: bool,
}

/// One step in the layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// The step's place in the tree: `"3"`, `"2.paths.0.1"`, `"3.on_timeout.0"`.
    pub path: String,
    /// Its JSON pointer in the definition: `/actions/2/params/paths/0/actions/1`.
    pub pointer: String,
    pub step: Step,
    /// The slot a run goes on to once this step is done; [`Flow::len`] ends the run.
    pub next: usize,
    /// Where a branch's or a wait's blocks lie; `None` for any other step.
    pub fork: Option<Fork>,
}

/// The nested blocks of a branch (its paths, then `otherwise`) or of a wait (`on_event`,
/// then `on_timeout`), laid out one after another right after the step.
#[derive(Debug, Clone, PartialEq)]
pub struct Fork {
    /// The first slot of each block; an empty block starts where the next one does.
    pub starts: Vec<usize>,
    /// The slot after the last block: the step's whole subtree is `index + 1 .. end`.
    pub end: usize,
}

impl Fork {
    /// The slots of block `i`.
    pub fn block(&self, i: usize) -> std::ops::Range<usize> {
        let start = self.starts.get(i).copied().unwrap_or(self.end);
        let end = self.starts.get(i + 1).copied().unwrap_or(self.end);
        start..end
    }
}

impl Flow {
    /// Lays out `actions` (a validated workflow's).
    pub fn lay_out(actions: &[Step]) -> Self {
        let mut flow = Self {
            slots: Vec::with_capacity(actions.iter().map(size).sum()),
            journey: false,
            names: false,
        };
        let end = flow.slots.capacity();
        flow.lay(actions, end, "", "/actions");
        flow.journey = flow.slots.iter().any(|s| s.fork.is_some());
        flow.names = flow.slots.iter().any(|s| s.step.name.is_some());
        flow
    }

    fn lay(&mut self, list: &[Step], cont: usize, path: &str, pointer: &str) {
        for (i, step) in list.iter().enumerate() {
            let index = self.slots.len();
            let end = index + size(step);
            let next = if i + 1 < list.len() { end } else { cont };
            let here = format!("{path}{i}");
            let at = format!("{pointer}/{i}");
            let blocks = blocks(&step.action);
            self.slots.push(Slot {
                path: here.clone(),
                pointer: at.clone(),
                step: step.clone(),
                next,
                fork: None,
            });
            if let Some(blocks) = blocks {
                let mut starts = Vec::with_capacity(blocks.len());
                for (name, pointer_tail, block) in blocks {
                    starts.push(self.slots.len());
                    self.lay(
                        block,
                        next,
                        &format!("{here}.{name}."),
                        &format!("{at}/params/{pointer_tail}"),
                    );
                }
                self.slots[index].fork = Some(Fork { starts, end });
            }
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&Slot> {
        self.slots.get(index)
    }

    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Whether any step is a branch or a wait: a plain list runs as it always did.
    pub fn is_journey(&self) -> bool {
        self.journey
    }

    /// Whether any step has a name (its results are then readable as `steps.<name>`).
    pub fn has_names(&self) -> bool {
        self.names
    }

    /// The slots `pick` chooses along the one way through the tree that meets the most of
    /// them, in order: a run takes one path of each branch and one outcome of each wait, so
    /// this is the most of them a single run can meet (the save-time fan-out check).
    pub fn most_on_one_path(&self, pick: impl Fn(&Slot) -> bool + Copy) -> Vec<usize> {
        self.walk(0..self.slots.len(), pick)
    }

    fn walk(&self, block: std::ops::Range<usize>, pick: impl Fn(&Slot) -> bool + Copy) -> Vec<usize> {
        let mut out = Vec::new();
        let mut pc = block.start;
        while let Some(slot) = self.slots.get(pc).filter(|_| pc < block.end) {
            if pick(slot) {
                out.push(pc);
            }
            match &slot.fork {
                Some(fork) => {
                    // The first block with the most, so the result does not depend on ties.
                    let mut most = Vec::new();
                    for i in 0..fork.starts.len() {
                        let found = self.walk(fork.block(i), pick);
                        if found.len() > most.len() {
                            most = found;
                        }
                    }
                    out.extend(most);
                    pc = fork.end;
                }
                None => pc += 1,
            }
        }
        out
    }

    /// The slot a named step has.
    pub fn named(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.step.name.as_deref() == Some(name))
    }
}

/// A slot's index as the database keeps it (`run_steps.step_index`, `runs.next_step`).
pub fn stored_index(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

/// Slots a step takes: itself and everything nested in it.
fn size(step: &Step) -> usize {
    1 + blocks(&step.action).map_or(0, |blocks| {
        blocks
            .iter()
            .map(|(_, _, block)| block.iter().map(size).sum::<usize>())
            .sum()
    })
}

/// A step's nested lists in layout order, each with its path segment and its pointer
/// below `params`.
fn blocks(action: &Action) -> Option<Vec<(String, String, &[Step])>> {
    match action {
        Action::Branch { paths, otherwise } => {
            let mut blocks: Vec<(String, String, &[Step])> = paths
                .iter()
                .enumerate()
                .map(|(k, p)| (format!("paths.{k}"), format!("paths/{k}/actions"), p.actions.as_slice()))
                .collect();
            blocks.push(("otherwise".to_owned(), "otherwise".to_owned(), otherwise.as_slice()));
            Some(blocks)
        }
        Action::Split { paths } => Some(
            paths
                .iter()
                .enumerate()
                .map(|(k, p)| (format!("paths.{k}"), format!("paths/{k}/actions"), p.actions.as_slice()))
                .collect(),
        ),
        Action::WaitForEvent {
            on_event, on_timeout, ..
        } => Some(vec![
            ("on_event".to_owned(), "on_event".to_owned(), on_event.as_slice()),
            ("on_timeout".to_owned(), "on_timeout".to_owned(), on_timeout.as_slice()),
        ]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::Limits;
    use crate::schema::FieldSchema;
    use crate::validate::Validator;
    use serde_json::json;

    fn flow(actions: serde_json::Value) -> Flow {
        let schema = FieldSchema::default();
        let workflow = Validator::new(&schema, Limits::default())
            .workflow(&json!({"name": "j", "trigger_event": "customer.registered", "actions": actions}))
            .expect("valid")
            .workflow;
        workflow.flow().clone()
    }

    fn note(body: &str) -> serde_json::Value {
        json!({"type": "add_note", "params": {"body": body}})
    }

    #[test]
    fn a_plain_list_lays_out_as_itself() {
        let f = flow(json!([note("a"), note("b"), note("c")]));
        let shape: Vec<(&str, usize)> = f.slots().iter().map(|s| (s.path.as_str(), s.next)).collect();
        assert_eq!(shape, [("0", 1), ("1", 2), ("2", 3)]);
        assert!(!f.is_journey());
    }

    #[test]
    fn a_branch_lays_its_paths_after_itself_and_each_goes_on_after_the_branch() {
        let f = flow(json!([
            note("first"),
            {"type": "branch", "name": "size", "params": {
                "paths": [
                    {"when": {"field": "event.amount", "operator": "gt", "value": 1000}, "actions": [note("big"), note("big too")]},
                    {"when": {"field": "event.amount", "operator": "gt", "value": 100}, "actions": []}
                ],
                "otherwise": [note("small")]
            }},
            note("last")
        ]));
        let shape: Vec<(&str, &str, usize)> = f
            .slots()
            .iter()
            .map(|s| (s.path.as_str(), s.pointer.as_str(), s.next))
            .collect();
        assert_eq!(
            shape,
            [
                ("0", "/actions/0", 1),
                ("1", "/actions/1", 5),
                ("1.paths.0.0", "/actions/1/params/paths/0/actions/0", 3),
                ("1.paths.0.1", "/actions/1/params/paths/0/actions/1", 5),
                ("1.otherwise.0", "/actions/1/params/otherwise/0", 5),
                ("2", "/actions/2", 6),
            ]
        );
        let fork = f.get(1).and_then(|s| s.fork.clone()).expect("a fork");
        assert_eq!(fork.block(0), 2..4);
        assert_eq!(fork.block(1), 4..4, "an empty path");
        assert_eq!(fork.block(2), 4..5, "otherwise");
        assert_eq!(fork.end, 5);
    }

    #[test]
    fn the_last_step_of_a_nested_block_goes_on_after_every_enclosing_step() {
        let f = flow(json!([
            {"type": "wait_for_event", "name": "deposit", "params": {
                "event": "customer.deposited", "timeout": {"days": 3},
                "on_event": [{"type": "branch", "params": {"paths": [
                    {"when": {"field": "steps.deposit.event.amount", "operator": "gt", "value": 1000}, "actions": [note("vip")]}
                ]}}],
                "on_timeout": [note("nudge")]
            }}
        ]));
        let shape: Vec<(&str, usize)> = f.slots().iter().map(|s| (s.path.as_str(), s.next)).collect();
        assert_eq!(
            shape,
            [
                ("0", 4),
                ("0.on_event.0", 4),
                ("0.on_event.0.paths.0.0", 4),
                ("0.on_timeout.0", 4),
            ]
        );
        let wait = f.get(0).and_then(|s| s.fork.clone()).expect("a fork");
        assert_eq!(wait.block(0), 1..3);
        assert_eq!(wait.block(1), 3..4);
        assert_eq!(f.named("deposit"), Some(0));
    }
}
