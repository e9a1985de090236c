"""Small Gemma/PaliGemma backbones for lerobot's pi0 and pi05, selected by name, for offline CPU runs and tests.

lerobot 0.6.1 builds pi0/pi05 (4 B parameters) from sizes it hard-codes: ``get_gemma_config`` knows only
``gemma_300m`` and ``gemma_2b`` (``modeling_pi0.py:161-182``; ``PI0Config.__post_init__`` rejects any other name),
and ``PaliGemmaWithExpertModel`` fixes the vocabulary (257152), the SigLIP projection (2048) and MLP (4304)
(``:206-224``). There is no config field to shrink them, so this module adds two *variant names*,
``diffrl_tiny_vlm`` and ``diffrl_tiny_expert``, that ``--policy.paligemma_variant`` /
``--policy.action_expert_variant`` can select. Selecting a stock variant changes nothing: the stock code runs.
A checkpoint built this way says which variants it uses in its ``config.json``, so it cannot be mistaken for a
full-size one; without this hook lerobot refuses it plainly ("Invalid paligemma_variant").

The hook is explicit and opt-in: :func:`install` patches the pi0/pi05 modules of the current process. In
``lerobot-train``/``lerobot-eval`` processes (spawned by ``accelerate launch`` or by ``lerobot-diffrl-eval``) it is
installed by this package's plugin module, which lerobot's plugin discovery imports, when the environment variable
``LEROBOT_DIFFRL_SMALL_PI=1`` is set (:data:`ENV_VAR`). Every lerobot internal it relies on is checked first; when a
LeRobot release moves one, :func:`install` raises :class:`SmallBackboneError`
("lerobot <version> changed the pi0 small-backbone path: <what>") instead of building a wrong or full-size model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lerobot_diffrl.errors import DiffRLError

#: Set to ``1`` to install the hook in every lerobot process that imports this package's plugin module.
ENV_VAR = "LEROBOT_DIFFRL_SMALL_PI"
#: lerobot's pi policy types and the modules the hook patches: (configuration module, config class, modeling).
PI_MODULES: dict[str, tuple[str, str, str]] = {
    "pi0": ("lerobot.policies.pi0.configuration_pi0", "PI0Config", "lerobot.policies.pi0.modeling_pi0"),
    "pi05": ("lerobot.policies.pi05.configuration_pi05", "PI05Config", "lerobot.policies.pi05.modeling_pi05"),
}
#: The variant names lerobot's configs accept; the hook validates as if one of these had been chosen.
STOCK_VLM, STOCK_EXPERT = "gemma_2b", "gemma_300m"
#: ``compute_layer_complete`` reshapes the joint attention output to ``1 * 8 * head_dim``: 8 heads, fixed.
NUM_HEADS = 8
#: Names of ``modeling_pi0``/``modeling_pi05`` globals the hook reads or replaces.
REQUIRED_GLOBALS = (
    "GemmaConfig",
    "get_gemma_config",
    "PaliGemmaWithExpertModel",
    "PaliGemmaForConditionalGenerationWithPiGemma",
    "PiGemmaForCausalLM",
    "compute_layer_complete",
)


class SmallBackboneError(DiffRLError):
    """A lerobot internal the small pi0/pi05 backbone relies on has changed."""


@dataclass(frozen=True)
class VisionSpec:
    """A SigLIP tower small enough for 32x32 images on a CPU."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 1
    num_attention_heads: int = 4
    patch_size: int = 8


@dataclass(frozen=True)
class SmallVariant:
    """A Gemma size (openpi's ``gemma.Config`` fields) plus, for the VLM, its vocabulary and vision tower.

    The VLM and the action expert attend jointly, so they must share ``depth``, ``head_dim`` and
    ``num_kv_heads``; their widths may differ (as gemma_2b's 2048 and gemma_300m's 1024 do).
    """

    width: int
    depth: int
    mlp_dim: int
    head_dim: int
    num_kv_heads: int = 1
    vocab_size: int = 512
    vision: VisionSpec | None = None


#: The small variants; ``diffrl_tiny_vlm`` + ``diffrl_tiny_expert`` is a pi0 of about 1.4 M parameters.
VARIANTS: dict[str, SmallVariant] = {
    "diffrl_tiny_vlm": SmallVariant(width=128, depth=2, mlp_dim=256, head_dim=16, vision=VisionSpec()),
    "diffrl_tiny_expert": SmallVariant(width=64, depth=2, mlp_dim=128, head_dim=16),
}

