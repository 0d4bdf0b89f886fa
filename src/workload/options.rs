//! `evalgate workload`'s flags ([`WorkloadArgs`], parsed by clap) and their checked form
//! ([`Options`]): every limit explicit, every bad value one [`OptionError`] naming its flag.

use std::fmt;
use std::path::PathBuf;

use super::endpoint::{Endpoint, EndpointMix};
use super::format::Format;

/// Most requests one run writes (the output is bounded by `--max-output-bytes` too).
pub const MAX_REQUESTS: u64 = 100_000_000;
/// Most distinct popular users: the Zipf table holds 8 bytes per user (80 MB at this bound).
pub const MAX_USERS: u64 = 10_000_000;
/// Largest Zipf exponent accepted; beyond it nearly every request is the top user's.
pub const MAX_ZIPF: f64 = 10.0;
/// Default `--max-output-bytes`: 1 GiB.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1 << 30;

/// `evalgate workload`: writes request files for existing load tools (vegeta, oha, wrk,
/// k6) from a flags file. It sends nothing.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkloadArgs {
    /// Flags file in the embedded engine's format (an `/sdk/v2/flags` array): its keys
    /// are what subset requests ask for.
    #[arg(long, value_name = "PATH")]
    pub flags: PathBuf,
    /// The deployment key good requests carry (`Authorization: Api-Key KEY`).
    #[arg(long, value_name = "KEY")]
    pub deployment_key: String,
    /// Where the requests go: scheme, host, port and an optional path prefix.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Requests to write.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub requests: u64,
    /// Distinct returning users, with Zipf-distributed popularity.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub users: u64,
    /// Zipf exponent of user popularity (0 = every user equally likely).
    #[arg(
        long,
        value_name = "S",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub zipf: f64,
    /// Share of requests from first-seen users, each used once.
    #[arg(
        long,
        value_name = "F",
        allow_negative_numbers = true,
        default_value_t = 0.05
    )]
    pub new_share: f64,
    /// Endpoint mix as `name:weight,…` (v1, v2get, v2post); weights are normalized.
    /// Default: v1:0.3,v2get:0.5,v2post:0.2, or v1:1 with `--format urls`.
    #[arg(long, value_name = "MIX")]
    pub endpoints: Option<String>,
    /// Share of requests asking for a subset of the flags (1 to 3 keys) rather than all.
    #[arg(
        long,
        value_name = "F",
        allow_negative_numbers = true,
        default_value_t = 0.2
    )]
    pub subset_share: f64,
    /// Share of requests carrying a deployment key the server does not know (→ 401).
    #[arg(
        long,
        value_name = "F",
        allow_negative_numbers = true,
        default_value_t = 0.0
    )]
    pub bad_key_share: f64,
    /// Share of requests whose user is not valid JSON (→ 400).
    #[arg(
        long,
        value_name = "F",
        allow_negative_numbers = true,
        default_value_t = 0.0
    )]
    pub bad_context_share: f64,
    /// Share of users that belong to a group (`groups` and `group_properties`).
    #[arg(
        long,
        value_name = "F",
        allow_negative_numbers = true,
        default_value_t = 0.1
    )]
    pub groups_share: f64,
    /// Seed: the same flags and seed give byte-identical output.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "vegeta")]
    pub format: Format,
    /// Output file, written whole or not at all (a temporary file renamed); default stdout.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Largest output; a workload that would exceed it is an error and writes nothing.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_OUTPUT_BYTES)]
    pub max_output_bytes: u64,
}

/// A flag whose value cannot be used; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError(pub String);

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionError {}

fn bad(flag: &str, why: impl fmt::Display) -> OptionError {
    OptionError(format!("--{flag}: {why}"))
}

/// The checked settings of one run (the flags file is read separately).
#[derive(Debug, Clone)]
pub struct Options {
    pub deployment_key: String,
    /// The base URL without a trailing `/`.
    pub base_url: String,
    pub requests: u64,
    pub users: u64,
    pub zipf: f64,
    pub new_share: f64,
    pub endpoints: EndpointMix,
    pub subset_share: f64,
    pub bad_key_share: f64,
    pub bad_context_share: f64,
    pub groups_share: f64,
    pub seed: u64,
    pub format: Format,
    pub max_output_bytes: u64,
}

