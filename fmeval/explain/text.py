"""Explanations of text models, as in SageMaker Clarify's NLP explainability: KernelSHAP over
the units of a text (tokens, sentences or paragraphs), each unit kept or replaced by a baseline.

`text_config` takes Clarify's keys: `granularity` (token, sentence or paragraph), `language` (a
name such as "english" or "multi-language", or an ISO code), and `max_top_tokens` (how many units
the global summary lists). Texts are segmented with spaCy: the trained pipeline for the language
if one is installed (e.g. `en_core_web_sm`), else a blank pipeline with the rule-based
sentencizer, which works offline. Paragraphs are separated by blank lines.

A masked unit is replaced by the baseline token (Clarify's `"baseline": [["<UNK>"]]`), or removed
when the baseline is the empty string (the default).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np

from fmeval.errors import UserError
from fmeval.explain.units import UnitValues, explain_units
from fmeval.html import CSP, STYLE, esc

TEXT_CONFIG_KEYS = ("granularity", "language", "max_top_tokens")
GRANULARITIES = ("token", "sentence", "paragraph")
# Clarify's language names and their ISO codes (the codes are accepted too).
LANGUAGES = {
    "afrikaans": "af", "albanian": "sq", "arabic": "ar", "armenian": "hy", "basque": "eu", "bengali": "bn",
    "bulgarian": "bg", "catalan": "ca", "chinese": "zh", "croatian": "hr", "czech": "cs", "danish": "da",
    "dutch": "nl", "english": "en", "estonian": "et", "finnish": "fi", "french": "fr", "german": "de",
    "greek": "el", "gujarati": "gu", "hebrew": "he", "hindi": "hi", "hungarian": "hu", "icelandic": "is",
    "indonesian": "id", "irish": "ga", "italian": "it", "japanese": "ja", "kannada": "kn", "kyrgyz": "ky",
    "latvian": "lv", "ligurian": "lij", "lithuanian": "lt", "luxembourgish": "lb", "macedonian": "mk",
    "malayalam": "ml", "marathi": "mr", "multi-language": "xx", "nepali": "ne", "norwegian bokmal": "nb",
    "persian": "fa", "polish": "pl", "portuguese": "pt", "romanian": "ro", "russian": "ru", "sanskrit": "sa",
    "serbian": "sr", "setswana": "tn", "sinhala": "si", "slovak": "sk", "slovenian": "sl", "spanish": "es",
    "swedish": "sv", "tagalog": "tl", "tamil": "ta", "tatar": "tt", "telugu": "te", "thai": "th", "turkish": "tr",
    "ukrainian": "uk", "urdu": "ur", "yoruba": "yo",
}
TRAINED_PIPELINES = ("{code}_core_web_sm", "{code}_core_news_sm", "xx_sent_ud_sm")
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


@dataclass(frozen=True)
class Unit:
    """A piece of a text: its characters, the whitespace after it, and where it starts."""

    text: str
    gap: str
    start: int


def text_config(config: Any) -> dict[str, Any]:
    """Clarify's `text_config`, checked, with its defaults (token, english, 50)."""
    if not isinstance(config, dict):
        raise UserError(f'shap.text_config must be an object like {{"granularity": "token", "language": "english"}}, '
                        f"got {config!r}")
    unknown = sorted(set(config) - set(TEXT_CONFIG_KEYS))
    if unknown:
        raise UserError(f"shap.text_config: unknown key(s) {', '.join(unknown)}; known: {', '.join(TEXT_CONFIG_KEYS)}")
    checked = {"granularity": "token", "language": "english", "max_top_tokens": 50, **config}
    if checked["granularity"] not in GRANULARITIES:
        raise UserError(f"shap.text_config.granularity must be one of {', '.join(GRANULARITIES)}, "
                        f"got {checked['granularity']!r}")
    language = str(checked["language"]).lower()
    if language not in LANGUAGES and language not in LANGUAGES.values():
        raise UserError(f"shap.text_config.language: {checked['language']!r} is not a language Clarify names "
                        f"(e.g. english, multi-language) or one of their ISO codes")
    checked["language"] = LANGUAGES.get(language, language)
    if not isinstance(checked["max_top_tokens"], int) or checked["max_top_tokens"] < 1:
        raise UserError("shap.text_config.max_top_tokens must be a positive integer")
    return checked


