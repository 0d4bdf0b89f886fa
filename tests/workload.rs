//! `evalgate workload`, run as the real binary, its output parsed back: Zipf rank
//! frequencies, first-seen users, the endpoint mix, subset and flaw shares (each within
//! binomial tolerance), byte-identical output per seed, each format's shape, the refusals,
//! the output bound; and every generated request answered as intended by a real evalgate
//! on the embedded engine (200, 401 for a bad key, 400 for a bad context).

mod support;

use std::collections::{BTreeMap, HashMap};

use http::Method;
use serde_json::Value;
use support::cli::{EX_CONFIG, TempDir, stderr};
use support::workload::*;
use support::*;

fn zipf_probabilities(n: usize, s: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

/// The top ten ranks each within binomial tolerance, and a chi-square over them and the
/// rest below the 0.1 % critical value for 10 degrees of freedom.
fn check_zipf(users: usize, s: f64, requests: usize) {
    let text = generated(&[
        "--users",
        &users.to_string(),
        "--zipf",
        &s.to_string(),
        "--requests",
        &requests.to_string(),
        "--new-share",
        "0",
        "--seed",
        "11",
    ]);
    let targets = vegeta(&text);
    assert_eq!(targets.len(), requests);
    let mut counts = vec![0usize; users];
    for t in &targets {
        counts[usize::try_from(t.user_index()).unwrap()] += 1;
    }
    let p = zipf_probabilities(users, s);
    let mut chi2 = 0.0;
    for k in 0..10 {
        assert_share(
            counts[k],
            requests,
            p[k],
            &format!("zipf {s}: rank {}", k + 1),
        );
        let want = requests as f64 * p[k];
        chi2 += (counts[k] as f64 - want).powi(2) / want;
    }
    let rest: usize = counts[10..].iter().sum();
    let want_rest = requests as f64 * p[10..].iter().sum::<f64>();
    chi2 += (rest as f64 - want_rest).powi(2) / want_rest;
    assert!(
        chi2 < 29.59,
        "zipf {s}: chi-square {chi2:.1} over the top 10 and the rest"
    );
}

#[test]
fn user_popularity_follows_zipf_with_the_given_exponent() {
    check_zipf(1_000, 1.0, 50_000);
    check_zipf(1_000, 1.6, 20_000);
}

#[test]
fn first_seen_users_are_their_share_and_each_used_once() {
    let requests = 20_000;
    let text = generated(&[
        "--users",
        "200",
        "--new-share",
        "0.2",
        "--requests",
        "20000",
        "--seed",
        "3",
    ]);
    let targets = vegeta(&text);
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for t in &targets {
        *seen.entry(t.user_index()).or_default() += 1;
    }
    let new: Vec<(&u64, &usize)> = seen.range(200..).collect();
    assert_share(new.len(), requests, 0.2, "requests from new users");
    assert!(
        new.iter().all(|(_, n)| **n == 1),
        "each new user is used once"
    );
    let (first, last) = (*new[0].0, *new[new.len() - 1].0);
    assert_eq!(
        (first, last),
        (200, 200 + new.len() as u64 - 1),
        "numbered in order"
    );
    let returning: usize = seen.range(..200).map(|(_, n)| n).sum();
    assert_eq!(returning + new.len(), requests);
}

#[test]
fn endpoints_subsets_and_flaws_come_in_their_shares() {
    let n = 20_000;
    let text = generated(&[
        "--endpoints",
        "v1:0.3,v2get:0.5,v2post:0.2",
        "--subset-share",
        "0.25",
        "--bad-key-share",
        "0.05",
        "--bad-context-share",
        "0.07",
        "--groups-share",
        "0.3",
        "--requests",
        "20000",
    ]);
    let targets = vegeta(&text);
    assert_eq!(targets.len(), n);
    let flag_keys: Vec<String> =
        serde_json::from_str::<Vec<Value>>(&std::fs::read_to_string(flags_file()).unwrap())
            .unwrap()
            .iter()
            .map(|f| f["key"].as_str().unwrap().to_string())
            .collect();
    let mut by_endpoint: HashMap<&str, usize> = HashMap::new();
    let (mut subsets, mut bad_key, mut bad_context, mut grouped) = (0, 0, 0, 0);
    for t in &targets {
        *by_endpoint.entry(t.endpoint()).or_default() += 1;
        if let Some(keys) = t.subset() {
            subsets += 1;
            assert!((1..=3).contains(&keys.len()), "{keys:?}");
            assert!(keys.iter().all(|k| flag_keys.contains(k)), "{keys:?}");
        }
        assert!(!(t.bad_key() && t.bad_context()), "one flaw at most: {t:?}");
        bad_key += usize::from(t.bad_key());
        bad_context += usize::from(t.bad_context());
        if !t.bad_context() {
            grouped += usize::from(t.user_text().contains("\"groups\""));
        }
        if t.endpoint() == "v2post" {
            assert_eq!(t.headers["Content-Type"], "application/json;charset=utf-8");
        }
    }
    assert_share(by_endpoint["v1"], n, 0.3, "v1");
    assert_share(by_endpoint["v2get"], n, 0.5, "v2get");
    assert_share(by_endpoint["v2post"], n, 0.2, "v2post");
    assert_share(subsets, n, 0.25, "subsets");
    assert_share(bad_key, n, 0.05, "bad key");
    assert_share(bad_context, n, 0.07, "bad context");
    // Groups belong to users, and popular users weigh more: only a loose check.
    assert!(grouped > n / 20 && grouped < n / 2, "grouped {grouped}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    for format in ["vegeta", "urls", "k6"] {
        let args = |seed: &'static str| {
            vec![
                "--format",
                format,
                "--requests",
                "2000",
                "--seed",
                seed,
                "--subset-share",
                "0.3",
            ]
        };
        let a = generated(&args("7"));
        let b = generated(&args("7"));
        let c = generated(&args("8"));
        assert!(!a.is_empty());
        assert_eq!(a, b, "{format}: the same seed gives the same bytes");
        assert_ne!(a, c, "{format}: another seed gives another workload");
    }
}

