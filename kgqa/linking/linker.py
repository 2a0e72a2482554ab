"""The fine-tuned entity linker: BERT mention tagger -> alias index -> disambiguation.

1. The tagger marks spans (one numpy forward pass per batch of questions).
2. Each span gets candidates from the alias index, cheapest first:
     - neighbouring spans split by a word or two are first tried as one name ("Puss" + "Boots");
     - the name written in the question: the span itself, or a longer name around it ("The Terror"
       of "The Terror Within"), after normalisation (case, punctuation, accents, leading article);
     - names a typo away (fuzzy);
     - the span's edges moved by a word or two, exact then fuzzy;
     - the nearest names by embedding (FAISS).
   A question where no span names anything falls back to a capitalised name written exactly as in the
   graph ("which words describe Her").
3. Several candidates are ranked by string similarity (letter case counts only where the writer chose
   it), by whether the relation the question asks for first can be walked from the entity (a naive-Bayes
   prior over first steps learnt from the training paths, or relation words in the question), and by
   degree. A Mention carries the ranked candidates and a confidence: tagger score x string similarity x
   the top candidate's share; an inexact match with too little evidence is no mention at all.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgqa.graph.store import GraphStore
from kgqa.linking.aliases import AliasIndex, normalise_alias
from kgqa.linking.tagger import (METADATA_FILE, LabelledQuestion, MentionTagger, Span, TrainConfig, augment,
                                 read_bracketed_file, span_accuracy, split_validation, train_tagger)
from kgqa.types import Entity, Mention

log = logging.getLogger(__name__)

STEP_PRIOR_FILE = "step_prior.json"
_WORD = re.compile(r"\w+")
_ENTITY_SLOT = "ENTITYSLOT"

# how much each feature counts (chosen on MetaQA dev: original, lower-cased and typo questions)
W_STRING = 4.0
W_PATH = 2.0
W_DEGREE = 0.5
CASE_MISMATCH = 0.8   # string similarity of a name that differs from the mention only in letter case
NORMALISED = 0.85     # ... that equals it only after normalisation (punctuation, accents, articles)
BOUNDARY = 0.8        # ... found by moving the span's edges by a word or two
EMBEDDED = 0.8        # factor on the cosine similarity of an embedding neighbour
TOP_CANDIDATES = 5
CAPITALISED = 0.5     # tagger score given to a capitalised name found when the tagger marked none
MAX_NAME_WORDS = 12
LONGER = 1.0          # score bonus of a longer name that contains the tagged span
MIN_EVIDENCE = 0.5    # inexact matches need tagger score x similarity above this ("weather like" is not "Life")


# ---- which relation does the question walk first? -------------------------------------------------------


def question_features(question: str, spans: list[tuple[int, int]]) -> list[str]:
    """Lower-case words and word pairs of the question, each mention replaced by one slot word."""
    for start, end in sorted(spans, reverse=True):
        question = question[:start] + f" {_ENTITY_SLOT} " + question[end:]
    words = _WORD.findall(question.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


class StepPrior:
    """P(first step of the question's path | question words): multinomial naive Bayes over words and pairs."""

    def __init__(self, steps: list[str], log_prior: np.ndarray, log_likelihood: dict[str, np.ndarray]) -> None:
        self.steps = steps
        self.log_prior = log_prior
        self.log_likelihood = log_likelihood

    @classmethod
    def fit(cls, examples: list[LabelledQuestion], alpha: float = 0.1, min_count: int = 2) -> "StepPrior | None":
        labelled = [(question_features(e.text, e.spans), e.path.split("|")[0]) for e in examples if e.path]
        if not labelled:
            return None
        steps = sorted({step for _, step in labelled})
        index = {s: i for i, s in enumerate(steps)}
        class_count = np.zeros(len(steps))
        counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(steps)))
        for features, step in labelled:
            class_count[index[step]] += 1
            for f in features:
                counts[f][index[step]] += 1
        kept = {f: c for f, c in counts.items() if c.sum() >= min_count}
        totals = sum(kept.values()) + alpha * len(kept)
        return cls(steps, np.log(class_count / class_count.sum()),
                   {f: np.log((c + alpha) / totals) for f, c in kept.items()})

    def probabilities(self, question: str, spans: list[tuple[int, int]]) -> dict[str, float]:
        scores = self.log_prior.copy()
        for f in question_features(question, spans):
            if f in self.log_likelihood:  # words never seen in training say nothing
                scores += self.log_likelihood[f]
        scores = np.exp(scores - scores.max())
        scores /= scores.sum()
        return dict(zip(self.steps, scores.tolist()))

    def save(self, file: Path) -> None:
        data = {"steps": self.steps, "log_prior": self.log_prior.round(5).tolist(),
                "log_likelihood": {f: v.round(4).tolist() for f, v in self.log_likelihood.items()}}
        Path(file).write_text(json.dumps(data, ensure_ascii=False))

    @classmethod
    def load(cls, file: Path) -> "StepPrior | None":
        if not Path(file).exists():
            return None
        data = json.loads(Path(file).read_text())
        return cls(data["steps"], np.array(data["log_prior"]),
                   {f: np.array(v) for f, v in data["log_likelihood"].items()})


