"""Regenerate the README's two pictures from the examples: a text heat map (a screenshot of
`text_heatmap.html`, taken with Debian's Chromium) and an image overlay.

    FMEVAL_DATASET_MIRROR=../shared/datasets .venv/bin/python scripts/readme_pictures.py
"""
from __future__ import annotations

import runpy
import shutil
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PICTURES = REPO / "docs" / "images"


def main() -> None:
    PICTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        runpy.run_path(str(REPO / "examples" / "text-explain" / "reviews.py"), run_name="example")["main"](work / "text")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 900, "height": 400}, device_scale_factor=1)
            page.goto((work / "text" / "text_heatmap.html").as_uri())
            page.screenshot(path=str(PICTURES / "text_heatmap.png"), full_page=True)
            browser.close()

        runpy.run_path(str(REPO / "examples" / "vision-bias" / "digits.py"), run_name="example")["main"](
            work / "digits", limit=50, explained=1)
        images = work / "digits" / "explanations" / "explanations_shap" / "images"
        digit = Image.open(work / "digits" / "explained" / "0000.png").resize((256, 256), Image.NEAREST)
        overlay = Image.open(next(images.glob("00000_*_1.png")))  # the first test image is a 1
        side_by_side = Image.new("RGB", (512 + 8, 256), "white")
        side_by_side.paste(digit, (0, 0))
        side_by_side.paste(overlay, (256 + 8, 0))
        side_by_side.save(PICTURES / "image_overlay.png", optimize=True)


if __name__ == "__main__":
    main()
