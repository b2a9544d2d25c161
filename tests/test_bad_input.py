"""Bad input never gives a traceback or loses data (issue 8): one-line LabErrors naming the file or
key, corrupt caches rebuilt with a note, nothing already on disk overwritten or left half-written."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lab.data.download as download
from lab.checkpoint import (
    CHECKPOINT,
    CONFIG,
    GENERATOR_WEIGHTS,
    load_checkpoint,
    load_run,
    read_run_config,
)
from lab.config import read_file
from lab.course.quiz import parse_answers, read_answers
from lab.data.captions import load_captions
from lab.data.dataset import decode_image, embed_texts, load_images
from lab.data.synthetic import generate
from lab.errors import LabError
from lab.files import atomic_save, atomic_write, load_cache
from lab.runlock import run_lock
from tests.helpers import ROOT, run_lab

# --- files that must be refused in one line naming them ------------------------------------------


def _run_dir(
    tmp_path: Path, config_bytes: bytes | None = None, checkpoint: bytes | None = None, weights: bytes | None = None
) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    good = json.dumps({"config": {"generator": {"name": "dcgan", "width": 8}}, "text_dim": 384}).encode()
    (run / CONFIG).write_bytes(good if config_bytes is None else config_bytes)
    if checkpoint is not None:
        (run / CHECKPOINT).write_bytes(checkpoint)
    if weights is not None:
        (run / GENERATOR_WEIGHTS).write_bytes(weights)
    return run


def _torch_bytes(obj) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _config_file(name: str, data: bytes):
    def make(tmp_path: Path) -> Path:
        (tmp_path / name).write_bytes(data)
        return tmp_path / name

    return make


BAD_FILES = {
    # config files given with --config
    "config yaml list": (
        _config_file("c.yaml", b"- epochs: 3\n"),
        read_file,
        r"c\.yaml must hold key = value settings, not a list",
    ),
    "config json list": (
        _config_file("c.json", b"[1, 2]"),
        read_file,
        r"c\.json must hold key = value settings, not a list",
    ),
    "config json null": (
        _config_file("c.json", b"null"),
        read_file,
        r"c\.json must hold key = value settings, not null",
    ),
    "config number": (_config_file("c.yaml", b"42\n"), read_file, r"c\.yaml must hold key = value settings, not a int"),
    "config binary": (_config_file("c.toml", bytes(range(256))), read_file, r"c\.toml is not UTF-8 text"),
    "config utf-16": (
        _config_file("c.toml", "epochs = 3\n".encode("utf-16")),
        read_file,
        r"c\.toml is not UTF-8 text .*UTF-16",
    ),
    "config broken toml": (_config_file("c.toml", b"epochs = = 3\n"), read_file, r"cannot parse .*c\.toml: "),
    # a run's config.json
    "run config not json": (
        lambda t: _run_dir(t, b'{"config": {'),
        read_run_config,
        r"run/config\.json is damaged \(JSONDecodeError",
    ),
    "run config a list": (lambda t: _run_dir(t, b"[]"), read_run_config, r"run/config\.json must hold"),
    "run config bad key": (
        lambda t: _run_dir(t, b'{"config": {"widht": 8}, "text_dim": 384}'),
        read_run_config,
        r"run/config\.json: unknown config key 'widht'",
    ),
    "run config utf-16": (
        lambda t: _run_dir(t, '{"config": {}, "text_dim": 3}'.encode("utf-16")[:7]),
        read_run_config,
        r"run/config\.json is damaged",
    ),
    # checkpoints and generator weights
    "checkpoint empty": (
        lambda t: _run_dir(t, checkpoint=b""),
        load_checkpoint,
        r"run/checkpoint\.pt is not a readable checkpoint \(EOFError\); restore a copy",
    ),
    "checkpoint garbage": (
        lambda t: _run_dir(t, checkpoint=b"garbage" * 100),
        load_checkpoint,
        r"run/checkpoint\.pt is not a readable checkpoint",
    ),
    "checkpoint truncated": (
        lambda t: _run_dir(t, checkpoint=_torch_bytes({"g": torch.ones(1000)})[:900]),
        load_checkpoint,
        r"run/checkpoint\.pt is not a readable checkpoint",
    ),
    "checkpoint not a dict": (
        lambda t: _run_dir(t, checkpoint=_torch_bytes([1, 2])),
        load_checkpoint,
        r"run/checkpoint\.pt is not a `lab train` checkpoint \(holds a list",
    ),
    "generator weights garbage": (
        lambda t: _run_dir(t, weights=b"\x08" + b"\0" * 20),
        load_run,
        r"run/generator\.safetensors is damaged",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_is_one_line_error_naming_it(tmp_path, case):
    make, read, message = BAD_FILES[case]
    with pytest.raises(LabError, match=message) as error:
        read(make(tmp_path))
    assert "\n" not in str(error.value)


def test_yaml_config_that_is_empty_or_null_means_no_settings(tmp_path):
    for text in ("", "# nothing yet\n", "null\n"):
        assert read_file(_config_file("c.yaml", text.encode())(tmp_path)) == {}
    assert read_file(_config_file("c.toml", "\ufeffepochs = 3\n".encode())(tmp_path)) == {"epochs": 3}  # a BOM is fine


def test_metrics_line_cut_short_is_left_out_with_a_note(tmp_path, capsys):
    from lab.checkpoint import METRICS, read_metrics

    (tmp_path / METRICS).write_bytes(
        b'{"epoch": 1, "d_loss": 1.5}\n[2]\n{"epoch": "2"}\n{"epoch": 8.15, "images_per_s": 125.1}\n{"epoch": 2, "d_lo'
    )
    # a fractional epoch is a time-limited outside loop's (the benchmark's tutorial), and is kept
    assert read_metrics(tmp_path) == [{"epoch": 1, "d_loss": 1.5}, {"epoch": 8.15, "images_per_s": 125.1}]
    assert capsys.readouterr().err == f"note: {tmp_path / METRICS}: left out 3 line(s) that are not epoch records\n"


# --- writes: disk full never leaves a temp file or a broken target --------------------------------


def test_disk_full_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "checkpoint.pt"
    atomic_save({"epoch": 1}, target)

    def fills_the_disk(tmp: Path) -> None:
        tmp.write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(
        LabError,
        match=r"cannot write .*checkpoint\.pt: No space left on device \(any previous version of it is unchanged\); free some",
    ):
        atomic_write(target, fills_the_disk)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert torch.load(target, weights_only=True) == {"epoch": 1}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_torch_save_onto_a_full_disk_is_a_lab_error(tmp_path, monkeypatch):
    """torch.save to a path reports ENOSPC as an opaque RuntimeError; atomic_save must see the OSError."""
    real_open = Path.open
    monkeypatch.setattr(
        Path,
        "open",
        lambda self, mode="r", *a, **k: (
            real_open(Path("/dev/full"), mode) if "w" in mode else real_open(self, mode, *a, **k)
        ),
    )
    with pytest.raises(LabError, match="No space left on device"):
        atomic_save({"w": torch.ones(100_000)}, tmp_path / "x.pt")


# --- caches: damaged ones are rebuilt with one note -----------------------------------------------


class CountingEncoder:
    name, dim, cache_key = "counting", 2, "counting-2"

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen += texts
        return torch.tensor([[float(len(t)), 1.0] for t in texts])


@pytest.mark.parametrize("damage", [b"", b"garbage", "foreign"])
def test_corrupt_caches_are_rebuilt_with_a_note(tmp_path, synthetic_root, capsys, damage):
    paths = sorted((synthetic_root / "images").glob("*.jpg"))[:3]
    images, kept, _ = load_images(paths, 16, tmp_path, progress=False)
    encoder = CountingEncoder()
    vectors = embed_texts(encoder, ["a", "bb"], tmp_path, progress=False)
    for cache in [*(tmp_path / "images").glob("*.pt"), *(tmp_path / "embeddings").rglob("part-*.pt")]:
        cache.write_bytes(_torch_bytes({"images": torch.zeros(2)}) if damage == "foreign" else damage)
    capsys.readouterr()

    again, kept_again, _ = load_images(paths, 16, tmp_path, progress=False)
    assert torch.equal(again, images) and torch.equal(kept_again, kept)
    encoder.seen.clear()
    assert torch.equal(embed_texts(encoder, ["a", "bb"], tmp_path, progress=False), vectors)
    assert encoder.seen == ["a", "bb"]  # re-encoded, not read from the damaged part
    notes = capsys.readouterr().err.strip().splitlines()
    assert len(notes) == 2 and all(
        line.startswith("note: ignoring cache file ") and line.endswith("; rebuilding it") for line in notes
    )
    load_images(paths, 16, tmp_path, progress=False)
    assert capsys.readouterr().err == ""  # the rebuilt cache is used again


def test_load_cache_rejects_content_that_does_not_fit(tmp_path, capsys):
    path = tmp_path / "features.pt"
    torch.save(torch.zeros(3, 5), path)
    assert load_cache(path, lambda f: f.shape == (3, 5)) is not None
    assert load_cache(path, lambda f: f.shape == (4, 2048)) is None and not path.exists()
    assert f"note: ignoring cache file {path} (unexpected content)" in capsys.readouterr().err


def test_corrupt_fid_and_matcher_caches_are_rebuilt(tmp_path, capsys):
    from lab.evaluation.alignment import cached_matcher
    from lab.evaluation.fid import cached_features

    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)

    class FakeInception:
        def __call__(self, batch):
            return batch.float().mean((1, 2, 3))[:, None].expand(-1, 2048)

    features = cached_features(FakeInception(), images, "test", tmp_path, progress=False)
    embeddings, caption_image = torch.randn(4, 6), torch.arange(4)
    matcher = cached_matcher(images, embeddings, caption_image, "k", tmp_path, steps=1, progress=False)
    for cache in [*(tmp_path / "fid").glob("*.pt"), *(tmp_path / "matcher").glob("*.pt")]:
        cache.write_bytes(b"\0" * 10)
    assert torch.equal(cached_features(FakeInception(), images, "test", tmp_path, progress=False), features)
    rebuilt = cached_matcher(images, embeddings, caption_image, "k", tmp_path, steps=1, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), matcher.state_dict().values()))
    assert capsys.readouterr().err.count("note: ignoring cache file") == 2


# --- images and captions ---------------------------------------------------------------------------


def test_sixteen_bit_png_keeps_its_tones(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    image, note = decode_image(tmp_path / "deep.png", 32)
    assert note == f"{Image.open(tmp_path / 'deep.png').mode} image converted to RGB"
    row = image[0, 0]
    assert row[0] == 0 and row[-1] == 255 and (row.diff() >= 0).all() and 100 < int(row[16]) < 160


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says width x height; PIL refuses it before reading any pixel."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_skipped(tmp_path):
    (tmp_path / "huge.png").write_bytes(_png_header_claiming(20000, 20000))
    assert decode_image(tmp_path / "huge.png", 16) == (None, f"image over {2 * Image.MAX_IMAGE_PIXELS} pixels skipped")


def test_links_folders_orphans_and_latin1_captions_are_counted(tmp_path):
    images, captions = tmp_path / "images", tmp_path / "captions"
    images.mkdir()
    captions.mkdir()
    for name in ("ok", "latin", "dircap", "loopcap"):
        Image.new("RGB", (8, 8), "red").save(images / f"{name}.jpg")
        (captions / f"{name}.txt").write_text("a red flower\n")
    (captions / "latin.txt").write_bytes("une fleur rouge, pétales serrés\n".encode("latin-1"))
    (images / "folder.jpg").mkdir()
    (captions / "folder.txt").write_text("x\n")
    (images / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (captions / "dangling.txt").write_text("x\n")
    (images / "loop.jpg").symlink_to(images / "loop.jpg")
    (captions / "loop.txt").write_text("x\n")
    (captions / "dircap.txt").unlink()
    (captions / "dircap.txt").mkdir()
    (captions / "loopcap.txt").unlink()
    (captions / "loopcap.txt").symlink_to(captions / "loopcap.txt")
    (captions / "no_image_1.txt").write_text("x\n")
    (captions / "no_image_2.txt").write_text("x\n")

    result = load_captions(tmp_path, "all")
    assert {it.image_path.stem: it.captions for it in result.items} == {
        "ok": ["a red flower"],
        "latin": ["une fleur rouge, pétales serrés"],
    }
    assert result.skipped == {
        "caption file without image": 2,
        "image that is a folder or broken link skipped": 3,
        "unreadable caption file skipped": 2,
        "caption file read as Latin-1": 1,
    }


# --- downloads --------------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_bomb_is_not_extracted(tmp_path):
    dest = tmp_path / "flowers"
    dest.mkdir()
    _zip(dest / download.ARCHIVE, {"images/a.jpg": b"\0" * (20 << 20)})  # 20 MiB of zeros in ~20 KiB
    with pytest.raises(LabError, match=r"cvpr2016_flowers\.zip would expand \d+x \(20 MiB\), a zip bomb"):
        download.download_flowers(dest, "http://unused", progress=False)
    assert sorted(p.name for p in dest.iterdir()) == [download.ARCHIVE]


def test_over_the_size_limit_or_the_free_space_is_not_extracted(tmp_path, monkeypatch):
    dest = tmp_path / "flowers"
    dest.mkdir()
    _zip(dest / download.ARCHIVE, {"images/a.jpg": os.urandom(4096), "captions/a.txt": b"a red flower\n"})
    monkeypatch.setattr(download, "MAX_EXTRACT_BYTES", 1000)
    with pytest.raises(LabError, match=r"would extract to 0\.0 GiB, over the 0 GiB limit"):
        download.download_flowers(dest, "http://unused", progress=False)
    monkeypatch.setattr(download, "MAX_EXTRACT_BYTES", 1 << 30)
    monkeypatch.setattr(download.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 100))
    with pytest.raises(LabError, match=r"needs 0 MiB to extract but .*flowers has 0 MiB free"):
        download.download_flowers(dest, "http://unused", progress=False)
    monkeypatch.undo()
    download.download_flowers(dest, "http://unused", progress=False)  # the archive itself is fine
    assert (dest / "captions" / "a.txt").read_text() == "a red flower\n"


def test_html_part_file_says_delete_it_instead_of_resume(tmp_path):
    dest = tmp_path / "flowers"
    dest.mkdir()
    (dest / f"{download.ARCHIVE}.part").write_text("<!DOCTYPE html><html><title>Quota exceeded</title>")
    with pytest.raises(LabError, match=r"\.part is an HTML page .*; delete it and download again"):
        download.download_flowers(dest, "http://unused", progress=False)


# --- the quiz ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("answers", ["1a " + "x" * 10_000_000, "9" * 10_000 + "a", "/" + "y" * 100_000])
def test_quiz_never_echoes_a_huge_token(answers):
    with pytest.raises(LabError) as error:
        parse_answers(read_answers(answers))
    assert len(str(error.value)) < 200


# --- the run lock: two real processes ------------------------------------------------------------------

HOLD = "import sys; from lab.runlock import run_lock\nwith run_lock(sys.argv[1]):\n    print('locked', flush=True); sys.stdin.read()\n"


def test_second_process_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        assert (run / ".lock").read_text().split("\n")[0] == str(holder.pid)
        with pytest.raises(LabError, match=rf"{run} is in use by process {holder.pid} "):
            with run_lock(run):
                pytest.fail("two processes hold one run directory")
    finally:
        holder.send_signal(signal.SIGKILL)  # dies without releasing: the lock becomes stale
        holder.wait()
    with run_lock(run) as lock:
        assert lock.read_text().split("\n")[0] == str(os.getpid())
    assert (
        capsys.readouterr().err
        == f"note: taking over {run / '.lock'} left by process {holder.pid}, which is no longer running\n"
    )
    assert not (run / ".lock").exists()


def test_lock_is_released_on_an_exception(tmp_path):
    with pytest.raises(RuntimeError):
        with run_lock(tmp_path):
            raise RuntimeError("training failed")
    assert not (tmp_path / ".lock").exists()
    with run_lock(tmp_path):
        with pytest.raises(LabError, match=f"in use by process {os.getpid()}"):
            with run_lock(tmp_path):
                pass


# --- synthetic data destinations ----------------------------------------------------------------------


def test_synthetic_refuses_a_folder_with_data_unless_forced(tmp_path):
    dest = tmp_path / "flowers"
    (dest / "images").mkdir(parents=True)
    (dest / "images" / "image_00001.jpg").write_bytes(b"a real photo")
    with pytest.raises(LabError, match=r"flowers is not empty; .*pass --force"):
        generate(dest, n=1, size=16, progress=False)
    assert (dest / "images" / "image_00001.jpg").read_bytes() == b"a real photo"
    generate(dest, n=1, size=16, progress=False, force=True)
    assert Image.open(dest / "images" / "image_00001.jpg").size == (16, 16)


# --- the CLI: one line on stderr, non-zero exit, no traceback ----------------------------------------


def _busy_port() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


CLI_CASES = {
    "synthetic into non-empty": (lambda t: ["data", "synthetic", str(_nonempty(t))], r"is not empty; .*--force"),
    "synthetic size 0": (
        lambda t: ["data", "synthetic", str(t / "new"), "--size", "0"],
        r"--size must be at least 16 pixels, got 0",
    ),
    "synthetic dest is a file": (lambda t: ["data", "synthetic", str(_file(t))], r"afile is a file"),
    "synthetic unknown style": (
        lambda t: ["data", "synthetic", str(t / "new"), "--style", "oil"],
        r"unknown synthetic style 'oil'; choose one of: classic, photo",
    ),
    "download dest is a file": (
        lambda t: ["data", "download", "flowers", "--dest", str(_file(t))],
        r"--dest .*afile is a file",
    ),
    "train config is a list": (
        lambda t: ["train", "--config", str(_config_file("c.json", b"[]")(t))],
        r"c\.json must hold key = value settings",
    ),
}


def _nonempty(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("mine")
    return tmp_path / "data"


def _file(tmp_path: Path) -> Path:
    (tmp_path / "afile").write_text("mine")
    return tmp_path / "afile"


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, case):
    make_args, message = CLI_CASES[case]
    args = make_args(tmp_path)
    out = run_lab(*args, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert re.fullmatch(rf"lab {args[0]}: error: .*{message}.*", lines[0]), lines[0]
    assert all(p.read_text() == "mine" for p in tmp_path.rglob("*") if p.name in ("keep.txt", "afile"))


def test_compare_on_a_busy_port_is_one_line(tmp_path):
    with _busy_port() as server:
        port = server.getsockname()[1]
        out = run_lab("compare", "nowhere", "--port", str(port), timeout=120)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"lab compare: error: cannot serve on 127.0.0.1:{port}: Address already in use (another `lab compare`? pick another --port)"
    ]


def test_invalid_port_or_host_is_refused_before_loading_runs():
    from lab.experiments.app import check_port

    with pytest.raises(LabError, match="--port must be from 1 to 65535, got 70000"):
        check_port("127.0.0.1", 70000)
    with pytest.raises(LabError, match="--host no-such-host.invalid is not a known address"):
        check_port("no-such-host.invalid", 7860)
