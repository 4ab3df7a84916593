#!/usr/bin/env python3
"""Labelled traffic for the demo: sends digits rows to a ModelDeployment's Service at a steady
rate, returns each true label as feedback, and prints once a second how many answers each
revision gave. Loopback/ClusterIP only; stops after --seconds or when --until-file exists.

    scripts/traffic.py --url http://10.96.0.42 --model digits --rate 20 --seconds 120
"""
import argparse, csv, json, os, sys, time, urllib.request, urllib.error
from collections import Counter


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--model", default="digits")
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../examples/data/digits.csv"))
    p.add_argument("--rate", type=float, default=20)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--until-file")
    args = p.parse_args()
    rows = [([float(v) for v in r[:-1]], r[-1]) for r in list(csv.reader(open(args.data)))[1:]]
    started = time.monotonic()
    second, counts, failures, i = int(started), Counter(), 0, 0
    next_at = started
    while time.monotonic() - started < args.seconds and not (args.until_file and os.path.exists(args.until_file)):
        features, label = rows[(i * 31) % len(rows)]
        i += 1
        try:
            answer = post(f"{args.url}/v2/models/{args.model}/infer",
                          {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": features}]})
            counts[f"r{answer['model_version']}"] += 1
            ids = [o for o in answer["outputs"] if o["name"] == "feedback_id"]
            if ids:
                post(f"{args.url}/v2/models/{args.model}/feedback", {"id": ids[0]["data"][0], "label": label})
        except (urllib.error.URLError, OSError, KeyError, ValueError) as e:
            failures += 1
        if int(time.monotonic()) != second:
            second = int(time.monotonic())
            shown = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
            print(f"  traffic {time.strftime('%H:%M:%S')}: answers by revision {shown or '-'}"
                  f"{f', {failures} failed' if failures else ''}", flush=True)
            counts = Counter()
        next_at += 1 / args.rate
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    sys.exit(main())
