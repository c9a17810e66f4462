"""The lineage graph that alerts are correlated over.

Nodes are ``kind:name`` strings of five kinds, and every edge points from cause to effect::

    dataset:sha256:9f…  ──►  feature:tenure@sha256:9f…  ──►  model:churn/3
                                                                   │
                                                                   ▼
                                     host:node-1  ──►  deployment:churn-prod

A dataset version feeds its columns (features), the features feed the model versions trained
on them, a model version is served by deployments, and a host runs deployments. The host sits
*upstream* of its deployments: when a host fails, the deployments on it fail with it, so for
root-cause ranking a host is a cause of its deployments and not an effect. An edge given as
``deployment → host`` is therefore stored as ``host → deployment``.

Feature nodes are scoped by the dataset version they are columns of (``tenure@<digest>``), so a
drifted column of one dataset version is not confused with the same column of another; alerts
name a feature by its column alone and the graph finds the right node from the alert's other
labels.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from opsloop.errors import AIOpsError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from opsloop.store import Store

__all__ = [
    "NODE_KINDS",
    "LineageGraph",
    "lineage_edges_from_store",
    "lineage_from_store",
    "node_id",
    "split_node",
]

NODE_KINDS = ("dataset", "feature", "model", "deployment", "host")
"""The kinds of lineage nodes."""

# Label keys that name a host; Prometheus' ``instance`` is ``host:port``.
_HOST_LABELS = ("host", "node", "instance")
MEMO_SIZE = 100_000
"""Entries a cache of :meth:`LineageGraph.memo` holds at most (it starts again past that)."""

# Every label resolve() reads: what it found for them is remembered until the graph changes.
_READ_LABELS = (
    "feature",
    "dataset",
    "model_version",
    "model",
    "version",
    "deployment",
    *_HOST_LABELS,
)


def node_id(kind: str, name: str) -> str:
    """The id of a node: ``kind:name``.

    Raises:
        AIOpsError: The kind is not one of :data:`NODE_KINDS`, or the name is empty.
    """
    if kind not in NODE_KINDS:
        raise AIOpsError(f"unknown lineage node kind {kind!r}; kinds: {', '.join(NODE_KINDS)}")
    if not name:
        raise AIOpsError(f"lineage node of kind {kind!r} has an empty name")
    return f"{kind}:{name}"


def split_node(node: str) -> tuple[str, str]:
    """``(kind, name)`` of a node id.

    Raises:
        AIOpsError: The id is not ``kind:name`` with a known kind.
    """
    kind, sep, name = node.partition(":")
    if not sep or kind not in NODE_KINDS or not name:
        raise AIOpsError(
            f"invalid lineage node {node!r}: use 'kind:name' with kind one of "
            f"{', '.join(NODE_KINDS)} (e.g. 'deployment:churn-prod')"
        )
    return kind, name


def _feature_column(name: str) -> str:
    return name.split("@", 1)[0]


def _model_of(name: str) -> str:
    return name.rsplit("/", 1)[0]


class LineageGraph:
    """A directed graph of lineage nodes, edges from cause to effect.

    Graphs are small (hundreds of nodes), so ancestor sets are computed by breadth-first
    search on first use and cached until the graph changes.

    Args:
        edges: ``(upstream, downstream)`` node-id pairs.
        nodes: Extra nodes without edges.
    """

    def __init__(self, edges: Iterable[tuple[str, str]] = (), nodes: Iterable[str] = ()) -> None:
        self._parents: dict[str, set[str]] = {}
        self._children: dict[str, set[str]] = {}
        self._ancestors: dict[str, frozenset[str]] = {}
        self._memos: dict[str, dict[Any, Any]] = {}
        for node in nodes:
            self.add_node(node)
        for i, edge in enumerate(edges):
            try:
                upstream, downstream = edge
            except (TypeError, ValueError):
                raise AIOpsError(
                    f"lineage edge {i}: {edge!r} is not an (upstream, downstream) pair"
                ) from None
            try:
                self.add_edge(upstream, downstream)
            except AIOpsError as exc:
                raise AIOpsError(f"lineage edge {i}: {exc.message}") from None

    # -- building ---------------------------------------------------------------------------

    def add_node(self, node: str) -> None:
        """Add a node (a no-op when it is there)."""
        split_node(node)
        if node not in self._parents:
            self._parents[node] = set()
            self._children[node] = set()
            self._ancestors.clear()
            self._memos.clear()

    def add_edge(self, upstream: str, downstream: str) -> None:
        """Add an edge from cause to effect; a deployment → host edge is stored reversed."""
        up_kind, _ = split_node(upstream)
        down_kind, _ = split_node(downstream)
        if up_kind == "deployment" and down_kind == "host":
            upstream, downstream = downstream, upstream
        if upstream == downstream:
            raise AIOpsError(f"lineage edge from {upstream!r} to itself")
        self.add_node(upstream)
        self.add_node(downstream)
        self._children[upstream].add(downstream)
        self._parents[downstream].add(upstream)
        self._ancestors.clear()
        self._memos.clear()

    def memo(self, name: str) -> dict[Any, Any]:
        """A cache named ``name`` for facts derived from the graph, emptied whenever the graph
        changes (and when it has grown past :data:`MEMO_SIZE` entries)."""
        out = self._memos.setdefault(name, {})
        if len(out) > MEMO_SIZE:
            out.clear()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LineageGraph:
        """A graph from ``{"nodes": [...], "edges": [[up, down], ...]}``."""
        return cls(edges=[tuple(e) for e in data.get("edges", [])], nodes=data.get("nodes", []))

    def to_dict(self) -> dict[str, Any]:
        """``{"nodes": [...], "edges": [[up, down], ...]}``, sorted."""
        return {"nodes": self.nodes, "edges": [list(e) for e in self.edges]}

    # -- reading ----------------------------------------------------------------------------

    @property
    def nodes(self) -> list[str]:
        """Every node, sorted."""
        return sorted(self._parents)

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Every edge ``(upstream, downstream)``, sorted."""
        return sorted((u, d) for u, ds in self._children.items() for d in ds)

    def __contains__(self, node: object) -> bool:
        return node in self._parents

    def __len__(self) -> int:
        return len(self._parents)

    def parents(self, node: str) -> set[str]:
        """Direct causes of a node."""
        return set(self._parents.get(node, ()))

    def children(self, node: str) -> set[str]:
        """Direct effects of a node."""
        return set(self._children.get(node, ()))

    def ancestors(self, node: str) -> frozenset[str]:
        """Every node upstream of ``node`` (not itself)."""
        cached = self._ancestors.get(node)
        if cached is not None:
            return cached
        seen: set[str] = set()
        queue = deque(self._parents.get(node, ()))
        while queue:
            n = queue.popleft()
            if n in seen:
                continue
            seen.add(n)
            queue.extend(self._parents.get(n, ()))
        seen.discard(node)
        result = frozenset(seen)
        self._ancestors[node] = result
        return result

    def descendants(self, node: str) -> set[str]:
        """Every node downstream of ``node`` (not itself)."""
        seen: set[str] = set()
        queue = deque(self._children.get(node, ()))
        while queue:
            n = queue.popleft()
            if n not in seen:
                seen.add(n)
                queue.extend(self._children.get(n, ()))
        seen.discard(node)
        return seen

    def is_upstream(self, cause: str, effect: str) -> bool:
        """Whether ``cause`` is ``effect`` or one of its ancestors."""
        return cause == effect or cause in self.ancestors(effect)

    def related(self, a: str, b: str) -> bool:
        """Whether two nodes can share a cause: one is upstream of the other, or both have a
        common ancestor.

        Two nodes that only meet downstream (two datasets feeding one model) are not related
        by this test: a problem in one cannot explain a problem in the other.
        """
        if a == b:
            return True
        if a not in self or b not in self:
            return False
        up_a = self.ancestors(a) | {a}
        return b in up_a or not up_a.isdisjoint(self.ancestors(b) | {b})

    def common_ancestors(self, nodes: Iterable[str]) -> set[str]:
        """Nodes upstream of (or equal to) every node given."""
        result: set[str] | None = None
        for n in nodes:
            up = set(self.ancestors(n)) | {n}
            result = up if result is None else result & up
            if not result:
                return set()
        return result or set()

    def closest_common_ancestors(self, nodes: Iterable[str]) -> list[str]:
        """The common ancestors that have no other common ancestor downstream of them."""
        common = self.common_ancestors(nodes)
        return sorted(c for c in common if not any(c in self.ancestors(o) for o in common))

    def hops(self, a: str, b: str) -> int | None:
        """Length of the shortest path between two nodes, ignoring edge direction."""
        if a not in self or b not in self:
            return None
        seen = {a: 0}
        queue = deque([a])
        while queue:
            n = queue.popleft()
            if n == b:
                return seen[n]
            for m in self._parents[n] | self._children[n]:
                if m not in seen:
                    seen[m] = seen[n] + 1
                    queue.append(m)
        return None

    # -- labels to nodes --------------------------------------------------------------------

    def resolve(self, labels: Mapping[str, str], prefer: Sequence[str] = NODE_KINDS) -> str | None:
        """The node an alert with these labels is about.

        Each kind in ``prefer`` is tried in turn; the first that the labels name, and that is
        in the graph, wins. Labels: ``feature`` (a column; the other labels pick the dataset
        version), ``dataset`` (a digest, or a unique prefix of one), ``model`` with
        ``version`` (or ``model_version: name/3``), ``deployment``, ``host`` (or ``node``, or
        ``instance`` without its port).
        """
        key = (tuple(prefer), *(labels.get(k) for k in _READ_LABELS))
        known: dict[tuple[Any, ...], str | None] = self.memo("resolve")
        if key in known:
            return known[key]
        anchors = self._anchors(labels)
        found = None
        for kind in prefer:
            found = self._resolve_kind(kind, labels, anchors)
            if found is not None:
                break
        known[key] = found
        return found

    def _anchors(self, labels: Mapping[str, str]) -> list[str]:
        out = []
        for kind in ("deployment", "model", "dataset"):
            node = self._resolve_kind(kind, labels, [])
            if node is not None:
                out.append(node)
        return out

    def _resolve_kind(self, kind: str, labels: Mapping[str, str], anchors: list[str]) -> str | None:
        if kind == "feature":
            column = labels.get("feature")
            if not column:
                return None
            exact = f"feature:{column}"
            if exact in self:
                return exact
            found = [n for n in self._of_kind("feature") if _feature_column(n[8:]) == column]
            return self._pick(found, anchors)
        if kind == "dataset":
            value = labels.get("dataset")
            if not value:
                return None
            exact = f"dataset:{value}"
            if exact in self:
                return exact
            found = [n for n in self._of_kind("dataset") if n[8:].startswith(value)]
            return found[0] if len(found) == 1 else None
        if kind == "model":
            value = labels.get("model_version")
            if not value and labels.get("model") and labels.get("version"):
                value = f"{labels['model']}/{labels['version']}"
            if value:
                exact = f"model:{value}"
                return exact if exact in self else None
            name = labels.get("model")
            if not name:
                return None
            found = [n for n in self._of_kind("model") if _model_of(n[6:]) == name]
            return self._pick(found, anchors, latest=True)
        if kind == "deployment":
            value = labels.get("deployment")
            exact = f"deployment:{value}"
            return exact if value and exact in self else None
        if kind == "host":
            for key in _HOST_LABELS:
                value = labels.get(key)
                if value:
                    if key == "instance":
                        value = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
                    exact = f"host:{value}"
                    if exact in self:
                        return exact
            return None
        raise AIOpsError(f"unknown lineage node kind {kind!r}; kinds: {', '.join(NODE_KINDS)}")

    def _of_kind(self, kind: str) -> list[str]:
        prefix = f"{kind}:"
        return sorted(n for n in self._parents if n.startswith(prefix))

    def _pick(self, found: list[str], anchors: list[str], *, latest: bool = False) -> str | None:
        """One of several same-named nodes: the one linked to the alert's other labels."""
        if len(found) > 1 and anchors:
            linked = [
                n
                for n in found
                if any(self.is_upstream(n, a) or self.is_upstream(a, n) for a in anchors)
            ]
            found = linked or found
        if len(found) == 1:
            return found[0]
        if found and latest:
            return max(found, key=_version_key)
        return None


