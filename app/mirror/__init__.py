"""The mirror: a RESP proxy that serves the application from the primary (Redis), byte for byte, and
compares every command's replies on the candidate (Valkey) and a secondary (a second Redis, the noise
control) off the application's path.

  framing.py   RESP/inline request framing and reply framing (hiredis), command encoding
  policy.py    what is mirrored: primary-only commands with their reasons, connection state, limits
  lanes.py     one connection's replies paired with its commands (pub/sub, MULTI, CLIENT REPLY)
  shadow.py    the candidate's and secondary's side: connections, causal order, drop-and-count, loss
  collect.py   finished commands judged by app/stream_compare.py, messages per subscriber, counters
  proxy.py     the application's byte path to the primary, and the tee into the comparison side
  report.py    the report document (kind "mirror") and writing it without stalling the proxy
  status.py    the live one-line status (rendering only)
  cli.py       ./rvc mirror
"""
