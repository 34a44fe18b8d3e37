"""Batch samplers: the four ways of mixing languages in a contrastive batch.

With in-batch negatives, the batch *is* the set of negatives, so the sampler
is the experimental variable. Each strategy is a rule for choosing the
(query language, passage language) of every pair in a batch:

* ``mono``: one language L per batch, X = Y = L.
* ``cross``: one ordered pair (X, Y), X ≠ Y, per batch.
* ``multi``: every pair draws its own (X, Y) from all ordered pairs, X = Y
  included, so a batch mixes languages freely (the usual multilingual recipe).
* ``hybrid``: a ``mono`` batch with probability ``hybrid.mono_ratio``, else ``cross``.

A strategy arrives as its settings object (:mod:`mlret.params.strategies`),
whose type names the strategy; each batch is built as one :class:`BatchKind`.

A batch's language (pair) gets a share proportional to n**alpha, n being the
number of training questions available for it in the profile; alpha < 1
up-samples low-resource languages. ``train.schedule`` decides how the shares
become batches:

* ``random``: every batch draws its kind (hybrid) and its language pair (every
  pair slot draws one, for multi) independently, with those probabilities.
  A language's realised exposure then varies between seeds, and a small
  language or pair may never appear.
* ``quota``: the counts are fixed in advance for the run's planned batches
  (steps × grad_accumulation) by :func:`apportion`, then shuffled by the seed,
  so seeds differ in the order of batches only. Hybrid apportions its batches
  to mono and cross by ``mono_ratio``; mono and cross batches then apportion
  their batches to languages (pairs); multi apportions *pair slots*
  (batches × batch_size) to all ordered pairs, and each batch takes the next
  ``batch_size`` slots of the shuffled sequence. A slot whose pair has no
  question left that fits the batch waits, in order, for the next batch, so
  the counts hold except for the slots of short batches, which end up
  unused at the end of the run. Past the planned batches the stream continues
  with another plan of the same size.

Within a language pair, questions are visited in a fresh random order each
time the pair's questions are used up.

Two questions whose answer sentences coincide in some language must not share
a batch (one's positive would be the other's false negative), and neither may
two translations of one question. Both are enforced through *answer groups*:
connected components of questions linked by a shared answer candidate. A batch
holds at most one pair per group.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from mlret.errors import MlretError
from mlret.params import HybridSettings, Strategy, StrategySettings
from mlret.training.pairs import LangPair, Pair, PairPool, PairWeights, apportion

__all__ = ["Batch", "BatchKind", "BatchSampler", "LangPair", "Pair", "PairPool", "apportion"]

Schedule = Literal["quota", "random"]
SCHEDULES: tuple[Schedule, ...] = ("quota", "random")
MULTI_RETRIES = 8  # misses a multi batch tolerates before it is left short


class BatchKind(str, Enum):
    """How one batch was built; a hybrid run builds mono and cross batches."""

    MONO = "mono"
    CROSS = "cross"
    MULTI = "multi"


_KINDS_OF = {
    Strategy.MONO: (BatchKind.MONO,),
    Strategy.CROSS: (BatchKind.CROSS,),
    Strategy.MULTI: (BatchKind.MULTI,),
    Strategy.HYBRID: (BatchKind.MONO, BatchKind.CROSS),
}


@dataclass
class Batch:
    kind: BatchKind
    pairs: list[Pair]
    hard_negatives: list[list[str]] = field(default_factory=list)  # candidate ids, per pair


class BatchSampler:
    """An endless, seeded stream of batches for one strategy over one profile."""

    def __init__(
        self,
        pool: PairPool,
        settings: StrategySettings,
        batch_size: int,
        alpha: float = 1.0,
        hard_negatives: int = 0,
        seed: int = 0,
        *,
        schedule: Schedule,
        total_batches: int | None = None,
    ) -> None:
        """``total_batches`` (the run's planned steps × grad_accumulation) is what a ``quota`` schedule apportions.

        The schedule has no default here: ``train.schedule`` in params.yaml decides it for every run.
        """
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; one of {SCHEDULES}")
        if schedule == "quota" and (total_batches is None or total_batches < 1):
            raise ValueError(f"a quota schedule needs the run's planned number of batches, got {total_batches!r}")
        self.pool = pool
        self.settings = settings
        self.batch_size = batch_size
        self.hard_negatives = hard_negatives
        self.schedule = schedule
        self.total_batches = total_batches
        self.rng = np.random.default_rng(seed)
        langs = pool.languages
        self.choices = {
            BatchKind.MONO: PairWeights(pool, [(x, x) for x in langs], alpha),
            BatchKind.CROSS: PairWeights(pool, [(x, y) for x in langs for y in langs if x != y], alpha),
            BatchKind.MULTI: PairWeights(pool, [(x, y) for x in langs for y in langs], alpha),
        }
        for kind in _KINDS_OF[settings.strategy]:
            if not self.choices[kind].pairs:
                raise MlretError(
                    f"strategy {settings.strategy}: the training table has no {kind.value} pairs (languages: {langs}).",
                    "Use a profile that keeps at least two languages for the same questions.",
                )
        self.queues: dict[LangPair, deque[str]] = {}
        self.pair_counts: Counter[LangPair] = Counter()
        self.kind_counts: Counter[str] = Counter()
        self.short_batches = 0
        # The quota plan still to come: batch kinds, and per kind indices into choices[kind].pairs
        # (for multi, one index per pair slot). Empty until the first batch, refilled when used up.
        self.planned_kinds: deque[BatchKind] = deque()
        self.planned_pairs: dict[BatchKind, deque[int]] = {kind: deque() for kind in _KINDS_OF[settings.strategy]}

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.next_batch()

    def next_batch(self) -> Batch:
        if self.schedule == "quota":
            kind, pairs = self._planned_batch()
        else:
            kind = self._batch_kind()
            if kind is BatchKind.MULTI:
                pairs = self._fill(lambda: self.choices[BatchKind.MULTI].draw(self.rng), retries=MULTI_RETRIES)
            else:
                language_pair = self.choices[kind].draw(self.rng)
                pairs = self._fill(lambda: language_pair, retries=0)
        if len(pairs) < self.batch_size:
            self.short_batches += 1
        self.kind_counts[kind.value] += 1
        self.pair_counts.update((p.query_lang, p.passage_lang) for p in pairs)
        return Batch(kind, pairs, self._hard_negatives(pairs))

    def _plan(self) -> None:
        """Append one run's worth of quota batches (``total_batches``), in an order shuffled by the seed."""
        assert self.total_batches is not None  # the constructor refuses a quota schedule without it
        kinds = _KINDS_OF[self.settings.strategy]
        if isinstance(self.settings, HybridSettings):
            mono = Fraction(repr(self.settings.mono_ratio))  # the decimal as written: 0.3 of 10 batches is 3
            kind_counts = apportion([mono, 1 - mono], self.total_batches)
        else:
            kind_counts = [self.total_batches]
        order = np.repeat(np.arange(len(kinds)), kind_counts)
        self.planned_kinds.extend(kinds[int(i)] for i in order[self.rng.permutation(len(order))])
        for kind, count in zip(kinds, kind_counts):
            units = count * self.batch_size if kind is BatchKind.MULTI else count
            if units == 0:
                continue
            slots = np.repeat(np.arange(len(self.choices[kind].pairs)), self.choices[kind].quota(units))
            self.planned_pairs[kind].extend(int(i) for i in slots[self.rng.permutation(len(slots))])

    def _planned_batch(self) -> tuple[BatchKind, list[Pair]]:
        if not self.planned_kinds:
            self._plan()
        kind = self.planned_kinds.popleft()
        planned, pairs_of = self.planned_pairs[kind], self.choices[kind].pairs
        if kind is not BatchKind.MULTI:
            language_pair = pairs_of[planned.popleft()]
            return kind, self._fill(lambda: language_pair, retries=0)
        pairs: list[Pair] = []
        used: set[int] = set()
        waiting: list[int] = []
        while len(pairs) < self.batch_size and planned and len(waiting) <= MULTI_RETRIES:
            slot = planned.popleft()
            qid = self._next_qid(pairs_of[slot], used)
            if qid is None:
                waiting.append(slot)  # no question of this pair fits this batch: the slot goes to the next one
                continue
            used.add(self.pool.group_of[qid])
            pairs.append(Pair(qid, *pairs_of[slot]))
        planned.extendleft(reversed(waiting))
        return kind, pairs

    def _batch_kind(self) -> BatchKind:
        settings = self.settings
        if isinstance(settings, HybridSettings):
            return BatchKind.MONO if self.rng.random() < settings.mono_ratio else BatchKind.CROSS
        (kind,) = _KINDS_OF[settings.strategy]
        return kind

    def _fill(self, draw: object, retries: int) -> list[Pair]:
        pairs: list[Pair] = []
        used: set[int] = set()
        misses = 0
        while len(pairs) < self.batch_size:
            language_pair = draw()  # type: ignore[operator]
            qid = self._next_qid(language_pair, used)
            if qid is None:
                misses += 1
                if misses > retries:
                    break  # the pair has no question left that fits: a short batch, counted
                continue
            used.add(self.pool.group_of[qid])
            pairs.append(Pair(qid, *language_pair))
        return pairs

    def _next_qid(self, language_pair: LangPair, used: set[int]) -> str | None:
        """Next question of this language pair whose answer group is not in the batch yet."""
        queue = self.queues.setdefault(language_pair, deque())
        members = self.pool.buckets[language_pair]
        deferred: list[str] = []
        found = None
        for _ in range(len(members)):
            if not queue:
                skip = set(deferred)
                queue.extend(q for q in (members[i] for i in self.rng.permutation(len(members))) if q not in skip)
                if not queue:
                    break
            qid = queue.popleft()
            if self.pool.group_of[qid] in used:
                deferred.append(qid)
            else:
                found = qid
                break
        queue.extendleft(reversed(deferred))
        return found

    def _hard_negatives(self, pairs: list[Pair]) -> list[list[str]]:
        if self.hard_negatives <= 0:
            return [[] for _ in pairs]
        # Any answer of any question in the batch, in any language, would be a false negative.
        positives = set().union(*(self.pool.answers_of[p.qid] for p in pairs))
        chosen = []
        for p in pairs:
            options = [c for c in self.pool.hard_negative_ids[(p.qid, p.passage_lang)] if c not in positives]
            take = min(self.hard_negatives, len(options))
            chosen.append(
                [options[i] for i in sorted(self.rng.choice(len(options), size=take, replace=False))] if take else []
            )
        return chosen

    def state_dict(self) -> dict[str, object]:
        """Everything needed to continue the stream exactly where it stopped, as plain JSON data.

        Plain data (language pairs as two-element lists, no tuples as keys) so a
        resumable checkpoint can store it as JSON instead of a pickle.
        """
        return {
            "rng": self.rng.bit_generator.state,
            "queues": [[x, y, list(queue)] for (x, y), queue in self.queues.items()],
            "pair_counts": [[x, y, n] for (x, y), n in self.pair_counts.items()],
            "kind_counts": dict(self.kind_counts),
            "short_batches": self.short_batches,
            "schedule": self._schedule_state(),
        }

    def _schedule_state(self) -> dict[str, Any] | None:
        """The rest of the quota plan; pairs as indices into the listed language pairs of each kind."""
        if self.schedule == "random":
            return None
        return {
            "total_batches": self.total_batches,
            "kinds": [kind.value for kind in self.planned_kinds],
            "pairs": {
                kind.value: {"language_pairs": [list(p) for p in self.choices[kind].pairs], "planned": list(planned)}
                for kind, planned in self.planned_pairs.items()
            },
        }

    def _load_schedule(self, state: dict[str, Any] | None) -> tuple[deque[BatchKind], dict[BatchKind, deque[int]]]:
        if self.schedule == "random" or state is None:
            if (self.schedule == "random") != (state is None):
                raise ValueError(f"sampler state of another schedule than {self.schedule!r}")
            return deque(), {kind: deque() for kind in self.planned_pairs}
        if int(state["total_batches"]) != self.total_batches:
            raise ValueError(f"sampler state plans {state['total_batches']} batches, this run {self.total_batches}")
        kinds = deque(BatchKind(str(kind)) for kind in state["kinds"])
        planned: dict[BatchKind, deque[int]] = {}
        for kind in self.planned_pairs:
            saved = state["pairs"][kind.value]
            if [tuple(p) for p in saved["language_pairs"]] != self.choices[kind].pairs:
                raise ValueError(f"sampler state lists other {kind.value} language pairs than this training table")
            planned[kind] = deque(int(i) for i in saved["planned"])
            if any(not 0 <= i < len(self.choices[kind].pairs) for i in planned[kind]):
                raise ValueError(f"sampler state plans {kind.value} language pairs this training table lacks")
        if not set(kinds) <= set(planned) or set(state["pairs"]) != {kind.value for kind in planned}:
            raise ValueError("sampler state plans batch kinds of another strategy")
        return kinds, planned

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; all or nothing (a malformed state raises and changes nothing)."""
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        queues = {(str(x), str(y)): deque(str(q) for q in queue) for x, y, queue in state["queues"]}
        pair_counts = Counter({(str(x), str(y)): int(n) for x, y, n in state["pair_counts"]})
        kind_counts = Counter({str(kind): int(n) for kind, n in state["kind_counts"].items()})
        short_batches = int(state["short_batches"])
        planned_kinds, planned_pairs = self._load_schedule(state["schedule"])
        unknown = [
            pair
            for pair, queue in queues.items()
            if pair not in self.pool.buckets or not set(queue) <= set(self.pool.buckets[pair])
        ]
        if unknown:
            raise ValueError(
                f"sampler state names language pairs or questions this training table lacks: {unknown[:3]}"
            )
        self.rng = rng
        self.queues, self.pair_counts, self.kind_counts = queues, pair_counts, kind_counts
        self.short_batches = short_batches
        self.planned_kinds, self.planned_pairs = planned_kinds, planned_pairs

    def language_sides(self) -> dict[str, int]:
        """Realised exposure: in how many pair sides (query side plus passage side) each language appeared so far."""
        sides: Counter[str] = Counter()
        for (x, y), n in self.pair_counts.items():
            sides[x] += n
            sides[y] += n
        return {lang: sides[lang] for lang in sorted(sides)}

    def language_share(self) -> dict[str, float]:
        """Realised share of each language over both sides (query and passage) of the pairs drawn so far."""
        sides = self.language_sides()
        total = sum(sides.values())
        return {lang: n / total for lang, n in sides.items()} if total else {}
