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

from lab.config import ExperimentConfig, apply
from lab.evaluation.evaluate import evaluate
from lab.experiments.app import MAX_IMAGES, build_demo
from lab.train.trainer import train

CHROMIUM, CHROMEDRIVER = (
    shutil.which("chromium") or "/usr/bin/chromium",
    shutil.which("chromedriver") or "/usr/bin/chromedriver",
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_root):
    """Two tiny runs that differ in width and seed; only the first has been evaluated."""
    threads = torch.get_num_threads()
    folder = tmp_path_factory.mktemp("app-runs")
    made = []
    for name, width, seed in (("narrow", 8, 0), ("wide", 16, 1)):
        config = apply(
            ExperimentConfig(),
            dict(
                data_dir=str(synthetic_root),
                encoder="minilm",
                seed=seed,
                **{"generator.width": width, "discriminator.width": width},
                batch_size=8,
                epochs=1,
                cache_dir=str(folder / "cache"),
                out_dir=str(folder / name),
                threads=1,
            ),
        )
        made.append(train(config, progress=False))
    evaluate(made[0], n=6, batch_size=6, device="cpu", matcher_steps=10, progress=False)
    torch.set_num_threads(threads)
    return made


def _serve(run_dirs):
    demo = build_demo(run_dirs)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True, ssr_mode=False)
    return demo


@pytest.fixture(scope="module")
def page(runs):
    demo = _serve(runs)
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def page_one(runs):
    """The page for one run (`lab compare runs/quick`, the natural first use): one gallery per tab."""
    demo = _serve(runs[:1])
    yield demo
    demo.close()


def _pixels(item: dict) -> np.ndarray:
    return np.asarray(Image.open(item["image"]).convert("RGB"))


def test_columns_say_what_each_run_is_and_how_it_scored(page, runs):
    texts = [b.value for b in page.blocks.values() if isinstance(b, gr.Markdown)]
    narrow = next(t for t in texts if t.startswith("### narrow\n"))
    wide = next(t for t in texts if t.startswith("### wide\n"))
    for label, width in ((narrow, 8), (wide, 16)):
        assert (
            "encoder **minilm**" in label
            and f"(width {width})" in label
            and "loss **gan-cls**" in label
            and "**1** epoch(s)" in label
        )
    assert (
        "FID:" in narrow
        and "KID:" in narrow
        and "R-precision" in narrow
        and "precision / recall (k=5):" in narrow
        and "memorisation ratio:" in narrow
    )
    assert "no scores yet" in wide and "FID" not in wide
    assert all("nearly flat grey" in t and "as expected after a few training steps" in t for t in (narrow, wide)), (
        "one epoch of 3 steps draws flat grey, and the page says that this is expected"
    )


