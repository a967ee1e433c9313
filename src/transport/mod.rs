//! Transports: stdio, Streamable HTTP and legacy HTTP+SSE.

pub mod accept;
pub mod http;
pub mod legacy_sse;
pub mod memory;
pub mod stdio;

pub use stdio::serve_stdio;
