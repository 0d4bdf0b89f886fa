//! The codecs: gzip (`flate2`, its pure-Rust backend) and brotli (`brotli`, Dropbox's
//! pure-Rust port) to compress answers; and decoding of what the upstream sends, bounded
//! so that a small compressed body cannot expand past the response size limit.

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::Compression;

use super::Encoding;

/// Brotli's largest window (log2 bytes): 4 MiB, as large as
/// `upstream.max_response_bytes`' default, so a whole flag configuration is one window.
const BROTLI_WINDOW: u32 = 22;

/// The window for a body of `len` bytes: the smallest that holds it (from brotli's least,
/// 2^10, to [`BROTLI_WINDOW`]). A larger one compresses no better, and the encoder
/// allocates its ring buffer at the window's size: 4 MiB per job for a 300-byte answer.
fn brotli_window(len: usize) -> u32 {
    let bits = usize::BITS - len.saturating_sub(1).leading_zeros();
    bits.clamp(10, BROTLI_WINDOW)
}

/// Buffer the brotli writer and reader work through.
const BROTLI_BUFFER: usize = 16 * 1024;

/// Compression effort per encoding (`compression.gzip_level`,
/// `compression.brotli_quality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub gzip: u32,
    pub brotli: u32,
}

impl Levels {
    /// The largest body compressed in `encoding` on a runtime worker; larger ones go to
    /// tokio's blocking pool. About what takes a millisecond at the configured level,
    /// measured on a 250 KB flag configuration (release build): gzip 1 ≈ 250 KB/ms, 6 ≈
    /// 42, 9 ≈ 18; brotli 1 ≈ 280, 4 ≈ 100, 5 ≈ 53, 9 ≈ 6.6, 11 ≈ 0.6. Rounded down to a
    /// power of two, so a worker is never kept from its connections much longer than a
    /// millisecond; from brotli 10 up everything goes to the pool.
    pub fn inline_bytes(self, encoding: Encoding) -> usize {
        const KIB: usize = 1024;
        match encoding {
            Encoding::Gzip => match self.gzip {
                0..=3 => 64 * KIB,
                4..=6 => 32 * KIB,
                _ => 16 * KIB,
            },
            Encoding::Br => match self.brotli {
                0..=5 => 64 * KIB,
                6..=8 => 16 * KIB,
                9 => 4 * KIB,
                _ => 0,
            },
        }
    }
}

/// `body` compressed in `encoding`.
pub fn compress(encoding: Encoding, body: &[u8], levels: Levels) -> Bytes {
    // Writing into a Vec cannot fail.
    let out = Vec::with_capacity(body.len() / 4 + 64);
    let out = match encoding {
        Encoding::Gzip => {
            let mut writer = flate2::write::GzEncoder::new(out, Compression::new(levels.gzip));
            writer.write_all(body).expect("writes to a Vec");
            writer.finish().expect("writes to a Vec")
        }
        Encoding::Br => {
            let mut writer = brotli::CompressorWriter::new(
                out,
                BROTLI_BUFFER,
                levels.brotli,
                brotli_window(body.len()),
            );
            writer.write_all(body).expect("writes to a Vec");
            writer.flush().expect("writes to a Vec");
            writer.into_inner()
        }
    };
    // Exactly as long as the output: it is kept with the cache entry, whose weight counts
    // the bytes held ([`crate::cache::weight`]), not a buffer's spare capacity.
    Bytes::from(out.into_boxed_slice())
}

/// A `Content-Encoding` of an upstream answer that evalgate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Br,
    /// The zlib format (RFC 9110 §8.4.1.2); a raw deflate stream, which some servers
    /// send instead, is accepted too.
    Deflate,
}

impl Coding {
    pub const ALL: [Coding; 3] = [Coding::Gzip, Coding::Br, Coding::Deflate];

    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Deflate => "deflate",
        }
    }
}

/// What an upstream's `Content-Encoding` says about its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coded {
    /// No field, `identity`, or empty.
    Identity,
    Known(Coding),
    /// A coding evalgate does not decode, or several stacked: relayed, never stored.
    Unknown,
}

/// Reads `Content-Encoding`.
pub fn coded(headers: &http::HeaderMap) -> Coded {
    let mut fields = headers.get_all(http::header::CONTENT_ENCODING).iter();
    let Some(field) = fields.next() else {
        return Coded::Identity;
    };
    if fields.next().is_some() {
        return Coded::Unknown;
    }
    let Ok(text) = field.to_str() else {
        return Coded::Unknown;
    };
    let token = text.trim();
    if token.is_empty() || token.eq_ignore_ascii_case("identity") {
        Coded::Identity
    } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
        Coded::Known(Coding::Gzip)
    } else if token.eq_ignore_ascii_case("br") {
        Coded::Known(Coding::Br)
    } else if token.eq_ignore_ascii_case("deflate") {
        Coded::Known(Coding::Deflate)
    } else {
        Coded::Unknown
    }
}

/// Why an upstream body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("decoded body larger than the limit")]
    TooLarge,
    #[error("body is not valid in its content coding")]
    Invalid,
}

/// `body` decoded from `coding`, at most `max` bytes of it: reading stops at `max + 1`
/// bytes, so a decompression bomb costs `max` bytes of memory, never more.
pub fn decode(coding: Coding, body: &[u8], max: usize) -> Result<Bytes, DecodeError> {
    match coding {
        Coding::Gzip => decode_gzip(body, max).map(|(identity, _)| identity),
        Coding::Br => bounded(brotli::Decompressor::new(body, BROTLI_BUFFER), max),
        Coding::Deflate => match bounded(flate2::read::ZlibDecoder::new(body), max) {
            Err(DecodeError::Invalid) => bounded(flate2::read::DeflateDecoder::new(body), max),
            other => other,
        },
    }
}

