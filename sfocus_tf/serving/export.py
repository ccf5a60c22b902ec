"""SavedModel export for TensorFlow Serving.

Layout: ``EXPORT_DIR/<version>/`` with integer versions, as TF Serving expects.
Each version is written into a hidden temporary folder and published in one
atomic step (``sfocus_tf.serving.version_dirs``): a server watching ``EXPORT_DIR`` never
sees half a model, and an overwritten version is never missing.

Signatures (input ``images``: uint8 [B, H, W, C], any H and W, one size per
batch, B <= ``max_batch_size``; resizing and normalisation happen inside the
graph, with the same code as the evaluation pipeline):

- ``serving_default`` -> ``probabilities`` float32 [B, N], ``classes`` int32
  [B, k] (top k, best first), ``class_names`` string [B, k] (their names),
  ``scores`` float32 [B, k].
- ``attention`` -> ``target_map`` / ``confusing_map`` float32 [B, H, W] (the
  normalised last-layer map of the top class and of the runner-up, resized to the
  input size: standard Grad-CAM, the maps ``sfocus-eval`` and the overlays show, or
  with ``attention_reading="training"`` the maps of the model's training reading), ``target_class`` / ``confusing_class`` int32
  [B], ``target_class_name`` / ``confusing_class_name`` string [B],
  ``target_score`` / ``confusing_score`` float32 [B] (probabilities).
  For presets that centre-crop (ImageNet-like), the maps cover the central
  crop the model saw, stretched over the whole input.

The class names travel in the SavedModel as ``assets/class_names.txt`` (one per
line, line i = class id i), read into a lookup table by the graph.
"""

from __future__ import annotations

import os
import tempfile

import keras
import tensorflow as tf

from sfocus_tf import data
from sfocus_tf.common import run_lock
from sfocus_tf.configs import run_dir
from sfocus_tf.modeling.gradcam import compute_attention, shown_reading
from sfocus_tf.serving.version_dirs import next_version, staged_version

__all__ = ["CLASS_NAMES_ASSET", "checked_images", "export_run", "export_saved_model",
           "next_version", "serving_functions"]

CLASS_NAMES_ASSET = "class_names.txt"


def _probabilities(model, logits):
    return tf.sigmoid(logits) if model.sfocus_config.multi_label else tf.nn.softmax(logits)


def checked_images(images, channels: int, max_batch_size: int):
    """A request's images, with run-time checks: a served graph gets whatever the
    client sends, whatever the signature's declared shape (a 2-channel image would
    otherwise run as a grouped convolution and return garbage, and a huge batch
    would exhaust the server's memory)."""
    expected = f"images must be uint8 [batch, height, width, {channels}]"
    shape = tf.shape(images)
    # Counted from a data-dependent op: the declared rank would constant-fold tf.rank.
    rank = tf.shape(tf.where(shape >= 0))[0]
    rank_check = tf.debugging.assert_equal(rank, 4, message=f"{expected}; wrong rank")
    with tf.control_dependencies([rank_check]):  # shape[0] and shape[-1] need a rank
        checks = [
            tf.debugging.assert_equal(shape[-1], channels,
                                      message=f"{expected}; wrong number of channels"),
            tf.debugging.Assert(shape[0] <= max_batch_size, [
                f"request too large: at most {max_batch_size} images per request "
                "(max_batch_size); this request holds", shape[0]]),
        ]
    with tf.control_dependencies(checks):
        return tf.identity(images)


def class_name_table(path: str, num_classes: int) -> tf.lookup.StaticHashTable:
    """Class id -> name, read from ``path`` (saved as an asset of the SavedModel)."""
    initializer = tf.lookup.TextFileInitializer(
        path, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
        tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, vocab_size=num_classes)
    return tf.lookup.StaticHashTable(initializer, default_value="")


def _write_class_names(folder: str, class_names, num_classes: int) -> str:
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for a model with {num_classes} classes")
    bad = [name for name in names if not name or "\n" in name or "\r" in name]
    if bad:
        raise ValueError(f"class names must be non-empty single lines; got {bad[:3]}")
    path = os.path.join(folder, CLASS_NAMES_ASSET)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(names) + "\n")
    return path


