//! Integration tests: one binary with modules, to keep link time down.

mod fixture;
mod kubeconfig;
mod kubectl;
mod mutations;
mod nab;
mod sandbox_api;
mod server;
mod tool_files;
mod tools;
