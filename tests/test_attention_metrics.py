"""The attention metrics that sharpening cannot game, their chance levels, the empty-map
rule, the fixed consistency mask and the faithfulness check, each against a hand
computation."""

import math

import numpy as np
import pytest
import tensorflow as tf

import numpy_reference as ref
from sfocus_tf import SFocusConfig, SFocusModel, attention_maps, losses
from sfocus_tf.evaluation import attention_metrics as am
from sfocus_tf.evaluation import evaluate
from tiny import tiny_backbone


def bump(centre, sigma=2.0, size=7):
    rows, cols = np.mgrid[0:size, 0:size]
    return np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * sigma ** 2))


def hand_top(values, share):
    """Indices (row-major) of the ceil(share * n) largest values above 0, earlier index
    first on a tie, by a plain sort of (-value, index)."""
    flat = list(np.ravel(values))
    count = math.ceil(round(share * len(flat), 9))
    ranked = sorted(range(len(flat)), key=lambda i: (-flat[i], i))[:count]
    return {i for i in ranked if flat[i] > 0}


def hand_dice(a, b):
    return 2 * len(a & b) / (len(a) + len(b)) if a or b else 0.0


def hand_peak_distance(a, b):
    (ra, ca), (rb, cb) = (np.unravel_index(int(np.argmax(m)), m.shape) for m in (a, b))
    return math.hypot(ra - rb, ca - cb) / math.hypot(a.shape[0] - 1, a.shape[1] - 1)


def test_squaring_two_bumps_lowers_the_soft_overlap_but_not_top20_or_peak_distance():
    """The point of issue 20: the soft overlap rewards sharpening, the new figures don't."""
    target, confusing = bump((2, 2))[None], bump((3, 4))[None]
    soft = float(losses.attention_overlap(target_map=target, confusing_map=confusing)[0])
    soft_squared = float(losses.attention_overlap(target_map=target ** 2,
                                                  confusing_map=confusing ** 2)[0])
    assert soft == pytest.approx(0.638, abs=1e-3)
    assert soft_squared == pytest.approx(0.447, abs=1e-3)  # "better separated"
    assert am.soft_overlap(target, confusing)[0] == pytest.approx(soft, rel=1e-6)
    expected_top = hand_dice(hand_top(target, 0.2), hand_top(confusing, 0.2))
    expected_distance = math.hypot(1, 2) / math.hypot(6, 6)
    for power in (1, 2, 3):
        t, c = target ** power, confusing ** power
        assert am.top_overlap(t, c)[0] == pytest.approx(expected_top)
        assert am.peak_distance(t, c)[0] == pytest.approx(expected_distance)
    assert 0 < expected_top < 1


def test_top_positions_break_ties_by_position_and_never_take_zeros():
    maps = np.array([[[0.5, 1.0, 0.5, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0, 0.0]],
                     np.zeros((2, 5))])
    two = am.top_positions(maps, 0.2)  # 2 of 10 positions
    assert set(np.flatnonzero(two[0])) == {1, 0} and not two[1].any()
    half = am.top_positions(maps, 0.5)  # 5 wanted, only 4 are above 0
    assert set(np.flatnonzero(half[0])) == {0, 1, 2, 5}
    assert am.top_positions(np.arange(1.0, 31.0).reshape(1, 5, 6), 0.1).sum() == 3  # not 4
    assert am.dice(two[:1], half[:1])[0] == pytest.approx(2 * 2 / (2 + 4))
    assert am.dice(two[1:], two[1:])[0] == 0.0  # two empty sets


def test_chance_levels_pair_each_true_map_with_the_next_images_confusing_map(rng):
    target = rng.random((3, 4, 5)) * (rng.random((3, 4, 5)) > 0.3)
    confusing = rng.random((3, 4, 5))
    stats = am.map_statistics(target, confusing)
    for i in range(3):
        j = (i + 1) % 3
        assert stats["top20_overlap"][i] == pytest.approx(
            hand_dice(hand_top(target[i], 0.2), hand_top(confusing[i], 0.2)))
        assert stats["top20_overlap_chance"][i] == pytest.approx(
            hand_dice(hand_top(target[i], 0.2), hand_top(confusing[j], 0.2)))
        assert stats["peak_distance"][i] == pytest.approx(
            hand_peak_distance(target[i], confusing[i]))
        assert stats["peak_distance_chance"][i] == pytest.approx(
            hand_peak_distance(target[i], confusing[j]))
        assert stats["overlap_chance"][i] == pytest.approx(
            ref.separability(target[i:i + 1], confusing[j:j + 1], 1.0)[0])
    alone = am.map_statistics(target[:1], confusing[:1])  # no other image to pair with
    assert np.isnan(alone["top20_overlap_chance"]).all()
    assert not np.isnan(alone["top20_overlap"]).any()


