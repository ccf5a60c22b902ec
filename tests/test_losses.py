import numpy as np
import pytest
import tensorflow as tf

import numpy_reference as ref
from sfocus_tf.modeling import losses


def random_maps(rng, shape):
    """Normalised-looking maps with exact zeros, as after relu + max-normalisation."""
    maps = np.maximum(rng.normal(size=shape), 0)
    return maps / (maps.max(axis=(1, 2), keepdims=True) + 1e-8)


def degenerate_maps(shape):
    zeros = np.zeros(shape)
    hot = np.zeros(shape)
    hot[:, shape[1] // 2, shape[2] // 3] = 1.0
    return zeros, hot


def test_soft_mask_matches_numpy(rng):
    maps = random_maps(rng, (3, 5, 7))
    for sigma, omega in ((0.55, 100.0), (0.3, 10.0)):
        got = losses.soft_mask(maps, sigma, omega).numpy()
        np.testing.assert_allclose(got, ref.soft_mask(maps, sigma, omega), rtol=1e-5, atol=1e-6)
    assert got.shape == (3, 5, 7)


def test_separability_matches_numpy(rng):
    t, c = random_maps(rng, (4, 6, 6)), random_maps(rng, (4, 6, 6))
    m = ref.soft_mask(t)
    got = losses.separability_loss(target_map=t, confusing_map=c, mask=m).numpy()
    assert got.shape == (4,)
    np.testing.assert_allclose(got, ref.separability(t, c, m), rtol=1e-5, atol=1e-7)


def test_separability_bounds():
    hot = np.zeros((1, 4, 4))
    hot[0, 1, 1] = 1.0
    other = np.zeros((1, 4, 4))
    other[0, 2, 3] = 1.0
    ones = np.ones((1, 4, 4))
    assert losses.separability_loss(target_map=hot, confusing_map=hot, mask=ones).numpy()[0] == pytest.approx(1.0, abs=1e-6)
    assert losses.separability_loss(target_map=hot, confusing_map=other,
                                    mask=ones).numpy()[0] == 0.0


def test_consistency_matches_numpy_with_upsampling(rng):
    inner = random_maps(rng, (3, 16, 12))
    mask = ref.soft_mask(random_maps(rng, (3, 8, 6)))
    for clamp in (False, True):
        got = losses.consistency_loss(inner_target_map=inner, last_mask=mask, theta=0.8,
                                      clamp=clamp).numpy()
        np.testing.assert_allclose(got, ref.consistency(inner, mask, 0.8, clamp),
                                   rtol=1e-5, atol=1e-6)
    assert got.shape == (3,)


def test_consistency_clamp_only_cuts_negative_values(rng):
    inner = random_maps(rng, (2, 4, 4))
    ones = np.ones((2, 2, 2))  # everything inside the mask: loss = theta - 1 < 0
    np.testing.assert_allclose(losses.consistency_loss(inner_target_map=inner, last_mask=ones, theta=0.8).numpy(), -0.2, atol=1e-6)
    np.testing.assert_allclose(losses.consistency_loss(inner_target_map=inner, last_mask=ones, theta=0.8,
                                                       clamp=True).numpy(), 0.0)


@pytest.mark.parametrize("shape", [(2, 4, 4), (2, 1, 1), (2, 7, 3)])
def test_degenerate_maps_are_finite_and_correct(shape):
    zeros, hot = degenerate_maps(shape)
    for t, c in ((zeros, zeros), (zeros, hot), (hot, zeros), (hot, hot)):
        mask = losses.soft_mask(t).numpy()
        got = losses.separability_loss(target_map=t, confusing_map=c, mask=mask).numpy()
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, ref.separability(t, c, mask), atol=1e-6)
        got = losses.consistency_loss(inner_target_map=t, last_mask=mask, theta=0.8).numpy()
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, ref.consistency(t, mask, 0.8), atol=1e-6)
    # All-zero maps overlap nowhere; an all-zero inner map is nowhere inside the mask.
    np.testing.assert_array_equal(losses.attention_overlap(target_map=zeros, confusing_map=zeros).numpy(), 0.0)
    np.testing.assert_allclose(losses.consistency_loss(inner_target_map=zeros, last_mask=zeros,
                                                       theta=0.8).numpy(), 0.8)


def test_gradients_are_finite_on_zero_maps():
    zeros = tf.zeros((2, 4, 4))
    with tf.GradientTape() as tape:
        tape.watch(zeros)
        value = tf.reduce_sum(losses.separability_loss(
            target_map=zeros, confusing_map=zeros, mask=losses.soft_mask(zeros))
            + losses.consistency_loss(inner_target_map=zeros, last_mask=losses.soft_mask(zeros)))
    grad = tape.gradient(value, zeros).numpy()
    assert np.all(np.isfinite(grad))


