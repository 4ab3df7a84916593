"""The Open Inference Protocol's own clients against a modelops ModelDeployment, as black boxes.

Run by tests/clients.rs with the project's venv (scripts/env.sh `ensure_clients` installs
tritonclient[http,grpc] and kserve from PyPI). One client per process: tritonclient.grpc and
kserve both register the protocol's `inference` protobuf package, which one process cannot hold
twice.

    python tests/clients/oip.py CLIENT < request.json > labels.json

CLIENT is triton-http, triton-grpc, kserve-rest or kserve-grpc. The request names the Service
({"http": "IP:80", "grpc": "IP:8081"}), the model, its version, the input's kind ("table" with
"rows" of numbers, or "text" with "rows" of strings) and "batch" (rows per request). The
client's health, readiness and metadata calls are checked here; the answer is, per way of
sending (json, binary, raw...), the predicted label of every row, in order:
{"json": [...], "binary": [...]}. Any failure exits non-zero with the client's own error.
"""

import asyncio
import json
import sys

import numpy as np


def batches(rows, size):
    for start in range(0, len(rows), size):
        yield start, rows[start : start + size]


def as_array(request, rows):
    """The rows as the numpy array a client sends: FP32 [n, features], or BYTES [n]."""
    if request["kind"] == "table":
        return np.array(rows, dtype=np.float32), "FP32"
    return np.array([t.encode("utf-8") for t in rows], dtype=np.object_), "BYTES"


def text_of(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def check_metadata(request, metadata):
    """Metadata as dict (HTTP) with name, versions, inputs and outputs."""
    check(metadata["name"] == request["model"], f"metadata names {metadata['name']}")
    check(request["version"] in metadata["versions"], f"versions {metadata['versions']}")
    names = [o["name"] for o in metadata["outputs"]]
    check("label" in names and "feedback_id" in names, f"outputs {names}")
    shape = [int(d) for d in metadata["inputs"][0]["shape"]]
    check(shape[0] == -1, f"input shape {shape}")


def check_triton_health(client, request, **as_json):
    """Liveness, readiness (of the model and its version) and metadata through a tritonclient;
    the gRPC client answers metadata as JSON with as_json=True."""
    model, version = request["model"], request["version"]
    check(client.is_server_live(), "server not live")
    check(client.is_server_ready(), "server not ready")
    check(client.is_model_ready(model), "model not ready")
    check(client.is_model_ready(model, version), "model version not ready")
    check_metadata(request, client.get_model_metadata(model, **as_json))
    check(client.get_server_metadata(**as_json)["name"] == "modelops-worker", "server metadata")


def triton_http(request):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(request["http"])
    check_triton_health(client, request)
    model = request["model"]
    answers = {"json": [], "binary": [], "binary_in_json_out": []}
    for start, rows in batches(request["rows"], request["batch"]):
        array, datatype = as_array(request, rows)
        for way in answers:
            tensor = triton.InferInput("input-0", list(array.shape), datatype)
            tensor.set_data_from_numpy(array, binary_data=way != "json")
            outputs = None
            if way != "binary":
                outputs = [
                    triton.InferRequestedOutput("label", binary_data=False),
                    triton.InferRequestedOutput("probabilities", binary_data=False),
                ]
            request_id = f"{way}-{start}"
            result = client.infer(model, [tensor], outputs=outputs, request_id=request_id)
            check(result.get_response()["id"] == request_id, f"id {result.get_response()}")
            labels = [text_of(v) for v in result.as_numpy("label").reshape(-1)]
            probabilities = result.as_numpy("probabilities")
            check(probabilities.shape[0] == len(rows), f"probabilities {probabilities.shape}")
            check(np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4), "probabilities sum")
            answers[way].extend(labels)
    return answers


def triton_grpc(request):
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(request["grpc"])
    check_triton_health(client, request, as_json=True)
    model = request["model"]
    answers = {"raw": [], "label_only": []}
    for start, rows in batches(request["rows"], request["batch"]):
        array, datatype = as_array(request, rows)
        for way in answers:
            tensor = triton.InferInput("input-0", list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            outputs = [triton.InferRequestedOutput("label")] if way == "label_only" else None
            request_id = f"{way}-{start}"
            result = client.infer(model, [tensor], outputs=outputs, request_id=request_id)
            check(result.get_response().id == request_id, "request id")
            labels = [text_of(v) for v in result.as_numpy("label").reshape(-1)]
            if way == "raw":
                ids = result.as_numpy("feedback_id").reshape(-1)
                check(len(ids) == len(rows) and all(len(i) > 0 for i in ids), "feedback ids")
            answers[way].extend(labels)
    return answers


def kserve_infer_request(request, rows, start, binary):
    from kserve import InferInput, InferRequest

    array, datatype = as_array(request, rows)
    tensor = InferInput("input-0", list(array.shape), datatype)
    if binary:
        tensor.set_data_from_numpy(array, binary_data=True)
    elif datatype == "BYTES":
        tensor.data = list(rows)
    else:
        tensor.data = array.reshape(-1).tolist()
    return InferRequest(
        model_name=request["model"], infer_inputs=[tensor], request_id=f"k-{start}"
    )


def kserve_labels(response):
    for output in response.outputs:
        if output.name == "label":
            return [text_of(v) for v in np.asarray(output.as_numpy()).reshape(-1)]
    raise AssertionError(f"no label output in {response}")


async def kserve_rest(request):
    from kserve import InferenceRESTClient, RESTConfig

    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    base = f"http://{request['http']}"
    try:
        check(await client.is_server_live(base), "server not live")
        check(await client.is_server_ready(base), "server not ready")
        check(await client.is_model_ready(base, request["model"]), "model not ready")
        answers = {"json": [], "binary": []}
        for start, rows in batches(request["rows"], request["batch"]):
            for way in answers:
                infer = kserve_infer_request(request, rows, start, way == "binary")
                response = await client.infer(base, infer, model_name=request["model"])
                check(response.id == f"k-{start}", f"request id {response.id}")
                answers[way].extend(kserve_labels(response))
        return answers
    finally:
        await client.close()


async def kserve_grpc(request):
    from kserve import InferenceGRPCClient

    client = InferenceGRPCClient(request["grpc"])
    try:
        check(await client.is_server_ready(), "server not ready")
        check(await client.is_model_ready(request["model"]), "model not ready")
        answers = {"contents": []}
        for start, rows in batches(request["rows"], request["batch"]):
            infer = kserve_infer_request(request, rows, start, False)
            response = await client.infer(infer)
            check(response.id == f"k-{start}", f"request id {response.id}")
            answers["contents"].extend(kserve_labels(response))
        return answers
    finally:
        await client.close()


def main():
    client = sys.argv[1]
    request = json.load(sys.stdin)
    if client == "triton-http":
        answers = triton_http(request)
    elif client == "triton-grpc":
        answers = triton_grpc(request)
    elif client == "kserve-rest":
        answers = asyncio.run(kserve_rest(request))
    elif client == "kserve-grpc":
        answers = asyncio.run(kserve_grpc(request))
    else:
        sys.exit(f"unknown client {client!r}: triton-http, triton-grpc, kserve-rest or kserve-grpc")
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
