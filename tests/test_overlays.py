"""The overlay pictures: hatched empty maps, captions with the model's probabilities,
column titles and a colour scale on every page, pages of few rows."""

import numpy as np

from sfocus_tf.evaluation import overlay_layout, overlays

NAMES = ["a", "b", "c"]


def grid_of(maps, examples=2, **kwargs):
    images = np.zeros((examples, 6, 6, 1), np.float32)  # black: only the maps and marks show
    captions = [f"example {index}" for index in range(examples)]
    return overlays.overlay_grid(images, maps, captions=captions, scale=16, **kwargs)


def test_an_all_zero_map_is_hatched_not_blank():
    maps = {"target_last": np.ones((2, 3, 3)), "confusing_inner": np.zeros((2, 3, 3))}
    maps["confusing_inner"][1, 1, 1] = 1.0  # the second example's map is not empty
    grid = grid_of(maps)
    panel, size, pad = 96, overlay_layout.text_size(96), overlay_layout.PAD
    titles, row = 2 * size + 3 * pad, size + 2 * pad + panel
    assert grid.shape[1] == 3 * panel

    def hatch_pixels(example, column):
        top = titles + example * row + size + 2 * pad
        cell = grid[top:top + panel, column * panel + 1:(column + 1) * panel - 1]
        return int(np.all(cell == overlay_layout.HATCH, axis=-1).sum())

    assert hatch_pixels(0, 2) > panel  # example 0: its confusing inner map is all zero
    assert hatch_pixels(1, 2) == 0 and hatch_pixels(0, 1) == 0


def test_the_colour_scale_runs_from_the_colour_of_0_to_that_of_1():
    grid = grid_of({"target_last": np.ones((2, 3, 3))})
    scale = grid[-2 * (overlay_layout.text_size(96) + 2 * overlay_layout.PAD):]
    for value in (0.0, 1.0):
        colour = np.round(overlays.colorize(np.array(value)) * 255).astype(np.uint8)
        assert np.any(np.all(np.abs(scale.astype(int) - colour) <= 1, axis=-1)), value


def test_captions_name_both_classes_their_probabilities_and_the_prediction():
    shares = np.array([[0.2, 0.1, 0.7], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    lines = overlays.captions(NAMES, [0, 0, 0], [2, 1, 1], shares)
    assert lines[0] == "true a 20% · confusing c 70% (predicted)"
    assert lines[1] == "true a 60% (predicted) · confusing b 30%"
    assert lines[2] == "true a 20% · confusing b 30% · predicted c 50%"  # multi-label


def test_pages_hold_few_rows_each_under_the_same_titles():
    maps = {key: np.random.default_rng(0).random((5, 3, 3)) for key in overlays.PANELS}
    images = np.random.default_rng(1).random((5, 6, 6, 1)).astype(np.float32)
    captions = [f"example {index}" for index in range(5)]
    whole = overlays.overlay_grid(images, maps, captions=captions)
    pages = overlays.overlay_pages(images, maps, captions=captions, rows=2)
    assert [page.shape[1] for page in pages] == [whole.shape[1]] * 3
    assert whole.shape[1] == 5 * 6 * round(overlays.PANEL_WIDTH / 6)
    row = pages[0].shape[0] - pages[2].shape[0]  # two rows against one
    assert pages[1].shape == pages[0].shape and whole.shape[0] == pages[2].shape[0] + 4 * row
    titles = 2 * overlay_layout.text_size(whole.shape[1] // 5) + 3 * overlay_layout.PAD
    for page in pages:
        np.testing.assert_array_equal(page[:titles], whole[:titles])
    np.testing.assert_array_equal(pages[2][titles:], whole[titles + 4 * row:])


def test_boxes_are_outlined_on_every_panel_in_their_kind_colour():
    maps = {"target_last": np.zeros((2, 3, 3))}  # zero maps: hatched, boxes still drawn
    boxes = np.array([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.2, 0.2, 0.3, 0.3]]] * 2)
    kinds = np.array([[1, 2, 0]] * 2)  # the third is padding: not drawn
    grid = grid_of(maps, boxes=(boxes, kinds))
    panel, size, pad = 96, overlay_layout.text_size(96), overlay_layout.PAD
    top = 2 * size + 3 * pad + size + 2 * pad  # first example's panels
    own, other = overlay_layout.BOX_COLOURS[1], overlay_layout.BOX_COLOURS[2]
    for column in (0, 1):
        left = column * panel
        assert tuple(grid[top, left + 20]) == own  # own box's top edge
        assert tuple(grid[top + 47, left + 20]) == own  # its bottom edge
        assert tuple(grid[top + 70, left + 48]) == other  # the other box's left edge
        assert tuple(grid[top + 25, left + 25]) != own  # inside, not filled
    cell = grid[top + 19:top + 29, 19:29]  # around the padding box
    assert not np.all(cell == own, axis=-1).any() and not np.all(cell == other, axis=-1).any()


def test_box_kinds_from_the_dataset_formats():
    single = overlays.box_kinds(np.array([[0.1, 0.2, 0.3, 0.4]]), np.array([3]))
    np.testing.assert_allclose(single[0], [[[0.1, 0.2, 0.3, 0.4]]])
    np.testing.assert_array_equal(single[1], [[1]])
    boxes = {"boxes": np.zeros((2, 3, 4)), "labels": np.array([[4, 7, -1], [2, 2, 5]])}
    np.testing.assert_array_equal(overlays.box_kinds(boxes, np.array([4, 2]))[1],
                                  [[1, 2, 0], [1, 1, 2]])
