#!/usr/bin/env python3
"""Fault soak against the real control plane: the faults of the e2e fault suite
(tests/tests/e2e/faults.rs) looped at scale. A kwokctl cluster, N fake nodes and a
Deployment of M pods; then, until D minutes have passed, one fault after another:

  etcd        kill -9 etcd for 10 s, restart it (kwokctl start cluster)
  apiserver   kill -9 kube-apiserver for one lease period + 10 s, restart it
  kwok-stop   SIGSTOP kwok for one lease period + 20 s, SIGCONT
  kwok-kill   kill -9 kwok, scale the Deployment by +/-5 % and delete 100 of its pods,
              restart kwok 10 s later

After each fault the invariants of the suite are measured each second for two lease
periods + 30 s, counted from the moment the fault ended (the component restarted and
healthy, or kwok resumed): seconds until every node is Ready (target: one lease
period), then until every pod is Running and Ready (target: 30 s more), every later dip
(a node or pod not Ready again; target: over within a lease period; and object by
object, from the Ready conditions' last transitions: no node again not Ready for over a
lease period, no pod for over that and 30 s more), pod IPs held twice,
node and pod counts, and whether kwok's pid changed for another component's fault. The
counts come from `readiness-watch` (perf/), which follows nodes and pods by watches.
Prints one JSON line per fault and a Markdown table; writes JSON (with each fault's
changes of the not-Ready counts, and with --timeline kwok's own counters each second).

    python3 benches/scale/faults.py --nodes 5000 --pods 5000 --minutes 30 [--out DIR]
        [--faults apiserver,kwok-stop] [--timeline] [--kwok PATH]

Uses kwokctl and readiness-watch from $CARGO_TARGET_DIR/dist, else target/dist
(cargo build --profile dist -p kwokctl -p kwok-shards -p kwok-perf), and a throw-away
KWOK_WORKDIR.
"""
import argparse, json, os, re, signal, subprocess, sys, threading, time
from pathlib import Path

from soak import KWOKCTL, apply_all, metrics, sh, throwaway_cluster

LEASE = 40  # the node lease and grace period of soak.py's clusters (--heartbeat-factor 1)
POD_TARGET = 30
GIVE_UP = 300  # a missed target is still timed, up to this


class Cluster:
    def __init__(self, env, work):
        self.env, self.dir = env, Path(work, "clusters/faults")

    def kwok_port(self):
        return re.search(r"kwokControllerPort: (\d+)", (self.dir / "kwok.yaml").read_text()).group(1)

    def pid(self, component):
        return int((self.dir / "pids" / f"{component}.pid").read_text())

    def kill(self, component, sig=signal.SIGKILL):
        pid = self.pid(component)
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]:
                time.sleep(0.1)

    def restart(self):
        """`kwokctl start cluster`; the seconds it took to bring the killed component back healthy."""
        t = time.time()
        out = sh(self.env, "start", "cluster", tries=3)
        assert "restarted" in out, out
        return round(time.time() - t, 1)

    def log_size(self, component):
        log = self.dir / "logs" / f"{component}.log"
        return log.stat().st_size if log.exists() else 0


# What kube-controller-manager logs about its watches and the nodes it marks: after an
# apiserver restart this shows when each of its informers came back.
KCM_LINE = re.compile(r"^[IWEF]\d{4} (\d\d):(\d\d):(\d\d\.\d+)\s+\d+ (\S+?):\d+\] (.*)$")
KCM_KINDS = {
    "watch_failed": re.compile(r"watch ended with error|Failed to watch|Failed to list"),
    # Its node lifecycle controller writing a node's status (Unknown), refused: while
    # the apiserver is down, while its authorizer warms up, or because kwok wrote first.
    "node_update_refused": re.compile(r'"Error updating node" err=".*(?:connection refused)'),
    "node_update_forbidden": re.compile(r'"Error updating node" err=".*forbidden'),
    "node_update_conflict": re.compile(r'"Error updating node" err="Operation cannot be fulfilled'),
    "disruption": re.compile(r"disruption mode"),
}


