//! Transports: stdio, Streamable HTTP and legacy HTTP+SSE.

pub mod http;
pub mod legacy_sse;

use rmcp::ServiceExt;

use crate::server::EksOpsServer;

/// Serve one MCP session over stdin/stdout until the client closes it.
pub async fn serve_stdio(server: EksOpsServer) -> Result<(), std::io::Error> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| std::io::Error::other(format!("MCP initialisation over stdio failed: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| std::io::Error::other(format!("MCP session ended with an error: {e}")))?;
    Ok(())
}
