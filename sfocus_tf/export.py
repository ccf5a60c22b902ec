"""SavedModel export for TensorFlow Serving.

Layout: ``EXPORT_DIR/<version>/`` with integer versions, as TF Serving expects.
Each version is written into a temporary directory and renamed into place, so
a server watching ``EXPORT_DIR`` never sees half a model.

Signatures (input ``images``: uint8 [B, H, W, C], any H and W, one size per
batch; resizing and normalisation happen inside the graph, with the same code
as the evaluation pipeline):

- ``serving_default`` -> ``probabilities`` float32 [B, N], ``classes`` int32
  [B, k] (top k, best first), ``scores`` float32 [B, k].
- ``attention`` -> ``target_map`` / ``confusing_map`` float32 [B, H, W] (the
  normalised last-layer Grad-CAM of the top class and of the runner-up,
  resized to the input size), ``target_class`` / ``confusing_class`` int32
  [B], ``target_score`` / ``confusing_score`` float32 [B] (probabilities).
  For presets that centre-crop (ImageNet-like), the maps cover the central
  crop the model saw, stretched over the whole input.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import keras
import tensorflow as tf

from sfocus_tf import data
from sfocus_tf.attention import compute_attention


def next_version(export_dir: str) -> int:
    """One above the highest integer version present (1 for a new directory)."""
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(name) for name in os.listdir(export_dir) if name.isdigit()]
    return max(versions, default=0) + 1


def _probabilities(model, logits):
    return tf.sigmoid(logits) if model.sfocus_config.multi_label else tf.nn.softmax(logits)


def checked_images(images, channels: int):
    """A request's images, with run-time checks: a served graph gets whatever the
    client sends, whatever the signature's declared shape (a 2-channel image would
    otherwise run as a grouped convolution and return garbage)."""
    expected = f"images must be uint8 [batch, height, width, {channels}]"
    shape = tf.shape(images)
    # Counted from a data-dependent op: the declared rank would constant-fold tf.rank.
    rank = tf.shape(tf.where(shape >= 0))[0]
    checks = [
        tf.debugging.assert_equal(rank, 4, message=f"{expected}; wrong rank"),
        tf.debugging.assert_equal(shape[-1], channels,
                                  message=f"{expected}; wrong number of channels"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(images)


def serving_functions(model, preset, top_k: int = 5) -> dict:
    """The two signature functions, for ``tf.function`` tracing."""
    top_k = min(top_k, model.num_classes)
    channels = preset.image_size[-1]

    def model_input(images):
        return data.preprocess_for_serving(checked_images(images, channels), preset)

    def serving_default(images):
        probabilities = _probabilities(model, model(model_input(images)))
        scores, classes = tf.math.top_k(probabilities, k=top_k)
        return {"probabilities": probabilities, "classes": classes, "scores": scores}

    def attention(images):
        out = compute_attention(model, model_input(images),
                                maps=("target_last", "confusing_last"))
        probabilities = _probabilities(model, out["logits"])
        size = tf.shape(images)[1:3]
        resize = lambda m: tf.image.resize(m[..., None], size)[..., 0]  # noqa: E731
        pick = lambda c: tf.gather(probabilities, c, batch_dims=1)  # noqa: E731
        return {"target_map": resize(out["target_last"]),
                "confusing_map": resize(out["confusing_last"]),
                "target_class": out["target_class"], "confusing_class": out["confusing_class"],
                "target_score": pick(out["target_class"]),
                "confusing_score": pick(out["confusing_class"])}

    return {"serving_default": serving_default, "attention": attention}


def export_saved_model(model, preset, export_dir: str, version: int | None = None,
                       overwrite: bool = False, top_k: int = 5) -> str:
    """Writes ``export_dir/<version>`` atomically; returns its path.

    ``preset`` is the training run's ``DatasetPreset`` (its image_size and
    normalisation go into the graph). An existing version is an error unless
    ``overwrite``.
    """
    version = next_version(export_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer; got {version}")
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to "
                              "replace it, or another version")
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, None, None, preset.image_size[-1]], tf.uint8, name="images")
    for name, fn in serving_functions(model, preset, top_k).items():
        archive.add_endpoint(name, tf.function(fn), input_signature=[spec])
    os.makedirs(export_dir, exist_ok=True)
    # A hidden, non-integer name: TF Serving ignores it until the rename.
    temporary = tempfile.mkdtemp(dir=export_dir, prefix=".tmp-")
    try:
        archive.write_out(temporary, verbose=False)
        os.chmod(temporary, 0o755)  # mkdtemp's 0700 would hide it from a server's user
        retired = None
        if os.path.exists(target):  # overwrite: swap, then drop the old version
            retired = tempfile.mkdtemp(dir=export_dir, prefix=".retired-")
            os.rename(target, os.path.join(retired, "old"))
        os.rename(temporary, target)
        if retired:
            shutil.rmtree(retired)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return target
