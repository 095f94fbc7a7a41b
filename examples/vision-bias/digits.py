"""Bias and explanations for an image classifier, on real handwritten digits (the UCI digits
that scikit-learn ships: nothing is downloaded).

The facet is stroke width: a digit written with a thick pen (more ink than the median) or a thin
one, a property of the writer rather than of the digit. The script writes the test images as
PNGs with a manifest (`source-ref`, `digit`, `stroke`), trains a classifier on the other half,
then runs fmeval's Clarify-style analysis: post-training bias of "is it a 7?" across stroke
widths, and KernelSHAP over superpixels of a few images.

    .venv/bin/python examples/vision-bias/digits.py runs/vision-bias
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from fmeval.bias.analyze import analyze

SCALE = 4  # 8x8 digits drawn as 32x32 images


class DigitClassifier:
    """A logistic regression on 8x8 digits, called with RGB images of any size: one column of
    probabilities per digit."""

    def __init__(self, images: np.ndarray, digits: np.ndarray):
        self.model = LogisticRegression(max_iter=5000).fit(images.reshape(len(images), -1), digits)

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        small = [np.asarray(Image.fromarray(image).convert("L").resize((8, 8), Image.BOX), dtype=float) / 255 * 16
                 for image in images]
        return self.model.predict_proba(np.stack(small).reshape(len(small), -1))


def write_dataset(folder: Path, images: np.ndarray, digits: np.ndarray, median_ink: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (image, digit) in enumerate(zip(images, digits)):
        pixels = (image / 16 * 255).round().astype(np.uint8)
        Image.fromarray(pixels).resize((8 * SCALE, 8 * SCALE), Image.NEAREST).convert("RGB").save(folder / f"{i:04d}.png")
        lines.append({"source-ref": f"{i:04d}.png", "id": i, "digit": int(digit),
                      "stroke": "thick" if image.sum() > median_ink else "thin"})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def main(output: Path, *, limit: int | None = None, explained: int = 3) -> dict:
    digits = load_digits()
    images, labels = digits.images, digits.target
    train, test = np.arange(len(images)) % 2 == 0, np.arange(len(images)) % 2 == 1
    model = DigitClassifier(images[train], labels[train])
    median_ink = float(np.median(images.sum(axis=(1, 2))))
    chosen = np.flatnonzero(test)[:limit]
    manifest = write_dataset(output / "images", images[chosen], labels[chosen], median_ink)
    config = {
        "dataset_type": "application/x-image", "label": "digit", "label_values_or_threshold": [7],
        "joinsource_name_or_index": "id", "facet": [{"name_or_index": "stroke", "value_or_threshold": ["thin"]}],
        "predictor": {"label_headers": [str(d) for d in range(10)]},
        "methods": {"pre_training_bias": {"methods": ["CI", "DPL"]},
                    "post_training_bias": {"methods": ["DPPL", "DI", "AD", "RD"]}},
    }
    result = analyze(config, manifest, output / "bias", model=model)
    # explanations of the first few images, each for the ten digits
    few = output / "explained"
    write_dataset(few, images[chosen[:explained]], labels[chosen[:explained]], median_ink)
    config["methods"] = {"shap": {"num_samples": 300, "baseline": "black",
                                  "image_config": {"num_segments": 12, "segment_compactness": 2}}}
    analyze(config, few / "manifest.jsonl", output / "explanations", model=model)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--limit", type=int, help="use only the first N test images")
    arguments = parser.parse_args()
    outcome = main(arguments.output, limit=arguments.limit)
    for entry in outcome["post_training_bias_metrics"]["facets"]["stroke"]:
        print(", ".join(f"{m['name']}={m['value']:.4f}" for m in entry["metrics"]), f"(stroke={entry['value_or_threshold']})")
    print(f"Results: {arguments.output}/bias/analysis.json, {arguments.output}/explanations/explanations_shap/images/")
