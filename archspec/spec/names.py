"""The one rule for names a spec declares: parameters, outputs, blocks and layers.

A layer name becomes a torch submodule attribute (``self.layer2[0].conv1``), a
``state_dict`` key, a line of generated Python and a diagram label, so it must mean
the same thing to every backend. Names are therefore plain ASCII: Python folds
identifiers with NFKC (``ｃｏｎｖ1`` *is* ``conv1`` in source), and a name equal to an
``nn.Module`` attribute (``forward``, ``training``, ``to``...) cannot be a submodule.
This module is torch-free: :data:`MODULE_ATTRS` is a static copy, and
``tests/test_torch.py`` checks it still covers ``dir(torch.nn.Module())``.
"""
from __future__ import annotations

import re

from archspec.errors import Location, SpecError

#: A parameter, let value, loop variable, output, input or block name.
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: One level of a layer name (``layer2.0.conv1`` has three); digits-only levels are
#: the positions nn.Sequential uses, hyphens the RegNet-style ``block1-0`` (the torch
#: backend and generated code reach those through ``getattr``), never first.
LAYER_PART_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")

#: Attributes of ``torch.nn.Module`` (torch 2.x, public and private) and of the modules
#: archspec makes (``ArchModule``, the generated class, ``Scope``): a layer of one of
#: these names would shadow or be refused by ``add_module``.
MODULE_ATTRS: tuple[str, ...] = (
    "T_destination", "_apply", "_backward_hooks", "_backward_pre_hooks", "_buffers",
    "_call_impl", "_compiled_call_impl", "_forward_hooks", "_forward_hooks_always_called",
    "_forward_hooks_with_kwargs", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
    "_get_backward_hooks", "_get_backward_pre_hooks", "_get_name", "_is_full_backward_hook",
    "_load_from_state_dict", "_load_state_dict_post_hooks", "_load_state_dict_pre_hooks",
    "_maybe_warn_non_full_backward_hook", "_modules", "_named_members",
    "_non_persistent_buffers_set", "_parameters", "_register_load_state_dict_pre_hook",
    "_register_state_dict_hook", "_replicate_for_data_parallel", "_save_to_state_dict",
    "_slow_forward", "_state_dict_hooks", "_state_dict_pre_hooks", "_version",
    "_wrapped_call_impl", "add_module", "apply", "bfloat16", "buffers", "call_super_init",
    "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr",
    "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule",
    "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children",
    "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook",
    "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule",
    "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu",
    "zero_grad",
    # archspec's own: ArchModule, the generated model class and Scope
    "graph_ir", "spec_name", "output_names", "loss_weights", "train_only", "head_kinds",
    "code", "forward_eval", "forward_train", "_forward_eval", "_forward_train", "_label",
    "_root_forwards", "_set_forward", "_arch_src", "_arch_glb", "_arch_fn",
    # timm's model API (archspec.torch_backend.TimmApi, ArchFeatures)
    "forward_features", "forward_head", "reset_classifier", "get_classifier", "num_classes",
    "num_features", "feature_info", "_timm", "_timm_setup", "_timm_num_classes",
    "_timm_feature_info", "_roles", "_no_head",
)
_RESERVED = frozenset(MODULE_ATTRS)
#: Longest name (spec, block, parameter, layer, output): a name is also a diagram label,
#: and Graphviz refuses a 100,000-character label with an unlocated error.
MAX_NAME_CHARS = 100


def _check_length(name: str, loc: Location, what: str) -> None:
    if len(name) > MAX_NAME_CHARS:
        raise SpecError(f"the {what} name is {len(name):,} characters long, more than the "
                        f"{MAX_NAME_CHARS:,} allowed (it starts {name[:20]!r})", loc, "shorten it")


def shown(name: str) -> str:
    """A name as quoted in a message: ``repr`` escapes newlines, ANSI and bidi controls."""
    return ascii(name)[1:-1] if not name.isascii() or not name.isprintable() else name


def check_name(name: str, loc: Location, what: str) -> None:
    """SpecError unless ``name`` is an ASCII identifier (``conv1``, ``_k``)."""
    _check_length(name, loc, what)
    if not NAME_RE.fullmatch(name):
        raise SpecError(f"{what} '{shown(name)}' is not a valid name", loc,
                        "names start with an ASCII letter or '_' and contain ASCII letters, "
                        "digits and '_'")


def check_layer_name(name: str, loc: Location) -> None:
    """SpecError unless every level of ``name`` matches :data:`LAYER_PART_RE`, is not
    dunder and not an nn.Module attribute: the same name in torch, generated code and
    render."""
    for part in name.split("."):
        if not LAYER_PART_RE.fullmatch(part):
            raise SpecError(f"layer name '{shown(name)}' is not valid", loc,
                            "use ASCII letters, digits, '_' and '-' (not first), with '.' "
                            "between levels (non-ASCII letters fold into other names in "
                            "Python)")
        if part in _RESERVED or part.startswith("__"):
            raise SpecError(f"layer name '{shown(name)}' clashes with the torch module "
                            f"attribute '{part}'", loc,
                            "rename the layer (e.g. '{0}_'), nn.Module uses that name"
                            .format(part))


__all__ = ["LAYER_PART_RE", "MODULE_ATTRS", "NAME_RE", "check_layer_name", "check_name", "shown"]