@lru_cache(maxsize=8)
def _pipeline(code: str) -> Any:
    """The trained spaCy pipeline for a language if one is installed, else a blank one with the
    rule-based sentencizer (no download needed)."""
    import spacy

    for name in (pattern.format(code=code) for pattern in TRAINED_PIPELINES):
        if (code == "xx" or not name.startswith("xx")) and spacy.util.is_package(name):
            return spacy.load(name, exclude=["ner", "lemmatizer", "textcat"])
    try:
        nlp = spacy.blank(code)
    except (ImportError, KeyError) as exc:  # a few languages need a word segmenter package (Japanese, Chinese, Thai)
        raise UserError(f"spaCy cannot segment language {code!r} here: {exc}") from None
    nlp.add_pipe("sentencizer")
    return nlp


def segment(text: str, *, granularity: str, language: str) -> list[Unit]:
    """The units of `text`; joined with their gaps (after any leading whitespace) they give it back."""
    if granularity == "paragraph":
        spans, start = [], 0
        for match in PARAGRAPH_BREAK.finditer(text):
            spans.append((start, match.start()))
            start = match.end()
        spans.append((start, len(text)))
    elif granularity == "sentence":
        spans = [(sentence.start_char, sentence.end_char) for sentence in _pipeline(language)(text).sents]
    else:
        spans = [(token.idx, token.idx + len(token)) for token in _pipeline(language)(text) if not token.is_space]
    # a unit is its span without the whitespace around it: that goes to the gap before the next unit
    trimmed = []
    for begin, end in spans:
        piece = text[begin:end]
        if piece.strip():
            begin += len(piece) - len(piece.lstrip())
            trimmed.append((begin, begin + len(piece.strip())))
    return [Unit(text[begin:end], text[end:trimmed[i + 1][0] if i + 1 < len(trimmed) else len(text)], begin)
            for i, (begin, end) in enumerate(trimmed)]


def compose(units: Sequence[Unit], kept: Sequence[bool], baseline: str, prefix: str = "") -> str:
    """The text with the units not kept replaced by `baseline`, or removed when it is empty: the
    units kept are then joined by the gap just before each (so words stay apart)."""
    if baseline:
        return prefix + "".join((unit.text if keep else baseline) + unit.gap for unit, keep in zip(units, kept))
    parts, separator, started = [prefix], "", False
    for unit, keep in zip(units, kept):
        if keep:
            parts.extend([separator, unit.text] if started else [unit.text])
            started = True
        separator = unit.gap
    if units and kept[-1]:
        parts.append(units[-1].gap)
    return "".join(parts)


@dataclass
class RowExplanation:
    """One row's units per feature (a text's tokens, or a single unit for a number) and their
    SHAP values (outputs x units, the features' units one after another)."""

    feature_units: list[list[Unit]]
    shap: UnitValues

    def per_feature(self) -> list[tuple[list[Unit], np.ndarray]]:
        """Each feature's units with their values (outputs x the feature's units)."""
        out, first = [], 0
        for units in self.feature_units:
            out.append((units, self.shap.values[:, first:first + len(units)]))
            first += len(units)
        return out


def explain_row(score_rows: Callable[[list[list[Any]]], np.ndarray], row: Sequence[Any], *,
                is_text: Sequence[bool], baseline: Sequence[Any], granularity: str = "token", language: str = "en",
                num_samples: int | str = "auto", seed: int = 0, item: int = 0) -> RowExplanation:
    """SHAP values of a row's units under `score_rows` (rows -> outputs, one row of outputs each).
    A text feature is split into units, each replaced by its baseline text when masked; any other
    feature is one unit, replaced by its baseline value."""
    feature_units = [segment(str(value), granularity=granularity, language=language) if text
                     else [Unit(str(value), "", 0)] for value, text in zip(row, is_text)]
    if not any(feature_units):
        raise UserError(f"row {item} has no {granularity} to explain: its text is empty")
    bounds = np.cumsum([0] + [len(units) for units in feature_units])

    def masked_row(kept: np.ndarray) -> list[Any]:
        values = []
        for f, (value, units) in enumerate(zip(row, feature_units)):
            keep = kept[bounds[f]:bounds[f + 1]]
            if is_text[f]:
                values.append(compose(units, keep, str(baseline[f]), str(value)[: units[0].start] if units else ""))
            else:
                values.append(value if keep[0] else baseline[f])
        return values

    def score(coalitions: np.ndarray) -> np.ndarray:
        return score_rows([masked_row(kept) for kept in coalitions])

    values = explain_units(score, int(bounds[-1]), num_samples=num_samples, seed=seed, item=item)
    return RowExplanation(feature_units, values)


