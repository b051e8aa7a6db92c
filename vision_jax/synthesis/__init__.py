"""Model-based synthesis for any pure model function ``f(images) -> representation``.

- :func:`metamer`: images with the same representation as a target (jax.grad + optax).
- :func:`metamer_ctf`: coarse-to-fine metamers for models with one representation per scale.
- :func:`eigendistortion`: the most and least noticeable distortions (eigenvectors of J^T J).
- :func:`mad_competition`: images that push one metric to its extreme while holding another fixed.
- :func:`synthesis_status`, :func:`animate`: figures of a synthesis and of its stored progress.
"""
from vision_jax.synthesis._ctf import CTFResult, CTFState, metamer_ctf, stage_masks
from vision_jax.synthesis._eigen import EigenResult, eigendistortion, fisher_product
from vision_jax.synthesis._mad import MADResult, mad_competition
from vision_jax.synthesis._plot import animate, synthesis_status
from vision_jax.synthesis._metamer import MetamerResult, MetamerState, adam_amsgrad, metamer, range_penalty

__all__ = ["metamer", "MetamerResult", "MetamerState", "range_penalty", "adam_amsgrad", "metamer_ctf", "CTFResult",
           "CTFState", "stage_masks", "eigendistortion", "EigenResult", "fisher_product", "mad_competition", "MADResult",
           "synthesis_status", "animate"]
