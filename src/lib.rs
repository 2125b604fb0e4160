//! Floe: an Apache Iceberg REST catalog and lakehouse control plane in one binary.
//!
//! # Layout
//!
//! Each module is one box of the architecture (see `ARCHITECTURE.md`); imports run downward only:
//! `server -> api -> service -> store | storage | authz | secrets | events -> model | error`.

pub mod api;
pub mod authn;
pub mod authz;
pub mod cli;
pub mod config;
pub mod error;
pub mod events;
pub mod gateway;
pub mod index;
pub mod model;
pub mod secrets;
pub mod server;
pub mod service;
pub mod storage;
pub mod store;
