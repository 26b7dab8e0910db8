"""Conflicting rules: imperative clauses on the same action and object with opposite polarity
("do not resize images in place" / "resize the images in place") or incompatible frequency
("always run the health check before every answer" / "run the health check only when ...").

A rule-based reading, no language model: a clause is imperative when, after an optional lead-in phrase
("Before training,") and markers ("always", "never", "do not"), its first word is a known action verb.
Its topic is that verb plus the content words of its object (up to the first preposition or marker).
Pairs are listed for a person to decide; nothing is changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations

import pandas as pd

from .inventory import KbFile
from .staleness import stem

TOKEN = re.compile(r"[a-z0-9]+(?:['._-][a-z0-9]+)*")
CLAUSE_END = re.compile(r"(?<=[.!?;:])\s+")
VERBS = set(
    "add answer archive ask attach back call caption change check choose clean close commit compare connect copy "
    "create delete describe download drop edit enable disable expose fix generate give hash include install keep kill "
    "leave let load log look mask merge mix monitor mount move note open paste pick pin print publish pull push put "
    "read remove rename replace rerun reply resize restart review rotate run save say search send set show split "
    "start stop tag terminate test train trust update upgrade upload use verify wait watch write".split()
)
NEGATIONS = ("never", "do not", "don't", "dont", "avoid", "skip")  # before the verb: the rule forbids the action
SKIPPING = {"avoid", "skip"}  # these replace the verb: "skip the drift check" forbids whatever verb the other rule uses
ALWAYS = {"always", "every", "each"}
RESTRICTED = {"only", "once", "unless", "rarely", "occasionally"}
LEAD_MARKERS = {"always", "never", "only", "first", "then", "please", "also", "just", "do", "not", "don't", "dont"}
OBJECT_STOP = {  # end an object: prepositions, conjunctions, frequency markers
    "at", "in", "on", "to", "from", "with", "without", "before", "after", "when", "while", "if", "unless", "until",
    "for", "by", "against", "into", "next", "as", "than", "so", "because", "or", "and", "then", "every", "each",
    "only", "once", "but", "whenever", "instead", "first",
}
FILLER = {"a", "an", "the", "it", "them", "this", "that", "these", "those", "your", "its", "their", "our", "any",
          "all", "some", "one", "by", "hand", "directly", "again", "up", "out"}


@dataclass(frozen=True)
class Rule:
    """One imperative clause: where it is, what it does to what, and how strongly or how often."""

    file: str
    line: int
    text: str
    verb: str  # stemmed; "" for skip/avoid, which negate any verb on the same object
    topic: frozenset[str]  # stemmed content words of the object
    object: str  # the same words as written, for people
    negative: bool
    frequency: str  # "always", "restricted" or ""


def _clauses(f: KbFile):
    """(line, clause) for every clause of every prose paragraph (code blocks and headings are not rules)."""
    for para in f.doc.paragraphs:
        lines = [n for n in range(para.start, para.end + 1) if f.doc.kinds[n - 1] == "text"]
        if not lines:
            continue
        offsets, text = [], ""
        for n in lines:
            offsets.append((len(text), n))
            text += re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", f.doc.lines[n - 1]).strip() + " "
        start = 0
        for clause in CLAUSE_END.split(text):
            at = text.index(clause, start)
            start = at + len(clause)
            yield max(n for off, n in offsets if off <= at), clause.strip()


def parse_rule(file: str, line: int, clause: str) -> Rule | None:
    """The rule an imperative clause states, or None when the clause is not an instruction."""
    tokens = TOKEN.findall(clause.lower().replace("`", ""))
    lead = clause.split(",", 1)
    if len(lead) == 2 and tokens and tokens[0] not in VERBS | LEAD_MARKERS | SKIPPING:  # "Before training, run..."
        tokens = TOKEN.findall(lead[1].lower().replace("`", ""))
    i = 0
    while i < len(tokens) and tokens[i] in LEAD_MARKERS and tokens[i] not in VERBS:
        i += 1
    if i >= len(tokens) or tokens[i] not in VERBS | SKIPPING:
        return None
    head = " ".join(tokens[: i + 1])
    negative = any(re.search(rf"\b{re.escape(n)}\b", head) for n in NEGATIONS)
    verb = "" if tokens[i] in SKIPPING else stem(tokens[i])
    obj = []
    for word in tokens[i + 1 :]:
        if word in OBJECT_STOP:
            break
        if word not in FILLER:
            obj.append(word)
    if not obj:
        return None
    words = set(tokens)
    frequency = "restricted" if words & RESTRICTED else "always" if words & ALWAYS else ""
    return Rule(file, line, clause, verb, frozenset(map(stem, obj)), " ".join(obj), negative, frequency)


def find_rules(files: list[KbFile]) -> list[Rule]:
    """Every imperative clause of every file, in file and line order."""
    return [r for f in files for line, clause in _clauses(f) if (r := parse_rule(f.rel, line, clause))]


def same_topic(a: Rule, b: Rule, min_overlap: float = 0.5) -> bool:
    """Same action (or a skip/avoid of it) on the same object: object words' Jaccard at least `min_overlap`."""
    if a.verb and b.verb and a.verb != b.verb:
        return False
    if not (a.verb or b.verb):
        return False
    return len(a.topic & b.topic) / len(a.topic | b.topic) >= min_overlap


def conflict_kind(a: Rule, b: Rule) -> str:
    """Why two rules on the same topic cannot both be followed, or "" when they can."""
    if a.negative != b.negative:
        return "opposite polarity"
    if {a.frequency, b.frequency} == {"always", "restricted"}:
        return "incompatible frequency"
    return ""


def conflicts_table(files: list[KbFile]) -> pd.DataFrame:
    """Pairs of rules (each with file:line) that contradict each other, for a person to decide."""
    rows = []
    for a, b in combinations(find_rules(files), 2):
        if (a.file, a.line) != (b.file, b.line) and same_topic(a, b) and (kind := conflict_kind(a, b)):
            rows.append({"topic": f"{b.verb or a.verb} {a.object}", "kind": kind, "where_a": f"{a.file}:{a.line}",
                         "rule_a": a.text, "where_b": f"{b.file}:{b.line}", "rule_b": b.text})
    return pd.DataFrame(rows, columns=["topic", "kind", "where_a", "rule_a", "where_b", "rule_b"])
