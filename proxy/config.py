"""Configuration: one YAML file parsed into frozen, validated objects.

Every problem is reported with its key path (``models[1].api_base: not a URL``); a file with any
problem is rejected whole, so a bad file never replaces a good one. Relative paths in the file are
resolved against the file's directory. The YAML itself is read by
:func:`proxy.yamlio.parse_yaml` (policy files too).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from proxy.validate import Problems, Reader
from proxy.yamlio import YamlError, parse_yaml

__all__ = [
    "AGGREGATORS",
    "COST",
    "EMBEDDED",
    "SCORER_KINDS",
    "Action",
    "ApiKeyConfig",
    "AuthConfig",
    "ClassifierConfig",
    "Config",
    "ConfigError",
    "FanoutConfig",
    "ModelConfig",
    "ObjectiveScorer",
    "PoliciesConfig",
    "PromptConfig",
    "RewriteConfig",
    "ServerConfig",
    "SimulatorConfig",
    "TaskConfig",
    "load_config",
    "load_config_or_report",
    "parse_config",
    "parse_weights",
]

COST = "cost"
EMBEDDED = "embedded"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
AGGREGATORS = ("majority", "best_of_n")
EXTRACTORS = ("number", "letter", "regex")
SCORER_KINDS = ("length", "regex", "json", "keywords", "judge", "http")
JUDGE_MAX_TOKENS = 64  # a judge scorer's default max_tokens: "Score: 7" and a short reason
TRANSPORTS = ("auto", "direct", "litellm")


class ConfigError(ValueError):
    """A configuration file that cannot be used; ``problems`` lists ``path: reason`` lines."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 4 * 1024 * 1024
    max_n: int = 16
    request_timeout_s: float = 120.0
    stream_keepalive_s: float = 5.0
    access_log: bool = False
    shutdown_timeout_s: float = 60.0
    max_tokens: int | None = None  # the most tokens a client may ask of one sample


