//! The URL settings (`upstream.url`, `invalidation.flags_url`): one check for all.

use super::*;

/// `url` under each URL setting fails validation naming that key.
#[track_caller]
fn url_is_rejected(url: &str, why: &str) {
    for key in ["upstream.url", "invalidation.flags_url"] {
        let mut cfg = Config::default();
        if key == "upstream.url" {
            cfg.upstream.url = url.into();
        } else {
            cfg.invalidation.flags_url = url.into();
        }
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.starts_with(&format!("`{key}`")), "{url}: {msg}");
        assert!(msg.contains(why), "{url}: {msg} says {why}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
    }
}

#[track_caller]
fn url_is_accepted(url: &str) {
    let mut cfg = Config::default();
    cfg.upstream.url = url.into();
    cfg.invalidation.flags_url = url.into();
    cfg.validate()
        .unwrap_or_else(|e| panic!("{url} is valid: {e}"));
}

#[test]
fn url_scheme_must_be_http_or_https() {
    for url in [
        "ftp://x",
        "not a url",
        "/just/a/path",
        "x",
        "http:/x",
        "http:x",
    ] {
        url_is_rejected(url, "must start with http:// or https://");
    }
    url_is_accepted("http://x");
    url_is_accepted("https://x");
    // Schemes are case-insensitive (RFC 3986 §3.1).
    url_is_accepted("HTTP://x");
    url_is_accepted("Https://x:8443/p");
}

#[test]
fn url_port_must_be_a_number_from_1_to_65535() {
    for url in [
        "http://127.0.0.1:notaport/",
        "http://127.0.0.1:0",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:99999999999/",
        "http://127.0.0.1:/",
        "http://127.0.0.1:+80",
        "http://127.0.0.1:8o",
        "http://[::1]:x",
        "http://[::1]:0/",
    ] {
        url_is_rejected(url, "port");
    }
    for url in [
        "http://127.0.0.1:1",
        "http://127.0.0.1:65535/",
        "http://127.0.0.1",
        "https://h.example:8443/prefix",
    ] {
        url_is_accepted(url);
    }
}

#[test]
fn url_host_must_be_an_address_or_a_dns_name() {
    for url in [
        "http://",
        "http:///path",
        "http://:80",
        "http://256.1.1.1",
        "http://1.2.3",
        "http://[::1",
        "http://[not:v6]",
        "http://[fe80::1%25eth0]",
        "http://[::1]x",
        "http://-h.example",
        "http://h-.example",
        "http://h..example",
        "http://h.example..",
        "http://.",
        "http://h%41.example",
        "http://h\u{e9}.example",
        "http://h!.example",
    ] {
        url_is_rejected(url, "");
    }
    let long_label = format!("http://{}.example", "a".repeat(64));
    url_is_rejected(&long_label, "not a host name");
    let long_name = format!("http://{}a", "a.".repeat(127));
    url_is_rejected(&long_name, "not a host name");
    for url in [
        "http://localhost",
        "http://my_service:8080",
        "http://10.0.0.1:8080",
        "http://[::1]",
        "http://[2001:db8::1]:8443/p",
        "https://api.lab.eu.amplitude.com",
        "http://a-b.c9.example",
        // Fully qualified, as Kubernetes users write to skip search domains.
        "http://up.ns.svc.cluster.local.:8080",
        "http://UP.Example.COM",
        &format!("http://{}.example", "a".repeat(63)),
    ] {
        url_is_accepted(url);
    }
}

#[test]
fn url_must_not_carry_credentials_query_or_fragment() {
    url_is_rejected("http://user:pass@h.example", "credentials");
    url_is_rejected("http://user@h.example/p", "credentials");
    url_is_rejected("http://h/p?q=1", "query");
    url_is_rejected("http://h/p?", "query");
    url_is_rejected("http://h?q", "query");
    url_is_rejected("http://h/p#frag", "fragment");
    url_is_rejected("http://h#", "fragment");
}

#[test]
fn url_path_prefix_is_kept_without_its_trailing_slash() {
    assert_eq!(
        base_url("upstream.url", "https://h.example/prefix/").unwrap(),
        "https://h.example/prefix"
    );
    assert_eq!(
        base_url("upstream.url", "http://[::1]:8080/").unwrap(),
        "http://[::1]:8080"
    );
    // Characters no URI may hold are still refused, in the path too.
    url_is_rejected("http://h/a b", "not a URL");
}

#[test]
fn embedded_is_an_upstream_url_only() {
    let mut cfg = Config::default();
    cfg.upstream.url = "embedded".into();
    cfg.embedded.deployment_keys = vec!["k".into()];
    cfg.validate().unwrap();
    let mut cfg = Config::default();
    cfg.invalidation.flags_url = "embedded".into();
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(msg.starts_with("`invalidation.flags_url`"), "{msg}");
}
