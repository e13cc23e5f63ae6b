#!/usr/bin/env python3
"""Fault soak against the real control plane: the faults of the e2e fault suite
(tests/tests/e2e/faults.rs) looped at scale. A kwokctl cluster, N fake nodes and a
Deployment of M pods; then, until D minutes have passed, one fault after another:

  etcd        kill -9 etcd for 10 s, restart it (kwokctl start cluster)
  apiserver   kill -9 kube-apiserver for one lease period + 10 s, restart it
  kwok-stop   SIGSTOP kwok for one lease period + 20 s, SIGCONT
  kwok-kill   kill -9 kwok, scale the Deployment by +/-5 % and delete 100 of its pods,
              restart kwok 10 s later

After each fault the invariants of the suite are measured by polling every ~2 s for two
lease periods + 30 s: seconds until every node is Ready (target: one lease period), then
until every pod is Running and Ready (target: 30 s more), every later dip (a node or pod
not Ready again; target: over within a lease period), pod IPs held twice, node and pod
counts, and whether kwok's pid changed for another component's fault. Prints one JSON line per fault and a Markdown table; writes JSON.

    python3 benches/scale/faults.py --nodes 5000 --pods 5000 --minutes 30 [--out DIR]

Uses kwokctl from $CARGO_TARGET_DIR/dist, else target/dist, and a throw-away
KWOK_WORKDIR.
"""
import argparse, collections, json, os, signal, sys, time
from pathlib import Path

from soak import apply_all, sh, throwaway_cluster

LEASE = 40  # the node lease and grace period of soak.py's clusters (--heartbeat-factor 1)
POD_TARGET = 30
GIVE_UP = 300  # a missed target is still timed, up to this


class Cluster:
    def __init__(self, env, work):
        self.env, self.dir = env, Path(work, "clusters/faults")

    def pid(self, component):
        return int((self.dir / "pids" / f"{component}.pid").read_text())

    def kill(self, component, sig=signal.SIGKILL):
        pid = self.pid(component)
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]:
                time.sleep(0.1)

    def restart(self):
        out = sh(self.env, "start", "cluster", tries=3)
        assert "restarted" in out, out

    def nodes(self):
        """(count, names not Ready), or None while the apiserver does not answer."""
        path = '{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}'
        out = sh(self.env, "kubectl", "get", "nodes", "-o", f"jsonpath={path}", check=False)
        lines = [l.split() for l in out.splitlines() if l.strip()]
        if not lines:
            return None
        return len(lines), [l[0] for l in lines if l[-1] != "True"]

    def pods(self):
        """(count, names not Running and Ready, duplicate IPs), or None."""
        path = ('{range .items[*]}{.metadata.name} {.status.phase} {.status.conditions[?(@.type=="Ready")].status} '
                'D{.metadata.deletionTimestamp} {.status.podIP}{"\\n"}{end}')
        out = sh(self.env, "kubectl", "get", "pods", "-l", "app=faults", "-o", f"jsonpath={path}", check=False)
        rows = [l.split(" ") for l in out.splitlines() if l.strip()]
        if not rows and "faults" not in out:
            return None
        bad = [r[0] for r in rows if r[1] != "Running" or r[2] != "True" or r[3] != "D"]
        ips = collections.Counter(r[4] for r in rows if len(r) > 4 and r[4])
        return len(rows), bad, sum(n - 1 for n in ips.values() if n > 1)


def measure(c, nodes, replicas):
    """Polls nodes and pods for two lease periods + 30 s after a fault ended (longer while
    something is still wrong, up to GIVE_UP): when all nodes were first Ready, when all
    pods then were Running and Ready, and every later dip (something not Ready again, as
    when kube-controller-manager marks nodes Unknown late) with how long it lasted."""
    start = time.time()
    window = 2 * LEASE + 30
    r = dict(nodes_ready_s=None, pods_ready_s=None, dips=[], duplicate_ips=0, end_ok=False)
    dip = None  # (start, worst not-Ready nodes, worst not-Ready pods)
    while True:
        t = time.time() - start
        n, p = c.nodes(), c.pods()
        nodes_ok = n is not None and n[0] == nodes and not n[1]
        pods_ok = p is not None and p[0] == replicas and not p[1]
        if p is not None:
            r["duplicate_ips"] = max(r["duplicate_ips"], p[2])
        if r["nodes_ready_s"] is None:
            if nodes_ok:
                r["nodes_ready_s"] = round(t, 1)
        elif r["pods_ready_s"] is None:
            if nodes_ok and pods_ok:
                r["pods_ready_s"] = round(t, 1)
        elif not (nodes_ok and pods_ok):
            bad_nodes = len(n[1]) if n else nodes
            bad_pods = len(p[1]) if p else replicas
            dip = (dip[0] if dip else t, max(bad_nodes, dip[1] if dip else 0), max(bad_pods, dip[2] if dip else 0))
        elif dip:
            r["dips"].append(dict(at_s=round(dip[0], 1), lasted_s=round(t - dip[0], 1),
                                  nodes_not_ready=dip[1], pods_not_ready=dip[2]))
            dip = None
        r["end_ok"] = nodes_ok and pods_ok
        if (t > window and r["end_ok"]) or t > GIVE_UP:
            break
        time.sleep(2)
    if dip:
        r["dips"].append(dict(at_s=round(dip[0], 1), lasted_s=None, nodes_not_ready=dip[1], pods_not_ready=dip[2]))
    r["held"] = (r["nodes_ready_s"] is not None and r["nodes_ready_s"] <= LEASE
                 and r["pods_ready_s"] is not None and r["pods_ready_s"] - r["nodes_ready_s"] <= POD_TARGET
                 and all(d["lasted_s"] is not None and d["lasted_s"] <= LEASE for d in r["dips"])
                 and r["duplicate_ips"] == 0 and r["end_ok"])
    return r


