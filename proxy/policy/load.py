"""Parse and validate a policy file against the config; every problem comes with its key path.

Checked: the YAML itself (one-line syntax errors; no recursive aliases, alias bombs or nesting
over 100 levels, see :func:`proxy.yamlio.parse_yaml`); supported ``schema``; required keys and no
unknown ones; prompt ids exist in the config's prompt library or are defined inline (inline ones
follow the config's prompt rules and may not redefine a library prompt differently); every prompt
an action or estimate uses is one of the policy's candidates; tasks exist in the config;
aggregators are known, ``majority`` is only used for tasks with an answer extractor and
``best_of_n`` not for tasks the config aggregates by majority; scorers exist;
``1 <= n <= fanout.n_max``; weights are over the config's objectives plus ``cost``; all numbers
are finite and objective means are in ``[0, 1]`` (the scorers' scale); provenance parameters do
not contain themselves; a context's action is one of its estimated arms; no duplicate contexts or
arms; the ``fallback`` action is present; classifier artefacts are existing ``.npz`` files.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import zipfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from proxy.config import AGGREGATORS, COST, Action, Config, PromptConfig, _prompt, parse_weights
from proxy.policy.schema import (
    SUPPORTED_SCHEMAS, UTILITY, ArmEstimate, Budget, Context, Interval, Policy, Provenance, arm_key,
)
from proxy.validate import Problems, Reader
from proxy.yamlio import YamlError, parse_yaml

__all__ = ["PolicyError", "load_policy", "parse_policy", "parse_policy_bytes"]


class PolicyError(ValueError):
    """A policy that cannot be used; ``problems`` lists ``key.path: reason`` lines."""

    def __init__(self, problems: list[str], source: str = "policy") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


class _Ctx:
    """What the readers below need: the config and the prompt ids known so far."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tasks = {t.name: t for t in config.tasks}
        self.known: dict[str, PromptConfig] = dict(config.prompts)
        self.candidates: set[str] = set()


def _kp(r: Reader, key: str) -> str:
    return f"{r.path}.{key}" if r.path else key


def _text(r: Reader, key: str, *, required: bool = False) -> str | None:
    """A string; YAML dates and numbers are refused with a hint to quote them (dates: accepted)."""
    value = r.raw(key)
    if value is None:
        if required:
            r.problem(key, "required")
        return None
    if isinstance(value, _dt.date):
        return value.isoformat()
    if not isinstance(value, str) or not value:
        r.problem(key, "must be a non-empty string (quote it in YAML)")
        return None
    return value


def _check_finite(value: Any, path: str, problems: Problems, _open: frozenset[int] = frozenset()) -> Any:
    """Freeze a provenance parameter (lists -> tuples) and reject non-finite numbers and
    structures that contain themselves (``_open``: the containers on the path so far)."""
    if isinstance(value, (list, Mapping)):
        if id(value) in _open:
            problems.add(path, "refers to itself (a recursive structure)")
            return None
        _open = _open | {id(value)}
    if isinstance(value, float) and not math.isfinite(value):
        problems.add(path, "must be a finite number")
    elif isinstance(value, list):
        return tuple(_check_finite(v, f"{path}[{i}]", problems, _open) for i, v in enumerate(value))
    elif isinstance(value, Mapping):
        return MappingProxyType({str(k): _check_finite(v, f"{path}.{k}", problems, _open)
                                 for k, v in value.items()})
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        problems.add(path, "must be a string, number, boolean, list or mapping")
    return value


