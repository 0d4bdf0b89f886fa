//! Secrecy of a fleet's shared tier (issue 13): after traffic on every cacheable route,
//! remembered 401s, flag-change polling and purges, no deployment key (nor its tail, as
//! masked logs show it) and no user id appears in any Redis key name, value or channel
//! message; and the names change with `shared_cache.key_secret`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use evalgate::gateway::PurgeScope;
use evalgate::shared_cache::Fanout;
use http::{Method, StatusCode};
use support::fleet::{Fleet, Instance, cache_and_tier, fleet_config};
use support::redis::{RedisServer, Stored, StoredKey};
use support::*;

/// How long an event (an announcement, a flag poll) may take: "it happens", not a speed.
const WITHIN: Duration = Duration::from_secs(5);

/// Deployment keys and user ids easy to find in bytes.
const SECRET_KEY: &str = "dep-SECRETKEY-123";
const DENIED_KEY: &str = "dep-DENIEDKEY-456";
const USERS: [&str; 3] = ["user-alice-42", "user-bob-77", "user-carol-99"];
const DENIED_USER: &str = "user-dave-13";

/// An evaluation answer that names neither key nor user, as Amplitude's do: what the fleet
/// stores beyond it is what is checked.
const ANSWER: &str = r#"{"flag-a":{"key":"on","value":"on"}}"#;
const FLAGS: &str = r#"[{"key":"flag-a","metadata":{"flagVersion":3}}]"#;

/// The last `n` characters of `s` (what a masked key shows).
fn tail(s: &str, n: usize) -> &str {
    &s[s.len() - n..]
}

