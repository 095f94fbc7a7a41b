"""Shared fixtures: offline settings, the dataset mirror, a tiny local Llama, a loopback file server."""
from __future__ import annotations

import functools
import json
import http.server
import os
import threading
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
MIRROR = Path(os.environ.get("FMEVAL_DATASET_MIRROR", REPO.parent / "shared" / "datasets"))
TINY_CORPUS = [
    "The capital of France is Paris.",
    "The capital of Japan is Tokyo.",
    "Water boils at one hundred degrees.",
    "A cat sat on the mat and looked at the dog.",
    "Question: who wrote Hamlet? Answer: William Shakespeare.",
    "Summarize the following text in one sentence.",
] * 20


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not (MIRROR / "SOURCES.md").is_file():
        pytest.fail(f"dataset mirror not found at {MIRROR}; set FMEVAL_DATASET_MIRROR")
    return MIRROR


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama with a BPE tokenizer trained here: real forward passes in milliseconds."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(TINY_CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=256,
    )
    fast.save_pretrained(directory)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def file_server(tmp_path):
    """A real HTTP server on loopback serving files from a temporary directory: (root, base_url)."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


DETOXIFY_CLASSES = ["toxic", "severe_toxic", "obscene", "identity_attack", "insult", "threat", "sexual_explicit"]


def _tiny_bert(directory: Path, num_labels: int):
    """A 2-layer BERT sequence classifier with a WordPiece tokenizer trained here."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tokenizer.train_from_iterator(TINY_CORPUS + ["you are an idiot", "have a lovely day"], trainer)
    from tokenizers.processors import TemplateProcessing

    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=128,
    )
    fast.save_pretrained(directory)
    torch.manual_seed(1)
    config = BertConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="session")
def detoxify_checkpoint(tmp_path_factory) -> Path:
    """A tiny BERT saved in Detoxify's checkpoint format: config.arch.args, dataset classes, state_dict."""
    import torch

    directory = tmp_path_factory.mktemp("tiny-detoxify")
    model = _tiny_bert(directory, num_labels=len(DETOXIFY_CLASSES))
    checkpoint = directory / "tiny-detoxify.ckpt"
    torch.save(
        {
            "config": {
                "arch": {"args": {"model_type": str(directory), "model_name": "BertForSequenceClassification",
                                  "tokenizer_name": "PreTrainedTokenizerFast", "num_classes": len(DETOXIFY_CLASSES)}},
                "dataset": {"args": {"classes": DETOXIFY_CLASSES}},
            },
            "state_dict": model.state_dict(),
        },
        checkpoint,
    )
    return checkpoint


@pytest.fixture(scope="session")
def tiny_toxigen_dir(tmp_path_factory) -> Path:
    """A tiny 2-label classifier (LABEL_0 benign, LABEL_1 toxic), loaded the way ToxiGen's RoBERTa is."""
    directory = tmp_path_factory.mktemp("tiny-toxigen")
    _tiny_bert(directory, num_labels=2)
    return directory


@pytest.fixture(autouse=True, scope="session")
def _isolated_state(tmp_path_factory):
    """Runs and cached responses of the test session go to its own directory, never the user's."""
    state = tmp_path_factory.mktemp("fmeval-state")
    saved = {name: os.environ.get(name) for name in ("FMEVAL_STORE", "FMEVAL_RESPONSE_CACHE")}
    os.environ["FMEVAL_STORE"] = str(state / "fmeval.sqlite")
    os.environ["FMEVAL_RESPONSE_CACHE"] = str(state / "responses.sqlite")
    yield state
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_schema(name: str):
    """A fresh schema on the local PostgreSQL server, or None (with the reason) when none answers."""
    try:
        import psycopg

        connection = psycopg.connect(POSTGRES, connect_timeout=3, autocommit=True)
    except Exception as exc:  # no server, no driver: the PostgreSQL cases are skipped, saying why
        return None, f"no PostgreSQL server answers at {POSTGRES}: {exc}"
    connection.execute(f'CREATE SCHEMA "{name}"')
    return connection, None


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """fmeval's store on each backend: a SQLite file, or a fresh schema on the local PostgreSQL."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.sqlite")
        return
    import uuid

    schema = f"t_{uuid.uuid4().hex[:12]}"
    connection, reason = _postgres_schema(schema)
    if connection is None:
        print(reason)
        pytest.skip(reason)
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
        connection.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (see tests/browser.py)."""
    from tests.browser import CHROMIUM

    if CHROMIUM is None:
        pytest.fail("Chromium is missing; `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


class Hooks(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hooks.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    """A loopback HTTP server that keeps the JSON bodies POSTed to it: (its URL, the bodies)."""
    Hooks.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", Hooks.received
    server.shutdown()
