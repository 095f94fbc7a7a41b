"""Text perturbations for semantic robustness, deterministic per (seed, record id, index).

The three built-in perturbations follow AWS fmeval's definitions (fmeval 1.2,
`fmeval/transforms/semantic_perturbations.py`): the same keyboard table, probabilities,
rounding and draws from a NumPy generator, so that one generator seeded as AWS seeds its own
gives AWS's strings. What differs is the seeding: each call gets its own generator, seeded from
(seed, record id, perturbation, index), so a record's perturbations do not depend on batch size,
order or parallelism. Other offline nlpaug augmenters are available as
`nlpaug:<module>.<Class>` (e.g. `nlpaug:char.OcrAug`).
"""
from __future__ import annotations

import hashlib
import importlib
import random
import threading
from typing import TYPE_CHECKING, Any, Callable, Mapping

from fmeval.errors import UserError

if TYPE_CHECKING:
    import numpy as np

Perturbation = Callable[[str, "np.random.Generator"], str]

# AWS fmeval's (from NL-Augmenter): each key's candidates, the key itself first; a repeated
# candidate is drawn more often, and the space is drawn for (as itself).
QWERTY_NEIGHBOURS: dict[str, str] = {
    "q": "qwasedzx", "w": "wqesadrfcx", "e": "ewrsfdqazxcvgt", "r": "retdgfwsxcvgt", "t": "tryfhgedcvbnju",
    "y": "ytugjhrfvbnji", "u": "uyihkjtgbnmlo", "i": "iuojlkyhnmlp", "o": "oipklujm", "p": "plo['ik",
    "a": "aqszwxwdce", "s": "swxadrfv", "d": "decsfaqgbv", "f": "fdgrvwsxyhn", "g": "gtbfhedcyjn",
    "h": "hyngjfrvkim", "j": "jhknugtblom", "k": "kjlinyhn", "l": "lokmpujn",
    "z": "zaxsvde", "x": "xzcsdbvfrewq", "c": "cxvdfzswergb", "v": "vcfbgxdertyn", "b": "bvnghcftyun",
    "n": "nbmhjvgtuik", "m": "mnkjloik", " ": " ",
}


def butter_finger(probability: float = 0.1) -> Perturbation:
    """Each character of the keyboard table becomes one of its candidates with `probability`
    (a draw <= `probability`, as AWS); an upper-case letter stays upper-case."""
    _check_probability("butter_finger", probability=probability)

    def perturb(text: str, rng: np.random.Generator) -> str:
        characters = []
        for character in text:
            candidates = QWERTY_NEIGHBOURS.get(character.lower())
            if candidates and rng.random() <= probability:
                swapped = str(rng.choice(list(candidates)))
                character = swapped.upper() if character.lower() != character else swapped
            characters.append(character)
        return "".join(characters)

    return perturb


def random_upper_case(fraction: float = 0.1) -> Perturbation:
    """Upper-cases int(len(text) * `fraction`) positions (truncated, as AWS), chosen uniformly
    without replacement."""
    _check_probability("random_upper_case", fraction=fraction)

    def perturb(text: str, rng: np.random.Generator) -> str:
        positions = set(rng.choice(range(len(text)), int(len(text) * fraction), False).tolist())
        return "".join(c.upper() if i in positions else c for i, c in enumerate(text))

    return perturb


def whitespace_add_remove(remove_probability: float = 0.1, add_probability: float = 0.05) -> Perturbation:
    """Each whitespace is dropped with `remove_probability`; after each other character a space
    is added with `add_probability`."""
    _check_probability("whitespace_add_remove", remove_probability=remove_probability, add_probability=add_probability)

    def perturb(text: str, rng: np.random.Generator) -> str:
        characters = []
        for character in text:  # one draw per character, as AWS
            if character.isspace():
                if rng.random() >= remove_probability:
                    characters.append(character)
            else:
                characters.append(character)
                if rng.random() < add_probability:
                    characters.append(" ")
        return "".join(characters)

    return perturb


_NLPAUG_LOCK = threading.Lock()


def nlpaug_augmenter(path: str, **options: Any) -> Perturbation:
    """An nlpaug augmenter (`char.OcrAug`, `char.KeyboardAug`, `char.RandomCharAug`, `word.SplitAug`,
    `word.RandomWordAug`, ...). nlpaug draws from the global `random` and numpy generators, so
    they are seeded per call, under a lock."""
    module_name, _, class_name = path.rpartition(".")
    try:
        augmenter = getattr(importlib.import_module(f"nlpaug.augmenter.{module_name}"), class_name)(**options)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"cannot load nlpaug augmenter {path!r} (pip install nlpaug): {exc}") from exc

    def perturb(text: str, rng: np.random.Generator) -> str:
        import numpy as np

        with _NLPAUG_LOCK:
            seed = int(rng.integers(1 << 32))
            random.seed(seed)
            np.random.seed(seed)
            result = augmenter.augment(text)
        return result[0] if isinstance(result, list) else result

    return perturb


BUILTIN: dict[str, Callable[..., Perturbation]] = {
    "butter_finger": butter_finger,
    "random_upper_case": random_upper_case,
    "whitespace_add_remove": whitespace_add_remove,
}


def get_perturbation(name: str, options: Mapping[str, Any] | None = None) -> Perturbation:
    """A perturbation by name: one of BUILTIN, or `nlpaug:<module>.<Class>`."""
    if name.startswith("nlpaug:"):
        return nlpaug_augmenter(name.removeprefix("nlpaug:"), **dict(options or {}))
    if name not in BUILTIN:
        raise UserError(f"unknown perturbation {name!r}; choose {', '.join(BUILTIN)} or nlpaug:<module>.<Class>")
    try:
        return BUILTIN[name](**dict(options or {}))
    except TypeError as exc:
        raise UserError(f"perturbation {name}: bad option: {exc}") from exc


def rng_for(seed: int, record_id: str, perturbation: str, index: int) -> np.random.Generator:
    """The generator for one perturbation of one record: a function of these four values only."""
    import numpy as np

    digest = hashlib.sha256(f"{seed}\x1f{record_id}\x1f{perturbation}\x1f{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _check_probability(name: str, **values: float) -> None:
    for key, value in values.items():
        if not 0 <= value <= 1:
            raise UserError(f"{name}: {key} must be within [0, 1], got {value}")
