//! `componentsPatches[].extraVolumes` with the binary runtime: a kube-scheduler
//! configuration written for a container (`--config` under a mount path) is read from
//! the host path, so its profile is the one that schedules.

use std::{fs, time::Duration};

use crate::{util::Kwokctl, wait::until};

const SETTLE: Duration = Duration::from_secs(60);

fn node_of(kwokctl: &Kwokctl, c: &str, pod: &str) -> String {
    kwokctl.ok(&[
        "--name",
        c,
        "kubectl",
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.spec.nodeName}",
    ])
}

#[test]
fn extra_volumes_should_point_component_args_at_the_host_path() {
    let kwokctl = Kwokctl::new();
    let c = "volumes";
    let host = tempfile::tempdir().unwrap();
    let sched = host.path().join("sched");
    fs::create_dir(&sched).unwrap();
    let scheduler_kubeconfig = kwokctl.cluster_dir(c).join("kubeconfigs/kube-scheduler.yaml");
    fs::write(
        sched.join("config.yaml"),
        format!(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nclientConnection:\n  kubeconfig: {}\nleaderElection:\n  leaderElect: false\nprofiles:\n- schedulerName: e2e-scheduler\n",
            scheduler_kubeconfig.display()
        ),
    )
    .unwrap();
    let config = host.path().join("kwokctl.yaml");
    fs::write(
        &config,
        format!(
            "apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
componentsPatches:
- name: kube-scheduler
  extraArgs:
  - key: config
    value: /etc/kubernetes/scheduler/config.yaml
  extraVolumes:
  - name: scheduler-config
    hostPath: {}
    mountPath: /etc/kubernetes/scheduler
    readOnly: true
    pathType: Directory
",
            sched.display()
        ),
    )
    .unwrap();
    kwokctl.ok(&[
        "--config",
        config.to_str().unwrap(),
        "create",
        "cluster",
        "--name",
        c,
    ]);
    let saved = fs::read_to_string(kwokctl.cluster_dir(c).join("kwok.yaml")).unwrap();
    let rewritten = format!("--config={}/config.yaml", sched.display());
    assert!(
        saved.contains(&rewritten),
        "scheduler args name the host path: {saved}"
    );
    assert!(!saved.contains("/etc/kubernetes/scheduler"), "{saved}");

    // Only the file's profile runs: its pods are scheduled, default-scheduler's are not.
    kwokctl.ok(&["--name", c, "scale", "node", "--replicas", "1"]);
    kwokctl.ok(&[
        "--name",
        c,
        "scale",
        "pod",
        "mine",
        "--param",
        r#".spec.schedulerName = "e2e-scheduler""#,
    ]);
    kwokctl.ok(&["--name", c, "scale", "pod", "other"]);
    let want = "node-000000".to_owned();
    assert_eq!(until(SETTLE, &want, || node_of(&kwokctl, c, "mine-000000")), want);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        node_of(&kwokctl, c, "other-000000"),
        "",
        "no default-scheduler profile"
    );
}
