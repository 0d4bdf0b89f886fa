//! The evaluation engine: parsing a flag configuration, and evaluating 100 flags for one
//! user (what an embedded `/v1/vardata` miss costs).
//!
//! `cargo bench --bench eval`
//!
//! `data/eval_flags.json` holds 100 flags shaped like Amplitude's: targeting segments with
//! `is`/version/cohort conditions and a 50/50 bucket, a regex segment every fourth flag,
//! a number/`contains` segment every fifth, a dependency every tenth, and an "All Other
//! Users" rollout. For comparison, Amplitude's JS engine (`@amplitude/experiment-core`
//! 0.13.6, Node 20) took ~130 µs per evaluation of these flags on the development machine
//! (~250 µs including the `topologicalSort` the SDKs run per call). Measured alongside it:
//! `evaluate_json` ~7.4 µs, `evaluate` ~80 µs (copying the result values out dominates:
//! allocation), `evaluate` + `to_v1` ~125 µs.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evalgate::eval::{self, Flags};
use serde_json::{Value, json};

const FLAGS: &[u8] = include_bytes!("data/eval_flags.json");
const SHIPPED: &[u8] = include_bytes!("../flags.json");

fn context(i: u64) -> Value {
    json!({"user": {
        "user_id": format!("user-{i}"),
        "device_id": format!("dev-{i}"),
        "version": "2.3.1",
        "cohort_ids": ["cohort-3", "c-99"],
        "user_properties": {"country": "DE", "plan": "pro-annual", "age": 34, "email": "someone@mail.example", "tags": ["a", "b"]}
    }})
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("eval");
    group.throughput(Throughput::Bytes(FLAGS.len() as u64));
    group.bench_function("parse 100 flags", |b| {
        b.iter(|| Flags::from_json(black_box(FLAGS)).unwrap())
    });

    let flags = Flags::from_json(FLAGS).unwrap();
    let contexts: Vec<Value> = (0..1024).map(context).collect();
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("evaluate 100 flags", |b| {
        b.iter(|| {
            i = (i + 1) % contexts.len();
            eval::evaluate(&flags, black_box(&contexts[i]), &[]).unwrap()
        })
    });
    let keys: Vec<String> = vec!["flag-19".into(), "flag-40".into()];
    group.bench_function("evaluate 2 requested flags", |b| {
        b.iter(|| {
            i = (i + 1) % contexts.len();
            eval::evaluate(&flags, black_box(&contexts[i]), &keys).unwrap()
        })
    });
    group.bench_function("evaluate 100 flags, v1 shape", |b| {
        b.iter(|| {
            i = (i + 1) % contexts.len();
            eval::to_v1(&eval::evaluate(&flags, black_box(&contexts[i]), &[]).unwrap())
        })
    });
    for (name, shape) in [
        ("evaluate_json 100 flags, v2", eval::Shape::V2),
        ("evaluate_json 100 flags, v1", eval::Shape::V1),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % contexts.len();
                eval::evaluate_json(&flags, black_box(&contexts[i]), &[], shape).unwrap()
            })
        });
    }
    group.finish();

    // The shipped flags.json: what `cargo run --release` serves out of the box.
    let mut shipped = c.benchmark_group("eval shipped");
    let flags = Flags::from_json(SHIPPED).unwrap();
    shipped.throughput(Throughput::Elements(1));
    for (name, shape) in [
        ("evaluate_json 4 flags, v2", eval::Shape::V2),
        ("evaluate_json 4 flags, v1", eval::Shape::V1),
    ] {
        shipped.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % contexts.len();
                eval::evaluate_json(&flags, black_box(&contexts[i]), &[], shape).unwrap()
            })
        });
    }
    shipped.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
