"""Natural-image patches: disjoint calibration / validation / test regions, several scales,
determinism, raw 0..255 values, the distillation grid kept to the calibration region."""
import re

import numpy as np
import pytest

from edgezoo.base.errors import DataError
from edgezoo.zoo.data import (load_dataset, load_natural_patch_grid, load_natural_patches,
                               natural_patch_grid)
from edgezoo.zoo.data.natural_patches import natural_patch_rectangles, resize_square

SPLITS = ("train", "val", "test")
PHOTO = (427, 640)  # both of scikit-learn's sample photographs


def coordinate_images(shapes=(PHOTO, (400, 600))):
    """Synthetic photographs whose pixels say where they are: channel 0 = row, 1 = column,
    2 = image index. Resizing only averages pixels of the crop, so every output value is a
    convex combination of source coordinates inside the crop."""
    out = []
    for k, (h, w) in enumerate(shapes):
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        out.append(np.stack([rows, cols, np.full((h, w), k)], axis=-1).astype(np.float64))
    return out


def reconstruct(patch):
    """The source square (image, top, left, side) of one patch of a coordinate image, from its
    values alone. Resizing is symmetric, so the first and last output centres sit equally far
    inside the crop: their mean is the crop's centre. Area averaging by a factor r puts the first
    and last centres (r - 1) / 2 from the edges when r is an integer, so side = span * size /
    (size - 1) (within a pixel for other factors; rounded)."""
    size = patch.shape[0]
    image = np.unique(patch[..., 2])
    assert len(image) == 1
    rows, cols = patch[:, 0, 0], patch[0, :, 1]
    assert rows[-1] - rows[0] == pytest.approx(cols[-1] - cols[0], abs=1e-3)  # square
    side = np.round((rows[-1] - rows[0]) * size / (size - 1))
    top = (rows[0] + rows[-1]) / 2 - (side - 1) / 2
    left = (cols[0] + cols[-1]) / 2 - (side - 1) / 2
    return np.array([image[0], top, left, side])


def coverage(rects, shapes):
    """Per image, a boolean mask of every pixel some rectangle covers."""
    masks = [np.zeros(s, bool) for s in shapes]
    for i, y, x, side in np.asarray(rects, np.int64):
        masks[i][y: y + side, x: x + side] = True
    return masks


@pytest.fixture(scope="module")
def patches():
    return load_natural_patches((32, 32, 3))


@pytest.fixture(scope="module")
def synthetic():
    images = coordinate_images()
    return images, load_natural_patches((32, 32, 3), images=images)


def test_sizes_values_and_metadata(patches):
    assert len(patches.test) >= 2000
    assert 300 <= len(patches.train) <= 2500
    assert len(patches.val) >= 300
    for split in SPLITS:
        part = getattr(patches, split)
        assert part.x.shape[1:] == (32, 32, 3) and part.x.dtype == np.float32
        assert 0.0 <= part.x.min() < 30 and 220 < part.x.max() <= 255.0
        assert (part.y == -1).all() and part.y.dtype == np.int64
    assert patches.num_classes == 0 and patches.value_range == (0.0, 255.0)
    for words in ("32, 48, 64", "[0, 208)", "[224, 352)", "[368, 640)", f"test {len(patches.test)}"):
        assert words in patches.source
    # no two splits hold the same patch
    bytes_of = {s: {p.tobytes() for p in getattr(patches, s).x} for s in SPLITS}
    assert not bytes_of["train"] & bytes_of["test"] and not bytes_of["val"] & bytes_of["test"]
    assert not bytes_of["train"] & bytes_of["val"]