def deployment(replicas):
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: faults\n  namespace: default\n"
            f"spec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: faults}}\n"
            f"  template:\n    metadata:\n      labels: {{app: faults}}\n    spec:\n"
            f"      tolerations: [{{operator: Exists}}]\n      containers:\n      - name: c\n        image: fake\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    env, work = throwaway_cluster("faults")
    c = Cluster(env, work)
    results, replicas = [], a.pods
    try:
        docs = [f"apiVersion: v1\nkind: Node\nmetadata:\n  name: faults-{i}\n  labels: {{type: kwok}}\n"
                for i in range(a.nodes)]
        t0 = time.time()
        apply_all(env, docs)
        sh(env, "kubectl", "apply", "-f", "-", stdin=deployment(replicas), tries=5)
        setup = measure(c, a.nodes, replicas)
        print(json.dumps(dict(fault="setup", seconds=round(time.time() - t0), **setup)), flush=True)
        start, kwok, step = time.time(), c.pid("kwok-controller"), 0
        while time.time() - start < a.minutes * 60:
            fault = ["etcd", "apiserver", "kwok-stop", "kwok-kill"][step % 4]
            step += 1
            if fault == "etcd":
                c.kill("etcd"); time.sleep(10); c.restart()
            elif fault == "apiserver":
                c.kill("kube-apiserver"); time.sleep(LEASE + 10); c.restart()
            elif fault == "kwok-stop":
                c.kill("kwok-controller", signal.SIGSTOP); time.sleep(LEASE + 20)
                c.kill("kwok-controller", signal.SIGCONT)
            else:
                c.kill("kwok-controller")
                replicas = replicas + a.pods // 20 if step % 8 == 4 else replicas - a.pods // 20
                sh(env, "kubectl", "scale", "deployment", "faults", f"--replicas={replicas}", tries=5)
                names = [n for n in sh(env, "kubectl", "get", "pods", "-l", "app=faults", "-o",
                                       "jsonpath={.items[*].metadata.name}").split()][:100]
                sh(env, "kubectl", "delete", "pod", "--wait=false", *names, tries=3)
                time.sleep(10); c.restart()
            r = measure(c, a.nodes, replicas)
            now_kwok = c.pid("kwok-controller")
            r.update(fault=fault, minute=round((time.time() - start) / 60, 1), replicas=replicas,
                     kwok_restarted_by_other=(now_kwok != kwok and not fault.startswith("kwok")))
            kwok = now_kwok
            results.append(r)
            print(json.dumps(r), flush=True)
        keys = ["minute", "fault", "nodes_ready_s", "pods_ready_s", "dips", "duplicate_ips", "replicas",
                "kwok_restarted_by_other", "held"]
        print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for r in results:
            print("| " + " | ".join(str(r.get(k)) for k in keys) + " |")
        held = sum(r["held"] and not r["kwok_restarted_by_other"] for r in results)
        print(f"\n{held} of {len(results)} faults held every invariant "
              f"(nodes Ready within {LEASE} s, pods within {POD_TARGET} s more, no duplicate IP)")
        if a.out:
            Path(a.out).mkdir(parents=True, exist_ok=True)
            Path(a.out, f"faults-{a.nodes}n-{a.pods}p.json").write_text(json.dumps(
                dict(nodes=a.nodes, pods=a.pods, minutes=a.minutes, lease_s=LEASE, setup=setup,
                     faults=results), indent=1))
        return 0 if held == len(results) else 1
    finally:
        sh(env, "delete", "cluster", check=False)


if __name__ == "__main__":
    sys.exit(main())
