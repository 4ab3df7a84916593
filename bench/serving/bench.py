#!/usr/bin/env python3
"""Serving throughput and latency of `modelops-worker serve` against KServe's Python model server
(kserve.ModelServer) serving the same weights with PyTorch, and the overhead of each over a raw
forward pass of the same batch; over HTTP with JSON, over HTTP with binary tensors, and over gRPC.

The worker prepares the digits and trains the mlp 64-32; both servers load its model.safetensors
and model card (normalisation, classes) and answer the Open Inference Protocol v2 JSON with the
labels and probabilities. Each server runs alone, pinned to the same cores, with the same libtorch
thread count; the same load generators (worker/examples/loadgen.rs: kept-alive HTTP/1.1
connections on loopback, a bounded time and request count; worker/examples/grpcload.rs: the same
over gRPC with raw_input_contents, tonic's client) drive both, pinned to other cores.
The raw forward pass is LoadedModel::predict_rows in Rust (worker/examples/forward.rs) for the
worker, and the same normalise-forward-softmax in PyTorch for KServe. Run it with bench/serving/run.
"""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# The training bench's helpers: run the worker, read safetensors, the PyTorch MLP.
_spec = importlib.util.spec_from_file_location("training_bench", f"{ROOT}/bench/training/bench.py")
training = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(training)


class TorchDigits:
    """The worker's model in PyTorch: the card's normalisation, the MLP, softmax, class names."""

    def __init__(self, model_dir):
        card = json.load(open(f"{model_dir}/model.json"))
        tensors = training.read_safetensors(f"{model_dir}/model.safetensors")
        hidden = card["architecture"]["hiddenLayers"]
        self.classes = card["classes"]
        self.model = training.Mlp(len(card["input"]["features"]), hidden, len(self.classes))
        layers = [f"hidden{i}" for i in range(len(hidden))] + ["output"]
        linears = [m for m in self.model.net if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for name, linear in zip(layers, linears):
                linear.weight.copy_(torch.from_numpy(tensors[f"{name}.weight"].copy()))
                linear.bias.copy_(torch.from_numpy(tensors[f"{name}.bias"].copy()))
        self.model.eval()
        normalization = card["input"]["normalization"]
        self.offset = torch.tensor(normalization["offset"], dtype=torch.float64)
        self.scale = torch.tensor(normalization["scale"], dtype=torch.float64)

    def predict(self, rows):
        with torch.inference_mode():
            x = ((torch.as_tensor(rows, dtype=torch.float64) - self.offset) / self.scale).float()
            probabilities = self.model(x).softmax(-1)
            best = probabilities.argmax(-1).tolist()
        return [self.classes[i] for i in best], probabilities.numpy()


def kserve_server(model_dir, port, grpc_port, threads):
    """Runs KServe's model server with the model (in this process, until killed)."""
    # kserve parses the command line when imported: leave it nothing of ours to misread.
    sys.argv = sys.argv[:1]
    import kserve
    from kserve import InferOutput, InferRequest, InferResponse

    torch.set_num_threads(threads)

    class Digits(kserve.Model):
        def __init__(self):
            super().__init__("digits")
            self.digits = TorchDigits(model_dir)
            self.ready = True

        def predict(self, payload: InferRequest, headers=None, response_headers=None):
            rows = payload.inputs[0].as_numpy().reshape(payload.inputs[0].shape)
            labels, probabilities = self.digits.predict(rows)
            return InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                infer_outputs=[
                    InferOutput("label", [len(labels)], "BYTES", labels),
                    InferOutput("probabilities", list(probabilities.shape), "FP32", probabilities.flatten().tolist()),
                ])

    kserve.ModelServer(http_port=port, grpc_port=grpc_port, enable_grpc=True, workers=1, max_threads=threads,
                       enable_latency_logging=False).start([Digits()])


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base, process, log):
    deadline = time.time() + 120
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited:\n{open(log).read()}")
        try:
            with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.05)
    sys.exit(f"{base} never became ready:\n{open(log).read()}")


