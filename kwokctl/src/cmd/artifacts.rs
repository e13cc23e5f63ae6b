//! `kwokctl get artifacts`: which binary runs each component, at which version, from where.

use std::{fs, path::Path, process::Command};

use anyhow::Result;

use crate::{
    binaries::{Binary, Finder},
    component::Component,
    flags::{ArtifactFilter, ArtifactsArgs},
    kube_version::Versions,
    paths::Workdir,
};

/// The binaries kwokctl resolves, in start order, then the tools.
const BINARIES: [Binary; 10] = [
    Binary::Etcd,
    Binary::KubeApiserver,
    Binary::KubeControllerManager,
    Binary::KubeScheduler,
    Binary::Kwok,
    Binary::Etcdctl,
    Binary::Kubectl,
    Binary::Kectl,
    Binary::Jaeger,
    Binary::MetricsServer,
];

pub(super) fn run(workdir: &Workdir, name: &str, args: &ArtifactsArgs) -> Result<()> {
    // The binaries of the named cluster if it exists, else the ones a new one would get.
    let cluster = super::existing(workdir, name).ok().map(|(_, c)| c);
    let finder = match &cluster {
        Some(config) => super::cluster_finder(workdir, config),
        None => Finder::new(workdir.cache()).versions(Versions::for_kube(args.kube_version.as_deref())?),
    };
    let runtime = args
        .runtime
        .clone()
        .or_else(|| cluster.as_ref().map(|c| c.options.runtime.clone()))
        .unwrap_or_else(|| "binary".into());
    let runtime = crate::runtime::of(&runtime)?;
    if args.filter != Some(ArtifactFilter::Image) {
        binaries(&finder, cluster.as_ref());
    }
    if args.filter != Some(ArtifactFilter::Binary) {
        super::images::list(runtime.as_ref(), &finder, cluster.as_ref());
    }
    Ok(())
}

fn binaries(finder: &Finder, cluster: Option<&crate::config::ClusterConfig>) {
    println!("{:<26}{:<16}{:<32}PATH", "NAME", "VERSION", "CACHED VERSIONS");
    for binary in BINARIES {
        let used = cluster
            .zip(Component::of_binary(binary))
            .and_then(|(c, component)| c.component(component))
            .map(|c| c.binary.display().to_string());
        let path = match used {
            Some(path) => path,
            None => match finder.find(binary, None) {
                Ok(Some(path)) => path.display().to_string(),
                _ if binary == Binary::Kectl => "(missing: built on first `kwokctl kectl`)".into(),
                _ if binary == Binary::Jaeger => {
                    "(missing: built for the first cluster with --jaeger-port)".into()
                }
                _ if binary == Binary::MetricsServer => {
                    "(missing: built for the first cluster with --enable metrics-server)".into()
                }
                _ => "(missing: `kwokctl install` or the first create downloads or builds it)".into(),
            },
        };
        let cached = cached_versions(finder.cache(), binary);
        let cached = if cached.is_empty() {
            "-".into()
        } else {
            cached.join(",")
        };
        println!(
            "{:<26}{:<16}{:<32}{path}",
            binary.name(),
            finder.version_of(binary),
            cached
        );
    }
    let prometheus_path = cluster
        .and_then(|c| c.component(Component::Prometheus))
        .map(|c| c.binary.clone())
        .or_else(|| super::create_files::prometheus_binary(None).ok());
    match prometheus_path {
        Some(path) => println!(
            "{:<26}{:<16}{:<32}{}",
            Component::Prometheus,
            prometheus_version(&path),
            "-",
            path.display()
        ),
        None => println!(
            "{:<26}{:<16}{:<32}(missing: apt-get install prometheus)",
            Component::Prometheus,
            "-",
            "-"
        ),
    }
}

/// The version `prometheus --version` reports ("prometheus, version 2.42.0+ds (…)").
fn prometheus_version(path: &Path) -> String {
    Command::new(path)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
            text.split_whitespace()
                .skip_while(|w| *w != "version")
                .nth(1)
                .map(|v| format!("v{v}"))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The versions of `binary` in the cache (`<cache>/<name>/<version>/<name>`), oldest first.
fn cached_versions(cache: &Path, binary: Binary) -> Vec<String> {
    let name = binary.name();
    let Ok(entries) = fs::read_dir(cache.join(name)) else {
        return Vec::new();
    };
    let mut versions: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(name).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort_by_key(|v| {
        v.trim_start_matches('v')
            .split(['.', '-'])
            .map(|n| n.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    versions
}
