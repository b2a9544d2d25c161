"""Exercise 6: GAN-CLS loss values against references computed by hand in plain Python."""

from __future__ import annotations

import math

import pytest
import torch

from lab.parts.interfaces import LossOutput


def bce(logit: float, target: float) -> float:
    """Binary cross-entropy of one logit: -[t log s(x) + (1 - t) log(1 - s(x))]."""
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


REAL, WRONG, FAKE = [2.0, -1.0, 0.5], [0.5, -0.5, 3.0], [-3.0, 1.0, 0.0]
LABELS = {
    "d_real": (REAL, 1, "real images with their own captions"),
    "d_wrong": (WRONG, 0, "real images with a mismatched caption"),
    "d_fake": (FAKE, 0, "generated images"),
}


def _off(name: str, got: float, expected: float) -> str:
    """Expected against got, and the usual reason when the value gives it away."""
    message = f"{name}: expected {expected:.4f}, got {got:.4f}"
    if name in LABELS:
        logits, label, what = LABELS[name]
        if got == pytest.approx(mean([bce(x, 1 - label) for x in logits]), rel=1e-4):
            return f"{message}: that is BCE with label {1 - label}; {what} get label {label}"
        if got == pytest.approx(sum(bce(x, label) for x in logits), rel=1e-4):
            return f"{message}: that is the sum over the batch; take the mean"
    return message


@pytest.mark.points(3)
def test_discriminator_loss_values(ex):
    out = ex.GanClsLoss().discriminator_loss(torch.tensor(REAL), torch.tensor(WRONG), torch.tensor(FAKE))
    assert isinstance(out, LossOutput), f"expected a LossOutput(total, terms), got {type(out).__name__}"
    expected = {
        "d_real": mean([bce(x, 1) for x in REAL]),
        "d_wrong": mean([bce(x, 0) for x in WRONG]),
        "d_fake": mean([bce(x, 0) for x in FAKE]),
    }
    assert set(out.terms) == set(expected), f"terms: expected {sorted(expected)}, got {sorted(out.terms)}"
    for name, value in expected.items():
        term = out.terms[name]  # a float, as the exercise asks; the lab's own recipe keeps a detached 0-d tensor
        assert isinstance(term, float) or (torch.is_tensor(term) and term.dim() == 0 and not term.requires_grad), (
            f"{name}: give its float value"
        )
        assert float(term) == pytest.approx(value, rel=1e-5), _off(name, float(term), value)
    total = sum(expected.values())
    assert out.total.item() == pytest.approx(total, rel=1e-5), _off("total", out.total.item(), total)


@pytest.mark.points(1)
def test_discriminator_loss_is_low_when_d_is_right(ex):
    loss = ex.GanClsLoss()
    right = loss.discriminator_loss(torch.full((4,), 8.0), torch.full((4,), -8.0), torch.full((4,), -8.0)).total
    wrong = loss.discriminator_loss(torch.full((4,), -8.0), torch.full((4,), 8.0), torch.full((4,), 8.0)).total
    assert right < 0.01, (
        f"D right about everything (real +8, wrong and fake -8): expected a loss < 0.01, got {right:.4f}"
    )
    assert wrong > 20, f"D wrong about everything (real -8, wrong and fake +8): expected a loss > 20, got {wrong:.4f}"


def _generator_inputs() -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "fake_logits": torch.tensor([0.3, -0.2]),
        "fake_features": torch.randn(2, 3, 2, 2, generator=g),
        "real_features": torch.randn(2, 3, 2, 2, generator=g),
        "fake_images": torch.rand(2, 3, 4, 4, generator=g) * 2 - 1,
        "real_images": torch.rand(2, 3, 4, 4, generator=g) * 2 - 1,
    }


def _reference_terms(x: dict) -> dict[str, float]:
    adversarial = mean([bce(v, 1) for v in x["fake_logits"].tolist()])
    fake_f, real_f = x["fake_features"].flatten(1).tolist(), x["real_features"].flatten(1).tolist()
    fake_mean = [mean(column) for column in zip(*fake_f)]  # mean over the batch, per feature
    real_mean = [mean(column) for column in zip(*real_f)]
    feature = mean([(a - b) ** 2 for a, b in zip(fake_mean, real_mean)])
    l1 = mean([abs(a - b) for a, b in zip(x["fake_images"].flatten().tolist(), x["real_images"].flatten().tolist())])
    return {"g_adv": adversarial, "g_feature": feature, "g_l1": l1}


@pytest.mark.points(3)
def test_generator_loss_values(ex):
    x = _generator_inputs()
    out = ex.GanClsLoss().generator_loss(**x)
    expected = _reference_terms(x)
    assert set(out.terms) == set(expected), f"terms: expected {sorted(expected)}, got {sorted(out.terms)}"
    for name, value in expected.items():
        assert out.terms[name] == pytest.approx(value, rel=1e-5), _off(name, float(out.terms[name]), value)
    total = expected["g_adv"] + 100 * expected["g_feature"] + 50 * expected["g_l1"]
    assert out.total.item() == pytest.approx(total, rel=1e-5), (
        _off("total", out.total.item(), total) + " (g_adv + 100 * g_feature + 50 * g_l1)"
    )


@pytest.mark.points(1)
def test_generator_loss_weights(ex):
    x = _generator_inputs()
    expected = _reference_terms(x)
    out = ex.GanClsLoss(feature_weight=2.0, l1_weight=0.0).generator_loss(**x)
    total = expected["g_adv"] + 2 * expected["g_feature"]
    assert out.total.item() == pytest.approx(total, rel=1e-5), (
        _off("total with feature_weight=2, l1_weight=0", out.total.item(), total)
        + ": use the weights given to __init__"
    )


@pytest.mark.points(2)
def test_gradients_flow_to_fakes_only(ex):
    x = {k: v.clone().requires_grad_() for k, v in _generator_inputs().items()}
    out = ex.GanClsLoss().generator_loss(**x)
    assert out.total.dim() == 0, f"total: expected one number (a 0-d tensor), got shape {tuple(out.total.shape)}"
    out.total.backward()
    for name in ("fake_logits", "fake_features", "fake_images"):
        assert x[name].grad is not None and x[name].grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert x["real_features"].grad is None, "real features are constants: detach them"
