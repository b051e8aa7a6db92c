"""Reading Virtual Retina XML configuration files (``<retina-description-file>``) into :class:`RetinaParams`."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from vision_jax._checks import check_int
from vision_jax.retina._model import RetinaConfig, RetinaParams, check_params

__all__ = ["read_xml"]

# attribute -> (field, default when the attribute is missing: Virtual Retina's constructor defaults)
_RETINA = {"temporal-step__sec": ("dt", 0.005), "input-luminosity-range": ("luminosity_range", 255.0),
           "pixels-per-degree": ("pixels_per_degree", 1.0)}
_OPL = {"center-sigma__deg": ("center_sigma", 0.0), "surround-sigma__deg": ("surround_sigma", 1.0),
        "center-tau__sec": ("center_tau", 0.01), "surround-tau__sec": ("surround_tau", 0.01),
        "opl-amplification": ("opl_amplification", 1.0), "opl-relative-weight": ("opl_weight", 0.0)}
_UNDERSHOOT = {"relative-weight": ("undershoot_weight", 0.0), "tau__sec": ("undershoot_tau", 0.1)}
_CGC = {"opl-amplification__Hz": ("bipolar_amplification", 100.0), "bipolar-inert-leaks__Hz": ("inert_leak", 10.0),
        "adaptation-sigma__deg": ("adaptation_sigma", 1.0), "adaptation-tau__sec": ("adaptation_tau", 0.01),
        "adaptation-feedback-amplification__Hz": ("adaptation_amplification", 100.0)}
_GANGLION = {"transient-tau__sec": ("transient_tau", 0.04), "transient-relative-weight": ("transient_weight", 0.75),
             "bipolar-linear-threshold": ("v0", 0.0), "value-at-linear-threshold__Hz": ("i0", 70.0),
             "bipolar-amplification__Hz": ("ganglion_amplification", 100.0), "sigma-pool__deg": ("pool_sigma", 0.0)}
_SPIKING = {"g-leak__Hz": ("leak", 50.0), "sigma-V": ("noise_sigma", 0.1), "refr-mean__sec": ("refr_mean", 0.003),
            "refr-stdev__sec": ("refr_sd", 0.0)}


def _read(element, table, source, out):
    for attr, (field, default) in table.items():
        text = element.get(attr) if element is not None else None
        if text is None:
            out[field] = default
            continue
        try:
            out[field] = float(text)
        except ValueError:
            raise ValueError(f"source: attribute {attr}={text!r} of <{element.tag}> in {source} is not a number") from None


def read_xml(source, *, layer: int = 0) -> RetinaParams:
    """Parameters from a Virtual Retina XML file (path, or the XML text itself).

    Reads ``<retina>``, ``<outer-plexiform-layer><linear-version>`` (with its optional
    ``<undershoot>``), ``<contrast-gain-control>`` and the ``layer``-th ``<ganglion-layer>`` with its
    ``<spiking-channel>``. Missing attributes take Virtual Retina's defaults. The model always
    computes both signs (ON and OFF), so the layer's ``sign`` only picks nothing. Cell sampling
    schemes (``circular-array``, ``log-polar-scheme``) are not modelled: every pixel is a cell.
    """
    layer = check_int("layer", layer, min_value=0)
    text = str(source)
    name = "the XML text"
    if not text.lstrip().startswith("<"):
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"source: expected an XML file path or XML text, got {text[:80]!r}")
        text, name = path.read_text(), str(path)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise ValueError(f"source: malformed XML in {name}: {err}") from None
    retina = root if root.tag == "retina" else root.find("retina")
    if retina is None:
        raise ValueError(f"source: no <retina> element in {name}")
    opl_layer = retina.find("outer-plexiform-layer")
    opl = opl_layer.find("linear-version") if opl_layer is not None else None
    if opl is None:
        raise ValueError(f"source: expected <outer-plexiform-layer><linear-version> in {name} (the only OPL supported)")
    cfg, values = {}, {}
    _read(retina, _RETINA, name, cfg)
    _read(opl, _OPL, name, values)
    undershoot = opl.find("undershoot")
    _read(undershoot, _UNDERSHOOT, name, values)
    _read(retina.find("contrast-gain-control"), _CGC, name, values)
    if retina.find("contrast-gain-control") is None:
        values["adaptation_amplification"] = 0.0
    layers = retina.findall("ganglion-layer")
    if layers and layer >= len(layers):
        raise ValueError(f"layer: {name} has {len(layers)} ganglion layer(s), got layer={layer}")
    ganglion = layers[layer] if layers else None
    _read(ganglion, _GANGLION, name, values)
    _read(ganglion.find("spiking-channel") if ganglion is not None else None, _SPIKING, name, values)
    n = opl.get("center-n__uint")
    config = RetinaConfig(dt=cfg["dt"], pixels_per_degree=cfg["pixels_per_degree"], luminosity_range=cfg["luminosity_range"],
                          center_n=int(float(n)) if n is not None else 0,
                          leaky_heat=opl.get("leaky-heat-equation", "0").strip() in ("1", "true"),
                          undershoot=undershoot is not None)
    params = RetinaParams(**values, config=config)
    check_params(params)
    return params
