"""The memory benchmark's query set, and the references it is measured against: the
official MCP memory server's approach (one JSONL file, read, parsed and substring-matched
per query) and a two-query computation of the store's own search (a cross-check)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import memory_corpus as mc

from tutti_mcp.memory.files.paths import ROOT

CHUNK = 1000  # files per paired load block (tutti, then the key-value reference)
EDIT_BLOCK = 100  # edits per paired block
STOP = {"this", "that", "will", "from", "with", "when", "note", "have", "been", "which", "what"}
NONWORDS = ("zorblax", "quuxification", "frobnitzer", "glarbwidget", "snarfblat")


# -- the query set --------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    cls: str
    text: str
    scopes: tuple[str, ...] | None = None
    prefix: str = ROOT

    @property
    def label(self) -> str:
        s = self.text
        if self.prefix != ROOT:
            s += f"  prefix={self.prefix}"
        if self.scopes:
            s += f"  scopes={','.join(self.scopes)}"
        return s


def make_queries(v: mc.Vocabulary) -> list[Query]:
    """5 queries per class, picked from the vocabulary's statistics (so the same set at every
    corpus size): rare and common words, two words, phrases, identifiers, no match, a
    no-match word with a common one (AND finds nothing, the OR fallback runs), and common
    words restricted by path prefix or by scope."""
    wc = v.word_counts
    common: list[str] = []  # every 4th frequent word, one per stem (return, not also returns)
    for w, _ in wc.most_common():
        if len(w) >= 5 and w not in STOP and not any(w[:5] == c[:5] for c in common):
            common.append(w)
    common = common[:20:4]
    rare = sorted(w for w, c in wc.items() if c == 1 and len(w) >= 7)
    rare = rare[:: len(rare) // 5][:5]
    mid = sorted(w for w, c in wc.items() if 40 <= c <= 80 and len(w) >= 5)
    mid = mid[:: len(mid) // 5][:5]
    phrases = [
        f'"{a} {b}"'
        for (a, b), _ in v.bigram_counts.most_common(200)
        if len(a) >= 4 and len(b) >= 4 and not {a, b} & STOP
    ][:5]
    snake = [i for i in v.identifiers[50:] if "_" in i and i.islower() and "/" not in i]
    idents = [snake[0], snake[10], snake[100], snake[1000], snake[5000]]
    assert not set(NONWORDS) & set(wc)
    projects = mc.PROJECTS[:5]
    q = [Query("rare word", w) for w in rare]
    q += [Query("common word", w) for w in common]
    q += [Query("two words", f"{a} {b}") for a, b in zip(common, mid, strict=True)]
    q += [Query("phrase", p) for p in phrases]
    q += [Query("identifier", i) for i in idents]
    q += [Query("no match", w) for w in NONWORDS]
    q += [Query("OR fallback", f"{n} {w}") for n, w in zip(NONWORDS, mid, strict=True)]
    q += [Query("prefix", w, prefix=f"{ROOT}/{p}") for w, p in zip(common, projects, strict=True)]
    scopes = [(f"project:{mc.PROJECT_ROOT}{p}",) for p in projects[:3]]
    scopes += [("global",), ("global", f"workflow:{mc.WORKFLOWS[0]}")]
    q += [Query("scope", w, scopes=s) for w, s in zip(common, scopes, strict=True)]
    return q


CLASSES = (
    "rare word", "common word", "two words", "phrase", "identifier", "no match",
    "OR fallback", "prefix", "scope",
)  # fmt: skip


# -- the references -------------------------------------------------------------------------
def entity(d: mc.MemoryDoc) -> dict[str, Any]:
    """A memory file as the official memory server would hold it."""
    lines = [ln for ln in d.text.split("\n") if ln.strip()]
    return {"type": "entity", "name": f"{d.scope}:{d.path}", "entityType": d.scope, "observations": lines}  # fmt: skip


def jsonl_save(path: Path, entities: list[dict[str, Any]], relations: list[dict[str, Any]]) -> None:
    lines = [json.dumps(e) for e in entities] + [json.dumps(r) for r in relations]
    path.write_text("\n".join(lines), encoding="utf-8")


def jsonl_load(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    entities, relations = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            item = json.loads(line)
            if item["type"] == "entity":
                entities.append(item)
            elif item["type"] == "relation":
                relations.append(item)
    return entities, relations


def substring_search(entities: list[dict[str, Any]], q: Query) -> list[dict[str, Any]]:
    """searchNodes: case-insensitive substring of the whole query on name, type and
    observations; then the scope and prefix filters (which the official server lacks)."""
    needle = q.text.replace('"', "").lower()
    hits = [
        e
        for e in entities
        if needle in e["name"].lower()
        or needle in e["entityType"].lower()
        or any(needle in o.lower() for o in e["observations"])
    ]
    if q.scopes:
        hits = [e for e in hits if e["entityType"] in q.scopes]
    if q.prefix != ROOT:
        lo = q.prefix + "/"
        hits = [e for e in hits if e["name"][len(e["entityType"]) + 1 :].startswith(lo)]
    return hits


def official_search(path: Path, q: Query) -> int:
    entities, _relations = jsonl_load(path)
    return len(substring_search(entities, q))


class KV:
    """The write reference: a bare key-value table, one transaction per change."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")

    def put(self, key: str, value: str) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
        self.conn.execute("COMMIT")

    def delete(self, key: str) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("DELETE FROM kv WHERE k = ?", (key,))
        self.conn.execute("COMMIT")