def kcm_summary(cluster, offset, ended):
    """kube-controller-manager's log lines written since `offset` (bytes), counted by
    KCM_KINDS with the first and last of each in seconds after `ended` (epoch), and the
    resources whose informers failed, with the last failure of each."""
    log = cluster.dir / "logs" / "kube-controller-manager.log"
    if not log.exists():
        return None
    with log.open("rb") as f:
        # A log shorter than before was started anew: read it whole.
        f.seek(offset if log.stat().st_size >= offset else 0)
        lines = f.read().decode(errors="replace").splitlines()
    # klog stamps the time of day in local time, without the date: counted from the
    # local midnight before `ended`, then brought within half a day of it.
    day = time.localtime(ended)
    base = ended - (day.tm_hour * 3600 + day.tm_min * 60 + day.tm_sec + (ended % 1))
    out = {k: dict(count=0, first_s=None, last_s=None) for k in KCM_KINDS}
    informers = {}
    for line in lines:
        m = KCM_LINE.match(line)
        if not m:
            continue
        t = base + int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) - ended
        t = round((t + 43200) % 86400 - 43200, 1)
        for kind, rx in KCM_KINDS.items():
            if rx.search(m[5]):
                o = out[kind]
                o["count"] += 1
                o["first_s"] = t if o["first_s"] is None else o["first_s"]
                o["last_s"] = t
        r = re.search(r'(?:watch ended with error|Failed to watch|Failed to list).*?type="([^"]+)"', m[5]) or \
            re.search(r"(?:Failed to watch|Failed to list) (\*[\w.]+)", m[5])
        if r:
            informers[r[1]] = t
    out["informer_last_failure_s"] = informers
    return out



class Observer(threading.Thread):
    """`readiness-watch` on the cluster: it follows nodes and the Deployment's pods by
    watches and prints their counts each second. Listing them with kubectl instead took
    ~25 s per poll at 5,000 nodes and 5,000 pods on 2 cores, and loaded the apiserver
    whose recovery was being timed."""

    def __init__(self, env):
        super().__init__(daemon=True)
        self.proc = subprocess.Popen([str(KWOKCTL.parent / "readiness-watch"), "--pod-selector", "app=faults"],
                                     env=env, stdout=subprocess.PIPE, text=True)
        self.latest, self.at = None, 0.0

    def run(self):
        for line in self.proc.stdout:
            self.latest, self.at = json.loads(line), time.time()

    def counts(self):
        """The latest counts, or None while a watch is down or re-listing."""
        if self.latest is None or not self.latest["synced"] or time.time() - self.at > 3:
            return None
        return self.latest["counts"]

    def stop(self):
        self.proc.kill()


def measure(obs, nodes, replicas):
    """Looks at nodes and pods each second for two lease periods + 30 s after a fault
    ended (longer while something is still wrong, up to GIVE_UP): when all nodes were
    first Ready, when all pods then were Running and Ready, and every later dip
    (something not Ready again, as when kube-controller-manager marks nodes Unknown
    late) with how long it lasted and the longest any single node or pod in it had
    been not Ready (from its Ready condition's last transition: a dip of a minute can
    be one node stuck, or a thousand each not Ready for a second). `polls` keeps
    [t, nodes not Ready, pods not Ready] whenever they change (None: not known, a watch
    is re-listing)."""
    start = time.time()
    window = 2 * LEASE + 30
    r = dict(nodes_ready_s=None, pods_ready_s=None, dips=[], duplicate_ips=0, end_ok=False, polls=[],
             node_longest_s=0.0, pod_longest_s=0.0)
    dip = None  # dict(start, nodes, pods, node_s, pod_s): the worst counts and spells seen
    while True:
        t = time.time() - start
        s = obs.counts()
        nodes_ok = s is not None and s["nodes"] == nodes and not s["nodes_not_ready"]
        pods_ok = s is not None and s["pods"] == replicas and not s["pods_not_ready"]
        poll = [s["nodes_not_ready"], s["pods_not_ready"]] if s else [None, None]
        if not r["polls"] or r["polls"][-1][1:] != poll:
            r["polls"].append([round(t, 1), *poll])
        if s is not None:
            r["duplicate_ips"] = max(r["duplicate_ips"], s["duplicate_ips"])
            # Over the whole window, the fault itself included.
            r["node_longest_s"] = max(r["node_longest_s"], s.get("node_longest_s", 0.0))
            r["pod_longest_s"] = max(r["pod_longest_s"], s.get("pod_longest_s", 0.0))
        if r["nodes_ready_s"] is None:
            if nodes_ok:
                r["nodes_ready_s"] = round(t, 1)
        elif r["pods_ready_s"] is None and nodes_ok and pods_ok:
            r["pods_ready_s"] = round(t, 1)
        # A dip: a node not Ready once all were, or a pod once all were.
        if (r["nodes_ready_s"] is not None and not nodes_ok) or (r["pods_ready_s"] is not None and not pods_ok):
            dip = dip or dict(start=t, nodes=0, pods=0, node_s=0.0, pod_s=0.0)
            dip["nodes"] = max(dip["nodes"], s["nodes_not_ready"] if s else nodes)
            dip["pods"] = max(dip["pods"], s["pods_not_ready"] if s else replicas)
            if s:
                dip["node_s"] = max(dip["node_s"], s.get("node_longest_s", 0.0))
                dip["pod_s"] = max(dip["pod_s"], s.get("pod_longest_s", 0.0))
        elif dip:
            r["dips"].append(closed(dip, t))
            dip = None
        r["end_ok"] = nodes_ok and pods_ok
        if (t > window and r["end_ok"]) or t > GIVE_UP:
            break
        time.sleep(1)
    if dip:
        r["dips"].append(closed(dip, None))
    ended = (r["nodes_ready_s"] is not None and r["nodes_ready_s"] <= LEASE
             and r["duplicate_ips"] == 0 and r["end_ok"])
    # Strict: the counts themselves, as the fault suite asserts them.
    r["held"] = (ended and r["pods_ready_s"] is not None
                 and r["pods_ready_s"] - r["nodes_ready_s"] <= POD_TARGET
                 and all(d["lasted_s"] is not None and d["lasted_s"] <= LEASE for d in r["dips"]))
    # Each object on its own: after the first moment all nodes were Ready, no node was
    # again not Ready for longer than a lease period, nor a pod for longer than that
    # and 30 s more (its node back, then the pod).
    r["held_per_object"] = ended and all(
        d["lasted_s"] is not None and d["node_longest_s"] <= LEASE
        and d["pod_longest_s"] <= LEASE + POD_TARGET for d in r["dips"])
    return r


