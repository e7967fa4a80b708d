"""A budget sweep's verdict: where the damage crosses a limit (ε*), and where the curve falls.

Pure: points in, numbers out (the worker runs the sweep, :mod:`pytest_nicrobust.run.curve`).
"""

from __future__ import annotations


def crossing(points: list[dict], key: str, metric: str, limit: float) -> float | None:
    """The budget at which ``metric`` first exceeds ``limit`` along the points (linear between two points)."""
    for i, point in enumerate(points):
        value = point["mean"].get(metric)
        if value is None or not value > limit:
            continue
        if i == 0:
            return point[key]
        before = points[i - 1]
        b0, m0, b1 = before[key], before["mean"][metric], point[key]
        return b0 + (limit - m0) * (b1 - b0) / (value - m0) if value != m0 else b1
    return None


def falls(points: list[dict], key: str, metrics) -> list[dict]:
    """Where a metric is lower at a larger budget than at a smaller one (beyond rounding noise)."""
    out = []
    for metric in metrics:
        best = None
        for point in points:
            value = point["mean"].get(metric)
            if value is None:
                continue
            if best is not None and value < best[1] - 1e-9 - 1e-3 * abs(best[1]):
                out.append({"metric": metric, "from": best[0], "to": point[key], "value": value, "before": best[1]})
            if best is None or value > best[1]:
                best = (point[key], value)
    return out


def eps_star(points: list[dict], key: str, limits: dict) -> dict:
    """{metric: ε*} for each gated metric (``limits``: {metric: Limit}) whose limit the curve crosses."""
    out = {}
    for metric, limit in limits.items():
        found = crossing(points, key, metric, limit.value)
        if found is not None:
            out[metric] = found
    return out
