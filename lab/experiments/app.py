"""`lab compare`: a Gradio page that puts trained runs side by side.

Every run gets the same caption and the same seeded noise (`Pipeline` draws
it from the seed alone), so differences between columns come from the
runs (encoder, model, loss recipe, training length), not from luck. Each column
says what the run is and, when `lab eval` has been run on it, how it scored.
Two tabs explore what each run learnt, again with one noise for every run:
*Interpolate* walks the text embedding from one caption to another (the noise
stays fixed, so only the text moves), *Change one word* draws a caption and
the same caption with one word swapped, beside their difference. A last tab
shows how each run trained: loss curves and the sample grid of every epoch.

Limits keep a shared page responsive: captions as long as training allows,
at most `MAX_IMAGES` per run, one generation at a time with a bounded queue.
"""

from __future__ import annotations

import json
import math
import re
import socket
import sys
from pathlib import Path

import gradio as gr
from PIL import Image

from lab.checkpoint import Run, trust_flag
from lab.data.captions import MAX_CAPTION_CHARS
from lab.errors import LabError
from lab.evaluation.evaluate import EVAL_JSON, summary_rows
from lab.experiments.sweep import LEADERBOARD
from lab.pixels import to_pil
from lab.sample.generate import flat_note
from lab.sample.pipeline import Pipeline, validate_caption

MAX_IMAGES = 8
MAX_SEED = 2**31 - 1
QUEUE_SIZE = 16
EXAMPLES = [
    "this flower has five round red petals and a yellow center.",
    "a purple flower with pointed petals and a black center.",
    "the petals of this flower are white and round, with a green middle.",
    "this flower has large pink petals that droop down around a yellow stamen.",
]


def run_title(run: Run) -> str:
    return f"{run.dir.name} ({run.dir})"


def run_label(run: Run) -> str:
    """Markdown for a column head: what the run is, and its `lab eval` scores when there are any."""
    c = run.config

    def part(p) -> str:
        settings = ", ".join(f"{k} {v}" for k, v in p.options.items())
        return f"**{p.name}**" + (f" ({settings})" if settings else "")

    extras = [f"augment {c.augment.policy}"] * bool(c.augment.policy) + [f"EMA {c.ema:g}"] * bool(c.ema)
    lines = [
        f"### {run.dir.name}",
        f"encoder **{c.encoder}** · generator {part(c.generator)} · discriminator {part(c.discriminator)}  ",
        f"loss {part(c.loss)} · **{run.epoch}** epoch(s) · {c.image_size}px" + "".join(f" · {e}" for e in extras),
    ]
    eval_path = run.dir / EVAL_JSON
    if eval_path.is_file():
        lines += score_lines(eval_path)
    else:
        lines.append(f"\nno scores yet: `lab eval --run {run.dir}{trust_flag(c)}`")
    return "\n".join(lines)


def young_run_note(pipe: Pipeline) -> str:
    """A Markdown line under a column head whose run still draws flat grey (see `flat_note`), else ""."""
    note = flat_note(pipe([EXAMPLES[0]], 4, 0), pipe.run.epoch)
    return f"\n\n*Note: {note}.*" if note else ""


def score_lines(eval_path: Path) -> list[str]:
    """The column's scores from `eval_path`; a damaged or foreign file gives one note instead (here and on stderr):
    the run is still shown, without scores."""
    try:
        scores = json.loads(eval_path.read_bytes())
        protocol = scores["protocol"]
        head = f"\n`lab eval` at epoch {scores['epoch']} ({protocol['generated_images']} generated vs {protocol['real_images']} real {protocol['split']} images):"
        return [head] + [f"- {name}: {value}" for name, value in summary_rows(scores)]
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as e:  # unreadable, not JSON, keys missing
        note = f"{eval_path} is damaged or not from `lab eval` ({type(e).__name__}); run `lab eval --run {eval_path.parent}` again (with --trust-code if the run names code)"
        print(f"note: {note}", file=sys.stderr)
        return [f"\nno scores: {note}"]


def sample_grids(run: Run) -> list[tuple[str, str]]:
    """(path, caption) of every saved sample grid, in epoch order."""
    paths = sorted((run.dir / "samples").glob("epoch_*.png"))
    return [(str(p), f"epoch {int(p.stem.split('_')[1])}") for p in paths]


def _caption(caption: str) -> str:
    try:
        return validate_caption(caption or "")
    except LabError as e:
        raise gr.Error(str(e)) from None


def _whole(value: float, name: str, low: int, high: int) -> int:
    if (
        not isinstance(value, int | float)
        or not math.isfinite(value)
        or int(value) != value
        or not low <= value <= high
    ):
        raise gr.Error(f"{name} must be a whole number from {low} to {high}, got {value}")
    return int(value)


def check_request(caption: str, seed: float, count: float) -> tuple[str, int, int]:
    """Validate what the page (or an API caller) sent; problems become messages, not tracebacks."""
    caption = _caption(caption)
    return caption, _whole(seed, "seed", 0, MAX_SEED), _whole(count, "number of images", 1, MAX_IMAGES)


