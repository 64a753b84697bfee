"""Test ordering for the parallel run (``make test``: pytest-xdist, ``--dist worksteal``).

The ``slow`` tests (the real FPGA builds, the 10,000-frame protocol fuzz) go first, the longest
(the ULX3S board build, about eight minutes) at the very front: started late, one of them alone would
leave a worker running long after the other has finished everything else; started first, the
other worker takes (and steals) the short tests meanwhile.
"""

from __future__ import annotations


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        if item.get_closest_marker("slow") is None:
            return 2
        return 0 if item.get_closest_marker("longest") is not None else 1
    items.sort(key=rank)       # stable: collection order within each rank
