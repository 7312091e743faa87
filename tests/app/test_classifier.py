"""tinyae.app.classifier: the judge of generated digits, its cross-entropy against PyTorch's, its accuracy,
the generated-digit accuracy of stand-in conditional models whose answer is known, and ``tinyae eval`` of a
conditional run reporting it."""

import json

import numpy as np
import pytest

import tinyae
from tinyae.app import classifier
from tinyae.app.cli import main
from tinyae.app.run import Run, RunError
from tinyae.data import load_mnist
from tinyae.models import VAE
from tests.conftest import BACKEND, to_numpy


@pytest.fixture(scope="module")
def mnist():
    (train_images, train_labels), (test_images, test_labels) = load_mnist("train"), load_mnist("test")
    return train_images[:4000], train_labels[:4000], test_images[:1000], test_labels[:1000]


@pytest.fixture(scope="module")
def judge(mnist):
    """A judge trained briefly (4 epochs) on 4,000 images (the suite's backend is set again by each test)."""
    return classifier.train_classifier(mnist[0], mnist[1], seed=0, epochs=4)


class Generator:
    """A stand-in conditional model: ``sample(n, labels)`` returns, for each digit asked, the next test
    image of digit (label + shift) % 10, and remembers the labels it was asked for."""

    is_conditional = True
    config = {"classes": 10}

    def __init__(self, images, labels, shift=0):
        self.by_digit = [images[labels == digit] for digit in range(10)]
        self.shift, self.asked = shift, None

    def eval(self):
        return self

    def sample(self, n, labels):
        self.asked = labels.numpy()
        assert labels.dtype == np.int64 and len(self.asked) == n
        drawn = (self.asked + self.shift) % 10
        rank = [np.sum(drawn[:i] == drawn[i]) for i in range(n)]  # the i-th image of its digit
        picked = np.stack([self.by_digit[digit][k] for digit, k in zip(drawn, rank)])
        return tinyae.tensor(picked.reshape(n, 784) / 255.0, dtype="float32")


@pytest.mark.torch
def test_cross_entropy_and_its_gradient_are_pytorchs():
    import torch

    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(7, 10))
    logits[0, 3] = 200.0  # a logit whose exp overflows
    labels = rng.integers(0, 10, size=7)
    ours = tinyae.tensor(logits, requires_grad=True, dtype="float64")
    loss = classifier.cross_entropy(ours, labels)
    loss.backward()
    theirs = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(theirs, torch.tensor(labels))
    expected.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(ours.grad), theirs.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_a_briefly_trained_judge_classifies_test_digits(judge, mnist):
    assert classifier.accuracy(judge, mnist[2], mnist[3]) > 0.87  # 0.892 measured; 0.1 is chance
    images = tinyae.tensor(mnist[2].reshape(-1, 1, 28, 28) / 255.0, dtype="float32")  # the conv layout
    np.testing.assert_array_equal(classifier.predict(judge, images), classifier.predict(judge, mnist[2]))


