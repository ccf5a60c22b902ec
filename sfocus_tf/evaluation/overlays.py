"""Side-by-side overlays of the true-class and the confusing-class attention maps, at
the last and the inner layer (drawn by ``overlay_layout``)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from sfocus_tf.evaluation import overlay_layout
from sfocus_tf.evaluation.localisation import upsample  # the one the box metrics use
from sfocus_tf.modeling import losses
from sfocus_tf.modeling.gradcam import attention_maps, shown_reading
from sfocus_tf.common.files import atomic_path, local_copy

# Anchor colours of a perceptually ordered map (dark blue -> red -> yellow).
_COLORMAP_ANCHORS = np.array([
    [0.05, 0.03, 0.35], [0.30, 0.10, 0.60], [0.75, 0.20, 0.45],
    [0.95, 0.45, 0.20], [0.99, 0.85, 0.25]])


def colorize(maps: np.ndarray) -> np.ndarray:
    """[..., H, W] values in [0, 1] -> [..., H, W, 3] RGB in [0, 1]."""
    position = np.clip(maps, 0.0, 1.0) * (len(_COLORMAP_ANCHORS) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(_COLORMAP_ANCHORS) - 1)
    fraction = (position - low)[..., None]
    return _COLORMAP_ANCHORS[low] * (1 - fraction) + _COLORMAP_ANCHORS[high] * fraction


def to_display(images: np.ndarray) -> np.ndarray:
    """Normalised images [B, H, W, C] -> RGB in [0, 1], stretched per image."""
    images = np.asarray(images, dtype=np.float32)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    low = images.min(axis=(1, 2, 3), keepdims=True)
    high = images.max(axis=(1, 2, 3), keepdims=True)
    return (images - low) / np.maximum(high - low, 1e-8)


def overlay(images: np.ndarray, maps: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blends [B, h, w] maps in [0, 1] over display images [B, H, W, 3]."""
    heat = colorize(upsample(maps, images.shape[1], images.shape[2]))
    return (1 - alpha) * images + alpha * heat


# The maps an overlay grid shows, in column order, with their two-line column titles.
PANELS = {"target_last": ("true", "last layer"), "confusing_last": ("confusing", "last layer"),
          "target_inner": ("true", "inner layer"),
          "confusing_inner": ("confusing", "inner layer")}
PANEL_WIDTH = 112  # about the pixels of a panel: images are magnified (28 px: 4 times)
ROWS_PER_PAGE = 4  # examples per picture where TensorBoard shows them
LEGEND = "map value: dark 0 = not attended, bright 1 = most attended"


def overlay_grid(images, maps: dict, *, captions, scale: int | None = None,
                 boxes=None) -> np.ndarray:
    """One row per example under its caption (``captions``): the image, then one
    overlay per entry of ``maps`` (``PANELS`` names -> [B, h, w] in [0, 1]), under
    column titles and over a colour scale. A map that is zero everywhere (no position
    marked, ``losses.empty_maps``) is hatched and labelled "all zero" rather than
    shown as a blank overlay. ``boxes``: optional (boxes [B, K, 4], kinds [B, K]) of
    ``box_kinds``, outlined on every panel (the true class's green, the others' cyan).
    ``scale``: the panels' magnification, by default the least that makes them
    ``PANEL_WIDTH`` wide. Returns uint8 RGB [H', W', 3]."""
    display = to_display(images)
    scale = scale or max(1, round(PANEL_WIDTH / display.shape[2]))
    panel_width = display.shape[2] * scale
    size = overlay_layout.text_size(panel_width)
    columns = [[_scaled(picture, scale) for picture in display]]
    for value in maps.values():
        empty = losses.empty_maps(np.asarray(value, np.float32)).numpy() > 0
        columns.append([_scaled(panel, scale) for panel in overlay(display, np.asarray(value))])
        for picture, blank in zip(columns[-1], empty):
            if blank:
                overlay_layout.hatch(picture, size)
    if boxes is not None:
        for column in columns:
            for picture, example_boxes, kinds in zip(column, *boxes):
                overlay_layout.draw_boxes(picture, example_boxes, kinds)
    titles = [("image", "")] + [PANELS[key] for key in maps]
    width = panel_width * len(titles)
    return overlay_layout.stacked(
        [overlay_layout.column_titles(titles, panel_width, size)]
        + [overlay_layout.captioned_row(row, caption, size)
           for row, caption in zip(zip(*columns), captions)]
        + [overlay_layout.colour_scale(colorize(np.linspace(0, 1, 256)), width, size, LEGEND)])


