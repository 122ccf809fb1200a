//! gnomon: a distributed cron scheduler in one binary.
//!
//! Three copies form a Raft group over an embedded redb file each and fire
//! every job exactly once per scheduled slot, in its own time zone. The crate
//! is organised by what each part owns:
//!
//! * [`cli`]: the command line, both the server and the client subcommands.
//! * [`api`]: the public HTTP API and its error shape.
//! * [`executor`]: running one attempt of a job's target and reporting it.
//! * [`job`]: the job body: parsing, validation, canonical form, run ids.
//! * [`metrics`]: Prometheus metrics.
//! * [`node`]: wiring a running node together.
//! * [`schedule`]: cron dialects, time zones and daylight saving.
//! * [`scheduler`]: turning due slots into runs, on the leader.
//! * [`timers`]: the leader's ticks, which let the log's clock act.
//! * [`worker`]: the node's pool that runs attempts.

pub mod api;
pub mod cli;
pub mod executor;
pub mod job;
pub mod metrics;
pub mod node;
pub mod schedule;
pub mod scheduler;
pub mod timers;
pub mod worker;