class RelationWordPrior:
    """Without training paths: steps whose relation's words (`directed_by` -> directed) the question uses."""

    def __init__(self, relations: list[str]) -> None:
        self.words = {r: [w for w in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", r.lower()) if len(w) > 2
                          and w not in {"has", "the", "and", "for", "with"}] for r in relations}

    def probabilities(self, question: str, spans: list[tuple[int, int]]) -> dict[str, float]:
        asked = {w for w in question_features(question, spans) if " " not in w and len(w) > 2}
        hits = [r for r, words in self.words.items()
                if any(a[:4] == w[:4] if min(len(a), len(w)) >= 4 else a == w for a in asked for w in words)]
        if not hits:
            return {}
        share = 1.0 / (2 * len(hits))
        return {step: share for r in hits for step in (r, r + "_inv")}


# ---- the linker ---------------------------------------------------------------------------------------


@dataclass
class Found:
    """The candidates found for one tagged span (whose edges may have moved to start..end)."""

    span: Span
    start: int
    end: int
    candidates: list[tuple[int, float]]  # (name id, string similarity)
    exact: bool  # the name is in the question as written (after normalisation), not a typo or neighbour


class BertLinker:
    """Links questions with the fine-tuned mention tagger, the alias index and feature-based disambiguation."""

    def __init__(self, graph: GraphStore, tagger: MentionTagger, aliases: AliasIndex,
                 step_prior: StepPrior | RelationWordPrior | None = None,
                 embed: Callable[[list[str]], np.ndarray] | None = None) -> None:
        self.graph = graph
        self.tagger = tagger
        self.aliases = aliases
        self.step_prior = step_prior or RelationWordPrior(graph.relations())
        self.embed = embed
        self._steps: dict[str, frozenset[str]] = {}
        self._exact_case: dict[str, list[int]] | None = None
        self._degrees: dict[str, int] = {}

    @classmethod
    def load(cls, model_dir: Path, graph: GraphStore, cache_dir: Path | None = None,
             embed: Callable[[list[str]], np.ndarray] | None = None) -> "BertLinker":
        model_dir = Path(model_dir)
        return cls(graph, MentionTagger(model_dir), AliasIndex.build(graph.entity_names(), cache_dir),
                   StepPrior.load(model_dir / STEP_PRIOR_FILE), embed)

    def link(self, question: str) -> list[Mention]:
        return self.link_batch([question])[0]

    def link_batch(self, questions: list[str]) -> list[list[Mention]]:
        """Mentions per question, most confident first; one tagger forward pass for the whole batch."""
        return self.link_spans(questions, self.tagger.tag_batch(questions))

    def link_spans(self, questions: list[str], tagged: list[list[Span]]) -> list[list[Mention]]:
        """Mentions for spans already tagged: candidates from the alias index, then disambiguation."""
        found: list[list[Found]] = []
        unresolved: list[tuple[int, int, Span]] = []
        for q, (question, spans) in enumerate(zip(questions, tagged)):
            row = self._resolve(question, sorted(spans, key=lambda s: s.start))
            if not any(f.candidates for f in row):
                row = self._capitalised_name(question) or row
            unresolved += [(q, k, f.span) for k, f in enumerate(row) if not f.candidates]
            found.append(row)
        if unresolved and self.embed is not None:
            texts = [questions[q][span.start:span.end] for q, _, span in unresolved]
            for (q, k, span), near in zip(unresolved, self.aliases.nearest(texts, self.embed)):
                found[q][k] = Found(span, span.start, span.end, [(i, s * EMBEDDED) for i, s in near], exact=False)
        return [self._mentions(question, row) for question, row in zip(questions, found)]

    # ---- candidates ------------------------------------------------------------------------------

    def _resolve(self, question: str, spans: list[Span]) -> list[Found]:
        """Candidates per span; neighbouring spans a few words apart are first tried as one name
        ("Puss" + "Boots" -> "Puss in Boots"), and kept together when the whole is a name."""
        out = []
        i = 0
        while i < len(spans):
            last = i
            while last + 1 < len(spans) and _near(question, spans[last].end, spans[last + 1].start):
                last += 1
            for j in range(last, i, -1):
                found = self._lookup(question, Span(spans[i].start, spans[j].end,
                                                    min(s.score for s in spans[i:j + 1])))
                if found.candidates:
                    out.append(found)
                    i = j + 1
                    break
            else:
                out.append(self._candidates(question, spans[i]))
                i += 1
        return out

    def _capitalised_name(self, question: str) -> list[Found]:
        """When no tagged span names anything: the longest stretch of the question that starts with a
        capital (not the sentence's) and is a name exactly as written ("which words describe Her")."""
        if self._exact_case is None:
            self._exact_case = {}
            for i, name in enumerate(self.aliases.names):
                self._exact_case.setdefault(name, []).append(i)
        words = list(_WORD.finditer(question))
        best: tuple[int, int] | None = None
        for a, first in enumerate(words):
            if first.start() == 0 or not question[first.start()].isupper():
                continue
            for b in range(min(len(words), a + MAX_NAME_WORDS) - 1, a - 1, -1):
                start, end = first.start(), words[b].end()
                if (best is None or end - start > best[1] - best[0]) and question[start:end] in self._exact_case:
                    best = (start, end)
                    break
        if best is None:
            return []
        start, end = best
        return [Found(Span(start, end, CAPITALISED), start, end,
                      [(i, 1.0) for i in self._exact_case[question[start:end]]], exact=True)]

    def _lookup(self, question: str, span: Span) -> Found:
        """Names written in the question: the span itself, or the longest name that contains it (the tagger
        may cut a title short: "The Terror" of "The Terror Within"); else names a typo away from the span."""
        options = []
        for start, end in [(span.start, span.end), *self._longest_superset(question, span.start, span.end)]:
            surface = question[start:end]
            ids = self.aliases.exact(surface)
            if ids:
                options.append(Found(span, start, end, [(i, self._similarity(question, surface, start, i))
                                                        for i in ids], exact=True))
        if len(options) == 2:  # the longer name, unless what the question asks fits the shorter one better
            probs = self.step_prior.probabilities(question, [(span.start, span.end)])
            return max(options, key=lambda f: max(self._score(self.aliases.names[i], sim, probs) for i, sim in
                                                  f.candidates) + (LONGER if f.end - f.start > span.end - span.start
                                                                    else 0.0))
        if options:
            return options[0]
        return Found(span, span.start, span.end, self.aliases.fuzzy(question[span.start:span.end]), exact=False)

    def _longest_superset(self, question: str, start: int, end: int) -> list[tuple[int, int]]:
        """The longest stretch around the span (up to 2 more words before it, 3 after) that is a name."""
        words = [(m.start(), m.end()) for m in _WORD.finditer(question)]
        inside = [k for k, (s, e) in enumerate(words) if s < end and e > start]
        if not inside:
            return []
        i, j = inside[0], inside[-1]
        grown = sorted(((left + right, left, right) for left in range(3) for right in range(4)
                        if (left or right) and i - left >= 0 and j + right < len(words)), reverse=True)
        key = normalise_alias(question[start:end])
        for _, left, right in grown:
            s, e = words[i - left][0] if left else start, words[j + right][1] if right else end
            # "the Chimpanzee" is the same name as "Chimpanzee": only real words make a longer name
            if normalise_alias(question[s:e]) != key and self.aliases.exact(question[s:e]):
                return [(s, e)]
        return []

    def _candidates(self, question: str, span: Span) -> Found:
        found = self._lookup(question, span)
        if found.candidates:
            return found
        # the tagger's edges can be off by a word or two: move them, exact matches first, then typos
        variants = _boundary_variants(question, span.start, span.end)
        exact = []
        for cost, start, end in variants:
            if exact and cost > exact[0][0]:
                break
            ids = self.aliases.exact(question[start:end])
            if ids:
                exact.append((cost, start, end, [(i, BOUNDARY) for i in ids]))
        if exact:  # several moves of the same size: the one whose best entity fits the question best
            probs = self.step_prior.probabilities(question, [(span.start, span.end)])
            _, start, end, found = max(exact, key=lambda x: max(self._score(self.aliases.names[i], s, probs)
                                                                 for i, s in x[3]))
            return Found(span, start, end, found, exact=True)
        best = Found(span, span.start, span.end, [], exact=False)
        for _, start, end in variants:
            fuzzy = self.aliases.fuzzy(question[start:end])
            if fuzzy and (not best.candidates or fuzzy[0][1] > best.candidates[0][1]):
                best = Found(span, start, end, fuzzy, exact=False)
        best.candidates = [(i, similarity * BOUNDARY) for i, similarity in best.candidates]
        return best

    def _similarity(self, question: str, surface: str, start: int, i: int) -> float:
        """1 for the name as written; less when only letter case, or only the normalised form, agrees.

        Case counts only where the writer chose it: not in an all-lower-case question, nor for the
        capital that opens a sentence.
        """
        name = self.aliases.names[i]
        if name.lower() != surface.lower():
            return NORMALISED
        if not any(ch.isupper() for ch in question[1:]):
            return 1.0
        if start == 0:
            name, surface = name[1:], surface[1:]
        return 1.0 if name == surface else CASE_MISMATCH

    # ---- disambiguation ----------------------------------------------------------------------------

    def _mentions(self, question: str, row: list[Found]) -> list[Mention]:
        mentions = []
        row = [r for r in row if r.candidates]
        contexts = _contexts(question, [(r.start, r.end) for r in row])
        for found, (lo, hi) in zip(row, contexts):
            span, start, end, candidates = found.span, found.start, found.end, found.candidates
            best: dict[str, tuple[float, float]] = {}  # name -> (score, string similarity)
            # what the words around this mention ask for (only needed when there is a choice)
            step_probs = None
            if len(candidates) > 1:
                step_probs = self.step_prior.probabilities(question[lo:hi], [(start - lo, end - lo)])
            for i, similarity in candidates:
                name = self.aliases.names[i]
                score = self._score(name, similarity, step_probs)
                if name not in best or score > best[name][0]:
                    best[name] = (score, similarity)
            ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:TOP_CANDIDATES]
            # evidence that the span names the top entity at all: the tagger's confidence x string similarity;
            # a name found only by a typo, a moved edge or an embedding needs enough of it
            similarity = ranked[0][1][1]
            evidence = span.score * similarity
            if not found.exact and evidence < MIN_EVIDENCE:
                continue
            scores = np.array([score for _, (score, _) in ranked])
            share = np.exp(scores - scores.max())
            share /= share.sum()
            mentions.append(Mention(question[start:end], start, end,
                                    tuple(Entity(name, self._degree(name)) for name, _ in ranked),
                                    round(float(evidence * share[0]), 4)))
        mentions.sort(key=lambda m: -m.confidence)
        return mentions

    def _score(self, name: str, similarity: float, step_probs: dict[str, float] | None) -> float:
        score = W_STRING * similarity + W_DEGREE * min(1.0, math.log1p(self._degree(name)) / math.log1p(1000))
        if step_probs:
            walkable = sum(step_probs.get(step, 0.0) for step in self._walkable(name))
            score += W_PATH * (1.0 + math.log(max(walkable, 0.01)) / math.log(100))
        return score

    def _walkable(self, name: str) -> frozenset[str]:
        steps = self._steps.get(name)
        if steps is None:
            steps = frozenset(str(step) for step in self.graph.next_steps_many([name], [()])[0])
            self._steps[name] = steps
        return steps

    def _degree(self, name: str) -> int:
        if name not in self._degrees:
            self._degrees[name] = self.graph.degree(name)
        return self._degrees[name]


