//! Fake accelerators through Dynamic Resource Allocation on a kwokctl cluster: nodes
//! labelled `kwok.x-k8s.io/gpus` publish ResourceSlices (kwok's `dra` stage
//! set, on by default), kwokctl made the DeviceClass, and the real kube-scheduler and
//! kube-controller-manager allocate devices to claims of pods that kwok then runs.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde_json::Value;

use crate::util::Cluster;

const WITHIN: Duration = Duration::from_secs(60);
const DRIVER: &str = "gpu.kwok.x-k8s.io";

/// A ResourceClaimTemplate `name` whose one request is `exactly` (a flow mapping).
fn claim_template(name: &str, exactly: &str) -> String {
    format!(
        "apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {{name: {name}, namespace: default}}
spec:
  spec:
    devices:
      requests:
      - name: device
        exactly: {exactly}
"
    )
}

/// A pod whose one container uses a claim made from `template`.
fn pod(name: &str, template: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  tolerations: [{{operator: Exists}}]
  resourceClaims: [{{name: gpu, resourceClaimTemplateName: {template}}}]
  containers: [{{name: app, image: fake, resources: {{claims: [{{name: gpu}}]}}}}]
"
    )
}

fn json(cluster: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&cluster.kubectl(&all)).expect("kubectl prints JSON")
}

/// Node name → its GPU ResourceSlice.
fn slices(cluster: &Cluster) -> BTreeMap<String, Value> {
    json(cluster, &["resourceslices"])["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|s| s["spec"]["driver"] == DRIVER)
        .map(|s| {
            (
                s["spec"]["nodeName"].as_str().unwrap_or_default().to_owned(),
                s.clone(),
            )
        })
        .collect()
}

/// Pod name → (phase, node).
fn pods(cluster: &Cluster) -> BTreeMap<String, (String, String)> {
    json(cluster, &["pods", "-n", "default"])["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                text(&p["metadata"]["name"]),
                (text(&p["status"]["phase"]), text(&p["spec"]["nodeName"])),
            )
        })
        .collect()
}

/// Pod name → the (pool, device) pairs its claim was allocated, for allocated claims
/// (all of kwok's GPU driver).
fn allocations(cluster: &Cluster) -> BTreeMap<String, Vec<(String, String)>> {
    allocations_of(cluster)
        .into_iter()
        .map(|(pod, devices)| {
            let devices = devices
                .into_iter()
                .map(|(driver, device, pool)| {
                    assert_eq!(driver, DRIVER, "{pod}");
                    (pool, device)
                })
                .collect();
            (pod, devices)
        })
        .collect()
}

/// Pod name → the (driver, device, pool) triples of its claim, any driver.
fn allocations_of(cluster: &Cluster) -> BTreeMap<String, Vec<(String, String, String)>> {
    json(cluster, &["resourceclaims", "-n", "default"])["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| {
            let owner = c["metadata"]["ownerReferences"][0]["name"].as_str()?.to_owned();
            let results = c["status"]["allocation"]["devices"]["results"].as_array()?;
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let devices = results
                .iter()
                .map(|r| (text(&r["driver"]), text(&r["device"]), text(&r["pool"])))
                .collect();
            Some((owner, devices))
        })
        .collect()
}

/// `kwokctl scale node --replicas N` with `labels`, as a user asks for devices.
fn scale_labelled(cluster: &Cluster, replicas: &str, labels: &[(&str, &str)]) {
    let params: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!(".metadata.labels[{key:?}]={value:?}"))
        .collect();
    let mut args = vec!["--name", cluster.name, "scale", "node", "--replicas", replicas];
    for param in &params {
        args.extend(["--param", param.as_str()]);
    }
    cluster.kwokctl.ok(&args);
}

/// Waits until the scheduler has reported `pod` unschedulable, saying `why`.
fn until_unschedulable(cluster: &Cluster, pod: &str, why: &str) {
    let about = format!("involvedObject.name={pod}");
    cluster.eventually(
        &["get", "events", "-n", "default", "--field-selector", &about],
        WITHIN,
        |out| out.contains("FailedScheduling") && out.contains(why),
    );
}

