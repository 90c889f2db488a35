"""load_image_folder and load_images: layout, pixel values, resizing and unreadable files."""

import sys

import numpy as np
import pytest
from image_folders import make_shapes_folder
from PIL import Image

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
