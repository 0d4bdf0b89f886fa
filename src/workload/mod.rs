//! `evalgate workload`: request files for the load tools people already use (vegeta, oha,
//! wrk, k6), from a flags file. A generator, not a load engine: it sends nothing.
//!
//! - [`options`]: the flags and their checks;
//! - [`seeds`]: independent ChaCha8 streams from one seed;
//! - [`zipf`]: user popularity (an explicit inverse-CDF table);
//! - [`user`]: realistic SDK user objects, fixed per (seed, user index);
//! - [`endpoint`]: the endpoint mix; [`request`]: one request in each endpoint's form;
//! - [`format`]: vegeta targets, a URL list, k6 data; [`output`]: the size bound and the
//!   all-or-nothing write.
//!
//! Each request draws, in order: a first-seen user (`--new-share`, each used once) or a
//! returning one by Zipf rank, an endpoint, whether it asks for a subset of the flags
//! (1 to 3 keys of the file, in file order) and whether it is flawed (bad key or bad
//! context). The same arguments give byte-identical output.

pub mod endpoint;
pub mod format;
pub mod options;
pub mod output;
pub mod request;
pub mod seeds;
pub mod user;
pub mod zipf;

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use rand::RngExt;

pub use format::Format;
pub use options::{OptionError, Options, WorkloadArgs};

use endpoint::Endpoint;
use request::{Ask, Flaw};
use seeds::{Domain, rng};
use user::User;
use zipf::Zipf;

/// Most flag keys one subset request asks for.
pub const MAX_SUBSET_KEYS: usize = 3;

/// Why a workload was not written.
#[derive(Debug)]
pub enum WorkloadError {
    /// A flag's value cannot be used.
    Option(OptionError),
    /// `--flags` cannot be read or is not a flags file.
    Flags { path: PathBuf, reason: String },
    /// The workload is larger than `--max-output-bytes`; nothing was written.
    TooLarge { limit: u64 },
    /// Writing failed; a file output was left as it was.
    Io(io::Error),
}

impl WorkloadError {
    /// The exit status: 64 (`EX_USAGE`) for bad flags or flags file, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            WorkloadError::Option(_) | WorkloadError::Flags { .. } => 64,
            WorkloadError::TooLarge { .. } | WorkloadError::Io(_) => 1,
        }
    }
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadError::Option(e) => write!(f, "{e}"),
            WorkloadError::Flags { path, reason } => {
                write!(f, "--flags: {}: {reason}", path.display())
            }
            WorkloadError::TooLarge { limit } => write!(
                f,
                "the workload is larger than --max-output-bytes ({limit} bytes); nothing was written: lower --requests or raise the bound"
            ),
            WorkloadError::Io(e) => write!(f, "cannot write the workload: {e}"),
        }
    }
}

impl std::error::Error for WorkloadError {}

impl From<OptionError> for WorkloadError {
    fn from(e: OptionError) -> WorkloadError {
        WorkloadError::Option(e)
    }
}

/// What a run wrote, counted per kind of request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub requests: u64,
    /// Requests per endpoint, in [`Endpoint::ALL`] order.
    pub endpoints: [u64; 3],
    pub new_users: u64,
    pub subsets: u64,
    pub bad_key: u64,
    pub bad_context: u64,
    pub bytes: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests (v1 {}, v2get {}, v2post {}; {} from new users, {} subsets, {} bad key, {} bad context), {} bytes",
            self.requests,
            self.endpoints[0],
            self.endpoints[1],
            self.endpoints[2],
            self.new_users,
            self.subsets,
            self.bad_key,
            self.bad_context,
            self.bytes,
        )
    }
}

/// A checked run: the options, the flag keys, the popularity table.
pub struct Plan {
    options: Options,
    flag_keys: Vec<String>,
    zipf: Zipf,
}

impl Plan {
    /// Checks the flags and reads the flags file (through the embedded engine's parser).
    pub fn new(args: &WorkloadArgs) -> Result<Plan, WorkloadError> {
        let options = args.validate()?;
        let flags_error = |reason: String| WorkloadError::Flags {
            path: args.flags.clone(),
            reason,
        };
        let bytes = std::fs::read(&args.flags).map_err(|e| flags_error(e.to_string()))?;
        let flags =
            crate::eval::Flags::from_json(&bytes).map_err(|e| flags_error(e.to_string()))?;
        let flag_keys: Vec<String> = flags.keys().map(String::from).collect();
        if flag_keys.is_empty() && options.subset_share > 0.0 {
            return Err(flags_error(
                "has no flags to ask a subset of (set --subset-share 0)".into(),
            ));
        }
        let zipf = Zipf::new(options.users, options.zipf);
        Ok(Plan {
            options,
            flag_keys,
            zipf,
        })
    }

    /// Writes the whole workload to `out`.
    pub fn generate(&self, out: &mut dyn Write) -> io::Result<Summary> {
        let o = &self.options;
        let mut fw = format::FormatWriter::new(o.format, out);
        let mut r = rng(o.seed, Domain::Requests, 0);
        let mut summary = Summary::default();
        let mut next_new = o.users;
        let mut subset: Vec<&str> = Vec::with_capacity(MAX_SUBSET_KEYS);
        for _ in 0..o.requests {
            let index = if r.random_bool(o.new_share) {
                next_new += 1;
                summary.new_users += 1;
                next_new - 1
            } else {
                self.zipf.rank(r.random())
            };
            let endpoint = o.endpoints.pick(r.random());
            let flag_keys = if r.random_bool(o.subset_share) {
                let n = self.flag_keys.len();
                let k = r.random_range(1..=n.min(MAX_SUBSET_KEYS));
                let mut picked = rand::seq::index::sample(&mut r, n, k).into_vec();
                picked.sort_unstable();
                subset.clear();
                subset.extend(picked.iter().map(|&i| self.flag_keys[i].as_str()));
                summary.subsets += 1;
                Some(&subset[..])
            } else {
                None
            };
            let u: f64 = r.random();
            let flaw = if u < o.bad_key_share {
                summary.bad_key += 1;
                Flaw::BadKey
            } else if u < o.bad_key_share + o.bad_context_share {
                summary.bad_context += 1;
                Flaw::BadContext
            } else {
                Flaw::None
            };
            let user = User::generate(o.seed, index, o.groups_share);
            let ask = Ask {
                endpoint,
                user: &user,
                flag_keys,
                flaw,
            };
            fw.write(&request::encode(&o.base_url, &o.deployment_key, &ask))?;
            summary.requests += 1;
            summary.endpoints[Endpoint::ALL
                .iter()
                .position(|&e| e == endpoint)
                .unwrap_or(0)] += 1;
        }
        fw.finish()?;
        Ok(summary)
    }
}

/// Generates the workload `args` describe into `--output` (or standard output), within
/// `--max-output-bytes`.
pub fn run(args: &WorkloadArgs) -> Result<Summary, WorkloadError> {
    let plan = Plan::new(args)?;
    let limit = plan.options.max_output_bytes;
    let written = match &args.output {
        Some(path) => output::to_file(path, limit, |out| plan.generate(out)),
        None => output::to_stdout(limit, |out| plan.generate(out)),
    };
    match written {
        Ok((mut summary, bytes)) => {
            summary.bytes = bytes;
            Ok(summary)
        }
        Err(e) if output::is_over_limit(&e) => Err(WorkloadError::TooLarge { limit }),
        Err(e) => Err(WorkloadError::Io(e)),
    }
}