def serving_functions(model, preset, names: tf.lookup.StaticHashTable, *, top_k: int = 5,
                      max_batch_size: int = 64, attention_reading: str = "gradcam") -> dict:
    """The two signature functions, for ``tf.function`` tracing; ``names`` maps class
    ids to names (``class_name_table``); ``attention_reading``: ``gradcam.SHOWN_READINGS``."""
    top_k = min(top_k, model.num_classes)
    reading = shown_reading(attention_reading)
    channels = preset.image_size[-1]

    def model_input(images):
        return data.preprocess_for_serving(checked_images(images, channels, max_batch_size),
                                           preset)

    def name_of(classes):
        return names.lookup(tf.cast(classes, tf.int64))

    def serving_default(images):
        probabilities = _probabilities(model, model(model_input(images)))
        scores, classes = tf.math.top_k(probabilities, k=top_k)
        return {"probabilities": probabilities, "classes": classes,
                "class_names": name_of(classes), "scores": scores}

    def attention(images):
        out = compute_attention(model, model_input(images),
                                maps=("target_last", "confusing_last"), reading=reading)
        probabilities = _probabilities(model, out["logits"])
        size = tf.shape(images)[1:3]
        resize = lambda m: tf.image.resize(m[..., None], size)[..., 0]  # noqa: E731
        pick = lambda c: tf.gather(probabilities, c, batch_dims=1)  # noqa: E731
        result = {}
        for role in ("target", "confusing"):
            classes = out[f"{role}_class"]
            result.update({f"{role}_map": resize(out[f"{role}_last"]),
                           f"{role}_class": classes, f"{role}_class_name": name_of(classes),
                           f"{role}_score": pick(classes)})
        return result

    return {"serving_default": serving_default, "attention": attention}


def export_saved_model(model, preset, export_dir: str, class_names, *,
                       version: int | None = None,
                       overwrite: bool = False, top_k: int = 5,
                       max_batch_size: int = 64, attention_reading: str = "gradcam") -> str:
    """Writes ``export_dir/<version>`` atomically; returns its path.

    ``preset`` is the training run's ``DatasetPreset`` (its image_size and
    normalisation go into the graph); ``class_names[i]`` names class id i.
    ``version`` defaults to the next one. An existing version is an error unless
    ``overwrite``; it is then swapped for the new one in one step (refused
    where the system cannot swap folders atomically). Requests of more than
    ``max_batch_size`` images are rejected by the graph. ``attention_reading``: what
    the attention signature serves, standard Grad-CAM (``"gradcam"``) or the model's
    training reading (``"training"``).
    """
    shown_reading(attention_reading)  # a bad value fails before anything is written
    with run_lock.exclusive(export_dir, "a model directory"):
        return _export(model, preset, export_dir, class_names, version=version,
                       overwrite=overwrite, top_k=top_k, max_batch_size=max_batch_size,
                       attention_reading=attention_reading)


def _export(model, preset, export_dir, class_names, *, version, overwrite, top_k,
            max_batch_size, attention_reading) -> str:
    version = next_version(export_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer; got {version}")
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be a positive integer; got {max_batch_size}")
    with tempfile.TemporaryDirectory() as scratch, \
            staged_version(export_dir, version, overwrite) as staged:
        names = class_name_table(_write_class_names(scratch, class_names, model.num_classes),
                                 model.num_classes)
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.track(names)  # its file becomes assets/class_names.txt
        spec = tf.TensorSpec([None, None, None, preset.image_size[-1]], tf.uint8,
                             name="images")
        for name, fn in serving_functions(model, preset, names, top_k=top_k,
                                          max_batch_size=max_batch_size,
                                          attention_reading=attention_reading).items():
            archive.add_endpoint(name, tf.function(fn), input_signature=[spec])
        archive.write_out(staged, verbose=False)
    return os.path.join(export_dir, str(version))


def export_run(workdir: str, export_dir: str, **options) -> str:
    """``sfocus-export``: the finished training run in ``workdir`` as a version of
    ``export_dir`` (``export_saved_model``, which takes ``options``); returns its path.
    The run's image size, normalisation and class names go into the graph."""
    config, model = run_dir.load_run(workdir)
    preset = config.preset()  # the run's one look-up of its dataset, passed down
    class_names = data.class_names(preset, data_dir=config.data_dir)
    return export_saved_model(model, preset, export_dir, class_names, **options)
