//! Names in Redis: every key and the purge channel, built from keyed hashes so that no
//! deployment key and no user id is ever stored in clear.
//!
//! An entry's name is `<namespace>:1:{<H>}:v` (its fill lock `…:l`), where `H` is
//! HMAC-SHA256 (`shared_cache.key_secret`) over the namespace, the generations it is
//! read under (the fleet's epoch, the purge-all generation and its deployment's) and
//! the whole canonical request, length-prefixed field by field. Folding the generations
//! in is what makes a purge O(1): after a bump every old entry is unreachable, and Redis
//! reclaims it when it expires. `{H}` is a Cluster hash tag: value and lock share a slot.

use ring::hmac;

use crate::key::CacheKey;

/// The layout version in every name; bumped when names or the envelope change, so that
/// instances of two versions never read each other's entries.
const LAYOUT: &str = "1";

/// The HMAC key used when `shared_cache.key_secret` is empty: a public constant, so the
/// hash is in effect unkeyed (still one-way; deployment keys are high-entropy).
const UNKEYED: &[u8] = b"evalgate shared cache: no key_secret configured";

/// A deployment key's tag: the first 128 bits of its keyed hash, in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DepTag([u8; 16]);

impl DepTag {
    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses the hex form (from a channel message or the generations hash).
    pub fn parse(text: &str) -> Option<DepTag> {
        let mut out = [0u8; 16];
        if text.len() != 32 {
            return None;
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(DepTag(out))
    }
}

/// The generations an entry is read and written under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gens {
    /// The fleet's epoch: a random number kept in the generations hash; a Redis that lost
    /// the hash (restarted empty, flushed) gets a new one, so nothing older is reachable.
    pub epoch: u64,
    /// Purge-all generation.
    pub all: u64,
    /// The deployment's generation.
    pub deployment: u64,
}

/// The names of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryNames {
    pub value: String,
    pub lock: String,
}

/// Builds every name from the namespace and the secret.
pub struct Namer {
    key: hmac::Key,
    /// `<namespace>:<LAYOUT>`.
    prefix: String,
    namespace: String,
}

impl Namer {
    pub fn new(namespace: &str, secret: &str) -> Namer {
        let secret = if secret.is_empty() {
            UNKEYED
        } else {
            secret.as_bytes()
        };
        Namer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            prefix: format!("{namespace}:{LAYOUT}"),
            namespace: namespace.to_string(),
        }
    }

    pub fn dep_tag(&self, deployment: &str) -> DepTag {
        let mut ctx = hmac::Context::with_key(&self.key);
        field(&mut ctx, b"deployment");
        field(&mut ctx, self.namespace.as_bytes());
        field(&mut ctx, deployment.as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        DepTag(out)
    }

    /// The names of `key`'s entry under `gens`, as answered by `origin` (what answers
    /// misses: the upstream's base URL, or the embedded engine's flags digest, so that
    /// instances answering from different upstreams or flags never share an entry).
    pub fn entry(&self, key: &CacheKey, tag: DepTag, gens: Gens, origin: &[u8]) -> EntryNames {
        let mut ctx = hmac::Context::with_key(&self.key);
        field(&mut ctx, b"entry");
        field(&mut ctx, self.namespace.as_bytes());
        field(&mut ctx, origin);
        for n in [gens.epoch, gens.all, gens.deployment] {
            ctx.update(&n.to_be_bytes());
        }
        field(&mut ctx, &tag.0);
        field(&mut ctx, key.route().as_str().as_bytes());
        field(&mut ctx, key.deployment().as_bytes());
        optional(&mut ctx, key.track());
        field(&mut ctx, key.path_and_query().as_bytes());
        optional(&mut ctx, key.flag_keys_header());
        optional(&mut ctx, key.body());
        // Only when present, so the names of every other key (and of instances of an
        // older version) stay as they were: an instance with `upstream.tracking = "never"`
        // never shares an entry with one forwarding the client's tracking headers.
        if let Some(exposure) = key.exposure_track() {
            field(&mut ctx, b"exposure_track");
            field(&mut ctx, exposure.as_bytes());
        }
        let h = hex(ctx.sign().as_ref());
        EntryNames {
            value: format!("{}:{{{h}}}:v", self.prefix),
            lock: format!("{}:{{{h}}}:l", self.prefix),
        }
    }

    /// The hash of generations (and flag fingerprints): the one key without an expiry.
    pub fn generations(&self) -> String {
        format!("{}:gens", self.prefix)
    }

    /// The field of a deployment's generation in [`Namer::generations`].
    pub fn gen_field(tag: Option<DepTag>) -> String {
        match tag {
            Some(tag) => format!("g:{}", tag.hex()),
            None => "g:*".into(),
        }
    }

    /// The field of a deployment's flags fingerprint.
    pub fn fingerprint_field(tag: DepTag) -> String {
        format!("f:{}", tag.hex())
    }

    /// The lease on polling one deployment's flags.
    pub fn poll_lease(&self, tag: DepTag) -> String {
        format!("{}:poll:{}", self.prefix, tag.hex())
    }

    /// The channel purges are announced on.
    pub fn channel(&self) -> String {
        format!("{}:purge", self.prefix)
    }
}

