"""What a model server sees of an export: run in a clean process that imports only
TensorFlow, NumPy and tensorflow-serving-api, never the project.

    python contract_check.py VERSION_DIR CASES.npz
CASES.npz holds ``images`` (uint8), ``top_k``, ``class_names``, ``max_batch_size``
and the ``probabilities`` the project's model gives for them. Exits non-zero
(with an assertion message) on the first broken promise.
"""

import os
import sys

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

FORBIDDEN = ("sfocus_tf", "keras_models")


def check_signatures(loaded, channels, num_classes, top_k):
    assert set(loaded.signatures) == {"serving_default", "attention"}, list(loaded.signatures)
    for name, signature in loaded.signatures.items():
        (key, spec), = signature.structured_input_signature[1].items()
        assert key == "images" and spec.dtype == tf.uint8, (name, key, spec)
        assert spec.shape.as_list() == [None, None, None, channels], spec.shape
    outputs = loaded.signatures["serving_default"].structured_outputs
    assert outputs["probabilities"].shape.as_list() == [None, num_classes]
    assert outputs["classes"].dtype == tf.int32
    assert outputs["classes"].shape.as_list() == [None, top_k]
    assert outputs["class_names"].dtype == tf.string
    assert outputs["class_names"].shape.as_list() == [None, top_k]
    assert outputs["scores"].shape.as_list() == [None, top_k]
    attention = loaded.signatures["attention"].structured_outputs
    assert set(attention) == {"target_map", "confusing_map", "target_class", "confusing_class",
                              "target_class_name", "confusing_class_name",
                              "target_score", "confusing_score"}, set(attention)
    assert attention["target_class_name"].dtype == tf.string


def names_of(tensor):
    return np.vectorize(bytes.decode)(np.asarray(tensor))


def check_class_names(version_dir, cases):
    """Line i of the asset names class i; the signatures return the same names."""
    with open(os.path.join(version_dir, "assets", "class_names.txt"), encoding="utf-8") as f:
        assert f.read().splitlines() == cases["class_names"].tolist()


def answer(loaded, request):
    """What TF Serving does with a PredictRequest: run the named signature."""
    signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for key, value in signature(**inputs).items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    return response


def check_predictions(loaded, cases):
    images = cases["images"]
    served = loaded.signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(served["probabilities"].numpy(), cases["probabilities"],
                               rtol=1e-4, atol=1e-5)
    # Compared by probability, so near-ties may come in either order.
    expected = cases["probabilities"]
    top_k = served["classes"].shape[1]
    best = -np.sort(-expected, axis=-1)[:, :top_k]
    np.testing.assert_allclose(np.take_along_axis(expected, served["classes"].numpy(), -1),
                               best, atol=1e-5)
    np.testing.assert_allclose(served["scores"].numpy(), best, atol=1e-5)
    np.testing.assert_array_equal(names_of(served["class_names"]),
                                  cases["class_names"][served["classes"].numpy()])
    maps = loaded.signatures["attention"](images=tf.constant(images))
    assert maps["target_map"].shape == images.shape[:3], maps["target_map"].shape
    assert float(tf.reduce_max(maps["target_map"])) <= 1.0 + 1e-5
    for role, rank in (("target", 0), ("confusing", 1)):
        chosen = np.take_along_axis(expected, maps[f"{role}_class"].numpy()[:, None], -1)
        np.testing.assert_allclose(chosen[:, 0], -np.sort(-expected, -1)[:, rank], atol=1e-5)
        np.testing.assert_allclose(maps[f"{role}_score"].numpy(), chosen[:, 0], atol=1e-5)
        np.testing.assert_array_equal(names_of(maps[f"{role}_class_name"]),
                                      cases["class_names"][maps[f"{role}_class"].numpy()])


def check_predict_request(loaded, cases):
    for signature in ("serving_default", "attention"):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "model"
        request.model_spec.signature_name = signature
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(cases["images"]))
        response = answer(loaded, predict_pb2.PredictRequest.FromString(
            request.SerializeToString()))
        if signature == "serving_default":
            np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]),
                                       cases["probabilities"], rtol=1e-4, atol=1e-5)
            classes = tf.make_ndarray(response.outputs["classes"])
            np.testing.assert_array_equal(
                names_of(tf.make_ndarray(response.outputs["class_names"])),
                cases["class_names"][classes])
        else:
            target = tf.make_ndarray(response.outputs["target_class"])
            np.testing.assert_allclose(
                np.take_along_axis(cases["probabilities"], target[:, None], -1)[:, 0],
                cases["probabilities"].max(-1), atol=1e-5)


def batch_of(images, size):
    return np.resize(images, (size,) + images.shape[1:])


def check_bad_requests(loaded, cases):
    """Wrong requests fail with an error that says what an image must be, and a
    request over the limit with one that names the limit and the size received."""
    images, limit = cases["images"], int(cases["max_batch_size"])
    too_many = (f"request too large: at most {limit} images per request (max_batch_size); "
                f"this request holds] [{limit + 1}]")
    bad = {"float32 images": (images.astype(np.float32), "uint8"),
           "rank-3 images": (images[..., 0], "images must be uint8"),
           "rank-5 images": (images[None], "images must be uint8"),
           "wrong channel count": (np.repeat(images, 2, axis=-1), "images must be uint8"),
           "one image too many": (batch_of(images, limit + 1), too_many)}
    for signature in loaded.signatures.values():
        for what, (request, expected) in bad.items():
            try:
                signature(images=tf.constant(request))
            except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
                assert expected in str(error), (what, str(error)[:300])
            else:
                raise AssertionError(f"a request with {what} was accepted")
        full = signature(images=tf.constant(batch_of(images, limit)))  # the limit itself is fine
        assert all(value.shape[0] == limit for value in full.values())


def main(version_dir, cases_path):
    cases = dict(np.load(cases_path))
    loaded = tf.saved_model.load(version_dir)
    leaked = [m for m in sys.modules if m.split(".")[0] in FORBIDDEN]
    assert not leaked, f"the server process imported project modules: {leaked}"
    channels, num_classes = cases["images"].shape[-1], cases["probabilities"].shape[-1]
    check_signatures(loaded, channels, num_classes, int(cases["top_k"]))
    check_class_names(version_dir, cases)
    check_predictions(loaded, cases)
    check_predict_request(loaded, cases)
    check_bad_requests(loaded, cases)
    print("contract ok")


if __name__ == "__main__":
    main(*sys.argv[1:])
