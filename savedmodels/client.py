"""A small client for an SFOCUS model served by TensorFlow Serving, over REST or gRPC.

    python savedmodels/client.py --server=http://localhost:8501 \
        --model=fashion_mnist_demo --signature=attention shirt.png [more.png ...]
    python savedmodels/client.py --grpc=localhost:8500 shirt.png    # gRPC instead of REST
    python savedmodels/client.py --dry_run image.png     # print the REST request only

Sends raw uint8 pixels (the SavedModel resizes and normalises inside its graph);
all images of one request must have the same size. REST needs numpy and Pillow
only; --grpc also needs tensorflow-serving-api (``pip install
tensorflow-serving-api``, which brings TensorFlow and grpcio), imported only then.
When the server refuses a request (for example more images than the model's
max_batch_size), the client prints the server's error text and exits with status 1.
"""

import argparse
import json
import sys
import urllib.error
import urllib.request

import numpy as np
from PIL import Image


class ServerError(Exception):
    """The server answered with an error; the text is the server's."""


def load_images(paths, channels):
    mode = "L" if channels == 1 else "RGB"
    images = [np.asarray(Image.open(p).convert(mode), dtype=np.uint8) for p in paths]
    if len({image.shape for image in images}) != 1:
        sys.exit("client: all images of one request must have the same size")
    batch = np.stack(images)
    return batch[..., None] if channels == 1 else batch


def request_body(images, signature, columnar):
    if columnar:  # {"inputs": {"images": [B, H, W, C]}} -> {"outputs": {...}}
        return {"signature_name": signature, "inputs": {"images": images.tolist()}}
    # Row format: one entry per image -> {"predictions": [{...}, ...]}
    return {"signature_name": signature, "instances": images.tolist()}


def _error_text(error: urllib.error.HTTPError) -> str:
    """TF Serving's REST API answers errors as {"error": "..."} with a 4xx/5xx status."""
    body = error.read().decode("utf-8", "replace")
    try:
        return f"HTTP {error.code}: {json.loads(body)['error']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {error.code} {error.reason}: {body.strip()[:2000]}"


def post(server, model, body, timeout=60):
    """The REST predict call; returns rows (one dict of outputs per image)."""
    url = f"{server.rstrip('/')}/v1/models/{model}:predict"
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            result = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise ServerError(_error_text(error)) from None
    if "predictions" in result:
        return result["predictions"]
    return columns_to_rows(result["outputs"])


def columns_to_rows(outputs):
    """{name: [B, ...]} -> [{name: value of image i}, ...]."""
    return [dict(zip(outputs, values)) for values in zip(*outputs.values())]


def _import_grpc():
    try:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError as error:
        sys.exit(f"client: --grpc needs tensorflow-serving-api ({error}); install it with "
                 "`pip install tensorflow-serving-api` or use REST (--server)")
    return grpc, tf, predict_pb2, prediction_service_pb2_grpc


def grpc_predict(target, model, signature, images, timeout=60):
    """The gRPC PredictionService.Predict call; returns rows like ``post``."""
    grpc, tf, predict_pb2, prediction_service_pb2_grpc = _import_grpc()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    # gRPC's default 4 MB answer limit is below a batch of attention maps.
    options = [("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ServerError(f"{error.code().name}: {error.details()}") from None
    outputs = {}
    for name, tensor in response.outputs.items():
        value = tf.make_ndarray(tensor)
        if value.dtype == object:  # DT_STRING comes back as bytes
            value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(value)
        outputs[name] = value.tolist()
    return columns_to_rows(outputs)


def describe(row, signature):
    """One line per image; names are shown where the model carries them."""
    def named(role):
        name, label = row.get(f"{role}_class_name"), f"class {row[f'{role}_class']}"
        return f"{f'{name} ({label})' if name else label}, p={row[f'{role}_score']:.3f}"

    if signature == "serving_default":
        names = row.get("class_names") or [str(c) for c in row["classes"]]
        return ", ".join(f"{name} ({c}) {s:.4f}"
                         for name, c, s in zip(names, row["classes"], row["scores"]))
    return (f"looks at {named('target')}; confuses it with {named('confusing')}; "
            f"map {np.asarray(row['target_map']).shape}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG)")
    parser.add_argument("--server", default="http://localhost:8501", help="REST address")
    parser.add_argument("--grpc", metavar="HOST:PORT",
                        help="use gRPC at this address (TF Serving's --port, 8500)")
    parser.add_argument("--model", default="fashion_mnist_demo")
    parser.add_argument("--signature", default="serving_default",
                        choices=["serving_default", "attention"])
    parser.add_argument("--channels", type=int, default=1, choices=[1, 3])
    parser.add_argument("--columnar", action="store_true", help='REST: send {"inputs": ...}')
    parser.add_argument("--timeout", type=float, default=60, help="seconds")
    parser.add_argument("--dry_run", action="store_true", help="print the REST request only")
    args = parser.parse_args(argv)
    images = load_images(args.images, args.channels)
    if args.dry_run:
        print(json.dumps(request_body(images, args.signature, args.columnar))[:2000])
        return
    where = args.grpc or args.server
    try:
        if args.grpc:
            rows = grpc_predict(args.grpc, args.model, args.signature, images, args.timeout)
        else:
            rows = post(args.server, args.model,
                        request_body(images, args.signature, args.columnar), args.timeout)
    except ServerError as error:
        sys.exit(f"client: {where}: server error: {error}")
    except OSError as error:  # no connection, timeouts
        sys.exit(f"client: {where}: {error}")
    for path, row in zip(args.images, rows):
        print(f"{path}: {describe(row, args.signature)}")


if __name__ == "__main__":
    main()