def closed(dip, t):
    """A dip as reported, `t` the time it ended (None: it had not)."""
    return dict(at_s=round(dip["start"], 1), lasted_s=None if t is None else round(t - dip["start"], 1),
                nodes_not_ready=dip["nodes"], pods_not_ready=dip["pods"],
                node_longest_s=round(dip["node_s"], 1), pod_longest_s=round(dip["pod_s"], 1))


# kwok's own counters sampled each second by --timeline: cheap for the apiserver (the
# node and pod lists above are not), they show where a slow recovery spends its time.
TIMELINE = {
    "pressure": lambda m: m.get("kwok_lease_pressure"),
    "lease_queue": lambda m: m.get("kwok_lease_queue_depth"),
    "leases_expired": lambda m: m.get("kwok_leases_expired_total"),
    "node_init": lambda m: total(m, "kwok_stage_transitions_total", "node-initialize"),
    "pod_restore": lambda m: total(m, "kwok_stage_transitions_total", "restore"),
    "writes": lambda m: total(m, "kwok_apiserver_requests_total", 'verb="patch"'),
    "renewals": lambda m: total(m, "kwok_apiserver_requests_total", 'verb="put"'),
    "queue": lambda m: total(m, "kwok_batcher_queue_depth", ""),
}


def total(m, name, having):
    """The sum of metric `name`'s series whose labels contain `having`."""
    return sum(v for k, v in m.items() if k.startswith(name + "{") and having in k)


