"""An AGD run's budget: its unit (MACs in a convention, or CPU ms), the cost table in that unit, and the check that
refuses a budget no sub-network of the space can meet, or one every sub-network meets, before anything trains.

A latency budget reads a table of every operator's latency measured on this machine (``latency_measure``); the run
measures it once and keeps it in ``cost_table.json``, so a resumed run searches with the same figures.
"""

from __future__ import annotations

import json
from pathlib import Path

from ganslim.archs.agd import AGDSupernet
from ganslim.atomic import atomic_write_text
from ganslim.compress.search import format_macs, parse_macs
from ganslim.errors import GanslimError
from ganslim.methods.agd.config import AGDConfig
from ganslim.methods.agd.cost import CostTable, latency_measure, mac_measure

MACS, LATENCY = "macs", "latency"


def budget_kind(config: AGDConfig) -> str:
    return MACS if config.budget_macs else LATENCY


def budget_value(config: AGDConfig) -> float:
    """The budget in the cost table's unit: MACs, or ms."""
    return float(parse_macs(config.budget_macs)) if config.budget_macs else config.budget_latency


def format_cost(kind: str, cost: float) -> str:
    """``"6G MACs"`` or ``"12.5 ms"``: a cost in the unit of a budget of ``kind`` (``MACS`` or ``LATENCY``)."""
    return f"{format_macs(cost)} MACs" if kind == MACS else f"{cost:.3g} ms"


def mac_table(config: AGDConfig, supernet: AGDSupernet) -> CostTable:
    """MACs of every operator in the config's convention at ``size`` (counted on the meta device)."""
    return CostTable(supernet, config.size, mac_measure(published=config.macs_convention == "published"))


def budget_table(config: AGDConfig, supernet: AGDSupernet) -> CostTable:
    """The table the penalty and the budget read: :func:`mac_table`, or CPU latencies measured here."""
    if budget_kind(config) == MACS:
        return mac_table(config, supernet)
    return CostTable(supernet, config.size, latency_measure(config.threads or None))


def filled_table(config: AGDConfig, supernet: AGDSupernet, path: Path) -> CostTable:
    """The budget table with every entry: read from ``path`` if a stage wrote it, else measured and written there
    (atomically)."""
    table = budget_table(config, supernet)
    if path.is_file():
        table.add_records(json.loads(path.read_text(encoding="utf-8"))["entries"])
        return table
    table.fill()
    atomic_write_text(json.dumps({"kind": budget_kind(config), "size": config.size, "entries": table.records()})
                      + "\n", path)
    return table


def penalty_floor(config: AGDConfig, smallest: float) -> float:
    """The cost under which the penalty weight halves: ``budget_floor`` of the way from the space's smallest
    sub-network to the budget. A fraction of the budget alone would never act in a space whose smallest network
    already costs more than that fraction (the SR benchmark's did: 66% of its budget). At most the budget: a latency
    table measured again may put the smallest network a little over a budget the check's own table passed."""
    budget = budget_value(config)
    return min(budget, smallest + config.budget_floor * (budget - smallest))


def smallest_cost(table: CostTable) -> float:
    """The cost of every slot's cheapest operator at the smallest widths."""
    return table.extreme(table.supernet.smallest_widths(), min)[1]


def check_budget(config: AGDConfig, table: CostTable) -> dict:
    """The budget's bounds in the table's unit, refused in one line when the smallest sub-network (every slot's
    cheapest operator at the smallest widths) misses it, or when the largest one already fits it (the penalty
    would never act)."""
    space = table.supernet
    kind, budget = budget_kind(config), budget_value(config)
    smallest = smallest_cost(table)
    _, largest = table.extreme(space.largest_widths(), max)
    given, low, high = (format_cost(kind, cost) for cost in (budget, smallest, largest))
    at = f"at {config.size}x{config.size}"
    if budget < smallest:
        raise GanslimError(f"the budget of {given} is below the smallest sub-network of the search space ({low} {at}: "
                           f"each cell its cheapest operator at the smallest widths): pass a budget of at least {low}")
    if budget >= largest:
        raise GanslimError(f"the budget of {given} is not below the largest sub-network of the search space ({high} "
                           f"{at}), so every architecture fits and the penalty never acts: pass a budget between {low} "
                           f"and {high}")
    return {"kind": kind, "value": budget, "label": given,
            "low": penalty_floor(config, smallest), "high": budget, "size": config.size,
            "convention": config.macs_convention if kind == MACS else None,
            "smallest": smallest, "largest": largest}