def overlay_pages(images, maps: dict, *, captions, rows: int = ROWS_PER_PAGE,
                  scale: int | None = None, boxes=None) -> list:
    """``overlay_grid`` of each run of ``rows`` examples: pictures TensorBoard shows
    large enough to read (its cards are about 350 px wide, whatever the height)."""
    def part(start):
        return slice(start, start + rows)
    return [overlay_grid(images[part(start)],
                         {key: value[part(start)] for key, value in maps.items()},
                         captions=captions[part(start)], scale=scale,
                         boxes=None if boxes is None else tuple(b[part(start)] for b in boxes))
            for start in range(0, len(captions), rows)]


def box_kinds(boxes, target_class) -> tuple:
    """A dataset's boxes of a batch ([B, 4] for one object, or {"boxes": [B, K, 4],
    "labels": [B, K]}) -> (boxes [B, K, 4], kinds [B, K]): 1 for the true class's
    boxes, 2 for other classes', 0 for padding."""
    if not isinstance(boxes, dict):
        boxes = np.asarray(boxes, np.float32)[:, None, :]
        return boxes, np.ones(boxes.shape[:2], np.int32)
    labels = np.asarray(boxes["labels"])
    kinds = np.where(labels == np.asarray(target_class)[:, None], 1, 2)
    return np.asarray(boxes["boxes"], np.float32), np.where(labels >= 0, kinds, 0)


def captions(class_names, target_class, confusing_class, probabilities) -> list:
    """Per example: its true class and its most confusing class, each with the
    model's probability, and which one the model predicts (the confusing class is
    the highest-scoring other one: a wrong prediction is the confusing class)."""
    lines = []
    for target, confusing, shares in zip(target_class, confusing_class, probabilities):
        predicted = int(np.argmax(shares))

        def named(k, mark=True):
            return (f"{class_names[k]} {shares[k]:.0%}"
                    + (" (predicted)" if mark and k == predicted else ""))

        line = f"true {named(target)} · confusing {named(confusing)}"
        if predicted not in (target, confusing):  # multi-label data
            line += f" · predicted {named(predicted, mark=False)}"
        lines.append(line)
    return lines


def _scaled(panel: np.ndarray, scale: int) -> Image.Image:
    picture = Image.fromarray((panel * 255).astype(np.uint8))
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)


def shown_maps(model, images, labels, class_names, boxes=None) -> dict:
    """The arguments of ``overlay_grid`` and ``overlay_pages`` for ``model``'s maps
    (``PANELS``: true and confusing class, last and inner layer) of a batch, as
    standard Grad-CAM (the maps evaluation measures, whatever reading the model
    trained with), with the model's probabilities in the captions and the batch's
    ``boxes`` (as the dataset gives them) where there are some."""
    maps = attention_maps(model, images, labels, reading=shown_reading())
    logits = tf.cast(maps["logits"], tf.float32)
    multi_label = model.sfocus_config.multi_label
    probabilities = (tf.sigmoid(logits) if multi_label else tf.nn.softmax(logits)).numpy()
    target_class = maps["target_class"].numpy()
    return dict(images=images, maps={key: maps[key].numpy() for key in PANELS},
                captions=captions(class_names, target_class,
                                  maps["confusing_class"].numpy(), probabilities),
                boxes=None if boxes is None else box_kinds(boxes, target_class))


def render(model, images, labels, class_names, boxes=None) -> np.ndarray:
    """The overlay grid of ``shown_maps``: every example in one picture."""
    return overlay_grid(**shown_maps(model, images, labels, class_names, boxes))


def save_png(path: str, rgb: np.ndarray) -> None:
    with atomic_path(path, ".png") as temporary:
        Image.fromarray(rgb).save(temporary, format="PNG")


def side_by_side(grids, titles) -> np.ndarray:
    """Overlay grids of the same images (e.g. one per arm of a study) next to each
    other, each under its title; shorter grids are padded with white."""
    height = max(grid.shape[0] for grid in grids)
    columns = []
    for grid, title in zip(grids, titles):
        picture = Image.new("RGB", (grid.shape[1] + 8, height + 16), "white")
        picture.paste(Image.fromarray(np.asarray(grid, np.uint8)), (4, 16))
        ImageDraw.Draw(picture).text((4, 2), title, fill="black")
        columns.append(np.asarray(picture))
    return np.concatenate(columns, axis=1)


def load_png(path: str) -> np.ndarray:
    with local_copy(path) as local, Image.open(local) as picture:
        return np.asarray(picture.convert("RGB"))