#[test]
fn each_format_parses_as_its_tool_reads_it() {
    // vegeta: JSON lines; a POST body decodes to the user's JSON object.
    let targets = vegeta(&generated(&[
        "--requests",
        "500",
        "--base-url",
        "http://gw:9/p/",
    ]));
    assert_eq!(targets.len(), 500);
    assert!(targets.iter().all(|t| t.url.starts_with("http://gw:9/p/")));
    let posts: Vec<&Target> = targets.iter().filter(|t| t.method == "POST").collect();
    assert!(!posts.is_empty());
    for t in posts {
        let user: Value = serde_json::from_slice(t.body.as_ref().unwrap()).unwrap();
        assert!(user.is_object(), "{user}");
    }

    // urls: one URL a line, every one a GET /v1/vardata.
    let text = generated(&["--format", "urls", "--requests", "500"]);
    assert_eq!(text.lines().count(), 500);
    for line in text.lines() {
        let uri: http::Uri = line.parse().expect("a URL");
        assert_eq!(uri.scheme_str(), Some("http"));
        assert_eq!(uri.authority().unwrap().as_str(), "127.0.0.1:8080");
        assert_eq!(uri.path(), "/v1/vardata");
    }

    // k6: one JSON array of {method, url, headers, body}.
    let text = generated(&["--format", "k6", "--requests", "500"]);
    let array: Vec<Value> = serde_json::from_str(&text).expect("a JSON array");
    assert_eq!(array.len(), 500);
    for r in &array {
        let o = r.as_object().unwrap();
        assert_eq!(o.len(), 4, "{r}");
        assert!(["GET", "POST"].contains(&o["method"].as_str().unwrap()));
        assert!(
            o["url"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:8080/")
        );
        assert!(
            o["headers"]
                .as_object()
                .unwrap()
                .values()
                .all(Value::is_string)
        );
        match o["method"].as_str().unwrap() {
            "POST" => {
                let body: Value = serde_json::from_str(o["body"].as_str().unwrap()).unwrap();
                assert!(body.is_object());
            }
            _ => assert!(o["body"].is_null()),
        }
    }
}

#[test]
fn a_url_list_refuses_what_a_url_cannot_carry() {
    let dir = TempDir::new();
    let out = workload(
        &dir.0,
        &["--format", "urls", "--endpoints", "v1:1,v2post:1"],
    );
    refused(&out, EX_CONFIG, "--endpoints");
    let out = workload(&dir.0, &["--format", "urls", "--bad-key-share", "0.1"]);
    refused(&out, EX_CONFIG, "--bad-key-share");
    // Bad contexts do fit in a URL.
    let text = generated(&[
        "--format",
        "urls",
        "--requests",
        "50",
        "--bad-context-share",
        "1",
    ]);
    assert_eq!(text.lines().count(), 50);
}

#[test]
fn bad_flags_are_one_line_and_exit_64() {
    let dir = TempDir::new();
    for (args, what) in [
        (&["--zipf", "-1"][..], "--zipf"),
        (&["--requests", "0"], "--requests"),
        (&["--new-share", "2"], "--new-share"),
    ] {
        refused(&workload(&dir.0, args), EX_CONFIG, what);
    }
    let out = run(
        &dir.0,
        &[
            "workload",
            "--flags",
            "missing.json",
            "--deployment-key",
            GOOD,
        ],
    );
    refused(&out, EX_CONFIG, "--flags");
    std::fs::write(dir.0.join("junk.json"), "{}").unwrap();
    let out = run(
        &dir.0,
        &["workload", "--flags", "junk.json", "--deployment-key", GOOD],
    );
    refused(&out, EX_CONFIG, "junk.json");
}

#[test]
fn the_output_bound_holds_and_nothing_is_half_written() {
    let dir = TempDir::new();
    let args = ["--requests", "300", "--seed", "5"];
    let size = generated_stdout(&args).len();
    let path = dir.0.join("targets.json");
    let target = path.to_str().unwrap();
    std::fs::write(&path, "previous").unwrap();

    // One byte short: an error, the old file untouched, no temporary file left.
    let short = (size - 1).to_string();
    let mut with = args.to_vec();
    with.extend(["--max-output-bytes", &short, "--output", target]);
    refused(&workload(&dir.0, &with), 1, "--max-output-bytes");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous");
    let entries = std::fs::read_dir(&dir.0).unwrap().count();
    assert_eq!(entries, 1, "only targets.json in the directory");
    // Standard output: nothing at all.
    let mut with = args.to_vec();
    with.extend(["--max-output-bytes", &short]);
    refused(&workload(&dir.0, &with), 1, "--max-output-bytes");

    // Exactly the size: written whole, the same bytes as on standard output.
    let exact = size.to_string();
    let mut with = args.to_vec();
    with.extend(["--max-output-bytes", &exact, "--output", target]);
    let out = workload(&dir.0, &with);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        generated_stdout(&args)
    );
}

