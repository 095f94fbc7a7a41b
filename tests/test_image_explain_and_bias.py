"""Image explanations (Clarify's CV explainability: KernelSHAP over SLIC superpixels) for a
classifier and a detector, and bias metrics on image models' predictions."""
import json

import numpy as np
import pytest
import shap
from PIL import Image
from scipy import ndimage
from skimage.segmentation import slic

from fmeval.bias.analyze import analyze
from fmeval.bias.detection import average_precision, detection_bias, group_quality
from fmeval.errors import UserError
from fmeval.explain.image import baseline_image, explain_image, image_config, iou, matched_scores
from fmeval.explain.kernel_shap import row_seed

SETTINGS = image_config({"num_segments": 16, "segment_compactness": 10})


def scene(square_at=(10, 30), size=14, side=64, seed=0):
    """A smooth grey-green gradient with one red square."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side]
    image = np.stack([60 + x, 90 + y, 70 + 0 * x], axis=-1).astype(float) + rng.normal(0, 2, (side, side, 3))
    top, left = square_at
    image[top:top + size, left:left + size] = [230, 20, 20]
    return image.clip(0, 255).astype(np.uint8)


def red(images):
    return [(im[..., 0] > 180) & (im[..., 1] < 60) for im in images]


def red_in_the_window(images):
    """A planted classifier: its probability depends only on red pixels in one window."""
    return np.array([[mask[10:24, 30:44].mean()] for mask in red(images)])


def red_square_detector(images):
    """A planted detector: each red blob is a class-0 box scored by how square and full it is."""
    answers = []
    for mask in red(images):
        found, height, width = [], *mask.shape
        blobs, _ = ndimage.label(mask)
        for rows, cols in ndimage.find_objects(blobs):
            filled = mask[rows, cols].mean()
            found.append([0, round(float(filled), 6), cols.start / width, rows.start / height, cols.stop / width,
                          rows.stop / height])
        answers.append(found)
    return answers


def test_image_config_keys_follow_clarify():
    assert image_config({"model_type": "OBJECT_DETECTION"}) == {
        "model_type": "OBJECT_DETECTION", "num_segments": 20, "segment_compactness": 5.0,
        "feature_extraction_method": "segmentation", "max_objects": 3, "iou_threshold": 0.5, "context": 1.0}
    for bad, message in [({"model_type": "SEGMENTATION"}, "model_type must be one of"),
                         ({"num_segments": 1}, "num_segments must be an integer >= 2"),
                         ({"context": 1.5}, r"context must be a number in \[0, 1\]"),
                         ({"segments": 20}, r"unknown key\(s\) segments"),
                         ({"feature_extraction_method": "grid"}, "only 'segmentation'")]:
        with pytest.raises(UserError, match=message):
            image_config(bad)


def test_planted_region_ranks_first_and_values_add_up():
    image = scene()
    explained = explain_image(red_in_the_window, image, settings=SETTINGS, seed=2)
    values = explained.shap.values[0]
    assert explained.segments[16, 36] == int(np.argmax(values))  # the segment under the red square's centre
    masked = baseline_image(image, "mean", seed=0)
    full, empty = red_in_the_window([image])[0, 0], red_in_the_window([masked])[0, 0]
    assert values.sum() == pytest.approx(full - empty, abs=1e-6)
    assert full == 1.0 and empty == 0.0


def test_agreement_with_shap_kernel_explainer_on_the_same_masking():
    image = scene(square_at=(30, 8), seed=1)

    def darkness(images):
        return np.array([[255 - im.mean(), float(im[20:40, 10:30, 0].mean())] for im in images])

    explained = explain_image(darkness, image, settings=SETTINGS, baseline="black", num_samples=150, seed=5, item=3)
    segments = slic(image, n_segments=16, compactness=10, start_label=0, channel_axis=-1)
    assert len(np.unique(segments)) == explained.shap.values.shape[1]

    def masked(coalitions):
        return darkness([np.where(np.isin(segments, np.flatnonzero(row > 0.5))[..., None], image, 0)
                         for row in coalitions])

    explainer = shap.KernelExplainer(masked, np.zeros((1, explained.shap.values.shape[1])))
    np.random.seed(row_seed(5, 3))
    expected = np.asarray(explainer.explain(np.ones((1, explained.shap.values.shape[1])), nsamples=150)).T
    np.testing.assert_allclose(explained.shap.values, expected, atol=1e-9)


def test_detector_boxes_are_explained_by_their_matched_score():
    image = scene(square_at=(40, 8))
    settings = image_config({"model_type": "OBJECT_DETECTION", "num_segments": 16, "segment_compactness": 10})
    explained = explain_image(red_square_detector, image, settings=settings, seed=0)
    assert explained.objects.tolist() == [[0, 1.0, 8 / 64, 40 / 64, 22 / 64, 54 / 64]]
    values = explained.shap.values[0]
    assert explained.segments[47, 15] == int(np.argmax(values))
    assert values.sum() == pytest.approx(1.0 - 0.0, abs=1e-6)  # the box's score, against nothing found


def test_matching_by_iou_and_class():
    assert iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    found = np.array([[1, 0.9, 0, 0, 2, 2], [0, 0.8, 0, 0, 2, 2], [0, 0.6, 0.1, 0, 2, 2]])
    targets = np.array([[0, 0.99, 0, 0, 2, 2], [2, 0.5, 0, 0, 2, 2]])
    # class 0: the best-overlapping box (IoU 1, score 0.8), not the other class-0 one; class 2: none
    assert matched_scores(found, targets, 0.5).tolist() == [0.8, 0.0]


def test_average_precision_and_group_quality_by_hand():
    # ranked TP, FP, TP over 2 objects: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 1/2 + 1/2 * 2/3
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2) == pytest.approx(5 / 6)
    truth = [np.array([[0, 0, 0, .5, .5], [0, .5, .5, 1, 1]]), np.array([[1, 0, 0, .4, .4]])]
    found = [np.array([[0, .9, 0, 0, .5, .5], [0, .4, .5, .5, 1, 1], [0, .8, .6, 0, 1, .3]]),
             np.array([[0, .95, 0, 0, .4, .4]])]  # the last has the wrong class
    quality = group_quality(found, truth, iou_threshold=0.5, score_threshold=0.5)
    # kept at 0.5: .9 (TP), .8 (FP), .95 (FP, class 1 object missed): precision 1/3; found 1 of 3 objects
    assert quality["precision"] == pytest.approx(1 / 3) and quality["recall"] == pytest.approx(1 / 3)
    # class 0 ranked: .95 FP (no class-0 object there), .9 TP, .8 FP, .4 TP over 2 objects: precision
    # 1/2 at recall 1/2 and 1/2 at recall 1 -> AP 1/2; class 1: never detected -> 0
    assert quality["mAP"] == pytest.approx((1 / 2 + 0) / 2)
    table = detection_bias(found, truth, np.array([True, False]))
    assert table["group"]["recall"] == pytest.approx(0.5) and table["rest"]["recall"] == 0.0
    assert table["RD"] == pytest.approx(0.0 - 0.5)  # the rest's recall minus the group's, as Clarify's RD


def write_scenes(folder, count=8):
    """A manifest of scenes: the red square moves; half have a noisy background (the facet)."""
    folder.mkdir()
    lines = []
    for i in range(count):
        image = scene(square_at=(8 + 4 * i, 10 + 3 * i), seed=i)
        noisy = i % 2 == 1
        if noisy:
            image = (image.astype(int) + np.random.default_rng(i).integers(-90, 90, image.shape)).clip(0, 255)
            image = image.astype(np.uint8)
        Image.fromarray(image).save(folder / f"scene{i}.png")
        top, left = 8 + 4 * i, 10 + 3 * i
        lines.append({"source-ref": f"scene{i}.png", "background": "noisy" if noisy else "clean", "id": f"s{i}",
                      "objects": [[0, left / 64, top / 64, (left + 14) / 64, (top + 14) / 64]]})
    (folder / "manifest.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return folder / "manifest.jsonl"


def test_analyze_explains_images_and_measures_detection_bias(tmp_path):
    manifest = write_scenes(tmp_path / "scenes")
    config = {"dataset_type": "application/x-image", "label": "objects", "joinsource_name_or_index": "id",
              "facet": [{"name_or_index": "background", "value_or_threshold": ["noisy"]}],
              "methods": {"detection_bias": {"iou_threshold": 0.5},
                          "shap": {"num_samples": 100, "image_config": {"model_type": "OBJECT_DETECTION",
                                                                        "num_segments": 12, "max_objects": 1}}}}
    result = analyze(config, manifest, tmp_path / "out", model=red_square_detector)
    group = result["detection_bias_metrics"]["facets"]["background"][0]
    # noise breaks the red blob apart: the detector finds fewer squares on noisy backgrounds
    assert group["value_or_threshold"] == "noisy" and group["rest"]["recall"] == 1.0
    assert group["group"]["recall"] < 1.0
    rd = group["metrics"][0]
    assert rd["name"] == "RD" and rd["value"] == pytest.approx(group["rest"]["recall"] - group["group"]["recall"])
    lines = [json.loads(line) for line in (tmp_path / "out" / "explanations_shap" / "out.jsonl").read_text().splitlines()]
    assert [line["join_source_value"] for line in lines] == [f"s{i}" for i in range(8)]
    first = lines[0]
    segments = np.asarray(Image.open(tmp_path / "out" / "explanations_shap" / first["segments_png"]))
    assert len(first["attributions"][0]) == segments.max() + 1
    overlay = Image.open(tmp_path / "out" / "explanations_shap" / "images" / "00000_scene0_object0_0.png")
    assert overlay.size == (256, 256) and overlay.mode == "RGB"


def test_vision_classification_bias_reuses_the_metric_code(tmp_path):
    manifest = write_scenes(tmp_path / "scenes")
    config = {"dataset_type": "application/x-image", "label": "background", "label_values_or_threshold": ["clean"],
              "facet": [{"name_or_index": "id", "value_or_threshold": ["s0", "s1", "s2", "s3"]}],
              "methods": {"post_training_bias": {"methods": ["DPPL", "RD"]},
                          "shap": {"num_samples": 60, "image_config": {"num_segments": 8}}}}

    def looks_clean(images):  # probability of a clean background: little pixel-to-pixel noise
        return np.array([1.0 / (1.0 + np.abs(np.diff(im.astype(float), axis=1)).mean() / 10) for im in images])

    result = analyze(config, manifest, tmp_path / "out", model=looks_clean)
    predicted = looks_clean([np.asarray(Image.open(tmp_path / "scenes" / f"scene{i}.png")) for i in range(8)]) > 0.5
    assert predicted.tolist() == [True, False] * 4
    metrics = {m["name"]: m["value"] for m in result["post_training_bias_metrics"]["facets"]["id"][0]["metrics"]}
    assert metrics["DPPL"] == pytest.approx(0.5 - 0.5) and metrics["RD"] == pytest.approx(1.0 - 1.0)
    assert result["explanations"]["kernel_shap"]["label0"]["images_explained"] == 8


def test_image_inputs_errors_name_the_file(tmp_path):
    manifest = write_scenes(tmp_path / "scenes", count=2)
    (tmp_path / "scenes" / "scene1.png").write_bytes(b"not a png")
    config = {"dataset_type": "application/x-image", "methods": {"shap": {"image_config": {}}}}
    with pytest.raises(UserError, match=r"scene1.png: image of row 1 cannot be read"):
        analyze(config, manifest, tmp_path / "out", model=red_in_the_window)
    manifest.write_text(json.dumps({"source-ref": "s3://bucket/a.png"}) + "\n")
    with pytest.raises(UserError, match=r"manifest.jsonl:1: source-ref must be a local path"):
        analyze(config, manifest, tmp_path / "out", model=red_in_the_window)
    (tmp_path / "scenes" / "scene1.png").unlink()
    config["methods"]["shap"]["baseline"] = "grey"
    with pytest.raises(UserError, match="baseline for images must be one of mean, black, noise"):
        analyze(config, tmp_path / "scenes", tmp_path / "out", model=red_in_the_window)


def test_cli_writes_image_explanations_from_a_clarify_config(tmp_path, capsys):
    import joblib

    from fmeval.cli import main

    manifest = write_scenes(tmp_path / "scenes", count=4)
    joblib.dump(red_square_detector, tmp_path / "detector.joblib")
    config = {"dataset_type": "application/x-image", "label": "objects", "predictor": {"model_path": str(
        tmp_path / "detector.joblib")}, "facet": [{"name_or_index": "background"}],
              "methods": {"detection_bias": {}, "shap": {"num_samples": 50, "image_config": {
                  "model_type": "OBJECT_DETECTION", "num_segments": 8}}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    arguments = ["analyze", "--config", str(tmp_path / "config.json"), "--data", str(manifest), "-o", str(tmp_path / "o")]
    assert main(arguments) == 2  # a pickled model runs code: refused without --trust-model
    assert "--trust-model" in capsys.readouterr().err
    assert main([*arguments, "--trust-model"]) == 0
    printed = capsys.readouterr().out
    assert "detection, background=clean: RD=" in printed and "detection, background=noisy: RD=" in printed
    assert len(list((tmp_path / "o" / "explanations_shap" / "images").glob("*_object0_0.png"))) == 4


def test_an_image_endpoint_gets_base64_png_through_the_runner(tmp_path, monkeypatch):
    """A real loopback server decodes each image and answers the red model's probability."""
    import base64
    import http.server
    import io
    import threading

    from fmeval.bias.models import from_config

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            image = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"]))))
            answer = json.dumps({"probability": float(red_in_the_window([image])[0, 0])}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    monkeypatch.setenv("FMEVAL_RESPONSE_CACHE", str(tmp_path / "cache.sqlite"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        predict = from_config({"url": f"http://127.0.0.1:{server.server_address[1]}/invocations",
                               "content_template": '{"image": $features}', "probability": "probability"})
        image = scene()
        explained = explain_image(predict, image, settings=SETTINGS, num_samples=80, seed=2)
        direct = explain_image(red_in_the_window, image, settings=SETTINGS, num_samples=80, seed=2)
        np.testing.assert_allclose(explained.shap.values, direct.shap.values, atol=1e-12)
        predict.close()
    finally:
        server.shutdown()
        server.server_close()
