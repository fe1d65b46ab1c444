//! Merges per second for a 30-field contact (issue 5). Results go to `docs/benchmarks.md`.
//!
//! Run: `cargo bench -p tandem-core --bench merge -- --measurement-time 3`

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use tandem_core::{
    merge, merge_delta, FieldKey, FieldValue, LabeledValue, MergePolicy, Snapshot, Timestamp,
};

/// A realistic 30-field contact: 8 standard fields and 22 custom fields of every type.
fn contact(variant: &str, version: i64) -> Snapshot {
    let mut snap = Snapshot::new(Timestamp(version));
    let mut put = |key: String, value: FieldValue| {
        snap.fields
            .insert(FieldKey::new(key).expect("valid key"), value);
    };
    put(
        "name".into(),
        FieldValue::text(format!("Ada Lovelace {variant}")),
    );
    put(
        "first_name".into(),
        FieldValue::text(format!("Ada {variant}")),
    );
    put(
        "last_name".into(),
        FieldValue::text(format!("Lovelace {variant}")),
    );
    put(
        "email".into(),
        FieldValue::Emails(vec![LabeledValue::new(
            format!("ada.{variant}@example.com"),
            Some("work"),
            true,
        )]),
    );
    put(
        "phone".into(),
        FieldValue::Phones(vec![LabeledValue::new(
            format!("+44 20 7946 {variant}"),
            Some("mobile"),
            true,
        )]),
    );
    put(
        "org_name".into(),
        FieldValue::text(format!("Analytical Engines {variant}")),
    );
    put(
        "owner_id".into(),
        FieldValue::Option(i64::from(variant.len() as u8)),
    );
    put(
        "label".into(),
        FieldValue::options([1, variant.len() as i64]),
    );
    for i in 0..22u32 {
        let key = custom_key(i);
        let value = match i % 5 {
            0 | 1 => FieldValue::text(format!("custom text {i} {variant}")),
            2 => FieldValue::number(f64::from(i) + variant.len() as f64).expect("finite"),
            3 => FieldValue::date(&format!("2026-11-{:02}", variant.len())).expect("valid date"),
            _ => FieldValue::Option(i64::from(i) * 10 + variant.len() as i64),
        };
        put(key, value);
    }
    snap
}

/// A Pipedrive-like custom-field key: 40 pseudo-random hex characters (splitmix64).
fn custom_key(i: u32) -> String {
    let mut state = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    format!("{:016x}{:016x}{:08x}", next(), next(), next() >> 32)
}

/// Registers `name` (full [`merge`]) and `name_delta` ([`merge_delta`]) for one scenario.
fn scenario(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    (base, local, remote): (&Snapshot, &Snapshot, &Snapshot),
    policy: &MergePolicy,
) {
    group.bench_function(name, |b| {
        b.iter(|| merge(black_box(base), black_box(local), black_box(remote), policy));
    });
    group.bench_function(format!("{name}_delta"), |b| {
        b.iter(|| merge_delta(black_box(base), black_box(local), black_box(remote), policy));
    });
}

fn bench_merge(c: &mut Criterion) {
    let policy = MergePolicy::default();
    let base = contact("b", 1);
    assert_eq!(base.fields.len(), 30);

    let mut group = c.benchmark_group("merge_30_fields");
    group.throughput(Throughput::Elements(1));

    // For reference: what cloning the 30-field base (which `merge` must return) costs alone.
    group.bench_function("clone_base_only", |b| {
        b.iter(|| black_box(&base).clone());
    });

    assert!(merge(&base, &base, &base, &policy).is_noop());
    scenario(&mut group, "noop", (&base, &base, &base), &policy);

    // Three fields changed locally, two others in Pipedrive.
    let mut local = base.clone();
    local.version = Timestamp(2);
    let mut remote = base.clone();
    remote.version = Timestamp(3);
    let changed = contact("xy", 9);
    for (i, (key, value)) in changed.fields.iter().enumerate() {
        match i {
            0 | 7 | 15 => {
                local.fields.insert(key.clone(), value.clone());
            }
            3 | 22 => {
                remote.fields.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    let out = merge(&base, &local, &remote, &policy);
    assert_eq!((out.to_remote.len(), out.to_local.len()), (3, 2));
    scenario(
        &mut group,
        "few_fields_changed",
        (&base, &local, &remote),
        &policy,
    );

    // Every field changed on both sides to different values: 30 conflicts.
    let local = contact("local", 5);
    let remote = contact("remote!", 4);
    let out = merge(&base, &local, &remote, &policy);
    assert_eq!(out.conflicts.len(), 30);
    scenario(
        &mut group,
        "all_fields_conflict",
        (&base, &local, &remote),
        &policy,
    );

    group.finish();
}

criterion_group!(benches, bench_merge);
criterion_main!(benches);