#[test]
fn every_generated_request_gets_its_intended_answer_from_evalgate() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = config_for("embedded");
    config.embedded.flags_file = flags_file();
    config.embedded.deployment_keys = vec![GOOD.into()];
    let gw = runtime.block_on(TestGateway::start(config));
    let base = format!("http://{}", gw.addr);
    // The binary runs outside the runtime (`run` starts one of its own).
    let text = std::thread::spawn(move || {
        generated(&[
            "--base-url",
            &base,
            "--requests",
            "1500",
            "--users",
            "300",
            "--new-share",
            "0.1",
            "--subset-share",
            "0.3",
            "--bad-key-share",
            "0.1",
            "--bad-context-share",
            "0.1",
            "--groups-share",
            "0.3",
        ])
    })
    .join()
    .unwrap();
    let targets = vegeta(&text);
    let statuses = runtime.block_on(async {
        let c = client();
        let mut statuses = Vec::new();
        for t in &targets {
            let headers: Vec<(&str, &str)> = t
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let body = t
                .body
                .as_deref()
                .map(|b| std::str::from_utf8(b).unwrap())
                .unwrap_or("");
            let method = Method::from_bytes(t.method.as_bytes()).unwrap();
            statuses.push(send(&c, method, &t.url, &headers, body).await);
        }
        statuses
    });
    let mut seen: HashMap<u16, usize> = HashMap::new();
    for (t, got) in targets.iter().zip(&statuses) {
        let want = if t.bad_key() {
            401
        } else if t.bad_context() {
            400
        } else {
            200
        };
        assert_eq!(got.status.as_u16(), want, "{t:?}: {:?}", got.body);
        if want == 200 {
            assert!(got.json().is_object());
        }
        *seen.entry(want).or_default() += 1;
    }
    assert!(
        seen[&200] > 1000 && seen[&401] > 50 && seen[&400] > 50,
        "{seen:?}"
    );
    drop(gw);
}
