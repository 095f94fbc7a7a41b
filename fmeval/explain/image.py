"""Explanations of image models, as in SageMaker Clarify's computer-vision explainability:
KernelSHAP over SLIC superpixels (scikit-image), each kept or filled with a baseline.

`image_config` takes Clarify's keys: `model_type` (IMAGE_CLASSIFICATION or OBJECT_DETECTION),
`num_segments` (about how many superpixels; 20 here, Clarify's SLIC default is 100),
`segment_compactness` (SLIC's balance of colour and space, 5), `feature_extraction_method`
("segmentation", the only one), and for detection `max_objects` (how many of the detected boxes
are explained, by score, 3), `iou_threshold` (0.5) and `context` (1.0). The `baseline` that fills
a masked superpixel is "mean" (the image's mean colour, the default), "black", or "noise"
(uniform, seeded).

A classifier's outputs are explained as they are (one value per class). For a detector, each
box it finds on the whole image is explained by its score: on a masked image, the score of the
box of the same class that overlaps it most (IoU >= `iou_threshold`), else 0. With `context`
below 1, the image outside the box is faded toward the baseline in every evaluation, so that
the explanation looks at the object rather than its surroundings.

A detector answers with rows `[class, score, x0, y0, x1, y1]`, corners as fractions of the
image's width and height (SageMaker's object-detection output).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from fmeval.errors import UserError
from fmeval.explain.kernel_shap import row_seed
from fmeval.explain.units import UnitValues, explain_units

IMAGE_CONFIG_KEYS = ("model_type", "num_segments", "segment_compactness", "feature_extraction_method",
                     "max_objects", "iou_threshold", "context")
MODEL_TYPES = ("IMAGE_CLASSIFICATION", "OBJECT_DETECTION")
BASELINES = ("mean", "black", "noise")


def image_config(config: Any) -> dict[str, Any]:
    """Clarify's `image_config`, checked, with its defaults."""
    if not isinstance(config, dict):
        raise UserError(f'shap.image_config must be an object like {{"model_type": "IMAGE_CLASSIFICATION"}}, '
                        f"got {config!r}")
    unknown = sorted(set(config) - set(IMAGE_CONFIG_KEYS))
    if unknown:
        raise UserError(f"shap.image_config: unknown key(s) {', '.join(unknown)}; known: {', '.join(IMAGE_CONFIG_KEYS)}")
    checked = {"model_type": "IMAGE_CLASSIFICATION", "num_segments": 20, "segment_compactness": 5.0,
               "feature_extraction_method": "segmentation", "max_objects": 3, "iou_threshold": 0.5, "context": 1.0,
               **config}
    if checked["model_type"] not in MODEL_TYPES:
        raise UserError(f"shap.image_config.model_type must be one of {', '.join(MODEL_TYPES)}, "
                        f"got {checked['model_type']!r}")
    if checked["feature_extraction_method"] != "segmentation":
        raise UserError("shap.image_config.feature_extraction_method: only 'segmentation' (SLIC superpixels) exists")
    for key, low in (("num_segments", 2), ("max_objects", 1)):
        if not isinstance(checked[key], int) or checked[key] < low:
            raise UserError(f"shap.image_config.{key} must be an integer >= {low}, got {checked[key]!r}")
    for key, low, high in (("segment_compactness", 0, None), ("iou_threshold", 0, 1), ("context", 0, 1)):
        value = checked[key]
        if not isinstance(value, (int, float)) or value < low or (high is not None and value > high) or (
                key == "segment_compactness" and value == 0):
            bounds = f"in [{low}, {high}]" if high is not None else "> 0"
            raise UserError(f"shap.image_config.{key} must be a number {bounds}, got {value!r}")
    return checked


def superpixels(image: np.ndarray, *, num_segments: int, compactness: float) -> np.ndarray:
    """SLIC segment labels 0..k-1 for each pixel of an (height, width, 3) image."""
    from skimage.segmentation import slic

    labels = slic(image, n_segments=num_segments, compactness=compactness, start_label=0, channel_axis=-1)
    _, dense = np.unique(labels, return_inverse=True)  # SLIC may skip numbers: make them 0..k-1
    return dense.reshape(labels.shape)


def baseline_image(image: np.ndarray, kind: str, *, seed: int) -> np.ndarray:
    if kind not in BASELINES:
        raise UserError(f"shap.baseline for images must be one of {', '.join(BASELINES)}, got {kind!r}")
    if kind == "black":
        return np.zeros_like(image)
    if kind == "noise":
        return np.random.default_rng(seed).integers(0, 256, image.shape, dtype=np.uint8)
    return np.broadcast_to(image.reshape(-1, image.shape[-1]).mean(axis=0).round().astype(np.uint8), image.shape).copy()


