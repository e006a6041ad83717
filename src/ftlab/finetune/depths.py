"""A backbone cut into depths, from input to output: what layer decay and gradual unfreezing act on.

Backbones name their blocks (`Backbone.block_modules()`: transformer layers, timm blocks or stages,
resnet stages, the digits CNN's blocks), but blocks rarely hold every parameter: a stem or patch
embedding comes before them, a final norm after. Every parameter must land in exactly one depth, or
layer decay would leave it out of the optimizer and unfreezing would never reach it. So:

- what comes before the first block (in registration order) is its own bottom depth, the stem;
- what comes after block i joins block i (a final norm trains with the top block);
- a container that holds blocks is split: its children are walked, its own direct parameters
  (a ViT's `cls_token`) join the depth reached so far.

Each depth lists whole modules (so freezing can put them, with their norm and dropout layers, in
eval mode) and its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass
class Depth:
    """One depth of a backbone: its modules (disjoint subtrees) and all parameters under them."""

    modules: list[nn.Module] = field(default_factory=list)
    params: dict[str, nn.Parameter] = field(default_factory=dict)  # name within the backbone


def backbone_depths(backbone: nn.Module) -> list[Depth]:
    """The backbone's depths from input (0) to output; together they hold every parameter once."""
    blocks = [b for b in _blocks(backbone) if b is not backbone]
    if not blocks:
        return [Depth(modules=[backbone], params=dict(backbone.named_parameters()))]
    owner = {id(m): index for index, block in enumerate(blocks) for m in block.modules()}
    stem, depths = Depth(), [Depth() for _ in blocks]
    names = {id(p): n for n, p in backbone.named_parameters()}
    seen: set[int] = set()

    def place(depth: Depth, module: nn.Module) -> None:
        depth.modules.append(module)
        for param in module.parameters():
            if id(param) not in seen:  # tied weights belong to the first depth that has them
                seen.add(id(param))
                depth.params[names[id(param)]] = param

    def walk(module: nn.Module, current: int) -> int:
        if id(module) in owner:
            place(depths[owner[id(module)]], module)
            return max(current, owner[id(module)])
        target = stem if current < 0 else depths[current]
        if not any(id(m) in owner for m in module.modules()):
            place(target, module)
            return current
        for param in module.parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                target.params[names[id(param)]] = param
        for child in module.children():
            current = walk(child, current)
        return current

    walk(backbone, -1)
    return ([stem] if stem.params else []) + depths


def _blocks(backbone: nn.Module) -> list[nn.Module]:
    block_modules = getattr(backbone, "block_modules", None)
    return list(block_modules()) if block_modules is not None else [backbone]