def test_generate_endpoint_gives_each_run_the_same_noise(page):
    client = Client(page.local_url, verbose=False)
    caption = "this flower has five round red petals and a yellow center."
    narrow, wide = client.predict(caption, 3, 2, api_name="/generate")
    assert len(narrow) == len(wide) == 2
    assert _pixels(narrow[0]).shape == (64, 64, 3)
    again_narrow, _ = client.predict(caption, 3, 2, api_name="/generate")
    assert all(np.array_equal(_pixels(a), _pixels(b)) for a, b in zip(narrow, again_narrow)), (
        "same seed must give the same images"
    )
    assert not np.array_equal(_pixels(narrow[0]), _pixels(wide[0])), "two different runs drew identical images"
    other_seed, _ = client.predict(caption, 4, 2, api_name="/generate")
    assert not np.array_equal(_pixels(narrow[0]), _pixels(other_seed[0]))

    for args, message in (
        ((caption * 10, 0, 1), "the limit is 300"),
        (("   ", 0, 1), "caption is empty"),
        ((caption, 0, MAX_IMAGES + 1), "maximum"),
    ):
        with pytest.raises(Exception, match=message):
            client.predict(*args, api_name="/generate")


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to one grey level: the same image through another float path (slerp at t = 0)."""
    return int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def test_interpolate_endpoint_walks_from_one_caption_to_the_other_with_one_noise(page):
    client = Client(page.local_url, verbose=False)
    start, end = (
        "this flower has five round red petals and a yellow center.",
        "this flower has eight pointed blue petals and a black center.",
    )
    strips = client.predict(start, end, 5, 7, api_name="/interpolate")
    assert len(strips) == 2 and all(len(strip) == 5 for strip in strips)
    assert [item["caption"] for item in strips[0]] == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    for strip, (first, last) in zip(
        strips, zip(*[client.predict(c, 7, 1, api_name="/generate") for c in (start, end)])
    ):
        frames = [_pixels(item) for item in strip]
        assert _close(frames[0], _pixels(first[0])) and _close(frames[-1], _pixels(last[0])), (
            "the ends must be the two captions, with the seed's noise"
        )
    for args, message in (((start, end, 1, 0), "minimum|from 2"), ((start, "  ", 3, 0), "caption is empty")):
        with pytest.raises(Exception, match=message):
            client.predict(*args, api_name="/interpolate")


def test_interpolation_renders_the_spherical_path_with_one_noise(runs):
    from lab.sample.pipeline import Pipeline, fixed_noise, slerp

    pipe = Pipeline.from_run(runs[0])
    start, end = "a red flower with round petals.", "a blue flower with pointed petals."
    walk = pipe.interpolate(start, end, 5, 7)
    a, b = pipe.encoder.encode([start, end])
    assert torch.allclose(a.norm(), torch.tensor(1.0), atol=1e-3), (
        "MiniLM's vectors are unit length: the walk must be spherical"
    )
    expected = pipe.render(
        fixed_noise(1, pipe.generator.noise_dim, 7).repeat(5, 1), slerp(a, b, torch.linspace(0, 1, 5).unsqueeze(1))
    )
    torch.testing.assert_close(walk, expected)
    torch.testing.assert_close(walk[0], pipe([start], 1, 7)[0], atol=1e-5, rtol=0)
    assert not torch.equal(walk[2], walk[0]) and not torch.equal(walk[2], walk[4]), (
        "the middle must differ from both ends"
    )


def test_slerp_stays_on_the_unit_sphere_and_ends_where_it_should():
    from lab.sample.pipeline import slerp

    a, b = torch.nn.functional.normalize(torch.randn(2, 32, generator=torch.Generator().manual_seed(0)), dim=1)
    path = slerp(a, b, torch.linspace(0, 1, 7).unsqueeze(1))
    torch.testing.assert_close(path.norm(dim=1), torch.ones(7))
    torch.testing.assert_close(path[0], a) and torch.testing.assert_close(path[-1], b)
    assert torch.lerp(a, b, 0.5).norm() < 0.99 * path[3].norm(), "a straight line cuts inside the sphere"


def test_swap_endpoint_draws_both_captions_from_the_same_noise_with_their_difference(page):
    client = Client(page.local_url, verbose=False)
    caption = "this flower has five round Red petals and a yellow center."
    columns = client.predict(caption, "red", "blue", 3, api_name="/swap")
    assert len(columns) == 2
    for column, before, after in zip(
        columns, *[client.predict(c, 3, 1, api_name="/generate") for c in (caption, caption.replace("Red", "blue"))]
    ):
        assert [item["caption"] for item in column] == [caption, caption.replace("Red", "blue"), "difference (x2)"]
        old, new, diff = (_pixels(item) for item in column)
        assert np.array_equal(old, _pixels(before[0])) and np.array_equal(new, _pixels(after[0]))
        changed = np.abs(old.astype(int) - new.astype(int)).max(axis=2)
        assert np.all(diff.max(axis=2)[changed == 0] <= 1), "black where nothing changed"
    for args, message in (
        ((caption, "green", "blue", 0), "has no word 'green'"),
        ((caption, "red", " ", 0), "word to change"),
    ):
        with pytest.raises(Exception, match=message):
            client.predict(*args, api_name="/swap")


def test_difference_is_black_where_nothing_changed_and_bright_where_it_did():
    from lab.experiments.app import difference

    before = torch.zeros(3, 8, 8)
    after = before.clone()
    after[:, 2:4, 2:4] = 0.5
    diff = np.asarray(difference(before, after))
    assert diff[2:4, 2:4].min() >= 127 and diff[4:].max() == 0 and diff[:, :2].max() == 0


def test_one_run_endpoints_return_that_runs_images_unwrapped(page_one, page):
    """With one run each endpoint has one output: its value is the run's gallery itself (not a 1-tuple, which
    gradio cannot show), and it holds what the two-run page draws for the same run, caption and seed."""
    one, two = Client(page_one.local_url, verbose=False), Client(page.local_url, verbose=False)
    caption = "this flower has five round red petals and a yellow center."
    for api_name, args, count in (
        ("/generate", (caption, 3, 2), 2),
        ("/interpolate", (caption, "a blue flower with pointed petals.", 4, 3), 4),
        ("/swap", (caption, "red", "white", 3), 3),
    ):
        gallery = one.predict(*args, api_name=api_name)
        assert isinstance(gallery, list) and len(gallery) == count, (api_name, gallery)
        assert all(isinstance(item, dict) and item["image"] for item in gallery), api_name
        narrow = two.predict(*args, api_name=api_name)[0]
        assert all(np.array_equal(_pixels(a), _pixels(b)) for a, b in zip(gallery, narrow)), api_name
    with pytest.raises(Exception, match="has no word 'green'"):
        one.predict(caption, "green", "blue", 0, api_name="/swap")


def _chromium():
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip("chromium not installed (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1400,1200",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _shown(driver, gallery_class: str) -> dict[str, list[tuple[str, int]]]:
    """{gallery id: [(alt text, natural width) of each loaded image]} for the galleries of one kind."""
    pairs = driver.execute_script(
        f"return Array.from(document.querySelectorAll('.{gallery_class} img')).filter(i => i.naturalWidth > 0)"
        f".map(i => [i.closest('.{gallery_class}').id, i.alt, i.naturalWidth])"
    )
    shown: dict[str, list[tuple[str, int]]] = {}
    for gallery, alt, width in pairs:
        shown.setdefault(gallery, []).append((alt, width))
    return shown


def _set(driver, elem_id: str, value) -> None:
    """Type `value` into the text or number box of the component `elem_id`, as a user would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input:not([type=range]), #{elem_id} textarea")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(value), Keys.TAB)


