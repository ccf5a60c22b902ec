"""Where the maps fall against ground-truth boxes, beside what no learning scores.

Every localisation figure comes with two levels that a map reaches without learning:

- the *uniform* map (one value everywhere): its energy in a box is the box's share of
  the image, and a point drawn uniformly falls in the box as often (``*_area``);
- the *ink* map: the image's own intensity above its darkest pixel, at the map's
  resolution and upsampled as every map is (``*_ink_*``). On garments on a black
  canvas it finds the garments without knowing any class.

A figure shows learning only above both. Energy is also given normalised,
``(energy - area) / (1 - area)``: 0 for the uniform map, 1 when all of it is in the box.

Boxes of the image's target class are its *own*; boxes of its other classes (the duo
canvases' distractor, VOC's other objects) are *distractor* boxes. The confusing class's
map should sit on the distractor and the true class's map should not.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from sfocus_tf.modeling.maps import resize_maps

DESCRIPTIONS = {
    "energy_inside_box": "share of the true-class map's energy inside the object's box",
    "energy_inside_box_normalised": "energy_inside_box as (energy - area) / (1 - area): 0 "
                                    "for a uniform map, 1 for all energy in the box",
    "pointing_game": "share of true-class maps whose peak falls inside the box",
    "box_area": "mean share of the image inside the object's box (a uniform map's energy "
                "there and its pointing game: the no-learning level)",
    "box_ink_energy": "share of the ink map's energy inside the object's box (the image's "
                      "intensity at the map's resolution: a no-learning level)",
    "box_ink_pointing": "pointing game of the ink map (a no-learning level)",
    "energy_in_distractor_box": "share of the true-class map's energy inside the boxes of "
                                "the image's other classes (lower: not distracted)",
    "energy_in_distractor_box_normalised": "energy_in_distractor_box as (energy - area) "
                                           "/ (1 - area) (below 0: less than uniform)",
    "confusing_energy_in_distractor_box": "share of the confusing-class map's energy "
                                          "inside the boxes of the image's other classes",
    "confusing_energy_in_distractor_box_normalised": "confusing_energy_in_distractor_box "
                                                     "as (energy - area) / (1 - area)",
    "confusing_pointing_at_distractor": "share of confusing-class maps whose peak falls "
                                        "inside a box of another class",
    "distractor_box_area": "mean share of the image inside the other classes' boxes (the "
                           "uniform map's level)",
    "distractor_ink_energy": "share of the ink map's energy inside the other classes' "
                             "boxes (a no-learning level)",
    "distractor_ink_pointing": "pointing game of the ink map at the other classes' boxes",
    "confusing_is_distractor": "share of images whose confusing class is the class of "
                               "another object in the image",
    "confusing_is_distractor_chance": "the same share for a confusing class drawn at "
                                      "random among the other classes",
}
# The figures of maps that learnt nothing (``evaluation.no_learning_levels``).
NO_LEARNING_LEVELS = ("box_area", "box_ink_energy", "box_ink_pointing", "distractor_box_area",
                      "distractor_ink_energy", "distractor_ink_pointing",
                      "confusing_is_distractor_chance")


@functools.lru_cache(maxsize=None)
def _resizer(source_hw, size, method: str):
    # Traced: eager tf.einsum makes a namedtuple class per call, garbage that only a
    # full collection frees, so memory would creep up with the number of batches. One
    # function per source size, whose signature keeps that size static (the bilinear
    # resize needs it) and lets the batch size vary.
    if method == "bilinear":
        resize = lambda maps: resize_maps(maps, size)  # noqa: E731
    else:
        resize = lambda maps: tf.image.resize(maps[..., None], size,  # noqa: E731
                                              method=method)[..., 0]
    return tf.function(resize, input_signature=[tf.TensorSpec([None, *source_hw], tf.float32)])


def _resized(maps: np.ndarray, size, method: str) -> np.ndarray:
    maps = np.asarray(maps, np.float32)
    return _resizer(maps.shape[1:3], tuple(int(n) for n in size), method)(maps).numpy()


def upsample(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of [B, h, w] maps to the image size: what the box metrics read
    and the overlays show."""
    return _resized(maps, (height, width), "bilinear")


def ink_maps(images: np.ndarray, map_hw) -> np.ndarray:
    """[B, H, W, C] images -> [B, h, w]: the channel mean above each image's darkest
    pixel, averaged over each map cell (an area resize). Any affine normalisation of the
    pixels leaves it the same up to a scale, which no figure here depends on."""
    intensity = np.asarray(images, np.float32).mean(axis=-1)
    return _resized(intensity - intensity.min(axis=(1, 2), keepdims=True), map_hw, "area")


