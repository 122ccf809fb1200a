//! gnomon's Raft layer: openraft types, redb log store, state-machine adaptor and HTTP network.
