"""xdist scheduling: hand tests out one at a time, never one that would wait on another worker.

Torch-free, controller side (``--dist load``, xdist's default with ``-n``). xdist's own load
scheduling sends each worker a chunk of the collection at once (a quarter of its share), so a
worst-case test could be handed to one worker while the other was still making its members'
adversarial images, and it waited on the cache's lock (issue 21: 280 s of a 304 s test).

Here every worker holds two tests at a time: the one it runs and the next one (an xdist worker
needs the next test to start the current one). Each time a test ends, its worker gets the first
test, in collection order (:func:`pytest_nicrobust.collection.order_and_select`: costly cases
first), that is *ready* for it:

* every adversarial image it needs (its ``tokens``: the undefended x' of a (codec, attack,
  dataset) is shared by all defenses of that attack, by its transfer cells and by the worst
  case) is already made (a test that needs it has ended) or is being made only by this worker;
* a worst case's members (and the other codecs' cases whose x' it reads) have ended, or are
  queued before it on this worker.

Only when no test is ready (the last minutes of a run, when everything left needs an image the
other worker is making) does a worker take the first test left; it may then wait, which the
record's ``cache_wait:<mode>`` timing shows. The numbers do not change: which worker runs a test
never changes its seed, its x' or its rows.
"""

from __future__ import annotations

import os


def tokens(case) -> set:
    """The adversarial images a test needs (made by it, or read from the cache): one token each."""
    if case.kind == "case":
        return {("x'", case.model_key, os.path.basename(case.suite), case.attack_id)}
    if case.kind == "transfer":
        return tokens(case.source)
    if case.kind == "worst-case":
        return set().union(*(tokens(m) for m in case.members + case.sources))
    return set()


class Plan:
    """What the scheduler knows of each test of the collection: the tokens it needs, and for a worst
    case the indices of its members that were collected too (pure bookkeeping, no xdist)."""

    def __init__(self, cases: list):
        self.needs = [tokens(c) if c is not None else set() for c in cases]
        index = {(c.suite, c.name): i for i, c in enumerate(cases) if c is not None}
        # a worst case waits for its members and for the other codecs' cases whose x' it reads
        self.members = [
            [index[(m.suite, m.name)] for m in c.members + c.sources if (m.suite, m.name) in index]
            if c is not None and c.kind == "worst-case"
            else []
            for c in cases
        ]
        self.done_tokens: set = set()
        self.done: set = set()

    def finished(self, i: int) -> None:
        self.done.add(i)
        self.done_tokens |= self.needs[i]

    def ready(self, i: int, mine: list[int], others: list[int]) -> bool:
        """Whether test ``i`` can start after ``mine`` (this worker's queue) without waiting on ``others``."""
        if any(m not in self.done and m not in mine for m in self.members[i]):
            return False
        busy = set().union(*(self.needs[j] for j in others)) if others else set()
        return not (self.needs[i] - self.done_tokens) & busy

    def pick(self, pending: list[int], mine: list[int], others: list[int]) -> int:
        """Position in ``pending`` of the test to send next: the first ready one, else the first."""
        for pos, i in enumerate(pending):
            if self.ready(i, mine, others):
                return pos
        return 0


def cases_of(config, collection: list[str]) -> list:
    """The case behind each node id (None for a test that is not from a suite file)."""
    from .collection import suite_tests

    by_file: dict = {}
    out = []
    for nodeid in collection:
        path, sep, name = nodeid.partition("::")
        if not sep or not path.endswith(".toml"):
            out.append(None)
            continue
        if path not in by_file:
            try:
                tests = suite_tests(config, str(config.rootpath / path), path)
            except Exception:  # the workers already reported it; no dependencies then
                tests = []
            by_file[path] = {t.name: t for t in tests}
        out.append(by_file[path].get(name))
    return out


def make_scheduler(config, log):
    """A :class:`ReadyFirstScheduling` for ``--dist load``; None (xdist's own) for any other mode."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScheduling

    class ReadyFirstScheduling(LoadScheduling):
        """xdist's load scheduling, but one test at a time and the first *ready* one (module docstring)."""

        plan: Plan | None = None

        def _send_one(self, node) -> None:
            """Send ``node`` the first pending test that is ready for it (else the first pending test)."""
            mine = self.node2pending[node]
            others = [j for n, q in self.node2pending.items() if n is not node for j in q]
            index = self.pending.pop(self.plan.pick(self.pending, mine, others) if self.plan else 0)
            mine.append(index)
            node.send_runtest_some([index])

        def _fill(self, node) -> None:
            """Top ``node`` up to two tests (the running one and the next)."""
            while self.pending and len(self.node2pending[node]) < 2:
                self._send_one(node)

        def check_schedule(self, node, duration: float = 0) -> None:
            if node.shutting_down:
                return
            if self.pending:
                self._fill(node)
            else:
                node.shutdown()

        def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
            if self.plan is not None:
                self.plan.finished(item_index)
            super().mark_test_complete(node, item_index, duration)

        def schedule(self) -> None:
            assert self.collection_is_completed
            if self.collection is not None:
                for node in self.nodes:
                    self.check_schedule(node)
                return
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return
            self.collection = next(iter(self.node2collection.values()))
            self.pending[:] = range(len(self.collection))
            if not self.collection:
                return
            self.plan = Plan(cases_of(self.config, self.collection))
            for _ in range(2):  # round robin: every worker starts on a costly test
                for node in self.nodes:
                    if self.pending and len(self.node2pending[node]) < 2:
                        self._send_one(node)
            if not self.pending:
                for node in self.nodes:
                    node.shutdown()

    return ReadyFirstScheduling(config, log)
