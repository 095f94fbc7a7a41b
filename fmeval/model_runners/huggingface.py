"""Local Hugging Face causal language models: batched generation and log-probabilities."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

from fmeval.batching import length_sorted_batches
from fmeval.errors import UserError
from fmeval.model_runners.base import Capabilities, ModelOutput, ModelRunner, RequestKind
from fmeval.paths import cache_dir

logger = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "float16", "bfloat16")
ERR_LOAD = (
    "could not load the Hugging Face model {model!r}: {reason}. Give a local directory or a .gguf file, "
    "or a hub id with network access (unset HF_HUB_OFFLINE)."
)
ERR_TOO_LONG = (
    "the prompt is {tokens} tokens; with max_new_tokens {new} it does not fit the model's context of {context} "
    "tokens (truncate_prompts keeps the last {keep} tokens)"
)
ERR_TEXT_TOO_LONG = "the text is {tokens} tokens, longer than the model's context of {context} tokens"
ERR_EMPTY_CONTINUATION = "the continuation {continuation!r} is no tokens after the context: there is nothing to score"
DEFAULT_WINDOW = 2048  # lm-evaluation-harness's context length for models that declare none


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _convert_gguf(directory: Path, gguf_file: str) -> Path:
    """Dequantise a GGUF checkpoint once and keep it as safetensors in the user cache.

    Loading a GGUF file dequantises every tensor (about 30 s for SmolLM2-135M); the
    converted copy reloads in well under a second. The cache key is the file's sha256.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir("models", f"gguf-{_sha256(directory / gguf_file)[:24]}")
    if (target / "config.json").exists():
        return target
    logger.info("converting %s once into %s", directory / gguf_file, target)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf_file)
    # save_pretrained refuses quantised models: the weights are already plain tensors here.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)  # atomic: a concurrent converter either wins or finds it done
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class HuggingFaceRunner(ModelRunner):
    """A causal LM from a local directory, a hub id, or a GGUF file.

    Generation is batched: prompts are sorted by token length, left-padded, generated
    `batch_size` at a time, and returned in their original order. Greedy unless
    `temperature > 0` (sampling is seeded with `seed`). `load()` loads the weights; otherwise
    they load on first use. A prompt that does not fit the model's context with `max_new_tokens`
    is an error on its record, or is cut to its last tokens with `truncate_prompts=True`.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        gguf_file: str | None = None,
        chat_template: bool = False,
        system_prompt: str | None = None,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        batch_size: int = 32,
        device: str | None = None,
        dtype: str = "auto",
        truncate_prompts: bool = False,
    ):
        model = str(model)
        if model.endswith(".gguf") and gguf_file is None:
            model, gguf_file = str(Path(model).parent), Path(model).name
        if gguf_file is not None and not (Path(model) / gguf_file).is_file():
            raise UserError(f"GGUF file not found: {Path(model) / gguf_file}")
        if max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise UserError(f"temperature must be >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise UserError(f"top_p must be in (0, 1], got {top_p}")
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        if dtype not in DTYPES:
            raise UserError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.model_name = model
        self.gguf_file = gguf_file
        self.chat_template = chat_template
        self.system_prompt = system_prompt
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.truncate_prompts = truncate_prompts
        self.capabilities = Capabilities(log_probability=True, loglikelihood=True, chat=chat_template,
                                         batch_size=batch_size)
        self._model: Any = None
        self._tokenizer: Any = None
        self._context: int | None = None
        self._keeps_logits: bool | None = None
        self._load_lock = threading.Lock()

    def identity(self, kind: RequestKind = "generate") -> dict[str, Any]:
        """The weights and dtype, plus for generation every option that changes what is generated
        (top_p and seed only when sampling: greedy decoding ignores them)."""
        identity: dict[str, Any] = {"type": "huggingface", "model": self.model_name, "gguf_file": self.gguf_file,
                                    "dtype": self.dtype}
        if kind.startswith("loglikelihood"):
            identity["window"] = "lm-eval"  # lm-evaluation-harness's tokenisation and windows
        if kind == "generate":
            identity.update(chat_template=self.chat_template, system_prompt=self.system_prompt,
                            max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                            truncate_prompts=self.truncate_prompts)
            if self.temperature > 0:
                identity.update(top_p=self.top_p, seed=self.seed)
        return identity

    # -- loading -------------------------------------------------------------------------
    def load(self) -> None:
        """Load the tokenizer and weights now (a run calls this before it writes anything)."""
        self._load()

    def _load(self) -> None:
        """Tokenizer and weights."""
        self._load_tokenizer()
        with self._load_lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = self.dtype
            if dtype == "auto":
                dtype = "bfloat16" if device.startswith("cuda") else "float32"
            with self._loading():
                model = AutoModelForCausalLM.from_pretrained(self._source, dtype=getattr(torch, dtype))
            model.to(device).eval()
            self._device = device
            self._model = model

    def _load_tokenizer(self) -> None:
        """The tokenizer and the context length, without the weights: enough to measure prompts
        (a Ray driver batches them as a local run would, while its workers hold the weights)."""
        with self._load_lock:
            if self._tokenizer is not None:
                return
            from transformers import AutoConfig, AutoTokenizer

            with self._loading():
                self._source = self.model_name
                if self.gguf_file is not None:
                    self._source = _convert_gguf(Path(self.model_name), self.gguf_file)
                tokenizer = AutoTokenizer.from_pretrained(self._source)
                config = AutoConfig.from_pretrained(self._source)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._context = _context_length(config, tokenizer)
            if self._context is not None and self._context <= self.max_new_tokens:
                raise UserError(f"max_new_tokens {self.max_new_tokens} leaves no room for a prompt in the model's "
                                f"context of {self._context} tokens")
            self._tokenizer = tokenizer

    @contextlib.contextmanager
    def _loading(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # missing, corrupt or truncated files all end here: one message
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UserError(ERR_LOAD.format(model=self.model_name, reason=f"{type(exc).__name__}: {reason}")) from exc

    def _format(self, prompt: str) -> str:
        if not self.chat_template:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _encode(self, texts: Sequence[str], *, add_special_tokens: bool) -> list[list[int]]:
        return self._tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]

    # -- generation ----------------------------------------------------------------------
    def _encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        self._load_tokenizer()
        # A chat template already holds the special tokens the model expects.
        return self._encode([self._format(p) for p in prompts], add_special_tokens=not self.chat_template)

    def prompt_lengths(self, prompts: Sequence[str]) -> list[int]:
        """Prompt lengths in tokens, as generation will see them."""
        return [len(ids) for ids in self._encode_prompts(prompts)]

    def predict(self, prompts: Sequence[str]) -> list[ModelOutput]:
        import torch

        self._load()
        token_ids = self._encode_prompts(prompts)
        outputs: list[ModelOutput | None] = [None] * len(prompts)
        if self._context is not None:
            room = self._context - self.max_new_tokens
            for index, ids in enumerate(token_ids):
                if len(ids) > room and self.truncate_prompts:
                    token_ids[index] = ids[-room:]
                elif len(ids) > room:
                    outputs[index] = ModelOutput(output=None, error=ERR_TOO_LONG.format(
                        tokens=len(ids), new=self.max_new_tokens, context=self._context, keep=room))
        fitting = [i for i, output in enumerate(outputs) if output is None]
        for positions in length_sorted_batches([token_ids[i] for i in fitting], self.capabilities.batch_size):
            batch = [fitting[p] for p in positions]
            try:
                answers = self._generate([token_ids[i] for i in batch], torch)
                for index, (text, finish_reason) in zip(batch, answers):
                    outputs[index] = ModelOutput(output=text, finish_reason=finish_reason)
            except Exception as exc:  # e.g. out of memory: recorded on these records, the run goes on
                logger.warning("generation failed for a batch of %d prompts: %s", len(batch), exc)
                for index in batch:
                    outputs[index] = ModelOutput(output=None, error=f"{type(exc).__name__}: {exc}")
        return outputs  # type: ignore[return-value]

    def _generate(self, batch_ids: list[list[int]], torch: Any) -> list[tuple[str, str]]:
        """Each prompt's generated text, and whether the model ended it ("stop") or max_new_tokens did ("length")."""
        self._tokenizer.padding_side = "left"  # new tokens must follow every prompt directly
        padded = self._tokenizer.pad({"input_ids": batch_ids}, padding=True, return_tensors="pt").to(self._device)
        sampling = self.temperature > 0
        options: dict[str, Any] = {"do_sample": sampling, "top_k": None}
        if sampling:
            options.update(temperature=self.temperature, top_p=self.top_p)
            torch.manual_seed(self.seed)
        else:
            options.update(temperature=None, top_p=None)
        with torch.inference_mode():
            generated = self._model.generate(
                **padded,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self._tokenizer.pad_token_id,
                **options,
            )
        new_tokens = generated[:, padded["input_ids"].shape[1] :]
        ends = self._model.generation_config.eos_token_id
        ends = set(ends if isinstance(ends, list) else [ends if ends is not None else self._tokenizer.eos_token_id])
        reasons = ["stop" if ends & set(row.tolist()) or len(row) < self.max_new_tokens else "length" for row in new_tokens]
        return list(zip(self._tokenizer.batch_decode(new_tokens, skip_special_tokens=True), reasons))

    # -- scoring -------------------------------------------------------------------------
    def _encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of whole texts to score, a BOS token first when the tokenizer has one."""
        self._load_tokenizer()
        bos = self._tokenizer.bos_token_id
        encoded = self._encode(texts, add_special_tokens=True)
        return [ids if bos is None or (ids and ids[0] == bos) else [bos, *ids] for ids in encoded]

    def text_lengths(self, texts: Sequence[str]) -> list[int]:
        """Lengths in tokens of texts to score, as `log_probability` will see them."""
        return [len(ids) for ids in self._encode_texts(texts)]

    def log_probability(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Sum of log p(token_i | tokens_<i) over each text's tokens, and how many tokens that is.

        A BOS token is put first when the tokenizer has one, so the first word is scored too.
        """
        import torch

        self._load()
        token_ids = self._encode_texts(texts)
        results: list[ModelOutput | None] = [None] * len(texts)
        if self._context is not None:
            for index, ids in enumerate(token_ids):
                if len(ids) > self._context:
                    results[index] = ModelOutput(output=None, error=ERR_TEXT_TOO_LONG.format(
                        tokens=len(ids), context=self._context))
        fitting = [i for i, result in enumerate(results) if result is None]
        for positions in length_sorted_batches([token_ids[i] for i in fitting], self.capabilities.batch_size):
            batch = [fitting[p] for p in positions]
            self._tokenizer.padding_side = "right"
            padded = self._tokenizer.pad(
                {"input_ids": [token_ids[i] for i in batch]}, padding=True, return_tensors="pt"
            ).to(self._device)
            ids, mask = padded["input_ids"], padded["attention_mask"]
            with torch.inference_mode():
                logits = self._model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                token_log_probs = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
                sums = (token_log_probs * mask[:, 1:]).sum(dim=-1).tolist()
            for index, value in zip(batch, sums):
                results[index] = ModelOutput(output=None, log_probability=value, num_tokens=len(token_ids[index]) - 1)
        return results  # type: ignore[return-value]

    # -- lm-evaluation-harness's request types ----------------------------------------------
    # Tokenisation, truncation and windows follow lm-eval 0.4's HFLM exactly, so that the numbers
    # compare: the tokenizer's own special tokens, the context's trailing spaces moved onto the
    # continuation, BOS (else EOS) as the context of an empty one.
    def _prefix_token_id(self) -> int:
        bos = self._tokenizer.bos_token_id
        return bos if bos is not None else self._tokenizer.eos_token_id

    def _tok_encode(self, text: str, *, add_special_tokens: bool | None = None) -> list[int]:
        if add_special_tokens is None:
            prefix = self._tokenizer.decode(self._prefix_token_id())
            options = {"add_special_tokens": False} if prefix and text.startswith(prefix) else {}
        else:
            options = {"add_special_tokens": add_special_tokens}
        return self._tokenizer.encode(text, **options)

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if context == "":
            tokens = self._tok_encode(continuation, add_special_tokens=False)
            prefix = self._prefix_token_id()
            return ([prefix], tokens) if not tokens or tokens[0] != prefix else (tokens[:1], tokens[1:])
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        context_ids = self._tok_encode(context)
        return context_ids, self._tok_encode(context + continuation)[len(context_ids):]

    @property
    def _window(self) -> int:
        return self._context or DEFAULT_WINDOW

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[ModelOutput]:
        """Per (context, continuation): the continuation's summed log-probability after the context,
        its token count, and whether greedy decoding yields it. A context too long for the model
        loses its first tokens (as lm-eval does)."""
        self._load()
        encoded = [self._encode_pair(context, continuation) for context, continuation in pairs]
        results: list[ModelOutput | None] = [None] * len(pairs)
        for index, ((_, continuation), (_, ids)) in enumerate(zip(pairs, encoded)):
            if not ids:
                results[index] = ModelOutput(output=None, error=ERR_EMPTY_CONTINUATION.format(continuation=continuation))
            elif len(ids) > self._window:
                results[index] = ModelOutput(output=None, error=ERR_TEXT_TOO_LONG.format(tokens=len(ids),
                                                                                        context=self._window))
        fitting = [i for i, result in enumerate(results) if result is None]
        for index, (value, greedy) in zip(fitting, self._score_tokens([encoded[i] for i in fitting])):
            results[index] = ModelOutput(output=None, log_probability=value, num_tokens=len(encoded[index][1]),
                                         is_greedy=greedy)
        return results  # type: ignore[return-value]

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Each text's summed log-probability over disjoint windows of the model's context: the
        first window is conditioned on the prefix token, each later one on the tokens before it,
        so that every token is scored once with as much context as fits (lm-eval's rolling windows)."""
        self._load()
        windows: list[tuple[list[int], list[int]]] = []
        owners: list[int] = []
        lengths = []
        for index, text in enumerate(texts):
            tokens = self._tok_encode(text)
            lengths.append(len(tokens))
            for window in rolling_windows(tokens, self._prefix_token_id(), self._window):
                windows.append(window)
                owners.append(index)
        sums = [0.0] * len(texts)
        for owner, (value, _) in zip(owners, self._score_tokens(windows)):
            sums[owner] += value
        return [ModelOutput(output=None, log_probability=value, num_tokens=length) for value, length in zip(sums, lengths)]

    def _score_tokens(self, requests: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(summed log-probability, is greedy) of each continuation after its context, in order.

        Requests that feed the model the same tokens (choices of one token after one context) share
        one forward pass. Inputs are sorted longest first, right-padded, and only the positions that
        score a continuation go through the output head.
        """
        import torch

        inputs: dict[tuple[tuple[int, ...], int], list[int]] = {}
        for index, (context, continuation) in enumerate(requests):
            tokens = (context + continuation)[-(self._window + 1):][:-1]
            inputs.setdefault((tuple(tokens), len(continuation)), []).append(index)
        keys = sorted(inputs, key=lambda key: (-len(key[0]), key[0]))
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        pad = self._tokenizer.pad_token_id or 0
        batch_size = self.capabilities.batch_size
        for start in range(0, len(keys), batch_size):
            batch = keys[start:start + batch_size]
            width = len(batch[0][0])
            ids = torch.tensor([list(tokens) + [pad] * (width - len(tokens)) for tokens, _ in batch],
                               device=self._device)
            first = min(len(tokens) - length for tokens, length in batch)
            with torch.inference_mode():
                logits = self._logits(ids, width - first)
            for (tokens, length), row in zip(batch, logits):
                end = len(tokens) - first
                log_probs = torch.log_softmax(row[end - length:end].float(), dim=-1)
                for index in inputs[(tokens, length)]:
                    target = torch.tensor(requests[index][1], device=self._device)
                    greedy = bool((log_probs.argmax(dim=-1) == target).all())
                    results[index] = (float(log_probs.gather(-1, target[:, None]).sum()), greedy)
        return results  # type: ignore[return-value]

    def _logits(self, ids: Any, keep: int) -> Any:
        """The logits of the last `keep` positions (the output head costs a vocabulary-wide product
        per position: skip the positions nothing reads)."""
        if self._keeps_logits is None:
            import inspect

            self._keeps_logits = "logits_to_keep" in inspect.signature(self._model.forward).parameters
        if self._keeps_logits:
            return self._model(input_ids=ids, logits_to_keep=keep).logits
        return self._model(input_ids=ids).logits[:, -keep:]


def rolling_windows(tokens: list[int], prefix: int, window: int) -> Iterator[tuple[list[int], list[int]]]:
    """Disjoint (context, continuation) windows that score every token of `tokens` once: the first
    `window` tokens after `prefix`, then each next `window` tokens after the `window` before them
    (lm-eval's `get_rolling_token_windows` with context_len=1, made disjoint)."""
    if not tokens:
        return
    first = min(window, len(tokens))
    yield [prefix], tokens[:first]
    predicted = first
    while predicted < len(tokens):
        size = min(len(tokens) - predicted, window)
        end = predicted + size
        context = tokens[end - window - 1:end - 1]
        yield context[:len(context) - (size - 1)], tokens[end - size:end]
        predicted += size


def _context_length(config: Any, tokenizer: Any) -> int | None:
    """The most tokens the model attends to: its position embeddings, or the tokenizer's limit."""
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(limit) for limit in limits if isinstance(limit, int) and 0 < limit < 10_000_000]
    return min(limits) if limits else None

