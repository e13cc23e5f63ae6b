//! The node-to-replica table (`kwok-members`): how long a replica takes to deal the
//! table again when a member or a batch of nodes comes or goes. Its balance and the
//! nodes a change moves are asserted by the crate's unit tests, not timed here.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kwok_members::Table;

fn deal(c: &mut Criterion) {
    let mut group = c.benchmark_group("members/deal");
    group.sample_size(10);
    for (nodes, replicas) in [(10_000, 2), (10_000, 4), (10_000, 16), (100_000, 16)] {
        let names: Vec<String> = (0..nodes).map(|i| format!("node-{i:06}")).collect();
        let members: Vec<String> = (0..replicas).map(|i| format!("kwok-{i}")).collect();
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{nodes}x{replicas}")),
            &(names, members),
            |b, (names, members)| b.iter(|| Table::deal(members, names)),
        );
    }
    group.finish();
}

criterion_group!(benches, deal);
criterion_main!(benches);
