//! Log output through the redaction pass: whatever a crate logs (kube logs a whole API
//! response at `warn` when it cannot parse it), what reaches stderr is masked and bounded.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Longest log record written; a longer one keeps its start and says how much was cut.
pub const MAX_RECORD_BYTES: usize = 8 * 1024;

/// A [`MakeWriter`] for `tracing_subscriber::fmt` that masks credentials in every record
/// and bounds its length before writing it to stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingWriter;

/// One log record, collected until it is complete (the formatter writes a record in one
/// or more pieces, then drops the writer).
pub struct Record {
    buf: Vec<u8>,
}

impl Write for Record {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let out = bounded_record(&super::redact_str(&text));
        // a log line that cannot be written has nowhere else to go
        let _ = io::stderr().lock().write_all(out.as_bytes());
    }
}

impl<'a> MakeWriter<'a> for RedactingWriter {
    type Writer = Record;

    fn make_writer(&'a self) -> Self::Writer {
        Record { buf: Vec::new() }
    }
}

/// A record cut to [`MAX_RECORD_BYTES`] (on a character boundary), ending in a newline.
pub fn bounded_record(text: &str) -> String {
    if text.len() <= MAX_RECORD_BYTES {
        return text.to_string();
    }
    let mut end = MAX_RECORD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{} … [{} bytes of this log record cut]\n",
        &text[..end],
        text.len() - end
    )
}
