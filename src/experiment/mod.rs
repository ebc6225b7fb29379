//! Experiments: a `split` step's paths and a workflow's `holdout`, both chosen by a stable
//! hash of the customer ([`assign`]); a workflow's `goal` ([`goal`]); and the lift of a
//! workflow over its holdout with its 95% interval ([`lift`]).

pub mod assign;
pub mod goal;
pub mod lift;
