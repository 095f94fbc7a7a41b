"""Explanations served with each prediction (SageMaker Clarify's online explainability), tabular.

The configuration is the endpoint's `ClarifyExplainerConfig`: `ShapConfig.ShapBaselineConfig.ShapBaseline`
(the baseline rows as CSV text), `ShapConfig.NumberOfSamples`, `ShapConfig.Seed`, `ShapConfig.UseLogit`, and
`InferenceConfig.FeatureHeaders` / `LabelHeaders`.

Everything that does not depend on the request is computed once, at start: the baseline's expected
output, and KernelSHAP's coalitions and their kernel weights, which depend only on the number of
features, `NumberOfSamples` and the seed (they are taken from `shap.KernelExplainer` itself, seeded).
A batch of rows (the requests that arrived together) is then one model call on every row's synthetic
rows, and one weighted least-squares solve with a right-hand side per row and output, as shap's own
`solve` does it for one row. So each row's values are those of
`shap.KernelExplainer(model, baseline).explain(row, nsamples=NumberOfSamples, l1_reg=False)` after
`np.random.seed(Seed)` (no L1 feature selection: the plain weighted least-squares solution). A row
equal to every baseline row in some feature (shap then leaves that feature out) is explained by shap
itself, the same way.
"""
from __future__ import annotations

import io
from typing import Any, Callable, Sequence

import numpy as np

from fmeval.errors import UserError

DEFAULT_SAMPLES = 100


class _Recorded(Exception):
    """Raised out of KernelSHAP once its synthetic rows are recorded: the rest of the pass is not needed."""


def read_config(config: dict[str, Any]) -> dict[str, Any]:
    """The options of a ClarifyExplainerConfig, checked."""
    if not isinstance(config, dict) or not isinstance(config.get("ShapConfig"), dict):
        raise UserError("the explainer config needs ShapConfig (SageMaker's ClarifyExplainerConfig)")
    shap_config = config["ShapConfig"]
    baseline = (shap_config.get("ShapBaselineConfig") or {}).get("ShapBaseline")
    if not isinstance(baseline, str) or not baseline.strip():
        raise UserError("ShapConfig.ShapBaselineConfig.ShapBaseline: give the baseline rows as CSV text "
                        "(ShapBaselineUri is not read)")
    try:
        rows = np.loadtxt(io.StringIO(baseline), delimiter=",", ndmin=2)
    except ValueError as exc:
        raise UserError(f"ShapConfig.ShapBaselineConfig.ShapBaseline is not numeric CSV: {exc}") from None
    samples = shap_config.get("NumberOfSamples", DEFAULT_SAMPLES)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UserError(f"ShapConfig.NumberOfSamples must be an integer >= 1, got {samples!r}")
    inference = config.get("InferenceConfig") or {}
    headers = inference.get("FeatureHeaders")
    if headers is not None and len(headers) != rows.shape[1]:
        raise UserError(f"InferenceConfig.FeatureHeaders has {len(headers)} names for {rows.shape[1]} baseline columns")
    return {"baseline": rows, "num_samples": samples, "seed": int(shap_config.get("Seed", 0)),
            "use_logit": bool(shap_config.get("UseLogit", False)), "feature_headers": headers,
            "label_headers": inference.get("LabelHeaders")}