def start_worker(args, work, model_dir, digest, batch_timeout):
    order = {"kind": "serve", "namespace": "bench", "name": "digits", "revision": 1,
             "modelUri": f"pvc://bench/models/{os.path.basename(model_dir)}", "storeUri": "pvc://bench",
             "modelDigest": digest, "serving": {"maxBatchSize": args.max_batch_size, "batchTimeout": batch_timeout},
             "port": free_port(), "grpcPort": free_port()}
    env = dict(training.worker_env(work, order, args.threads), MODELOPS_LISTEN_ADDRESS="127.0.0.1",
               MODELOPS_FEEDBACK_KEY="ab" * 32)
    log = f"{work}/worker-serve.log"
    process = subprocess.Popen(pin(args.server_cores) + [args.worker, "serve"], env=env,
                               stdout=open(log, "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{order['port']}"
    wait_ready(base, process, log)
    return process, base, f"127.0.0.1:{order['grpcPort']}"


def start_kserve(args, work, model_dir):
    port, grpc_port = free_port(), free_port()
    log = f"{work}/kserve.log"
    process = subprocess.Popen(pin(args.server_cores) + [sys.executable, __file__, "--kserve-server", model_dir,
                                                        "--port", str(port), "--grpc-port", str(grpc_port),
                                                        "--threads", str(args.threads)],
                               stdout=open(log, "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, log)
    return process, base, f"127.0.0.1:{grpc_port}"


def worker_answers(base, bodies, work):
    """The worker's answer to each HTTP body, saved for the limit server: {(batch, transport):
    (file, JSON length or None)}."""
    answers = {}
    for (batch, transport), (body, json_length) in bodies.items():
        headers = {"Content-Type": "application/json"}
        if json_length is not None:
            headers = {"Content-Type": "application/octet-stream",
                       "Inference-Header-Content-Length": str(json_length)}
        request = urllib.request.Request(f"{base}/v2/models/digits/infer", data=open(body, "rb").read(),
                                         headers=headers)
        with urllib.request.urlopen(request) as response:
            length = response.headers.get("Inference-Header-Content-Length")
            path = f"{work}/answer-{batch}-{transport}"
            open(path, "wb").write(response.read())
        answers[(batch, transport)] = (path, int(length) if length else None)
    return answers


def start_limit(args, work, answers):
    port = free_port()
    log = f"{work}/limit.log"
    responses = [f"{batch}-{transport}={path}" + (f":{length}" if length is not None else "")
                 for (batch, transport), (path, length) in answers.items()]
    process = subprocess.Popen(pin(args.server_cores) + [args.limit, str(port), str(args.threads)] + responses,
                               stdout=open(log, "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, log)
    return process, base


def pin(cores):
    return ["taskset", "-c", cores] if cores and shutil.which("taskset") else []


def load(args, server, case, bodies, rows_file, seconds=None, requests=None, model="digits"):
    """One load run of a case (name, batch, connections, transport) against a server's
    (base URL, gRPC address)."""
    (base, grpc), (_, batch, connections, transport) = server, case
    limits = [str(seconds or args.seconds), str(requests or args.requests)]
    if transport == "grpc":
        command = [args.grpcload, grpc, model, rows_file, str(batch), str(connections)] + limits
    else:
        body, json_length = bodies[(batch, transport)]
        command = [args.loadgen, f"{base}/v2/models/{model}/infer", body, str(connections)] + limits
        if json_length is not None:
            command.append(str(json_length))
    out = subprocess.run(pin(args.client_cores) + command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def torch_forward(digits, rows, batch, threads):
    torch.set_num_threads(threads)
    inputs = np.array([rows[i % len(rows)] for i in range(batch)], dtype=np.float64)
    for _ in range(50):
        digits.predict(inputs)
    times = []
    for _ in range(2000):
        started = time.perf_counter()
        digits.predict(inputs)
        times.append(time.perf_counter() - started)
    times.sort()
    return {"batch": batch, "p50Ms": times[len(times) // 2] * 1000, "p99Ms": times[int(len(times) * 0.99)] * 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker")
    parser.add_argument("--loadgen")
    parser.add_argument("--grpcload")
    parser.add_argument("--forward")
    parser.add_argument("--limit")
    parser.add_argument("--profile", default="?", help="the cargo profile the binaries were built with")
    parser.add_argument("--threads", type=int, default=1, help="libtorch threads of each server")
    parser.add_argument("--seconds", type=float, default=5, help="length of each load run")
    parser.add_argument("--requests", type=int, default=500000, help="most requests of each load run")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout", default="5ms", help="a batchTimeout besides the default, 0s")
    parser.add_argument("--server-cores", default="0", help="taskset cores of the servers ('' for none)")
    parser.add_argument("--client-cores", default="1", help="taskset cores of the load generator")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--kserve-server", metavar="MODEL_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--grpc-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kserve_server:
        return kserve_server(args.kserve_server, args.port, args.grpc_port, args.threads)

    # Fail early, before training, when kserve is missing (importing it would parse our arguments).
    if importlib.util.find_spec("kserve") is None:
        sys.exit("kserve is not installed: pip install kserve")
    from importlib.metadata import version
    work = tempfile.mkdtemp(prefix="modelops-serving-bench-")
    print(f"worker built with cargo profile {args.profile}, threads {args.threads}, servers on cores {args.server_cores or 'any'}, client on cores "
          f"{args.client_cores or 'any'}, {args.seconds:g} s per run, worker batches of up to {args.max_batch_size} rows, "
          f"kserve {version('kserve')}, torch {torch.__version__}, work folder {work}")

    dataset = training.prepare(args.worker, work, "digits", f"{ROOT}/examples/data/digits.csv", {
        "source": {"configMap": {"name": "digits", "key": "digits.csv"}}, "format": "csv",
        "schema": {"label": "label"}, "preprocessing": {"normalize": "standard"},
        "split": {"train": 0.7, "validation": 0.15, "test": 0.15, "seed": 7}})
    spec = {"datasetRef": {"name": "digits"}, "task": "classification",
            "model": {"architecture": "mlp", "mlp": {"hiddenLayers": [64, 32]}},
            "hyperparameters": {"epochs": 10, "batchSize": 32, "optimizer": {"learningRate": 0.002}, "seed": 1}}
    _, result = training.train_worker(args.worker, work, dataset, spec, 1)
    digest = result["modelDigest"]
    model_dir = f"{work}/models/{digest.removeprefix('sha256:')}"

    with open(f"{ROOT}/examples/data/digits.csv") as f:
        rows = [[float(v) for v in line.strip().split(",")[:-1]] for line in list(f)[1:257]]
    json.dump(rows, open(f"{work}/rows.json", "w"))
    # The bodies: JSON, and the binary tensor extension (the rows raw after the JSON, every output
    # asked for raw).
    bodies = {}
    for batch in (1, 32):
        bodies[(batch, "json")] = (f"{work}/body-{batch}.json", None)
        json.dump({"inputs": [{"name": "input-0", "shape": [batch, 64], "datatype": "FP32",
                               "data": rows[:batch]}]}, open(bodies[(batch, "json")][0], "w"))
        raw = np.array(rows[:batch], dtype="<f4").tobytes()
        header = json.dumps({"inputs": [{"name": "input-0", "shape": [batch, 64], "datatype": "FP32",
                                         "parameters": {"binary_data_size": len(raw)}}],
                             "parameters": {"binary_data_output": True}}).encode()
        bodies[(batch, "binary")] = (f"{work}/body-{batch}.bin", len(header))
        open(bodies[(batch, "binary")][0], "wb").write(header + raw)

    # The two servers must agree before they are timed.
    digits = TorchDigits(model_dir)
    expected, _ = digits.predict(np.array(rows[:32]))

    # Raw forward passes, on the servers' cores.
    raw = {}
    out = subprocess.run(pin(args.server_cores) + [args.forward, model_dir, f"{work}/rows.json", "1", "32"],
                         env=dict(os.environ, MODELOPS_THREADS=str(args.threads)), capture_output=True, text=True,
                         check=True)
    for line in out.stdout.strip().splitlines():
        figures = json.loads(line)
        raw[("worker", figures["batch"])] = figures
    if args.server_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in args.server_cores.split(",")})
    for batch in (1, 32):
        raw[("kserve", batch)] = torch_forward(digits, rows, batch, args.threads)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(os.cpu_count())))

    cases = [("1 row, 1 connection", 1, 1, "json"), ("1 row, 32 connections", 1, 32, "json"),
             ("32 rows, 1 connection", 32, 1, "json"), ("32 rows, 4 connections", 32, 4, "json"),
             ("32 rows binary, 1 conn.", 32, 1, "binary"), ("32 rows binary, 4 conn.", 32, 4, "binary"),
             ("32 rows gRPC, 1 conn.", 32, 1, "grpc"), ("32 rows gRPC, 4 conn.", 32, 4, "grpc")]
    # The worker with the ModelDeployment's default batchTimeout, 0s (no wait: batches hold what
    # queued while the previous forward pass ran), and with a timeout set.
    servers = [("worker", "worker", "0s"), (f"worker {args.batch_timeout}", "worker", args.batch_timeout),
               ("kserve", "kserve", None)]
    results = {}
    answers = {}
    for server, kind, batch_timeout in servers:
        process, base, grpc = (start_worker(args, work, model_dir, digest, batch_timeout) if kind == "worker"
                               else start_kserve(args, work, model_dir))
        try:
            request = urllib.request.Request(f"{base}/v2/models/digits/infer", data=open(bodies[(32, "json")][0], "rb").read(),
                                             headers={"Content-Type": "application/json"})
            answer = json.load(urllib.request.urlopen(request))
            labels = next(o for o in answer["outputs"] if o["name"] == "label")["data"]
            if labels != expected:
                sys.exit(f"{server} predicts {labels}, PyTorch {expected}")
            if not answers:
                answers = worker_answers(base, bodies, work)
            for case in cases:
                # Each transport answers, before it is timed.
                check = load(args, (base, grpc), case, bodies, f"{work}/rows.json", 1, 3)
                if check["errors"] or check["requests"] != 3:
                    log = f"{work}/kserve.log" if kind == "kserve" else f"{work}/worker-serve.log"
                    sys.exit(f"{server} {case[0]}: {check}\n" + "".join(open(log).readlines()[-20:]))
                name = case[0]
                load(args, (base, grpc), case, bodies, f"{work}/rows.json")  # warm-up run, not counted
                results[(server, name)] = load(args, (base, grpc), case, bodies, f"{work}/rows.json")
                r = results[(server, name)]
                if r["errors"]:
                    print(f"  {server} {name}: {r['errors']} errors")
        finally:
            process.terminate()
            process.wait()

    # The limit: a server on the worker's stack answering the worker's own responses, precomputed.
    servers.append(("limit", "limit", None))
    process, base = start_limit(args, work, answers)
    try:
        for case in cases:
            if case[3] == "grpc":
                continue
            model = f"{case[1]}-{case[3]}"
            check = load(args, (base, None), case, bodies, None, 1, 3, model)
            if check["errors"] or check["requests"] != 3:
                sys.exit(f"limit {case[0]}: {check}\n" + open(f"{work}/limit.log").read())
            load(args, (base, None), case, bodies, None, model=model)
            results[("limit", case[0])] = load(args, (base, None), case, bodies, None, model=model)
    finally:
        process.terminate()
        process.wait()

    print(f"\n{'case':24} {'server':12} {'requests/s':>11} {'rows/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, batch, _, _ in cases:
        k = results[("kserve", name)]
        for server, _, _ in servers:
            if (server, name) not in results:
                continue
            r = results[(server, name)]
            ratio = "" if server == "kserve" else (
                f"   x{r['requestsPerSecond'] / k['requestsPerSecond']:.2f} requests/s, "
                f"x{r['p50Ms'] / k['p50Ms']:.2f} p50, x{r['p99Ms'] / k['p99Ms']:.2f} p99 of kserve's")
            print(f"{name:24} {server:12} {r['requestsPerSecond']:11.0f} {r['requestsPerSecond'] * batch:9.0f} "
                  f"{r['p50Ms']:8.3f} {r['p99Ms']:8.3f}{ratio}")

    print(f"\n{'overhead on one connection':26} {'server':12} {'forward p50 ms':>15} {'served p50 ms':>14} "
          f"{'overhead ms':>12} {'limit p50 ms':>13} {'overhead / limit':>17}")
    for name, batch, connections, _ in cases:
        if connections != 1:
            continue
        limit = results.get(("limit", name), {}).get("p50Ms")
        for server, kind, _ in servers:
            if kind == "limit":
                continue
            forward = raw[(kind, batch)]["p50Ms"]
            served = results[(server, name)]["p50Ms"]
            overhead = served - forward
            versus = f"{limit:13.3f} {overhead / limit:17.2f}" if limit else ""
            print(f"{name:26} {server:12} {forward:15.3f} {served:14.3f} {overhead:12.3f} {versus}")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
