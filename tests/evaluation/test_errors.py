"""The error analysis of ``yolact eval --errors``: one hand-made image with one error of each kind."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from yolact.evaluation.errors import ERROR_KINDS, classify_detections, image_errors

SIZE = 100
PERSON, CAR, DOG, CAT = 1, 3, 18, 17


def box_mask(x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def rle(mask: np.ndarray) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(mask))
    return {"size": encoded["size"], "counts": encoded["counts"].decode("ascii")}


TRUTHS = [  # (category, mask, crowd)
    (PERSON, box_mask(10, 10, 30, 30), 0),  # 0: found, and found again
    (CAR, box_mask(60, 10, 80, 30), 0),     # 1: called a dog
    (DOG, box_mask(10, 60, 30, 80), 0),     # 2: outlined poorly
    (CAT, box_mask(40, 40, 55, 55), 0),     # 3: touched by a person of poor outline: missed
    (PERSON, box_mask(70, 70, 100, 100), 1),  # 4: a crowd of people
]
DETECTIONS = [  # (category, mask, score, expected verdict)
    (PERSON, box_mask(10, 10, 30, 30), 0.9, "true_positive"),
    (PERSON, box_mask(12, 11, 31, 30), 0.8, "duplicate"),
    (DOG, box_mask(60, 10, 80, 30), 0.7, "classification"),
    (DOG, box_mask(20, 62, 40, 82), 0.6, "localisation"),  # IoU with the dog 0.29
    (PERSON, box_mask(46, 46, 60, 60), 0.5, "both"),  # IoU with the cat 0.24
    (PERSON, box_mask(0, 88, 8, 98), 0.4, "background"),
    (PERSON, box_mask(75, 75, 95, 95), 0.35, "ignored"),  # on the crowd
]


def test_one_error_of_each_kind() -> None:
    annotations = [{"id": i + 1, "category_id": c, "segmentation": rle(m), "iscrowd": crowd}
                   for i, (c, m, crowd) in enumerate(TRUTHS)]
    records = [{"category_id": c, "segmentation": rle(m), "score": s} for c, m, s, _ in DETECTIONS]
    errors = image_errors(records, annotations, SIZE, SIZE)
    verdicts = {d: "true_positive" for d, _ in errors.true_positives}
    verdicts |= {d: kind for d, kind, _ in errors.false_positives}
    verdicts |= {d: "ignored" for d in errors.ignored}
    assert [verdicts[d] for d in range(len(DETECTIONS))] == [v for *_, v in DETECTIONS]
    assert errors.missed == [3]  # the cat; the dog is accounted for by its localisation error, the car by its class
    assert errors.counts() == {"true_positive": 1, **dict.fromkeys(ERROR_KINDS, 1)}


def brute_force(ious: np.ndarray, classes: list, scores: list, truths: list) -> list[str]:
    """The rules again, spelled out for each detection without shortcuts (no crowds)."""
    taken: set = set()
    verdicts = []
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        candidates = [g for g in range(len(truths)) if truths[g] == classes[d] and g not in taken and ious[d, g] >= 0.5]
        if candidates:
            taken.add(max(candidates, key=lambda g: ious[d, g]))
            verdicts.append((d, "tp"))
            continue
        same = max([ious[d, g] for g in range(len(truths)) if truths[g] == classes[d]], default=0.0)
        other = max([ious[d, g] for g in range(len(truths)) if truths[g] != classes[d]], default=0.0)
        kind = ("localisation" if 0.1 <= same < 0.5 else "classification" if other >= 0.5 else
                "duplicate" if same >= 0.5 else "both" if 0.1 <= other < 0.5 else "background")
        verdicts.append((d, kind))
    return [kind for _, kind in sorted(verdicts)]


@pytest.mark.parametrize("seed", range(20))
def test_random_scenes_agree_with_the_rules_spelled_out(seed: int) -> None:
    rng = np.random.default_rng(seed)
    detections, truths = int(rng.integers(0, 8)), int(rng.integers(0, 6))
    ious = rng.choice([0.0, 0.05, 0.2, 0.45, 0.5, 0.7, 0.95], size=(detections, truths))
    classes = rng.integers(0, 3, detections).tolist()
    truth_classes = rng.integers(0, 3, truths).tolist()
    scores = rng.random(detections).tolist()
    errors = classify_detections(ious, classes, scores, truth_classes, [False] * truths)
    got = {d: "tp" for d, _ in errors.true_positives} | {d: kind for d, kind, _ in errors.false_positives}
    assert [got[d] for d in range(detections)] == brute_force(ious, classes, scores, truth_classes)
    assert len(errors.true_positives) + len(errors.false_positives) == detections