def _near(question: str, end: int, start: int, max_words: int = 2) -> bool:
    """Whether two spans are separated by at most a few words and no sentence break."""
    gap = question[end:start]
    return len(_WORD.findall(gap)) <= max_words and not any(ch in gap for ch in "?!;")


def _contexts(question: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each mention, the part of the question nearer to it than to any other mention (whole words)."""
    order = sorted(range(len(spans)), key=lambda k: spans[k])
    cuts = [0]
    for a, b in zip(order, order[1:]):
        middle = (spans[a][1] + spans[b][0]) // 2
        space = question.rfind(" ", spans[a][1], middle + 1)
        cuts.append(space if space > 0 else middle)
    cuts.append(len(question))
    out: list[tuple[int, int]] = [(0, 0)] * len(spans)
    for position, k in enumerate(order):
        out[k] = (cuts[position], cuts[position + 1])
    return out


def _boundary_variants(question: str, start: int, end: int, reach: int = 2) -> list[tuple[int, int, int]]:
    """(words moved, start, end) of the span with its edges moved: one word less, or up to `reach` words
    more, at either edge; the smallest moves first, and at equal size a shorter span first."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(question)]
    inside = [k for k, (s, e) in enumerate(words) if s < end and e > start]
    if not inside:
        return []
    i, j = inside[0], inside[-1]
    moves = []
    for left in range(-reach, 2):  # >0: drop words on the left, <0: take words from the left
        for right in range(-1, reach + 1):  # >0: take words on the right, <0: drop words on the right
            a, b = i + left, j + right
            if (left, right) == (0, 0) or a < 0 or b >= len(words) or a > b or a > j or b < i:
                continue
            moves.append((abs(left) + abs(right), left < 0 or right > 0,
                          words[a][0] if left else start, words[b][1] if right else end))
    moves.sort(key=lambda m: (m[0], m[1]))
    return [(cost, s, e) for cost, _, s, e in moves]


# ---- training -----------------------------------------------------------------------------------------------


def train_linker(out_dir: Path, files: list[Path], config: TrainConfig, max_questions: int | None = None,
                 validation_fraction: float = 0.02, validation_size: int = 600,
                 on_progress: Callable[[int, int, float], None] | None = None) -> dict:
    """Train the mention tagger and the first-step prior on bracketed questions; save both to `out_dir`.

    Validation holds out whole topic entities; `max_questions` subsamples the rest (seeded) to bound the time.
    """
    examples = [example for file in files for example in read_bracketed_file(file)]
    train, held = split_validation(examples, validation_fraction, config.seed)
    rng = random.Random(config.seed)
    subset = rng.sample(train, max_questions) if max_questions and max_questions < len(train) else list(train)
    held = rng.sample(held, min(validation_size, len(held)))
    metadata = train_tagger(augment(subset, rng), held, out_dir, config, on_progress)
    prior = StepPrior.fit(train)
    if prior is not None:
        prior.save(Path(out_dir) / STEP_PRIOR_FILE)
    if held:
        noisy = augment(held, random.Random(config.seed + 1), typo=1.0, lower=1.0, no_entity=0.0, pair=0.0)
        tagger = MentionTagger(Path(out_dir))
        metadata["validation_lower_typo"] = span_accuracy(tagger.tag_batch([e.text for e in noisy]), noisy)
    metadata["files"] = [str(f) for f in files]
    metadata["questions_available"] = len(train)
    metadata["validation_holdout"] = f"{validation_fraction:.0%} of topic entities (hash with the seed)"
    metadata["step_prior_questions"] = sum(1 for e in train if e.path)
    Path(out_dir, METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata

