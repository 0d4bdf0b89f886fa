//! Conformance: `evalgate::eval` must give what Amplitude's JavaScript engine gives.
//!
//! Every case is evaluated twice: by `@amplitude/experiment-core` 0.13.6 under Node.js (the
//! engine Amplitude's JS SDKs embed, driven as they drive it: `tests/conformance/eval.js`)
//! and by `evalgate::eval`. Results must be equal as JSON, with numbers compared as f64 (JS
//! prints `1.0` as `1`) and object members in any order.
//!
//! Run with:
//!
//! ```text
//! npm ci --prefix tests/conformance      # once; installs the pinned JS engine
//! cargo test --test conformance
//! ```
//!
//! Knobs: `CONFORMANCE_CASES` (random cases, default 6000), `CONFORMANCE_SEED` (decimal or
//! `0x…`), `CONFORMANCE_SHRINK` (how many differing cases to minimise in the report, default 3).
//! A missing `node` or `node_modules` fails the test; it never skips.

#[path = "conformance/fixed.rs"]
mod fixed;
#[path = "conformance/generate.rs"]
mod generate;
#[path = "conformance/harness.rs"]
mod harness;
#[path = "conformance/pools.rs"]
mod pools;

use generate::CaseGenerator;
use harness::{Case, compare, report, run_js, same_json};
use pools::OPERATORS;
use serde_json::Value;

const DEFAULT_CASES: usize = 6_000;
const DEFAULT_SEED: u64 = 0xE7A1_6A7E_2026;
const DEFAULT_SHRINK: usize = 3;

fn env_number(name: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("{name}={text:?} is not a number: {e}"))
}

#[test]
fn random_cases_match_the_js_engine() {
    let seed = env_number("CONFORMANCE_SEED", DEFAULT_SEED);
    let count = env_number("CONFORMANCE_CASES", DEFAULT_CASES as u64) as usize;
    let shrink = env_number("CONFORMANCE_SHRINK", DEFAULT_SHRINK as u64) as usize;
    let mut generator = CaseGenerator::new(seed);
    let cases: Vec<Case> = (0..count).map(|i| generator.case(i)).collect();

    let (js, mismatches) = compare(&cases);
    eprintln!(
        "{count} random cases, seed {seed:#x}; JS engine stats: {}",
        js.stats
    );
    assert!(
        mismatches.is_empty(),
        "seed {seed:#x}: {}",
        report(&cases, &mismatches, shrink)
    );
    if count >= DEFAULT_CASES {
        assert_generator_coverage(&js.stats, &js.results);
    }
}

#[test]
fn hand_written_cases_match_the_js_engine() {
    let fixed = fixed::cases();
    let cases: Vec<Case> = fixed.iter().map(|f| f.case.clone()).collect();

    // The table's expectations are about the JS engine; check them first, so a wrong row
    // is not mistaken for a bug in ours.
    let js = run_js(&cases);
    let wrong_rows: Vec<String> = fixed
        .iter()
        .zip(&js.results)
        .filter_map(|(f, got)| {
            let expect: Value =
                serde_json::from_str(f.expect.as_deref()?).expect("expectation is JSON");
            (!same_json(&expect, got))
                .then(|| format!("{}: table says {expect}, JS says {got}", f.case.name))
        })
        .collect();
    assert!(
        wrong_rows.is_empty(),
        "fixed-case table disagrees with the JS engine:\n{}",
        wrong_rows.join("\n")
    );

    let (_, mismatches) = compare(&cases);
    assert!(mismatches.is_empty(), "{}", report(&cases, &mismatches, 0));
}

#[test]
fn murmur3_matches_the_published_vectors() {
    // From experiment-core's murmur3.test.ts (seed 0); the hand-written cases rely on it to
    // place bucket edges.
    assert_eq!(
        generate::murmur3_x86_32("My hovercraft is full of eels.".as_bytes()),
        2_953_494_853
    );
    assert_eq!(
        generate::murmur3_x86_32("My 🚀 is full of 🦎.".as_bytes()),
        1_818_098_979
    );
    assert_eq!(
        generate::murmur3_x86_32("吉 星 高 照".as_bytes()),
        3_435_142_074
    );
}

/// Guards the generator against rot: every operator must be reached, hold and fail, and
/// meet a missing property; bucketing must hash; cycles and empty results must occur.
fn assert_generator_coverage(stats: &Value, results: &[Value]) {
    let mut thin = Vec::new();
    for op in OPERATORS {
        let counter = |name: &str| stats["ops"][op][name].as_u64().unwrap_or(0);
        let (evaluated, matched, null_prop) = (
            counter("evaluated"),
            counter("matched"),
            counter("null_prop"),
        );
        if evaluated < 200 || matched < 20 || evaluated - matched < 20 || null_prop < 5 {
            thin.push(format!(
                "{op}: evaluated {evaluated}, matched {matched}, missing property {null_prop}"
            ));
        }
    }
    assert!(
        thin.is_empty(),
        "generator coverage too thin:\n{}",
        thin.join("\n")
    );
    assert!(
        stats["hashes"].as_u64().unwrap_or(0) > 1_000,
        "generator rarely buckets: {stats}"
    );
    let cycles = results.iter().filter(|r| r["error"] == "cycle").count();
    let empty = results
        .iter()
        .filter(|r| r.as_object().is_some_and(|m| m.is_empty()))
        .count();
    assert!(
        cycles > 10 && cycles < results.len() / 10,
        "cycles: {cycles} of {}",
        results.len()
    );
    assert!(
        empty > 10 && empty < results.len() / 2,
        "empty results: {empty} of {}",
        results.len()
    );
}
