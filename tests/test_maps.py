import numpy as np
import pytest
import tensorflow as tf

import numpy_reference as ref
from sfocus_tf.modeling import maps as maps_lib


def test_resize_matches_hand_written_bilinear_and_tf_image(rng):
    maps = rng.random((2, 5, 3))
    for size in ((10, 6), (7, 4), (5, 3), (3, 2), (16, 16)):
        got = maps_lib.resize_maps(maps, size).numpy()
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, ref.bilinear_resize(maps, *size), rtol=1e-12)
        tf_image = tf.image.resize(maps[..., None], size, method="bilinear")[..., 0]
        np.testing.assert_allclose(got, tf_image.numpy(), rtol=1e-5, atol=1e-6)


def test_maps_of_another_rank_are_a_clear_error():
    with pytest.raises(ValueError, match=r"mask must be a batch of maps of shape \[B, H, W\]"):
        maps_lib.as_maps(np.zeros((4, 4)), "mask")
    assert maps_lib.as_maps(np.zeros((1, 2, 2), np.int32), "maps").dtype == tf.float32
