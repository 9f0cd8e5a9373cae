"""The explorer: random command sequences generated from the servers' own COMMAND DOCS, run on Redis,
its noise control and Valkey, each divergence shrunk to the shortest sequence that still shows it.

  docs.py        COMMAND DOCS + COMMAND INFO of each server -> one argument tree per command (their union)
  exclusions.py  app/data/explore_exclusions.json: what is never sent, and why
  strategies.py  argument trees -> random calls; random calls -> sequences (seeded, reproducible)
  runner.py      the three servers: reset between sequences, a sequence pipelined to each
  judge.py       each reply judged by app/stream_compare.StreamComparator; signatures; divergence
  shrink.py      delta debugging of a divergence down to a minimal repro
  repros.py      repros as command files that ./rvc replay runs
  coverage.py    which commands the explorer and the scenarios exercised, of COMMAND LIST
  exploration.py the loop: sequences within a budget, shrinking as divergences appear
  cli.py         ./rvc explore
"""
