"""Send chat requests to an OpenAI-compatible endpoint, as an application would: short English
questions, or (--drift) longer questions in French. Four at a time.

    python examples/monitoring/traffic.py --url http://127.0.0.1:8080/v1 --count 40 [--drift]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import random

import httpx

COUNTRIES = ["France", "Japan", "Brazil", "Kenya", "Canada", "India", "Norway", "Chile", "Egypt", "Vietnam"]
TOPICS = ["photosynthesis", "gravity", "inflation", "vaccines", "volcanoes", "rainbows", "tides", "magnets"]
ENGLISH = ["What is the capital of {country}?", "Explain {topic} in one sentence.",
           "Name one famous food from {country}.", "Why do we study {topic}?"]
FRENCH = ["Pourriez-vous m'expliquer en détail, avec des exemples concrets, comment fonctionne {topic} et "
          "pourquoi ce phénomène est important pour les habitants de {country} ?",
          "Je voudrais comprendre l'histoire, la culture et l'économie de {country} : quels sont les événements "
          "les plus importants des cent dernières années ?"]


def prompts(count: int, *, drift: bool, seed: int) -> list[str]:
    rng = random.Random(seed)
    templates = FRENCH if drift else ENGLISH
    return [rng.choice(templates).format(country=rng.choice(COUNTRIES), topic=rng.choice(TOPICS)) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the API's base URL, e.g. http://127.0.0.1:8080/v1")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--drift", action="store_true", help="longer questions, in French")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    def ask(prompt: str) -> int:
        response = httpx.post(f"{args.url}/chat/completions", timeout=600, json={
            "model": "served", "messages": [{"role": "user", "content": prompt}]})
        response.raise_for_status()
        return len(response.json()["choices"][0]["message"]["content"].split())

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        words = list(pool.map(ask, prompts(args.count, drift=args.drift, seed=args.seed)))
    print(f"{len(words)} answers, {sum(words) / len(words):.1f} words on average")


if __name__ == "__main__":
    main()