def _version_key(node: str) -> tuple[int, str]:
    tail = node.rsplit("/", 1)[-1]
    return (int(tail), node) if tail.isdigit() else (-1, node)


# -- from the metadata store -----------------------------------------------------------------


def lineage_edges_from_store(store: Store) -> list[tuple[str, str]]:
    """Lineage edges derived from registered model versions and deployments.

    Model versions give ``dataset → feature → model`` (the features listed in
    ``details["features"]``, or ``dataset → model`` when none are listed); deployments give
    ``model → deployment`` for every version their desired state serves (``version``,
    ``traffic``, ``shadow``, or ``alias`` looked up now) and ``host → deployment`` for a
    ``host`` in their live state.
    """
    edges: list[tuple[str, str]] = []
    for mv in store.models.all_versions():
        model = f"model:{mv.model_name}/{mv.version}"
        features = (mv.details or {}).get("features") or {}
        columns = [
            str(c)
            for group in ("numeric", "categorical")
            for c in (features.get(group) or [] if isinstance(features, dict) else [])
        ]
        scope = mv.dataset_digest or f"{mv.model_name}/{mv.version}"
        if mv.dataset_digest:
            dataset = f"dataset:{mv.dataset_digest}"
            if not columns:
                edges.append((dataset, model))
        for col in columns:
            feature = f"feature:{col}@{scope}"
            if mv.dataset_digest:
                edges.append((f"dataset:{mv.dataset_digest}", feature))
            edges.append((feature, model))
    aliases = store.models.aliases()
    for dep in store.deployments.list():
        # The reconciler records the resolved runtime spec: model, main version, traffic by
        # version (JSON keys are strings) and shadows.
        spec = (dep.desired or {}).get("spec") or {}
        name = spec.get("model")
        if isinstance(name, str) and name:
            versions: set[int] = set()
            if isinstance(spec.get("version"), int):
                versions.add(spec["version"])
            for key in spec.get("traffic") or {}:
                if str(key).isdigit():
                    versions.add(int(key))
            versions.update(v for v in spec.get("shadow") or [] if isinstance(v, int))
            alias = spec.get("alias")
            if isinstance(alias, str) and (name, alias) in aliases:
                versions.add(aliases[(name, alias)])
            for v in sorted(versions):
                edges.append((f"model:{name}/{v}", f"deployment:{dep.name}"))
        host = (dep.live or {}).get("host")
        if isinstance(host, str) and host:
            edges.append((f"host:{host}", f"deployment:{dep.name}"))
    return edges


def lineage_from_store(store: Store) -> LineageGraph:
    """The lineage graph of everything the store knows (see :func:`lineage_edges_from_store`)."""
    return LineageGraph(lineage_edges_from_store(store))