/// A length-prefixed field: no two different sequences of fields hash the same bytes.
fn field(ctx: &mut hmac::Context, bytes: &[u8]) {
    ctx.update(&(bytes.len() as u64).to_be_bytes());
    ctx.update(bytes);
}

/// An optional field: absent and empty differ.
fn optional(ctx: &mut hmac::Context, value: Option<&str>) {
    match value {
        Some(v) => {
            ctx.update(&[1]);
            field(ctx, v.as_bytes());
        }
        None => ctx.update(&[0]),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::RouteFamily;

    fn key(deployment: &str, query: &str) -> CacheKey {
        CacheKey::new(
            RouteFamily::V1Vardata,
            deployment,
            None,
            format!("/v1/vardata?{query}"),
        )
    }

    #[test]
    fn names_hide_the_deployment_key_and_the_user() {
        let namer = Namer::new("evalgate", "s3cret");
        let tag = namer.dep_tag("server-abc123");
        let names = namer.entry(
            &key("server-abc123", "user_id=alice"),
            tag,
            Gens::default(),
            b"o",
        );
        for name in [&names.value, &names.lock, &tag.hex()] {
            assert!(
                !name.contains("abc123") && !name.contains("alice"),
                "{name}"
            );
        }
        assert!(names.value.starts_with("evalgate:1:{") && names.value.ends_with("}:v"));
        assert_eq!(names.value.replace(":v", ":l"), names.lock);
    }

    #[test]
    fn every_input_changes_the_name() {
        let namer = Namer::new("evalgate", "s3cret");
        let tag = namer.dep_tag("d1");
        let base = namer.entry(&key("d1", "user_id=a"), tag, Gens::default(), b"o");
        let other_user = namer.entry(&key("d1", "user_id=b"), tag, Gens::default(), b"o");
        let other_dep = namer.entry(
            &key("d2", "user_id=a"),
            namer.dep_tag("d2"),
            Gens::default(),
            b"o",
        );
        let purged = namer.entry(
            &key("d1", "user_id=a"),
            tag,
            Gens {
                deployment: 1,
                ..Gens::default()
            },
            b"o",
        );
        let new_epoch = namer.entry(
            &key("d1", "user_id=a"),
            tag,
            Gens {
                epoch: 7,
                ..Gens::default()
            },
            b"o",
        );
        let other_origin = namer.entry(&key("d1", "user_id=a"), tag, Gens::default(), b"p");
        let other_fleet = Namer::new("other", "s3cret").entry(
            &key("d1", "user_id=a"),
            tag,
            Gens::default(),
            b"o",
        );
        let other_secret =
            Namer::new("evalgate", "x").entry(&key("d1", "user_id=a"), tag, Gens::default(), b"o");
        for other in [
            other_user,
            other_dep,
            purged,
            new_epoch,
            other_fleet,
            other_secret,
            other_origin,
        ] {
            assert_ne!(base.value, other.value);
        }
        assert_eq!(
            base,
            namer.entry(&key("d1", "user_id=a"), tag, Gens::default(), b"o")
        );
    }

    /// `upstream.tracking = "never"` keys (no-track for assignments and exposures) never
    /// share an entry with a passthrough instance's no-track key, and the exposure field
    /// goes into the name only when present.
    #[test]
    fn tracking_modes_do_not_share_names() {
        let namer = Namer::new("evalgate", "s3cret");
        let tag = namer.dep_tag("d1");
        let pq = || "/v1/vardata?user_id=a".to_string();
        let no_track = CacheKey::new(RouteFamily::V1Vardata, "d1", Some("no-track"), pq());
        let never = CacheKey::tracked(
            RouteFamily::V1Vardata,
            "d1",
            Some("no-track"),
            Some("no-track"),
            pq(),
        );
        let name = |k: &CacheKey| namer.entry(k, tag, Gens::default(), b"o").value;
        assert_ne!(name(&no_track), name(&never));
        let plain = CacheKey::tracked(RouteFamily::V1Vardata, "d1", Some("no-track"), None, pq());
        assert_eq!(name(&no_track), name(&plain));
    }

    #[test]
    fn tags_round_trip_through_hex() {
        let tag = Namer::new("n", "").dep_tag("key");
        assert_eq!(DepTag::parse(&tag.hex()), Some(tag));
        assert_eq!(DepTag::parse("zz"), None);
    }
}
