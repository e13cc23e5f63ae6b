//! The image half of `kwokctl get artifacts`: which image each component would run
//! from under a container runtime, and whether it is built from the binary as it is now.

use std::path::PathBuf;

use crate::{
    binaries::{Binary, Finder},
    component::Component,
    config::ClusterConfig,
    runtime::{Runtime, image},
};

/// The components that run from an image, in the order they are listed (Prometheus,
/// whose binary is not kwokctl's, last).
const IMAGED: [Component; 8] = [
    Component::Etcd,
    Component::KubeApiserver,
    Component::KubeControllerManager,
    Component::KubeScheduler,
    Component::KwokController,
    Component::Jaeger,
    Component::MetricsServer,
    Component::Prometheus,
];

/// Prints one line per image: component, image, state. Nothing for the binary runtime.
pub(super) fn list(runtime: &dyn Runtime, finder: &Finder, cluster: Option<&ClusterConfig>) {
    let Some(engine) = crate::runtime::engine_of(runtime.name()) else {
        return;
    };
    println!("{:<26}{:<52}STATE", "IMAGE OF", "IMAGE");
    for component in IMAGED {
        let binary = binary_of(component, component.binary(), finder, cluster);
        let Some(binary) = binary else {
            println!(
                "{component:<26}{:<52}(no binary yet: see the binaries above)",
                "-"
            );
            continue;
        };
        let reference = cluster
            .and_then(|c| c.component(component))
            .and_then(|c| c.image.clone())
            .unwrap_or_else(|| image::reference(component, &image::version_of(component, &binary)));
        println!(
            "{component:<26}{reference:<52}{}",
            state(&engine, component, &binary, &reference)
        );
    }
}

/// The binary a component's image is made of: the cluster's, else the one found.
fn binary_of(
    component: Component,
    binary: Option<Binary>,
    finder: &Finder,
    cluster: Option<&ClusterConfig>,
) -> Option<PathBuf> {
    if let Some(c) = cluster.and_then(|c| c.component(component)) {
        return Some(c.binary.clone());
    }
    match binary {
        Some(binary) => finder.find(binary, None).ok().flatten(),
        None => super::create_files::prometheus_binary(None).ok(),
    }
}

/// `built`, `stale` or `missing`, with what happens next.
fn state(
    engine: &crate::runtime::Engine,
    component: Component,
    binary: &std::path::Path,
    reference: &str,
) -> String {
    let Some(have) = image::fingerprint_of(engine, reference) else {
        return "missing (built by the first create cluster that runs it)".into();
    };
    let want = image::files(component, binary)
        .ok()
        .and_then(|files| image::fingerprint(&files).ok());
    match want {
        Some(want) if want == have => format!("built ({})", &have[..12.min(have.len())]),
        Some(_) => "stale: the binary changed (rebuilt by the next create cluster that runs it)".into(),
        None => "built; its binary cannot be read".into(),
    }
}
