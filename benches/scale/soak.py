#!/usr/bin/env python3
"""Scale soak against the real control plane: a kwokctl cluster, N fake nodes (and
optionally M pods), then kwok's RSS, CPU and lease renewal lateness sampled every
minute for D minutes. Prints a Markdown table; writes JSON next to it.

    python3 benches/scale/soak.py --nodes 5000 --minutes 30 [--pods 0] [--out DIR]

Uses kwokctl from $CARGO_TARGET_DIR/dist, else target/dist (build it first:
cargo build --profile dist --workspace --bins)
and a throw-away KWOK_WORKDIR, so it never touches your clusters.
"""
import argparse, concurrent.futures, json, os, re, ssl, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KWOKCTL = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "dist/kwokctl"
TICK = os.sysconf("SC_CLK_TCK")


def sh(env, *args, stdin=None, check=True, tries=1):
    """kwokctl ARGS on the cluster `env` names (KWOK_NAME); stdout, or exit after `tries`."""
    for attempt in range(tries):
        out = subprocess.run([str(KWOKCTL), *args], env=env, input=stdin,
                             capture_output=True, text=True)
        if out.returncode == 0 or not check:
            return out.stdout
        print(f"kwokctl {' '.join(args[:3])} failed (try {attempt + 1}): {out.stderr.strip()[:300]}",
              file=sys.stderr, flush=True)
        time.sleep(2)
    raise SystemExit(f"kwokctl {' '.join(args)} kept failing")


def throwaway_cluster(name, *extra):
    """(env, work dir) of a cluster `name` made with --disable-qps-limits and the kubelet's
    40 s node lease and grace period (--heartbeat-factor 1; kwokctl's default 5 gives 200 s,
    as upstream's) in a throw-away KWOK_WORKDIR, binaries from the usual cache; `extra`
    are more `create cluster` flags."""
    work = tempfile.mkdtemp(prefix=f"kwok-{name}-")
    cache = os.environ.get("KWOK_CACHE_DIR", str(Path.home() / ".kwok/cache"))
    env = dict(os.environ, KWOK_WORKDIR=work, KUBECONFIG=f"{work}/kubeconfig", KWOK_CACHE_DIR=cache,
               KWOK_NAME=name)
    sh(env, "create", "cluster", "--disable-qps-limits", "--heartbeat-factor", "1", *extra)
    return env, work


def apply_all(env, docs):
    """Applies YAML documents 250 at a time, eight kubectl processes at once (one sends
    its creates one after another)."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: sh(env, "kubectl", "apply", "-f", "-", stdin="---\n".join(docs[i:i + 250]), tries=5),
                      range(0, len(docs), 250)))


def proc(pid):
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / TICK
    status = Path(f"/proc/{pid}/status").read_text()
    kb = lambda key: int(re.search(rf"^{key}:\s+(\d+)", status, re.M).group(1))
    return cpu, kb("VmRSS") / 1024, kb("VmHWM") / 1024


def metrics(port, pki):
    """kwok's /metrics as {name with labels: value}. kwok serves HTTPS and asks for a
    client certificate the cluster CA signed: the cluster's admin one, from `pki`."""
    tls = ssl.create_default_context(cafile=str(Path(pki, "ca.crt")))
    tls.load_cert_chain(str(Path(pki, "admin.crt")), str(Path(pki, "admin.key")))
    text = urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", timeout=10, context=tls).read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values


