"""Exercise 3: batches with images in [-1, 1] and wrong images that never match their caption."""

from __future__ import annotations

import pytest
import torch

from lab.errors import LabError

KEYS = {"image", "embedding", "text", "wrong_image", "index"}


def _parts(n_images: int = 6, captions_per_image: int = 2, labelled: bool = True, size: int = 64) -> dict:
    g = torch.Generator().manual_seed(0)
    n = n_images * captions_per_image
    return {
        "images": torch.randint(0, 256, (n_images, 3, size, size), dtype=torch.uint8, generator=g),
        "labels": torch.arange(n_images) // 2 if labelled else torch.full((n_images,), -1),
        "embeddings": torch.randn(n, 16, generator=g),
        "texts": [f"caption {i} of image {i // captions_per_image}" for i in range(n)],
        "caption_image": torch.arange(n) // captions_per_image,
    }


@pytest.mark.points(1)
def test_length_and_image_size(ex):
    ds = ex.FlowersDataset(**_parts())
    assert len(ds) == 12
    assert ds.image_size == 64


@pytest.mark.points(2)
def test_batch_contents(ex):
    parts = _parts()
    ds = ex.FlowersDataset(**parts)
    indices = [5, 0, 11, 3]
    batch = ds.__getitems__(indices)
    assert set(batch) == KEYS
    image_idx = parts["caption_image"][indices]
    expected = parts["images"][image_idx].float() / 127.5 - 1.0
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (4, 3, 64, 64)
    torch.testing.assert_close(batch["image"], expected)
    assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0
    torch.testing.assert_close(batch["embedding"], parts["embeddings"][indices])
    assert batch["text"] == [parts["texts"][i] for i in indices]
    assert batch["index"].tolist() == indices
    assert batch["wrong_image"].shape == (4, 3, 64, 64) and batch["wrong_image"].dtype == torch.float32


def _which_image(parts: dict, images: torch.Tensor) -> list[int]:
    """Index of the stored image each float image is (fails if it is none of them)."""
    stored = parts["images"].float() / 127.5 - 1.0
    found = []
    for image in images:
        matches = [k for k in range(len(stored)) if torch.equal(stored[k], image)]
        assert matches, "a wrong image must be one of the data set's real images"
        found.append(matches[0])
    return found


@pytest.mark.points(3)
def test_wrong_images_differ_and_come_from_another_class(ex):
    parts = _parts()
    ds = ex.FlowersDataset(**parts)
    for _ in range(20):
        indices = list(range(len(ds)))
        batch = ds.__getitems__(indices)
        wrong = _which_image(parts, batch["wrong_image"])
        own = parts["caption_image"][indices].tolist()
        assert all(w != o for w, o in zip(wrong, own)), "a wrong image equals its caption's image"
        labels = parts["labels"]
        assert all(labels[w] != labels[o] for w, o in zip(wrong, own)), "a wrong image has its caption's class"


@pytest.mark.points(2)
def test_wrong_images_without_labels(ex):
    parts = _parts(n_images=3, captions_per_image=1, labelled=False)
    ds = ex.FlowersDataset(**parts)
    seen = set()
    for _ in range(30):
        wrong = ds.wrong_indices(torch.tensor([0, 1, 2]))
        assert (wrong != torch.tensor([0, 1, 2])).all()
        assert ((wrong >= 0) & (wrong < 3)).all()
        seen.add(int(wrong[0]))
    assert seen == {1, 2}, "wrong images should be drawn at random among the other images"


@pytest.mark.points(2)
def test_wrong_draws_follow_the_dataset_generator(ex):
    parts = _parts()
    first, second = ex.FlowersDataset(**parts), ex.FlowersDataset(**parts)
    idx = torch.arange(6).repeat(5)
    first.generator = torch.Generator().manual_seed(7)
    second.generator = torch.Generator().manual_seed(7)
    assert torch.equal(first.wrong_indices(idx), second.wrong_indices(idx))
    second.generator = torch.Generator().manual_seed(8)
    draws = {tuple(second.wrong_indices(idx).tolist()) for _ in range(3)}
    assert len(draws) > 1, "draws must come from self.generator, not a fixed pattern"


@pytest.mark.points(1)
def test_single_item(ex):
    parts = _parts()
    item = ex.FlowersDataset(**parts)[3]
    assert set(item) == KEYS
    assert item["image"].shape == (3, 64, 64) and item["text"] == parts["texts"][3] and int(item["index"]) == 3


@pytest.mark.points(1)
def test_one_image_is_a_lab_error(ex):
    ds = ex.FlowersDataset(**_parts(n_images=1, labelled=False))
    with pytest.raises(LabError):
        ds.__getitems__([0, 1])