def swap_word(caption: str, old: str, new: str) -> str:
    """`caption` with the whole word `old` (any case, every time it occurs) replaced by `new`."""
    old, new = " ".join((old or "").split()), " ".join((new or "").split())
    if not old or not new:
        raise gr.Error("give the word to change and the word to put in its place")
    swapped, count = re.subn(rf"(?<!\w){re.escape(old)}(?!\w)", lambda _: new, caption, flags=re.IGNORECASE)
    if not count:
        raise gr.Error(f"the caption has no word '{old}'")
    return _caption(swapped)


def difference(a, b) -> Image.Image:
    """|a - b| of two [-1, 1] images [3, H, W], doubled so that small changes show: black where nothing changed."""
    return to_pil(((a - b).abs() * 2 - 1).clamp(-1, 1).unsqueeze(0))[0]


def per_output(columns: list) -> object:
    """A handler's result for one output per run. Gradio hands a handler's value to a single output as it
    is and spreads a tuple over several, so one run's column goes back bare, not as a 1-tuple."""
    return columns[0] if len(columns) == 1 else tuple(columns)


def expand_sweeps(paths: list[str | Path]) -> tuple[list[Path], list[Path]]:
    """(run directories, sweep folders): a `lab sweep` folder stands for its runs, in leaderboard order."""
    runs, sweeps = [], []
    for path in map(Path, paths):
        board = path / LEADERBOARD
        if board.is_file():
            try:  # a sweep folder is data: a damaged leaderboard is one line, never a traceback
                variants = [str(row["variant"]) for row in json.loads(board.read_bytes())["rows"]]
            except (OSError, ValueError, LookupError, TypeError) as e:
                raise LabError(
                    f"{board} is damaged or not from `lab sweep` ({type(e).__name__}); run the sweep again"
                ) from None
            if any(Path(v).name != v or v in ("", ".", "..") for v in variants):
                raise LabError(f"{board} names a variant that is not a folder inside {path}")
            sweeps.append(path)
            runs += [path / v for v in variants]
        else:
            runs.append(path)
    return runs, sweeps


