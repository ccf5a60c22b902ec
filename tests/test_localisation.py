"""Localisation figures and their no-learning levels against hand-made cases and NumPy."""

import numpy as np
import pytest

from sfocus_tf.evaluation import localisation


def test_box_masks_use_pixel_centres():
    boxes = np.array([[[0.0, 0.0, 0.5, 0.25], [0, 0, 0, 0]]])  # second row is padding
    mask = localisation.box_masks(boxes, 4, 4)[0]
    expected = np.zeros((4, 4), bool)
    expected[:2, :1] = True
    np.testing.assert_array_equal(mask, expected)


def test_energy_and_pointing_game():
    maps = np.zeros((3, 4, 4))
    maps[0, 0, 0], maps[0, 3, 3] = 3.0, 1.0  # 3/4 of the energy inside, peak inside
    maps[1, 3, 3] = 1.0  # all outside
    masks = np.zeros((3, 4, 4), bool)
    masks[:, :2, :2] = True
    np.testing.assert_allclose(localisation.energy_inside(maps, masks), [0.75, 0.0, 0.0])
    # the third map is zero everywhere: argmax says pixel (0, 0), inside the box, but an
    # empty map points nowhere and scores a miss
    np.testing.assert_array_equal(localisation.pointing_game(maps, masks), [1.0, 0.0, 0.0])


def test_ink_maps_are_block_means_above_the_darkest_pixel(rng):
    images = rng.normal(size=(3, 8, 6, 2)).astype(np.float32) * 2 + 5
    ink = localisation.ink_maps(images, (4, 3))
    intensity = images.mean(axis=-1)
    above = intensity - intensity.min(axis=(1, 2), keepdims=True)
    expected = above.reshape(3, 4, 2, 3, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(ink, expected, rtol=1e-5, atol=1e-6)
    # an affine change of the pixels (another normalisation) scales the ink map only
    np.testing.assert_allclose(localisation.ink_maps(3 * images - 7, (4, 3)), 3 * ink,
                               rtol=1e-4, atol=1e-5)


def test_normalised_energy_is_zero_for_uniform_one_for_all_inside():
    area = np.array([0.25, 0.25, 0.5, 0.0, 1.0])
    energy = np.array([0.25, 1.0, 0.75, 0.0, 1.0])
    got = localisation.normalised_energy(energy, area)
    np.testing.assert_allclose(got[:3], [0.0, 1.0, 0.5])
    assert np.isnan(got[3:]).all()  # an empty box, a box that is the whole image


def test_a_uniform_map_scores_the_box_area():
    masks = localisation.box_masks(np.array([[[0.1, 0.2, 0.6, 0.9]], [[0, 0, 1, 0.5]]]), 10, 10)
    uniform = np.ones((2, 10, 10))
    np.testing.assert_allclose(localisation.energy_inside(uniform, masks),
                               localisation.box_area(masks))
    np.testing.assert_allclose(localisation.box_area(masks), [0.35, 0.5])


def test_split_boxes_keeps_the_target_rows_and_the_other_classes_rows():
    boxes = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) + 1
    labels = np.array([[4, 7, -1], [2, 2, 5]])
    own, other = localisation.split_boxes(boxes, labels, np.array([4, 2]))
    np.testing.assert_array_equal(own[0], [boxes[0, 0], np.zeros(4), np.zeros(4)])
    np.testing.assert_array_equal(other[0], [np.zeros(4), boxes[0, 1], np.zeros(4)])
    np.testing.assert_array_equal(own[1], [boxes[1, 0], boxes[1, 1], np.zeros(4)])
    np.testing.assert_array_equal(other[1], [np.zeros(4), np.zeros(4), boxes[1, 2]])


def test_confusing_is_distractor_and_its_chance():
    labels = np.array([[3, 5, -1], [3, 5, 6], [1, -1, -1], [0, 9, 9]])
    target = np.array([3, 3, 1, 0])
    confusing = np.array([5, 4, 2, 9])
    hit, chance = localisation.confusing_is_distractor(labels, target, confusing, 10)
    np.testing.assert_array_equal(hit[[0, 1, 3]], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(chance[[0, 1, 3]], [1 / 9, 2 / 9, 1 / 9])
    assert np.isnan(hit[2]) and np.isnan(chance[2])  # no other object: no figure


def test_totals_against_numpy_on_maps_at_the_image_resolution(rng):
    """Maps as large as the image are not resized, so every figure is a NumPy one."""
    def batch():
        images = rng.random((5, 6, 6, 1)).astype(np.float32)
        corners = rng.integers(0, 3, (5, 2, 2)) / 6
        boxes = np.concatenate([corners, corners + 0.5], axis=-1)
        boxes[0, 1] = 0.0  # no distractor in this image
        return {"target_last": rng.random((5, 6, 6)).astype(np.float32),
                "confusing_last": rng.random((5, 6, 6)).astype(np.float32),
                "ink_last": localisation.ink_maps(images, (6, 6)), "image_hw": (6, 6),
                "boxes": boxes[:, :1], "distractor_boxes": boxes[:, 1:],
                "confusing_is_distractor": rng.integers(0, 2, 5).astype(float),
                "confusing_is_distractor_chance": np.full(5, 1 / 9), "images": images}
    batches = [batch(), batch()]
    totals = localisation.LocalisationTotals()
    for one in batches:
        totals.add(one)
    got = totals.summary()
    whole = {key: np.concatenate([b[key] for b in batches]) for key in batches[0]
             if key != "image_hw"}
    own = localisation.box_masks(whole["boxes"], 6, 6)
    other = localisation.box_masks(whole["distractor_boxes"], 6, 6)
    ink = whole["images"][..., 0] - whole["images"].min(axis=(1, 2, 3))[:, None, None]

    def share(maps, masks):
        return (maps * masks).sum(axis=(1, 2)) / maps.sum(axis=(1, 2))

    def hits(maps, masks):
        flat = maps.reshape(len(maps), -1).argmax(axis=1)
        return masks.reshape(len(masks), -1)[np.arange(len(masks)), flat]

    area = own.mean(axis=(1, 2))
    present = other.any(axis=(1, 2))
    other_area = other.mean(axis=(1, 2))[present]
    confusing_energy = share(whole["confusing_last"], other)[present]
    expected = {
        "energy_inside_box": share(whole["target_last"], own).mean(),
        "box_area": area.mean(),
        "energy_inside_box_normalised": np.mean(
            (share(whole["target_last"], own) - area) / (1 - area)),
        "pointing_game": hits(whole["target_last"], own).mean(),
        "box_ink_energy": share(ink, own).mean(),
        "box_ink_pointing": hits(ink, own).mean(),
        "energy_in_distractor_box": share(whole["target_last"], other)[present].mean(),
        "confusing_energy_in_distractor_box": confusing_energy.mean(),
        "confusing_energy_in_distractor_box_normalised": np.mean(
            (confusing_energy - other_area) / (1 - other_area)),
        "confusing_pointing_at_distractor": hits(whole["confusing_last"], other)[present].mean(),
        "distractor_box_area": other_area.mean(),
        "distractor_ink_energy": share(ink, other)[present].mean(),
        "confusing_is_distractor": whole["confusing_is_distractor"].mean(),
        "confusing_is_distractor_chance": 1 / 9}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5), key
    assert set(got) == set(expected) | {"energy_in_distractor_box_normalised",
                                        "distractor_ink_pointing"}
