"""The comparison page: labels, the /generate endpoint through gradio_client, and the page in headless Chromium."""
import os
import shutil
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client
from PIL import Image

from lab.app import MAX_IMAGES, build_demo
from lab.config import ExperimentConfig, apply
from lab.evaluate import evaluate
from lab.train import train

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_root):
    """Two tiny runs that differ in width and seed; only the first has been evaluated."""
    threads = torch.get_num_threads()
    folder = tmp_path_factory.mktemp("app-runs")
    made = []
    for name, width, seed in (("narrow", 8, 0), ("wide", 16, 1)):
        config = apply(ExperimentConfig(), dict(
            data_dir=str(synthetic_root), encoder="minilm", seed=seed, **{"generator.width": width, "discriminator.width": width}, batch_size=8, epochs=1,
            cache_dir=str(folder / "cache"), out_dir=str(folder / name), threads=1,
        ))
        made.append(train(config, progress=False))
    evaluate(made[0], n=4, batch_size=4, device="cpu", matcher_steps=10, progress=False)
    torch.set_num_threads(threads)
    return made


@pytest.fixture(scope="module")
def page(runs):
    demo = build_demo(runs)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True, ssr_mode=False)
    yield demo
    demo.close()


def _pixels(item: dict) -> np.ndarray:
    return np.asarray(Image.open(item["image"]).convert("RGB"))


def test_columns_say_what_each_run_is_and_how_it_scored(page, runs):
    texts = [b.value for b in page.blocks.values() if isinstance(b, gr.Markdown)]
    narrow = next(t for t in texts if t.startswith("### narrow\n"))
    wide = next(t for t in texts if t.startswith("### wide\n"))
    for label, width in ((narrow, 8), (wide, 16)):
        assert "encoder **minilm**" in label and f"(width {width})" in label and "loss **gan-cls**" in label and "**1** epoch(s)" in label
    assert "FID:" in narrow and "KID:" in narrow and "R-precision" in narrow
    assert "no scores yet" in wide and "FID" not in wide


def test_generate_endpoint_gives_each_run_the_same_noise(page):
    client = Client(page.local_url, verbose=False)
    caption = "this flower has five round red petals and a yellow center."
    narrow, wide = client.predict(caption, 3, 2, api_name="/generate")
    assert len(narrow) == len(wide) == 2
    assert _pixels(narrow[0]).shape == (64, 64, 3)
    again_narrow, _ = client.predict(caption, 3, 2, api_name="/generate")
    assert all(np.array_equal(_pixels(a), _pixels(b)) for a, b in zip(narrow, again_narrow)), "same seed must give the same images"
    assert not np.array_equal(_pixels(narrow[0]), _pixels(wide[0])), "two different runs drew identical images"
    other_seed, _ = client.predict(caption, 4, 2, api_name="/generate")
    assert not np.array_equal(_pixels(narrow[0]), _pixels(other_seed[0]))

    for args, message in (((caption * 10, 0, 1), "the limit is 300"), (("   ", 0, 1), "caption is empty"), ((caption, 0, MAX_IMAGES + 1), "maximum")):
        with pytest.raises(Exception, match=message):
            client.predict(*args, api_name="/generate")


def test_page_shows_generated_images_in_headless_chromium(page, tmp_path):
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip("chromium not installed (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage", "--window-size=1400,1200"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    images = "return Array.from(document.querySelectorAll('.run-gallery img')).map(i => [i.closest('.run-gallery').id, i.naturalWidth])"
    try:
        driver.get(page.local_url)
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "generate"))
        driver.find_element(By.ID, "generate").click()
        WebDriverWait(driver, 60).until(lambda d: sum(width > 0 for _, width in d.execute_script(images)) >= 8)
        shown = driver.execute_script(images)
        driver.save_screenshot(str(tmp_path / "page.png"))
        headings = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h3")]
    finally:
        driver.quit()
    assert sorted({column for column, width in shown if width == 64}) == ["run-0", "run-1"]
    assert {"narrow", "wide"} <= set(headings)
    shot = np.asarray(Image.open(tmp_path / "page.png").convert("L"))
    assert shot.shape[1] >= 1000 and shot.std() > 5, "the screenshot is blank"
