"""Natural-image patches cut from scikit-learn's two bundled sample photographs.

Used wherever a task's own images are not available offline (calibrating and checking
CIFAR-10-style models such as the MLPerf Tiny IC ResNet, which takes raw pixels 0..255).

Each photograph (427 x 640) is cut into three vertical bands with a 16-pixel gap between
neighbours, and every crop lies wholly inside its split's band, so no two splits share a pixel:

- calibration (``train``): columns [0, 208)
- validation (``val``): columns [224, 352)
- test: columns [368, 640)

(the bands are the fractions ``BANDS`` of each photograph's width). Crops are squares at three
scales: 32, 48 and 64 pixels a side for inputs up to 32x32, s, 1.5 s and 2 s for an s x s input
up to 64x64, and 64, 96, 128 (the most the 128-pixel validation band holds) beyond. Top-left corners
are drawn at random (seeded) without replacement from every position that fits in the band, and the
crops resized to the input size by exact area averaging (antialiased; box averaging for integer
factors; bilinear when a crop must be enlarged). Per photograph and scale: 200 calibration, 100
validation, 400 test patches (1,200 / 600 / 2,400 in all), shuffled within each split. Values are
raw pixels in [0, 255] (float32; a model's input contract rescales them): the splits take
4,200 x s x s x 3 x 4 bytes (50 MB at 32x32, 2.5 GB at 224x224). Labels are -1: the photographs
have none, so use them for ranges, agreement and distillation.

``natural_patch_rectangles`` exposes every crop's source rectangle, in the order of the patches.
"""
import numpy as np

from edgezoo.base.errors import DataError
from edgezoo.zoo.data.digits import Dataset, Split

SPLITS = ("train", "val", "test")
# (start, stop) of each split's band as fractions of the photograph's width: 16 px gaps at 640 px
BANDS = {"train": (0.0, 0.325), "val": (0.35, 0.55), "test": (0.575, 1.0)}
# patches per photograph and per scale: 2 photographs x 3 scales -> 1,200 / 600 / 2,400
PER_IMAGE_PER_SCALE = {"train": 200, "val": 100, "test": 400}
SCALE_FACTORS = (1.0, 1.5, 2.0)  # crop sides relative to the base side
MIN_BASE = 32  # smaller inputs still crop at 32, 48, 64 px and shrink them


def sample_images():
    """scikit-learn's two sample photographs (china.jpg, flower.jpg), uint8 (427, 640, 3)."""
    from sklearn.datasets import load_sample_images

    return list(load_sample_images().images)


def _images(images):
    images = sample_images() if images is None else list(images)
    for i, image in enumerate(images):
        if np.ndim(image) != 3 or np.shape(image)[2] != 3:
            raise DataError(f"natural-patch source image {i} must be (height, width, 3), "
                            f"got shape {np.shape(image)}")
    return images


def _square_size(input_shape):
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or shape[0] != shape[1] or shape[2] != 3 or shape[0] < 1:
        named = tuple(input_shape) if np.iterable(input_shape) else input_shape
        raise DataError(f"natural patches are square RGB (size, size, 3), got input shape {named}")
    return shape[0]


def band_columns(width):
    """``{split: (x0, x1)}``: the columns of a photograph ``width`` pixels wide that each split
    may crop from (x1 exclusive)."""
    return {s: (int(round(a * width)), int(round(b * width))) for s, (a, b) in BANDS.items()}