def quantile(values, q):
    """Upper bound of the histogram bucket holding quantile q of lease lateness."""
    buckets = sorted(
        (float("inf") if m.group(1) == "+Inf" else float(m.group(1)), v)
        for k, v in values.items()
        if (m := re.match(r'kwok_lease_renewal_lateness_seconds_bucket\{le="([^"]+)"\}', k)))
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= q * total:
            return bound
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    env, work = throwaway_cluster("soak")
    try:
        cfg = Path(work, "clusters/soak/kwok.yaml").read_text()
        port = re.search(r"kwokControllerPort: (\d+)", cfg).group(1)
        kwok = int(Path(work, "clusters/soak/pids/kwok-controller.pid").read_text())
        api = int(Path(work, "clusters/soak/pids/kube-apiserver.pid").read_text())
        docs = [
            f"apiVersion: v1\nkind: Node\nmetadata:\n  name: soak-{i}\n  annotations: {{kwok.x-k8s.io/node: fake}}\n"
            f"  labels: {{type: kwok}}\nstatus:\n  allocatable: {{cpu: '32', memory: 256Gi, pods: '110'}}\n"
            f"  capacity: {{cpu: '32', memory: 256Gi, pods: '110'}}\n" for i in range(a.nodes)]
        t0 = time.time()
        apply_all(env, docs)
        created = time.time() - t0
        while True:
            out = sh(env, "kubectl", "get", "nodes", "--no-headers")
            if out.count(" Ready ") >= a.nodes:
                break
            time.sleep(2)
        ready = time.time() - t0
        if a.pods:
            sh(env, "kubectl", "create", "deployment", "soak", "--image=fake", f"--replicas={a.pods}")
        print(f"{a.nodes} nodes created in {created:.0f} s, all Ready {ready:.0f} s after the first create",
              flush=True)
        samples, start = [], time.time()
        cpu0, _, _ = proc(kwok)
        api0, _, _ = proc(api)
        while True:
            elapsed = time.time() - start
            cpu, rss, hwm = proc(kwok)
            apicpu, apirss, _ = proc(api)
            m = metrics(port, Path(work, "clusters/soak/pki"))
            s = dict(minute=round(elapsed / 60, 1), kwok_rss_mb=round(rss, 1), kwok_peak_mb=round(hwm, 1),
                     kwok_cpu_s=round(cpu - cpu0, 1), apiserver_cpu_s=round(apicpu - api0, 1),
                     renewals=int(m.get("kwok_lease_renewal_lateness_seconds_count", 0)),
                     late_p50_le=quantile(m, 0.5), late_p99_le=quantile(m, 0.99),
                     late_max_s=m.get("kwok_lease_renewal_lateness_max_seconds", float("nan")),
                     expired=int(m.get("kwok_leases_expired_total", 0)),
                     held=int(m.get("kwok_leases_held", 0)))
            samples.append(s)
            print(json.dumps(s), flush=True)
            if elapsed >= a.minutes * 60:
                break
            time.sleep(60)
        ready_now = sh(env, "kubectl", "get", "nodes", "--no-headers").count(" Ready ")
        first, last = samples[0], samples[-1]
        summary = dict(nodes=a.nodes, pods=a.pods, minutes=a.minutes, nodes_ready_at_end=ready_now,
                       create_s=round(created), all_ready_s=round(ready),
                       kwok_cpu_cores_avg=round((last["kwok_cpu_s"] - first["kwok_cpu_s"]) /
                                                max(1, (last["minute"] - first["minute"]) * 60), 3),
                       apiserver_cpu_cores_avg=round((last["apiserver_cpu_s"] - first["apiserver_cpu_s"]) /
                                                     max(1, (last["minute"] - first["minute"]) * 60), 3),
                       rss_first_mb=first["kwok_rss_mb"], rss_last_mb=last["kwok_rss_mb"],
                       peak_mb=last["kwok_peak_mb"], renewals=last["renewals"],
                       late_p50_le_s=last["late_p50_le"], late_p99_le_s=last["late_p99_le"],
                       late_max_s=last["late_max_s"], expired=last["expired"])
        print("\n| " + " | ".join(summary) + " |\n|" + "---|" * len(summary))
        print("| " + " | ".join(str(v) for v in summary.values()) + " |")
        if a.out:
            Path(a.out).mkdir(parents=True, exist_ok=True)
            Path(a.out, f"soak-{a.nodes}n-{a.pods}p.json").write_text(
                json.dumps(dict(summary=summary, samples=samples), indent=1))
    finally:
        sh(env, "delete", "cluster", check=False)


if __name__ == "__main__":
    sys.exit(main())