/// Asks every cacheable route for every user with [`SECRET_KEY`], each on one instance and
/// again on the other, and has [`DENIED_KEY`] refused; returns the entries written.
async fn secret_traffic(fleet: &Fleet, upstream: &FakeUpstream) -> u64 {
    let c = client();
    let auth = format!("Api-Key {SECRET_KEY}");
    upstream.update(|s| s.raw_body = Some(ANSWER));
    let mut entries = 0;
    for (n, user) in USERS.iter().enumerate() {
        let header_user = URL_SAFE_NO_PAD.encode(format!(r#"{{"user_id":"{user}"}}"#));
        let body_user = format!(r#"{{"user_id":"{user}","device_id":"device-{user}"}}"#);
        for i in [n % 2, (n + 1) % 2] {
            let v1 = get_with_key(
                &c,
                &fleet.url(i, &format!("/v1/vardata?user_id={user}")),
                SECRET_KEY,
            )
            .await;
            let url = fleet.url(i, "/sdk/v2/vardata?v=0");
            let get = send(
                &c,
                Method::GET,
                &url,
                &[("authorization", &auth), ("x-amp-exp-user", &header_user)],
                "",
            )
            .await;
            let post = send(
                &c,
                Method::POST,
                &url,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                &body_user,
            )
            .await;
            for got in [v1, get, post] {
                assert_eq!(got.status, StatusCode::OK, "{got:?}");
            }
        }
        entries += 3;
    }
    upstream.update(|s| s.raw_body = Some(FLAGS));
    for i in [0, 1] {
        let got = get_with_key(
            &c,
            &fleet.url(i, "/sdk/v2/flags?flag_keys=flag-a"),
            SECRET_KEY,
        )
        .await;
        assert_eq!(got.status, StatusCode::OK, "{got:?}");
    }
    upstream.update(|s| {
        s.raw_body = None;
        s.status = Some(StatusCode::UNAUTHORIZED);
    });
    for i in [0, 1] {
        let url = fleet.url(i, &format!("/v1/vardata?user_id={DENIED_USER}"));
        let got = get_with_key(&c, &url, DENIED_KEY).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{got:?}");
    }
    upstream.update(|s| s.status = None);
    entries + 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_deployment_key_and_no_user_id_reaches_redis() {
    let redis = RedisServer::start();
    let collector = redis.collector();
    let upstream = FakeUpstream::start().await;
    // The flag-change poller asks its own upstream, so `upstream` counts answers only.
    let flags = FakeUpstream::start().await;
    flags.update(|s| s.flags = Some(vec![("flag-a", 1)]));
    let mut config = fleet_config(&upstream.url(), &redis.url());
    config.cache.negative_ttl_s = 30;
    config.invalidation.flags_url = flags.url();
    config.invalidation.poll_interval_s = 1;
    let fleet = Fleet::start(2, &config).await;

    let entries = secret_traffic(&fleet, &upstream).await;
    assert_eq!(upstream.count() as u64, entries, "each entry fetched once");
    fleet.await_ops("write", "ok", entries).await;

    // Every key seen at any time: the poll lease lives one interval only.
    let mut seen = BTreeMap::new();
    let scan = |seen: &mut BTreeMap<String, StoredKey>| {
        let keys = redis.keys();
        seen.extend(keys.clone());
        keys
    };
    // The fleet polls the deployment's flags (one instance per interval, under a lease)
    // and records their fingerprint; a new flag version is announced as a purge.
    let fingerprinted = |keys: &BTreeMap<String, StoredKey>| {
        keys.get("evalgate:1:gens")
            .and_then(|g| g.value.as_hash())
            .is_some_and(|g| g.keys().any(|f| f.starts_with("f:")))
    };
    let deadline = Instant::now() + WITHIN;
    while !fingerprinted(&scan(&mut seen)) {
        assert!(
            Instant::now() < deadline,
            "no flag poll recorded: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    flags.update(|s| s.flags = Some(vec![("flag-a", 2)]));
    let deadline = Instant::now() + WITHIN;
    while collector.messages().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the flag change was not announced"
        );
        scan(&mut seen);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Purges: of one deployment, of the refused one, of everything.
    for (i, scope) in [
        PurgeScope::Deployment(SECRET_KEY.into()),
        PurgeScope::Deployment(DENIED_KEY.into()),
        PurgeScope::All,
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(fleet[i % 2].gateway.purge(scope).await, Some(Fanout::Sent));
    }
    assert!(
        collector.wait_for(WITHIN, |m| m.len() >= 4),
        "{:?}",
        collector.messages()
    );

    let keys = scan(&mut seen);
    let messages = collector.messages();
    let values = keys.keys().filter(|k| k.ends_with(":v")).count() as u64;
    assert_eq!(values, entries, "every entry is there: {keys:#?}");
    assert!(
        seen.keys().any(|k| k.starts_with("evalgate:1:poll:")),
        "a poll lease was seen: {seen:#?}"
    );
    assert_eq!(messages.len(), 4, "{messages:?}");
    let keys = seen;

    let mut needles: Vec<String> = vec![
        SECRET_KEY.into(),
        tail(SECRET_KEY, 8).into(),
        DENIED_KEY.into(),
        tail(DENIED_KEY, 8).into(),
        DENIED_USER.into(),
    ];
    for user in USERS {
        needles.push(user.into());
        needles.push(format!("device-{user}"));
    }
    // Every byte Redis holds or carried: names, values (hash fields too), channels,
    // messages.
    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, stored) in &keys {
        haystacks.push((format!("key name {name}"), name.clone().into_bytes()));
        match &stored.value {
            Stored::String(bytes) => haystacks.push((format!("value of {name}"), bytes.clone())),
            Stored::Hash(fields) => {
                for (field, value) in fields {
                    haystacks.push((format!("field of {name}"), field.clone().into_bytes()));
                    haystacks.push((format!("{name}[{field}]"), value.clone()));
                }
            }
            Stored::Other(kind) => panic!("{name} is a {kind}: not a type the tier writes"),
        }
    }
    for m in &messages {
        haystacks.push((
            format!("channel {}", m.channel),
            m.channel.clone().into_bytes(),
        ));
        haystacks.push((format!("message on {}", m.channel), m.payload.clone()));
    }
    for (place, bytes) in &haystacks {
        let text = String::from_utf8_lossy(bytes).to_lowercase();
        for needle in &needles {
            assert!(
                !text.contains(&needle.to_lowercase()),
                "{place} contains {needle:?}: {text:?}"
            );
        }
    }
    // The values do hold the answers (the scan looked at the right bytes).
    let answers = keys
        .values()
        .filter_map(|k| k.value.as_bytes())
        .filter(|v| v.ends_with(ANSWER.as_bytes()))
        .count() as u64;
    assert_eq!(answers, 9, "{keys:#?}");
}

#[tokio::test]
async fn a_key_secret_changes_every_name() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| s.raw_body = Some(ANSWER));
    let with_secret = |secret: &str| {
        let mut config = fleet_config(&upstream.url(), &redis.url());
        config.shared_cache.key_secret = secret.to_string();
        config
    };
    // Same namespace, same request: only the secret differs.
    let path = format!("/v1/vardata?user_id={}", USERS[0]);
    let c = client();
    let mut names = Vec::new();
    let mut tags = Vec::new();
    for (n, secret) in ["", "fleet-secret-one", "fleet-secret-two"]
        .iter()
        .enumerate()
    {
        let instance = Instance::start(with_secret(secret)).await;
        let got = get_with_key(&c, &instance.url(&path), SECRET_KEY).await;
        assert_eq!(
            cache_and_tier(&got),
            ("MISS".into(), "upstream".into()),
            "secret {secret:?} does not find the others' entries"
        );
        assert_eq!(upstream.count(), n + 1);
        let fleet = Fleet {
            instances: vec![instance],
        };
        fleet.await_ops("write", "ok", 1).await;
        let purge = PurgeScope::Deployment(SECRET_KEY.into());
        assert_eq!(fleet[0].gateway.purge(&purge).await, Some(Fanout::Sent));

        let keys = redis.keys();
        let value_names: BTreeSet<String> =
            keys.keys().filter(|k| k.ends_with(":v")).cloned().collect();
        let dep_fields: BTreeSet<String> = keys["evalgate:1:gens"]
            .value
            .as_hash()
            .expect("gens is a hash")
            .keys()
            .filter(|f| f.starts_with("g:") && *f != "g:*")
            .cloned()
            .collect();
        names.push(value_names);
        tags.push(dep_fields);
    }
    // Each secret added one value name and one deployment tag of its own.
    for n in 0..3 {
        assert_eq!(names[n].len(), n + 1, "{names:?}");
        assert_eq!(tags[n].len(), n + 1, "{tags:?}");
    }
}
