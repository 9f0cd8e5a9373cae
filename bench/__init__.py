"""Benchmarks of the tool itself (not tests): its own overhead, its suite time, its repeatability.

Run `python -m bench.overhead` (see bench/overhead.py). Modules, one job each:
  measure.py  servers, redis-benchmark, scenario runs and whole-suite runs (the measuring);
  paths.py    where the time of one large round trip goes (client paths, warm-up curve);
  stats.py    median, IQR, spread against the median (the statistics);
  report.py   the printed tables (reads results only, measures nothing).
"""