/// Waits until `pod` has phase `phase`, returning its node.
fn until_phase(cluster: &Cluster, pod: &str, phase: &str) -> String {
    let path = "jsonpath={.status.phase} {.spec.nodeName}";
    let out = cluster.eventually(&["get", "pod", pod, "-o", path], WITHIN, |out| {
        out.starts_with(&format!("{phase} "))
    });
    out.split_whitespace().nth(1).unwrap_or_default().to_owned()
}

/// Waits until `pod`'s container reports `want`: `<resource name> <resource ID>=<health>`
/// of its first allocated resource.
fn until_health(cluster: &Cluster, pod: &str, want: &str) {
    let path = "jsonpath={.status.containerStatuses[0].allocatedResourcesStatus[0].name} \
                {.status.containerStatuses[0].allocatedResourcesStatus[0].resources[0].resourceID}=\
                {.status.containerStatuses[0].allocatedResourcesStatus[0].resources[0].health}";
    cluster.eventually(&["get", "pod", pod, "-o", path], WITHIN, |out| out == want);
}

/// No device is allocated twice, and each pod runs on the node whose pool gave its
/// devices.
fn assert_allocations_sound(cluster: &Cluster) {
    let allocations = allocations(cluster);
    let pods = pods(cluster);
    let mut seen = BTreeSet::new();
    for (pod, devices) in &allocations {
        for device in devices {
            assert!(
                seen.insert(device.clone()),
                "{device:?} allocated twice: {allocations:?}"
            );
            if let Some((_, node)) = pods.get(pod).filter(|(_, node)| !node.is_empty()) {
                assert_eq!(&device.0, node, "pod {pod} runs off its device's node");
            }
        }
    }
}

