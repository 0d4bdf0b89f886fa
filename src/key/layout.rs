//! How a key's fields sit in its one allocation.
//!
//! ```text
//! [hash: u64 LE][route: u8][flags: u8][lengths: LEB128, one per field present][fields]
//! ```
//!
//! The fields, in order: the deployment key, `X-Amp-Exp-Track`, `X-Amp-Exp-Exposure-Track`,
//! the path and query (decoded, [`super::query`], unless [`PACKED`] is clear), the flag-keys
//! header, the POST body. The optional ones are present when their flag is set. The hash is
//! of everything after it, so two keys are equal exactly when their bytes are.

use std::cell::RefCell;
use std::ops::Range;

use super::{CanonicalRequest, RouteFamily, query};

/// Offset of the route byte; the hash is before it.
pub const HEAD: usize = 8;

const TRACK: u8 = 1;
const EXPOSURE: u8 = 2;
const FLAG_KEYS: u8 = 4;
const BODY: u8 = 8;
/// The path and query is stored decoded ([`query::pack_into`]).
const PACKED: u8 = 16;

/// Where each field of a key is.
pub struct Fields {
    pub route: RouteFamily,
    pub deployment: Range<usize>,
    pub track: Option<Range<usize>>,
    pub exposure_track: Option<Range<usize>>,
    pub path_and_query: Range<usize>,
    pub packed: bool,
    pub flag_keys_header: Option<Range<usize>>,
    pub body: Option<Range<usize>>,
}

/// The largest scratch buffer kept between keys: one key of a huge POST body does not pin
/// its size in every thread for good.
const SCRATCH_KEPT: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Encodes `parts` and hands the bytes (hash still zero) to `make`, which copies them
/// into the key's allocation: the encoding itself reuses a per-thread buffer, so a key
/// costs that one allocation.
pub fn encode<T>(parts: &CanonicalRequest, make: impl FnOnce(&mut [u8]) -> T) -> T {
    let mut make = Some(make);
    let scratched = SCRATCH.try_with(|scratch| {
        // Busy only if `make` built another key (never the case): then the fallback below.
        let mut scratch = scratch.try_borrow_mut().ok()?;
        let make = make.take()?;
        let (out, pq) = &mut *scratch;
        out.clear();
        pq.clear();
        write(parts, out, pq);
        let key = make(out);
        for buf in [out, pq] {
            if buf.capacity() > SCRATCH_KEPT {
                *buf = Vec::new();
            }
        }
        Some(key)
    });
    match (scratched, make) {
        (Ok(Some(key)), _) => key,
        // No scratch buffer (the thread is exiting, or it is in use): buffers of its own.
        (_, Some(make)) => {
            let (mut out, mut pq) = (Vec::new(), Vec::new());
            write(parts, &mut out, &mut pq);
            make(&mut out)
        }
        (_, None) => unreachable!("`make` is taken only on the path that returns its key"),
    }
}

fn write(parts: &CanonicalRequest, out: &mut Vec<u8>, pq: &mut Vec<u8>) {
    let packed = query::pack_into(&parts.path_and_query, pq).is_some();
    if !packed {
        pq.extend_from_slice(parts.path_and_query.as_bytes());
    }
    let optional = [
        (TRACK, parts.track.as_deref()),
        (EXPOSURE, parts.exposure_track.as_deref()),
        (FLAG_KEYS, parts.flag_keys_header.as_deref()),
        (BODY, parts.body.as_deref()),
    ];
    let mut flags = if packed { PACKED } else { 0 };
    for (flag, field) in optional {
        if field.is_some() {
            flags |= flag;
        }
    }
    let fields: [Option<&[u8]>; 6] = [
        Some(parts.deployment.as_bytes()),
        parts.track.as_deref().map(str::as_bytes),
        parts.exposure_track.as_deref().map(str::as_bytes),
        Some(&pq[..]),
        parts.flag_keys_header.as_deref().map(str::as_bytes),
        parts.body.as_deref().map(str::as_bytes),
    ];
    let data: usize = fields.iter().flatten().map(|f| f.len() + 3).sum();
    out.reserve(HEAD + 2 + data);
    out.extend_from_slice(&[0; HEAD]);
    out.push(route_byte(parts.route));
    out.push(flags);
    for field in fields.iter().flatten() {
        leb128(out, field.len());
    }
    for field in fields.iter().flatten() {
        out.extend_from_slice(field);
    }
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

fn route_byte(route: RouteFamily) -> u8 {
    RouteFamily::ALL
        .iter()
        .position(|r| *r == route)
        .map_or(0, |at| at as u8)
}

/// The fields of `bytes`, as [`encode`] wrote them.
pub fn fields(bytes: &[u8]) -> Fields {
    let route = bytes
        .get(HEAD)
        .and_then(|&r| RouteFamily::ALL.get(usize::from(r)))
        .copied()
        .unwrap_or(RouteFamily::V1Vardata);
    let flags = bytes.get(HEAD + 1).copied().unwrap_or(0);
    let mut at = HEAD + 2;
    let mut read_len = || {
        let mut n = 0usize;
        let mut shift = 0;
        while let Some(&b) = bytes.get(at) {
            at += 1;
            n |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 || shift >= usize::BITS as usize {
                break;
            }
        }
        n
    };
    let present = |flag: u8| flags & flag != 0;
    let deployment = read_len();
    let track = present(TRACK).then(&mut read_len);
    let exposure = present(EXPOSURE).then(&mut read_len);
    let pq = read_len();
    let flag_keys = present(FLAG_KEYS).then(&mut read_len);
    let body = present(BODY).then(&mut read_len);
    let mut start = at;
    let mut next = |len: usize| {
        let end = (start + len).min(bytes.len());
        let range = start.min(end)..end;
        start = end;
        range
    };
    Fields {
        route,
        deployment: next(deployment),
        track: track.map(&mut next),
        exposure_track: exposure.map(&mut next),
        path_and_query: next(pq),
        packed: present(PACKED),
        flag_keys_header: flag_keys.map(&mut next),
        body: body.map(&mut next),
    }
}
