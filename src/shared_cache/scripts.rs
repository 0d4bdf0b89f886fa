//! The Lua scripts: each one round trip, atomic on one key slot (an entry's value and lock
//! share their `{H}` hash tag; the generations hash is one key).
//!
//! Every script but FILL declares `allow-oom` (Redis ≥ 7.0): at `maxmemory` with nothing
//! evictable, locks, generations and purges (a few bytes each) still work, so reads,
//! coalescing and purges go on; only answers (FILL) are refused, and counted.

use std::sync::LazyLock;

use redis::Script;

// The lock's value is `-` for a second after its holder's fetch brought nothing storable
// (an error, a 5xx, `no-store`): instances that were waiting fetch for themselves at once,
// instead of taking the lock over one after another, each waiting for the last.

/// KEYS: value, lock. ARGV: lock token, lock ttl ms.
/// → `{1, value}` | `{2}` (lock taken: fetch) | `{3}` (another holds the lock) |
/// `{4}` (the last fetch failed: fetch without the lock).
pub static READ_OR_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"#!lua flags=allow-oom
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
if redis.call('GET', KEYS[2]) == '-' then return {4} end
return {3}",
    )
});

/// KEYS: value, lock. → `{1, value, lock}` | `{3}` (locked) | `{4}` (the fetch failed) |
/// `{0}` (neither: the lock expired); `lock` is 0, 3 or 4 in the same sense.
pub static PEEK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local v = redis.call('GET', KEYS[1])
local l = redis.call('GET', KEYS[2])
local s = 0
if l == '-' then s = 4 elseif l then s = 3 end
if v then return {1, v, s} end
return {s}",
    )
});

/// KEYS: lock. ARGV: token, ttl ms. → 1 when taken.
pub static LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"#!lua flags=allow-oom
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0",
    )
});

/// KEYS: value, lock. ARGV: envelope, px, lock token ('' when none).
/// Stores the value and releases this instance's lock (never another's).
pub static FILL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1",
    )
});

/// KEYS: lock. ARGV: token. If this instance still holds the lock, replaces it with the
/// `-` (failed) mark for a second.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"#!lua flags=allow-oom
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], '-', 'PX', 1000)
  return 1
end
return 0",
    )
});

/// KEYS: poll lease. ARGV: owner, ttl ms. Takes the lease when nobody holds it, or
/// renews it for its holder (so the instance polling keeps its interval) → 1 when held.
pub static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"#!lua flags=allow-oom
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1",
    )
});

/// KEYS: generations hash. ARGV: epoch candidate. Creates the epoch when the hash has
/// none (first use, or Redis lost it), then returns the whole hash.
pub static SYNC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"#!lua flags=allow-oom
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
end
return redis.call('HGETALL', KEYS[1])",
    )
});

/// The one way a generation rises, shared by PURGE and FLAGS_CHANGED: creates the epoch
/// when the hash has none, raises `field` to max(old + 1, now) (time-based: never steps
/// back onto an old generation) → `{epoch, new generation}`.
const RAISE: &str = r"local function raise(hash, field, now, candidate)
  redis.call('HSETNX', hash, 'epoch', candidate)
  local e = redis.call('HGET', hash, 'epoch')
  local g = tonumber(redis.call('HGET', hash, field) or '0')
  local n = math.max(g + 1, tonumber(now))
  redis.call('HSET', hash, field, tostring(n))
  return {e, tostring(n)}
end
";

/// KEYS: generations hash. ARGV: generation field, now ms, epoch candidate.
/// Raises the generation ([`RAISE`]) → `{epoch, new generation}`.
pub static PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "#!lua flags=allow-oom\n{RAISE}return raise(KEYS[1], ARGV[1], ARGV[2], ARGV[3])"
    ))
});

/// KEYS: generations hash. ARGV: fingerprint field, fingerprint, generation field, now
/// ms, epoch candidate. Records a deployment's flags fingerprint; when it differs from a
/// recorded one, raises the deployment's generation ([`RAISE`]).
/// → `{0}` (first or unchanged) | `{1, epoch, new generation}`.
pub static FLAGS_CHANGED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"#!lua flags=allow-oom
{RAISE}local old = redis.call('HGET', KEYS[1], ARGV[1])
if old == ARGV[2] then return {{0}} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if not old then return {{0}} end
local raised = raise(KEYS[1], ARGV[3], ARGV[4], ARGV[5])
return {{1, raised[1], raised[2]}}"
    ))
});
