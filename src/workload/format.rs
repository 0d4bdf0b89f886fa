//! The output formats: what each load tool reads.
//!
//! - `vegeta`: JSON targets, one object a line, as `vegeta attack -format=json` reads
//!   them: `method`, `url`, `header` (name → array of values) and `body` as standard
//!   base64 (left out when there is none).
//! - `urls`: one URL a line, for `oha --urls-from-file` and `bench/wrk/urls.lua`. Only
//!   `GET /v1/vardata` fits in a URL; the key goes in the tool's `-H`.
//! - `k6`: one JSON array of `{method, url, headers, body}` (`body` a string or null),
//!   read by `bench/k6/evalgate.js` into a `SharedArray`.

use std::io::{self, Write};

use base64::Engine;
use serde_json::{Map, Value, json};

use super::request::Request;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Vegeta,
    Urls,
    K6,
}

/// Writes requests in one format to `out`.
pub struct FormatWriter<W> {
    format: Format,
    out: W,
    written: u64,
}

impl<W: Write> FormatWriter<W> {
    pub fn new(format: Format, out: W) -> FormatWriter<W> {
        FormatWriter {
            format,
            out,
            written: 0,
        }
    }

    pub fn write(&mut self, r: &Request) -> io::Result<()> {
        match self.format {
            Format::Urls => {
                self.out.write_all(r.url.as_bytes())?;
                self.out.write_all(b"\n")?;
            }
            Format::Vegeta => {
                let mut header = Map::new();
                for (name, value) in &r.headers {
                    header.insert((*name).into(), json!([value]));
                }
                let mut target = Map::new();
                target.insert("method".into(), json!(r.method));
                target.insert("url".into(), json!(r.url));
                target.insert("header".into(), Value::Object(header));
                if let Some(body) = &r.body {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
                    target.insert("body".into(), Value::String(b64));
                }
                serde_json::to_writer(&mut self.out, &target)?;
                self.out.write_all(b"\n")?;
            }
            Format::K6 => {
                self.out
                    .write_all(if self.written == 0 { b"[\n" } else { b",\n" })?;
                let mut headers = Map::new();
                for (name, value) in &r.headers {
                    headers.insert((*name).into(), json!(value));
                }
                let request = json!({
                    "method": r.method,
                    "url": r.url,
                    "headers": headers,
                    "body": r.body,
                });
                serde_json::to_writer(&mut self.out, &request)?;
            }
        }
        self.written += 1;
        Ok(())
    }

    /// Closes the format (the k6 array) and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.format == Format::K6 {
            self.out.write_all(if self.written == 0 {
                b"[\n]\n"
            } else {
                b"\n]\n"
            })?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}
