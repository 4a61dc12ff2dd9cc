"""The generated shapes detection set and COCO folders: reproducible, annotated where the shapes
are, and every unusable annotation refused (or dropped and counted when asked)."""
import copy
import warnings

import numpy as np
import pytest

from edgezoo.base.errors import DataError
from edgezoo.zoo.data.coco import DroppedBoxesWarning, check_coco, load_coco_folder, write_coco_folder
from edgezoo.zoo.data.shapes import CLASSES, load_shapes, make_split


@pytest.fixture(scope="module")
def shapes():
    return load_shapes(sizes={"train": 60, "val": 20, "test": 20})


def test_same_seed_same_data_and_splits_never_repeat(shapes):
    again = load_shapes(sizes={"train": 60, "val": 20, "test": 20})
    np.testing.assert_array_equal(again.train.x, shapes.train.x)
    assert again.test.coco == shapes.test.coco
    images = [{im.tobytes() for im in split.x} for split in (shapes.train, shapes.val, shapes.test)]
    assert not images[0] & images[1] and not images[0] & images[2] and not images[1] & images[2]
    other = load_shapes(seed=1, sizes={"train": 60, "val": 20, "test": 20})
    assert not np.array_equal(other.train.x, shapes.train.x)


def test_annotations_are_valid_coco_and_cover_the_drawn_shapes(shapes):
    split = shapes.train
    checked, dropped = check_coco(split.coco)
    assert dropped == {} and len(checked["annotations"]) == len(split.coco["annotations"])
    per_image = np.bincount([a["image_id"] - 1 for a in split.coco["annotations"]],
                            minlength=len(split))
    assert (per_image == 0).any() and per_image.max() >= 3  # empty images and crowded ones
    assert {a["category_id"] for a in split.coco["annotations"]} == set(range(1, len(CLASSES) + 1))
    # each box holds its shape: the box's pixels differ from the background around the image's edge
    for a in split.coco["annotations"][:40]:
        image = split.x[a["image_id"] - 1]
        x, y, w, h = a["bbox"]
        inside = image[int(y + h / 2), int(x + w / 2)]
        assert 0 <= x and x + w <= 64 and 0 <= y and y + h <= 64 and w * h == pytest.approx(
            a["area"], rel=1e-3)
        assert np.all((0 <= inside) & (inside <= 1))
    y = split.y
    assert len(y) == len(split) and all(t.shape[1] == 5 for t in y)
    boxes = np.concatenate([t for t in y if len(t)])
    assert boxes[:, 1:].min() >= 0 and boxes[:, 1:].max() <= 1


def test_a_shape_is_where_its_box_says():
    """One image, one object: the pixels that changed from the background lie in its box."""
    rng_split = make_split(7, 30)
    for im, boxes in zip(rng_split.x, rng_split.y):
        if len(boxes) == 1:
            _, cx, cy, w, h = boxes[0] * np.array([1, 64, 64, 64, 64])
            ys, xs = np.nonzero(np.abs(im - np.median(im.reshape(-1, 3), 0)).max(-1) > 0.25)
            # the colour patch's pixel centres fall inside the box (up to a pixel)
            assert xs.min() + 0.5 >= cx - w / 2 - 1 and xs.max() + 0.5 <= cx + w / 2 + 1
            assert ys.min() + 0.5 >= cy - h / 2 - 1 and ys.max() + 0.5 <= cy + h / 2 + 1
            return
    pytest.fail("no single-object image in 30")


def _bad(coco, **changes):
    bad = copy.deepcopy(coco)
    bad["annotations"][0].update(changes)
    return bad


@pytest.mark.parametrize("changes, match", [
    (dict(bbox=[60, 10, 10, 10]), r"lies outside its 64x64 image"),
    (dict(bbox=[10, 10, 0, 5]), "zero or negative area"),
    (dict(bbox=[10, 10, 5, -2]), "zero or negative area"),
    (dict(category_id=99), "category_id 99 is not one of the categories"),
    (dict(image_id=12345), "image_id 12345 is not in the file's images"),
    (dict(bbox=[1, 2, 3]), "not four finite numbers"),
])
def test_unusable_annotations_are_refused_or_dropped_and_counted(shapes, changes, match):
    coco = shapes.train.coco
    with pytest.raises(DataError, match=rf"annotation 1 cannot be used: .*{match}.*drop_invalid"):
        check_coco(_bad(coco, **changes))
    with pytest.warns(DroppedBoxesWarning, match="dropped 1 annotation"):
        kept, dropped = check_coco(_bad(coco, **changes), drop_invalid=True)
    assert sum(dropped.values()) == 1 and len(kept["annotations"]) == len(coco["annotations"]) - 1


def test_coco_folder_round_trip_and_its_bad_inputs(shapes, tmp_path):
    write_coco_folder(shapes.test, tmp_path / "set")
    split = load_coco_folder(tmp_path / "set", (64, 64))
    assert split.coco["annotations"] == shapes.test.coco["annotations"]
    assert np.abs(split.x - shapes.test.x).max() <= 0.5 / 255 + 1e-6  # 8-bit PNG
    with pytest.raises(DataError, match="is 64x64; the model takes 32x32"):
        load_coco_folder(tmp_path / "set", (32, 32))
    with pytest.raises(DataError, match="annotations.json does not exist"):
        load_coco_folder(tmp_path, (64, 64))
    coco = copy.deepcopy(shapes.test.coco)
    coco["images"][0]["file_name"] = "../../etc/passwd.png"
    (tmp_path / "set" / "annotations.json").write_text(__import__("json").dumps(coco))
    with pytest.raises(DataError, match="must name a .* file inside"):
        load_coco_folder(tmp_path / "set", (64, 64))


def test_images_without_objects_are_valid(shapes):
    coco = copy.deepcopy(shapes.val.coco)
    coco["annotations"] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept, dropped = check_coco(coco)
    assert kept["annotations"] == [] and dropped == {}
