//! Heap use per call of the engine's hot path, counted with dhat's allocator: selection
//! allocates nothing, and rendering allocates the same blocks on every call (the rendered
//! output) and frees them all, so repeated calls do not grow the heap.
//!
//! One test function: dhat counts process-wide, and parallel tests would mix their counts.
//! Run with `cargo test -p kwok-benches --release --test alloc -- --nocapture` to print
//! the counts.

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

use std::hint::black_box;

use kwok_benches::{host, lifecycle, lifecycles, new_node, now, scheduled_pod};
use kwok_engine::lifecycle::Lifecycle;
use rand::{SeedableRng, rngs::SmallRng};
use serde_json::Value;

/// Calls per measurement.
const CALLS: u64 = 200;

/// Blocks allocated and bytes still live after `CALLS` calls of `f` (after one warm-up call).
fn measure(mut f: impl FnMut()) -> (u64, isize) {
    f();
    let before = dhat::HeapStats::get();
    for _ in 0..CALLS {
        f();
    }
    let after = dhat::HeapStats::get();
    let live = after.curr_bytes as isize - before.curr_bytes as isize;
    (after.total_blocks - before.total_blocks, live)
}

fn check_select(name: &str, lifecycle: &Lifecycle, obj: &Value) {
    let mut rng = SmallRng::seed_from_u64(1);
    let (blocks, live) = measure(|| {
        black_box(lifecycle.select(black_box(obj), &mut rng));
    });
    println!("select {name}: {blocks} blocks in {CALLS} calls, {live} bytes live");
    assert_eq!((blocks, live), (0, 0), "select {name} allocated");
}

/// Select, delay and render the chosen stage: the blocks of one call times `CALLS`, nothing
/// left live.
fn check_evaluate(name: &str, lifecycle: &Lifecycle, obj: &Value) {
    let (mut host, now, mut rng) = (host(), now(), SmallRng::seed_from_u64(1));
    let mut call = || {
        let stage = lifecycle.select(obj, &mut rng).expect("a stage matches");
        black_box((
            stage.delay(obj, now, &mut rng),
            stage.render(obj, &mut host).expect("renders"),
        ));
    };
    call(); // FixedHost remembers the pod's IP on the first call.
    let (one, _) = measure_once(&mut call);
    let (blocks, live) = measure(&mut call);
    println!("evaluate {name}: {one} blocks per call, {blocks} in {CALLS} calls, {live} bytes live");
    assert!(one > 0, "evaluate {name} rendered nothing");
    assert_eq!(blocks, one * CALLS, "evaluate {name}: allocations per call vary");
    assert_eq!(live, 0, "evaluate {name}: the heap grew");
}

fn measure_once(f: &mut impl FnMut()) -> (u64, isize) {
    let before = dhat::HeapStats::get();
    f();
    let after = dhat::HeapStats::get();
    let live = after.curr_bytes as isize - before.curr_bytes as isize;
    (after.total_blocks - before.total_blocks, live)
}

#[test]
fn engine_hot_path_should_not_grow_the_heap() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let pods_fast = lifecycles(&["pod-fast"]);
    let pods_general = lifecycles(&["pod-general", "pod-chaos"]);
    let nodes = lifecycles(&["node-fast"]);
    let (pod, node) = (scheduled_pod(), new_node());
    let (fast, general) = (lifecycle(&pods_fast, "Pod"), lifecycle(&pods_general, "Pod"));
    let node_lifecycle = lifecycle(&nodes, "Node");
    check_select("pod-fast", fast, &pod);
    check_select("pod-general+chaos", general, &pod);
    check_select("node-fast", node_lifecycle, &node);
    check_evaluate("pod-fast", fast, &pod);
    check_evaluate("pod-general+chaos", general, &pod);
    check_evaluate("node-fast", node_lifecycle, &node);
}