# -- outputs -----------------------------------------------------------------------------------------
def local_record(explanation: RowExplanation, feature_names: Sequence[str], is_text: Sequence[bool],
                 join_id: Any) -> dict[str, Any]:
    """Clarify's local layout: per feature, and per unit of a text, one value per label."""
    features = []
    for name, text, (units, values) in zip(feature_names, is_text, explanation.per_feature()):
        if text:
            attributions = [{"attribution": [float(v) for v in values[:, u]],
                             "description": {"partial_text": unit.text, "start_idx": unit.start}}
                            for u, unit in enumerate(units)]
            features.append({"feature_name": name, "data_type": "free_text", "attributions": attributions})
        else:
            features.append({"feature_name": name, "data_type": "numerical",
                             "attributions": [{"attribution": [float(v) for v in values[:, 0]]}]})
    return {"join_source_value": join_id, "explanations": features}


def top_units(explanations: Sequence[RowExplanation], feature: int, label: int, limit: int) -> dict[str, float]:
    """A text feature's units with the largest mean |SHAP value| across rows (case-folded)."""
    totals: dict[str, list[float]] = {}
    for explanation in explanations:
        units, values = explanation.per_feature()[feature]
        for unit, value in zip(units, values[label]):
            totals.setdefault(unit.text.lower(), []).append(abs(float(value)))
    means = {text: float(np.mean(values)) for text, values in totals.items()}
    return dict(sorted(means.items(), key=lambda item: -item[1])[:limit])


def _colour(value: float, scale: float) -> str:
    """Red for a unit that raises the output, blue for one that lowers it; paler when smaller."""
    strength = min(abs(value) / scale, 1.0) if scale > 0 else 0.0
    red, green, blue = (215, 48, 39) if value > 0 else (69, 117, 180)
    mix = lambda c: round(255 - (255 - c) * strength)  # noqa: E731
    return f"#{mix(red):02x}{mix(green):02x}{mix(blue):02x}"


def heatmap_html(explanations: Sequence[RowExplanation], feature_names: Sequence[str], is_text: Sequence[bool],
                 labels: Sequence[str], join_ids: Sequence[Any], *, title: str = "Text explanations (KernelSHAP)") -> str:
    """A self-contained page: each row's texts with their units shaded by their SHAP value (first
    label), and its other features as shaded name=value chips."""
    scale = max((float(np.max(np.abs(e.shap.values[0]))) for e in explanations), default=0.0)
    out = [f'<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
           f'content="{CSP}"><title>{esc(title)}</title><style>{STYLE}'
           ".heat{line-height:1.9;font-size:1rem;max-width:60rem}.heat span{padding:.1rem .15rem;border-radius:3px}"
           f"</style></head><body><h1>{esc(title)}</h1>",
           f'<p class="legend">Label <b>{esc(labels[0])}</b>. <span><i style="background:{_colour(1, 1)}"></i>raises '
           f'the output</span><span><i style="background:{_colour(-1, 1)}"></i>lowers it</span> '
           f"(hover a unit for its value).</p>"]
    for join_id, explanation in zip(join_ids, explanations):
        shap = explanation.shap
        out.append(f"<h3>{esc(join_id)}: output {shap.full_output[0]:.4f}, everything masked "
                   f"{shap.masked_output[0]:.4f}</h3>")
        for name, text, (units, values) in zip(feature_names, is_text, explanation.per_feature()):
            out.append(f'<p class="heat"><b>{esc(name)}</b>: ')
            for unit, value in zip(units, values[0]):
                shown = unit.text if text else f"{name}={unit.text}"
                out.append(f'<span style="background:{_colour(float(value), scale)}" title="{value:+.4f}">'
                           f"{esc(shown)}</span>{esc(unit.gap)}")
            out.append("</p>")
    out.append("</body></html>")
    return "".join(out)
