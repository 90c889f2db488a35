"""load_image_folder and load_images: layout, pixel values, resizing, images kept at their own
sizes, and unreadable files."""

import sys
from pathlib import Path

import numpy as np
import pytest
from image_folders import make_shapes_folder
from PIL import Image, ImageOps

from sklearn_convfeat import MemoryLimitError, _limits, datasets
from sklearn_convfeat._limits import format_bytes
from sklearn_convfeat._optional import import_optional
from sklearn_convfeat.datasets import load_image_folder, load_images


def _save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path


def test_layout_targets_and_filenames(tmp_path):
    make_shapes_folder(tmp_path, n_per_class=3, shapes=("b_square", "a_circle"))
    (tmp_path / "a_circle" / "nested").mkdir()
    _save(tmp_path / "a_circle" / "nested" / "deep.png", np.zeros((5, 5)))
    (tmp_path / "a_circle" / ".hidden.png").write_bytes(b"not an image")
    (tmp_path / ".cache").mkdir()
    (tmp_path / "empty_class").mkdir()

    bunch = load_image_folder(tmp_path, image_size=(10, 14))

    assert bunch.target_names == ["a_circle", "b_square"]
    assert bunch.target.tolist() == [0, 0, 0, 0, 1, 1, 1]
    names = [p.replace(str(tmp_path), "") for p in bunch.filenames]
    assert names[0] == "/a_circle/a_circle_000.jpg"
    assert "/a_circle/nested/deep.png" in names
    assert not any(".hidden" in n for n in names)
    assert bunch.images.shape == (7, 10, 14)
    assert bunch.images.dtype == np.float32
    assert bunch.data.shape == (7, 140)
    np.testing.assert_array_equal(bunch.data, bunch.images.reshape(7, -1))
    assert bunch.image_shape == (10, 14, 1)
    assert 0 <= bunch.images.min() and bunch.images.max() <= 1


def test_pixel_values_grey_and_rgb(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(6, 9, 3))
    _save(tmp_path / "one" / "a.png", rgb)
    _save(tmp_path / "two" / "b.png", 255 - rgb)

    colour = load_image_folder(tmp_path, image_size=(6, 9), color_mode="rgb")
    assert colour.images.shape == (2, 6, 9, 3)
    assert colour.image_shape == (6, 9, 3)
    np.testing.assert_allclose(colour.images[0], rgb / 255, atol=1e-6)
    np.testing.assert_allclose(colour.images[1], (255 - rgb) / 255, atol=1e-6)

    grey = load_image_folder(tmp_path, image_size=(6, 9))
    # ITU-R 601-2 luma, the conversion Pillow documents for mode "L".
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(grey.images[0], luma / 255, atol=1.01 / 255)


def test_resize_keeps_height_and_width_apart(tmp_path):
    left_dark = np.zeros((40, 60))
    left_dark[:, 30:] = 255
    _save(tmp_path / "a" / "x.png", left_dark)
    _save(tmp_path / "b" / "flat.jpg", np.full((13, 7, 3), 200))

    bunch = load_image_folder(tmp_path, image_size=(4, 6))

    assert bunch.images.shape == (2, 4, 6)
    np.testing.assert_allclose(bunch.images[0][:, :2], 0, atol=0.02)
    np.testing.assert_allclose(bunch.images[0][:, 4:], 1, atol=0.02)
    np.testing.assert_allclose(bunch.images[1], 200 / 255, atol=0.02)
    assert load_image_folder(tmp_path, image_size=5).images.shape == (2, 5, 5)


def test_unreadable_file_is_named_or_skipped_with_a_warning(tmp_path):
    make_shapes_folder(tmp_path, n_per_class=2, shapes=("circle", "square"))
    bad = tmp_path / "square" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "circle" / "notes.txt").write_text("not an image")

    with pytest.raises(ValueError, match=r"notes\.txt: not a readable image \(unknown"):
        load_image_folder(tmp_path)
    (tmp_path / "circle" / "notes.txt").unlink()
    with pytest.raises(ValueError, match=r"broken\.png: not a readable image"):
        load_image_folder(tmp_path)
    (tmp_path / "circle" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning) as record:
        bunch = load_image_folder(tmp_path, on_error="warn")
    messages = " ".join(str(w.message) for w in record)
    assert "broken.png" in messages and "notes.txt" in messages
    assert len(bunch.target) == 4
    assert not any(f.endswith(("broken.png", "notes.txt")) for f in bunch.filenames)