class Timeline(threading.Thread):
    """Samples kwok's /metrics each second until stopped: rows of [t, *TIMELINE]."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        # kwokctl start keeps kwok's port: read the config once, not every second.
        self.port, self.pki = cluster.kwok_port(), cluster.dir / "pki"
        self.rows, self.done = [], threading.Event()

    def run(self):
        start = time.time()
        while not self.done.wait(1):
            try:
                m = metrics(self.port, self.pki)
            except Exception:
                continue  # kwok stopped or restarting
            self.rows.append([round(time.time() - start, 1)] + [f(m) for f in TIMELINE.values()])

    def stop(self):
        self.done.set()
        self.join()
        return dict(columns=["t", *TIMELINE], rows=self.rows)


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
    ap.add_argument("--faults", default="etcd,apiserver,kwok-stop,kwok-kill",
                    help="the faults to loop over, in order (comma-separated)")
    ap.add_argument("--kwok", default=None, help="the kwok binary (default: kwokctl's, target/dist/kwok)")
    ap.add_argument("--timeline", action="store_true",
                    help="sample kwok's counters each second from each fault's start into the JSON")
    a = ap.parse_args()
    faults = a.faults.split(",")
    unknown = set(faults) - {"etcd", "apiserver", "kwok-stop", "kwok-kill"}
    if unknown:
        ap.error(f"--faults: unknown fault(s) {sorted(unknown)}")
    env, work = throwaway_cluster("faults", *(["--kwok-controller-binary", a.kwok] if a.kwok else []))
    c = Cluster(env, work)
    obs = Observer(env)
    obs.start()
    results, replicas = [], a.pods
    try:
        docs = [f"apiVersion: v1\nkind: Node\nmetadata:\n  name: faults-{i}\n  labels: {{type: kwok}}\n"
                for i in range(a.nodes)]
        t0 = time.time()
        apply_all(env, docs)
        sh(env, "kubectl", "apply", "-f", "-", stdin=deployment(replicas), tries=5)
        setup = measure(obs, a.nodes, replicas)
        print(json.dumps(dict(fault="setup", seconds=round(time.time() - t0),
                              **{k: v for k, v in setup.items() if k != "polls"})), flush=True)
        start, kwok, step, kills = time.time(), c.pid("kwok-controller"), 0, 0
        while time.time() - start < a.minutes * 60:
            fault = faults[step % len(faults)]
            step += 1
            timeline = Timeline(c) if a.timeline else None
            if timeline:
                timeline.start()
            fault_start, restart_s = time.time(), None
            kcm_offset = c.log_size("kube-controller-manager")
            if fault == "etcd":
                c.kill("etcd"); time.sleep(10); restart_s = c.restart()
            elif fault == "apiserver":
                c.kill("kube-apiserver"); time.sleep(LEASE + 10); restart_s = c.restart()
            elif fault == "kwok-stop":
                c.kill("kwok-controller", signal.SIGSTOP); time.sleep(LEASE + 20)
                c.kill("kwok-controller", signal.SIGCONT)
            else:
                c.kill("kwok-controller")
                kills += 1  # scale up at odd kills, back down at even ones
                replicas = replicas + a.pods // 20 if kills % 2 else replicas - a.pods // 20
                sh(env, "kubectl", "scale", "deployment", "faults", f"--replicas={replicas}", tries=5)
                names = [n for n in sh(env, "kubectl", "get", "pods", "-l", "app=faults", "-o",
                                       "jsonpath={.items[*].metadata.name}").split()][:100]
                sh(env, "kubectl", "delete", "pod", "--wait=false", *names, tries=3)
                time.sleep(10); restart_s = c.restart()
            ended = time.time()
            r = measure(obs, a.nodes, replicas)
            r["fault_s"] = round(ended - fault_start, 1)
            r["restart_s"] = restart_s  # of fault_s, `kwokctl start cluster` alone
            r["kcm_log"] = kcm_summary(c, kcm_offset, ended)
            if timeline:
                r["timeline"] = timeline.stop()
            now_kwok = c.pid("kwok-controller")
            r.update(fault=fault, minute=round((time.time() - start) / 60, 1), replicas=replicas,
                     kwok_restarted_by_other=(now_kwok != kwok and not fault.startswith("kwok")))
            kwok = now_kwok
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k not in ("timeline", "polls")}), flush=True)
        keys = ["minute", "fault", "nodes_ready_s", "pods_ready_s", "dips", "duplicate_ips", "replicas",
                "kwok_restarted_by_other", "held", "held_per_object"]
        print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for r in results:
            print("| " + " | ".join(str(r.get(k)) for k in keys) + " |")
        held = sum(r["held"] and not r["kwok_restarted_by_other"] for r in results)
        each = sum(r["held_per_object"] and not r["kwok_restarted_by_other"] for r in results)
        print(f"\n{held} of {len(results)} faults held every invariant "
              f"(nodes Ready within {LEASE} s, pods within {POD_TARGET} s more, no duplicate IP); "
              f"{each} of {len(results)} held it object by object (no node again not Ready "
              f"over {LEASE} s, no pod over {LEASE + POD_TARGET} s)")
        if a.out:
            Path(a.out).mkdir(parents=True, exist_ok=True)
            Path(a.out, f"faults-{a.nodes}n-{a.pods}p.json").write_text(json.dumps(
                dict(nodes=a.nodes, pods=a.pods, minutes=a.minutes, lease_s=LEASE, setup=setup,
                     faults=results), indent=1))
        return 0 if held == len(results) else 1
    finally:
        obs.stop()
        sh(env, "delete", "cluster", check=False)


if __name__ == "__main__":
    sys.exit(main())
