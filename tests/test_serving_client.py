"""savedmodels/client.py against stand-ins of TF Serving's REST and gRPC front ends
that run a real exported SavedModel (tests/serving/fake_servers.py)."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sfocus_tf import SFocusModel, data
from sfocus_tf.serving.export import export_saved_model
from tiny import tiny_backbone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT = os.path.join(ROOT, "savedmodels", "client.py")
MAX_BATCH_SIZE = 3
NAMES = data.class_names("fashion_mnist")


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client = load_module(CLIENT, "serving_client")
fake_servers = load_module(os.path.join(ROOT, "tests", "serving", "fake_servers.py"),
                           "fake_servers")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny Fashion-MNIST-shaped model, exported and loaded, and four PNG files."""
    root = tmp_path_factory.mktemp("client")
    preset = data.get_preset("fashion_mnist")
    model = SFocusModel(tiny_backbone((28, 28, 1)), 10)
    path = export_saved_model(model, preset, str(root / "model"), NAMES,
                              max_batch_size=MAX_BATCH_SIZE)
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    files = []
    for i, image in enumerate(images):
        files.append(str(root / f"image{i}.png"))
        Image.fromarray(image).save(files[-1])
    return {"loaded": tf.saved_model.load(path), "images": images[..., None], "files": files}


def expected(served, signature, count):
    outputs = served["loaded"].signatures[signature](
        images=tf.constant(served["images"][:count]))
    return {key: value.numpy() for key, value in outputs.items()}


def names(row):
    return [name.decode() for name in row]


@pytest.mark.parametrize("columnar", [False, True])
def test_rest_client_prints_names_beside_classes(served, capsys, columnar):
    with fake_servers.rest_server(served["loaded"]) as address:
        client.main(["--server", address, *served["files"][:2]]
                    + (["--columnar"] if columnar else []))
    lines = capsys.readouterr().out.splitlines()
    want = expected(served, "serving_default", 2)
    assert len(lines) == 2
    for line, path, classes, row in zip(lines, served["files"], want["classes"],
                                        want["class_names"]):
        top = f"{names(row)[0]} ({classes[0]})"
        assert line.startswith(f"{path}: {top} "), (line, top)
        assert [part.rsplit(" (", 1)[0] for part in line.split(": ", 1)[1].split(", ")] == \
            names(row)


def test_rest_client_prints_the_server_error_and_exits_1(served):
    with fake_servers.rest_server(served["loaded"]) as address:
        # The client needs numpy and Pillow only: run it as a user would.
        result = subprocess.run([sys.executable, CLIENT, "--server", address,
                                 *served["files"]], capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert f"client: {address}: server error: HTTP 400: " in result.stderr
    assert (f"request too large: at most {MAX_BATCH_SIZE} images per request "
            f"(max_batch_size); this request holds] [{len(served['files'])}]") in result.stderr


def test_grpc_client_prints_the_attention_answer(served, capsys):
    with fake_servers.grpc_server(served["loaded"]) as address:
        client.main(["--grpc", address, "--signature", "attention", *served["files"][:2]])
    lines = capsys.readouterr().out.splitlines()
    want = expected(served, "attention", 2)
    for i, line in enumerate(lines):
        target = f"{want['target_class_name'][i].decode()} (class {want['target_class'][i]})"
        confusing = (f"{want['confusing_class_name'][i].decode()} "
                     f"(class {want['confusing_class'][i]})")
        assert f"looks at {target}, p={want['target_score'][i]:.3f}" in line, line
        assert f"confuses it with {confusing}" in line, line
        assert line.endswith("map (28, 28)"), line
    assert len(lines) == 2


def test_grpc_client_prints_the_server_error(served):
    with fake_servers.grpc_server(served["loaded"]) as address:
        with pytest.raises(SystemExit) as stopped:
            client.main(["--grpc", address, *served["files"]])
    message = str(stopped.value.code)  # sys.exit(text): exit status 1, text on stderr
    assert message.startswith(f"client: {address}: server error: INVALID_ARGUMENT: "), message
    assert f"at most {MAX_BATCH_SIZE} images per request" in message, message


def test_grpc_without_serving_api_says_what_to_install(served, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)  # import fails
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
    with pytest.raises(SystemExit, match="pip install tensorflow-serving-api"):
        client.main(["--grpc", "127.0.0.1:1", served["files"][0]])
