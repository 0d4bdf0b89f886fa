//! Ratio and time of every gzip level and brotli quality on the given files (flag
//! configurations), the measurements behind `compression.gzip_level` and
//! `compression.brotli_quality`'s defaults.
//!
//! `cargo run --release --example compression_levels -- flags.json [more.json …]`

use std::time::Instant;

use evalgate::compression::codec::compress;
use evalgate::compression::{Encoding, Levels};

fn main() {
    for path in std::env::args().skip(1) {
        let body = std::fs::read(&path).expect("readable file");
        println!("{path}: {} bytes", body.len());
        for (encoding, levels) in [(Encoding::Gzip, 1..=9u32), (Encoding::Br, 0..=11u32)] {
            for level in levels {
                let levels = Levels {
                    gzip: level.max(1),
                    brotli: level,
                };
                // Fewer rounds for the slow top brotli qualities.
                let rounds = if level >= 10 { 3 } else { 20 };
                let started = Instant::now();
                let mut out = bytes::Bytes::new();
                for _ in 0..rounds {
                    out = compress(encoding, &body, levels);
                }
                let each = started.elapsed() / rounds;
                let ratio = body.len() as f64 / out.len() as f64;
                println!(
                    "  {:>4} {level:2}: {:8} bytes  {ratio:5.1}x  {each:8.2?}",
                    encoding.as_str(),
                    out.len()
                );
            }
        }
    }
}