def box_masks(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """[B, K, 4] normalised [ymin, xmin, ymax, xmax] -> [B, H, W] union masks, a pixel
    counting as inside when its centre is. All-zero boxes (padding) cover nothing."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1, 4)
    rows = (np.arange(height) + 0.5) / height
    cols = (np.arange(width) + 0.5) / width
    inside_rows = (rows[None, None, :] >= boxes[..., 0:1]) & (rows[None, None, :] <= boxes[..., 2:3])
    inside_cols = (cols[None, None, :] >= boxes[..., 1:2]) & (cols[None, None, :] <= boxes[..., 3:4])
    return (inside_rows[..., :, None] & inside_cols[..., None, :]).any(axis=1)


def energy_inside(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each map's total attention that falls inside its mask (0 for an
    all-zero map)."""
    total = maps.sum(axis=(1, 2))
    inside = (maps * masks).sum(axis=(1, 2))
    return np.divide(inside, total, out=np.zeros_like(total, dtype=np.float64),
                     where=total > 0)


def pointing_game(maps: np.ndarray, masks: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """1 where the map's maximum lies inside the mask, else 0. A map that is zero
    everywhere points nowhere: a miss (argmax would say pixel (0, 0))."""
    flat_maps = maps.reshape(len(maps), -1)
    hits = masks.reshape(len(masks), -1)[np.arange(len(masks)), flat_maps.argmax(axis=1)]
    return (hits & (flat_maps.max(axis=1) > tolerance)).astype(np.float64)


def box_area(masks: np.ndarray) -> np.ndarray:
    """Share of each image's pixels inside its mask."""
    return masks.mean(axis=(1, 2), dtype=np.float64)


def normalised_energy(energy: np.ndarray, area: np.ndarray) -> np.ndarray:
    """``(energy - area) / (1 - area)``; NaN (left out of means) where the box is empty
    or the whole image, which leaves nothing to compare."""
    energy, area = np.asarray(energy, np.float64), np.asarray(area, np.float64)
    defined = (area > 0) & (area < 1)
    return np.divide(energy - area, 1 - area, out=np.full_like(energy, np.nan),
                     where=defined)


def split_boxes(boxes: np.ndarray, box_labels: np.ndarray, target_class: np.ndarray):
    """[B, K, 4] boxes with [B, K] labels (-1: padding) -> (own, distractor) boxes, each
    [B, K, 4] with the other rows zeroed: those of the target class, those of any other."""
    same = box_labels == target_class[:, None]
    other = (box_labels >= 0) & ~same
    return boxes * same[..., None], boxes * other[..., None]


def confusing_is_distractor(box_labels: np.ndarray, target_class: np.ndarray,
                            confusing_class: np.ndarray, num_classes: int):
    """Per image: whether the confusing class is another object's class in the image,
    and how often a class drawn uniformly among the ``num_classes - 1`` others would
    be (NaN for an image with no other class)."""
    other = (box_labels >= 0) & (box_labels != target_class[:, None])
    hit = (other & (box_labels == confusing_class[:, None])).any(axis=1)
    classes_present = ((box_labels[..., None] == np.arange(num_classes))
                       & other[..., None]).any(axis=1)
    distinct = classes_present.sum(axis=1)
    present = distinct > 0
    chance = np.where(present, distinct / max(num_classes - 1, 1), np.nan)
    return np.where(present, hit.astype(np.float64), np.nan), chance


class LocalisationTotals:
    """Running sums of the figures above, NaN values left out of each mean."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def _add(self, name: str, values) -> None:
        values = np.asarray(values, np.float64)
        self.sums[name] = self.sums.get(name, 0.0) + float(np.nansum(values))
        self.counts[name] = self.counts.get(name, 0) + int(np.count_nonzero(~np.isnan(values)))

    def add(self, arrays: dict) -> None:
        """One batch: ``target_last``, ``ink_last`` ([B, h, w]), ``image_hw``, ``boxes``
        (own, [B, K, 4]) and, where the images have other classes' boxes,
        ``distractor_boxes``, ``confusing_last``, ``confusing_is_distractor`` and its
        ``confusing_is_distractor_chance``."""
        height, width = arrays["image_hw"]
        shown = functools.partial(upsample, height=height, width=width)
        target, ink = shown(arrays["target_last"]), shown(arrays["ink_last"])
        own = box_masks(arrays["boxes"], height, width)
        area = box_area(own)
        energy = energy_inside(target, own)
        for name, values in (("energy_inside_box", energy), ("box_area", area),
                             ("energy_inside_box_normalised", normalised_energy(energy, area)),
                             ("pointing_game", pointing_game(target, own)),
                             ("box_ink_energy", energy_inside(ink, own)),
                             ("box_ink_pointing", pointing_game(ink, own))):
            self._add(name, values)
        if "distractor_boxes" in arrays:
            self._add_distractors(arrays, shown, target, ink)

    def _add_distractors(self, arrays, shown, target, ink) -> None:
        height, width = arrays["image_hw"]
        masks = box_masks(arrays["distractor_boxes"], height, width)
        present = masks.any(axis=(1, 2))
        area = box_area(masks)
        confusing = shown(arrays["confusing_last"])
        target_energy, confusing_energy = energy_inside(target, masks), energy_inside(confusing, masks)
        for name, values in (
                ("energy_in_distractor_box", target_energy),
                ("energy_in_distractor_box_normalised", normalised_energy(target_energy, area)),
                ("confusing_energy_in_distractor_box", confusing_energy),
                ("confusing_energy_in_distractor_box_normalised",
                 normalised_energy(confusing_energy, area)),
                ("confusing_pointing_at_distractor", pointing_game(confusing, masks)),
                ("distractor_box_area", area),
                ("distractor_ink_energy", energy_inside(ink, masks)),
                ("distractor_ink_pointing", pointing_game(ink, masks))):
            self._add(name, np.where(present, values, np.nan))
        for name in ("confusing_is_distractor", "confusing_is_distractor_chance"):
            self._add(name, arrays[name])

    def summary(self) -> dict:
        """The mean of every figure that some image had."""
        return {name: self.sums[name] / self.counts[name]
                for name in self.sums if self.counts[name]}
