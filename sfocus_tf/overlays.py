"""Side-by-side overlays of the true-class and the confusing-class attention maps."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from sfocus_tf.attention import attention_maps
from sfocus_tf.config import GRADCAM_READING
from sfocus_tf.files import atomic_path, local_copy
from sfocus_tf.maps import resize_maps

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


def overlay_grid(images, *, target_maps, confusing_maps, target_names, confusing_names,
                 scale: int = 4) -> np.ndarray:
    """One row per example: image | true-class overlay | confusing-class overlay,
    labelled with the class names. Returns uint8 RGB [rows*H', 3*W', 3]."""
    display = to_display(images)
    panels = np.concatenate([display, overlay(display, np.asarray(target_maps)),
                             overlay(display, np.asarray(confusing_maps))], axis=2)
    rows = []
    for panel, target, confusing in zip(panels, target_names, confusing_names):
        picture = Image.fromarray((panel * 255).astype(np.uint8))
        picture = picture.resize((picture.width * scale, picture.height * scale),
                                 Image.NEAREST)
        rows.append(_with_caption(picture, f"true: {target}", f"confusing: {confusing}"))
    return np.concatenate([np.asarray(r) for r in rows], axis=0)


def _with_caption(picture: Image.Image, left: str, right: str) -> Image.Image:
    captioned = Image.new("RGB", (picture.width, picture.height + 14), "white")
    captioned.paste(picture, (0, 14))
    draw = ImageDraw.Draw(captioned)
    third = picture.width // 3
    draw.text((third + 2, 1), left, fill="black")
    draw.text((2 * third + 2, 1), right, fill="black")
    return captioned


def render(model, images, labels, class_names) -> np.ndarray:
    """The overlay grid of ``model``'s last-layer maps for a batch, as standard Grad-CAM
    (the maps evaluation measures, whatever reading the model trained with)."""
    maps = attention_maps(model, images, labels, reading=GRADCAM_READING)
    names = lambda ids: [class_names[i] for i in ids.numpy()]  # noqa: E731
    return overlay_grid(images, target_maps=maps["target_last"].numpy(),
                        confusing_maps=maps["confusing_last"].numpy(),
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
