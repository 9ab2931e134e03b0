"""The overview's chart, drawn on the server as inline SVG: no script, no chart library.

Attempts per minute over the last hour, one stacked bar per minute (succeeded below,
failed above), scaled to the busiest minute. Pure: counts in, markup out (escaped by the
template engine's Markup rules: every value here is a number or a fixed string).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from markupsafe import Markup, escape

from relay.types import MinuteOutcomes

WIDTH, HEIGHT = 720, 180
_LEFT, _BOTTOM, _TOP = 40, 22, 10  # room for the axis labels
MINUTES = 60


@dataclass(frozen=True, slots=True)
class Summary:
    succeeded: int
    failed: int
    busiest: int  # attempts in the busiest minute


def summarise(buckets: list[MinuteOutcomes]) -> Summary:
    return Summary(sum(b.succeeded for b in buckets), sum(b.failed for b in buckets),
                   max((b.succeeded + b.failed for b in buckets), default=0))


def _clock(minute: float) -> str:
    return time.strftime("%H:%M", time.gmtime(minute))


def svg(buckets: list[MinuteOutcomes], now: float) -> Markup:
    """The chart of the MINUTES minutes ending at `now`'s minute (UTC labels)."""
    summary = summarise(buckets)
    last = (int(now) // 60) * 60
    first = last - (MINUTES - 1) * 60
    by_minute = {int(b.minute): b for b in buckets}
    plot_w, plot_h = WIDTH - _LEFT - 4, HEIGHT - _BOTTOM - _TOP
    slot = plot_w / MINUTES
    scale = plot_h / max(summary.busiest, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title" preserveAspectRatio="none">',
        f'<title id="chart-title">Attempts per minute, last hour: {summary.succeeded} '
        f'succeeded, {summary.failed} failed</title>',
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{WIDTH - 4}" '
        f'y2="{_TOP + plot_h}"/>',
        f'<text class="label" x="{_LEFT - 6}" y="{_TOP + 8}" text-anchor="end">'
        f'{summary.busiest}</text>',
        f'<text class="label" x="{_LEFT - 6}" y="{_TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for i in range(MINUTES):
        minute = first + i * 60
        bucket = by_minute.get(minute)
        if bucket is None:
            continue
        x = _LEFT + i * slot + 1
        ok_h, bad_h = bucket.succeeded * scale, bucket.failed * scale
        base = _TOP + plot_h
        tip = escape(f"{_clock(minute)} UTC: {bucket.succeeded} succeeded, "
                     f"{bucket.failed} failed")
        parts.append(f"<g><title>{tip}</title>")
        if ok_h:
            parts.append(f'<rect class="ok" x="{x:.1f}" y="{base - ok_h:.1f}" '
                         f'width="{slot - 2:.1f}" height="{ok_h:.1f}"/>')
        if bad_h:
            parts.append(f'<rect class="bad" x="{x:.1f}" y="{base - ok_h - bad_h:.1f}" '
                         f'width="{slot - 2:.1f}" height="{bad_h:.1f}"/>')
        parts.append("</g>")
    for i, anchor in ((0, "start"), (15, "middle"), (30, "middle"), (45, "middle"),
                      (MINUTES - 1, "end")):
        x = _LEFT + i * slot + (0 if anchor == "start" else slot if anchor == "end" else slot / 2)
        parts.append(f'<text class="label" x="{x:.1f}" y="{HEIGHT - 6}" '
                     f'text-anchor="{anchor}">{_clock(first + i * 60)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
