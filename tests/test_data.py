import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import lab.data.dataset as data
from lab.data.dataset import build_dataset, embed_texts, split_indices
from lab.errors import LabError


class CountingEncoder:
    """A stand-in encoder that records what it was asked to encode."""

    name, dim, cache_key = "counting", 4, "counting-4"

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen += texts
        return torch.tensor([[len(t), t.count("e"), 1.0, 0.0] for t in texts])


def test_second_build_decodes_no_jpeg_and_encodes_no_text(tiny_config, monkeypatch):
    config = tiny_config(captions="all")
    encoder = CountingEncoder()
    first, _ = build_dataset(config, encoder, progress=False)
    assert len(encoder.seen) == len(set(first.texts)) > 0

    monkeypatch.setattr(data, "decode_image", lambda *a: pytest.fail("JPEG decoded again"))
    encoder.seen.clear()
    second, _ = build_dataset(config, encoder, progress=False)
    assert encoder.seen == []
    assert torch.equal(first.images, second.images) and torch.equal(first.embeddings, second.embeddings)


def test_items_have_image_embedding_text_and_a_different_wrong_image(tiny_config, minilm):
    dataset, _ = build_dataset(tiny_config(captions="all"), minilm, progress=False)
    assert len(dataset) == 10 * len(dataset.images)  # 10 captions per synthetic flower
    batch = dataset.__getitems__(list(range(0, len(dataset), 7)))
    n = len(batch["text"])
    assert batch["image"].shape == (n, 3, 64, 64) and batch["embedding"].shape == (n, 384)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    differs = (batch["image"] - batch["wrong_image"]).abs().flatten(1).amax(1) > 0
    assert differs.all(), "a wrong image equals its caption's own image"
    item = dataset[3]
    assert item["image"].shape == (3, 64, 64) and isinstance(item["text"], str)
    assert torch.allclose(item["embedding"], minilm.encode([item["text"]])[0], atol=1e-5)


@pytest.mark.parametrize("crops", [False, True])
def test_a_batch_picks_from_device_data_with_indices_already_on_that_device(crops):
    """On a GPU, a CPU index into a device tensor is a copy from pageable memory, which waits for the GPU
    once per batch. 'meta' stands in for the GPU: every index that picks from the data must live there."""
    images = torch.zeros(6, 3, 8, 8, dtype=torch.uint8)
    ds = data.FlowersDataset(
        images,
        torch.tensor([0, 0, 1, 1, 2, 2]),
        torch.zeros(6, 2),
        [str(i) for i in range(6)],
        torch.arange(6),
        crop_source=torch.zeros(6, 3, 10, 10, dtype=torch.uint8) if crops else None,
    )
    ds.to(torch.device("meta"))
    index_devices = []

    class Indexing(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.Tensor.__getitem__ and args[0].device.type == "meta":
                picks = args[1] if isinstance(args[1], tuple) else (args[1],)
                index_devices.extend(str(i.device) for i in picks if torch.is_tensor(i))
            return func(*args, **(kwargs or {}))

    with Indexing():
        batch = ds.__getitems__([0, 3, 5])
    assert batch["image"].device.type == "meta" and batch["image"].shape == (3, 3, 8, 8)
    # the batch's and the wrong images (4 indices per crop gather, else 1 each), and the embeddings
    assert len(index_devices) == (9 if crops else 3) and set(index_devices) == {"meta"}, index_devices


def test_wrong_images_come_from_other_classes_when_known():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 3, 2, 2).contiguous()
    ds = data.FlowersDataset(images, labels, torch.zeros(6, 2), [str(i) for i in range(6)], torch.arange(6))
    idx = torch.arange(6).repeat(50)
    wrong = ds.wrong_indices(idx)
    assert (labels[wrong] != labels[idx]).all()


def test_grayscale_and_rgba_converted_corrupt_skipped(tmp_path, tiny_config, synthetic_root):
    root = tmp_path / "mixed"
    shutil.copytree(synthetic_root, root)
    Image.open(root / "images" / "image_00001.jpg").convert("L").save(root / "images" / "image_00001.jpg")
    Image.open(root / "images" / "image_00002.jpg").convert("RGBA").save(root / "images" / "image_00002.png")
    (root / "images" / "image_00002.jpg").unlink()
    (root / "images" / "image_00003.jpg").write_bytes(b"not a jpeg")
    dataset, captions = build_dataset(tiny_config(data_dir=str(root)), CountingEncoder(), progress=False)
    assert captions.skipped == {
        "L image converted to RGB": 1,
        "RGBA image converted to RGB": 1,
        "corrupt image skipped": 1,
    }
    assert len(dataset.images) == 23 and dataset.images.shape[1] == 3


def test_embedding_cache_is_per_encoder(tmp_path):
    a, b = CountingEncoder(), CountingEncoder()
    b.cache_key = "other-4"
    embed_texts(a, ["x", "y"], tmp_path, progress=False)
    embed_texts(b, ["x"], tmp_path, progress=False)
    assert b.seen == ["x"]
    embed_texts(a, ["y", "z"], tmp_path, progress=False)
    assert a.seen == ["x", "y", "z"]  # only the new caption was encoded


def test_splits_are_disjoint_and_fixed():
    train, test = split_indices(100, "train"), split_indices(100, "test")
    assert len(test) == 10 and not set(train) & set(test) and sorted(train + test) == list(range(100))
    assert test == split_indices(100, "test")
    with pytest.raises(LabError, match="split must be"):
        split_indices(10, "val")


def test_interrupted_encoding_keeps_the_finished_chunks(tmp_path):
    class FailsOnSecondChunk(CountingEncoder):
        def encode(self, texts):
            if self.seen:
                raise KeyboardInterrupt
            return super().encode(texts)

    texts = [f"caption {i}" for i in range(10)]
    with pytest.raises(KeyboardInterrupt):
        embed_texts(FailsOnSecondChunk(), texts, tmp_path, progress=False, chunk=4)
    again = CountingEncoder()
    out = embed_texts(again, texts, tmp_path, progress=False, chunk=4)
    assert len(again.seen) == 6 and out.shape == (10, 4)
    assert torch.equal(out, CountingEncoder().encode(texts))


def test_an_interrupted_first_draw_of_the_default_set_is_drawn_again(tmp_path, monkeypatch):
    """Ctrl-C while the default synthetic set is drawn on first use leaves no partial set to train on."""
    import lab.data.synthetic as synthetic
    from lab.config import ExperimentConfig
    from lab.data.dataset import ensure_data

    monkeypatch.chdir(tmp_path)
    config = ExperimentConfig(synthetic_images=4)
    real_generate = synthetic.generate

    def cut_short(root, n, **kw):
        real_generate(root, 2, **kw)  # two flowers drawn, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "generate", cut_short)
    with pytest.raises(KeyboardInterrupt):
        ensure_data(config, progress=False)
    assert not Path(config.data_dir).exists()
    monkeypatch.setattr(synthetic, "generate", real_generate)
    root = ensure_data(config, progress=False)
    assert len(list((root / "images").iterdir())) == 4 and (root / "attributes.json").is_file()
    assert sorted(p.name for p in root.parent.iterdir()) == [root.name]  # the partial draw is gone
