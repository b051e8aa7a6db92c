"""MNIST and CIFAR-10 through tensorflow-datasets, as numpy arrays, never downloading."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vision_jax._checks import check_choice, check_int

__all__ = ["load_dataset"]

DATASETS = ("mnist", "cifar10")


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            'load_dataset needs tensorflow-datasets: pip install "vision-jax[datasets]" '
            "(the embedded data, natural_images() and load_digits(), needs nothing more)"
        ) from err
    return tfds


def load_dataset(name: str, split: str = "train", data_dir=None, *, max_examples: int | None = None):
    """Load a prepared tensorflow-datasets dataset as numpy arrays (no TensorFlow, no download).

    Args:
      name: ``"mnist"`` or ``"cifar10"``.
      split: a tfds split such as ``"train"``, ``"test"`` or ``"train[:10%]"``.
      data_dir: folder holding the prepared dataset (default: tfds's, ``~/tensorflow_datasets``).
      max_examples: read at most this many examples.

    Returns:
      ``(images, labels)``: uint8 NHWC images and int32 labels.

    Raises:
      FileNotFoundError: the dataset is not prepared in ``data_dir``; the message says how to
        prepare it on a machine with network access.
    """
    check_choice("name", name, DATASETS)
    if max_examples is not None:
        max_examples = check_int("max_examples", max_examples, min_value=1)
    tfds = _import_tfds()
    where = str(Path(data_dir).expanduser()) if data_dir is not None else None
    try:
        source = tfds.data_source(name, split=split, data_dir=where, download=False)
    except Exception as err:  # tfds raises several types for "not prepared"
        shown = where or "~/tensorflow_datasets"
        raise FileNotFoundError(
            f"name: dataset {name!r} (split {split!r}) is not prepared in {shown} and vision_jax never downloads. "
            f"On a machine with network access run `pip install tensorflow-datasets tensorflow && "
            f"tfds build {name} --file_format=array_record --data_dir {shown}` and copy the folder here, "
            f"or pass data_dir= pointing at a prepared folder. ({type(err).__name__}: {str(err)[:200]})"
        ) from err
    n = len(source) if max_examples is None else min(len(source), max_examples)
    images, labels = [], []
    for i in range(n):
        example = source[i]
        images.append(np.asarray(example["image"], np.uint8))
        labels.append(int(example["label"]))
    if not images:
        raise ValueError(f"split: {split!r} of {name!r} holds no examples")
    return np.stack(images), np.asarray(labels, np.int32)