def _provenance(r: Reader) -> Provenance:
    br = r.sub("budget", default={})
    budget = Budget(samples=br.int("samples", 0, lo=0), tokens=br.int("tokens", 0, lo=0),
                    cost_usd=br.float("cost_usd", 0.0, lo=0.0))
    br.done()
    params = r.mapping("params")
    seed = r.raw("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        r.problem("seed", "must be an integer or null")
        seed = None
    prov = Provenance(
        algorithm=r.str("algorithm", required=True),
        params=_check_finite(params, _kp(r, "params"), r.problems),
        budget=budget,
        datasets=tuple(r.str_list("datasets")),
        upstream_model=r.opt_str("upstream_model"),
        seed=seed,
        date=_text(r, "date"),
        project_version=_text(r, "project_version"),
        notes=r.opt_str("notes"),
    )
    r.done()
    return prov


def _prompts(root: Reader, ctx: _Ctx) -> tuple[tuple[str, ...], dict[str, PromptConfig]]:
    raw = root.raw("prompts")
    if raw is None:
        root.problem("prompts", "required: the prompt candidates (library ids or inline definitions)")
        return (), {}
    if not isinstance(raw, list) or not raw:
        root.problem("prompts", "must be a non-empty list")
        return (), {}
    ids: list[str] = []
    inline: dict[str, PromptConfig] = {}
    model_names = {m.name for m in ctx.config.models}
    for i, item in enumerate(raw):
        path = f"prompts[{i}]"
        if isinstance(item, str) and item:
            if item not in ctx.config.prompts:
                root.problems.add(path, f"unknown prompt '{item}' (not in the config's prompt library; "
                                        "define it inline with id: ...)")
            pid = item
        elif isinstance(item, Mapping):
            pr = Reader(item, path, root.problems, root.base_dir)
            prompt = _prompt(pr)
            pr.done()
            pid = prompt.id
            library = ctx.config.prompts.get(pid)
            if library is not None and library != prompt:
                root.problems.add(f"{path}.id", f"'{pid}' redefines a config prompt differently; use another id")
            if prompt.rewrite is not None and prompt.rewrite.model not in model_names:
                root.problems.add(f"{path}.rewrite.model", f"unknown model '{prompt.rewrite.model}'")
            if pid and library is None:
                inline[pid] = prompt
        else:
            root.problems.add(path, "must be a prompt id or an inline prompt mapping")
            continue
        if pid in ids:
            root.problems.add(path, f"duplicate prompt '{pid}'")
        ids.append(pid)
    ctx.known.update(inline)
    ctx.candidates = set(ids)
    return tuple(ids), inline


def _action(r: Reader, ctx: _Ctx, task: str | None, *, candidate: bool) -> Action:
    """An action (or the arm part of an estimate); ``task`` None means the fallback."""
    n_max = ctx.config.fanout.n_max
    prompt = r.str("prompt", required=True)
    if prompt:
        if prompt not in ctx.known:
            r.problem("prompt", f"unknown prompt '{prompt}'")
        elif candidate and prompt not in ctx.candidates:
            r.problem("prompt", f"prompt '{prompt}' is not among the policy's prompts")
    n = r.int("n", 1, lo=1, hi=n_max, required=True)
    aggregator = r.str("aggregator", required=True)
    if aggregator and aggregator not in AGGREGATORS:
        r.problem("aggregator", f"must be one of {', '.join(AGGREGATORS)} (got {aggregator!r})")
        aggregator = ""
    scorer = r.opt_str("scorer")
    if scorer is not None and scorer not in ctx.config.scorers:
        r.problem("scorer", f"unknown scorer '{scorer}'")
    if aggregator == "best_of_n" and task in ctx.tasks and ctx.tasks[task].aggregator == "majority":
        r.problem("aggregator", f"task '{task}' is aggregated by majority in the config; "
                                "a best_of_n arm is not allowed")
    if aggregator == "majority":
        if task is not None and task in ctx.tasks and ctx.tasks[task].extractor is None:
            r.problem("aggregator", f"majority needs an answer extractor; task '{task}' has none")
        if task is None and n > 1:
            lacking = [t.name for t in ctx.config.tasks if t.extractor is None]
            if lacking:
                r.problem("aggregator", "a majority fallback with n > 1 needs an answer extractor; "
                                        f"tasks without one: {', '.join(lacking)}")
    return Action(prompt=prompt, n=n, aggregator=aggregator or "majority", scorer=scorer)


def _interval(raw: Any, path: str, problems: Problems) -> Interval | None:
    ok = (isinstance(raw, list) and len(raw) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw))
    if not ok:
        problems.add(path, "must be [low, high]")
        return None
    low, high = float(raw[0]), float(raw[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        problems.add(path, "must be finite numbers")
        return None
    if low > high:
        problems.add(path, "low must be <= high")
        return None
    return Interval(low, high)


def _estimate(r: Reader, ctx: _Ctx, task: str) -> ArmEstimate:
    action = _action(r, ctx, task, candidate=True)
    objectives = ctx.config.objectives
    mr = r.sub("means")
    if not r.has("means"):
        r.problem("means", "required: objective -> estimated mean")
    means: dict[str, float] = {}
    for key in list(mr.data):
        if key not in objectives:
            mr.problem(str(key), f"unknown objective (known: {', '.join(objectives)}; "
                                 "cost goes in the estimate's 'cost')")
        else:
            means[str(key)] = mr.float(str(key), 0.0, lo=0.0, hi=1.0, required=True)
    ci: dict[str, Interval] = {}
    for key, raw in r.mapping("ci").items():
        path = f"{_kp(r, 'ci')}.{key}"
        if key not in (*objectives, COST, UTILITY):
            r.problems.add(path, f"unknown key (known: {', '.join((*objectives, COST, UTILITY))})")
            continue
        interval = _interval(raw, path, r.problems)
        if interval is not None:
            ci[str(key)] = interval
    return ArmEstimate(
        prompt=action.prompt, n=action.n, aggregator=action.aggregator, scorer=action.scorer,
        means=MappingProxyType(means), cost=r.float("cost", 0.0, lo=0.0, required=True),
        observations=r.int("observations", 0, lo=0, required=True), ci=MappingProxyType(ci),
    )


def _context(r: Reader, ctx: _Ctx) -> Context:
    task = r.str("task", required=True)
    if task and task not in ctx.tasks:
        r.problem("task", f"unknown task '{task}' (known: {', '.join(ctx.tasks)})")
    profile = r.str("profile", required=True)
    if not r.has("weights"):
        r.problem("weights", "required: the profile's weights")
        weights: dict[str, float] = {}
    else:
        weights = parse_weights(r.raw("weights"), ctx.config.all_objectives, _kp(r, "weights"), r.problems)
    if not r.has("action"):
        r.problem("action", "required")
    ar = r.sub("action")
    before = len(r.problems.lines)
    action = _action(ar, ctx, task, candidate=True)
    ar.done()
    action_ok = len(r.problems.lines) == before
    estimates: list[ArmEstimate] = []
    seen: set[tuple[str, int, str, str | None]] = set()
    for i, er in r.list_of_readers("estimates"):
        est = _estimate(er, ctx, task)
        if arm_key(est.action) in seen:
            er.problem("prompt", f"duplicate arm ({est.prompt}, n={est.n}, {est.aggregator})")
        seen.add(arm_key(est.action))
        estimates.append(est)
    if action_ok and estimates and arm_key(action) not in seen:
        r.problem("action", "must be one of the context's estimated arms")
    return Context(task=task, profile=profile, weights=MappingProxyType(weights), action=action,
                   estimates=tuple(estimates))


def _classifiers(root: Reader, ctx: _Ctx) -> dict[str, Path]:
    out: dict[str, Path] = {}
    cr = root.sub("classifiers")
    for task in list(cr.data):
        path = cr.opt_path(str(task))
        if task not in ctx.tasks:
            cr.problem(str(task), f"unknown task '{task}'")
        elif path is None:
            cr.problem(str(task), "must be the path of the classifier artefact")
        elif not path.exists():
            cr.problem(str(task), f"file not found: {path}")
        elif path.is_dir():
            cr.problem(str(task), f"{path} is a folder, not an .npz classifier file")
        elif not path.is_file() or not zipfile.is_zipfile(path):  # (never open a FIFO)
            cr.problem(str(task), f"{path} is not an .npz classifier file")
        else:
            out[str(task)] = path.resolve()
    return out


def parse_policy(data: Any, config: Config, source: str = "policy", *,
                 base_dir: Path | None = None) -> Policy:
    """Validate a loaded YAML document; raises :class:`PolicyError` listing every problem."""
    problems = Problems()
    root = Reader(data, "", problems, base_dir or Path.cwd())
    if problems:
        raise PolicyError(problems.lines, source)
    schema = root.raw("schema")
    if schema is None:
        raise PolicyError(["schema: required (supported: "
                           f"{', '.join(map(str, SUPPORTED_SCHEMAS))})"], source)
    if isinstance(schema, bool) or schema not in SUPPORTED_SCHEMAS:
        raise PolicyError([f"schema: unsupported version {schema!r} (supported: "
                           f"{', '.join(map(str, SUPPORTED_SCHEMAS))})"], source)
    ctx = _Ctx(config)
    policy_id = root.str("id", required=True)
    version = _text(root, "version", required=True) or ""
    if not root.has("provenance"):
        root.problem("provenance", "required")
    provenance = _provenance(root.sub("provenance"))
    prompts, inline = _prompts(root, ctx)
    if not root.has("fallback"):
        root.problem("fallback", "required: the action for requests no context covers")
    fr = root.sub("fallback")
    fallback = _action(fr, ctx, None, candidate=False)
    fr.done()
    classifiers = _classifiers(root, ctx)
    contexts = [_context(cr, ctx) for _, cr in root.list_of_readers("contexts", required=True)]
    if root.has("contexts") and not contexts and isinstance(root.raw("contexts"), list):
        root.problem("contexts", "must list at least one context")
    root.done()
    seen: dict[tuple[str, str], int] = {}
    for i, c in enumerate(contexts):
        key = (c.task, c.profile)
        if key in seen:
            problems.add(f"contexts[{i}]", f"duplicate context (task '{c.task}', profile '{c.profile}'), "
                                           f"first at contexts[{seen[key]}]")
        seen.setdefault(key, i)
    if problems:
        raise PolicyError(problems.lines, source)
    return Policy(
        id=policy_id, version=version, provenance=provenance, prompts=prompts,
        contexts=tuple(contexts), fallback=fallback, inline_prompts=MappingProxyType(inline),
        classifiers=MappingProxyType(classifiers), schema=int(schema),
    )


def parse_policy_bytes(raw: bytes, config: Config, path: Path) -> Policy:
    """Parse the bytes of the file at ``path`` (relative paths resolve against its directory)."""
    try:
        data = parse_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PolicyError(["<root>: not UTF-8 text"], str(path)) from None
    except YamlError as exc:
        raise PolicyError([exc.problem], str(path)) from None
    policy = parse_policy(data, config, str(path), base_dir=path.resolve().parent)
    return replace(policy, source=path.resolve(), sha256=hashlib.sha256(raw).hexdigest())


def load_policy(path: str | Path, config: Config) -> Policy:
    """Read and validate one policy file; raises :class:`PolicyError` (never a traceback)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError([f"<root>: cannot read file ({exc.strerror})"], str(path)) from None
    return parse_policy_bytes(raw, config, path)