_INSTALLED: set[str] = set()


def lerobot_version() -> str:
    from importlib.metadata import version

    return version("lerobot")


def _changed(what: str) -> SmallBackboneError:
    return SmallBackboneError(f"lerobot {lerobot_version()} changed the pi0 small-backbone path: {what}")


def installed() -> frozenset[str]:
    """The pi policy types the hook is installed for in this process."""
    return frozenset(_INSTALLED)


def install_from_env() -> bool:
    """Install the hook when :data:`ENV_VAR` is ``1``/``true``; called by the plugin module at import."""
    if os.environ.get(ENV_VAR, "").strip().lower() not in ("1", "true", "yes", "on"):
        return False
    install()
    return True


def install(policy_types: tuple[str, ...] = tuple(PI_MODULES)) -> None:
    """Teach lerobot's pi0/pi05 the :data:`VARIANTS` names (idempotent). Raises :class:`SmallBackboneError`."""
    for policy_type in policy_types:
        if policy_type in _INSTALLED:
            continue
        config_mod, config_name, modeling_mod = PI_MODULES[policy_type]
        try:
            config_cls = getattr(importlib.import_module(config_mod), config_name)
            modeling = importlib.import_module(modeling_mod)
        except (ImportError, AttributeError) as err:
            raise _changed(f"cannot import {config_mod}.{config_name} / {modeling_mod}: {err}") from err
        check_internals(config_cls, modeling)
        config_cls.__post_init__ = _accepting_small_variants(config_cls.__post_init__)
        modeling.get_gemma_config = _small_gemma_config(modeling)
        modeling.PaliGemmaWithExpertModel = _small_with_expert(modeling)
        _INSTALLED.add(policy_type)


def check_internals(config_cls: type, modeling: Any) -> None:
    """Every lerobot fact the hook depends on, checked by name and source; the first that fails is raised."""
    name = modeling.__name__
    missing = [g for g in REQUIRED_GLOBALS if not hasattr(modeling, g)]
    if missing:
        raise _changed(f"{name} no longer defines {', '.join(missing)}")
    fields = {f.name for f in dataclasses.fields(config_cls)}
    for field in ("paligemma_variant", "action_expert_variant", "image_resolution", "dtype"):
        if field not in fields:
            raise _changed(f"{config_cls.__name__} has no field {field!r}")
    post_init = inspect.getsource(config_cls.__post_init__)
    if f'["gemma_300m", "{STOCK_VLM}"]' not in post_init:
        raise _changed(
            f"{config_cls.__name__}.__post_init__ no longer validates variants against a fixed list"
        )
    if f"1 * {NUM_HEADS} * head_dim" not in inspect.getsource(modeling.compute_layer_complete):
        raise _changed(f"{name}.compute_layer_complete no longer fixes {NUM_HEADS} attention heads")
    init = inspect.getsource(modeling.PaliGemmaWithExpertModel.__init__)
    for needle in (
        'CONFIG_MAPPING["paligemma"]()',
        "PaliGemmaForConditionalGenerationWithPiGemma(config=",
        "PiGemmaForCausalLM(config=",
        "vlm_config.width",
        "action_expert_config.width",
    ):
        if needle not in init:
            raise _changed(f"{name}.PaliGemmaWithExpertModel.__init__ no longer contains {needle!r}")
    gemma = inspect.signature(modeling.GemmaConfig)
    expected = ["width", "depth", "mlp_dim", "num_heads", "num_kv_heads", "head_dim"]
    if list(gemma.parameters) != expected:
        raise _changed(f"{name}.GemmaConfig takes {list(gemma.parameters)}, not {expected}")


def _accepting_small_variants(post_init: Callable[[Any], None]) -> Callable[[Any], None]:
    """``__post_init__`` that validates a small variant as its stock counterpart, then restores the name."""
    if getattr(post_init, "_diffrl_small", False):
        return post_init

    @functools.wraps(post_init)
    def __post_init__(self: Any) -> None:  # noqa: N807  (it replaces the dataclass hook)
        chosen = (self.paligemma_variant, self.action_expert_variant)
        small = [v in VARIANTS for v in chosen]
        if any(small) and not all(small):
            raise ValueError(
                f"paligemma_variant={chosen[0]!r} and action_expert_variant={chosen[1]!r}: a small "
                f"({', '.join(VARIANTS)}) and a stock variant cannot attend jointly (head_dim differs)"
            )
        if all(small):
            self.paligemma_variant, self.action_expert_variant = STOCK_VLM, STOCK_EXPERT
        try:
            post_init(self)
        finally:
            self.paligemma_variant, self.action_expert_variant = chosen

    __post_init__._diffrl_small = True  # type: ignore[attr-defined]
    return __post_init__