def match_count(conn: sqlite3.Connection, q: Query) -> int:
    """How many files match (AND of the terms, else their OR, as search does), with the filters."""
    from tutti_mcp.memory.files.search import _terms

    terms = _terms(q.text)
    where, params = "", []
    if q.prefix != ROOT:
        where += " AND f.path >= ? AND f.path < ?"
        params += [q.prefix + "/", q.prefix + "0"]
    if q.scopes:
        where += f" AND f.scope IN ({','.join('?' * len(q.scopes))})"
        params += list(q.scopes)
    sql = (
        "SELECT count(*) FROM memory_fts JOIN memory_files f ON f.id = memory_fts.rowid "
        f"WHERE memory_fts MATCH ?{where}"
    )
    n = conn.execute(sql, [" ".join(terms), *params]).fetchone()[0]
    if n == 0 and len(terms) > 1:
        n = conn.execute(sql, [" OR ".join(terms), *params]).fetchone()[0]
    return int(n)


def two_step(conn: sqlite3.Connection, q: Query) -> list[tuple[Any, ...]]:
    """What search returns, computed in two steps: rank first (the FTS index alone when no
    filter applies, so no join per match), then snippet() and the size for the top 10 only."""
    from tutti_mcp.memory.files.search import _terms

    terms = _terms(q.text)
    where, params = "", []
    if q.prefix != ROOT:
        where += " AND (f.path >= ? AND f.path < ?)"
        params += [q.prefix + "/", q.prefix + "0"]
    if q.scopes:
        where += f" AND f.scope IN ({','.join('?' * len(q.scopes))})"
        params += list(q.scopes)
    if where:
        rank_sql = (
            "SELECT f.id, bm25(memory_fts, 4.0, 1.0) AS rank FROM memory_fts "
            "JOIN memory_files f ON f.id = memory_fts.rowid "
            f"WHERE memory_fts MATCH ?{where} ORDER BY rank LIMIT 10"
        )
    else:
        rank_sql = (
            "SELECT rowid, bm25(memory_fts, 4.0, 1.0) AS rank FROM memory_fts "
            "WHERE memory_fts MATCH ? ORDER BY rank LIMIT 10"
        )
    ids: list[Any] = []
    for match in (" ".join(terms), " OR ".join(terms)):
        ids = conn.execute(rank_sql, [match, *params]).fetchall()
        if ids or len(terms) < 2:
            break
    if not ids:
        return []
    rows = conn.execute(
        "SELECT f.id, f.scope, f.path, snippet(memory_fts, 1, '**', '**', '…', 16), "
        "length(CAST(f.content AS BLOB)), f.updated_at FROM memory_fts "
        "JOIN memory_files f ON f.id = memory_fts.rowid "
        f"WHERE memory_fts MATCH ? AND memory_fts.rowid IN ({','.join('?' * len(ids))})",
        [match, *(i for i, _ in ids)],
    ).fetchall()
    by_id = {row[0]: row for row in rows}
    return [(*by_id[i][1:], -rank) for i, rank in ids]
