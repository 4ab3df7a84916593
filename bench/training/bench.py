#!/usr/bin/env python3
"""Training throughput of `modelops-worker train` (libtorch through tch) against the same model
in PyTorch for Python, on the same prepared data, batch size, epochs and thread count.

For each case the worker prepares the data set and trains; its progress lines give the samples
per second of every epoch's training loop. The baseline then reads the worker's prepared data
(data.safetensors, or text.jsonl tokenised the way the worker does), trains the same
architecture with the same optimiser and batch order scheme, and times the same loop. The first
epoch of each is a warm-up and is left out. Run it with bench/training/run.
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def read_safetensors(path):
    """The tensors of a safetensors file, as numpy arrays."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    base = 8 + length
    dtypes = {"F32": np.float32, "I64": np.int64, "F64": np.float64}
    arrays = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arrays[name] = np.frombuffer(data[base + start:base + end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return arrays


def worker_env(work, order, threads, device="cpu"):
    """The environment of a worker process: the order, its threads, and the work folder as the
    artifact claim (`pvc://bench/...` is `<work>/...`), its scratch folder and termination log.
    On `cpu` no GPU is visible to it (the worker takes CUDA whenever it sees a device); on
    `cuda` it loads libtorch's CUDA backend."""
    devices = {"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {"MODELOPS_LOAD_CUDA": "1"}
    return dict(os.environ, MODELOPS_WORK_ORDER=json.dumps(order), MODELOPS_THREADS=str(threads),
                MODELOPS_ARTIFACTS_DIR=work, MODELOPS_SCRATCH_DIR=f"{work}/scratch",
                MODELOPS_TERMINATION_LOG=f"{work}/termination-log", MODELOPS_PROGRESS_PORT="0", **devices)


def run_worker(worker, work, command, order, threads, device="cpu"):
    env = worker_env(work, order, threads, device)
    out = subprocess.run([worker, command], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"modelops-worker {command} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def prepare(worker, work, name, source, spec):
    order = {"kind": "prepare", "namespace": "bench", "name": name, "spec": spec, "sourcePath": source,
             "outputUri": f"pvc://bench/datasets/{name}"}
    result = json.loads(run_worker(worker, work, "prepare", order, 1).strip().splitlines()[-1])
    digest = result["digest"]
    hex_digest = digest.removeprefix("sha256:")
    return f"{work}/datasets/{name}/{hex_digest}", digest, f"pvc://bench/datasets/{name}/{hex_digest}"


def train_worker(worker, work, dataset, spec, threads, device="cpu"):
    checkpoints = os.path.basename(tempfile.mkdtemp(dir=work, prefix="checkpoints-"))
    order = {"kind": "train", "namespace": "bench", "name": "bench", "uid": "bench", "spec": spec,
             "datasetUri": dataset[2], "datasetDigest": dataset[1],
             "checkpointUri": f"pvc://bench/{checkpoints}", "modelsUri": "pvc://bench/models"}
    stdout = run_worker(worker, work, "train", order, threads, device)
    rates = [float(m) for m in re.findall(r"^epoch \d+/\d+ .*samplesPerSecond=([0-9.]+)", stdout, re.M)]
    result = json.loads(stdout.strip().splitlines()[-1])
    card = json.load(open(f"{work}/models/{result['modelDigest'].removeprefix('sha256:')}/model.json"))
    trained_on = card["training"]["device"]
    if trained_on.split(":")[0] != device:
        sys.exit(f"the worker trained on {trained_on}, not {device}: {stdout[-2000:]}")
    return rates, result


def tokens(text):
    """The worker's tokeniser (worker/src/tokenize.rs): lowercase words, one token per Han/Kana character."""
    out, word = [], ""
    for c in text:
        code = ord(c)
        cjk = (0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF
               or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x3134F)
        if cjk:
            if word:
                out.append(word)
                word = ""
            out.append(c)
        elif c.isalnum():
            word += c.lower()
        elif word:
            out.append(word)
            word = ""
    if word:
        out.append(word)
    return out


def encode_texts(texts, vocabulary_size, max_length):
    counts = {}
    for text in texts:
        for token in tokens(text):
            counts[token] = counts.get(token, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:vocabulary_size - 2]
    index = {token: i + 2 for i, (token, _) in enumerate(ranked)}
    encoded = [[index.get(t, 1) for t in tokens(text)[:max_length]] or [1] for text in texts]
    longest = max(len(e) for e in encoded)
    ids = np.zeros((len(encoded), longest), dtype=np.int64)
    for row, e in enumerate(encoded):
        ids[row, :len(e)] = e
    return torch.from_numpy(ids), torch.tensor([len(e) for e in encoded]), len(index) + 2


class Mlp(nn.Module):
    def __init__(self, inputs, hidden, outputs):
        super().__init__()
        layers, width = [], inputs
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.net = nn.Sequential(*layers, nn.Linear(width, outputs))

    def forward(self, x):
        return self.net(x)


class TextLstm(nn.Module):
    def __init__(self, vocabulary, embedding, hidden, outputs):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, embedding, padding_idx=0)
        self.lstm = nn.LSTM(embedding, hidden, batch_first=True)
        self.output = nn.Linear(hidden, outputs)

    def forward(self, ids):
        lengths = (ids != 0).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.output(h[-1])


class PaddedTextLstm(TextLstm):
    """The same model as the worker computes it for one direction: the LSTM over the padded batch,
    each text's state read at its last token (the same numbers as packing, in one fused call)."""

    def forward(self, ids):
        lengths = (ids != 0).sum(1).clamp(min=1)
        output, _ = self.lstm(self.embedding(ids))
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, output.shape[2])
        return self.output(output.gather(1, last).squeeze(1))


def train_torch(model, inputs, targets, lengths, epochs, batch_size, learning_rate, seed, device="cpu"):
    """The worker's loop: a seeded shuffle per epoch, Adam, cross-entropy; samples/s per epoch.
    On `cuda` the model and the data live on the GPU, and each epoch ends when its work did."""
    model, inputs, targets = model.to(device), inputs.to(device), targets.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    rates = []
    n = len(targets)
    for _ in range(epochs):
        started = time.perf_counter()
        order = torch.from_numpy(rng.permutation(n))
        on_device = order.to(device)
        model.train()
        for start in range(0, n, batch_size):
            rows = on_device[start:start + batch_size]
            x = inputs.index_select(0, rows)
            if lengths is not None:
                x = x[:, :int(lengths[order[start:start + batch_size]].max())]
            loss = nn.functional.cross_entropy(model(x), targets.index_select(0, rows))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device != "cpu":
            torch.cuda.synchronize()
        rates.append(n / (time.perf_counter() - started))
    return rates


def steady(rates):
    return sum(rates[1:]) / len(rates[1:]) if len(rates) > 1 else rates[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", required=True, help="the modelops-worker binary")
    parser.add_argument("--threads", type=int, default=1, help="libtorch threads on both sides")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run (the first is a warm-up)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where both train: cuda needs a GPU (the worker's libtorch with CUDA)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (prepared data, models)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: PyTorch sees no GPU")
    torch.set_num_threads(args.threads)
    work = tempfile.mkdtemp(prefix="modelops-bench-")
    print(f"device {args.device}, threads {args.threads}, batch size {args.batch_size}, epochs {args.epochs} (first left out), "
          f"torch {torch.__version__}, work folder {work}")

    cases = []
    digits = prepare(args.worker, work, "digits", f"{ROOT}/examples/data/digits.csv", {
        "source": {"configMap": {"name": "digits", "key": "digits.csv"}}, "format": "csv",
        "schema": {"label": "label"}, "preprocessing": {"normalize": "standard"},
        "split": {"train": 0.7, "validation": 0.15, "test": 0.15, "seed": 7}})
    mlp_spec = {"datasetRef": {"name": "digits"}, "task": "classification",
                "model": {"architecture": "mlp", "mlp": {"hiddenLayers": [64, 32]}},
                "hyperparameters": {"epochs": args.epochs, "batchSize": args.batch_size,
                                    "optimizer": {"learningRate": 0.002}, "seed": 1}}
    arrays = read_safetensors(f"{digits[0]}/data.safetensors")
    features = torch.from_numpy(arrays["train.features"].copy())
    labels = torch.from_numpy(arrays["train.labels"].copy())
    worker_rates, _ = train_worker(args.worker, work, digits, mlp_spec, args.threads, args.device)
    torch.manual_seed(1)
    torch_rates = train_torch(Mlp(64, [64, 32], 10), features, labels, None, args.epochs, args.batch_size, 0.002, 1,
                              args.device)
    cases.append(("mlp 64-32 on digits", worker_rates, torch_rates))

    text = prepare(args.worker, work, "news-or-blog", f"{ROOT}/examples/text/news-or-blog.jsonl", {
        "source": {"configMap": {"name": "text", "key": "news-or-blog.jsonl"}}, "format": "jsonl",
        "schema": {"label": "label", "text": "text"},
        "split": {"train": 0.7, "validation": 0.15, "test": 0.15, "seed": 42}})
    lstm_spec = {"datasetRef": {"name": "news-or-blog"}, "task": "classification",
                 "model": {"architecture": "textLstm",
                           "textLstm": {"embeddingDim": 128, "hiddenSize": 64, "maxLength": 64, "vocabularySize": 20000}},
                 "hyperparameters": {"epochs": args.epochs, "batchSize": args.batch_size,
                                     "optimizer": {"learningRate": 0.002}, "seed": 1}}
    with open(f"{text[0]}/text.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    train = [r for r in records if r["split"] == "train"]
    manifest = json.load(open(f"{text[0]}/dataset.json"))
    classes = manifest["classes"]
    ids, lengths, vocabulary = encode_texts([r["text"] for r in train], 20000, 64)
    labels = torch.tensor([classes.index(r["label"]) for r in train])
    worker_rates, _ = train_worker(args.worker, work, text, lstm_spec, args.threads, args.device)
    torch.manual_seed(1)
    model = TextLstm(vocabulary, 128, 64, len(classes))
    torch_rates = train_torch(model, ids, labels, lengths, args.epochs, args.batch_size, 0.002, 1, args.device)
    cases.append(("textLstm 128-64 on news-or-blog", worker_rates, torch_rates))
    torch.manual_seed(1)
    model = PaddedTextLstm(vocabulary, 128, 64, len(classes))
    torch_rates = train_torch(model, ids, labels, lengths, args.epochs, args.batch_size, 0.002, 1, args.device)
    cases.append(("  against PyTorch unpacked", worker_rates, torch_rates))

    print(f"{'case':34} {'worker samples/s':>17} {'pytorch samples/s':>18} {'worker/pytorch':>15}")
    for name, worker_rates, torch_rates in cases:
        w, t = steady(worker_rates), steady(torch_rates)
        print(f"{name:34} {w:17.0f} {t:18.0f} {w / t:15.2f}")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