def build_demo(run_dirs: list[str | Path], device: str = "cpu", trust_code: bool = False) -> gr.Blocks:
    """The comparison page for `run_dirs` (runs, or sweep folders standing for their runs plus a Leaderboard tab).
    Endpoints: `/generate` (caption, seed, count), `/interpolate` (from caption, to caption, steps, seed) and
    `/swap` (caption, word, new word, seed); each returns one gallery per run (for one run, that gallery
    itself). Every tab is drawn once when the page opens. Runs that name parts by `module:attribute` load
    only with `trust_code` (see `Pipeline.from_run`)."""
    if not run_dirs:
        raise LabError("give at least one run directory")
    run_dirs, sweeps = expand_sweeps(run_dirs)
    encoders: dict = {}  # runs with the same encoder share one instance
    pipes = [Pipeline.from_run(d, device, encoders, trust_code=trust_code) for d in run_dirs]
    runs = [pipe.run for pipe in pipes]

    def generate(caption: str, seed: float, count: float):
        caption, seed, count = check_request(caption, seed, count)
        return per_output([to_pil(pipe([caption], count, seed)) for pipe in pipes])

    def interpolate(start: str, end: str, steps: float, seed: float):
        start, end = _caption(start), _caption(end)
        steps, seed = _whole(steps, "number of steps", 2, MAX_IMAGES), _whole(seed, "seed", 0, MAX_SEED)
        labels = [f"{i / (steps - 1):.2f}" for i in range(steps)]
        return per_output([list(zip(to_pil(pipe.interpolate(start, end, steps, seed)), labels)) for pipe in pipes])

    def swap(caption: str, old: str, new: str, seed: float):
        caption = _caption(caption)
        swapped, seed = swap_word(caption, old, new), _whole(seed, "seed", 0, MAX_SEED)
        columns = []
        for pipe in pipes:
            before, after = pipe([caption, swapped], 1, seed)  # one caption each, the same noise
            columns.append(
                [
                    (to_pil(before[None])[0], caption),
                    (to_pil(after[None])[0], swapped),
                    (difference(before, after), "difference (x2)"),
                ]
            )
        return per_output(columns)

    def run_galleries(prefix: str, label: str, **options) -> list[gr.Gallery]:
        """One gallery per run, in a row, each headed by the run's name."""
        out = []
        with gr.Row(equal_height=False):
            for i, run in enumerate(runs):
                with gr.Column():
                    out.append(
                        gr.Gallery(
                            label=f"{run.dir.name}: {label}",
                            format="png",
                            object_fit="contain",
                            elem_id=f"{prefix}-{i}",
                            elem_classes=[f"{prefix}-gallery"],
                            **options,
                        )
                    )
        return out

    with gr.Blocks(title="t2i-lab: compare runs", analytics_enabled=False) as demo:
        gr.Markdown("# Compare runs\nThe same caption and the same noise (seed) for every run, side by side.")
        with gr.Tab("Generate"):
            with gr.Row():
                caption = gr.Textbox(
                    value=EXAMPLES[0],
                    label="Caption",
                    max_length=MAX_CAPTION_CHARS,
                    scale=4,
                    info=f"at most {MAX_CAPTION_CHARS} characters",
                )
                seed = gr.Number(value=0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED, scale=1)
                count = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Images per run", scale=1, elem_id="count")
            button = gr.Button("Generate", variant="primary", elem_id="generate")
            gr.Examples(EXAMPLES, inputs=[caption], label="Example captions")
            galleries = []
            with gr.Row(equal_height=False):
                for i, (run, pipe) in enumerate(zip(runs, pipes)):
                    with gr.Column():
                        gr.Markdown(run_label(run) + young_run_note(pipe))
                        galleries.append(
                            gr.Gallery(
                                label=run_title(run),
                                columns=4,
                                height=320,
                                object_fit="contain",
                                format="png",
                                elem_id=f"run-{i}",
                                elem_classes=["run-gallery"],
                            )
                        )
            button.click(generate, [caption, seed, count], galleries, api_name="generate")
            caption.submit(generate, [caption, seed, count], galleries, api_name=False)
        with gr.Tab("Interpolate"):
            gr.Markdown(
                "One noise vector, the caption's embedding walked from the first caption to the second: what changes is what the text controls."
            )
            with gr.Row():
                start = gr.Textbox(value=EXAMPLES[0], label="From caption", max_length=MAX_CAPTION_CHARS, scale=3)
                end = gr.Textbox(value=EXAMPLES[1], label="To caption", max_length=MAX_CAPTION_CHARS, scale=3)
                steps = gr.Slider(2, MAX_IMAGES, value=6, step=1, label="Steps", scale=1, elem_id="steps")
                walk_seed = gr.Number(value=0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED, scale=1)
            walk = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
            strips = run_galleries(
                "walk", "from the first caption (0) to the second (1)", columns=MAX_IMAGES, height=200
            )
            walk.click(interpolate, [start, end, steps, walk_seed], strips, api_name="interpolate")
        with gr.Tab("Change one word"):
            gr.Markdown(
                "The caption, and the caption with one word swapped, drawn from the same noise, with their difference."
            )
            with gr.Row():
                sentence = gr.Textbox(value=EXAMPLES[0], label="Caption", max_length=MAX_CAPTION_CHARS, scale=4)
                old_word = gr.Textbox(value="red", label="Word to change", scale=1)
                new_word = gr.Textbox(value="blue", label="Put in its place", scale=1, elem_id="new-word")
                swap_seed = gr.Number(value=0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED, scale=1)
            change = gr.Button("Change the word", variant="primary", elem_id="swap")
            pairs = run_galleries("swap", "before, after, difference", columns=3, height=240)
            change.click(swap, [sentence, old_word, new_word, swap_seed], pairs, api_name="swap")
        for folder in sweeps:
            with gr.Tab(f"Leaderboard: {folder.name}"):
                table, chart = folder / "leaderboard.md", folder / "leaderboard.png"
                shown = table.read_text(errors="replace").split("\n\n![leaderboard]")[0] if table.is_file() else ""
                gr.Markdown(shown or f"no {table.name} in {folder}: run the sweep again to draw it")
                if chart.is_file():
                    gr.Image(str(chart), label="leaderboard", interactive=False)
        with gr.Tab("Training"):
            with gr.Row(equal_height=False):
                for run in runs:
                    with gr.Column():
                        gr.Markdown(f"### {run.dir.name}")
                        losses = run.dir / "losses.png"
                        if losses.is_file():
                            gr.Image(str(losses), label="losses per epoch", interactive=False)
                        else:
                            gr.Markdown("no loss plot yet")
                        gr.Gallery(
                            sample_grids(run), label="sample grids (fixed captions and noise)", columns=1, height="auto"
                        )
        # The page opens with every tab drawn from its default inputs, not with empty galleries.
        demo.load(generate, [caption, seed, count], galleries, api_name=False).then(
            interpolate, [start, end, steps, walk_seed], strips, api_name=False
        ).then(swap, [sentence, old_word, new_word, swap_seed], pairs, api_name=False)
    return demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)


def check_port(host: str, port: int) -> None:
    """Fail in one line, before loading any run, when the page could not be served at host:port."""
    if not 1 <= port <= 65535:
        raise LabError(f"--port must be from 1 to 65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does: only a listener blocks
        try:
            probe.bind((host, port))
        except socket.gaierror:
            raise LabError(f"--host {host} is not a known address") from None
        except OSError as e:
            raise LabError(
                f"cannot serve on {host}:{port}: {e.strerror} (another `lab compare`? pick another --port)"
            ) from None


def main(args) -> None:
    """`lab compare RUN_A RUN_B ...`: serve the page until Ctrl-C."""
    check_port(args.host, args.port)
    demo = build_demo(args.runs, trust_code=args.trust_code)
    try:
        demo.launch(server_name=args.host, server_port=args.port, ssr_mode=False)
    except OSError as e:  # the port was taken while the runs loaded
        raise LabError(f"cannot serve on {args.host}:{args.port}: {str(e).splitlines()[0]}") from None
