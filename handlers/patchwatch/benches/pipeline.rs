//! Parse + summarise + render for simulated runs of 1,000, 10,000 and 50,000 machines, from
//! snapshot rows held in memory. Peak memory is measured separately with `replay --stats`
//! (see BENCHMARKS.md), since criterion's process holds every size at once.
// Test and bench code: an unwrap that fails is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use std::{hint::black_box, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use patchwatch_model::event::Incoming;
use patchwatch_model::event::parse_delivery;
use patchwatch_model::rundata::RunQuery;
use patchwatch_model::rundata::snapshot;
use patchwatch_model::summary::Decision;
use patchwatch_model::summary::summarise;
use patchwatch_render::Templates;
use patchwatch_simulation::SimulateOptions;
use patchwatch_simulation::write_snapshot;

fn pipeline(c: &mut Criterion) {
    let templates = Templates::load(None, "https://portal.azure.com/".parse().unwrap()).unwrap();
    let mut group = c.benchmark_group("parse_summarise_render");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for machines in [1_000usize, 10_000, 50_000] {
        let opts = SimulateOptions { machines, subscriptions: 12, seed: 3, ..SimulateOptions::default() };
        let mut bytes = Vec::new();
        let events = write_snapshot(&opts, &mut bytes).unwrap();
        let event = match parse_delivery(events.post.to_string().as_bytes()).unwrap().remove(0) {
            Incoming::Maintenance(m) => *m,
            _ => unreachable!(),
        };
        let query = RunQuery {
            correlation_id: event.correlation_id.clone(),
            subscription_ids: event.subscription_ids.clone(),
            include_results: true,
            since: Some(event.start),
            watch: Vec::new(),
        };
        let now = event.event_time.unwrap() + time::Duration::hours(1);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(machines), &bytes, |b, bytes| {
            b.iter(|| {
                let data = snapshot::parse(black_box(bytes), &query).unwrap();
                let Decision::Ready(summary) = summarise(&event, &data, now, Duration::from_secs(900)) else {
                    panic!("simulated runs are complete after the grace period")
                };
                black_box(templates.render(&summary, None, &[]).unwrap())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
