"""Bias in object detection: how well a detector finds the objects of each group of images.

Per group of images (a facet value from the image metadata, e.g. `skin_tone`), at `iou_threshold`
(0.5): precision and recall of the detections scoring at least `score_threshold`, and the mean
average precision over classes (mAP@0.5, the all-point interpolated area under the
precision-recall curve, as in PASCAL VOC 2010 and later). A detection is a true positive when it
overlaps a not yet matched object of its class by at least the IoU threshold, higher scores
matched first.

The difference between groups reuses the post-training metric code: every annotated object is a
row whose label is positive (it is there) and whose prediction is whether it was found, so the
Recall Difference (RD, the rest's recall minus the group's) is Clarify's RD on those counts.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fmeval.bias import metrics as bias
from fmeval.errors import UserError
from fmeval.explain.image import iou


def boxes(value: Any, where: str, width: int) -> np.ndarray:
    """Rows of `width` numbers ([class, x0, y0, x1, y1] for annotations; [class, score, ...] for detections)."""
    try:
        rows = np.asarray(value if value is not None else [], dtype=float)
    except (TypeError, ValueError):
        raise UserError(f"{where}: expected rows of {width} numbers, got {str(value)[:100]}") from None
    if rows.size == 0:
        return np.zeros((0, width))
    if rows.ndim != 2 or rows.shape[1] != width:
        raise UserError(f"{where}: expected rows of {width} numbers, got shape {rows.shape}")
    return rows


def match(found: np.ndarray, truth: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching in one image: (is each detection a true positive, is each object found)."""
    true_positive = np.zeros(len(found), dtype=bool)
    matched = np.zeros(len(truth), dtype=bool)
    for d in np.argsort(-found[:, 1], kind="stable"):
        best, best_overlap = -1, iou_threshold
        for t, target in enumerate(truth):
            if not matched[t] and target[0] == found[d, 0]:
                overlap = iou(found[d, 2:], target[1:])
                if overlap >= best_overlap:
                    best, best_overlap = t, overlap
        if best >= 0:
            matched[best], true_positive[d] = True, True
    return true_positive, matched


def average_precision(scores: np.ndarray, true_positive: np.ndarray, objects: int) -> float:
    """The area under the interpolated precision-recall curve of ranked detections."""
    if objects == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(true_positive[order])
    recall = np.concatenate([[0.0], hits / objects, [1.0]])
    precision = np.concatenate([[0.0], hits / np.arange(1, len(order) + 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope: best precision at any higher recall
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def group_quality(found: Sequence[np.ndarray], truth: Sequence[np.ndarray], *, iou_threshold: float = 0.5,
                  score_threshold: float = 0.5) -> dict[str, Any]:
    """Precision, recall (at `score_threshold`) and mAP over the images of one group."""
    scores, positives, classes, found_objects = [], [], [], []
    for detected, annotated in zip(found, truth):
        true_positive, _ = match(detected, annotated, iou_threshold)
        scores.append(detected[:, 1])
        positives.append(true_positive)
        classes.append(detected[:, 0])
        kept = detected[detected[:, 1] >= score_threshold]
        found_objects.append(match(kept, annotated, iou_threshold)[1])
    scores_all, positives_all, classes_all = (np.concatenate(v) if v else np.zeros(0) for v in (scores, positives, classes))
    truth_classes = np.concatenate([t[:, 0] for t in truth]) if truth else np.zeros(0)
    kept = scores_all >= score_threshold
    per_class = [average_precision(scores_all[classes_all == c], positives_all[classes_all == c].astype(bool),
                                   int(np.sum(truth_classes == c))) for c in np.unique(truth_classes)]
    found_all = np.concatenate(found_objects) if found_objects else np.zeros(0, dtype=bool)
    return {
        "images": len(truth), "objects": int(len(truth_classes)), "detections": int(kept.sum()),
        "precision": float(positives_all[kept].mean()) if kept.any() else None,
        "recall": float(found_all.mean()) if len(found_all) else None,
        "mAP": float(np.mean(per_class)) if per_class else None,
        "found": found_all,
    }


def detection_bias(found: Sequence[np.ndarray], truth: Sequence[np.ndarray], group: np.ndarray, *,
                   iou_threshold: float = 0.5, score_threshold: float = 0.5) -> dict[str, Any]:
    """The quality table of the group (`group` true) and of the other images, and RD between them."""
    group = np.asarray(group, dtype=bool)
    rows = {}
    for name, chosen in (("group", group), ("rest", ~group)):
        rows[name] = group_quality([f for f, c in zip(found, chosen) if c], [t for t, c in zip(truth, chosen) if c],
                                   iou_threshold=iou_threshold, score_threshold=score_threshold)
    found_objects = np.concatenate([rows["rest"].pop("found"), rows["group"].pop("found")])
    in_group = np.concatenate([np.zeros(rows["rest"]["objects"], bool), np.ones(rows["group"]["objects"], bool)])
    counts = bias.Counts.of(in_group, np.ones(len(in_group), dtype=bool), found_objects)
    recall_difference = bias.evaluate(bias.post_training(counts), ["RD"])["RD"]
    return {**rows, "RD": recall_difference}