impl WorkloadArgs {
    /// Checks every flag but `--flags` and `--output` (read and written by the run).
    pub fn validate(&self) -> Result<Options, OptionError> {
        let key = self.deployment_key.as_str();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "deployment-key",
                "must be non-empty visible ASCII without spaces",
            ));
        }
        if key == super::request::BAD_KEY {
            return Err(bad(
                "deployment-key",
                "is the key bad-key requests carry; choose another",
            ));
        }
        let base_url = base_url(&self.base_url)?;
        if self.requests == 0 || self.requests > MAX_REQUESTS {
            return Err(bad("requests", format!("must be 1 to {MAX_REQUESTS}")));
        }
        if self.users == 0 || self.users > MAX_USERS {
            return Err(bad("users", format!("must be 1 to {MAX_USERS}")));
        }
        if !(0.0..=MAX_ZIPF).contains(&self.zipf) {
            return Err(bad("zipf", format!("must be 0 to {MAX_ZIPF}")));
        }
        for (flag, value) in [
            ("new-share", self.new_share),
            ("subset-share", self.subset_share),
            ("bad-key-share", self.bad_key_share),
            ("bad-context-share", self.bad_context_share),
            ("groups-share", self.groups_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(bad(flag, "must be a share from 0 to 1"));
            }
        }
        if self.bad_key_share + self.bad_context_share > 1.0 {
            return Err(bad(
                "bad-context-share",
                "plus --bad-key-share must be at most 1 (a request is bad one way)",
            ));
        }
        let endpoints = match &self.endpoints {
            Some(mix) => EndpointMix::parse(mix).map_err(|why| bad("endpoints", why))?,
            None if self.format == Format::Urls => EndpointMix::only(Endpoint::V1),
            None => EndpointMix::default(),
        };
        if self.format == Format::Urls {
            if let Some(other) = endpoints.non_v1() {
                return Err(bad(
                    "endpoints",
                    format!(
                        "{} needs headers or a body, which a URL list cannot carry: use --format vegeta or k6, or --endpoints v1:1",
                        other.name()
                    ),
                ));
            }
            if self.bad_key_share > 0.0 {
                return Err(bad(
                    "bad-key-share",
                    "a URL list carries no key (the load tool's -H sends one for all): use --format vegeta or k6",
                ));
            }
        }
        if self.max_output_bytes == 0 {
            return Err(bad("max-output-bytes", "must be at least 1"));
        }
        Ok(Options {
            deployment_key: key.to_string(),
            base_url,
            requests: self.requests,
            users: self.users,
            zipf: self.zipf,
            new_share: self.new_share,
            endpoints,
            subset_share: self.subset_share,
            bad_key_share: self.bad_key_share,
            bad_context_share: self.bad_context_share,
            groups_share: self.groups_share,
            seed: self.seed,
            format: self.format,
            max_output_bytes: self.max_output_bytes,
        })
    }
}

/// An `http`/`https` URL with a host, an optional path prefix and no query; returned
/// without a trailing `/`.
fn base_url(text: &str) -> Result<String, OptionError> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| bad("base-url", format!("{text:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("base-url", format!("{text:?} is not an http(s) URL"))),
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err(bad("base-url", format!("{text:?} has no host")));
    }
    if uri.query().is_some() || text.contains('#') {
        return Err(bad(
            "base-url",
            format!("{text:?} has a query or fragment; give scheme, host and path only"),
        ));
    }
    Ok(text.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: WorkloadArgs,
    }

    fn parse(extra: &[&str]) -> Result<Options, OptionError> {
        let mut argv = vec!["w", "--flags", "f.json"];
        if !extra.contains(&"--deployment-key") {
            argv.extend(["--deployment-key", "k1"]);
        }
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().args.validate()
    }

    #[test]
    fn defaults_are_valid() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.base_url, "http://127.0.0.1:8080");
        assert_eq!(o.requests, 100_000);
        assert_eq!(o.endpoints, EndpointMix::default());
        assert_eq!(o.max_output_bytes, DEFAULT_MAX_OUTPUT_BYTES);
        let urls = parse(&["--format", "urls"]).unwrap();
        assert_eq!(urls.endpoints, EndpointMix::only(Endpoint::V1));
    }

    #[test]
    fn each_bad_value_names_its_flag() {
        for (args, flag) in [
            (&["--requests", "0"][..], "--requests"),
            (&["--users", "0"], "--users"),
            (&["--users", "10000001"], "--users"),
            (&["--zipf", "-1"], "--zipf"),
            (&["--zipf", "NaN"], "--zipf"),
            (&["--new-share", "1.5"], "--new-share"),
            (&["--subset-share", "-0.1"], "--subset-share"),
            (&["--groups-share", "2"], "--groups-share"),
            (
                &["--bad-key-share", "0.6", "--bad-context-share", "0.6"],
                "--bad-context-share",
            ),
            (&["--base-url", "ftp://x"], "--base-url"),
            (&["--base-url", "http://x/?a=1"], "--base-url"),
            (&["--base-url", "not a url"], "--base-url"),
            (&["--endpoints", "v3:1"], "--endpoints"),
            (
                &["--format", "urls", "--endpoints", "v1:1,v2get:1"],
                "--endpoints",
            ),
            (
                &["--format", "urls", "--bad-key-share", "0.1"],
                "--bad-key-share",
            ),
            (&["--max-output-bytes", "0"], "--max-output-bytes"),
            (&["--deployment-key", "a b"], "--deployment-key"),
        ] {
            let err = parse(args).expect_err(&format!("{args:?}"));
            assert!(err.0.starts_with(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn base_url_keeps_a_prefix_without_its_trailing_slash() {
        let o = parse(&["--base-url", "https://gw.example:8443/eval/"]).unwrap();
        assert_eq!(o.base_url, "https://gw.example:8443/eval");
    }
}
