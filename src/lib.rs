//! Floe: an Apache Iceberg REST catalog and lakehouse control plane in one binary.
//!
//! # Layout
//!
//! Each module is one box of the architecture (see `ARCHITECTURE.md`); imports run downward only,
//! and no two modules import each other:
//!
//! ```text
//! main -> server -> config
//!         server -> api | gateway -> service -> store | storage | index | authn | authz | secrets | events
//!                                                  -> model | error
//!         server, gateway, config -> listen
//! ```
//!
//! - `main` (the binary) and `cli`: the `floe` command and its client commands;
//! - `server`: the composition root, the one place that picks the configured backends;
//! - `listen`: the accept loop both HTTP listeners share;
//! - `config`: the configuration tree, read by `main` and `server` alone;
//! - `api`: the catalog and management HTTP surfaces; `gateway`: the S3 surface;
//! - `service`: the use cases; `index`: the branching index's pure logic;
//! - `store`: persistence (the only SQL); `storage`: object storage, locations, signing;
//! - `authn`, `authz`, `secrets`, `events`: the pluggable modules, one trait each;
//! - `telemetry`: the Prometheus metrics every layer records;
//! - `model` and `error`: the ground floor (ids, records, the `warehouse@ref` grammar, the
//!   operation table with each operation's permission, and the one error type).

pub mod api;
pub mod authn;
pub mod authz;
pub mod cli;
pub mod config;
pub mod error;
pub mod events;
pub mod gateway;
pub mod index;
pub mod listen;
pub mod model;
pub mod secrets;
pub mod server;
pub mod service;
pub mod storage;
pub mod store;
pub mod telemetry;
