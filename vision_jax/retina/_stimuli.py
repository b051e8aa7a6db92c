"""The stimulus generators live in :mod:`vision_jax.data.stimuli`; re-exported here for ``retina.moving_bar`` etc."""
from vision_jax.data.stimuli import drifting_grating, flashed_spot, full_field_step, load_movie, moving_bar

__all__ = ["full_field_step", "flashed_spot", "drifting_grating", "moving_bar", "load_movie"]