#[test]
fn gpu_nodes_should_publish_slices_that_the_scheduler_allocates_to_pods_kwok_runs() {
    let cluster = Cluster::create("dra", &[]);
    let class = json(&cluster, &["deviceclass", DRIVER]);
    assert_eq!(
        class["spec"]["selectors"][0]["cel"]["expression"],
        format!("device.driver == {DRIVER:?}")
    );
    scale_labelled(&cluster, "2", &[("kwok.x-k8s.io/gpus", "2")]);
    cluster.apply(
        "apiVersion: v1\nkind: Node\nmetadata: {name: plain, annotations: {kwok.x-k8s.io/node: fake}}\n",
    );
    cluster.eventually(&["get", "node", "plain"], WITHIN, |out| out.contains(" Ready "));
    cluster.eventually(&["get", "resourceslices", "-o", "name"], WITHIN, |out| {
        out.lines().count() == 2
    });
    let published = slices(&cluster);
    assert_eq!(
        published.keys().collect::<Vec<_>>(),
        ["node-000000", "node-000001"],
        "the unlabelled node has none"
    );
    for (node, slice) in &published {
        let uid = cluster.kubectl(&["get", "node", node, "-o", "jsonpath={.metadata.uid}"]);
        assert_eq!(slice["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
        assert_eq!(slice["spec"]["pool"]["name"], node.as_str());
        assert_eq!(slice["spec"]["pool"]["generation"], 1);
        assert_eq!(
            slice["spec"]["devices"].as_array().map(Vec::len),
            Some(2),
            "{slice}"
        );
    }

    // Four single-GPU pods fill the four devices; a fifth, and one asking for three
    // GPUs (more than a node has), wait with the scheduler's reason.
    cluster.apply(&claim_template("one-gpu", "{deviceClassName: gpu.kwok.x-k8s.io}"));
    cluster.apply(&claim_template(
        "three-gpus",
        "{deviceClassName: gpu.kwok.x-k8s.io, allocationMode: ExactCount, count: 3}",
    ));
    let single: Vec<String> = (0..5).map(|i| pod(&format!("gpu-{i}"), "one-gpu")).collect();
    cluster.apply(&single[..4].join("---\n"));
    for i in 0..4 {
        until_phase(&cluster, &format!("gpu-{i}"), "Running");
    }
    cluster.apply(&single[4]);
    cluster.apply(&pod("big", "three-gpus"));
    for name in ["gpu-4", "big"] {
        until_unschedulable(&cluster, name, "cannot allocate all claims");
    }
    assert_eq!(pods(&cluster)["gpu-4"].0, "Pending");
    assert_allocations_sound(&cluster);
    // Each running pod's container reports its claim's device healthy, as a kubelet
    // reports what the driver's plugin streams (ResourceHealthStatus, beta in 1.36).
    let allocated = allocations(&cluster);
    for i in 0..4 {
        let name = format!("gpu-{i}");
        let (pool, device) = &allocated[&name][0];
        let want = format!("claim:gpu {DRIVER}/{pool}/{device}=Healthy");
        until_health(&cluster, &name, &want);
    }
    // kwok reports each allocated device prepared, as the driver would.
    let status = "jsonpath={range .items[*]}{.status.devices[0].device} \
                  {.status.devices[0].conditions[0].type}={.status.devices[0].conditions[0].status}{\"\\n\"}{end}";
    let out = cluster.eventually(
        &["get", "resourceclaims", "-n", "default", "-o", status],
        WITHIN,
        |out| out.lines().filter(|l| l.ends_with(" Ready=True")).count() == 4,
    );
    // The waiting pods' claims have no device, so no status either.
    assert!(
        out.lines()
            .all(|l| l.trim() == "=" || (l.starts_with("gpu-") && l.ends_with(" Ready=True"))),
        "{out}"
    );

    // Deleting a pod frees its device for the waiting one.
    let freed = pods(&cluster)["gpu-0"].1.clone();
    cluster.kubectl(&["delete", "pod", "gpu-0", "--wait=false"]);
    assert_eq!(until_phase(&cluster, "gpu-4", "Running"), freed);
    assert_allocations_sound(&cluster);

    // Tainted devices are not allocated: free node-000000, taint both its GPUs, and
    // a new pod waits; untainted, it runs there.
    let on_first: Vec<String> = pods(&cluster)
        .into_iter()
        .filter(|(_, (_, node))| node == "node-000000")
        .map(|(name, _)| name)
        .collect();
    assert!(!on_first.is_empty());
    cluster.kubectl(&[
        "annotate",
        "node",
        "node-000000",
        "kwok.x-k8s.io/gpus-tainted=0,1",
    ]);
    cluster.eventually(
        &[
            "get",
            "resourceslice",
            "node-000000-gpu.kwok.x-k8s.io",
            "-o",
            "jsonpath={.spec.pool.generation}",
        ],
        WITHIN,
        |out| out == "2",
    );
    let slice = &slices(&cluster)["node-000000"];
    for device in slice["spec"]["devices"].as_array().expect("devices") {
        assert_eq!(device["taints"][0]["effect"], "NoSchedule", "{device}");
    }
    // The pods already using them keep running (NoSchedule) and report them unhealthy.
    let allocated = allocations(&cluster);
    for name in &on_first {
        let (pool, device) = &allocated[name][0];
        let want = format!("claim:gpu {DRIVER}/{pool}/{device}=Unhealthy");
        until_health(&cluster, name, &want);
        assert_eq!(pods(&cluster)[name].0, "Running");
    }
    let mut delete = vec!["delete", "pod", "--wait=true"];
    delete.extend(on_first.iter().map(String::as_str));
    cluster.kubectl(&delete);
    cluster.apply(&pod("gpu-5", "one-gpu"));
    until_unschedulable(&cluster, "gpu-5", "");
    assert_eq!(
        pods(&cluster)["gpu-5"].0,
        "Pending",
        "no untainted device is free"
    );
    cluster.kubectl(&["annotate", "node", "node-000000", "kwok.x-k8s.io/gpus-tainted-"]);
    assert_eq!(until_phase(&cluster, "gpu-5", "Running"), "node-000000");
    assert_eq!(slices(&cluster)["node-000000"]["spec"]["pool"]["generation"], 3);
    assert_allocations_sound(&cluster);

    // A NoExecute device taint evicts the pods using the device
    // (kube-controller-manager's device-taint eviction, on with DRADeviceTaints).
    let (_, device) = allocations(&cluster)["gpu-5"][0].clone();
    let index = device.trim_start_matches("gpu-");
    cluster.kubectl(&[
        "annotate",
        "node",
        "node-000000",
        &format!("kwok.x-k8s.io/gpus-tainted={index}:NoExecute"),
    ]);
    cluster.eventually(&["get", "pods", "-n", "default", "-o", "name"], WITHIN, |out| {
        !out.lines().any(|l| l == "pod/gpu-5")
    });
    let evicted = cluster.kubectl(&[
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        "involvedObject.name=gpu-5",
    ]);
    assert!(evicted.contains("DeviceTaintManagerEviction"), "{evicted}");

    // A node's slices go with it (garbage collection through the owner reference).
    cluster.kubectl(&["delete", "node", "node-000001"]);
    cluster.eventually(&["get", "resourceslices", "-o", "name"], WITHIN, |out| {
        out.lines().count() == 1
    });
    assert!(slices(&cluster).contains_key("node-000000"));
}

#[test]
fn partitionable_gpus_and_nics_should_publish_slices_the_apiserver_accepts_and_pods_use() {
    let cluster = Cluster::create("dra-kinds", &[]);
    scale_labelled(
        &cluster,
        "1",
        &[
            ("kwok.x-k8s.io/partitionable-gpus", "2"),
            ("kwok.x-k8s.io/nics", "2"),
        ],
    );
    // The counters, the devices drawing on them, and the NICs.
    cluster.eventually(&["get", "resourceslices", "-o", "name"], WITHIN, |out| {
        out.lines().count() == 3
    });
    let half = r#"{deviceClassName: gpu.kwok.x-k8s.io, selectors: [{cel: {expression: 'device.attributes["gpu.kwok.x-k8s.io"].partition == "half"'}}]}"#;
    cluster.apply(&claim_template("half-gpu", half));
    cluster.apply(&claim_template("one-nic", "{deviceClassName: nic.kwok.x-k8s.io}"));
    // Four halves fit the two GPUs' counters; a fifth does not, and a whole GPU
    // neither once the halves hold them.
    for i in 0..5 {
        cluster.apply(&pod(&format!("half-{i}"), "half-gpu"));
    }
    cluster.apply(&pod("nic", "one-nic"));
    for name in ["half-0", "half-1", "half-2", "half-3", "nic"] {
        until_phase(&cluster, name, "Running");
    }
    until_unschedulable(&cluster, "half-4", "");
    assert_eq!(pods(&cluster)["half-4"].0, "Pending");
    let allocations = allocations_of(&cluster);
    let halves: BTreeSet<&str> = allocations
        .iter()
        .filter(|(pod, _)| pod.starts_with("half-"))
        .flat_map(|(_, devices)| devices.iter().map(|(_, d, _)| d.as_str()))
        .collect();
    assert_eq!(
        halves,
        ["gpu-0-half-0", "gpu-0-half-1", "gpu-1-half-0", "gpu-1-half-1"].into()
    );
    let (driver, _, pool) = &allocations["nic"][0];
    assert_eq!(
        (driver.as_str(), pool.as_str()),
        ("nic.kwok.x-k8s.io", "node-000000")
    );

    // Preparing that always fails leaves the pod waiting with the kubelet's event, sent
    // again on every try; given back its share of success, it is tried again and runs.
    let failing = pod("nic-failing", "one-nic").replace(
        "namespace: default}",
        "namespace: default, annotations: {pod-dra-prepare.stage.kwok.x-k8s.io/weight: \"0\", \
         pod-dra-prepare-failed.stage.kwok.x-k8s.io/weight: \"1\"}}",
    );
    cluster.apply(&failing);
    let tries = "jsonpath={range .items[?(@.reason==\"FailedPrepareDynamicResources\")]}{.count}{end}";
    cluster.eventually(
        &[
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            "involvedObject.name=nic-failing",
            "-o",
            tries,
        ],
        WITHIN,
        |out| out.trim().parse::<u32>().is_ok_and(|n| n >= 2),
    );
    let state = "jsonpath={.spec.nodeName} {.status.phase}";
    assert_eq!(
        cluster.kubectl(&["get", "pod", "nic-failing", "-o", state]),
        "node-000000 Pending",
        "scheduled, never prepared"
    );
    cluster.kubectl(&[
        "annotate",
        "pod",
        "nic-failing",
        "pod-dra-prepare.stage.kwok.x-k8s.io/weight-",
    ]);
    until_phase(&cluster, "nic-failing", "Running");
}
