"""Every private Keras name keras_models.keras_compat relies on still exists, with the
signature it relies on; and no other module touches Keras' private API."""

import glob
import inspect
import os
import re

import keras
import pytest

from keras_models import keras_compat
from sfocus_tf.common import versions

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def test_the_installed_keras_is_a_checked_one():
    assert keras.__version__.startswith(keras_compat.CHECKED_KERAS)
    low, high = re.fullmatch(r">=(\d+\.\d+),<(\d+\.\d+)", versions.REQUIRED["keras"]).groups()
    assert keras_compat.CHECKED_KERAS == (f"{low}.",)  # the pin admits one checked line


@pytest.mark.parametrize("owner, method, parameters", keras_compat.OVERRIDDEN,
                         ids=lambda value: getattr(value, "__name__", str(value)))
def test_overridden_private_methods_keep_their_signature(owner, method, parameters):
    assert tuple(inspect.signature(getattr(owner, method)).parameters) == parameters


def test_private_attributes_read_and_written_exist():
    layer = keras.layers.BatchNormalization()
    inputs = keras.Input((4, 4, 3))
    outputs = layer(inputs)
    assert keras_compat.layer_of(outputs) is layer
    assert list(keras_compat.reduction_axes(layer)) == [0, 1, 2]
    from keras_models import BatchNorm  # creates its moving statistics itself
    ours = BatchNorm()
    ours(inputs)
    assert {w.path.split("/")[-1] for w in ours.non_trainable_weights} == {
        "moving_mean", "moving_variance"}
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    keras_compat.record_compile_argument(model, "jit_compile", "auto")
    assert model.get_compile_config()["jit_compile"] == "auto"


def test_the_trainer_names_the_multi_worker_patch_replaces_exist():
    from keras.src.backend.tensorflow import trainer
    assert callable(trainer.reduce_per_replica)
    assert callable(trainer._collective_all_reduce_multi_worker)
    assert tuple(inspect.signature(trainer.TensorFlowTrainer._maybe_symbolic_build)
                 .parameters) == ("self", "iterator", "data_batch")


PRIVATE_USE = re.compile(r"keras\.src|\._keras_history|\._compile_config|\._track_variable"
                         r"|\._reduction_axes")


def test_no_other_module_uses_private_keras_api():
    found = []
    for path in glob.glob(os.path.join(ROOT, "*", "**", "*.py"), recursive=True):
        relative = os.path.relpath(path, ROOT)
        if relative.startswith((".venv", "tests")) or relative.endswith("keras_compat.py"):
            continue
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if PRIVATE_USE.search(line):
                    found.append(f"{relative}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
