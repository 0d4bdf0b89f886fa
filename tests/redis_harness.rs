//! The Redis harness (tests/support/redis.rs) works against real `redis-server` processes:
//! start, kill and restart on the same port, SIGSTOP/SIGCONT, TLS with the test CA, a
//! 3-master cluster, and the pub/sub collector.

mod support;

use std::time::{Duration, Instant};

use support::redis::{RedisCluster, RedisServer, Stored};

#[test]
fn a_server_answers_and_shows_its_keys() {
    let server = RedisServer::start();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_eq!(server.cmd(&["PING"]), "PONG");
    assert_eq!(server.cmd(&["SET", "greeting", "hello"]), "OK");
    assert_eq!(server.cmd(&["GET", "greeting"]), "hello");
    server.cmd(&["HSET", "deps", "a", "1", "b", "2"]);
    server.cmd(&["SET", "short", "lived", "PX", "60000"]);
    server.cmd(&["RPUSH", "queue", "x"]);

    let mut conn = server.connection();
    let got: String = ::redis::cmd("GET")
        .arg("greeting")
        .query(&mut conn)
        .unwrap();
    assert_eq!(got, "hello");

    let keys = server.keys();
    assert_eq!(keys.len(), 4, "{keys:#?}");
    assert_eq!(keys["greeting"].value, Stored::String(b"hello".to_vec()));
    assert_eq!(keys["greeting"].pttl_ms, -1);
    let deps = keys["deps"].value.as_hash().expect("deps is a hash");
    assert_eq!(deps["a"], b"1");
    assert_eq!(deps["b"], b"2");
    assert!((1..=60_000).contains(&keys["short"].pttl_ms), "{keys:#?}");
    assert_eq!(keys["queue"].value, Stored::Other("list".into()));

    // An error reply is an error, not output.
    let err = server.try_cmd(&["HGETALL", "greeting"]).unwrap_err();
    assert!(err.starts_with("WRONGTYPE"), "{err}");
}

#[test]
fn extra_arguments_reach_the_server() {
    let server =
        RedisServer::start_with(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
    assert_eq!(
        server.cmd(&["CONFIG", "GET", "maxmemory"]),
        "maxmemory\n2097152"
    );
    assert_eq!(
        server.cmd(&["CONFIG", "GET", "maxmemory-policy"]),
        "maxmemory-policy\nnoeviction"
    );
    // The harness allows DEBUG from loopback, for DEBUG SLEEP.
    assert_eq!(server.cmd(&["DEBUG", "SLEEP", "0"]), "OK");
}

#[test]
#[should_panic(expected = "Bad directive")]
fn a_server_that_fails_to_start_panics_with_its_log() {
    RedisServer::start_with(&["--no-such-directive", "x"]);
}

#[test]
fn kill_then_restart_comes_back_empty_on_the_same_port() {
    let mut server = RedisServer::start();
    server.cmd(&["SET", "k", "v"]);
    let (port, pid) = (server.port(), server.pid());

    server.kill();
    assert!(
        server.try_cmd(&["PING"]).is_err(),
        "a killed server must not answer"
    );

    server.restart();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), pid);
    assert_eq!(server.cmd(&["DBSIZE"]), "0");
    assert!(server.keys().is_empty());
}

#[test]
#[should_panic(expected = "stayed taken")]
fn a_restart_onto_a_taken_port_panics_saying_so() {
    let mut server = RedisServer::start();
    server.kill();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", server.port())).unwrap();
    server.restart();
}

#[test]
fn a_stopped_server_times_out_and_answers_after_cont() {
    let server = RedisServer::start();
    server.cmd(&["SET", "k", "v"]);
    let mut conn = server.connection();
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    server.stop();
    let started = Instant::now();
    let err = ::redis::cmd("GET")
        .arg("k")
        .query::<String>(&mut conn)
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the client timeout bounds the wait"
    );

    server.cont();
    let mut fresh = server.connection();
    let got: String = ::redis::cmd("GET").arg("k").query(&mut fresh).unwrap();
    assert_eq!(got, "v");
    assert_eq!(server.cmd(&["GET", "k"]), "v");
}

#[tokio::test]
async fn tls_with_the_test_ca() {
    let server = RedisServer::start_tls();
    assert_eq!(
        server.url(),
        format!("rediss://127.0.0.1:{}", server.port())
    );
    assert!(server.ca_file().exists());
    assert_eq!(server.cmd(&["PING"]), "PONG");

    // rustls through the redis crate, trusting the test CA: what the gateway does.
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    ::redis::cmd("SET")
        .arg("over")
        .arg("tls")
        .exec_async(&mut conn)
        .await
        .unwrap();
    let got: String = ::redis::cmd("GET")
        .arg("over")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(got, "tls");
    assert_eq!(server.keys()["over"].value, Stored::String(b"tls".to_vec()));

    // Without the CA the certificate is not trusted: the check is real.
    let untrusting = ::redis::Client::open(server.url()).unwrap();
    let err = untrusting
        .get_multiplexed_async_connection()
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn a_cluster_spreads_keys_over_its_masters() {
    let cluster = RedisCluster::start(3);
    assert_eq!(cluster.node_urls().len(), 3);
    let mut conn = cluster.client().get_async_connection().await.unwrap();
    for i in 0..100 {
        let (key, value) = (format!("key:{i}"), format!("value:{i}"));
        ::redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .exec_async(&mut conn)
            .await
            .unwrap();
    }

    let by_node = cluster.keys_by_node();
    let holding = by_node.iter().filter(|keys| !keys.is_empty()).count();
    assert!(holding >= 2, "100 keys on {holding} node(s)");
    let all = cluster.keys();
    assert_eq!(all.len(), 100);
    assert_eq!(all["key:42"].value, Stored::String(b"value:42".to_vec()));
}

#[test]
fn the_collector_records_every_channel_and_survives_a_pubsub_kill() {
    let server = RedisServer::start();
    let collector = server.collector();
    server.cmd(&["PUBLISH", "eg:purge", "deployment-1"]);
    server.cmd(&["PUBLISH", "other", "x"]);
    assert!(
        collector.wait_for(Duration::from_secs(5), |m| m.len() == 2),
        "{:?}",
        collector.messages()
    );
    let got = collector.take();
    assert_eq!(
        (got[0].channel.as_str(), got[0].payload_text().as_str()),
        ("eg:purge", "deployment-1")
    );
    assert_eq!(got[1].channel, "other");
    assert!(collector.messages().is_empty());

    // Killing its connection: it subscribes again and records what comes after.
    server.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let started = Instant::now();
    while collector.lost() == 0 || server.cmd(&["PUBSUB", "NUMPAT"]) != "1" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the collector did not subscribe again"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.cmd(&["PUBLISH", "eg:purge", "after"]);
    assert!(collector.wait_for(Duration::from_secs(5), |m| !m.is_empty()));
    assert_eq!(collector.take()[0].payload_text(), "after");
}