def test_splits_come_from_disjoint_regions_by_their_pixels(synthetic):
    """Independent of the module's bookkeeping: rebuild every patch's source square from its
    pixel values, check the squares of different splits share no pixel (nor come within 15 px
    of each other), and that they match the rectangles the module reports."""
    images, data = synthetic
    shapes = [im.shape[:2] for im in images]
    rebuilt = {}
    for split in SPLITS:
        x = getattr(data, split).x.astype(np.float64)
        rects = np.array([reconstruct(p) for p in x])
        np.testing.assert_allclose(rects, np.round(rects), atol=2e-3)
        rebuilt[split] = np.round(rects).astype(np.int64)
        # every value lies inside its square (resizing never reaches outside the crop)
        i, top, left, side = rebuilt[split].T
        assert (x[..., 0].min(axis=(1, 2)) >= top - 1e-3).all()
        assert (x[..., 0].max(axis=(1, 2)) <= top + side - 1 + 1e-3).all()
        assert (x[..., 1].min(axis=(1, 2)) >= left - 1e-3).all()
        assert (x[..., 1].max(axis=(1, 2)) <= left + side - 1 + 1e-3).all()
        assert set(np.unique(side)) == {32, 48, 64}  # several scales in every split
        assert set(np.unique(i)) == {0, 1}  # both photographs in every split
        for k, (h, w) in enumerate(shapes):
            mine = rebuilt[split][i == k]
            assert (mine[:, 1] >= 0).all() and (mine[:, 1] + mine[:, 3] <= h).all()
            assert (mine[:, 2] >= 0).all() and (mine[:, 2] + mine[:, 3] <= w).all()
    reported = natural_patch_rectangles((32, 32, 3), 0, shapes)
    for split in SPLITS:
        np.testing.assert_array_equal(rebuilt[split], reported[split])

    masks = {s: coverage(rebuilt[s], shapes) for s in SPLITS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        for k in range(len(shapes)):
            assert not (masks[a][k] & masks[b][k]).any(), (a, b, k)
            cols_a = np.flatnonzero(masks[a][k].any(axis=0))
            cols_b = np.flatnonzero(masks[b][k].any(axis=0))
            assert np.abs(cols_a[:, None] - cols_b[None, :]).min() > 15, (a, b, k)


def test_rectangles_of_the_real_photographs_are_disjoint_and_multiscale():
    rects = natural_patch_rectangles((32, 32, 3), seed=0, image_shapes=[PHOTO, PHOTO])
    masks = {s: coverage(rects[s], [PHOTO, PHOTO]) for s in SPLITS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not any((ma & mb).any() for ma, mb in zip(masks[a], masks[b]))
    for split in SPLITS:
        assert set(np.unique(rects[split][:, 3])) == {32, 48, 64}
        # top-left corners are drawn without replacement
        assert len({tuple(r) for r in rects[split]}) == len(rects[split])
    # the test region is the right-most: every test crop starts right of every other crop's end
    others_end = max((r[:, 2] + r[:, 3]).max() for r in (rects["train"], rects["val"]))
    assert rects["test"][:, 2].min() > others_end
    # any prefix mixes photographs and scales (callers take the first few hundred to calibrate)
    first = rects["train"][:100]
    assert set(first[:, 0]) == {0, 1} and set(first[:, 3]) == {32, 48, 64}


def test_same_seed_same_arrays_other_seed_other_crops(patches):
    again = load_natural_patches((32, 32, 3), seed=0)
    for split in SPLITS:
        np.testing.assert_array_equal(getattr(patches, split).x, getattr(again, split).x)
    other = load_natural_patches((32, 32, 3), seed=1)
    assert not np.array_equal(patches.train.x, other.train.x)
    assert not np.array_equal(patches.test.x, other.test.x)
    assert load_dataset("natural_patches", (32, 32, 3)).test.x.tobytes() == patches.test.x.tobytes()


@pytest.mark.parametrize("size", [8, 16, 48])
def test_other_square_sizes(size):
    images = coordinate_images()
    data = load_natural_patches((size, size, 3), images=images)
    for split in SPLITS:
        x = getattr(data, split).x
        assert x.shape[1:] == (size, size, 3)
        sides = {int(np.round(reconstruct(p)[3])) for p in x.astype(np.float64)}
        expected = {32, 48, 64} if size <= 32 else {48, 72, 96}
        assert sides == expected


def test_large_inputs_enlarge_the_largest_crops_that_fit():
    from edgezoo.zoo.data.natural_patches import crop_sides

    assert crop_sides(32, [PHOTO, PHOTO]) == (32, 48, 64)
    assert crop_sides(64, [PHOTO, PHOTO]) == (64, 96, 128)
    assert crop_sides(96, [PHOTO, PHOTO]) == (64, 96, 128)  # the validation band is 128 px wide
    assert crop_sides(224, [PHOTO, PHOTO]) == (64, 96, 128)


def test_resize_matches_tensorflow_area_and_bilinear():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for side, size in ((48, 32), (64, 32), (64, 8), (96, 64), (32, 48), (64, 96)):
        crops = rng.random((3, side, side, 3)) * 255
        ours = resize_square(crops, size)
        method = "area" if size < side else "bilinear"
        theirs = tf.image.resize(crops, (size, size), method=method).numpy()
        np.testing.assert_allclose(ours, theirs, atol=2e-3)
    flat = np.full((2, 64, 64, 3), 200.0)
    np.testing.assert_allclose(resize_square(flat, 32), 200.0)
    blocks = rng.random((2, 64, 64, 3))
    np.testing.assert_allclose(resize_square(blocks, 32),
                               blocks.reshape(2, 32, 2, 32, 2, 3).mean(axis=(2, 4)))


def test_grid_draws_only_from_the_calibration_region(synthetic):
    images, data = synthetic
    shapes = [im.shape[:2] for im in images]
    grid = natural_patch_grid(size=32, stride=8, mirror=True, images=images)
    # per photograph: every stride-8 row and every stride-8 column of its calibration band
    bands = {0: 208, 1: 195}  # 0.325 of 640 and of 600 columns
    per_image = [((h - 32) // 8 + 1) * ((bands[k] - 32) // 8 + 1) for k, (h, _) in enumerate(shapes)]
    assert grid.shape == (2 * sum(per_image), 32, 32, 3) and grid.dtype == np.float32
    plain, mirrored = grid[: len(grid) // 2], grid[len(grid) // 2:]
    np.testing.assert_array_equal(plain[:, :, ::-1], mirrored)
    # no grid pixel is a validation or test pixel (squares rebuilt from the patches' values)
    held = {s: coverage([np.round(reconstruct(p)) for p in getattr(data, s).x.astype(np.float64)],
                        shapes) for s in ("val", "test")}
    for k, limit in bands.items():
        mine = grid[grid[:, 0, 0, 2] == k]
        assert len(mine) == 2 * per_image[k]
        assert mine[..., 1].min() >= 0 and mine[..., 1].max() <= limit - 1
        pixels = mine.reshape(-1, 3).astype(np.int64)
        for s in ("val", "test"):
            assert not held[s][k][pixels[:, 0], pixels[:, 1]].any()


def test_grid_dataset_shares_val_and_test(synthetic):
    images, data = synthetic
    grid = load_natural_patch_grid((32, 32, 3), seed=0, images=images)
    np.testing.assert_array_equal(grid.val.x, data.val.x)
    np.testing.assert_array_equal(grid.test.x, data.test.x)
    assert grid.train.x[..., 1].max() <= 207 and (grid.train.y == -1).all()
    assert grid.value_range == (0.0, 255.0) and grid.num_classes == 0 and "stride 8" in grid.source
    # shuffled: any prefix holds both photographs
    assert set(np.unique(grid.train.x[:50, 0, 0, 2])) == {0.0, 1.0}
    again = load_natural_patch_grid((32, 32, 3), seed=0, images=images)
    np.testing.assert_array_equal(grid.train.x, again.train.x)


def test_real_grid_dataset_shares_val_and_test(patches):
    grid = load_natural_patch_grid((32, 32, 3))
    np.testing.assert_array_equal(grid.val.x, patches.val.x)
    np.testing.assert_array_equal(grid.test.x, patches.test.x)
    assert len(grid.train) == 2 * 2 * ((427 - 32) // 8 + 1) * ((208 - 32) // 8 + 1)
    assert 0 <= grid.train.x.min() and grid.train.x.max() <= 255


@pytest.mark.parametrize("shape", [(32, 48, 3), (32, 32, 1), (32, 32), (32, 32, 4), (32, 32, 3, 1),
                                   (0, 0, 3)])
def test_bad_shapes_are_refused(shape):
    for loader in (load_natural_patches, load_natural_patch_grid, natural_patch_rectangles):
        with pytest.raises(DataError, match=re.escape(str(tuple(shape)))):
            loader(shape)


def test_values_are_always_raw_pixels():
    with pytest.raises(TypeError):
        load_natural_patches((32, 32, 3), scale=1.0)
    with pytest.raises(TypeError):
        natural_patch_grid(32, scale=1.0)
