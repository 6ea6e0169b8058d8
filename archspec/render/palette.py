"""Colours of the diagrams: the op kinds of the legend and the diff statuses.

Okabe–Ito hues, so every kind stays distinguishable with the common colour-vision
deficiencies.
"""
from __future__ import annotations

from dataclasses import dataclass

from archspec.ops import OPS

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common
# colour-vision deficiency. Fills are light tints of the border colour so black
# text stays readable; the hue carries the kind.
OKABE_ITO = {
    "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7", "grey": "#999999", "black": "#000000",
}


def _tint(hex_colour: str, amount: float = 0.6) -> str:
    """``hex_colour`` mixed with ``amount`` of white."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(c + (255 - c) * amount) for c in (r, g, b)]
    return "#%02X%02X%02X" % tuple(mix)


@dataclass(frozen=True)
class Kind:
    """A legend entry: the ops it covers and its colour."""

    name: str
    colour: str
    ops: tuple[str, ...]

    @property
    def fill(self) -> str:
        return _tint(self.colour)


# Legend order and colour of each op kind; which ops a kind covers is each op's own
# ``kind`` (archspec.ops), so a new op needs no entry here.
_KIND_COLOURS = (("conv", "sky_blue"), ("linear", "blue"), ("norm", "yellow"),
                 ("activation", "bluish_green"), ("pool", "orange"), ("merge", "vermillion"),
                 ("regularise", "reddish_purple"), ("reshape", "grey"))
KINDS: tuple[Kind, ...] = tuple(
    Kind(name, OKABE_ITO[colour], tuple(op.name for op in OPS.values() if op.kind == name))
    for name, colour in _KIND_COLOURS)
_KIND_OF = {op: k for k in KINDS for op in k.ops}
_OTHER = Kind("other", OKABE_ITO["grey"], ())
BLOCK_KIND = Kind("block", "#555555", ())
SHORTCUT_COLOUR = OKABE_ITO["blue"]
FONT = "Helvetica"

# Diff highlighting (used by archspec.diff): status -> (border, fill, style, legend text).
DIFF_STYLES = {
    "added": (OKABE_ITO["bluish_green"], _tint(OKABE_ITO["bluish_green"], 0.55), "filled,bold",
              "+ added"),
    "removed": (OKABE_ITO["vermillion"], _tint(OKABE_ITO["vermillion"], 0.6), "filled,dashed",
                "− removed"),
    "changed": (OKABE_ITO["orange"], _tint(OKABE_ITO["orange"], 0.5), "filled,bold",
                "~ changed"),
    "same": ("#777777", "#FFFFFF", "filled", "unchanged"),
}
_DIFF_MARK = {"added": "+ ", "removed": "− ", "changed": "~ ", "same": ""}


def kind_of(op: str) -> Kind:
    """The legend kind (and colour) of an op; an op registered from Python after this
    module loaded (archspec.register_op) is found by its own ``kind``."""
    found = _KIND_OF.get(op)
    if found is None and op in OPS:
        found = next((k for k in KINDS if k.name == OPS[op].kind), None)
    return found or _OTHER
