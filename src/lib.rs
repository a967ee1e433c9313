//! eks-ops-mcp: policy-gated, predictive operations tools for Amazon EKS over the
//! Model Context Protocol.
//!
//! The binary's CLI lives in `main.rs`; everything else is here so that the
//! integration tests can drive the same code.

pub mod audit;
pub mod cluster;
pub mod error;
pub mod forecast;
pub mod guard;
pub mod metrics;
pub mod policy;
pub mod redact;
pub mod sandbox;
pub mod server;
pub mod tools;
pub mod transport;
