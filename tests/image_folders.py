"""Folders of labelled images drawn for the tests: circles, squares and triangles."""

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def draw_shape(shape, rng, size=None):
    """One RGB picture of ``shape`` at a random place, scale and colour, on a random background."""
    width, height = size if size is not None else rng.integers(32, 72, size=2)
    background = rng.integers(0, 90, size=3)
    foreground = rng.integers(160, 256, size=3)
    image = Image.new("RGB", (int(width), int(height)), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(image)
    side = rng.uniform(0.45, 0.8) * min(width, height)
    x0 = rng.uniform(0, width - side)
    y0 = rng.uniform(0, height - side)
    box = [x0, y0, x0 + side, y0 + side]
    fill = tuple(int(c) for c in foreground)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(x0, y0 + side), (x0 + side, y0 + side), (x0 + side / 2, y0)], fill=fill)
    noise = rng.normal(0, 8, size=(int(height), int(width), 3))
    pixels = np.clip(np.asarray(image, dtype=float) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def make_shapes_folder(root, n_per_class=12, shapes=SHAPES, seed=0):
    """Write ``n_per_class`` images of each shape under ``root/<shape>/``, PNG and JPEG mixed.

    Returns ``root``.
    """
    rng = np.random.default_rng(seed)
    for shape in shapes:
        folder = root / shape
        folder.mkdir(parents=True)
        for i in range(n_per_class):
            extension = "png" if i % 2 else "jpg"
            draw_shape(shape, rng).save(folder / f"{shape}_{i:03d}.{extension}")
    return root
