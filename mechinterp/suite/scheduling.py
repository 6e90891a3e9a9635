"""Claims under pytest-xdist: one GPU per worker, and a claim family's tests on one worker.

Nothing here acts on a session without claim items: the plugin calls :func:`pin_gpu` and
:func:`tag_nodeid` in a worker only for the claims it collected, and :class:`ClaimScheduling`
is xdist's own ``load`` scheduling unless those tags arrive.
"""

from __future__ import annotations

import os

#: prefix of the xdist group names of claim items (``@mechinterp-color-knockout`` ends a grouped node id)
GROUP_PREFIX = "mechinterp-"
#: ``workerinput`` key: whether a worker tags its claim items with their group
GROUP_FLAG = "mechinterp_group_claims"


def pin_gpu(worker: str) -> None:
    """One GPU per worker (``gw3`` → the 4th visible GPU, round robin) when several are visible."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import torch

        ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return
    if len(ids) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[int(worker.lstrip("gw") or 0) % len(ids)]


def tag_nodeid(item, group: str) -> None:
    """Append ``@group`` to an item's node id, as xdist's ``--dist loadgroup`` does in its workers.

    xdist sets the private ``_nodeid``; pytest >= 9.2 keeps the id as a structured ``_id``, so set
    whichever this pytest reads (``tests/test_plugin.py`` checks the groups reach the scheduler).
    """
    if item.nodeid.endswith(f"@{group}"):
        return  # tagged already (xdist's own --dist loadgroup tag, where this pytest reads it)
    if hasattr(item, "_id"):
        from _pytest.nodeid import NodeId

        # the tag follows the parameters, so the tail is one name (reports rebuild ids from the parts)
        item._id = NodeId(path=item._id.path, names=tuple(f"{item._id.rest}@{group}".split("::")))
    else:
        item._nodeid = f"{item.nodeid}@{group}"


class ClaimScheduling:
    """xdist's ``load`` scheduling, unless the workers' collection holds claim items.

    Claim items arrive with their family's group appended to the node id (``…@mechinterp-color-knockout``,
    the same tag ``--dist loadgroup`` uses); then ``loadgroup`` scheduling keeps each family (and the
    relations between its claims) on one worker, so shared cells run once. The choice is made on the
    first collection and the chosen scheduler takes over; until then this object only records workers.
    """

    def __init__(self, config, log):
        self.config, self.log = config, log
        self._nodes: list = []
        self.chosen = None

    def _choose(self, collection) -> None:
        from xdist.scheduler import LoadGroupScheduling, LoadScheduling

        grouped = any("@" + GROUP_PREFIX in nodeid for nodeid in collection)
        self.chosen = (LoadGroupScheduling if grouped else LoadScheduling)(self.config, self.log)
        for node in self._nodes:
            self.chosen.add_node(node)
        dsession = self.config.pluginmanager.getplugin("dsession")
        if getattr(dsession, "sched", None) is self:
            dsession.sched = self.chosen  # xdist talks to the chosen scheduler directly from now on

    def add_node(self, node) -> None:
        """A worker is ready."""
        (self.chosen.add_node if self.chosen else self._nodes.append)(node)

    def add_node_collection(self, node, collection) -> None:
        """A worker's collected node ids: the first one decides the scheduling."""
        if self.chosen is None:
            self._choose(collection)
        self.chosen.add_node_collection(node, collection)

    def remove_node(self, node):
        """A worker went away (before any collection there is nothing to reschedule)."""
        if self.chosen is None:
            self._nodes.remove(node)
            return None
        return self.chosen.remove_node(node)

    @property
    def nodes(self) -> list:
        """The workers."""
        return self.chosen.nodes if self.chosen else list(self._nodes)

    @property
    def collection_is_completed(self) -> bool:
        """Whether every worker has reported its collection."""
        return bool(self.chosen and self.chosen.collection_is_completed)

    @property
    def tests_finished(self) -> bool:
        """Whether every test has run."""
        return bool(self.chosen and self.chosen.tests_finished)

    @property
    def has_pending(self) -> bool:
        """Whether tests remain to be run."""
        return True if self.chosen is None else self.chosen.has_pending

    def __getattr__(self, name):
        """Everything else (``schedule``, ``mark_test_complete``, …) is the chosen scheduler's."""
        chosen = self.__dict__.get("chosen")
        if chosen is None:
            raise AttributeError(f"{name!r}: no scheduler chosen yet (no worker has reported its collection)")
        return getattr(chosen, name)
