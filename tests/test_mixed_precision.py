import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_models
from sfocus_tf import SFocusModel, attention_maps
from sfocus_tf.modeling.gradcam import compute_attention
from sfocus_tf.training.build import dtype_policy


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_steps_are_finite_and_attention_is_float32(rng, policy):
    images = rng.normal(size=(8, 16, 16, 1)).astype("float32")
    labels = rng.integers(0, 4, 8).astype("int32")
    with dtype_policy(policy):
        model = SFocusModel(keras_models.get("resnet8", (16, 16, 1), 4), 4)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    assert keras.config.dtype_policy().name == "float32"  # restored
    compute = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}[policy]
    inner, last = model.features(images, training=True)
    assert inner.dtype == compute and last.dtype == compute
    is_scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert is_scaled == (policy == "mixed_float16")  # loss scaling for float16 only
    history = model.fit(images, labels, batch_size=4, epochs=2, verbose=0).history
    for name in ("loss", "ce", "as_last", "as_inner", "ac"):
        assert np.isfinite(history[name]).all(), (name, history[name])
    out = compute_attention(model, tf.constant(images), labels, training=True)
    for name in ("logits", "target_last", "confusing_last", "target_inner", "confusing_inner"):
        assert out[name].dtype == tf.float32, name
    maps = attention_maps(model, images, labels)
    assert maps["target_inner"].dtype == tf.float32
    assert np.isfinite(maps["target_inner"].numpy()).all()
    assert maps["target_inner"].numpy().max() > 0.5  # a real map, not flushed to zero
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_float16_attention_close_to_float32(rng):
    """The float16 maps (with the score scaling) agree with float32 ones on the same
    weights, up to float16 rounding."""
    images = rng.normal(size=(4, 16, 16, 1)).astype("float32")
    labels = np.array([0, 1, 2, 3])
    reference = SFocusModel(keras_models.get("resnet8", (16, 16, 1), 4), 4)
    with dtype_policy("mixed_float16"):
        half = SFocusModel(keras_models.get("resnet8", (16, 16, 1), 4), 4)
    half.set_weights(reference.get_weights())
    full_maps = attention_maps(reference, images, labels)
    half_maps = attention_maps(half, images, labels)
    for name in ("target_inner", "target_last"):
        np.testing.assert_allclose(half_maps[name], full_maps[name], atol=0.05)
