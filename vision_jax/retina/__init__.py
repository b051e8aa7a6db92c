"""A Virtual Retina cascade: OPL, contrast gain control, ON/OFF ganglion cells with spikes.

``params = retina.preset("cat_x")``; ``state = retina.init_state(params, (H, W), key=key)``;
``state, out = retina.run(params, state, movie)`` with ``movie`` ``(T, H, W)`` luminance.
See :mod:`vision_jax.retina._model` for the equations and their discretisation.
"""
from vision_jax.retina._model import (
    MIN_SIGMA_PIXELS,
    PARAM_FIELDS,
    PRESETS,
    RetinaConfig,
    RetinaOutput,
    RetinaParams,
    RetinaState,
    blur_radii,
    cgc_steady_state,
    check_params,
    init_state,
    lif_rate,
    preset,
    rectification,
    refractory_time,
    run,
    step,
)
from vision_jax.retina._chunks import run_chunked, stream
from vision_jax.retina._fit import FitResult, MultistartResult, fit, fit_function, multistart_fit
from vision_jax.retina._stimuli import drifting_grating, flashed_spot, full_field_step, load_movie, moving_bar
from vision_jax.retina._xml import read_xml

__all__ = ["FitResult", "MultistartResult", "fit_function", "multistart_fit", "MIN_SIGMA_PIXELS", "PARAM_FIELDS", "PRESETS", "RetinaConfig", "RetinaOutput", "RetinaParams", "RetinaState",
           "blur_radii", "cgc_steady_state", "check_params", "drifting_grating", "fit", "flashed_spot", "full_field_step",
           "init_state", "lif_rate", "load_movie", "moving_bar", "preset", "read_xml", "rectification", "refractory_time", "run", "run_chunked",
           "step", "stream"]
