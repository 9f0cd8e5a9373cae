"""The migration rehearsal (`./rvc migrate`): move a data set Redis 7.2 -> Valkey 9.0 and back by every
route, on servers the tool starts, and verify every key after each route that works.

settings.py holds what the rehearsal does as data; wire.py the raw pipelined connection; dataset.py
the generated data set; keyspace.py the type-wise reads shared by copying and verifying; digest.py the
canonical digests; physical.py the routes in the servers' own formats (replication, RDB, AOF);
keycopy.py the per-key routes (DUMP+RESTORE, MIGRATE, logical copy); verify.py the comparison;
processes.py the server processes; rehearsal.py the run and its document; cli.py the command line.
"""
