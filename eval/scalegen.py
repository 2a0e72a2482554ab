"""A synthetic knowledge graph of any size, for the scale benchmark (`eval/bench_scale.py`).

The shape imitates a real KG rather than a random one:

- Entities belong to classes (person, company, region, ...) whose sizes span orders of magnitude (a
  million people, fifty genders). Each relation has a type, a domain class and a range class, so a walk
  `has_parent_company` then `located_in_region` goes from a company to a region, and what may follow
  what is the schema's, not chance's. Domains favour big classes, ranges small ones.
- Relation frequencies follow a power law (`relation_skew`): a few relations hold most triples.
- Subjects and objects are drawn, within their class, from a bounded power law over a fixed random
  ranking of the class (Zipf exponents `subject_skew` and `skew`): the same few hubs are picked by every
  relation into their class. With the defaults, the top hub holds 4-8% of all triples (1M triples:
  79k / 71k / 37k edges with 20 / 200 / 2,000 relations; 10M triples, 2,000 relations: 422k).
- Entity names are made of syllables plus a number (`Talvoren Mirask 42`), unique; relation names
  are identifiers made from word lists (`has_parent_company`, `located_in_northern_region`), unique,
  one word (`[\\w.:-]+`) and never ending in `_inv`.

Triples are distinct and never self-loops; the same spec always gives the same file, byte for byte.
Everything is built as integer arrays with numpy and written in chunks (10M triples: 30 s on two busy
cores, 0.9 GB):

    .venv/bin/python eval/scalegen.py --triples 1000000 --relations 200 --out /tmp/kgqa-scale/g.txt
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

GENERATOR_VERSION = 1
MAX_TOP_UP_ROUNDS = 60
SKEWED_ROUNDS = 6
MAX_FILL = 0.5

CLASS_NOUNS = (
    "person", "company", "city", "region", "country", "film", "book", "album", "song", "team", "league",
    "school", "university", "hospital", "river", "mountain", "airport", "station", "product", "brand",
    "language", "religion", "party", "award", "event", "festival", "museum", "building", "ship", "aircraft",
    "species", "disease", "drug", "gene", "protein", "journal", "newspaper", "website", "software", "game",
    "band", "genre", "instrument", "vehicle", "planet", "currency", "law", "treaty",
)
VERB_PHRASES = (
    "located_in", "owned_by", "founded_by", "member_of", "part_of", "based_in", "born_in", "produced_by",
    "managed_by", "sponsored_by", "named_after", "influenced_by", "succeeded_by", "preceded_by", "awarded_to",
    "written_by", "directed_by", "published_by", "operated_by", "built_by", "designed_by", "funded_by",
    "licensed_to", "played_by", "used_by", "sold_in", "spoken_in", "buried_in", "educated_at", "employed_by",
    "affiliated_with", "allied_with", "compared_to", "derived_from", "followed_by", "hosted_by",
    "inspired_by", "listed_on", "released_by", "treated_with",
)
ADJECTIVES = (
    "parent", "main", "former", "current", "original", "official", "primary", "secondary", "northern",
    "southern", "eastern", "western", "central", "local", "national", "regional", "founding", "largest",
    "oldest", "rival", "partner", "sister", "related", "notable", "associated", "early", "late", "home",
    "second", "first",
)
SYLLABLES = (
    "ka", "lo", "mi", "ra", "ven", "dor", "tal", "is", "bel", "mar", "ros", "an", "el", "or", "ul", "then",
    "gar", "sil", "vi", "na", "tor", "qua", "fen", "lis", "dra", "mon", "zel", "pra", "cor", "hal", "bri",
    "sen", "tu", "ga", "rin", "wes", "ko", "mel", "dan", "fi", "jor", "lu", "nev", "os", "pel", "sar",
    "tem", "ur", "val", "yn", "ber", "cal", "dun", "es", "har", "ith", "kel", "mor", "nor", "rask",
)
NAME_NUMBERS = 99
SMALLEST_CLASS = 50
OVERSAMPLE = 1.1


@dataclass(frozen=True)
class ScaleSpec:
    """What to generate; the same spec always gives the same graph."""

    triples: int
    relations: int
    skew: float = 1.2
    """Zipf exponent of object choice within a class (0: uniform; larger: bigger hubs)."""
    subject_skew: float = 0.8
    """Zipf exponent of subject choice within a class (facts are spread more evenly over their subjects)."""
    relation_skew: float = 1.0
    """Zipf exponent of relation frequencies."""
    entities: int = 0
    """Entity names to draw from; 0: triples // 8 (some, in the tail of each class, get no triple)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.relations < 1 or self.triples < self.relations:
            raise ValueError(f"need at least one relation and one triple per relation "
                             f"(asked {self.triples} triples, {self.relations} relations)")
        if min(self.skew, self.subject_skew, self.relation_skew) < 0:
            raise ValueError("skews are Zipf exponents, 0 or more")

    @property
    def n_entities(self) -> int:
        return self.entities or max(100, self.triples // 8)

    @property
    def n_classes(self) -> int:
        """About sqrt(relations) + 2 classes, so that each class has a few relations in and out."""
        return min(len(CLASS_NOUNS), max(3, round(math.sqrt(self.relations)) + 2))

    @property
    def name(self) -> str:
        return (f"scale-t{self.triples}-r{self.relations}-z{self.skew:g}-sz{self.subject_skew:g}"
                f"-rz{self.relation_skew:g}-e{self.n_entities}-s{self.seed}")


@dataclass
class ScaleGraph:
    """A generated graph as integer arrays, with its names and schema."""

    spec: ScaleSpec
    subjects: np.ndarray
    relations: np.ndarray
    objects: np.ndarray
    entity_names: list[str]
    relation_names: list[str]
    class_names: list[str]
    entity_class: np.ndarray
    domain: np.ndarray
    """Class id of each relation's subjects."""
    range: np.ndarray
    """Class id of each relation's objects."""

    @cached_property
    def degrees(self) -> np.ndarray:
        """Edges per entity, both directions."""
        n = len(self.entity_names)
        return np.bincount(self.subjects, minlength=n) + np.bincount(self.objects, minlength=n)

    def relation_counts(self) -> np.ndarray:
        return np.bincount(self.relations, minlength=len(self.relation_names))

    def summary(self) -> dict[str, object]:
        """Counts and the skew actually reached: top hub degree, relation shares."""
        degrees, counts = self.degrees, self.relation_counts()
        used = degrees[degrees > 0]
        return {"triples": int(len(self.subjects)), "relations": len(self.relation_names),
                "entities": int(len(used)), "classes": len(self.class_names),
                "top_hub_degree": int(degrees.max()), "median_degree": float(np.median(used)),
                "top_relation_triples": int(counts.max()), "median_relation_triples": float(np.median(counts))}


def power_law_ranks(rng: np.random.Generator, sizes: np.ndarray, skew: float) -> np.ndarray:
    """One rank in [0, size) per entry of `sizes`, P(rank k) ~ (k + 1) ** -skew (continuous, floored)."""
    u = rng.random(len(sizes))
    top = sizes.astype(np.float64) + 1.0
    if abs(skew - 1.0) < 1e-9:
        x = np.exp(u * np.log(top))
    else:
        a = 1.0 - skew
        x = (u * (top ** a - 1.0) + 1.0) ** (1.0 / a)
    return np.minimum(np.floor(x).astype(np.int64) - 1, sizes - 1)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy's hash-based unique is many times slower on 10M integers)."""
    ordered = np.sort(values)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if len(ordered) else ordered


def power_law_weights(rng: np.random.Generator, n: int, skew: float) -> np.ndarray:
    """n weights summing to 1, the k-th largest ~ k ** -skew, in random order."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -skew
    return rng.permutation(weights / weights.sum())


def class_sizes(n_classes: int, n_entities: int, smallest: int = SMALLEST_CLASS) -> np.ndarray:
    """Entities per class, largest first, geometrically spaced down to about `smallest` (people ... genders)."""
    weights = (smallest / n_entities) ** (np.arange(n_classes) / max(1, n_classes - 1))
    sizes = np.maximum(smallest, np.floor(weights / weights.sum() * n_entities).astype(np.int64))
    sizes[0] += max(0, n_entities - int(sizes.sum()))
    return sizes


def relation_schema(rng: np.random.Generator, n_relations: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Domain and range class of each relation (classes are numbered largest first). Domains favour big
    classes (facts are about the many), ranges small ones (they point at the few: a country, a genre),
    which is where hubs come from: weights 1 / rank, ranked by size and by smallness."""
    by_size = 1.0 / np.arange(1, n_classes + 1)
    domain = rng.choice(n_classes, n_relations, p=by_size / by_size.sum())
    return domain, rng.choice(n_classes, n_relations, p=by_size[::-1] / by_size.sum())


def relation_name_pool(noun: str) -> list[str]:
    """Relation names whose objects are `noun`s, shortest patterns first."""
    short = [f"has_{adj}_{noun}" for adj in ADJECTIVES] + [f"{verb}_{noun}" for verb in VERB_PHRASES]
    long = [f"{verb}_{adj}_{noun}" for verb, adj in itertools.product(VERB_PHRASES, ADJECTIVES)]
    return short + long


def relation_names(rng: np.random.Generator, ranges: np.ndarray, class_names: list[str]) -> list[str]:
    """A unique name per relation that says what its objects are (`located_in_region`)."""
    names: list[str] = []
    for c in range(len(class_names)):
        wanted = int((ranges == c).sum())
        pool = relation_name_pool(class_names[c])
        if wanted > len(pool):
            raise ValueError(f"{wanted} relations into class {class_names[c]!r}: the word lists make {len(pool)}")
        short = rng.permutation(len(ADJECTIVES) + len(VERB_PHRASES))
        long = len(short) + rng.permutation(len(pool) - len(short))
        names.extend(pool[i] for i in np.concatenate([short, long])[:wanted])
    order = np.argsort(ranges, kind="stable")
    result = [""] * len(ranges)
    for position, relation in enumerate(order):
        result[relation] = names[position]
    return result


def entity_names(rng: np.random.Generator, n: int) -> list[str]:
    """n unique names of two syllable words and a number, e.g. `Talvoren Mirask 42`."""
    words = ["".join(parts).capitalize() for k in (2, 3) for parts in itertools.product(SYLLABLES, repeat=k)]
    space = len(words) ** 2 * NAME_NUMBERS
    keys = np.empty(0, np.int64)
    while len(keys) < n:
        keys = sorted_unique(np.concatenate([keys, rng.integers(0, space, n - len(keys) + 16)]))
    keys = rng.permutation(keys)[:n]
    number = keys % NAME_NUMBERS + 1
    pair = keys // NAME_NUMBERS
    first, second = pair // len(words), pair % len(words)
    return [f"{words[a]} {words[b]} {c}" for a, b, c in zip(first.tolist(), second.tolist(), number.tolist())]


class _Sampler:
    """Draws (relation, subject, object) keys; entities are drawn by class from a power law over a fixed ranking."""

    def __init__(self, rng: np.random.Generator, sizes: np.ndarray, domain: np.ndarray, range_: np.ndarray,
                 subject_skew: float, object_skew: float) -> None:
        self.rng, self.sizes, self.domain, self.range = rng, sizes, domain, range_
        self.subject_skew, self.object_skew = subject_skew, object_skew
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.rank_to_entity = np.concatenate([off + rng.permutation(size) for off, size in zip(self.offsets, sizes)])
        self.n = int(sizes.sum())

    def entities(self, classes: np.ndarray, skew: float) -> np.ndarray:
        ranks = power_law_ranks(self.rng, self.sizes[classes], skew)
        return self.rank_to_entity[self.offsets[classes] + ranks]

    def capacity(self) -> np.ndarray:
        """Distinct (subject, object) pairs each relation can have, self-loops excluded."""
        size_d, size_r = self.sizes[self.domain], self.sizes[self.range]
        return size_d * size_r - np.where(self.domain == self.range, size_d, 0)

    def keys(self, per_relation: np.ndarray, flat: bool = False) -> np.ndarray:
        """Distinct keys `(r * n + s) * n + o` with `per_relation[r]` draws of relation r, self-loops dropped;
        `flat`: entities uniformly within their class instead of by the power law."""
        rel = np.repeat(np.arange(len(per_relation), dtype=np.int64), per_relation)
        subj = self.entities(self.domain[rel], 0.0 if flat else self.subject_skew)
        obj = self.entities(self.range[rel], 0.0 if flat else self.object_skew)
        keep = subj != obj
        return sorted_unique((rel[keep] * self.n + subj[keep]) * self.n + obj[keep])


def distinct_triples(sampler: _Sampler, counts: np.ndarray) -> np.ndarray:
    """Distinct keys, exactly `counts[r]` of relation r: draw a little more than asked, top up the relations
    still short (drawing twice as many each round: the pairs left are the rare ones; after a few rounds the
    last few are drawn uniformly, so that a relation that fills much of its class pairs ends), then keep
    `counts[r]` of each relation's keys at random."""
    n2 = sampler.n * sampler.n
    keys = np.empty(0, np.int64)
    factor = OVERSAMPLE
    for round_ in range(MAX_TOP_UP_ROUNDS):
        missing = np.maximum(counts - np.bincount(keys // n2, minlength=len(counts)), 0)
        if not missing.any():
            return keep_per_relation(sampler.rng, keys, counts, n2)
        draws = np.ceil(missing * factor).astype(np.int64)
        keys = merge_sorted(keys, sampler.keys(draws, flat=round_ >= SKEWED_ROUNDS))
        factor = min(2 * factor, 8.0)
    raise ValueError(f"cannot place {int(counts.sum()):,} distinct triples: {int(missing.sum()):,} missing after "
                     f"{MAX_TOP_UP_ROUNDS} rounds (use more entities or a smaller skew)")


def merge_sorted(keys: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """The sorted union of two sorted arrays of distinct keys, without re-sorting `keys`."""
    if not len(keys):
        return fresh
    positions = np.searchsorted(keys, fresh)
    is_new = (positions >= len(keys)) | (keys[np.minimum(positions, len(keys) - 1)] != fresh)
    return np.insert(keys, positions[is_new], fresh[is_new])


def keep_per_relation(rng: np.random.Generator, keys: np.ndarray, counts: np.ndarray, n2: int) -> np.ndarray:
    """A random `counts[r]` of the (sorted) keys of each relation r."""
    rel = keys // n2
    order = np.argsort(rel + rng.random(len(keys)))  # by relation, at random within one
    rank = np.arange(len(keys)) - np.searchsorted(rel, rel[order])
    return keys[order[rank < counts[rel[order]]]]


def relation_counts(rng: np.random.Generator, spec: ScaleSpec, room: np.ndarray) -> np.ndarray:
    """Triples per relation: at least one each, the rest by power-law weights, none past its `room`
    (what a relation cannot hold goes to the others, by their weights)."""
    if spec.triples > room.sum():
        raise ValueError(f"{spec.triples:,} triples do not fit in the class pairs of {spec.relations} relations "
                         f"over {spec.n_entities:,} entities (room for {int(room.sum()):,}); use more entities")
    weights = power_law_weights(rng, spec.relations, spec.relation_skew)
    counts = np.minimum(1 + rng.multinomial(spec.triples - spec.relations, weights), room)
    while (left := spec.triples - int(counts.sum())) > 0:
        open_ = weights * (counts < room)
        counts = np.minimum(counts + rng.multinomial(left, open_ / open_.sum()), room)
    return counts


def generate(spec: ScaleSpec) -> ScaleGraph:
    """Build the graph of `spec` in memory, deterministically."""
    rng = np.random.default_rng(spec.seed)
    k, n = spec.n_classes, spec.n_entities
    if spec.relations * n * n >= 2 ** 62:
        raise ValueError(f"{n:,} entities x {spec.relations:,} relations is too many for 64-bit triple keys")
    class_names = [CLASS_NOUNS[i] for i in rng.permutation(len(CLASS_NOUNS))[:k]]
    sizes = class_sizes(k, n)
    domain, range_ = relation_schema(rng, spec.relations, k)
    rel_names = relation_names(rng, range_, class_names)
    sampler = _Sampler(rng, sizes, domain, range_, spec.subject_skew, spec.skew)
    counts = relation_counts(rng, spec, np.floor(MAX_FILL * sampler.capacity()).astype(np.int64))
    keys = rng.permutation(distinct_triples(sampler, counts))
    n_all = sampler.n
    return ScaleGraph(spec=spec, subjects=((keys // n_all) % n_all).astype(np.int32),
                      relations=(keys // (n_all * n_all)).astype(np.int32), objects=(keys % n_all).astype(np.int32),
                      entity_names=entity_names(rng, n_all), relation_names=rel_names, class_names=class_names,
                      entity_class=np.repeat(np.arange(k), sizes).astype(np.int32), domain=domain, range=range_)


def write_triples(graph: ScaleGraph, path: Path, chunk: int = 500_000) -> None:
    """`subject|relation|object` lines, written in chunks (to `path.tmp`, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entities = np.array(graph.entity_names, dtype=object)
    relations = np.array(graph.relation_names, dtype=object)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for start in range(0, len(graph.subjects), chunk):
            part = slice(start, start + chunk)
            columns = (entities[graph.subjects[part]].tolist(), relations[graph.relations[part]].tolist(),
                       entities[graph.objects[part]].tolist())
            handle.write("\n".join(map("|".join, zip(*columns))) + "\n")
    tmp.replace(path)


def meta_file(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def ensure_file(spec: ScaleSpec, path: Path) -> tuple[ScaleGraph, bool]:
    """The graph of `spec`, its triples written to `path` unless a file made from the same spec is there.

    Returns the graph and whether the file was (re)written. A JSON sidecar (`path.json`) records the spec,
    the generator version and the summary, and is what marks the file as complete.
    """
    graph = generate(spec)
    wanted = {"spec": asdict(spec), "version": GENERATOR_VERSION}
    meta = meta_file(path)
    if path.exists() and meta.exists():
        known = json.loads(meta.read_text())
        if {k: known.get(k) for k in wanted} == wanted:
            return graph, False
    write_graph(graph, path)
    return graph, True


def write_graph(graph: ScaleGraph, path: Path) -> None:
    """The triples file and its JSON sidecar (written last: it marks the file as complete)."""
    write_triples(graph, path)
    meta = {"spec": asdict(graph.spec), "version": GENERATOR_VERSION, "summary": graph.summary()}
    meta_file(path).write_text(json.dumps(meta, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triples", type=int, required=True)
    parser.add_argument("--relations", type=int, required=True)
    parser.add_argument("--skew", type=float, default=ScaleSpec.skew, help="Zipf exponent of object choice")
    parser.add_argument("--subject-skew", type=float, default=ScaleSpec.subject_skew)
    parser.add_argument("--relation-skew", type=float, default=ScaleSpec.relation_skew)
    parser.add_argument("--entities", type=int, default=0, help="entity names to draw from (default: triples // 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="the triples file (subject|relation|object)")
    args = parser.parse_args()
    spec = ScaleSpec(args.triples, args.relations, args.skew, args.subject_skew, args.relation_skew, args.entities,
                     args.seed)
    started = time.perf_counter()
    graph = generate(spec)
    generated = time.perf_counter()
    write_graph(graph, args.out)
    print(json.dumps(graph.summary() | {"generate_s": round(generated - started, 2),
                                        "write_s": round(time.perf_counter() - generated, 2), "file": str(args.out)}))


if __name__ == "__main__":
    main()