@dataclass(frozen=True, slots=True)
class ApiKeyConfig:
    """One API key: the *name* of the env var holding it, the profile of its callers, and the
    most samples one of its requests may draw (``None``: only ``fanout.n_max`` bounds N)."""

    key_env: str
    profile: str | None = None
    max_samples: int | None = None


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Whether requests need a key, and the keys (:class:`ApiKeyConfig`)."""

    require_api_key: bool = False
    keys: tuple[ApiKeyConfig, ...] = ()
    admin_key_env: str = "IAPO_ADMIN_KEY"


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    enabled: bool = True
    seed: int = 0
    ttft_s: float = 0.35
    tpot_s: float = 0.012
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    slow_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """A virtual model: the ``name`` clients send, mapped to a litellm model string."""

    name: str
    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    timeout_s: float = 60.0
    transport: str = "auto"
    supports_n: bool = True
    max_retries: int = 0

    @property
    def embedded(self) -> bool:
        return self.api_base == EMBEDDED


@dataclass(frozen=True, slots=True)
class Action:
    """How to answer: prompt id, number of samples, aggregator and (Best-of-N) scorer."""

    prompt: str
    n: int = 1
    aggregator: str = "majority"
    scorer: str | None = None


@dataclass(frozen=True, slots=True)
class TaskConfig:
    name: str
    aggregator: str = "best_of_n"
    extractor: str | None = None
    answer_regex: str | None = None
    scorer: str | None = None
    dataset: Path | None = None
    patterns: tuple[str, ...] = ()
    action: Action | None = None


@dataclass(frozen=True, slots=True)
class RewriteConfig:
    model: str
    meta_prompt: str
    timeout_s: float = 20.0


@dataclass(frozen=True, slots=True)
class PromptConfig:
    id: str
    system: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    template: str | None = None
    examples: tuple[tuple[str, str], ...] = ()
    rewrite: RewriteConfig | None = None


@dataclass(frozen=True, slots=True)
class ObjectiveScorer:
    """One objective's scorer inside a named scorer; ``params`` are the kind's own keys."""

    objective: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)


EARLY_STOP_MODES = ("off", "at_once", "waves")


@dataclass(frozen=True, slots=True)
class FanoutConfig:
    """``early_stop`` is one of :data:`EARLY_STOP_MODES` (a bool is accepted: ``False`` is
    ``off``, ``True`` is ``at_once``); ``first_wave`` is the fraction of N that ``waves`` sends
    first (raised to the fewest samples that could decide the vote); ``stop_risk`` 0 stops
    exactly, > 0 also when a change of answer is that unlikely (approximate). See
    :mod:`proxy.pipeline.fanout`."""

    max_concurrency: int = 256
    per_request_concurrency: int = 32
    n_max: int = 32
    sample_timeout_s: float = 60.0
    min_success: int = 1
    early_stop: str = "at_once"
    first_wave: float = 0.0
    stop_risk: float = 0.05

    def __post_init__(self) -> None:
        mode: Any = self.early_stop
        if isinstance(mode, bool):
            object.__setattr__(self, "early_stop", "at_once" if mode else "off")
        elif mode not in EARLY_STOP_MODES:
            raise ValueError(f"fanout.early_stop must be one of {', '.join(EARLY_STOP_MODES)} "
                             f"(got {mode!r})")
        if not 0.0 <= self.first_wave <= 1.0:
            raise ValueError(f"fanout.first_wave must be in [0, 1] (got {self.first_wave!r})")
        if not 0.0 <= self.stop_risk <= 0.5:
            raise ValueError(f"fanout.stop_risk must be in [0, 0.5] (got {self.stop_risk!r})")


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    path: Path | None = None
    min_confidence: float = 0.5
    fallback_task: str = "general"


@dataclass(frozen=True, slots=True)
class PoliciesConfig:
    paths: tuple[Path, ...] = ()
    watch_interval_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    auth: AuthConfig
    simulator: SimulatorConfig
    models: tuple[ModelConfig, ...]
    objectives: tuple[str, ...]
    profiles: Mapping[str, Mapping[str, float]]
    default_profile: str
    tasks: tuple[TaskConfig, ...]
    prompts: Mapping[str, PromptConfig]
    scorers: Mapping[str, tuple[ObjectiveScorer, ...]]
    fanout: FanoutConfig
    classifier: ClassifierConfig
    policies: PoliciesConfig
    cost_unit_usd: float = 0.01
    source: Path | None = None

    def model(self, name: str) -> ModelConfig | None:
        return next((m for m in self.models if m.name == name), None)

    def task(self, name: str) -> TaskConfig | None:
        return next((t for t in self.tasks if t.name == name), None)

    @property
    def all_objectives(self) -> tuple[str, ...]:
        """The configured objectives plus ``cost``."""
        return (*self.objectives, COST)


def parse_weights(raw: Any, objectives: tuple[str, ...], path: str, problems: Problems) -> dict[str, float]:
    """Validate a weight mapping over ``objectives`` (which include ``cost``)."""
    if not isinstance(raw, Mapping) or not raw:
        problems.add(path, "must be a non-empty mapping of objective to weight")
        return {}
    weights: dict[str, float] = {}
    for key, value in raw.items():
        sub = f"{path}.{key}"
        if key not in objectives:
            problems.add(sub, f"unknown objective (known: {', '.join(objectives)})")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.add(sub, "must be a number")
        elif not math.isfinite(value) or value < 0:
            problems.add(sub, "must be a finite number >= 0")
        else:
            weights[str(key)] = float(value)
    if weights and not any(weights.values()):
        problems.add(path, "weights must not all be zero")
    return weights


def _is_url(value: str) -> bool:
    """An http(s) URL with a host, a valid port if any, and no whitespace or control characters
    (``urlparse`` takes ``http://exa mple.com`` as is)."""
    if any(c.isspace() or not c.isprintable() for c in value):
        return False
    parsed = urlparse(value)
    try:
        has_host = bool(parsed.hostname) and (parsed.port is None or parsed.port >= 0)
    except ValueError:  # a port that is not a number in 0..65535
        return False
    return parsed.scheme in ("http", "https") and has_host


def _server(r: Reader) -> ServerConfig:
    d = ServerConfig()
    server = ServerConfig(
        host=r.str("host", d.host),
        port=r.int("port", d.port, lo=0, hi=65535),
        max_body_bytes=r.int("max_body_bytes", d.max_body_bytes, lo=1024),
        max_n=r.int("max_n", d.max_n, lo=1, hi=128),
        request_timeout_s=r.float("request_timeout_s", d.request_timeout_s, lo=0.001),
        stream_keepalive_s=r.float("stream_keepalive_s", d.stream_keepalive_s, lo=0.01),
        access_log=r.bool("access_log", d.access_log),
        shutdown_timeout_s=r.float("shutdown_timeout_s", d.shutdown_timeout_s, lo=0),
        max_tokens=r.opt_int("max_tokens", lo=1),
    )
    r.done()
    return server


def _env_name(r: Reader, key: str, value: str | None) -> str | None:
    """``value`` if it is the name of an environment variable; a pasted key is refused."""
    if value and not _ENV_NAME.fullmatch(value):
        r.problem(key, "must be the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                  "never the key itself")
        return None
    return value


def _auth(r: Reader) -> AuthConfig:
    keys = []
    for i, kr in r.list_of_readers("keys"):
        keys.append(ApiKeyConfig(_env_name(kr, "key_env", kr.str("key_env", required=True)) or "",
                                 kr.opt_str("profile"), kr.opt_int("max_samples", lo=1)))
        kr.done()
    auth = AuthConfig(
        require_api_key=r.bool("require_api_key", False),
        keys=tuple(keys),
        admin_key_env=_env_name(r, "admin_key_env", r.str("admin_key_env", "IAPO_ADMIN_KEY")) or "",
    )
    r.done()
    return auth


def _simulator(r: Reader) -> SimulatorConfig:
    d = SimulatorConfig()
    rates = {k: r.float(k, getattr(d, k), lo=0.0, hi=1.0) for k in
             ("error_rate", "rate_limit_rate", "slow_rate", "drop_rate", "malformed_rate")}
    sim = SimulatorConfig(
        enabled=r.bool("enabled", d.enabled),
        seed=r.int("seed", d.seed),
        ttft_s=r.float("ttft_s", d.ttft_s, lo=0.0, hi=60.0),
        tpot_s=r.float("tpot_s", d.tpot_s, lo=0.0, hi=10.0),
        **rates,
    )
    if sum(rates.values()) > 1.0:
        r.problems.add(r.path, "fault rates (*_rate) must sum to at most 1")
    r.done()
    return sim


def _model(r: Reader) -> ModelConfig:
    api_base = r.opt_str("api_base")
    if api_base is not None and api_base != EMBEDDED and not _is_url(api_base):
        r.problem("api_base", f"not a URL (or '{EMBEDDED}' for the in-process simulator)")
    key_env = _env_name(r, "api_key_env", r.opt_str("api_key_env"))
    return ModelConfig(
        name=r.str("name", required=True),
        model=r.str("model", required=True),
        api_base=api_base,
        api_key_env=key_env,
        input_cost_per_token=r.opt_float("input_cost_per_token", lo=0.0),
        output_cost_per_token=r.opt_float("output_cost_per_token", lo=0.0),
        timeout_s=r.float("timeout_s", 60.0, lo=0.001),
        transport=r.choice("transport", TRANSPORTS, "auto"),
        supports_n=r.bool("supports_n", True),
        max_retries=r.int("max_retries", 0, lo=0, hi=10),
    )


def _action(r: Reader, aggregator: str) -> Action:
    """A task's ``action``; its aggregator defaults to the task's (``aggregator``)."""
    return Action(
        prompt=r.str("prompt", required=True),
        n=r.int("n", 1, lo=1, hi=1024),
        aggregator=r.choice("aggregator", AGGREGATORS, aggregator),
        scorer=r.opt_str("scorer"),
    )


def _present(r: Reader, key: str) -> Reader | None:
    """The reader of the mapping at ``key``, or None when the key is absent or null (a value
    that is not a mapping is reported, and None returned); an empty mapping is a reader."""
    raw = r.raw(key)
    if raw is None:
        return None
    sub = r.sub(key)
    return sub if isinstance(raw, Mapping) else None


def _file(r: Reader, key: str) -> Path | None:
    """An optional path that must name an existing file (relative: against the file's folder)."""
    path = r.opt_path(key)
    if path is None or path.is_file():
        return path
    if path.is_dir():
        r.problem(key, f"{path} is a folder, not a file")
    else:
        r.problem(key, f"{path} is not a regular file" if path.exists() else f"file not found: {path}")
    return path


def _task(r: Reader) -> TaskConfig:
    aggregator = r.choice("aggregator", AGGREGATORS, "best_of_n")
    dataset = _file(r, "dataset")
    patterns = r.str_list("patterns")
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            r.problem(f"patterns[{i}]", f"not a valid regex ({exc})")
    answer_regex = r.opt_str("answer_regex")
    if answer_regex is not None:
        try:
            re.compile(answer_regex)
        except re.error as exc:
            r.problem("answer_regex", f"not a valid regex ({exc})")
    action = None
    ar = _present(r, "action")
    if ar is not None:
        action = _action(ar, aggregator)
        ar.done()
    return TaskConfig(
        name=r.str("name", required=True),
        aggregator=aggregator,
        extractor=r.opt_choice("extractor", EXTRACTORS),
        answer_regex=answer_regex,
        scorer=r.opt_str("scorer"),
        dataset=dataset,
        patterns=tuple(patterns),
        action=action,
    )


def _prompt(r: Reader) -> PromptConfig:
    template = r.opt_str("template")
    if template is not None and "{input}" not in template:
        r.problem("template", "must contain {input}")
    examples = []
    for _, er in r.list_of_readers("examples"):
        examples.append((er.str("input", required=True), er.str("output", required=True)))
        er.done()
    rewrite = None
    rr = _present(r, "rewrite")
    if rr is not None:
        meta = rr.str("meta_prompt", required=True)
        if meta and "{input}" not in meta:
            rr.problem("meta_prompt", "must contain {input}")
        rewrite = RewriteConfig(model=rr.str("model", required=True), meta_prompt=meta,
                                timeout_s=rr.float("timeout_s", 20.0, lo=0.001))
        rr.done()
    prompt = PromptConfig(
        id=r.str("id", required=True), system=r.opt_str("system"), prefix=r.opt_str("prefix"),
        suffix=r.opt_str("suffix"), template=template, examples=tuple(examples), rewrite=rewrite,
    )
    if template is not None and (prompt.prefix or prompt.suffix):
        r.problem("template", "use either template or prefix/suffix, not both")
    return prompt


def _objective_scorer(r: Reader, objectives: tuple[str, ...]) -> ObjectiveScorer:
    """One item of a named scorer: ``objective`` (not ``cost``: it is measured, not scored),
    ``kind`` and the kind's own keys, typed as :mod:`proxy.pipeline.scorers` reads them."""
    objective = r.str("objective", required=True)
    if objective == COST:
        r.problem("objective", f"'cost' is measured, not scored (known: {', '.join(objectives)})")
    elif objective and objective not in objectives:
        r.problem("objective", f"unknown objective '{objective}' (known: {', '.join(objectives)})")
    kind = r.str("kind", required=True)
    if kind not in SCORER_KINDS:
        if kind:
            r.problem("kind", f"must be one of {', '.join(SCORER_KINDS)} (got {kind!r})")
        for key in list(r.data):
            r.raw(str(key))  # nor "unknown key" for the keys of a missing or unknown kind
    params: dict[str, Any] = {}
    if kind == "length" and r.has("target_tokens"):
        params["target_tokens"] = r.int("target_tokens", 100, lo=1)
    elif kind == "regex":
        pattern = params["pattern"] = r.str("pattern", required=True)
        try:
            re.compile(pattern)
        except re.error as exc:
            r.problem("pattern", f"not a valid regex ({exc})")
    elif kind == "keywords":
        if not r.has("keywords"):
            r.problem("keywords", "required: a list of strings")
        elif r.raw("keywords") == []:
            r.problem("keywords", "must list at least one keyword")
        params["keywords"] = tuple(r.str_list("keywords"))
    elif kind == "judge":
        params["model"] = r.str("model", required=True)
        rubric = r.opt_str("rubric")
        if rubric is not None and "{response}" not in rubric:
            r.problem("rubric", "must contain {response} (also available: {objective}, {prompt})")
        elif rubric:
            params["rubric"] = rubric
        # the judge's reply is a score: bound what a verbose judge can cost (null: no bound)
        params["max_tokens"] = (r.opt_int("max_tokens", lo=1) if r.has("max_tokens")
                                else JUDGE_MAX_TOKENS)
    elif kind == "http":
        params["url"] = r.str("url", required=True)
        if params["url"] and not _is_url(params["url"]):
            r.problem("url", "not a URL")
    if kind in ("judge", "http") and r.has("timeout_s"):
        params["timeout_s"] = r.float("timeout_s", 30.0, lo=0.001)
    return ObjectiveScorer(objective=objective, kind=kind, params=params)


def _scorers(root: Reader, objectives: tuple[str, ...]) -> dict[str, tuple[ObjectiveScorer, ...]]:
    """``scorers``: name -> a non-empty list of objective scorers, one per objective."""
    sr = root.sub("scorers")
    scorers: dict[str, tuple[ObjectiveScorer, ...]] = {}
    for name in map(str, list(sr.data)):
        parts: list[ObjectiveScorer] = []
        first: dict[str, int] = {}
        for j, pr in sr.list_of_readers(name):
            part = _objective_scorer(pr, objectives)
            if part.objective in first:
                pr.problem("objective", f"duplicate objective '{part.objective}' "
                                        f"(also scorers.{name}[{first[part.objective]}])")
            first.setdefault(part.objective, j)
            parts.append(part)
        if not parts and isinstance(sr.data[name], list):
            sr.problem(name, "must list at least one objective scorer")
        scorers[name] = tuple(parts)
    return scorers


def _objectives(root: Reader) -> tuple[str, ...]:
    """``objectives``: distinct names, ``cost`` not among them (it always is an objective)."""
    names = root.str_list("objectives", default=["accuracy"])
    raw = root.data.get("objectives")
    out: list[str] = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        if item == COST:
            root.problem(f"objectives[{i}]", "'cost' is always an objective; do not list it")
        elif item in out:
            root.problem(f"objectives[{i}]", f"duplicate '{item}'")
        elif item in names:
            out.append(item)
    return tuple(out) if isinstance(raw, list) else tuple(names)


def _early_stop(fr: Reader) -> str:
    """``fanout.early_stop``: a mode name, or a bool (YAML reads ``off`` as false, so
    ``false``/``off`` is ``off`` and ``true`` is ``at_once``, its meaning before waves)."""
    value = fr.raw("early_stop", "at_once")
    if isinstance(value, bool):
        return "at_once" if value else "off"
    return fr.choice("early_stop", EARLY_STOP_MODES, "at_once")


def parse_config(data: Any, base_dir: Path | None = None, source: str = "config") -> Config:
    """Validate a loaded YAML document; raises :class:`ConfigError` listing every problem."""
    problems = Problems()
    root = Reader(data, "", problems, base_dir or Path.cwd())
    server = _server(root.sub("server", default={}))
    auth = _auth(root.sub("auth", default={}))
    simulator = _simulator(root.sub("simulator", default={}))
    models = tuple(_model(mr) for _, mr in root.list_of_readers("models", required=True))
    if not models and "models" in root.data:
        root.problem("models", "at least one model is required")
    objectives = _objectives(root)
    all_obj = (*objectives, COST)
    profiles = {str(name): parse_weights(raw, all_obj, f"profiles.{name}", problems)
                for name, raw in root.mapping("profiles", required=True).items()}
    default_profile = root.str("default_profile", required=True)
    cost_unit_usd = root.float("cost_unit_usd", 0.01, lo=1e-12)
    tasks = tuple(_task(tr) for _, tr in root.list_of_readers("tasks", required=True))
    if not tasks and "tasks" in root.data:
        root.problem("tasks", "at least one task is required")
    prompts_list = [_prompt(pr) for _, pr in root.list_of_readers("prompts", required=True)]
    if not prompts_list and "prompts" in root.data:
        root.problem("prompts", "at least one prompt is required")
    scorers = _scorers(root, objectives)
    fr = root.sub("fanout", default={})
    fanout = FanoutConfig(
        max_concurrency=fr.int("max_concurrency", 256, lo=1),
        per_request_concurrency=fr.int("per_request_concurrency", 32, lo=1),
        n_max=fr.int("n_max", 32, lo=1, hi=1024),
        sample_timeout_s=fr.float("sample_timeout_s", 60.0, lo=0.001),
        min_success=fr.int("min_success", 1, lo=1),
        early_stop=_early_stop(fr),
        first_wave=fr.float("first_wave", 0.0, lo=0.0, hi=1.0),
        stop_risk=fr.float("stop_risk", 0.05, lo=0.0, hi=0.5),
    )
    if fanout.min_success > fanout.n_max:
        fr.problem("min_success", f"must be <= fanout.n_max ({fanout.n_max})")
    cr = root.sub("classifier", default={})
    classifier = ClassifierConfig(
        path=cr.opt_path("path"),
        min_confidence=cr.float("min_confidence", 0.5, lo=0.0, hi=1.0),
        fallback_task=cr.str("fallback_task", "general"),
    )
    pr = root.sub("policies", default={})
    policies = PoliciesConfig(
        paths=tuple(pr.path_list("paths")),
        watch_interval_s=pr.float("watch_interval_s", 1.0, lo=0.05),
    )
    for reader in (root, fr, cr, pr):
        reader.done()

    # Cross-references; none against a section that is missing or empty (already reported).
    names = [m.name for m in models]
    _unique(names, "models", "name", problems)
    _unique([t.name for t in tasks], "tasks", "name", problems)
    _unique([p.id for p in prompts_list], "prompts", "id", problems)
    prompts = {p.id: p for p in prompts_list}
    if profiles and default_profile and default_profile not in profiles:
        problems.add("default_profile", f"unknown profile '{default_profile}'")
    for i, key in enumerate(auth.keys):
        if profiles and key.profile is not None and key.profile not in profiles:
            problems.add(f"auth.keys[{i}].profile", f"unknown profile '{key.profile}'")
    for i, m in enumerate(models):
        if m.embedded and not simulator.enabled:
            problems.add(f"models[{i}].api_base", "'embedded' needs simulator.enabled: true")
    for i, p in enumerate(prompts_list):
        if names and p.rewrite and p.rewrite.model and p.rewrite.model not in names:
            problems.add(f"prompts[{i}].rewrite.model", f"unknown model '{p.rewrite.model}'")
    for name, parts in scorers.items():
        for j, part in enumerate(parts):
            model = part.params.get("model")
            if names and part.kind == "judge" and model and model not in names:
                problems.add(f"scorers.{name}[{j}].model", f"unknown model '{model}'")
    _check_tasks(tasks, prompts, scorers, fanout.n_max, problems)
    if tasks and classifier.fallback_task not in [t.name for t in tasks]:
        problems.add("classifier.fallback_task", f"unknown task '{classifier.fallback_task}'")
    if problems:
        raise ConfigError(problems.lines, source)
    return Config(
        server=server, auth=auth, simulator=simulator, models=models, objectives=objectives,
        profiles=profiles, default_profile=default_profile, tasks=tasks, prompts=prompts,
        scorers=scorers, fanout=fanout, classifier=classifier, policies=policies,
        cost_unit_usd=cost_unit_usd,
    )


def _check_tasks(tasks: tuple[TaskConfig, ...], prompts: Mapping[str, PromptConfig],
                 scorers: Mapping[str, Any], n_max: int, problems: Problems) -> None:
    """Each task's extractor, scorer and ``action`` against the rest of the config; an action
    follows the rules a policy's action for the task does (:mod:`proxy.policy.load`)."""
    for i, t in enumerate(tasks):
        if t.aggregator == "majority" and t.extractor is None:
            problems.add(f"tasks[{i}].extractor", "required for the majority aggregator")
        if t.extractor == "regex" and t.answer_regex is None:
            problems.add(f"tasks[{i}].answer_regex", "required for the regex extractor")
        if t.scorer is not None and t.scorer not in scorers:
            problems.add(f"tasks[{i}].scorer", f"unknown scorer '{t.scorer}'")
        a, at = t.action, f"tasks[{i}].action"
        if a is None:
            continue
        if prompts and a.prompt and a.prompt not in prompts:
            problems.add(f"{at}.prompt", f"unknown prompt '{a.prompt}'")
        if a.n > n_max:
            problems.add(f"{at}.n", f"must be <= fanout.n_max ({n_max})")
        if a.scorer is not None and a.scorer not in scorers:
            problems.add(f"{at}.scorer", f"unknown scorer '{a.scorer}'")
        if a.aggregator == "majority" and t.extractor is None and t.aggregator != "majority":
            problems.add(f"{at}.aggregator", f"majority needs an answer extractor; task '{t.name}' has none")
        if a.aggregator == "best_of_n" and t.aggregator == "majority":
            problems.add(f"{at}.aggregator", f"task '{t.name}' is aggregated by majority; "
                                             "a best_of_n action is not allowed")


def _unique(values: list[str], section: str, key: str, problems: Problems) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            problems.add(f"{section}[{i}].{key}", f"duplicate '{value}'")
        seen.add(value)


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raises :class:`ConfigError` (never a traceback)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError([f"<root>: cannot read file ({exc.strerror})"], str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(["<root>: not UTF-8 text"], str(path)) from None
    try:
        data = parse_yaml(text)
    except YamlError as exc:
        raise ConfigError([exc.problem], str(path)) from None
    config = parse_config(data, path.resolve().parent, str(path))
    return _with_source(config, path.resolve())


def _with_source(config: Config, source: Path) -> Config:
    return replace(config, source=source)


def load_config_or_report(path: str | Path) -> Config | None:
    """For the CLI: :func:`load_config`, or ``None`` after printing one
    ``error: FILE: key.path: reason`` line per problem to stderr (the command then exits 2)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {path}: {problem}", file=sys.stderr)
        return None
