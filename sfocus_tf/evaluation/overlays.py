"""Side-by-side overlays of the true-class and the confusing-class attention maps, at
the last and the inner layer."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from sfocus_tf.modeling import losses
from sfocus_tf.modeling.gradcam import attention_maps, shown_reading
from sfocus_tf.common.files import atomic_path, local_copy
from sfocus_tf.modeling.maps import resize_maps

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


def upsample(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of [B, h, w] maps to the image size (display, box metrics)."""
    return resize_maps(np.asarray(maps, np.float32), (height, width)).numpy()


def overlay(images: np.ndarray, maps: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blends [B, h, w] maps in [0, 1] over display images [B, H, W, 3]."""
    heat = colorize(upsample(maps, images.shape[1], images.shape[2]))
    return (1 - alpha) * images + alpha * heat


# The maps an overlay grid shows, in column order, with their column titles.
PANELS = {"target_last": "true (last)", "confusing_last": "confusing (last)",
          "target_inner": "true (inner)", "confusing_inner": "confusing (inner)"}
_CAPTION = 14  # pixels of text above each row, and of the column titles
_HATCH = (200, 200, 200)  # the lines across a map that is zero everywhere


def overlay_grid(images, maps: dict, *, target_names, confusing_names,
                 scale: int = 4) -> np.ndarray:
    """One row per example: the image, then one overlay per entry of ``maps``
    (``PANELS`` names -> [B, h, w] in [0, 1]), under column titles; each overlay is
    captioned with its class (true or confusing). A map that is zero everywhere (no
    position marked, ``losses.empty_maps``) is hatched and labelled "all zero" rather
    than shown as a blank overlay. Returns uint8 RGB [H', W', 3]."""
    display = to_display(images)
    names = {"target": target_names, "confusing": confusing_names}
    empty = {key: losses.empty_maps(np.asarray(value, np.float32)).numpy() > 0
             for key, value in maps.items()}
    rows = [[_with_caption(_scaled(picture, scale), "")] for picture in display]
    for key, value in maps.items():
        role = key.split("_")[0]
        for index, panel in enumerate(overlay(display, np.asarray(value))):
            picture = _scaled(panel, scale)
            if empty[key][index]:
                _hatch(picture)
            rows[index].append(_with_caption(picture, names[role][index]))
    grid = np.concatenate([np.concatenate([np.asarray(p) for p in row], axis=1)
                           for row in rows], axis=0)
    return _with_titles(grid, ["image"] + [PANELS[key] for key in maps])


def _scaled(panel: np.ndarray, scale: int) -> Image.Image:
    picture = Image.fromarray((panel * 255).astype(np.uint8))
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)


def _hatch(picture: Image.Image) -> None:
    """Diagonal lines and an "all zero" label across ``picture``, in place."""
    draw = ImageDraw.Draw(picture)
    size = picture.width + picture.height
    for offset in range(-picture.height, picture.width, 8):
        draw.line([(offset, picture.height), (offset + size, picture.height - size)],
                  fill=_HATCH)
    draw.rectangle([2, 2, 52, 14], fill="white")
    draw.text((4, 3), "all zero", fill="black")


def _with_caption(picture: Image.Image, caption: str) -> Image.Image:
    captioned = Image.new("RGB", (picture.width, picture.height + _CAPTION), "white")
    captioned.paste(picture, (0, _CAPTION))
    ImageDraw.Draw(captioned).text((2, 1), caption, fill="black")
    return captioned


def _with_titles(grid: np.ndarray, titles) -> np.ndarray:
    """``grid`` under a line of column titles (equal-width columns)."""
    picture = Image.new("RGB", (grid.shape[1], grid.shape[0] + _CAPTION), "white")
    picture.paste(Image.fromarray(grid), (0, _CAPTION))
    draw = ImageDraw.Draw(picture)
    width = grid.shape[1] // len(titles)
    for index, title in enumerate(titles):
        draw.text((index * width + 2, 1), title, fill="black")
    return np.asarray(picture)


def render(model, images, labels, class_names) -> np.ndarray:
    """The overlay grid of ``model``'s maps (``PANELS``: true and confusing class, last
    and inner layer) for a batch, as standard Grad-CAM (the maps evaluation measures,
    whatever reading the model trained with)."""
    maps = attention_maps(model, images, labels, reading=shown_reading())
    names = lambda ids: [class_names[i] for i in ids.numpy()]  # noqa: E731
    return overlay_grid(images, {key: maps[key].numpy() for key in PANELS},
                        target_names=names(maps["target_class"]),
                        confusing_names=names(maps["confusing_class"]))


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