def test_a_map_is_empty_below_a_thousandth_of_the_other_maps_peak():
    peak = tf.constant([1e-4, 1e-2, 0.0, 0.0, 5.0])
    other = tf.constant([1.0, 1.0, 1.0, 0.0, 5.0])
    np.testing.assert_array_equal(evaluate.relatively_empty(peak, other), [1, 0, 1, 1, 0])
    np.testing.assert_array_equal(evaluate.relatively_empty(other, peak), [0, 0, 0, 1, 0])


def tiny_model(**config):
    model = SFocusModel(tiny_backbone((12, 12, 3), 6), 6, SFocusConfig(**config))
    model.compile("sgd", jit_compile=False)
    return model


def test_raw_peaks_are_the_maxima_of_the_unnormalised_maps(rng):
    model = tiny_model()
    images = rng.normal(size=(4, 12, 12, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3])
    maps = attention_maps(model, images, labels)
    raw = attention_maps(model, images, labels, reading={"normalize": "none"})
    for name in ("target_last", "confusing_last", "target_inner", "confusing_inner"):
        np.testing.assert_allclose(maps[f"{name}_peak"], raw[name].numpy().max(axis=(1, 2)),
                                   rtol=1e-5)


def test_consistency_is_scored_with_the_standard_mask_whatever_the_models_own(rng):
    images = rng.normal(size=(4, 12, 12, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3])
    standard, own = tiny_model(), tiny_model(sigma=0.2, omega=5.0)
    own.set_weights(standard.get_weights())
    a = evaluate.attention_statistics(standard, images, labels)
    b = evaluate.attention_statistics(own, images, labels)
    np.testing.assert_allclose(a["consistency"], b["consistency"], atol=1e-6)
    last, inner = a["target_last"].numpy(), a["target_inner"].numpy()
    upsampled = ref.bilinear_resize(last, 12, 12)
    mask = ref.soft_mask(upsampled / (upsampled.max(axis=(1, 2), keepdims=True) + ref.EPS))
    expected = (inner * mask).sum(axis=(1, 2)) / (inner.sum(axis=(1, 2)) + ref.EPS)
    np.testing.assert_allclose(a["consistency"], expected, rtol=1e-4, atol=1e-6)


def test_erase_upsamples_the_positions_by_nearest_neighbour():
    marked = np.zeros((1, 3, 3), bool)
    marked[0, 1, 2] = True
    erased = am.erase(np.ones((1, 7, 7, 2), np.float32), marked)
    expected = np.ones((7, 7))
    expected[2:5, 5:7] = 0.0  # pixel r's position: floor((r + 0.5) * 3 / 7)
    np.testing.assert_array_equal(erased[0, ..., 0], expected)
    np.testing.assert_array_equal(erased[0, ..., 1], expected)


def test_random_positions_keep_each_examples_count(rng):
    marked = np.zeros((3, 4, 4), bool)
    marked[0, :2, :2], marked[1, 0, 0] = True, True
    drawn = am.random_positions_like(marked, np.random.default_rng(5))
    np.testing.assert_array_equal(drawn.sum(axis=(1, 2)), [4, 1, 0])
    again = am.random_positions_like(marked, np.random.default_rng(5))
    np.testing.assert_array_equal(drawn, again)


def test_class_probability_by_hand():
    logits = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    softmax = np.exp(logits[0]) / np.exp(logits[0]).sum()
    got = am.class_probability(logits, np.array([1, -1]), multi_label=False)
    assert got[0] == pytest.approx(softmax[1]) and np.isnan(got[1])
    sigmoid = am.class_probability(logits, np.array([0, 2]), multi_label=True)
    np.testing.assert_allclose(sigmoid, [1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-3))])


def test_faithfulness_drop_by_hand(rng):
    """Erase each image's top 4 of 36 last-layer positions (2x2 pixels each) and re-run
    the model: the drop of the true class's softmax probability."""
    model = tiny_model()
    images = rng.normal(size=(4, 12, 12, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3])
    arrays = evaluate.batch_arrays(model, (tf.constant(images), tf.constant(labels)),
                                   np.random.default_rng(7))
    target_last = arrays["target_last"]
    erased = images.copy()
    for b in range(4):
        for index in hand_top(target_last[b], 0.1):
            row, col = divmod(index, 6)
            erased[b, 2 * row:2 * row + 2, 2 * col:2 * col + 2] = 0.0

    def true_probability(x):
        logits = model(x, training=False).numpy().astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True))[np.arange(4), labels]

    before = true_probability(images)
    assert (before - true_probability(erased) != 0).any()  # the check is not vacuous
    np.testing.assert_allclose(arrays["faithfulness_drop"], before - true_probability(erased),
                               rtol=1e-4, atol=1e-6)
    random = am.random_positions_like(am.top_positions(target_last, 0.1),
                                      np.random.default_rng(7))
    np.testing.assert_allclose(arrays["faithfulness_drop_random"],
                               before - true_probability(am.erase(images, random)),
                               rtol=1e-4, atol=1e-6)