def _small_gemma_config(modeling: Any) -> Callable[[str], Any]:
    """``get_gemma_config`` that also knows :data:`VARIANTS`; its result carries the spec as ``diffrl_small``."""
    stock = modeling.get_gemma_config
    if getattr(stock, "_diffrl_small", False):
        return stock

    @functools.wraps(stock)
    def get_gemma_config(variant: str) -> Any:
        spec = VARIANTS.get(variant)
        if spec is None:
            return stock(variant)
        config = modeling.GemmaConfig(
            width=spec.width,
            depth=spec.depth,
            mlp_dim=spec.mlp_dim,
            num_heads=NUM_HEADS,
            num_kv_heads=spec.num_kv_heads,
            head_dim=spec.head_dim,
        )
        config.diffrl_small = spec
        return config

    get_gemma_config._diffrl_small = True  # type: ignore[attr-defined]
    return get_gemma_config


def _shrink_vlm(config: Any, spec: SmallVariant) -> Any:
    """Replace the PaliGemma sizes lerobot hard-codes (vocabulary, SigLIP tower, projector) by ``spec``'s."""
    vision = spec.vision or VisionSpec()
    config.vocab_size = spec.vocab_size
    config.image_token_index = spec.vocab_size  # out of the vocabulary, as lerobot's 257152 is
    config.text_config.vocab_size = spec.vocab_size
    config.projection_dim = config.text_config.hidden_size
    for key, value in dataclasses.asdict(vision).items():
        setattr(config.vision_config, key, value)
    config.vision_config.projection_dim = config.text_config.hidden_size
    return config


@contextlib.contextmanager
def _swapped(namespace: dict[str, Any], replacements: dict[str, Any]) -> Iterator[None]:
    saved = {key: namespace[key] for key in replacements}
    namespace.update(replacements)
    try:
        yield
    finally:
        namespace.update(saved)


def _small_with_expert(modeling: Any) -> type:
    """A ``PaliGemmaWithExpertModel`` that builds its HF models from shrunk configs when given small variants."""
    base = modeling.PaliGemmaWithExpertModel
    if getattr(base, "_diffrl_small", False):
        return base
    namespace = base.__init__.__globals__
    paligemma_cls = namespace["PaliGemmaForConditionalGenerationWithPiGemma"]
    expert_cls = namespace["PiGemmaForCausalLM"]

    class SmallPaliGemmaWithExpertModel(base):
        """Stock behaviour for stock variants; for :data:`VARIANTS`, the same code with smaller HF configs."""

        _diffrl_small = True

        def __init__(self, vlm_config: Any, action_expert_config: Any, *args: Any, **kwargs: Any) -> None:
            vlm_spec = getattr(vlm_config, "diffrl_small", None)
            expert_spec = getattr(action_expert_config, "diffrl_small", None)
            if vlm_spec is None or expert_spec is None:
                super().__init__(vlm_config, action_expert_config, *args, **kwargs)
                return

            def paligemma(config: Any) -> Any:
                return paligemma_cls(config=_shrink_vlm(config, vlm_spec))

            def expert(config: Any) -> Any:
                config.vocab_size = vlm_spec.vocab_size  # its embedding is dropped; its lm_head stays
                return expert_cls(config=config)

            replacements = {
                "PaliGemmaForConditionalGenerationWithPiGemma": paligemma,
                "PiGemmaForCausalLM": expert,
            }
            with _swapped(namespace, replacements):
                super().__init__(vlm_config, action_expert_config, *args, **kwargs)
            built = self.paligemma.config
            if (built.text_config.vocab_size, built.vision_config.hidden_size) != (
                vlm_spec.vocab_size,
                (vlm_spec.vision or VisionSpec()).hidden_size,
            ):
                raise _changed(
                    f"{modeling.__name__}.PaliGemmaWithExpertModel no longer builds its VLM through "
                    "PaliGemmaForConditionalGenerationWithPiGemma (the small sizes were not applied)"
                )

    return SmallPaliGemmaWithExpertModel
