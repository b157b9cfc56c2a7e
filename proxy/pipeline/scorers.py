"""Best-of-N scorers: one score in [0, 1] per objective per sample, and the utility.

Kinds (``ObjectiveScorer.kind``):

- ``length`` — brevity: 1 at or under ``target_tokens`` (default 100) words, then
  ``target / words``;
- ``regex`` — 1 when ``pattern`` matches the response, else 0;
- ``json`` — 1 when the response (or its fenced ```` ``` ```` block) is valid JSON, else 0;
- ``keywords`` — the fraction of ``keywords`` present (case-insensitive);
- ``judge`` — an LLM judge (``model``) asked with a rubric (``rubric`` with ``{objective}``,
  ``{prompt}``, ``{response}``) for a 1-10 score, at temperature 0 with ``max_tokens`` (64
  unless set; null: none); :func:`parse_judge_score` reads it and maps ``k`` to
  ``(k - 1) / 9``. Junk, failure or timeout (a reply cut before its score too) gives ``None``;
- ``http`` — ``POST url {"prompt", "response"}``, reads ``score`` (clipped to [0, 1]).

A ``None`` score counts as the neutral 0.5 and as a scorer error (``judge_errors`` for judges).
Judge and http calls for all samples run concurrently; judges' usage and cost are returned.

Utility of a sample: ``sum_o w_o * score_o - w_cost * cost_usd / cost_unit_usd``; the best
sample has the highest utility, ties going to the lowest index.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from proxy.config import COST, Config, ObjectiveScorer
from proxy.errors import UpstreamError
from proxy.upstream.base import Upstream, Usage

__all__ = ["DEFAULT_RUBRIC", "NEUTRAL", "ScoreReport", "Scorers", "best_index", "parse_judge_score",
           "utility"]

NEUTRAL = 0.5
DEFAULT_RUBRIC = (
    "Rate the response below for {objective} on a scale of 1 to 10, where 10 is best.\n\n"
    "Request:\n{prompt}\n\nResponse:\n{response}\n\n"
    "Reply with 'Score: <1-10>' and nothing else."
)
_SCORE_RULES = (
    re.compile(r"score\s*[:=]?\s*\**\s*(\d+(?:\.\d+)?)", re.I),
    re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*/\s*10\b"),  # one try per digit run, not per digit
    re.compile(r"\*\*\s*(\d+(?:\.\d+)?)\s*\*\*"),
    re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d.])"),
)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_judge_score(text: str) -> float | None:
    """A judge reply's 1-10 score mapped to [0, 1]; None for junk. Tried in order: "Score: 7",
    "7/10", "**8**", the first number in 1..10."""
    for i, rule in enumerate(_SCORE_RULES):
        for match in rule.finditer(text):
            value = float(match.group(1))
            if 1.0 <= value <= 10.0:
                return (value - 1.0) / 9.0
            if i < len(_SCORE_RULES) - 1:
                break  # an explicit score out of range: try the next rule
    return None


def _length(text: str, params: Mapping[str, Any]) -> float:
    target = max(int(params.get("target_tokens", 100)), 1)
    words = len(text.split())
    return 1.0 if words <= target else target / words


def _json_ok(text: str) -> float:
    fenced = _FENCE.search(text)
    candidate = fenced.group(1) if fenced else text
    try:
        json.loads(candidate.strip())
    except ValueError:
        return 0.0
    return 1.0


def _keywords(text: str, params: Mapping[str, Any]) -> float:
    words = [str(k).lower() for k in params.get("keywords", [])]
    low = text.lower()
    return sum(k in low for k in words) / len(words) if words else 0.0


@dataclass
class ScoreReport:
    """Per-sample scores (objective -> score, ``None`` = error) plus the scoring calls' cost."""

    scores: list[dict[str, float | None]]
    usage: Usage = Usage()
    cost_usd: float = 0.0
    judge_errors: int = 0
    errors: int = 0
    details: list[str] = field(default_factory=list)


def utility(scores: Mapping[str, float | None], weights: Mapping[str, float], cost_usd: float,
            cost_unit_usd: float) -> float:
    """``sum_o w_o * s_o - w_cost * cost_usd / cost_unit_usd``; a None score counts as 0.5."""
    total = sum(w * (NEUTRAL if scores.get(o) is None else float(scores[o] or 0.0))
                for o, w in weights.items() if o != COST and o in scores)
    return total - weights.get(COST, 0.0) * cost_usd / cost_unit_usd