def test_truncated_jpeg_is_named(tmp_path):
    make_shapes_folder(tmp_path, n_per_class=2, shapes=("circle", "square"))
    whole = (tmp_path / "circle" / "circle_000.jpg").read_bytes()
    (tmp_path / "circle" / "circle_000.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"circle_000\.jpg: not a readable image \(.*truncated"):
        load_image_folder(tmp_path)


def test_class_with_only_unreadable_files_disappears(tmp_path):
    make_shapes_folder(tmp_path, n_per_class=2, shapes=("circle", "square"))
    (tmp_path / "a_junk").mkdir()
    (tmp_path / "a_junk" / "x.jpg").write_bytes(b"junk")
    with pytest.warns(UserWarning, match="x.jpg"):
        bunch = load_image_folder(tmp_path, on_error="warn")
    assert bunch.target_names == ["circle", "square"]
    assert sorted(set(bunch.target.tolist())) == [0, 1]


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_image_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no images found"):
        load_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"junk")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="none of the 1 files"):
        load_image_folder(tmp_path, on_error="warn")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_size=0), "image_size"),
        (dict(image_size=(3, 4, 5)), "image_size"),
        (dict(image_size=(3.5, 4)), "image_size"),
        (dict(color_mode="cmyk"), "color_mode"),
        (dict(on_error="ignore"), "on_error"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    make_shapes_folder(tmp_path, n_per_class=1, shapes=("a", "b"))
    with pytest.raises(ValueError, match=match):
        load_image_folder(tmp_path, **kwargs)


def test_load_images_matches_the_folder_loader(tmp_path):
    make_shapes_folder(tmp_path, n_per_class=2, shapes=("a", "b"))
    bunch = load_image_folder(tmp_path, image_size=8, color_mode="rgb")
    images = load_images(bunch.filenames[::-1], image_size=8, color_mode="rgb")
    np.testing.assert_array_equal(images, bunch.images[::-1])


def test_missing_pillow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match=r'pip install "sklearn-convfeat\[images\]"'):
        import_optional("PIL.Image")


# Images kept at their own sizes (image_size=None).


def _pillow_pixels(path, mode):
    """What Pillow itself reads: the file upright, in ``mode``, as float32 in [0, 1]."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image).convert(mode)
        return np.asarray(upright, dtype=np.float32) / np.float32(255)


def _save_rotated(path, pixels, orientation=6):
    """Save ``pixels`` with an EXIF orientation: 6 means "turn a quarter clockwise to view"."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path, exif=exif)
    return path


@pytest.mark.parametrize("color_mode, mode", [("grayscale", "L"), ("rgb", "RGB")])
def test_native_sizes_are_kept_pixel_for_pixel(tmp_path, color_mode, mode):
    rng = np.random.default_rng(0)
    files = [
        _save(tmp_path / "a" / "wide.png", rng.integers(0, 256, size=(7, 90, 3))),
        _save(tmp_path / "a" / "tall.png", rng.integers(0, 256, size=(40, 5))),
        _save(tmp_path / "b" / "photo.jpg", rng.integers(0, 256, size=(33, 21, 3))),
    ]

    bunch = load_image_folder(tmp_path, image_size=None, color_mode=color_mode)

    channels = 1 if mode == "L" else 3
    assert isinstance(bunch.images, list) and len(bunch.images) == 3
    assert bunch.data is bunch.images
    assert bunch.image_shape == (None, None, channels)
    by_name = dict(zip((Path(f).name for f in bunch.filenames), bunch.images, strict=True))
    for path in files:
        image = by_name[path.name]
        assert image.dtype == np.float32
        np.testing.assert_array_equal(image, _pillow_pixels(path, mode))
    assert [image.shape[:2] for image in bunch.images] == [(40, 5), (7, 90), (33, 21)]
    assert bunch.target.tolist() == [0, 0, 1]
    assert "kept at their own sizes (from 40x5 to 33x21)" in bunch.DESCR

    images = load_images(files, image_size=None, color_mode=color_mode)
    assert isinstance(images, list)
    for image, path in zip(images, files, strict=True):
        np.testing.assert_array_equal(image, by_name[path.name])


def test_max_side_keeps_the_aspect_ratio_and_never_enlarges(tmp_path):
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, size=(30, 20))
    files = [
        _save(tmp_path / "wide.png", np.full((90, 400), 200)),
        _save(tmp_path / "tall.png", np.full((400, 90, 3), 100)),
        _save(tmp_path / "small.png", small),
        _save(tmp_path / "square.png", np.zeros((50, 50))),
    ]

    images = load_images(files, image_size=None, max_side=50)

    assert [image.shape for image in images] == [(11, 50), (50, 11), (30, 20), (50, 50)]
    np.testing.assert_allclose(images[0], 200 / 255, atol=1e-6)
    np.testing.assert_allclose(images[1], 100 / 255, atol=1e-6)
    np.testing.assert_array_equal(images[2], small.astype(np.float32) / np.float32(255))
    assert load_images(files[2:3], image_size=None, max_side=1000)[0].shape == (30, 20)


