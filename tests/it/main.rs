//! Integration tests: one binary with modules, to keep link time down.

mod audit_log;
mod cli;
mod cloudwatch;
mod fixture;
mod forecast_tools;
mod guard_hardening;
mod kubeconfig;
mod kubectl;
mod metrics_scope;
mod metrics_tools;
mod mutations;
mod nab;
mod prometheus;
mod redaction;
mod sandbox_api;
mod server;
mod tool_files;
mod tools;
