"""Feature feedback: a convolutional pooling autoencoder applied layer by layer, and a video
feedback process across its hierarchy (:mod:`vision_jax.autoencoder.feedback`).

- :class:`AutoencoderConfig`, :func:`init_params`, :func:`random_feedback_params`
- :class:`ConvPoolAutoencoder`: the same model as a ``flax.linen`` Module (``init`` / ``apply``,
  ``encode`` / ``decode`` methods); :func:`variables_from_params`, :func:`params_from_variables`
- :func:`encode`, :func:`decode` (one layer), :func:`encode_all`, :func:`apply` (all layers)
- :func:`train_layer`, :func:`train_greedy`, :func:`fine_tune` (optax), :func:`layer_loss`, :func:`stack_loss`
- :func:`colour_crops`: 32x32 colour crops of the embedded photographs (offline CIFAR-10 stand-in)
- :func:`cubic_baseline`, :func:`caffe_l2`, :func:`psnr`: the source's baseline and metrics
"""
from vision_jax.autoencoder._data import TEST_IMAGES, colour_crops
from vision_jax.autoencoder._model import (
    ACTIVATIONS,
    PADDINGS,
    POOLINGS,
    AutoencoderConfig,
    AutoencoderParams,
    LayerParams,
    apply,
    decode,
    decode_layer,
    encode,
    encode_all,
    encode_layer,
    init_params,
    layer_channels,
    random_feedback_params,
)
from vision_jax.autoencoder._module import ConvPoolAutoencoder, params_from_variables, variables_from_params
from vision_jax.autoencoder._training import (
    GreedyHistory,
    caffe_l2,
    cubic_baseline,
    fine_tune,
    layer_loss,
    mse,
    psnr,
    stack_loss,
    train_greedy,
    train_layer,
)
from vision_jax.autoencoder.feedback import FeedbackState, feedback_process, render_frames, run_feedback

__all__ = [
    "POOLINGS",
    "ACTIVATIONS",
    "PADDINGS",
    "AutoencoderConfig",
    "AutoencoderParams",
    "LayerParams",
    "init_params",
    "random_feedback_params",
    "ConvPoolAutoencoder",
    "variables_from_params",
    "params_from_variables",
    "encode",
    "decode",
    "encode_layer",
    "decode_layer",
    "encode_all",
    "apply",
    "layer_channels",
    "mse",
    "caffe_l2",
    "psnr",
    "layer_loss",
    "stack_loss",
    "train_layer",
    "fine_tune",
    "train_greedy",
    "GreedyHistory",
    "cubic_baseline",
    "colour_crops",
    "TEST_IMAGES",
    "FeedbackState",
    "feedback_process",
    "run_feedback",
    "render_frames",
]
