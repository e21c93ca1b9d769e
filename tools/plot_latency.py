#!/usr/bin/env python3
"""Plot HdrHistogram percentile spectra (CSV `percentile,latency_us`) as an SVG.

The x axis is the classic HdrHistogram "number of nines" scale,
x = log10(1 / (1 - p/100)); the y axis is latency in µs on a log10 scale.
Standard library only.

usage: python3 tools/plot_latency.py [--title TEXT] [--out FILE.svg] [NAME=]CSV [...]
"""
import argparse
import math
import os
import sys
from html import escape
from typing import NamedTuple

HEADER = "percentile,latency_us"
DEFAULT_OUT = "docs/bench/e2e-latency.svg"
DEFAULT_TITLE = "Latency by percentile: venue send → consumer code"
W, H = 900, 540
LEFT, RIGHT, TOP, BOTTOM = 72, 28, 52, 62  # plot-area margins in px
# "wsfeed" always gets the strong blue; the others take the rest in order.
MARKS = (50.0, 99.0)  # percentiles marked with a dot and a value label
PALETTE = ["#1f5fbf", "#e8730c", "#c62828", "#7f7f7f", "#2e9d4a", "#8e44ad", "#8c564b"]


class InputError(Exception):
    """Bad input; the message already names the file (and line)."""


class Series(NamedTuple):
    name: str
    points: list  # [(percentile, latency_us)], percentile non-decreasing


def read_series(path, name=None):
    """Read one CSV written by benches/common/mod.rs `write_percentiles`."""
    if name is None:
        name = os.path.splitext(os.path.basename(path))[0].removeprefix("e2e-")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    if not lines or not lines[0].strip():
        raise InputError(f"{path}:1: empty file (expected header '{HEADER}')")
    if lines[0].strip().lstrip("\ufeff") != HEADER:
        raise InputError(f"{path}:1: expected header '{HEADER}', got '{lines[0].strip()}'")
    points = []
    for no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [s.strip() for s in line.split(",")]
        if len(fields) != 2:
            raise InputError(f"{path}:{no}: expected 2 fields, got {len(fields)}: '{line}'")
        try:
            p, lat = float(fields[0]), float(fields[1])
        except ValueError:
            raise InputError(f"{path}:{no}: non-numeric value in '{line}'") from None
        if not (math.isfinite(p) and math.isfinite(lat)) or not 0.0 <= p <= 100.0 or lat < 0:
            raise InputError(f"{path}:{no}: out of range (percentile 0..100, latency >= 0): '{line}'")
        if points and p < points[-1][0]:
            raise InputError(f"{path}:{no}: percentile {p} decreases (previous {points[-1][0]})")
        points.append((p, lat))
    if not points:
        raise InputError(f"{path}:2: no data rows after the header")
    return Series(name, points)


def nines(p):
    return math.log10(100.0 / (100.0 - p))


def nines_label(k):
    return ["0%", "90%"][k] if k < 2 else "99" + ("." + "9" * (k - 2) if k > 2 else "") + "%"


def steps_125(lo, hi):
    """1-2-5 values from the largest one <= lo to the smallest one >= hi."""
    d = math.floor(math.log10(lo)) - 1
    vals = []
    while not vals or vals[-1] < hi * (1 - 1e-9):
        for m in (1, 2, 5):
            v = float(f"{m}e{d}")  # exact decimal, no 0.30000000000000004
            if v <= lo * (1 + 1e-9):
                vals = [v]
            elif vals:
                vals.append(v)
        d += 1
    return vals


