"""``shapes``: a generated detection data set, seeded and reproducible, with COCO annotations.

Each image is a textured background (noise, stripes, checks or a gradient) with 0 to
``MAX_OBJECTS`` shapes of ``CLASSES``, each of a random colour and size, drawn in order so that
later shapes partly hide earlier ones (a placement overlapping an earlier shape by more than
``MAX_OVERLAP`` IoU is redrawn, so no object is hidden entirely); about one image in ten has no
object. A box is the shape's full extent in pixels (COCO ``[x, y, width, height]``). The three
splits come from independent seeds, so no image repeats between them.
"""
import dataclasses

import numpy as np

CLASSES = ("circle", "square", "triangle", "cross")
IMAGE_SIZE = 64
MAX_OBJECTS = 4
EMPTY_SHARE = 0.1
SIZE_RANGE = (10, 28)  # shape extent in pixels at IMAGE_SIZE (scaled with the image size)
MAX_OVERLAP = 0.3
SPLIT_SIZES = {"train": 2000, "val": 300, "test": 500}
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}  # which child of the seed makes each split


@dataclasses.dataclass(frozen=True)
class DetectionSplit:
    """Images (N, H, W, 3) in [0, 1] and their COCO annotation dict."""

    x: np.ndarray
    coco: dict

    def __len__(self):
        return len(self.x)

    @property
    def y(self):
        """Per image, an array (n, 5) of (class index, cx, cy, w, h) normalised to [0, 1]: the
        targets of the ``detection`` task."""
        return targets_from_coco(self.coco, self.x.shape[1:3])


@dataclasses.dataclass(frozen=True)
class DetectionDataset:
    name: str
    train: DetectionSplit
    val: DetectionSplit
    test: DetectionSplit
    classes: tuple
    value_range: tuple = (0.0, 1.0)
    source: str = ""

    @property
    def num_classes(self):
        return len(self.classes)


def _mask(kind, yy, xx, cx, cy, r):
    if kind == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2
    if kind == "square":
        return (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
    if kind == "triangle":  # apex up, base at cy + r
        inside_y = (yy >= cy - r) & (yy <= cy + r)
        half = (yy - (cy - r)) / 2
        return inside_y & (np.abs(xx - cx) <= half)
    if kind == "cross":
        bar = r / 3
        return (((np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= bar))
                | ((np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= bar)))
    raise ValueError(f"unknown shape {kind!r}")


def _background(rng, size):
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0.15, 0.85, 3)
    kind = rng.integers(4)
    if kind == 0:
        texture = rng.normal(0, 0.08, (size, size, 1))
    elif kind == 1:
        angle, freq = rng.uniform(0, np.pi), rng.uniform(3, 8)
        texture = 0.12 * np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)))[..., None]
    elif kind == 2:
        cells = rng.integers(4, 10)
        texture = 0.1 * (((xx * cells).astype(int) + (yy * cells).astype(int)) % 2 - 0.5)[..., None]
    else:
        texture = 0.25 * (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))[..., None]
    return np.clip(base + texture + rng.normal(0, 0.02, (size, size, 3)), 0, 1)


def _iou_xywh(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def make_image(rng, size=IMAGE_SIZE):
    """(image (size, size, 3) float32, [(class index, [x, y, w, h])])."""
    image = _background(rng, size)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    count = 0 if rng.uniform() < EMPTY_SHARE else int(rng.integers(1, MAX_OBJECTS + 1))
    scale = size / IMAGE_SIZE
    objects = []
    for _ in range(count):
        for _attempt in range(20):
            kind = int(rng.integers(len(CLASSES)))
            r = rng.uniform(*SIZE_RANGE) * scale / 2
            cx, cy = rng.uniform(r, size - r, 2)
            box = [cx - r, cy - r, 2 * r, 2 * r]  # every shape spans cx +- r, cy +- r
            if all(_iou_xywh(box, b) <= MAX_OVERLAP for _, b in objects):
                break
        else:
            continue
        colour = rng.uniform(0, 1, 3)
        while np.abs(colour - image.mean((0, 1))).max() < 0.3:  # visible against the background
            colour = rng.uniform(0, 1, 3)
        mask = _mask(CLASSES[kind], yy, xx, cx, cy, r)
        image[mask] = colour
        objects.append((kind, [float(v) for v in box]))
    return image.astype(np.float32), objects


def make_split(seed, count, size=IMAGE_SIZE, first_image_id=1):
    """``count`` images from ``seed`` and their COCO annotations (category ids 1..len(CLASSES))."""
    rng = np.random.default_rng(seed)
    images, coco_images, annotations = [], [], []
    for i in range(count):
        image, objects = make_image(rng, size)
        image_id = first_image_id + i
        images.append(image)
        coco_images.append({"id": image_id, "file_name": f"{image_id:06d}.png", "width": size,
                            "height": size})
        for kind, box in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": kind + 1, "bbox": [round(v, 3) for v in box],
                                "area": round(box[2] * box[3], 3), "iscrowd": 0})
    coco = {"images": coco_images, "annotations": annotations,
            "categories": [{"id": k + 1, "name": name} for k, name in enumerate(CLASSES)]}
    x = np.stack(images) if images else np.zeros((0, size, size, 3), np.float32)
    return DetectionSplit(x, coco)


def load_shapes(image_size=IMAGE_SIZE, seed=0, sizes=None):
    """The three splits, each from its own child of ``seed``."""
    sizes = {**SPLIT_SIZES, **(sizes or {})}
    children = np.random.SeedSequence(seed).spawn(len(SPLIT_STREAMS))
    splits = {name: make_split(children[k], sizes[name], image_size)
              for name, k in SPLIT_STREAMS.items()}
    how = (f"generated shapes (seed {seed}): {', '.join(f'{n} {sizes[n]}' for n in SPLIT_SIZES)} "
           f"images of {image_size}x{image_size}, {len(CLASSES)} classes, 0-{MAX_OBJECTS} objects "
           "an image, each split from its own seed")
    return DetectionDataset("shapes", splits["train"], splits["val"], splits["test"], CLASSES,
                            source=how)


def targets_from_coco(coco, image_hw):
    """Per image of ``coco["images"]`` (in order), an (n, 5) array of (class index, cx, cy, w, h)
    normalised by the image size; class index = position of the category in
    ``coco["categories"]``."""
    height, width = image_hw
    index = {c["id"]: k for k, c in enumerate(coco["categories"])}
    by_image = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        by_image[a["image_id"]].append([index[a["category_id"]], (x + w / 2) / width,
                                        (y + h / 2) / height, w / width, h / height])
    return [np.asarray(by_image[im["id"]], np.float32).reshape(-1, 5) for im in coco["images"]]