class OnlineExplainer:
    """Predictions and KernelSHAP attributions of a batch of rows, with one model call per batch."""

    def __init__(self, predict: Callable[[np.ndarray], Any], *, baseline: np.ndarray, num_samples: int, seed: int = 0,
                 use_logit: bool = False, feature_headers: Sequence[str] | None = None,
                 label_headers: Sequence[str] | None = None):
        """`predict`: rows (a 2-D array) -> one output per row, or a row of outputs (e.g. class probabilities)."""
        import shap

        self.model = lambda rows: np.asarray(predict(rows), dtype=float).reshape(len(rows), -1)
        self.baseline = np.asarray(baseline, dtype=float)
        self.num_samples, self.seed = num_samples, seed
        self.feature_headers = list(feature_headers) if feature_headers else [f"feature_{i}" for i in
                                                                              range(self.baseline.shape[1])]
        self.label_headers = list(label_headers) if label_headers else None
        self.calls = 0  # model calls after start
        self._recording = False
        self.explainer = shap.KernelExplainer(self._answer, self.baseline, link="logit" if use_logit else "identity")
        self.link = self.explainer.link.f
        self.fnull = np.asarray(self.explainer.fnull, dtype=float).reshape(-1)
        self.weights = np.asarray(self.explainer.data.weights, dtype=float)
        self.masks, self.kernel_weights = self._coalitions()

    def _answer(self, rows: np.ndarray) -> np.ndarray:
        """The model as shap sees it; while recording the coalitions, the synthetic rows stop it."""
        if self._recording:
            if len(rows) > 1:
                raise _Recorded
            return np.zeros((1, len(self.fnull)))
        self.calls += 1
        return self.model(rows)

    def _coalitions(self) -> tuple[np.ndarray, np.ndarray]:
        """KernelSHAP's masks (samples, features) and kernel weights, from shap, for a row that differs
        from the baseline in every feature."""
        probe = self.baseline.max(axis=0) + 1.0
        if self.baseline.shape[1] < 2:
            raise UserError("online explanations need at least two features")
        self._recording = True
        try:
            self._shap(probe)
        except _Recorded:
            pass
        finally:
            self._recording = False
        return self.explainer.maskMatrix.copy(), self.explainer.kernelWeights.copy()

    def _shap(self, row: np.ndarray) -> np.ndarray:
        np.random.seed(self.seed)  # shap samples coalitions from numpy's global generator
        values = np.asarray(self.explainer.explain(row[None, :], nsamples=self.num_samples, l1_reg=False))
        return values.reshape(len(row), -1).T  # (outputs, features)

    def explain(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predictions (rows, outputs), attributions (rows, outputs, features)) of a batch."""
        rows = np.asarray(rows, dtype=float)
        features = len(self.feature_headers)
        if rows.ndim != 2 or rows.shape[1] != features:
            raise UserError(f"each record needs {features} numeric features, got shape {rows.shape}")
        every_feature_varies = (rows[:, None, :] != self.baseline[None, :, :]).any(axis=1).all(axis=1)
        samples, background = len(self.masks), len(self.baseline)
        fast = rows[every_feature_varies]
        # synthetic rows: row r, coalition k, baseline row n -> the row's values where the mask is 1
        masks = self.masks.astype(bool)[None, :, None, :]
        synthetic = np.where(masks, fast[:, None, None, :], self.baseline[None, None, :, :])
        self.calls += 1
        answers = self.model(np.concatenate([fast, synthetic.reshape(-1, features)]))
        outputs = answers.shape[1]
        fx = answers[:len(fast)]  # (rows, outputs)
        ey = np.matmul(answers[len(fast):].reshape(len(fast), samples, background, outputs).transpose(0, 1, 3, 2),
                       self.weights)  # (rows, samples, outputs): the baseline-weighted mean
        values = np.zeros((len(rows), outputs, features))
        values[every_feature_varies] = self._solve(fx, ey)
        predictions = np.zeros((len(rows), outputs))
        predictions[every_feature_varies] = fx
        for index in np.flatnonzero(~every_feature_varies):  # shap leaves a feature out: shap does it
            values[index] = self._shap(rows[index])
            predictions[index] = self.model(rows[index][None, :])[0]
        return predictions, values

    def _solve(self, fx: np.ndarray, ey: np.ndarray) -> np.ndarray:
        """shap's `KernelExplainer.solve` without L1 selection, for every row and output at once: the
        last feature eliminated by the efficiency constraint, then weighted least squares."""
        total = self.link(fx) - self.link(self.fnull)[None, :]  # (rows, outputs)
        adjusted = self.link(ey) - self.link(self.fnull)[None, None, :]  # (rows, samples, outputs)
        last = self.masks[:, -1]
        adjusted = adjusted - last[None, :, None] * total[:, None, :]
        design = self.masks[:, :-1] - last[:, None]
        weighted = self.kernel_weights[:, None] * design
        right = np.tensordot(weighted, adjusted, axes=([0], [1])).reshape(design.shape[1], -1)  # (features, rows*outputs)
        solved = np.linalg.solve(design.T @ weighted, right).reshape(design.shape[1], *total.shape)
        phi = np.concatenate([solved.transpose(1, 2, 0), (total - solved.sum(axis=0))[:, :, None]], axis=2)
        phi[np.abs(phi) < 1e-10] = 0.0  # as shap cleans up rounding
        return phi

    def response(self, rows: np.ndarray) -> dict[str, Any]:
        """Clarify's online response for these rows."""
        return self.response_of(*self.explain(rows))

    def response_of(self, predictions: np.ndarray, values: np.ndarray) -> dict[str, Any]:
        """Clarify's online response: the predictions, and per record and feature its attributions per label."""
        rows = predictions
        records = [[{"feature_header": name, "attributions": [{"attribution": values[r, :, f].tolist()}]}
                    for f, name in enumerate(self.feature_headers)] for r in range(len(rows))]
        body: dict[str, Any] = {"version": "1.0",
                                "predictions": {"content_type": "application/json", "data": predictions.tolist()},
                                "explanations": {"kernel_shap": records}}
        if self.label_headers:
            body["label_headers"] = self.label_headers
        return body