@pytest.mark.parametrize("which", ["page_one", "page"])
def test_page_shows_images_on_load_and_after_each_button_in_headless_chromium(which, request, tmp_path):
    """The page as a browser shows it, from one run and from two: every tab drawn on load, then Generate,
    Interpolate and Change the word each redraw with what was typed (fewer images, another word)."""
    demo = request.getfixturevalue(which)
    n_runs = 1 if which == "page_one" else 2
    driver = _chromium()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def wait_for(prefix: str, per_run: int, word: str = "") -> dict:
        """Wait until each run's `prefix` gallery shows `per_run` images, the second captioned with `word`."""

        def done(d):
            shown = _shown(d, f"{prefix}-gallery")
            full = sorted(shown) == [f"{prefix}-{i}" for i in range(n_runs)]
            right = all(len(images) == per_run and word in (images[1][0] or "") for images in shown.values())
            return shown if full and right else None

        return WebDriverWait(driver, 60).until(done)

    def tab(name: str) -> None:
        next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text == name).click()

    errors = "return Array.from(document.querySelectorAll('.toast-body')).map(t => t.innerText)"
    try:
        driver.get(demo.local_url)
        on_load = wait_for("run", 4)  # no click: the default caption, seed and 4 images per run
        driver.save_screenshot(str(tmp_path / "page.png"))
        headings = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h3")]
        _set(driver, "count", 2)
        driver.find_element(By.ID, "generate").click()
        generated = wait_for("run", 2)
        tab("Interpolate")
        wait_for("walk", 6)  # drawn on load as well
        _set(driver, "steps", 3)
        driver.find_element(By.ID, "interpolate").click()
        walked = wait_for("walk", 3)
        tab("Change one word")
        wait_for("swap", 3, "blue")
        _set(driver, "new-word", "white")
        driver.find_element(By.ID, "swap").click()
        swapped = wait_for("swap", 3, "white")
        shown_errors = driver.execute_script(errors)
    finally:
        driver.quit()
    assert not shown_errors, shown_errors
    for result in (on_load, generated, walked):
        assert {width for images in result.values() for _, width in images} == {64}
    assert [alt for alt, _ in swapped["swap-0"]] == [
        "this flower has five round red petals and a yellow center.",
        "this flower has five round white petals and a yellow center.",
        "difference (x2)",
    ]
    assert [alt for alt, _ in walked["walk-0"]] == ["0.00", "0.50", "1.00"]
    assert {"narrow", "wide"}.intersection(headings) == ({"narrow"} if n_runs == 1 else {"narrow", "wide"})
    shot = np.asarray(Image.open(tmp_path / "page.png").convert("L"))
    assert shot.shape[1] >= 1000 and shot.std() > 5, "the screenshot is blank"