def crop_sides(size, image_shapes):
    """The square crop sides used for a ``size`` x ``size`` input: base, 1.5 x base, 2 x base with
    base = max(size, 32), capped so the largest crop fits every split's band of every photograph
    (then crops are enlarged to ``size``)."""
    fit = min(min(h, x1 - x0) for h, w in image_shapes for x0, x1 in band_columns(w).values())
    base = min(max(size, MIN_BASE), fit // 2)
    if base < 1:
        raise DataError(f"photographs of shapes {image_shapes} are too small for natural patches")
    return tuple(sorted({int(round(f * base)) for f in SCALE_FACTORS}))


def natural_patch_rectangles(input_shape=(32, 32, 3), seed=0, image_shapes=None):
    """``{split: int64 array (n, 4)}`` of (image index, top, left, side) for every patch of
    ``load_natural_patches(input_shape, seed)``, in the order of the patches."""
    size = _square_size(input_shape)
    if image_shapes is None:
        image_shapes = [im.shape[:2] for im in sample_images()]
    image_shapes = [tuple(int(d) for d in s[:2]) for s in image_shapes]
    sides = crop_sides(size, image_shapes)
    out = {}
    for k, split in enumerate(SPLITS):
        count, rects = PER_IMAGE_PER_SCALE[split], []
        for i, (h, w) in enumerate(image_shapes):
            x0, x1 = band_columns(w)[split]
            for j, side in enumerate(sides):
                ny, nx = h - side + 1, x1 - x0 - side + 1
                if ny < 1 or nx < 1 or ny * nx < count:
                    raise DataError(f"{split} band of image {i} ({h}x{x1 - x0}) cannot hold {count} "
                                    f"distinct {side}-pixel crops for input shape {tuple(input_shape)}")
                rng = np.random.default_rng([seed, k, i, j])
                pos = rng.choice(ny * nx, size=count, replace=False)
                rects.append(np.stack([np.full(count, i), pos // nx, x0 + pos % nx,
                                       np.full(count, side)], axis=1))
        rects = np.concatenate(rects).astype(np.int64)
        # shuffled so any prefix (e.g. the first 300 calibration samples) mixes photos and scales
        out[split] = rects[np.random.default_rng([seed, k, 99]).permutation(len(rects))]
    return out


def _resize_matrix(n_in, n_out):
    """(n_out, n_in) weights: exact area averaging when shrinking (antialiased; box averaging for
    integer factors), bilinear with half-pixel centres when enlarging. Rows sum to 1."""
    m = np.zeros((n_out, n_in))
    if n_out <= n_in:
        r = n_in / n_out
        edges = np.arange(n_out + 1) * r
        for i in range(n_out):
            j = np.arange(int(np.floor(edges[i])), min(int(np.ceil(edges[i + 1])), n_in))
            m[i, j] = np.clip(np.minimum(j + 1, edges[i + 1]) - np.maximum(j, edges[i]), 0, None)
    else:
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        j0 = np.floor(src).astype(int)
        j1 = np.minimum(j0 + 1, n_in - 1)
        np.add.at(m, (np.arange(n_out), j0), 1 - (src - j0))
        np.add.at(m, (np.arange(n_out), j1), src - j0)
    return m / m.sum(axis=1, keepdims=True)


def _apply_taps(x, m, axis):
    """``m`` applied along ``axis`` of ``x`` using only its few non-zero taps per row."""
    taps = int((m > 0).sum(axis=1).max())
    cols = np.argsort(m <= 0, axis=1, kind="stable")[:, :taps]  # non-zero columns first
    weights = np.take_along_axis(m, cols, axis=1)
    shape = [1] * x.ndim
    shape[axis] = m.shape[0]
    out = 0.0
    for t in range(taps):
        out = out + np.take(x, cols[:, t], axis=axis) * weights[:, t].reshape(shape)
    return out


def resize_square(crops, size):
    """Resize (n, side, side, c) crops to (n, size, size, c), float64 (see ``_resize_matrix``)."""
    crops = np.asarray(crops, np.float64)
    if crops.shape[1] == size:
        return crops
    m = _resize_matrix(crops.shape[1], size)
    return _apply_taps(_apply_taps(crops, m, 1), m, 2)


def _cut(images, rects, size):
    x = np.zeros((len(rects), size, size, 3), np.float32)
    for side in np.unique(rects[:, 3]):
        every = np.flatnonzero(rects[:, 3] == side)
        for idx in np.array_split(every, -(-len(every) // 64)):  # small chunks stay in cache
            crops = np.stack([images[i][y: y + side, c: c + side] for i, y, c, _ in rects[idx]])
            x[idx] = resize_square(crops, size)
    return x


def _unlabelled(x):
    return Split(x, np.full(len(x), -1, np.int64))


def _describe(image_shapes, size, sides, rects):
    h, w = image_shapes[0]
    bands = band_columns(w)
    same = all(s == (h, w) for s in image_shapes)
    where = ("columns " + ", ".join(f"{s} [{a}, {b})" for s, (a, b) in bands.items())
             + f" of each {h}x{w} photograph" if same else
             "width fractions " + ", ".join(f"{s} [{a}, {b})" for s, (a, b) in BANDS.items()))
    counts = ", ".join(f"{s} {len(rects[s])} ({PER_IMAGE_PER_SCALE[s]} per photograph per scale)"
                       for s in SPLITS)
    return (f"{len(image_shapes)} photographs cut into vertical bands ({where}); every crop lies "
            f"inside its split's band, so no two splits share a pixel. Square crops of "
            f"{', '.join(map(str, sides))} px, top-left corners drawn without replacement (seeded), "
            f"resized to {size}x{size} (area averaging; bilinear when enlarging); raw pixels 0..255; "
            f"{counts}; labels -1")


def load_natural_patches(input_shape=(32, 32, 3), seed=0, *, images=None):
    """Calibration (``train``), validation (``val``) and test patches from disjoint bands of the
    photographs, raw pixel values in [0, 255] (``value_range``), labels -1, ``num_classes`` 0.

    ``images``: source photographs (H, W, 3) instead of scikit-learn's two (for tests).
    """
    size = _square_size(input_shape)
    images = _images(images)
    shapes = [im.shape[:2] for im in images]
    rects = natural_patch_rectangles(input_shape, seed, shapes)
    splits = {s: _unlabelled(_cut(images, rects[s], size)) for s in SPLITS}
    source = f"natural_patches(seed={seed}): " + _describe(shapes, size, crop_sides(size, shapes), rects)
    return Dataset("natural_patches", splits["train"], splits["val"], splits["test"], num_classes=0,
                   value_range=(0.0, 255.0), source=source)


def natural_patch_grid(size=32, stride=8, mirror=True, *, images=None):
    """Every ``size``-pixel patch at ``stride`` from the calibration band of each photograph (never
    a validation or test pixel), then (``mirror``) all of them flipped left-right: many unlabelled
    inputs, e.g. for distillation. Raw pixels 0..255, float32, ``size`` x ``size`` x 3."""
    size, stride = int(size), int(stride)
    if size < 1 or stride < 1:
        raise DataError(f"natural patch grid needs size and stride >= 1, got {size}, {stride}")
    patches = []
    for image in _images(images):
        x0, x1 = band_columns(image.shape[1])["train"]
        patches += [image[y: y + size, x: x + size]
                    for y in range(0, image.shape[0] - size + 1, stride)
                    for x in range(x0, x1 - size + 1, stride)]
    if not patches:
        raise DataError(f"no {size}-pixel patch fits the calibration band of the photographs")
    x = np.stack(patches).astype(np.float32)
    return np.concatenate([x, x[:, :, ::-1]]) if mirror else x


def load_natural_patch_grid(input_shape=(32, 32, 3), seed=0, *, images=None):
    """``natural_patch_grid`` (stride 8, mirrored) as the training split, shuffled with ``seed`` so
    any prefix samples both photographs, with the ``val`` and ``test`` splits of
    ``load_natural_patches(input_shape, seed)``. Inputs larger than the calibration band allows
    (128 px for the sample photographs) are grid crops of the largest side that fits, enlarged."""
    size = _square_size(input_shape)
    images = _images(images)
    patches = load_natural_patches(input_shape, seed, images=images)
    side = min(size, max(crop_sides(size, [im.shape[:2] for im in images])))
    x = natural_patch_grid(size=side, stride=8, images=images)
    if side != size:
        x = np.concatenate([resize_square(c, size).astype(np.float32) for c in np.array_split(
            x, max(1, len(x) // 256))])
    x = x[np.random.default_rng(seed).permutation(len(x))]
    source = (f"natural_patch_grid(seed={seed}): train = every {side}-pixel crop at stride 8 of the "
              f"calibration band, plus its mirror image ({len(x)} patches"
              f"{f', enlarged to {size}x{size}' if side != size else ''}, shuffled); val and test as "
              + patches.source)
    return Dataset("natural_patch_grid", _unlabelled(x), patches.val, patches.test, num_classes=0,
                   value_range=(0.0, 255.0), source=source)
