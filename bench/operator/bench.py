#!/usr/bin/env python3
"""The operator at scale, on the test bed: its memory, how fast it makes children, and what it
costs when nothing changes.

For each N it creates, in a namespace of its own, N TrainingJobs held by `runPolicy.suspend`
(mode `trainingjobs`: each gets its Job, created suspended, so no pod runs), or N
ModelDeployments with a Monitor each (mode `deployments`: their TrainingJob does not exist, so
each waits for it and makes no pods), from several client threads. It prints:

- the operator's RSS (VmRSS of its process, and `anon` of its container's cgroup) before and
  after, once the operator has seen every object;
- the time from the last create to the last child created (Jobs, mode `trainingjobs`);
- reconciles per second while the objects came in (`modelops_reconciles_total` of the kind, from
  the operator's metrics);
- the operator's CPU over `--idle` seconds once everything settled, as a share of one core;
- at the end of that window, its RSS again and its heap in use (`modelops_heap_bytes`: what it
  holds, where the RSS also counts what the allocator kept);

then deletes the namespace and waits until it is gone. Run it with bench/operator/run.
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def kubectl(*args, input=None, check=True):
    out = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True)
    if check and out.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)}: {out.stderr}")
    return out.stdout


def operator_pod(within=60):
    """The operator's leader: the pod the Lease names (the chart runs a standby beside it), once
    one holds it (a rollout leaves the Lease released for a moment)."""
    deadline = time.time() + within
    while True:
        holder = kubectl("-n", "modelops-system", "get", "lease", "modelops-operator", "-o",
                         "jsonpath={.spec.holderIdentity}", check=False)
        pods = json.loads(kubectl("-n", "modelops-system", "get", "pods", "-l",
                                  "app.kubernetes.io/name=modelops", "-o", "json"))["items"]
        for pod in pods:
            if (holder and holder.startswith(pod["metadata"]["name"] + "-")
                    and pod["status"].get("phase") == "Running"):
                return pod
        if time.time() > deadline:
            sys.exit(f"no running operator pod holds the lease ({holder!r}) after {within} s: run tests/cluster/install")
        time.sleep(1)


def operator_pid(pod):
    """The leader's process on this host (the test bed's containers are this machine's): the
    operator binary in the pod's cgroup."""
    uid = pod["metadata"]["uid"]
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            cgroup = open(f"/proc/{pid}/cgroup").read()
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"/modelops-operator") and uid in cgroup.replace("_", "-"):
            return int(pid)
    sys.exit(f"the process of operator pod {pod['metadata']['name']} is not on this host")


def rss_mb(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def cgroup_anon_mb(pid):
    """The anonymous memory (heap, stacks; no page cache) of the process' container cgroup:
    `anon` of cgroup v2, `total_rss` of v1's memory controller."""
    for line in open(f"/proc/{pid}/cgroup").read().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            stat, key = f"/sys/fs/cgroup/memory{path}/memory.stat", "total_rss"
            break
        if controllers == "":
            stat, key = f"/sys/fs/cgroup{path}/memory.stat", "anon"
    try:
        with open(stat) as f:
            values = dict(line.split() for line in f)
        return int(values[key]) / (1 << 20)
    except (OSError, KeyError, NameError):
        return float("nan")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def metric(pod, prefix):
    """The sum of the operator's series whose line starts with `prefix`, from its metrics."""
    url = f"http://{pod['status']['podIP']}:8080/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def reconciles(pod, kind):
    """The operator's reconciles of `kind` so far."""
    return metric(pod, f'modelops_reconciles_total{{kind="{kind}"}}')


def heap_mb(pod):
    """The operator's heap in use (its last figure, taken within 10 s after its last reconcile)."""
    return metric(pod, 'modelops_heap_bytes{state="in_use"}') / 1e6


class Arrivals:
    """Counts the distinct objects of `kind` (with `selector`) in `namespace` as they appear,
    from one watch started before they are made, and notes when the count first reached each
    target. Listing them again and again instead (10 000 Jobs, every 0.2 s) loaded the API
    server whose pace the benchmark measures."""

    def __init__(self, kind, namespace, selector):
        self.process = subprocess.Popen(
            ["kubectl", "-n", namespace, "get", kind, "-l", selector, "--watch", "-o", "name"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.seen = set()
        self.reached = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.process.stdout:
            with self.reached:
                self.seen.add(line.strip())
                self.reached.notify_all()

    def wait_for(self, n, timeout):
        """The time the n-th object arrived, or None after `timeout` seconds (or when the watch
        ended)."""
        deadline = time.time() + timeout
        with self.reached:
            while len(self.seen) < n:
                left = deadline - time.time()
                if left <= 0 or (self.process.poll() is not None and not self.thread.is_alive()):
                    return None
                self.reached.wait(min(left, 1))
            return time.time()

    def count(self):
        with self.reached:
            return len(self.seen)

    def stop(self):
        self.process.terminate()
        self.process.wait()


def create_all(namespace, manifests, threads):
    """Creates the manifests (dicts) in `namespace` from `threads` kubectl processes, each a batch
    of them."""
    batches = [manifests[i::threads] for i in range(threads)]

    def create(batch):
        if batch:
            body = json.dumps({"apiVersion": "v1", "kind": "List", "items": batch})
            kubectl("-n", namespace, "create", "-f", "-", input=body)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, batches))


def settle(pid, seconds=10, tolerance=0.01, within=300):
    """Waits until the operator is done with what changed: under `tolerance` of a core over
    `seconds`, or using the same CPU (within 0.2 % of a core) in two windows in a row, which is
    its steady idle cost; at most `within` seconds. A looser test (2 % over 5 s) started the idle
    window while the operator still wound down from the creates, and read that tail as idle."""
    deadline = time.time() + within
    last = None
    while time.time() < deadline:
        before = cpu_seconds(pid)
        time.sleep(seconds)
        share = (cpu_seconds(pid) - before) / seconds
        if share < tolerance or (last is not None and abs(share - last) < 0.002):
            return
        last = share
    print(f"  (the operator did not settle within {within} s)")


def dataset(namespace):
    iris = open(f"{ROOT}/examples/data/iris.csv").read()
    kubectl("-n", namespace, "create", "configmap", "iris-data", f"--from-literal=iris.csv={iris}")
    kubectl("-n", namespace, "apply", "-f", f"{ROOT}/examples/iris/dataset.yaml")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "dataset/iris", "--timeout=300s")