def masked_images(image: np.ndarray, segments: np.ndarray, fill: np.ndarray,
                  coalitions: np.ndarray) -> list[np.ndarray]:
    """The image with the segments not kept in each coalition replaced by `fill`."""
    return [np.where(row[segments][..., None], image, fill) for row in coalitions]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def detections(output: Any, where: str) -> np.ndarray:
    """A detector's answer as an (objects, 6) array of [class, score, x0, y0, x1, y1]."""
    rows = np.asarray(output, dtype=float)
    if rows.size == 0:
        return np.zeros((0, 6))
    if rows.ndim != 2 or rows.shape[1] != 6:
        raise UserError(f"{where}: a detector must answer rows of [class, score, x0, y0, x1, y1], got shape {rows.shape}")
    return rows


def matched_scores(found: np.ndarray, targets: np.ndarray, iou_threshold: float) -> np.ndarray:
    """For each target box, the score of the same-class box in `found` that overlaps it most
    (at least `iou_threshold`), else 0."""
    scores = np.zeros(len(targets))
    for t, target in enumerate(targets):
        best = 0.0
        for box in found:
            if box[0] == target[0]:
                overlap = iou(box[2:], target[2:])
                if overlap >= iou_threshold and overlap > best:
                    best, scores[t] = overlap, box[1]
    return scores


@dataclass
class ImageExplanation:
    """One image's superpixels and their SHAP values (outputs x segments). For a detector the
    outputs are the explained boxes, `objects` ([class, score, x0, y0, x1, y1] each)."""

    segments: np.ndarray
    shap: UnitValues
    objects: np.ndarray | None = None


def explain_image(predict: Callable[[list[np.ndarray]], Any], image: np.ndarray, *, settings: dict[str, Any],
                  baseline: str = "mean", num_samples: int | str = "auto", seed: int = 0,
                  item: int = 0) -> ImageExplanation:
    """SHAP values of the superpixels of `image` (height, width, 3; uint8) under `predict`."""
    segments = superpixels(image, num_segments=settings["num_segments"], compactness=settings["segment_compactness"])
    fill = baseline_image(image, baseline, seed=row_seed(seed, item))
    count = int(segments.max()) + 1
    if settings["model_type"] == "IMAGE_CLASSIFICATION":
        def score(coalitions: np.ndarray) -> np.ndarray:
            return np.asarray(predict(masked_images(image, segments, fill, coalitions)), dtype=float).reshape(
                len(coalitions), -1)

        return ImageExplanation(segments, explain_units(score, count, num_samples=num_samples, seed=seed, item=item))

    found = detections(predict([image])[0], f"image {item}")
    objects = found[np.argsort(-found[:, 1], kind="stable")][: settings["max_objects"]]
    if not len(objects):
        raise UserError(f"image {item}: the detector found no object to explain")
    height, width = image.shape[:2]
    context, source = settings["context"], image
    if context < 1:  # fade everything outside the explained boxes toward the baseline
        inside = np.zeros((height, width), dtype=bool)
        for _, _, x0, y0, x1, y1 in objects:
            inside[int(y0 * height):int(np.ceil(y1 * height)), int(x0 * width):int(np.ceil(x1 * width))] = True
        source = np.where(inside[..., None], image, (context * image + (1 - context) * fill).round().astype(np.uint8))

    def box_scores(coalitions: np.ndarray) -> np.ndarray:
        answers = predict(masked_images(source, segments, fill, coalitions))
        return np.stack([matched_scores(detections(a, f"image {item}"), objects, settings["iou_threshold"])
                         for a in answers])

    return ImageExplanation(segments, explain_units(box_scores, count, num_samples=num_samples, seed=seed, item=item),
                            objects)


def overlay_png(image: np.ndarray, explanation: ImageExplanation, output: int, path: Any) -> None:
    """The image in grey under a heat map of one output's segment values (red raises it, blue
    lowers it), with the segment boundaries, and the explained box for a detector."""
    from PIL import Image, ImageDraw
    from skimage.segmentation import find_boundaries

    values = explanation.shap.values[output]
    scale = float(np.max(np.abs(values))) or 1.0
    per_pixel = values[explanation.segments] / scale  # in [-1, 1]
    grey = image.mean(axis=2, keepdims=True).repeat(3, axis=2) * 0.6 + 255 * 0.4
    colour = np.where(per_pixel[..., None] > 0, [215, 48, 39], [69, 117, 180])
    strength = np.abs(per_pixel)[..., None] * 0.75
    picture = (grey * (1 - strength) + colour * strength)
    picture[find_boundaries(explanation.segments, mode="inner")] = [255, 255, 255]
    canvas = Image.fromarray(picture.round().astype(np.uint8))
    if explanation.objects is not None:
        _, _, x0, y0, x1, y1 = explanation.objects[output]
        width, height = canvas.size
        ImageDraw.Draw(canvas).rectangle([x0 * width, y0 * height, x1 * width - 1, y1 * height - 1],
                                         outline=(255, 200, 0), width=2)
    side = max(canvas.size)
    if side < 256:  # small images are enlarged, without blurring, so that they can be seen
        canvas = canvas.resize((canvas.size[0] * (256 // side), canvas.size[1] * (256 // side)), Image.NEAREST)
    canvas.save(path)
