"""Detection data by name: the generated ``shapes`` set or a folder of train/val/test COCO folders."""
from pathlib import Path

from edgezoo.base.errors import DataError

DETECTION_SETS = ("shapes",)


def is_detection_source(source):
    """True for ``shapes`` and for a folder (detection data is the only data that is a folder)."""
    return str(source) in DETECTION_SETS or Path(str(source)).is_dir()


def load_detection_data(source, image_size, *, seed=0, drop_invalid=False):
    """``shapes`` at the model's image size, or a folder of train/val/test COCO folders."""
    from edgezoo.zoo.data.coco import load_coco_folder
    from edgezoo.zoo.data.shapes import DetectionDataset, load_shapes

    h, w = image_size
    if source == "shapes":
        if h != w:
            raise DataError(f"the shapes set has square images; the model takes {w}x{h}")
        return load_shapes(h, seed=seed)
    folder = Path(source)
    missing = [s for s in ("train", "val", "test") if not (folder / s / "annotations.json").is_file()]
    if missing:
        raise DataError(f"{folder}: detection data is 'shapes' or a folder with train/, val/ and "
                        f"test/ COCO folders (annotations.json + images/); missing: "
                        f"{', '.join(missing)}")
    splits = [load_coco_folder(folder / s, (h, w), drop_invalid=drop_invalid)
              for s in ("train", "val", "test")]
    names = tuple(c["name"] for c in splits[0].coco["categories"])
    return DetectionDataset(folder.name, *splits, names, source=f"COCO folders in {folder}")
