//! The time engine: data-driven fire-time cases, properties, the command
//! line and the validation route.

mod cases;
mod cli;
mod http;
mod properties;
