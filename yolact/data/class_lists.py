"""The class lists the authors' models were published with: the names, in the network's class order, and the
category ids a results file gives them. A config names its list (``YolactConfig.class_list``), so a file in the
authors' format, which stores no names, still predicts named classes."""

from __future__ import annotations

from yolact.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES

# Pascal VOC's 20 classes in the authors' order (data/config.py PASCAL_CLASSES); no label map: id = index + 1,
# as their scripts/convert_sbd.py writes the categories.
PASCAL_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
PASCAL_CATEGORY_IDS: tuple[int, ...] = tuple(range(1, len(PASCAL_CLASSES) + 1))

CLASS_LISTS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "coco": (COCO_CLASSES, COCO_CATEGORY_IDS),
    "pascal": (PASCAL_CLASSES, PASCAL_CATEGORY_IDS),
}


def class_list(name: str, num_classes: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The names and category ids of list ``name`` for a network of ``num_classes`` classes. A count that is not
    the list's (a custom model in the authors' format) gets numbered names, ``class_1`` ..., with ids 1..N."""
    names, ids = CLASS_LISTS[name]
    if len(names) == num_classes:
        return names, ids
    return tuple(f"class_{i}" for i in range(1, num_classes + 1)), tuple(range(1, num_classes + 1))