def test_training_repeats_with_its_seed(mnist):
    first, second, other = (classifier.train_classifier(mnist[0][:500], mnist[1][:500], seed=seed, epochs=1)
                            for seed in (3, 3, 4))
    for a, b, c in zip(first.parameters(), second.parameters(), other.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(first.layers[0].weight.numpy(), other.layers[0].weight.numpy())


def test_generated_digit_accuracy_of_a_generator_that_draws_the_digit_asked_for(judge, mnist):
    generator = Generator(mnist[2], mnist[3])
    report = classifier.generated_digit_accuracy(generator, judge, n=205, seed=0)
    asked = np.repeat(np.arange(10), 20)  # 205 // 10 = 20 of each digit, in order
    np.testing.assert_array_equal(generator.asked, asked)
    drawn = np.concatenate([generator.by_digit[digit][:20] for digit in range(10)])
    per_digit = [classifier.accuracy(judge, generator.by_digit[digit][:20], np.full(20, digit))
                 for digit in range(10)]
    assert report["generated_digits"] == 200
    assert report["generated_digit_accuracy"] == pytest.approx(classifier.accuracy(judge, drawn, asked))
    assert report["generated_digit_accuracy_per_digit"] == pytest.approx(per_digit)
    assert report["generated_digit_accuracy"] > 0.85


def test_generated_digit_accuracy_of_a_generator_that_draws_the_next_digit(judge, mnist):
    report = classifier.generated_digit_accuracy(Generator(mnist[2], mnist[3], shift=1), judge, n=100)
    assert report["generated_digit_accuracy"] < 0.1
    assert max(report["generated_digit_accuracy_per_digit"]) < 0.3


def test_generated_digit_report_puts_the_judges_own_accuracy_beside(mnist):
    generator = Generator(mnist[2], mnist[3])
    report = classifier.generated_digit_report(generator, (mnist[0][:1000], mnist[1][:1000]),
                                               (mnist[2][500:], mnist[3][500:]), n=100, epochs=1)
    judge = classifier.train_classifier(mnist[0][:1000], mnist[1][:1000], seed=0, epochs=1)
    assert report["judge_test_accuracy"] == classifier.accuracy(judge, mnist[2][500:], mnist[3][500:])
    assert report["judge_test_images"] == 500 and "1 epochs on 1000 training images" in report["judge"]
    assert 0 <= report["generated_digit_accuracy"] <= 1 and report["judge_seconds"] > 0


def test_bad_input_is_one_line(judge, mnist):
    tinyae.manual_seed(0)
    with pytest.raises(ValueError, match="needs a conditional model .* got a VAE$"):
        classifier.generated_digit_accuracy(VAE(hidden=8, latent_dim=2), judge)
    with pytest.raises(ValueError, match="n=9 is fewer than one sample per class"):
        classifier.generated_digit_accuracy(Generator(mnist[2], mnist[3]), judge, n=9)
    with pytest.raises(ValueError, match="labels must be classes 0 to 9, got 0 to 10"):
        classifier.train_classifier(mnist[0][:3], np.array([0, 10, 2]))
    with pytest.raises(ValueError, match="3 images and 2 labels"):
        classifier.train_classifier(mnist[0][:3], mnist[1][:2])


QUICK = ["--limit", "256", "--test-limit", "100", "--batch-size", "64", "--hidden", "32", "--latent-dim", "4",
         "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    if BACKEND == "strict":
        pytest.skip("the command offers the numpy and cupy backends")
    folder = tmp_path_factory.mktemp("cvae") / "run"
    assert main(["train", "--model", "cvae", "--epochs", "1", "--out", str(folder), *QUICK]) == 0
    return folder


def test_eval_of_a_conditional_run_judges_its_generated_digits(cvae_run, monkeypatch, capsys):
    monkeypatch.setattr(classifier, "EPOCHS", 1)  # a judge of 94% in a second
    assert main(["eval", str(cvae_run), "-k", "2", "--limit", "50", "--quiet", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((cvae_run / "eval.json").read_text())
    assert report["generated_digits"] == 1000 and len(report["generated_digit_accuracy_per_digit"]) == 10
    assert report["generated_digit_accuracy"] == pytest.approx(np.mean(report["generated_digit_accuracy_per_digit"]))
    assert report["judge_test_accuracy"] > 0.9 and report["judge_test_images"] == 10_000
    assert "1 epochs on 60000 training images, seed 0" in report["judge"]
    assert f"generated digits       {report['generated_digit_accuracy']:.1%} of 1000 classified as" in printed
    assert f"{report['judge_test_accuracy']:.1%} of 10000 test images right" in printed
    assert "    per digit            0: " in printed


def test_generated_digits_need_a_conditional_run(tmp_path):
    if BACKEND == "strict":
        pytest.skip("the command offers the numpy and cupy backends")
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "vae"), *QUICK]) == 0
    with pytest.raises(RunError, match="holds a vae run, which draws no digit on demand; generated-digit accuracy "
                                       "needs a conditional VAE"):
        Run.open(tmp_path / "vae").generated_digits()
