"""From a task's documents to fmeval records: lm-eval's `doc_to_*` rules, few-shot contexts, and the
records a run reads (a JSONL file, so that sampling, resume and the dataset checksum work as for any file).
"""
from __future__ import annotations

import ast
import json
import random
import re
from typing import Any, Sequence

from fmeval.errors import UserError
from fmeval.tasks.config import TaskConfig

FEWSHOT_SEED = 1234  # lm-eval's default few-shot seed


def wikitext_detokenize(text: str) -> str:
    """WikiText's tokenisation undone, rule for rule as lm-eval's WikiText task does it."""
    text = text.replace("s '", "s'")
    text = re.sub(r"/' [0-9]/", r"/'[0-9]/", text)
    for old, new in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" : ", ": "), (" ; ", "; "), (" . ", ". "),
                     (" ! ", "! "), (" ? ", "? "), (" , ", ", ")):
        text = text.replace(old, new)
    for pattern, replacement in ((r"\(\s*([^\)]*?)\s*\)", r"(\1)"), (r"\[\s*([^\]]*?)\s*\]", r"[\1]"),
                                 (r"{\s*([^}]*?)\s*}", r"{\1}"), (r"\"\s*([^\"]*?)\s*\"", r'"\1"'),
                                 (r"'\s*([^']*?)\s*'", r"'\1'")):
        text = re.sub(pattern, replacement, text)
    for old, new in (("= = = =", "===="), ("= = =", "==="), ("= =", "=="), (" \u00b0 ", "\u00b0"), (" \n", "\n"),
                     ("\n ", "\n"), (" N ", " 1 "), (" 's", "'s")):
        text = text.replace(old, new)
    return text


def _environment() -> Any:
    """Jinja2, sandboxed (task files come from anywhere), strict about undefined fields, with
    lm-eval's `regex_replace` filter."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    environment.filters["regex_replace"] = lambda value, pattern, replacement="": re.sub(pattern, replacement, value)
    environment.filters["wikitext_detokenize"] = wikitext_detokenize
    return environment


class Renderer:
    """A task's `doc_to_text`, `doc_to_target` and `doc_to_choice`, applied to one document."""

    def __init__(self, task: TaskConfig):
        self.task = task
        self._environment = _environment()
        self._templates: dict[str, Any] = {}

    def render(self, template: str, doc: dict[str, Any]) -> str:
        from jinja2 import TemplateError

        try:
            compiled = self._templates.get(template) or self._templates.setdefault(
                template, self._environment.from_string(template))
            return compiled.render(**doc)
        except TemplateError as exc:
            raise UserError(f"{self.task.source}: task {self.task.task}: template {template!r}: {exc}") from exc

    def text(self, doc: dict[str, Any]) -> str:
        value = self.task.doc_to_text
        if value is None:
            return ""
        return str(doc[value]) if value in doc else self.render(value, doc)

    def choices(self, doc: dict[str, Any]) -> list[str]:
        value = self.task.doc_to_choice
        if isinstance(value, str):
            value = doc[value] if value in doc else self._literal(self.render(value, doc))
        if isinstance(value, dict):
            value = list(value.values())
        if not isinstance(value, list) or not value:
            raise UserError(f"{self.task.source}: task {self.task.task}: doc_to_choice gave {value!r}, not a list")
        return [str(choice) for choice in value]

    def target(self, doc: dict[str, Any]) -> Any:
        """An index into the choices, a string, or a list of either."""
        value = self.task.doc_to_target
        if isinstance(value, str):
            if value in doc:
                return doc[value]
            rendered = self.render(value, doc)
            if rendered.isdigit() and self.task.doc_to_choice is not None:
                return int(rendered)
            if len(rendered) >= 2 and rendered[0] == "[" and rendered[-1] == "]":
                return self._literal(rendered)
            return rendered
        return value

    def _literal(self, rendered: str) -> Any:
        try:
            return ast.literal_eval(rendered)
        except (ValueError, SyntaxError) as exc:
            raise UserError(f"{self.task.source}: task {self.task.task}: {rendered[:80]!r} is not a list") from exc

    def gold_choices(self, doc: dict[str, Any], choices: Sequence[str]) -> list[str]:
        """The correct choices' texts."""
        target = self.target(doc)
        targets = target if isinstance(target, list) else [target]
        gold = []
        for item in targets:
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                raise UserError(f"{self.task.source}: task {self.task.task}: target {item!r} is not an index or text")
            if isinstance(item, int):
                if not 0 <= item < len(choices):
                    raise UserError(f"{self.task.source}: task {self.task.task}: target index {item} is outside "
                                    f"the {len(choices)} choices")
                item = choices[item]
            gold.append(item)
        return gold

    def answer(self, doc: dict[str, Any]) -> str:
        """A few-shot example's answer: the correct choice's text, or the target itself."""
        if self.task.doc_to_choice is None:
            return str(self.target(doc))
        return self.gold_choices(doc, self.choices(doc))[0]


def contexts(task: TaskConfig, docs: Sequence[dict[str, Any]], fewshot_docs: Sequence[dict[str, Any]],
             same_split: bool) -> list[str]:
    """Each document's prompt: the description, `num_fewshot` solved examples, then its text.

    Examples are the first documents of the few-shot split (`first_n`), or a sample drawn with
    lm-eval's seed, one draw per document in order (`default`); a document is never its own example.
    """
    renderer = Renderer(task)
    rng = random.Random(FEWSHOT_SEED)
    count = task.num_fewshot
    if count and len(fewshot_docs) < count + (1 if same_split else 0):
        raise UserError(f"{task.source}: task {task.task}: num_fewshot {count} but the few-shot split has "
                        f"{len(fewshot_docs)} documents")
    prompts = []
    for doc in docs:
        examples: Sequence[dict[str, Any]] = []
        if count and task.fewshot_config.sampler == "first_n":
            examples = [d for d in fewshot_docs if not (same_split and d == doc)][:count]
        elif count:
            examples = rng.sample(list(fewshot_docs), count + 1 if same_split else count)
            examples = [d for d in examples if not (same_split and d == doc)][:count]
        shots = "".join(renderer.text(example) + task.target_delimiter + renderer.answer(example)
                        + task.fewshot_delimiter for example in examples)
        description = renderer.render(task.description, doc) if task.description else ""
        prompts.append(description + shots + renderer.text(doc))
    return prompts


def task_records(task: TaskConfig, docs: Sequence[dict[str, Any]], fewshot_docs: Sequence[dict[str, Any]],
                 same_split: bool) -> list[dict[str, Any]]:
    """The records of one task, in the fields the evaluations read: `input`, `choices`, `targets`
    (multiple choice), or the scored `text` and the `units` text (perplexity); `category` is the task."""
    renderer = Renderer(task)
    category = task.task_alias or task.task
    records = []
    if task.output_type == "loglikelihood_rolling":
        for index, doc in enumerate(docs):
            text = renderer.answer(doc)
            units = renderer.render(task.units_text, doc) if task.units_text else text
            records.append({"id": f"{task.task}/{index}", "category": category, "text": text, "units": units})
        return records
    for index, (doc, prompt) in enumerate(zip(docs, contexts(task, docs, fewshot_docs, same_split))):
        choices = renderer.choices(doc)
        records.append({"id": f"{task.task}/{index}", "category": category, "input": prompt, "choices": choices,
                        "targets": renderer.gold_choices(doc, choices)})
    return records


def write_records(records: Sequence[dict[str, Any]], path: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
