//! The scheduler: on the leader, turn every due slot of every enabled job
//! into a decision (fire, or record as missed) and propose it.

pub mod plan;
