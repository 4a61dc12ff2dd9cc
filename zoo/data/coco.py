"""COCO-format detection data: checks of an annotation file, and a user's folder as a split.

A folder holds ``annotations.json`` (COCO: ``images``, ``annotations``, ``categories``) and the
images it names under ``images/``. Every annotation is checked before anything trains on it:
a box outside its image, of zero or negative area, of an unknown category or of an image the
file does not list is an error naming the annotation, unless the caller asks for such boxes to
be dropped (then they are counted and warned about). An image with no annotation is valid.
"""
import warnings
from pathlib import Path

import numpy as np

from edgezoo.base.errors import DataError

MAX_ANNOTATION_BYTES = 512 * 2**20
EDGE_TOLERANCE = 1e-3  # pixels: rounding in a writer's box coordinates is not "outside"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class DroppedBoxesWarning(UserWarning):
    """Annotations dropped at the caller's request (``drop_invalid=True``), with their count."""


def _problem(a, images, categories):
    """Why annotation ``a`` is unusable, or None."""
    box = a.get("bbox")
    if not isinstance(box, (list, tuple)) or len(box) != 4 or \
            not all(isinstance(v, (int, float)) and np.isfinite(v) for v in box):
        return "its bbox is not four finite numbers [x, y, width, height]"
    if a.get("image_id") not in images:
        return f"image_id {a.get('image_id')!r} is not in the file's images"
    if a.get("category_id") not in categories:
        return (f"category_id {a.get('category_id')!r} is not one of the categories "
                f"{sorted(categories)}")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return f"its box has zero or negative area (width {w:g}, height {h:g})"
    image = images[a["image_id"]]
    tol = EDGE_TOLERANCE
    if x < -tol or y < -tol or x + w > image["width"] + tol or y + h > image["height"] + tol:
        return (f"its box [{x:g}, {y:g}, {w:g}, {h:g}] lies outside its "
                f"{image['width']}x{image['height']} image")
    return None


def check_coco(coco, *, drop_invalid=False, where="annotations"):
    """The annotation dict with its structure checked; unusable boxes raise DataError (or, with
    ``drop_invalid``, are dropped and counted in a DroppedBoxesWarning). Returns (coco, dropped
    {reason: count})."""
    if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list) for k in
                                             ("images", "annotations", "categories")):
        raise DataError(f"{where}: a COCO file is a JSON object with lists 'images', "
                        "'annotations' and 'categories'")
    images = {}
    for im in coco["images"]:
        if not isinstance(im, dict) or not all(isinstance(im.get(k), int) and im.get(k) > 0
                                               for k in ("width", "height")) or "id" not in im:
            raise DataError(f"{where}: image entry {im!r} needs an id and positive integer "
                            "width and height")
        if im["id"] in images:
            raise DataError(f"{where}: image id {im['id']!r} appears twice")
        images[im["id"]] = im
    categories = {}
    for c in coco["categories"]:
        if not isinstance(c, dict) or "id" not in c or c["id"] in categories:
            raise DataError(f"{where}: category {c!r} needs an id of its own")
        categories[c["id"]] = c
    kept, dropped = [], {}
    for a in coco["annotations"]:
        if not isinstance(a, dict):
            raise DataError(f"{where}: annotation {a!r} is not an object")
        problem = _problem(a, images, categories)
        if problem is None:
            kept.append(a)
            continue
        if not drop_invalid:
            raise DataError(f"{where}: annotation {a.get('id', '?')!r} cannot be used: {problem}. "
                            "Fix the file, or load it with drop_invalid=True (--drop-invalid) to "
                            "drop such boxes with a count")
        key = problem.split(" (")[0].split(" [")[0]
        dropped[key] = dropped.get(key, 0) + 1
    if dropped:
        warnings.warn(f"{where}: dropped {sum(dropped.values())} annotation(s): "
                      + "; ".join(f"{n} x {reason}" for reason, n in dropped.items()),
                      DroppedBoxesWarning, stacklevel=2)
    return {**coco, "annotations": kept}, dropped


def _read_image(path, size):
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (size[1], size[0]):
                raise DataError(f"{path.name} is {image.size[0]}x{image.size[1]}; the model takes "
                                f"{size[1]}x{size[0]} images: resize the folder's images (and "
                                "their boxes) to that size first")
            return np.asarray(image, np.float32) / 255.0
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def load_coco_folder(folder, image_size, *, drop_invalid=False):
    """A user's COCO folder (``annotations.json`` + ``images/``) as a DetectionSplit of images
    in [0, 1] of ``image_size`` (H, W)."""
    from edgezoo.base.files import read_json
    from edgezoo.zoo.data.shapes import DetectionSplit

    folder = Path(folder)
    coco = read_json(folder / "annotations.json", "COCO annotation file", DataError,
                     max_bytes=MAX_ANNOTATION_BYTES)
    coco, _ = check_coco(coco, drop_invalid=drop_invalid, where=str(folder / "annotations.json"))
    h, w = image_size
    for im in coco["images"]:
        if (im["height"], im["width"]) != (h, w):
            raise DataError(f"image {im['id']} ({im.get('file_name')}) is {im['width']}x"
                            f"{im['height']}; the model takes {w}x{h} images")
    xs = []
    for im in coco["images"]:
        name = str(im.get("file_name", ""))
        path = (folder / "images" / name).resolve()
        if not name or Path(name).suffix.lower() not in IMAGE_SUFFIXES or \
                (folder / "images").resolve() not in path.parents:
            raise DataError(f"image {im['id']}: file_name {name!r} must name a "
                            f"{'/'.join(IMAGE_SUFFIXES)} file inside {folder / 'images'}")
        if not path.is_file():
            raise DataError(f"image {im['id']}: {path} does not exist")
        xs.append(_read_image(path, (h, w)))
    x = np.stack(xs) if xs else np.zeros((0, h, w, 3), np.float32)
    return DetectionSplit(x, coco)


def write_coco_folder(split, folder):
    """Write ``split`` as a COCO folder (PNG images, ``annotations.json``)."""
    import json

    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for image, im in zip(split.x, split.coco["images"]):
        pixels = np.clip(np.round(np.asarray(image) * 255), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "images" / im["file_name"])
    (folder / "annotations.json").write_text(json.dumps(split.coco))
