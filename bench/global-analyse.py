#!/usr/bin/env python3
"""bench/global.sh's figures from bench/global-probe's samples.

usage: global-analyse.py DIR G MODE EVENT [EVENT|VALUE]
DIR holds "probe" (t_ns host total share state nconns stats_unix_ns lines)
and "events" (name t_ns lines).  One line per aim on stdout.
"""
import sys

T, G, MODE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ARGS = sys.argv[4:]
EV = {}
for line in open(T + "/events"):
    name, ns = line.split()
    EV[name] = int(ns)
ROWS = {1: [], 2: [], 3: []}
for line in open(T + "/probe"):
    f = line.split()
    if len(f) != 7:
        continue
    ROWS[int(f[1])].append((int(f[0]), int(f[2]), int(f[3]), f[4], int(f[6])))
for h in ROWS:
    ROWS[h].sort()


def total_at(h, t):
    """Bytes host h had passed at t (the last sample at or before t)."""
    best = None
    for row in ROWS[h]:
        if row[0] > t:
            break
        best = row[1]
    return best


def rate(hosts, a, b):
    got = [total_at(h, b) - total_at(h, a) for h in hosts]
    return sum(got) / ((b - a) / 1e9)


def windows(hosts, a, b, width):
    """(end, bytes/s) of windows of width ns sliding by 20 ms over [a, b]."""
    out, t = [], a
    while t + width <= b:
        out.append((t + width, rate(hosts, t, t + width)))
        t += 20000000
    return out


def first_time(hosts, start, limit_ns, width, ok):
    for end, r in windows(hosts, start, start + limit_ns, width):
        if ok(r):
            return (end - start) / 1e9
    return None


def state_at(h, t):
    best = None
    for row in ROWS[h]:
        if row[0] > t:
            break
        best = row
    return best


def fmt(x):
    return "never" if x is None else "%.3f s" % x


if MODE == "skew":
    a, b = EV[ARGS[0]], EV[ARGS[1]]
    agg = rate((1, 2, 3), a, b) / G * 100
    w = [r / G * 100 for _, r in windows((1, 2, 3), a, b, 1000000000)]
    h3 = rate((3,), a, b) / (G / 10) * 100
    print("aim 1: aggregate over 10 s = %.2f%% of G (aim 98-101.5); 1 s windows %.2f-%.2f%% (aim <= 105); "
          "host 3 got %.2f%% of its demand (aim >= 97)" % (agg, min(w), max(w), h3))
elif MODE == "move":
    e = EV[ARGS[0]]
    took = first_time((2, 3), e, 3 * 10**9, 100000000, lambda r: r >= 0.95 * G)
    w = [r / G * 100 for _, r in windows((1, 2, 3), e, e + 3 * 10**9, 100000000)]
    print("aim 3: host 1 stops: hosts 2+3 at >= 95%% of G (100 ms windows) after %s (aim <= 0.3 s); "
          "largest 100 ms window %.1f%%" % (fmt(took), max(w)))
elif MODE == "set":
    e, new = EV[ARGS[0]], int(ARGS[1])
    shares = None
    for t, *_ in ROWS[1]:
        if t < e:
            continue
        s = [state_at(h, t) for h in (1, 2, 3)]
        if all(s) and sum(x[2] for x in s) <= new:
            shares = (t - e) / 1e9
            break
    # A 100 ms window may hold a burst (rate / 10) on top of the rate: the
    # figure is the aggregate over the second from 300 ms after the set.
    after = rate((1, 2, 3), e + 300000000, e + 1300000000) / new * 100
    first = rate((1, 2, 3), e, e + 300000000) / new * 100
    print("aim 9: set 3M --global: every host's share cut so they add up to <= 3M %s after; "
          "aggregate over [0.3 s, 1.3 s] after = %.1f%% of 3M (aim: at the new rate within 0.3 s), "
          "over the first 0.3 s %.1f%%" % (fmt(shares), after, first))
elif MODE == "killhost":
    e = EV[ARGS[0]]
    took = first_time((1, 3), e, 3 * 10**9, 100000000, lambda r: r >= 0.95 * G)
    print("aim 4: host 2 (shaperd and relays) killed -9: hosts 1+3 at >= 95%% of G after %s (aim <= 1.2 s)"
          % fmt(took))
elif MODE == "killshaperd":
    e = EV[ARGS[0]]
    floor = None
    for t, total, share, state, stats in ROWS[2]:
        if t >= e and state == "floor":
            floor = (t - e) / 1e9
            break
    w = [r for _, r in windows((1, 2, 3), e, e + 4 * 10**9, 1000000000)]
    print("aim 5: host 2's shaperd killed -9: its relays at the floor after %s (aim <= 1 s lease); "
          "largest 1 s aggregate %.1f%% of G + F (F = G/3; aim <= 100)"
          % (fmt(floor), max(w) / (G + G / 3) * 100))
elif MODE == "redisstop":
    a, b = EV[ARGS[0]], EV[ARGS[1]]
    w = [r / G * 100 for _, r in windows((1, 2, 3), a, b, 1000000000)]
    back = None
    for t, *_ in ROWS[1]:
        if t < b:
            continue
        s = [state_at(h, t) for h in (1, 2, 3)]
        # leased again: a lease stamped after the stop ended shows as a
        # share change or simply as state leased past b + one lease
        if all(x and x[3] == "leased" for x in s) and t > b:
            back = (t - b) / 1e9
            break
    gaps = []
    for h in (1, 2, 3):
        seen = [r[4] for r in ROWS[h] if a - 10**9 <= r[0] <= b + 10**9]
        distinct = sorted(set(seen))
        gaps += [(y - x) / 1e6 for x, y in zip(distinct, distinct[1:])]
    print("aim 6: Redis stopped 5 s: 1 s windows %.2f-%.2f%% of G (aim 98-102); all hosts leased "
          "again %s after SIGCONT (aim <= 0.5 s); longest shaperd tick interval %.0f ms "
          "(tick 100 ms; aim <= 160)" % (min(w), max(w), fmt(back), max(gaps) if gaps else -1))
