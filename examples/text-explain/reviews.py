"""Which words make a review "recommended"? Text explanations of a sentiment classifier, on the
Women's E-Commerce Clothing Reviews (the dataset of Clarify's own NLP explainability example).

The script trains a TF-IDF + logistic-regression model on 5,000 reviews, then runs fmeval's
Clarify-style analysis on a few others: KernelSHAP over the tokens of each review, each masked
token replaced by "<UNK>" as in Clarify's example. The dataset comes from fmeval's built-in
`womens_clothing_ecommerce_reviews` (a mirror, the cache, or a download, checksum-verified).

    .venv/bin/python examples/text-explain/reviews.py runs/text-explain
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from fmeval.bias.analyze import analyze
from fmeval.datasets.registry import get_dataset
from fmeval.datasets.sources import locate

TRAINING_ROWS = 5000


def reviews() -> pd.DataFrame:
    dataset = get_dataset("womens_clothing_ecommerce_reviews")
    frame = pd.read_csv(locate(dataset.name, dataset.files[0]))
    return frame[frame["Review Text"].notna()].reset_index(drop=True)


def train(frame: pd.DataFrame):
    rows = frame.iloc[:TRAINING_ROWS]
    model = make_pipeline(TfidfVectorizer(min_df=2), LogisticRegression(max_iter=2000, C=4))
    return model.fit(rows["Review Text"], rows["Recommended IND"])


def main(output: Path, *, explained: int = 4, granularity: str = "token") -> dict:
    frame = reviews()
    model = train(frame)
    short = frame.iloc[TRAINING_ROWS:][frame["Review Text"].iloc[TRAINING_ROWS:].str.len().between(60, 180)]
    sample = short.head(explained)[["Review Text", "Recommended IND"]].rename(columns={"Review Text": "review",
                                                                                      "Recommended IND": "recommended"})
    sample.insert(0, "id", [f"review {i}" for i in sample.index])
    config = {
        "label": "recommended", "joinsource_name_or_index": "id",
        "methods": {"shap": {"baseline": [["<UNK>"]], "num_samples": 1000, "seed": 0,
                             "text_config": {"granularity": granularity, "language": "english", "max_top_tokens": 10}}},
    }
    return analyze(config, sample.reset_index(drop=True), output, model=model)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--granularity", choices=("token", "sentence", "paragraph"), default="token")
    arguments = parser.parse_args()
    result = main(arguments.output, granularity=arguments.granularity)
    top = result["explanations"]["kernel_shap"]["label0"]["global_top_shap_text"]["review"]
    print("units that matter most:", ", ".join(f"{unit} ({value:.3f})" for unit, value in top.items()))
    print(f"Results: {arguments.output}/explanations_shap/out.jsonl, {arguments.output}/text_heatmap.html")
