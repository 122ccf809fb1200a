//! Integration tests: one binary, one module per topic. They start real
//! `gnomon serve` processes on loopback ports and talk real HTTP.

mod cluster;
mod cron;
mod jobs;
mod jobs_api;
mod ledger;
mod locks;
mod queues;
mod support;
mod ui;