def test_max_side_shrinks_a_large_jpeg_like_a_plain_resize(tmp_path):
    # The JPEG is decoded at a reduced scale first (draft); a smooth picture must come out as a
    # plain resize of the whole decoded image would.
    rows, cols = np.mgrid[0:800, 0:1200]
    pixels = np.stack([rows * 255 / 800, cols * 255 / 1200, (rows + cols) * 255 / 2000], axis=-1)
    path = _save(tmp_path / "big.jpg", pixels)

    image = load_images([path], image_size=None, max_side=300, color_mode="rgb")[0]

    assert image.shape == (200, 300, 3)
    with Image.open(path) as full:
        expected = full.convert("RGB").resize((300, 200), Image.Resampling.LANCZOS)
    np.testing.assert_allclose(image, np.asarray(expected) / 255, atol=0.03)


def test_exif_orientation_turns_native_images_upright(tmp_path):
    rng = np.random.default_rng(2)
    stored = rng.integers(0, 256, size=(20, 60, 3))
    path = _save_rotated(tmp_path / "a" / "turned.png", stored)

    (image,) = load_images([path], image_size=None, color_mode="rgb")
    assert image.shape == (60, 20, 3)
    upright = np.rot90(stored, k=-1).astype(np.float32)
    np.testing.assert_array_equal(image, upright / np.float32(255))

    (shrunk,) = load_images([path], image_size=None, max_side=30, color_mode="rgb")
    assert shrunk.shape == (30, 10, 3)


def test_native_unreadable_files_are_skipped_once_each(tmp_path):
    make_shapes_folder(tmp_path, n_per_class=2, shapes=("circle", "square"))
    (tmp_path / "circle" / "notes.txt").write_text("not an image")  # fails on its header
    whole = (tmp_path / "square" / "square_000.jpg").read_bytes()
    (tmp_path / "square" / "cut.jpg").write_bytes(whole[: len(whole) // 2])  # fails decoding

    with pytest.raises(ValueError, match=r"notes\.txt: not a readable image"):
        load_image_folder(tmp_path, image_size=None)
    with pytest.warns(UserWarning) as record:
        bunch = load_image_folder(tmp_path, image_size=None, on_error="warn")
    skipped = sorted(Path(str(w.message).split(": ")[0]).name for w in record)
    assert skipped == ["cut.jpg", "notes.txt"]
    assert len(bunch.images) == len(bunch.target) == len(bunch.filenames) == 4


def test_memory_check_counts_native_sizes_before_decoding(tmp_path, monkeypatch):
    _save(tmp_path / "a" / "big.png", np.zeros((300, 400, 3)))
    _save(tmp_path / "b" / "small.png", np.zeros((200, 100, 3)))
    float32_bytes = 4 * 3 * (300 * 400 + 200 * 100)

    def must_not_decode(*args):
        raise AssertionError("an image was decoded before the memory check")

    monkeypatch.setattr(_limits, "available_memory", lambda: float32_bytes - 1)
    monkeypatch.setattr(datasets, "_read_native", must_not_decode)
    with pytest.raises(MemoryLimitError, match="2 images at their own sizes") as error:
        load_image_folder(tmp_path, image_size=None, color_mode="rgb")
    message = str(error.value)
    assert f"{format_bytes(float32_bytes)} as float32" in message
    assert "max_side" in message

    monkeypatch.undo()
    monkeypatch.setattr(_limits, "available_memory", lambda: 2 * 10**6)
    shrunk = load_image_folder(tmp_path, image_size=None, max_side=100, color_mode="rgb")
    assert [image.shape for image in shrunk.images] == [(75, 100, 3), (100, 50, 3)]
    with pytest.raises(MemoryLimitError):
        load_image_folder(tmp_path, image_size=None, color_mode="rgb")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_size=None, max_side=0), "max_side must be None or a positive int"),
        (dict(image_size=None, max_side=-5), "max_side must be None or a positive int"),
        (dict(image_size=None, max_side=12.5), "max_side must be None or a positive int"),
        (dict(image_size=None, max_side=True), "max_side must be None or a positive int"),
        (dict(max_side=64), r"max_side=64 applies to .*image_size=None"),
        (dict(image_size="native"), "image_size must be None"),
    ],
)
def test_bad_native_arguments(tmp_path, kwargs, match):
    make_shapes_folder(tmp_path, n_per_class=1, shapes=("a", "b"))
    with pytest.raises(ValueError, match=match):
        load_image_folder(tmp_path, **kwargs)
    with pytest.raises(ValueError, match=match):
        load_images(sorted(tmp_path.rglob("*.jpg")), **kwargs)
