"""Write a :class:`~proxy.policy.schema.Policy` as YAML that :func:`~proxy.policy.load.load_policy`
reads back to an equal object (the trainer's output path).

:func:`write_policy` is atomic: it writes a temporary file in the target directory, fsyncs it and
renames it over the target, so a watching proxy never sees a half-written policy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from proxy.atomicio import replace_files
from proxy.config import Action, PromptConfig
from proxy.policy.schema import ArmEstimate, Context, Policy, Provenance

__all__ = ["dump_policy", "policy_to_dict", "write_policy"]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _action(a: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt": a.prompt, "n": a.n, "aggregator": a.aggregator}
    if a.scorer is not None:
        out["scorer"] = a.scorer
    return out


def _estimate(e: ArmEstimate) -> dict[str, Any]:
    out = _action(e.action)
    out["means"] = dict(e.means)
    out["cost"] = e.cost
    out["observations"] = e.observations
    if e.ci:
        out["ci"] = {k: [iv.low, iv.high] for k, iv in e.ci.items()}
    return out


def _context(c: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"task": c.task, "profile": c.profile, "weights": dict(c.weights),
                           "action": _action(c.action)}
    if c.estimates:
        out["estimates"] = [_estimate(e) for e in c.estimates]
    return out


def _prompt(p: PromptConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"id": p.id}
    for key in ("system", "prefix", "suffix", "template"):
        if getattr(p, key) is not None:
            out[key] = getattr(p, key)
    if p.examples:
        out["examples"] = [{"input": i, "output": o} for i, o in p.examples]
    if p.rewrite is not None:
        out["rewrite"] = {"model": p.rewrite.model, "meta_prompt": p.rewrite.meta_prompt,
                          "timeout_s": p.rewrite.timeout_s}
    return out


def _provenance(p: Provenance) -> dict[str, Any]:
    out: dict[str, Any] = {"algorithm": p.algorithm, "params": _plain(p.params),
                           "budget": {"samples": p.budget.samples, "tokens": p.budget.tokens,
                                      "cost_usd": p.budget.cost_usd},
                           "datasets": list(p.datasets)}
    for key in ("upstream_model", "seed", "date", "project_version", "notes"):
        if getattr(p, key) is not None:
            out[key] = getattr(p, key)
    return out


def _path(path: Path, base_dir: Path | None) -> str:
    if base_dir is None:
        return str(path)
    try:
        return os.path.relpath(path, base_dir)
    except ValueError:  # another drive (Windows)
        return str(path)


def policy_to_dict(policy: Policy, base_dir: Path | None = None) -> dict[str, Any]:
    """The YAML document of ``policy``; classifier paths are written relative to ``base_dir``."""
    out: dict[str, Any] = {
        "schema": policy.schema, "id": policy.id, "version": policy.version,
        "provenance": _provenance(policy.provenance),
        "prompts": [_prompt(policy.inline_prompts[p]) if p in policy.inline_prompts else p
                    for p in policy.prompts],
        "fallback": _action(policy.fallback),
    }
    if policy.classifiers:
        out["classifiers"] = {t: _path(p, base_dir) for t, p in policy.classifiers.items()}
    out["contexts"] = [_context(c) for c in policy.contexts]
    return out


def dump_policy(policy: Policy, base_dir: Path | None = None, header: str | None = None) -> str:
    """YAML text for ``policy``; ``header`` lines become a leading ``#`` comment."""
    text = yaml.safe_dump(policy_to_dict(policy, base_dir), sort_keys=False, allow_unicode=True,
                          default_flow_style=None, width=100)
    if header:
        text = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines()) + "\n" + text
    return text


def write_policy(policy: Policy, path: str | Path, header: str | None = None) -> Path:
    """Write ``policy`` to ``path`` atomically (:mod:`proxy.atomicio`); returns the path.
    Refuses (``FileExistsError``) a ``path`` that exists and is not a regular file: the rename
    would replace a folder's entry or, as root, a device such as ``/dev/null``."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise FileExistsError(f"{path} exists and is not a regular file")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dump_policy(policy, path.resolve().parent, header)
    replace_files([(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))])
    return path