def best_index(utilities: Sequence[float]) -> int:
    """The index of the highest utility, lowest index on ties."""
    best = 0
    for i, u in enumerate(utilities):
        if u > utilities[best]:
            best = i
    return best


class Scorers:
    """Scores samples with a named scorer from config; holds one shared HTTP session."""

    def __init__(self, config: Config, upstream: Upstream) -> None:
        self.config = config
        self.upstream = upstream
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def score(self, scorer: str | None, prompt: str, responses: Sequence[str]) -> ScoreReport:
        """Every objective of ``scorer`` for every response (concurrently across samples)."""
        parts = self.config.scorers.get(scorer or "", ())
        report = ScoreReport(scores=[{} for _ in responses])
        jobs: list[tuple[int, str, str, asyncio.Future[Any]]] = []
        for part in parts:
            for i, text in enumerate(responses):
                if part.kind == "length":
                    report.scores[i][part.objective] = _length(text, part.params)
                elif part.kind == "regex":
                    found = re.search(str(part.params["pattern"]), text)
                    report.scores[i][part.objective] = 1.0 if found else 0.0
                elif part.kind == "json":
                    report.scores[i][part.objective] = _json_ok(text)
                elif part.kind == "keywords":
                    report.scores[i][part.objective] = _keywords(text, part.params)
                elif part.kind == "judge":
                    jobs.append((i, "judge", part.objective,
                                 asyncio.ensure_future(self._judge(part, prompt, text))))
                    report.scores[i].setdefault(part.objective, None)
                elif part.kind == "http":
                    jobs.append((i, "http", part.objective,
                                 asyncio.ensure_future(self._reward(part, prompt, text))))
                    report.scores[i].setdefault(part.objective, None)
        if jobs:
            try:
                results = await asyncio.gather(*(f for *_, f in jobs), return_exceptions=True)
            except asyncio.CancelledError:
                for *_, f in jobs:
                    f.cancel()
                raise
            for (i, kind, objective, _), result in zip(jobs, results):
                score, usage, cost = (None, Usage(), 0.0)
                if isinstance(result, BaseException):
                    report.details.append(f"{kind}: {result}")
                else:
                    score, usage, cost = result
                report.usage, report.cost_usd = report.usage + usage, report.cost_usd + cost
                if score is None:
                    report.errors += 1
                    report.judge_errors += kind == "judge"
                report.scores[i][objective] = score
        return report

    async def _judge(self, part: ObjectiveScorer, prompt: str,
                     response: str) -> tuple[float | None, Usage, float]:
        model = self.config.model(str(part.params["model"]))
        if model is None:
            raise UpstreamError(f"judge model {part.params['model']!r} is not configured")
        rubric = str(part.params.get("rubric") or DEFAULT_RUBRIC)
        content = (rubric.replace("{objective}", part.objective).replace("{prompt}", prompt)
                   .replace("{response}", response))
        timeout = float(part.params.get("timeout_s", 30.0))
        body: dict[str, Any] = {"model": model.name, "temperature": 0,
                                "messages": [{"role": "user", "content": content}]}
        if part.params.get("max_tokens") is not None:
            body["max_tokens"] = part.params["max_tokens"]
        try:
            async with asyncio.timeout(timeout):
                done = await self.upstream.complete(model, body, timeout_s=timeout)
        except (UpstreamError, TimeoutError):
            return None, Usage(), 0.0
        texts = done.texts
        return (parse_judge_score(texts[0]) if texts else None), done.usage, done.cost_usd

    async def _reward(self, part: ObjectiveScorer, prompt: str,
                      response: str) -> tuple[float | None, Usage, float]:
        timeout = aiohttp.ClientTimeout(total=float(part.params.get("timeout_s", 10.0)))
        try:
            async with self._http().post(str(part.params["url"]),
                                         json={"prompt": prompt, "response": response},
                                         timeout=timeout) as resp:
                if resp.status != 200:
                    return None, Usage(), 0.0
                data = await resp.json(content_type=None)
            score = float(data["score"])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
            return None, Usage(), 0.0
        return min(max(score, 0.0), 1.0), Usage(), 0.0
