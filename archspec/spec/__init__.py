"""Stage 1: the spec language (YAML with locations, parameters, expressions, templates)."""
from archspec.spec.loader import load_spec, parse_override
from archspec.spec.model import BlockDef, Item, Spec

__all__ = ["load_spec", "parse_override", "Spec", "BlockDef", "Item"]