def test_overlap_and_consistency_metrics(rng):
    t, c = random_maps(rng, (3, 6, 6)), random_maps(rng, (3, 6, 6))
    np.testing.assert_allclose(losses.attention_overlap(target_map=t, confusing_map=c).numpy(),
                               ref.separability(t, c, np.ones_like(t)), rtol=1e-5)
    mask = ref.soft_mask(t)
    np.testing.assert_allclose(losses.attention_consistency(inner_target_map=t, last_mask=mask).numpy(),
                               0.8 - ref.consistency(t, mask, 0.8), rtol=1e-5, atol=1e-6)


def test_black_white_matches_numpy(rng):
    blocks = rng.normal(size=(4, 3, 5, 4 * 2))  # 4 classes, 2 channels each
    single = [2, 0, 3, 1]
    got = losses.black_white_loss(class_blocks=blocks, target=np.eye(4)[single]).numpy()
    assert got.shape == (4,)
    np.testing.assert_allclose(got, ref.black_white(blocks, [[y] for y in single], 4),
                               rtol=1e-6)
    # Multi-label: positives against negatives; no positive or no negative adds 0.
    positives = [[0, 2], [], [0, 1, 2, 3], [3]]
    target = np.array([[float(c in p) for c in range(4)] for p in positives])
    got = losses.black_white_loss(class_blocks=blocks, target=target).numpy()
    np.testing.assert_allclose(got, ref.black_white(blocks, positives, 4), rtol=1e-6)
    assert got[1] == 0.0 and got[2] == 0.0


def test_black_white_gradient_matches_finite_differences(rng):
    blocks = tf.constant(rng.normal(size=(2, 2, 3, 3 * 2)), tf.float64)
    target = tf.constant(np.eye(3)[[1, 2]], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(blocks)
        value = tf.reduce_sum(losses.black_white_loss(class_blocks=blocks, target=target))
    analytic = tape.gradient(value, blocks).numpy()
    step, numeric = 1e-6, np.zeros(blocks.shape)
    for index in np.ndindex(*blocks.shape):
        shift = np.zeros(blocks.shape)
        shift[index] = step
        up, down = (tf.reduce_sum(losses.black_white_loss(class_blocks=blocks + s * shift,
                                                          target=target)) for s in (1, -1))
        numeric[index] = (up - down).numpy() / (2 * step)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_black_white_needs_whole_class_blocks():
    with pytest.raises(ValueError, match="C=4 class blocks"):
        losses.black_white_loss(class_blocks=np.zeros((1, 2, 2, 6)), target=np.eye(4)[:1])
    with pytest.raises(TypeError, match="positional"):
        losses.black_white_loss(np.zeros((1, 2, 2, 8)), np.eye(4)[:1])


def test_wrong_rank_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        losses.separability_loss(target_map=np.zeros((4, 4)), confusing_map=np.zeros((4, 4)),
                                 mask=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="inner_target_map"):
        losses.consistency_loss(inner_target_map=np.zeros((1, 4, 4, 1)),
                                last_mask=np.zeros((1, 2, 2)))


@pytest.mark.parametrize("call", [
    lambda m: losses.separability_loss(m, m, m),
    lambda m: losses.attention_overlap(m, m),
    lambda m: losses.consistency_loss(m, m),
    lambda m: losses.attention_consistency(m, m),
])
def test_maps_of_the_same_shape_are_passed_by_name(call):
    with pytest.raises(TypeError, match="positional"):
        call(np.zeros((1, 4, 4)))


def test_consistency_mask_of_the_map_reaches_one_anywhere():
    """A last-layer map of one position, at each of the 49 positions of a 7x7 map: an
    inner map equal to the mask scores consistency 1 with the resized-map mask (0.954 in
    the four corners, where a soft mask value of 0.78 remains), whereas with the resized
    mask the same score is 0.39 in the interior and 0.66 in a corner: below theta
    everywhere, and higher at the border."""
    new, old = np.zeros((7, 7)), np.zeros((7, 7))
    for row in range(7):
        for col in range(7):
            last = np.zeros((1, 7, 7))
            last[0, row, col] = 1.0
            mask = losses.consistency_mask(last, (14, 14)).numpy()
            assert mask.shape == (1, 14, 14)
            new[row, col] = losses.attention_consistency(inner_target_map=mask,
                                                         last_mask=mask).numpy()[0]
            resized = ref.bilinear_resize(ref.soft_mask(last), 14, 14)
            old[row, col] = losses.attention_consistency(
                inner_target_map=resized, last_mask=ref.soft_mask(last)).numpy()[0]
    assert new.min() > 0.95 and (new > 0.999).sum() == 45
    assert old.max() < 0.8 and old[3, 3] < 0.4 and old[0, 0] - old[3, 3] > 0.25


def test_consistency_mask_matches_numpy(rng):
    last = random_maps(rng, (3, 4, 5))
    resized = ref.bilinear_resize(last, 8, 10)
    resized = resized / (resized.max(axis=(1, 2), keepdims=True) + 1e-8)
    got = losses.consistency_mask(last, (8, 10), sigma=0.5, omega=20.0).numpy()
    np.testing.assert_allclose(got, ref.soft_mask(resized, 0.5, 20.0), rtol=1e-5, atol=1e-6)
