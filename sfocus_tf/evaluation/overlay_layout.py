"""Drawing an overlay picture: titled columns, one caption line per row, a colour scale.

Sized for where TensorBoard shows it: an Images card is about 350 px wide, so a picture
of five 112 px panels is shown at 0.6 of its size. Text is a share of the panel width
(``TEXT_SHARE``: 20 px on a 112 px panel, about 12 px on the card) and shrinks only
where a line would not fit its width.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TEXT_SHARE = 0.18  # font size / panel width
MIN_TEXT = 9  # pixels: below this Pillow's fonts are not legible
HATCH = (200, 200, 200)  # the lines across a map that is zero everywhere
PAD = 4  # pixels around each line of text


def text_size(panel_width: int) -> int:
    return max(MIN_TEXT, round(TEXT_SHARE * panel_width))


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's own font at ``size`` px (FreeType; without it, its small bitmap font)."""
    return ImageFont.load_default(size=size)


def _fitted(text: str, width: int, size: int) -> ImageFont.ImageFont:
    """The font at ``size`` px, smaller if ``text`` would not fit ``width``."""
    drawn = font(size)
    while size > MIN_TEXT and drawn.getlength(text) > width:
        size -= 1
        drawn = font(size)
    return drawn


def _line(text: str, width: int, size: int, x: int = PAD) -> Image.Image:
    """A white strip ``width`` wide holding ``text`` from ``x``."""
    strip = Image.new("RGB", (width, size + 2 * PAD), "white")
    ImageDraw.Draw(strip).text((x, PAD), text, fill="black",
                               font=_fitted(text, width - x - PAD, size))
    return strip


def column_titles(titles, panel_width: int, size: int) -> Image.Image:
    """Two lines over each column: ``titles`` are (first line, second line) pairs."""
    height = 2 * size + 3 * PAD
    strip = Image.new("RGB", (panel_width * len(titles), height), "white")
    draw = ImageDraw.Draw(strip)
    for index, lines in enumerate(titles):
        for row, text in enumerate(lines):
            draw.text((index * panel_width + PAD, PAD + row * (size + PAD)), text,
                      fill="black", font=_fitted(text, panel_width - 2 * PAD, size))
    return strip


def captioned_row(panels, caption: str, size: int) -> Image.Image:
    """``panels`` (equal-size pictures) side by side under one line of text, a white
    line between two panels (maps of the same colours would run together)."""
    row = np.concatenate([np.asarray(panel) for panel in panels], axis=1)
    for index in range(1, len(panels)):
        row[:, index * panels[0].width - 1:index * panels[0].width + 1] = 255
    return _stack([_line(caption, row.shape[1], size), Image.fromarray(row)])


def hatch(picture: Image.Image, size: int) -> None:
    """Diagonal lines and an "all zero" label across ``picture``, in place."""
    draw = ImageDraw.Draw(picture)
    span = picture.width + picture.height
    for offset in range(-picture.height, picture.width, 8):
        draw.line([(offset, picture.height), (offset + span, picture.height - span)],
                  fill=HATCH)
    label = _fitted("all zero", picture.width - 4 * PAD, size)
    width = int(label.getlength("all zero"))
    draw.rectangle([PAD, PAD, 3 * PAD + width, 3 * PAD + size], fill="white")
    draw.text((2 * PAD, 2 * PAD), "all zero", fill="black", font=label)


# The labelled object's boxes, then those of other classes (the duo's distractor): two
# colours the map's blue-red-yellow scale does not use.
BOX_COLOURS = {1: (0, 230, 0), 2: (0, 230, 230)}


def draw_boxes(picture: Image.Image, boxes: np.ndarray, kinds: np.ndarray) -> None:
    """Normalised [ymin, xmin, ymax, xmax] ``boxes`` [K, 4] outlined on ``picture`` in
    place, each in the colour of its ``kinds`` entry (1 own, 2 other; 0: not drawn)."""
    draw = ImageDraw.Draw(picture)
    line = max(1, picture.width // 56)
    for (ymin, xmin, ymax, xmax), kind in zip(np.asarray(boxes, np.float64), kinds):
        # an empty box (padding, a crop that cut it away) or one given upside down
        # (generated data) is not an outline
        if kind in BOX_COLOURS and xmax > xmin and ymax > ymin:
            draw.rectangle([xmin * picture.width, ymin * picture.height,
                            max(xmin * picture.width, xmax * picture.width - 1),
                            max(ymin * picture.height, ymax * picture.height - 1)],
                           outline=BOX_COLOURS[kind], width=line)


def colour_scale(colours: np.ndarray, width: int, size: int, legend: str) -> Image.Image:
    """The colours a map value of 0 to 1 gets (``colours``: [N, 3] in [0, 1]) as a
    bar between "0" and "1", over a line saying what they mean."""
    ends = font(size)
    margin = int(ends.getlength("0")) + 3 * PAD
    bar_width, bar_height = width - 2 * margin, max(size // 2, 6)
    row = np.broadcast_to(colours[np.linspace(0, len(colours) - 1, bar_width).astype(int)],
                          (bar_height, bar_width, 3))
    strip = Image.new("RGB", (width, size + 2 * PAD), "white")
    strip.paste(Image.fromarray((row * 255).astype(np.uint8)),
                (margin, PAD + (size - bar_height) // 2))
    draw = ImageDraw.Draw(strip)
    draw.text((PAD, PAD), "0", fill="black", font=ends)
    draw.text((width - margin + 2 * PAD, PAD), "1", fill="black", font=ends)
    return _stack([strip, _line(legend, width, size)])


def stacked(parts) -> np.ndarray:
    """``parts`` (pictures of one width) one under the other, as uint8 RGB."""
    return np.asarray(_stack(parts))


def _stack(parts) -> Image.Image:
    picture = Image.new("RGB", (parts[0].width, sum(part.height for part in parts)), "white")
    top = 0
    for part in parts:
        picture.paste(part, (0, top))
        top += part.height
    return picture