/// A gzip `body` decoded (at most `max` bytes), and whether it is exactly one gzip
/// member: browsers (Chromium) read only the first member of a gzip body, so only such a
/// body may be served to them as it came. Several members, or bytes after the first, are
/// decoded whole (RFC 1952 allows members in sequence) and answer `false`.
pub fn decode_gzip(body: &[u8], max: usize) -> Result<(Bytes, bool), DecodeError> {
    let mut first = flate2::bufread::GzDecoder::new(body);
    let identity = bounded(&mut first, max)?;
    if first.into_inner().is_empty() {
        return Ok((identity, true));
    }
    bounded(flate2::read::MultiGzDecoder::new(body), max).map(|identity| (identity, false))
}

fn bounded(reader: impl Read, max: usize) -> Result<Bytes, DecodeError> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Invalid)?;
    if out.len() > max {
        return Err(DecodeError::TooLarge);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: Levels = Levels { gzip: 6, brotli: 5 };

    fn sample() -> Vec<u8> {
        let mut body = b"[".to_vec();
        for i in 0..2000 {
            body.extend_from_slice(
                format!(r#"{{"key":"flag-{i}","variants":{{"on":{{"value":"on"}}}}}},"#).as_bytes(),
            );
        }
        body.push(b']');
        body
    }

    #[test]
    fn round_trips() {
        let body = sample();
        for (encoding, coding) in [(Encoding::Gzip, Coding::Gzip), (Encoding::Br, Coding::Br)] {
            let packed = compress(encoding, &body, LEVELS);
            assert!(packed.len() < body.len() / 5, "{encoding:?}");
            assert_eq!(decode(coding, &packed, body.len()).unwrap(), body);
        }
    }

    #[test]
    fn the_brotli_window_fits_the_body_and_every_size_round_trips() {
        assert_eq!(brotli_window(0), 10);
        assert_eq!(brotli_window(288), 10);
        assert_eq!(brotli_window(1024), 10);
        assert_eq!(brotli_window(1025), 11);
        assert_eq!(brotli_window(65_536), 16);
        assert_eq!(brotli_window(10 << 20), BROTLI_WINDOW);
        let body = sample();
        for len in [0, 1, 300, 1024, 1025, 70_000, body.len()] {
            let part = &body[..len];
            let packed = compress(Encoding::Br, part, LEVELS);
            assert_eq!(
                decode(Coding::Br, &packed, len.max(1)).unwrap(),
                part,
                "{len}"
            );
        }
    }

    #[test]
    fn gzip_members_are_told_apart() {
        let body = sample();
        let one = compress(Encoding::Gzip, &body, LEVELS);
        assert_eq!(
            decode_gzip(&one, body.len()).unwrap(),
            (body.clone().into(), true)
        );
        let (head, tail) = body.split_at(body.len() / 2);
        let mut two = compress(Encoding::Gzip, head, LEVELS).to_vec();
        two.extend_from_slice(&compress(Encoding::Gzip, tail, LEVELS));
        assert_eq!(decode_gzip(&two, body.len()).unwrap(), (body.into(), false));
    }

    #[test]
    fn the_inline_size_falls_with_the_level() {
        let at = |gzip, brotli| Levels { gzip, brotli };
        assert_eq!(at(6, 5).inline_bytes(Encoding::Br), 64 * 1024);
        assert_eq!(at(6, 9).inline_bytes(Encoding::Br), 4 * 1024);
        assert_eq!(at(6, 11).inline_bytes(Encoding::Br), 0);
        assert_eq!(at(1, 5).inline_bytes(Encoding::Gzip), 64 * 1024);
        assert_eq!(at(9, 5).inline_bytes(Encoding::Gzip), 16 * 1024);
    }

    #[test]
    fn deflate_is_zlib_or_raw() {
        let body = sample();
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(&body).unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(&body).unwrap();
        for packed in [zlib.finish().unwrap(), raw.finish().unwrap()] {
            assert_eq!(decode(Coding::Deflate, &packed, body.len()).unwrap(), body);
        }
    }

    #[test]
    fn decoding_stops_at_the_limit() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = compress(Encoding::Gzip, &zeros, LEVELS);
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(
            decode(Coding::Gzip, &bomb, 1 << 20),
            Err(DecodeError::TooLarge)
        );
        assert_eq!(decode(Coding::Gzip, &bomb, 8 << 20).unwrap().len(), 8 << 20);
        assert_eq!(
            decode(Coding::Gzip, b"not gzip", 100),
            Err(DecodeError::Invalid)
        );
    }

    #[test]
    fn content_encoding_is_read() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(coded(&headers), Coded::Identity);
        headers.insert("content-encoding", "Identity".parse().unwrap());
        assert_eq!(coded(&headers), Coded::Identity);
        headers.insert("content-encoding", "GZIP".parse().unwrap());
        assert_eq!(coded(&headers), Coded::Known(Coding::Gzip));
        headers.insert("content-encoding", "zstd".parse().unwrap());
        assert_eq!(coded(&headers), Coded::Unknown);
        headers.insert("content-encoding", "gzip, br".parse().unwrap());
        assert_eq!(coded(&headers), Coded::Unknown);
    }
}