def fmt_us(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def fmt_value(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def render_svg(series, title):
    """Return the whole SVG document as a string."""
    finite = [p for s in series for p, _ in s.points if p < 100.0]
    reached = [m for m in MARKS if any(s.points[-1][0] >= m for s in series)]
    # Show at least 0%..90%, and every marked percentile that some series reaches.
    last = max([nines(p) for p in finite + reached] + [1.0])
    # p = 100 (the max) has no finite position: put it one step past the last point.
    x_max = last + max(0.3, 0.06 * last)
    positive = [lat for s in series for _, lat in s.points if lat > 0]
    ys = steps_125(min(positive, default=1.0), max(positive, default=1.0))
    if len(ys) < 2:
        ys.append(ys[0] * 2)
    y_lo, y_hi = ys[0], ys[-1]
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x):
        return LEFT + pw * x / x_max

    def py(lat):
        lat = max(lat, y_lo)  # a 0 µs sample sits on the bottom edge
        return TOP + ph * (1 - math.log10(lat / y_lo) / math.log10(y_hi / y_lo))

    def xpos(p):
        return x_max if p >= 100.0 else nines(p)

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="30" text-anchor="middle" font-size="16" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    # y grid: every 1-2-5 step; with many decades label only the powers of ten.
    many = math.log10(y_hi / y_lo) > 5
    for v in ys:
        decade = abs(math.log10(v) - round(math.log10(v))) < 1e-9
        y = py(v)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" '
                   f'stroke="{"#cccccc" if decade else "#ebebeb"}"/>')
        if decade or not many:
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt_us(v)}</text>')
    # x grid: 0%, 90%, 99%, ... as far as the data goes, then "max".
    xticks = [(k, nines_label(k)) for k in range(int(last + 1e-9) + 1)] + [(x_max, "max")]
    for x, label in xticks:
        out.append(f'<line x1="{px(x):.1f}" y1="{TOP}" x2="{px(x):.1f}" y2="{TOP + ph}" stroke="#cccccc"/>')
        out.append(f'<text x="{px(x):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{label}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444444"/>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 16}" text-anchor="middle">percentile</text>')
    out.append(f'<text transform="translate(18 {TOP + ph / 2}) rotate(-90)" '
               f'text-anchor="middle">latency (µs), log scale</text>')

    order = sorted(range(len(series)), key=lambda i: series[i].name != "wsfeed")
    colour = {i: PALETTE[rank % len(PALETTE)] for rank, i in enumerate(order)}
    marks = {m: [] for m in MARKS}  # percentile -> [[y px, text, colour]]
    for i, s in enumerate(series):
        pts = [(px(xpos(p)), py(lat)) for p, lat in s.points]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{colour[i]}" '
                   f'stroke-width="2" stroke-linejoin="round"/>')
        for p, dots in marks.items():
            if s.points[-1][0] < p:
                continue
            # Interpolate along the drawn line (linear in nines and log latency), so the
            # dot sits on the curve; exact when the spectrum has a row at p (50 always has).
            x = nines(p)
            j = next(j for j, (q, _) in enumerate(s.points) if xpos(q) >= x)
            (q0, l0), (q1, l1) = s.points[max(j - 1, 0)], s.points[j]
            x0, x1 = xpos(q0), xpos(q1)
            t = 0.0 if x1 == x0 else (x - x0) / (x1 - x0)
            l0, l1 = max(l0, y_lo), max(l1, y_lo)
            lat = math.exp(math.log(l0) + t * (math.log(l1) - math.log(l0)))
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(lat):.1f}" r="3.5" fill="{colour[i]}" '
                       f'stroke="white" stroke-width="1"/>')
            dots.append([py(lat), f"p{p:g} {fmt_value(lat)}", colour[i]])
    # Value labels below right of the dots (the curves rise to the right, so that corner
    # is free), pushed apart vertically so series don't collide, with a white halo.
    for p, dots in marks.items():
        dots.sort()
        for a, b in zip(dots, dots[1:]):
            b[0] = max(b[0], a[0] + 12)
        for y, text, c in dots:
            out.append(f'<text x="{px(nines(p)) + 5:.1f}" y="{y + 13:.1f}" font-size="10" '
                       f'fill="{c}" stroke="white" stroke-width="3" paint-order="stroke">'
                       f'{escape(text)}</text>')
    # Legend, top left of the plot area (the curves rise to the right).
    lw = 34 + 7 * max(len(s.name) for s in series)
    out.append(f'<rect x="{LEFT + 10}" y="{TOP + 10}" width="{lw}" height="{8 + 18 * len(series)}" '
               f'fill="white" fill-opacity="0.9" stroke="#999999"/>')
    for i in range(len(series)):
        y = TOP + 24 + 18 * i
        out.append(f'<line x1="{LEFT + 18}" y1="{y - 4}" x2="{LEFT + 38}" y2="{y - 4}" '
                   f'stroke="{colour[i]}" stroke-width="3"/>')
        out.append(f'<text x="{LEFT + 44}" y="{y}">{escape(series[i].name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Plot HdrHistogram percentile CSVs as an SVG.")
    ap.add_argument("--title", default=DEFAULT_TITLE, metavar="TEXT")
    ap.add_argument("--out", default=DEFAULT_OUT, metavar="FILE.svg",
                    help=f"output SVG (default {DEFAULT_OUT})")
    ap.add_argument("csv", nargs="+", metavar="[NAME=]CSV")
    args = ap.parse_args(argv)
    try:
        series = []
        for arg in args.csv:
            name, sep, path = arg.partition("=")
            # NAME=PATH only when NAME looks like a name, so paths containing '=' still work.
            if sep and name and "/" not in name:
                series.append(read_series(path, name))
            else:
                series.append(read_series(arg))
    except InputError as e:
        print(f"plot_latency: {e}", file=sys.stderr)
        return 2
    svg = render_svg(series, args.title)
    try:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(svg)
    except OSError as e:
        print(f"plot_latency: cannot write {args.out}: {e}", file=sys.stderr)
        return 1
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
