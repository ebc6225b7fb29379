//! The guard rails of a workflow: who may enter it and how often ([`limits`]), when its
//! messages may go out ([`window`]), who must not get them ([`consent`]), what ends its
//! waiting runs early ([`exit`]), how deep events the engine emits may cascade
//! ([`cascade`]), whether an event with a used id is that event again ([`identity`]), and
//! how many messages one customer gets across workflows ([`contact`]).
//!
//! Pure decisions, no I/O: the runner and the dry run call the same functions with the
//! same facts, so a dry run reports what a real run decides. What must hold across
//! processes (a customer enters a limited workflow once) is enforced by the database in
//! [`crate::storage::entries`], with the rule of [`limits::EntryLimit::held_back`].

pub mod cascade;
pub mod consent;
pub mod contact;
pub mod exit;
pub mod identity;
pub mod limits;
pub mod window;
