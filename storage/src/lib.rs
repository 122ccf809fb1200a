//! gnomon's storage: redb tables and the deterministic state machine.
