"""One full SFOCUS step (second order, all three losses) on every registered
backbone at the input size it is meant for. Slow on CPU: ``make test-slow``."""

import keras
import numpy as np
import pytest

import keras_models
from sfocus_tf import SFocusConfig, SFocusModel

pytestmark = pytest.mark.slow

MOBILENET = {"application": "MobileNetV2", "inner_layer": "block_13_expand_relu"}
CASES = {
    "resnet8": ((32, 32, 3), {}), "resnet14": ((32, 32, 3), {}),
    "resnet20": ((32, 32, 3), {}), "resnet32": ((32, 32, 3), {}),
    "resnet44": ((32, 32, 3), {}), "resnet56": ((32, 32, 3), {}),
    "resnet110": ((32, 32, 3), {}), "resnet18_cifar": ((32, 32, 3), {}),
    "resnet18": ((224, 224, 3), {}), "resnet50": ((224, 224, 3), {}),
    "vgg16": ((224, 224, 3), {}), "vgg19": ((224, 224, 3), {}),
    "application": ((224, 224, 3), MOBILENET),
}


def test_every_registered_backbone_has_a_case():
    assert sorted(CASES) == sorted(keras_models.names())


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_sfocus_step_at_full_size(name):
    input_shape, kwargs = CASES[name]
    num_classes, batch = 20, 2
    backbone = keras_models.get(name, input_shape, num_classes, **kwargs)
    config = SFocusConfig(second_order=True, as_layers="both")
    model = SFocusModel(backbone, num_classes, config)
    model.compile(keras.optimizers.SGD(0.01), jit_compile=False)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (batch,) + input_shape).astype("float32")
    labels = rng.integers(0, num_classes, batch)
    before = [w.numpy().copy() for w in model.trainable_weights]

    logs = model.fit(images, labels, batch_size=batch, epochs=1, verbose=0).history

    for term in ("loss", "ce", "as_last", "as_inner", "ac"):
        assert np.isfinite(logs[term][0]), (name, term, logs[term])
    changed = [not np.array_equal(b, w.numpy())
               for b, w in zip(before, model.trainable_weights)]
    assert all(changed), f"{name}: {changed.count(False)} weights did not move"