def trainingjob(i):
    return {"apiVersion": "modelops.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": f"tj-{i}"},
            "spec": {"datasetRef": {"name": "iris"}, "task": "classification",
                     "model": {"architecture": "mlp", "mlp": {"hiddenLayers": [16]}},
                     "hyperparameters": {"epochs": 5}, "resources": {"cpu": "100m", "memory": "256Mi"},
                     "runPolicy": {"suspend": True}}}


def deployment_and_monitor(i):
    return [
        {"apiVersion": "modelops.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": f"md-{i}"},
         "spec": {"model": {"trainingJobRef": {"name": f"absent-{i}"}}}},
        {"apiVersion": "modelops.dev/v1alpha1", "kind": "Monitor", "metadata": {"name": f"mon-{i}"},
         "spec": {"targetRef": {"name": f"md-{i}"}, "metrics": [{"accuracy": {"min": 0.9}}]}},
    ]


def run(args, n):
    namespace = f"bench-operator-{n}"
    # The leader first: without one nothing is made, so nothing is left behind.
    pod = operator_pod()
    pid = operator_pid(pod)
    # A tenant of the test bed's store: the Dataset's data goes there.
    subprocess.run([f"{ROOT}/tests/cluster/tenant", namespace], check=True, stdout=subprocess.DEVNULL)
    kind = "TrainingJob" if args.mode == "trainingjobs" else "ModelDeployment"
    try:
        if args.mode == "trainingjobs":
            dataset(namespace)
        settle(pid)
        rss_before, anon_before = rss_mb(pid), cgroup_anon_mb(pid)
        reconciles_before = reconciles(pod, kind)
        if args.mode == "trainingjobs":
            manifests = [trainingjob(i) for i in range(n)]
        else:
            manifests = [m for i in range(n) for m in deployment_and_monitor(i)]
        jobs = Arrivals("jobs", namespace, "modelops.dev/trainingjob") if args.mode == "trainingjobs" else None
        started = time.time()
        create_all(namespace, manifests, args.clients)
        created = time.time()
        last_child = None
        if jobs:
            # Every Job: the time the count first reached n.
            try:
                last_child = jobs.wait_for(n, 1800)
                if last_child is None:
                    print(f"  only {jobs.count()} of {n} Jobs after 30 minutes")
            finally:
                jobs.stop()
        settle(pid)
        settled = time.time()
        reconciled = reconciles(pod, kind) - reconciles_before
        rss_after, anon_after = rss_mb(pid), cgroup_anon_mb(pid)
        cpu_before = cpu_seconds(pid)
        time.sleep(args.idle)
        idle = (cpu_seconds(pid) - cpu_before) / args.idle
        rss_idle, heap = rss_mb(pid), heap_mb(pod)
        return {
            "n": n, "mode": args.mode, "createSeconds": round(created - started, 1),
            "lastChildAfterLastCreate": None if last_child is None else round(last_child - created, 2),
            "reconcilesPerSecond": round(reconciled / max(settled - started, 1e-9), 1),
            "rssMbBefore": round(rss_before, 1), "rssMb": round(rss_after, 1),
            "anonMbBefore": round(anon_before, 1), "anonMb": round(anon_after, 1),
            "rssMbIdle": round(rss_idle, 1), "heapMbIdle": round(heap, 1),
            "idleCpuPercent": round(idle * 100, 2), "idleSeconds": args.idle,
        }
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=1800s", check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 5000, 10000])
    parser.add_argument("--mode", choices=["trainingjobs", "deployments"], default="trainingjobs")
    parser.add_argument("--clients", type=int, default=8, help="kubectl processes creating at once")
    parser.add_argument("--idle", type=float, default=60, help="seconds of idle CPU measured")
    args = parser.parse_args()
    results = []
    for n in args.sizes:
        print(f"{args.mode}: {n} ...", flush=True)
        result = run(args, n)
        print("  " + json.dumps(result), flush=True)
        results.append(result)
    print(f"\n| mode | N | RSS MB (before) | cgroup anon MB | RSS MB after idle | heap in use MB | last child after last create s | reconciles/s | idle CPU % |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        child = "" if r["lastChildAfterLastCreate"] is None else f"{r['lastChildAfterLastCreate']:.2f}"
        print(f"| {r['mode']} | {r['n']} | {r['rssMb']:.1f} ({r['rssMbBefore']:.1f}) | {r['anonMb']:.1f} | {r['rssMbIdle']:.1f} | {r['heapMbIdle']:.1f} | {child} "
              f"| {r['reconcilesPerSecond']:.0f} | {r['idleCpuPercent']:.2f} |")


if __name__ == "__main__":
    main()
