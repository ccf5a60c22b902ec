"""Stand-ins for TensorFlow Serving's REST and gRPC front ends (no model server binary
is available to the tests): each answers a predict call by running the named signature
of a loaded SavedModel, and turns a graph error into the error TF Serving sends back
(REST: status 400 with {"error": "..."}; gRPC: INVALID_ARGUMENT with the text)."""

import contextlib
import http.server
import json
import threading
from concurrent import futures

import numpy as np
import tensorflow as tf


def _jsonable(value: np.ndarray):
    if value.dtype == object:  # DT_STRING
        return np.vectorize(bytes.decode, otypes=[object])(value).tolist()
    return value.tolist()


def run_signature(loaded, name, images):
    """(outputs as NumPy arrays, None) or (None, the error text)."""
    try:
        outputs = loaded.signatures[name or "serving_default"](images=tf.constant(images))
    except tf.errors.InvalidArgumentError as error:
        return None, error.message
    return {key: value.numpy() for key, value in outputs.items()}, None


def rest_answer(loaded, body):
    """(status, JSON answer) for a TF Serving REST :predict body."""
    columnar = "inputs" in body
    images = body["inputs"]["images"] if columnar else body["instances"]
    outputs, error = run_signature(loaded, body.get("signature_name"),
                                   np.asarray(images, dtype=np.uint8))
    if error:
        return 400, {"error": error}
    columns = {key: _jsonable(value) for key, value in outputs.items()}
    if columnar:
        return 200, {"outputs": columns}
    return 200, {"predictions": [{key: column[i] for key, column in columns.items()}
                                 for i in range(len(images))]}


@contextlib.contextmanager
def rest_server(loaded):
    """Yields ``http://host:port`` of a server answering ``/v1/models/*:predict``."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the http.server name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, answer = rest_answer(loaded, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def grpc_server(loaded):
    """Yields ``host:port`` of a PredictionService answering Predict."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (the service's name)
            outputs, error = run_signature(loaded, request.model_spec.signature_name,
                                           tf.make_ndarray(request.inputs["images"]))
            if error:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, error)
            response = predict_pb2.PredictResponse(model_spec=request.model_spec)
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)
