"""The `lab` command. Parsers only; each command's work lives in its own module, imported lazily
so that `lab quiz` does not pay for importing torch.

User mistakes raise `LabError` and end here as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
import traceback
from pathlib import Path

from lab.config import ExperimentConfig
from lab.course.grade_report import FORMATS
from lab.errors import LabError


def _run(target: str):
    """Defer `module:function` imports until the command actually runs."""

    def call(args: argparse.Namespace) -> int | None:
        module, _, func = target.partition(":")
        return getattr(importlib.import_module(module), func)(args)

    return call


def _trust_code(p: argparse.ArgumentParser) -> None:
    """`--trust-code`: the one way to let a run folder's config.json name code (a `module:attribute` part)."""
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="also build parts the run's config.json names by module:attribute: this imports and runs that code, "
        "so only for runs you trust (by default only registered parts are built from a run folder)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab", description="t2i-lab: text-to-image GAN experiments")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train",
        help="train a model; extra --key=value pairs override the config",
        epilog="config keys (--key=value; a part's settings as --generator.width=32), with defaults: "
        + ", ".join(f"{k}={v!r}" for k, v in ExperimentConfig().to_dict().items()),
    )
    p.add_argument("--config", help="TOML/YAML/JSON experiment config")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly where it stopped")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--force",
        action="store_true",
        help="train into an --out_dir that holds files: the lab's own files of an earlier run there are deleted",
    )
    _trust_code(p)
    p.set_defaults(func=_run("lab.train.trainer:main"), accepts_overrides=True)

    p = sub.add_parser("generate", help="generate images for captions with a trained run")
    p.add_argument("caption", nargs="*", help="one or more captions")
    p.add_argument("--captions-file", default="", metavar="FILE", help="more captions, one per line")
    p.add_argument("--run", required=True, help="run directory written by `lab train`")
    p.add_argument("--n", type=int, default=8, help="images per caption (1-64)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives every run the same noise")
    p.add_argument("--out", default="", help="output grid PNG (default RUN/generated/<caption>-seed<S>.png)")
    p.add_argument(
        "--out-dir", default="", help="write one PNG per image plus index.json (caption, seed, noise index, file) here"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--force", action="store_true", help="overwrite existing output")
    _trust_code(p)
    p.set_defaults(func=_run("lab.sample.generate:main"))

    p = sub.add_parser(
        "eval", help="FID, KID, Inception Score and text-image alignment of a run (writes RUN/eval.json)"
    )
    p.add_argument("--run", required=True, help="run directory written by `lab train`")
    p.add_argument(
        "--protocol",
        default="lab",
        choices=["lab", "stackgan"],
        help="lab: the lab's scores, runs against each other (eval.json); stackgan: the literature's Oxford-102 "
        "protocol, a run against the papers (FID against the test split, eval-stackgan.json)",
    )
    p.add_argument(
        "--n", type=int, default=None, help="generated images, one per drawn caption (default 500; stackgan: 30000)"
    )
    p.add_argument(
        "--inception-weights",
        default="",
        metavar="FILE",
        help="stackgan: Inception v3 fine-tuned on Oxford-102 as TorchScript, for the literature's Inception Score",
    )
    p.add_argument(
        "--split", default="test", choices=["train", "test", "all"], help="real images and captions to compare with"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--precision",
        default="run",
        choices=["run", "fp32", "bf16", "fp16", "auto"],
        help="render in the run's precision (default) or this one",
    )
    _trust_code(p)
    p.set_defaults(func=_run("lab.evaluation.evaluate:main"))

    p = sub.add_parser(
        "sweep", help="train and evaluate a grid of variants with one budget and protocol; writes a leaderboard"
    )
    p.add_argument(
        "config", help="sweep file: [base] config, [eval] protocol, [variants.NAME] overrides (see configs/sweep.toml)"
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run just these variants (the leaderboard still lists every evaluated one)",
    )
    p.add_argument(
        "--reference", default="", metavar="NAME", help="variant the FID ratios are taken against (e.g. tutorial)"
    )
    p.add_argument(
        "--force", action="store_true", help="retrain variants whose settings changed (their old runs are deleted)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run("lab.experiments.sweep:main"))

    p = sub.add_parser("compare", help="Gradio page: several runs side by side on the same caption and noise")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by `lab train`")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve the page to other machines")
    p.add_argument("--port", type=int, default=7860, help="1-65535; checked before any run is loaded")
    _trust_code(p)
    p.set_defaults(func=_run("lab.experiments.app:main"))

    p = sub.add_parser("plugins", help="list registered encoders, generators, discriminators, loss recipes")
    p.set_defaults(func=_run("lab.parts.registry:main"))

    p = sub.add_parser("data", help="download or draw data sets")
    data = p.add_subparsers(dest="data_command", required=True)
    d = data.add_parser("download", help="download Oxford-102 Flowers with the Reed et al. captions")
    d.add_argument("name", choices=["flowers"])
    d.add_argument("--dest", default="data/flowers", help="folder to download and extract into")
    d.add_argument("--url", default="", help="HTTP mirror of cvpr2016_flowers.zip (default: Google Drive)")
    d.add_argument("--sha256", default="", help="expected sha256 of the archive, checked before extracting")
    d.add_argument(
        "--force",
        action="store_true",
        help="extract into a --dest that holds other files (same-named ones are replaced)",
    )
    d.set_defaults(func=_run("lab.data.download:main"))
    d = data.add_parser("synthetic", help="draw the offline synthetic flowers set")
    d.add_argument("dest")
    d.add_argument("--n", type=int, default=512)
    d.add_argument("--size", type=int, default=128)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument(
        "--style",
        default="classic",
        help="classic (one centred flower, a caption fixes the picture) or photo (framing, tilt, light, "
        "several blooms, backgrounds, camera noise, Reed-style captions: one caption, many pictures)",
    )
    d.add_argument(
        "--force", action="store_true", help="draw into a folder that is not empty (same-named files are overwritten)"
    )
    d.set_defaults(func=_run("lab.data.synthetic:main"))

    p = sub.add_parser(
        "grade",
        help="autograde the course exercises (or the reference solutions): score table, exit 1 below full marks",
    )
    p.add_argument(
        "--target",
        default="exercises",
        metavar="DIR",
        help="folder of exNN_*.py files to grade (default: exercises; solutions: the reference)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="exNN",
        help="grade this exercise only, e.g. ex04; repeat it (or ex04,ex06) for several",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="under each failed check, its details (code line, expected vs got)"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds one check may take before it fails")
    p.add_argument(
        "--sandbox", action="store_true", help="for others' code: temp copy of the lab, no network, resource limits"
    )
    p.add_argument(
        "--format",
        default="table",
        choices=FORMATS,
        help="json: the lab's own; gradescope: results.json; junit: XML for CI and LMS plugins",
    )
    p.add_argument(
        "--out",
        default="",
        metavar="FILE",
        help="write the --format report here (the table still prints); default: stdout",
    )
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=_run("lab.course.grade:main"))

    p = sub.add_parser("quiz", help="the course quiz: interactive, or `lab quiz check '1a 2a ...'` to score answers")
    p.add_argument("--lang", choices=["vi", "en"], default="vi", help="question language (default: vi, the original)")
    quiz = p.add_subparsers(dest="quiz_command")
    c = quiz.add_parser("check", help="score an answer string like '1a 2c 3b' or a file holding one")
    c.add_argument("answers", help="answers as <question><letter> pairs, or a path to a text file with them")
    c.add_argument("--lang", choices=["vi", "en"], default=argparse.SUPPRESS, help="language of the explanations")
    p.set_defaults(func=_run("lab.course.quiz:main"))

    p = sub.add_parser("weights", help="install offline encoder weights")
    p.add_argument("name", choices=["mpnet"])
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_run("lab.data.weights:main"))
    return parser


def _raised_by_exercise(error: BaseException) -> bool:
    """True when the error comes from a course exercise file `exNN_*.py` (an unfinished stub plugged in with module:attr)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and re.fullmatch(r"ex\d\d_\w+\.py", Path(frames[-1].filename).name) is not None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    if getattr(args, "quiet", False):
        # The Hugging Face libraries draw their own bars ("Loading weights" as an encoder loads) unless this is
        # set when they are first imported, which the lazily imported commands do only after this line.
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        return int(args.func(args) or 0)
    except LabError as e:
        print(f"lab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except NotImplementedError as e:
        if not _raised_by_exercise(e):  # torch's own NotImplementedError is a bug to see in full
            raise
        print(f"lab {args.command}: error: unfinished exercise: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # long commands save what they finished (caches, checkpoints) before this
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # more Ctrl-C while the process exits change nothing
        print(f"lab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
