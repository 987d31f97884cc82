"""The training recipe as named rules: the published one by default, variants by name.

Each rule is a choice that the authors' code makes in one way and that p3m can also
make another way. ``recipe = "published"`` (the default) follows the authors' code in
every rule, quirks included (``../shared/docs/p3m-facts.md`` section 7, tested against
``p3m_training_loss_reference.npz``). ``recipe = "p3m"`` is the set of choices p3m
made before it followed the published code exactly; single rules can be overridden
on top of either (``--set laplacian_kernel=gaussian``). docs/training.md has the table.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from p3m.errors import OptionError, choice_error


@dataclass(frozen=True)
class Recipe:
    #: the Laplacian pyramid's 5 x 5 kernel: the authors' sum of two 1-D terms, or a true Gaussian
    laplacian_kernel: str = "published"
    #: local alpha loss: epsilon under the root for every pixel and / (U + 1), or a mean over the region
    alpha_loss: str = "published"
    #: composition loss: the 3-channel sum / (N*1*H*W), or a mean over N*3*H*W
    composition: str = "published"
    #: resizing the crop's uint8 trimap: bilinear (class borders get in-between values), or nearest
    trimap_resize: str = "linear"
    #: crop size: one of the sizes drawn, 512 unless strictly smaller than the short side; or among those that fit
    crop_size: str = "published"
    #: crop anchor: top-left corner drawn from [0, h-c) x [0, w-c); or any unknown pixel, clamped
    crop_anchor: str = "published"


#: The allowed values of each rule; the first is the published one.
RULES = {
    "laplacian_kernel": ("published", "gaussian"),
    "alpha_loss": ("published", "masked-mean"),
    "composition": ("published", "mean"),
    "trimap_resize": ("linear", "nearest"),
    "crop_size": ("published", "fitting"),
    "crop_anchor": ("published", "unknown-clamped"),
}

RECIPES = {
    "published": Recipe(),
    "p3m": Recipe(laplacian_kernel="gaussian", alpha_loss="masked-mean", composition="mean", trimap_resize="nearest",
                  crop_size="fitting", crop_anchor="unknown-clamped"),
}
PUBLISHED = RECIPES["published"]


def resolve_recipe(name: str = "published", **overrides: str | None) -> Recipe:
    """The recipe ``name`` with single rules overridden (None or "" keeps the recipe's)."""
    if name not in RECIPES:
        raise choice_error("recipe", name, RECIPES)
    chosen = {rule: value for rule, value in overrides.items() if value}
    unknown = set(chosen) - set(RULES)
    if unknown:
        raise OptionError(f"unknown recipe rule(s) {sorted(unknown)}; rules: {', '.join(RULES)}")
    for rule, value in chosen.items():
        if value not in RULES[rule]:
            raise choice_error(rule, value, RULES[rule])
    return replace(RECIPES[name], **chosen)


def departures(recipe: Recipe) -> list[str]:
    """The rules where ``recipe`` differs from the published one, as 'rule=value'."""
    return [f"{f.name}={getattr(recipe, f.name)}" for f in fields(Recipe)
            if getattr(recipe, f.name) != getattr(PUBLISHED, f.name)]