class _BatchExplainer:
    """What the server's Batcher calls: each request's rows explained together with the others'."""

    def __init__(self, explainer: OnlineExplainer):
        self.explainer = explainer

    def predict(self, requests: list[np.ndarray]) -> list[dict[str, Any]]:
        sizes = [len(rows) for rows in requests]
        predictions, values = self.explainer.explain(np.concatenate(requests))
        answers, start = [], 0
        for size in sizes:
            answers.append(self.explainer.response_of(predictions[start:start + size], values[start:start + size]))
            start += size
        return answers


def parse_records(body: bytes, content_type: str, features: int) -> np.ndarray:
    """A request's rows: JSON `{"instances": [[...], ...]}` (or a bare list of rows), or CSV lines."""
    import json

    try:
        if content_type.startswith("text/csv"):
            rows = np.loadtxt(io.StringIO(body.decode("utf-8")), delimiter=",", ndmin=2)
        else:
            document = json.loads(body)
            rows = np.asarray(document["instances"] if isinstance(document, dict) else document, dtype=float)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise UserError(f"the request must be CSV rows or JSON {{\"instances\": [[...]]}} of numbers: {exc}") from None
    rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
    if rows.ndim != 2 or rows.shape[1] != features or not len(rows):
        raise UserError(f"each record needs {features} numeric features, got shape {rows.shape}")
    return rows


def build_app(explainer: OnlineExplainer, *, batch_window_ms: float = 10.0, max_batch: int = 256) -> Any:
    """The aiohttp application: POST /invocations (the SageMaker endpoint path), GET /ping."""
    from aiohttp import web

    from fmeval.model_runners.server import Batcher

    batcher = Batcher(_BatchExplainer(explainer), max_batch=max_batch, window_s=batch_window_ms / 1000)
    features = len(explainer.feature_headers)

    async def start(app: web.Application) -> None:
        import asyncio

        app["worker"] = asyncio.create_task(batcher.run())

    async def stop(app: web.Application) -> None:
        app["worker"].cancel()

    async def invocations(request: web.Request) -> web.Response:
        try:
            rows = parse_records(await request.read(), request.content_type or "", features)
        except UserError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        answer = await batcher.answer(rows)
        if not isinstance(answer, dict):  # the batch failed: the Batcher's ModelOutput says why
            return web.json_response({"error": answer.error}, status=500)
        return web.json_response(answer)

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "batches": batcher.batches, "requests": batcher.prompts})

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/invocations", invocations)
    app.router.add_get("/ping", ping)
    return app


def serve_explained(predict: Callable[[np.ndarray], Any], config_path: str, *, name: str, host: str = "127.0.0.1",
                    port: int = 8080, batch_window_ms: float = 10.0) -> None:
    """`fmeval serve MODEL --explain CONFIG`: a tabular model with explanations, until interrupted."""
    import json
    from pathlib import Path

    from aiohttp import web

    try:
        config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the explainer config: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{config_path}:{exc.lineno}: the explainer config is not JSON: {exc.msg}") from None
    explainer = OnlineExplainer(predict, **read_config(config))
    print(f"serving {name} with explanations on http://{host}:{port}/invocations", flush=True)
    web.run_app(build_app(explainer, batch_window_ms=batch_window_ms), host=host, port=port, print=None)
